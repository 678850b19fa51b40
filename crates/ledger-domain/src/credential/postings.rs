//! None: a credential says who may act, and moves no money. The journal does not decode this
//! family.
