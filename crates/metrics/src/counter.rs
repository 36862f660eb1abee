//! The two kinds of value a metrics line holds.

use std::sync::atomic::{AtomicU64, Ordering};

/// Work done since the previous metrics line: bumped with a relaxed
/// atomic add (cheap on hot paths), taken (read and reset to 0) as each
/// line is written, as Firecracker's counters are.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count since the last [`Counter::take`], left as it is.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// The count since the last take, reset to 0.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// The last value of something measured (a duration): written as it is
/// in every line until measured again, as Firecracker's store metrics are.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub const fn new() -> Gauge {
        Gauge(AtomicU64::new(0))
    }

    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_counts_since_it_was_last_taken() {
        let counter = Counter::new();
        counter.inc();
        counter.add(4);
        assert_eq!(counter.get(), 5);
        assert_eq!(counter.take(), 5);
        assert_eq!(counter.take(), 0);
    }

    #[test]
    fn a_gauge_keeps_its_last_value() {
        let gauge = Gauge::new();
        gauge.set(7);
        gauge.set(3);
        assert_eq!(gauge.get(), 3);
        assert_eq!(gauge.get(), 3);
    }
}
