//! The conformance suite on the in-memory backend.

use std::sync::Arc;

use ledger_store::conformance::Store;
use ledger_store::memory::MemoryStore;

async fn make() -> Option<(Store, ())> {
    Some((Arc::new(MemoryStore::new()) as Store, ()))
}

ledger_store::conformance_suite!(make);
ledger_store::conformance_suite!(@cases allow(unused), make; a_lease_has_one_holder_until_it_expires);
