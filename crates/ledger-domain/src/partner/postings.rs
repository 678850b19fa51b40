//! None: a partner's events record who it is, not money. The journal does not decode this
//! family ([`crate::journal::postings_of`]).
