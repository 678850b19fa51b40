//! None: a policy sets the rates lines earn at; the money moves when a month is finalized
//! ([`crate::incentives::postings`]). The journal does not decode this family.
