//! Fakes shared by the devices' unit tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vm_superio::Trigger;

/// A trigger that counts how often it fired; clones share the count.
#[derive(Clone, Default)]
pub struct CountingTrigger(Arc<AtomicUsize>);

impl CountingTrigger {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Trigger for CountingTrigger {
    type E = ();

    fn trigger(&self) -> Result<(), ()> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}
