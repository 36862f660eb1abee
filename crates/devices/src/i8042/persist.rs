//! The i8042 in a snapshot: its state is already a plain value
//! ([`I8042State`], the keyboard included); its edges (reset line, IRQ 1)
//! are the new machine's.

use snapshot::Persist;
use vm_superio::Trigger;

use super::{I8042State, I8042};
use crate::StateError;

impl<R: Trigger, K: Trigger> Persist for I8042<R, K> {
    type State = I8042State;
    /// The reset line and the keyboard interrupt.
    type ConstructorArgs = (R, K);
    type Error = StateError;

    fn save(&self) -> I8042State {
        self.state().clone()
    }

    fn restore((reset, keyboard_irq): (R, K), state: &I8042State) -> Result<Self, StateError> {
        if let Some(why) = state.invalid() {
            return Err(StateError::new("i8042", why));
        }
        Ok(I8042::from_state(reset, keyboard_irq, state.clone()))
    }
}

#[cfg(test)]
mod tests {
    use snapshot::assert_round_trip;

    use super::*;
    use crate::bus::BusDevice;
    use crate::test_utils::CountingTrigger;

    const DATA: u64 = 0;
    const COMMAND: u64 = 4;

    fn controller() -> I8042<CountingTrigger, CountingTrigger> {
        I8042::new(CountingTrigger::default(), CountingTrigger::default())
    }

    fn read_data(dev: &mut I8042<CountingTrigger, CountingTrigger>) -> u8 {
        let mut byte = [0];
        dev.read(DATA, &mut byte);
        byte[0]
    }

    #[test]
    fn a_restored_controller_goes_on_with_what_was_pending() {
        let mut dev = controller();
        // The guest writes a new command byte (0x60, then the value) and
        // Ctrl-Alt-Del waits in the keyboard: a state a fresh one lacks.
        dev.write(COMMAND, &[0x60]);
        dev.write(DATA, &[0x45]);
        dev.send_ctrl_alt_del().unwrap();
        let args = (CountingTrigger::default(), CountingTrigger::default());
        let mut restored = assert_round_trip(&dev, args);
        // Both hand the guest the same bytes from here on.
        for _ in 0..8 {
            assert_eq!(read_data(&mut restored), read_data(&mut dev));
        }
        assert_eq!(restored.save(), dev.save());
    }

    #[test]
    fn a_keyboard_buffer_past_its_size_is_refused() {
        let dev = controller();
        let mut state = serde_json::to_value(dev.save()).unwrap();
        state["keyboard"]["buffer"] = serde_json::json!(vec![0; 64]);
        let state: I8042State = serde_json::from_value(state).unwrap();
        let args = (CountingTrigger::default(), CountingTrigger::default());
        let err = I8042::restore(args, &state).err().unwrap();
        assert!(err.to_string().contains("64 bytes"), "{err}");
    }
}
