//! None: an association decides which partner a line and a coupon belong to, it moves no
//! money itself. The journal does not decode this family ([`crate::journal::postings_of`]).
