//! The i8042 keyboard controller, kept for the one command guests use it
//! for: `0xfe` on the command port pulses the CPU reset line.

use vm_superio::{I8042Device, Trigger};

use crate::bus::BusDevice;

/// The controller spans the data port (offset 0) to the command port
/// (offset 4).
pub const I8042_PORT_LEN: u64 = 5;
const COMMAND_OFFSET: u8 = 4;

/// An i8042 whose reset command fires `T`.
pub struct I8042<T: Trigger> {
    controller: I8042Device<T>,
}

impl<T: Trigger> I8042<T> {
    pub fn new(reset: T) -> Self {
        I8042 {
            controller: I8042Device::new(reset),
        }
    }
}

impl<T: Trigger + Send> BusDevice for I8042<T> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (u8::try_from(offset), data) {
            (Ok(offset), [byte]) => *byte = self.controller.read(offset),
            (_, data) => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (4, [byte]) = (offset, data) {
            // A failed reset trigger leaves the guest running; it will
            // try again or fall back to another reset method.
            let _ = self.controller.write(COMMAND_OFFSET, *byte);
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use crate::test_utils::CountingTrigger;

    #[test]
    fn reset_command_fires_the_trigger_once() {
        let count = CountingTrigger::default();
        let mut dev = I8042::new(count.clone());
        dev.write(0, &[0xfe]);
        dev.write(u64::from(COMMAND_OFFSET), &[0xd1]);
        assert_eq!(count.count(), 0);
        dev.write(u64::from(COMMAND_OFFSET), &[0xfe]);
        assert_eq!(count.count(), 1);
        dev.write(u64::from(COMMAND_OFFSET), &[0xfe, 0]);
        assert_eq!(count.count(), 1);
    }
}
