//! None: an anchor is a signed statement about the log, not a money movement. The journal
//! does not decode this family.
