//! pvpanic: the guest tells the host it panicked, so a crash ends the run
//! with a crash status instead of looking like a reboot. Linux binds its
//! `pvpanic-mmio` driver to the ACPI device `QEMU0001` naming this port.

use serde::{Deserialize, Serialize};
use snapshot::Persist;
use vm_superio::Trigger;

use crate::bus::BusDevice;
use crate::StateError;

/// One I/O port.
pub const PVPANIC_PORT_LEN: u64 = 1;
/// The guest panicked.
pub const PVPANIC_PANICKED: u8 = 1 << 0;
/// The guest will dump its memory through kdump before going on.
pub const PVPANIC_CRASH_LOADED: u8 = 1 << 1;

/// Fires `crashed` when the guest reports a panic.
pub struct PvPanic<T: Trigger> {
    crashed: T,
}

impl<T: Trigger> PvPanic<T> {
    pub fn new(crashed: T) -> Self {
        PvPanic { crashed }
    }
}

/// pvpanic holds nothing between accesses: its state is empty, and a
/// snapshot still lists it so that a restore builds it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PvPanicState {}

impl<T: Trigger> Persist for PvPanic<T> {
    type State = PvPanicState;
    /// The crash line.
    type ConstructorArgs = T;
    type Error = StateError;

    fn save(&self) -> PvPanicState {
        PvPanicState {}
    }

    fn restore(crashed: T, _: &PvPanicState) -> Result<Self, StateError> {
        Ok(PvPanic::new(crashed))
    }
}

impl<T: Trigger + Send> BusDevice for PvPanic<T> {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // The events this device understands; the driver only sends those.
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = PVPANIC_PANICKED;
        }
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        // A kdump kernel takes over after CRASH_LOADED: only a plain panic
        // ends the run.
        if data.first().is_some_and(|v| v & PVPANIC_PANICKED != 0) {
            // Nothing to tell the guest if the trigger fails.
            let _ = self.crashed.trigger();
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use crate::test_utils::CountingTrigger;

    #[test]
    fn advertises_panicked_and_fires_on_it() {
        let count = CountingTrigger::default();
        let mut dev = PvPanic::new(count.clone());
        let mut caps = [0xaa];
        dev.read(0, &mut caps);
        assert_eq!(caps, [PVPANIC_PANICKED]);
        dev.write(0, &[PVPANIC_CRASH_LOADED]);
        dev.write(0, &[]);
        assert_eq!(count.count(), 0);
        dev.write(0, &[PVPANIC_PANICKED]);
        assert_eq!(count.count(), 1);
    }

    #[test]
    fn a_restored_device_fires_on_a_panic() {
        let count = CountingTrigger::default();
        let dev = PvPanic::new(CountingTrigger::default());
        let mut restored = snapshot::assert_round_trip(&dev, count.clone());
        restored.write(0, &[PVPANIC_PANICKED]);
        assert_eq!(count.count(), 1);
    }
}
