//! None: lab points are a balance in their own unit (`LAB_POINT`), never money, so they
//! post nothing (docs/DOMAIN.md §7). The journal does not decode this family.
