//! The ACPI power-management registers of a hardware-reduced platform:
//! the FADT's sleep control, sleep status and reset registers, one I/O
//! port each.

use serde::{Deserialize, Serialize};
use snapshot::Persist;
use vm_superio::Trigger;

use crate::bus::BusDevice;
use crate::StateError;

/// Sleep control register offset.
pub const SLEEP_CONTROL: u64 = 0;
/// Sleep status register offset.
pub const SLEEP_STATUS: u64 = 1;
/// Reset register offset.
pub const RESET: u64 = 2;
/// Ports the block occupies.
pub const ACPI_PM_LEN: u64 = 3;

/// SLP_EN: the write asks to enter the sleep state in SLP_TYP.
const SLEEP_ENABLE: u8 = 1 << 5;
const SLEEP_TYPE_SHIFT: u8 = 2;
const SLEEP_TYPE_MASK: u8 = 0x7;

/// Fires `power_off` when the guest enters the S5 sleep state and `reset`
/// when it writes the reset value.
pub struct AcpiPm<T: Trigger> {
    power_off: T,
    reset: T,
    s5_sleep_type: u8,
    reset_value: u8,
}

impl<T: Trigger> AcpiPm<T> {
    /// `s5_sleep_type` and `reset_value` must match what the DSDT's `_S5_`
    /// and the FADT's reset value tell the guest.
    pub fn new(power_off: T, reset: T, s5_sleep_type: u8, reset_value: u8) -> Self {
        AcpiPm {
            power_off,
            reset,
            s5_sleep_type,
            reset_value,
        }
    }
}

/// What a snapshot keeps: the values the guest's ACPI tables (saved in
/// its memory) told it to write, which the restored device must match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcpiPmState {
    pub s5_sleep_type: u8,
    pub reset_value: u8,
}

impl<T: Trigger> Persist for AcpiPm<T> {
    type State = AcpiPmState;
    /// The power-off and reset lines.
    type ConstructorArgs = (T, T);
    type Error = StateError;

    fn save(&self) -> AcpiPmState {
        AcpiPmState {
            s5_sleep_type: self.s5_sleep_type,
            reset_value: self.reset_value,
        }
    }

    fn restore((power_off, reset): (T, T), state: &AcpiPmState) -> Result<Self, StateError> {
        if state.s5_sleep_type > SLEEP_TYPE_MASK {
            return Err(StateError::new(
                "ACPI PM",
                format!("sleep type {} does not fit SLP_TYP", state.s5_sleep_type),
            ));
        }
        Ok(AcpiPm::new(
            power_off,
            reset,
            state.s5_sleep_type,
            state.reset_value,
        ))
    }
}

impl<T: Trigger + Send> BusDevice for AcpiPm<T> {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Nothing sleeps or wakes: every status bit reads as clear.
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let [value] = data else { return };
        // A failed trigger leaves the guest running, which is what it sees
        // on hardware whose power controller ignores it.
        match offset {
            SLEEP_CONTROL
                if value & SLEEP_ENABLE != 0
                    && (value >> SLEEP_TYPE_SHIFT) & SLEEP_TYPE_MASK == self.s5_sleep_type =>
            {
                let _ = self.power_off.trigger();
            }
            RESET if *value == self.reset_value => {
                let _ = self.reset.trigger();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use crate::test_utils::CountingTrigger;

    fn device() -> (AcpiPm<CountingTrigger>, CountingTrigger, CountingTrigger) {
        let (off, reset) = (CountingTrigger::default(), CountingTrigger::default());
        (AcpiPm::new(off.clone(), reset.clone(), 5, 1), off, reset)
    }

    #[test]
    fn s5_with_sleep_enable_powers_off() {
        let (mut dev, off, reset) = device();
        dev.write(SLEEP_CONTROL, &[5 << 2]); // no SLP_EN
        dev.write(SLEEP_CONTROL, &[(3 << 2) | SLEEP_ENABLE]); // S3: not supported
        assert_eq!(off.count(), 0);
        dev.write(SLEEP_CONTROL, &[(5 << 2) | SLEEP_ENABLE]);
        assert_eq!(off.count(), 1);
        assert_eq!(reset.count(), 0);
    }

    #[test]
    fn reset_value_resets_and_others_do_not() {
        let (mut dev, off, reset) = device();
        dev.write(RESET, &[2]);
        dev.write(RESET, &[1, 0]);
        assert_eq!(reset.count(), 0);
        dev.write(RESET, &[1]);
        assert_eq!(reset.count(), 1);
        assert_eq!(off.count(), 0);
    }

    #[test]
    fn a_restored_block_powers_off_and_resets_on_the_same_values() {
        let (dev, _, _) = device();
        let (off, reset) = (CountingTrigger::default(), CountingTrigger::default());
        let mut restored = snapshot::assert_round_trip(&dev, (off.clone(), reset.clone()));
        restored.write(SLEEP_CONTROL, &[(5 << 2) | SLEEP_ENABLE]);
        restored.write(RESET, &[1]);
        assert_eq!((off.count(), reset.count()), (1, 1));
        let bad = AcpiPmState {
            s5_sleep_type: 8,
            reset_value: 1,
        };
        assert!(AcpiPm::restore((off.clone(), reset), &bad).is_err());
    }

    #[test]
    fn status_reads_clear() {
        let (mut dev, _, _) = device();
        let mut data = [0xaa; 2];
        dev.read(SLEEP_STATUS, &mut data);
        assert_eq!(data, [0, 0]);
    }
}
