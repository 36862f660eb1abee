//! The controller and its keyboard driven through the ports, as a guest
//! drives them.

use super::*;
use crate::test_utils::CountingTrigger;
use crate::BusDevice;

const ACK: u8 = 0xfa;
const OUTPUT_FULL: u8 = 0x01;
const SYSTEM: u8 = 0x04;
const LAST_WAS_COMMAND: u8 = 0x08;
const UNLOCKED: u8 = 0x10;
const AUX_DATA: u8 = 0x20;
const TIMEOUT: u8 = 0x40;

struct Rig {
    dev: I8042<CountingTrigger, CountingTrigger>,
    reset: CountingTrigger,
    irq: CountingTrigger,
}

impl Rig {
    fn new() -> Self {
        let reset = CountingTrigger::default();
        let irq = CountingTrigger::default();
        Rig {
            dev: I8042::new(reset.clone(), irq.clone()),
            reset,
            irq,
        }
    }

    /// A controller without translation, as after `i8042.direct`.
    fn untranslated() -> Self {
        let mut rig = Rig::new();
        rig.command(0x60);
        rig.data(command_byte::POWER_ON & !command_byte::TRANSLATE);
        rig
    }

    fn command(&mut self, byte: u8) {
        self.dev.write(4, &[byte]);
    }

    fn data(&mut self, byte: u8) {
        self.dev.write(0, &[byte]);
    }

    fn status(&mut self) -> u8 {
        let mut byte = [0];
        self.dev.read(4, &mut byte);
        byte[0]
    }

    fn read(&mut self) -> u8 {
        let mut byte = [0];
        self.dev.read(0, &mut byte);
        byte[0]
    }

    /// Reads while the status shows a byte, as Linux's flush does.
    fn drain(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.status() & OUTPUT_FULL != 0 && out.len() < 64 {
            out.push(self.read());
        }
        out
    }

    /// The controller's reply to `command`.
    fn ask(&mut self, command: u8) -> u8 {
        self.command(command);
        assert_ne!(self.status() & OUTPUT_FULL, 0, "reply to {command:#x}");
        self.read()
    }

    /// What the keyboard answers `bytes` with.
    fn keyboard(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            self.data(b);
            out.extend(self.drain());
        }
        out
    }
}

#[test]
fn power_on_status_and_command_byte() {
    let mut rig = Rig::new();
    assert_eq!(rig.status(), UNLOCKED | SYSTEM);
    rig.command(0x20);
    assert_eq!(
        rig.status(),
        UNLOCKED | SYSTEM | LAST_WAS_COMMAND | OUTPUT_FULL
    );
    assert_eq!(
        rig.read(),
        0x65,
        "interrupt, system flag, AUX off, translation"
    );
    assert_eq!(rig.status(), UNLOCKED | SYSTEM | LAST_WAS_COMMAND);
}

#[test]
fn command_byte_is_written_through_the_data_port() {
    let mut rig = Rig::new();
    rig.command(0x60);
    assert_ne!(rig.status() & LAST_WAS_COMMAND, 0);
    rig.data(0x30);
    assert_eq!(
        rig.status(),
        UNLOCKED,
        "the system flag follows the command byte"
    );
    assert_eq!(rig.ask(0x20), 0x30);
    assert_eq!(rig.ask(0x3f), 0, "the rest of the RAM reads 0");
    rig.command(0x7f);
    rig.data(0x99);
    assert_eq!(rig.ask(0x20), 0x30, "RAM writes leave the command byte");
}

#[test]
fn self_test_passes_and_sets_the_system_flag() {
    let mut rig = Rig::new();
    rig.command(0x60);
    rig.data(0);
    assert_eq!(rig.ask(0xaa), 0x55);
    assert_ne!(rig.status() & SYSTEM, 0);
    assert_eq!(rig.ask(0x20), SYSTEM);
}

#[test]
fn keyboard_interface_test_passes() {
    let mut rig = Rig::new();
    assert_eq!(rig.ask(0xab), 0x00);
}

#[test]
fn keyboard_disable_holds_its_bytes_until_enabled() {
    let mut rig = Rig::new();
    rig.command(0xad);
    assert_eq!(rig.ask(0x20) & 0x10, 0x10);
    rig.data(0xf2);
    assert_eq!(rig.status() & OUTPUT_FULL, 0, "disabled: nothing comes");
    let irqs = rig.irq.count();
    rig.command(0xae);
    assert_eq!(rig.irq.count(), irqs + 1);
    assert_eq!(rig.drain(), [ACK, 0xab, 0x41]);
    assert_eq!(rig.ask(0x20) & 0x10, 0);
}

#[test]
fn aux_port_is_there_with_no_mouse_on_it() {
    let mut rig = Rig::new();
    rig.command(0xa8);
    assert_eq!(rig.ask(0x20) & 0x20, 0, "AUX enabled");
    rig.command(0xa7);
    assert_eq!(rig.ask(0x20) & 0x20, 0x20, "AUX disabled");
    assert_eq!(rig.ask(0xa9), 0x00, "AUX interface test");

    let irqs = rig.irq.count();
    rig.command(0xd3);
    rig.data(0x5a);
    assert_eq!(
        rig.status() & (OUTPUT_FULL | AUX_DATA),
        OUTPUT_FULL | AUX_DATA
    );
    assert_eq!(rig.read(), 0x5a, "loopback");

    rig.command(0xd4);
    rig.data(0xf2);
    let status = rig.status();
    assert_eq!(status & (AUX_DATA | TIMEOUT), AUX_DATA | TIMEOUT);
    assert_eq!(rig.read(), 0xfe, "no mouse answers");
    assert_eq!(
        rig.irq.count(),
        irqs,
        "IRQ 12 is not wired; IRQ 1 stays quiet"
    );
    assert_eq!(rig.status() & (AUX_DATA | TIMEOUT), 0);
}

#[test]
fn output_port_is_read_and_written_and_its_reset_line_resets() {
    let mut rig = Rig::new();
    assert_eq!(rig.ask(0xd0), 0x03);
    rig.command(0xd1);
    rig.data(0xdf);
    assert_eq!(rig.reset.count(), 0);
    assert_eq!(rig.ask(0xd0), 0xdf);
    rig.command(0xd1);
    rig.data(0xde);
    assert_eq!(rig.reset.count(), 1, "bit 0 low asserts reset");
}

#[test]
fn pulse_reset_command_fires_the_trigger() {
    let mut rig = Rig::new();
    rig.data(0xfe);
    rig.command(0xd1);
    assert_eq!(rig.reset.count(), 0);
    rig.command(0xfe);
    assert_eq!(rig.reset.count(), 1);
    rig.dev.write(4, &[0xfe, 0]);
    assert_eq!(rig.reset.count(), 1, "a wide write is no command");
    rig.command(0xff);
    assert_eq!(rig.reset.count(), 1, "Linux's null command pulses nothing");
    rig.command(0xf0);
    assert_eq!(rig.reset.count(), 2, "any pulse with bit 0 clear");
}

#[test]
fn keyboard_reset_acks_and_passes_its_self_test() {
    let mut rig = Rig::new();
    assert_eq!(rig.keyboard(&[0xff]), [ACK, 0xaa]);
}

#[test]
fn keyboard_id_is_translated_with_the_command_byte_bit() {
    assert_eq!(Rig::new().keyboard(&[0xf2]), [ACK, 0xab, 0x41]);
    assert_eq!(Rig::untranslated().keyboard(&[0xf2]), [ACK, 0xab, 0x83]);
}

#[test]
fn keyboard_commands_with_arguments_ack_both_bytes() {
    let mut rig = Rig::new();
    assert_eq!(rig.keyboard(&[0xed, 0x07]), [ACK, ACK], "set LEDs");
    assert_eq!(rig.keyboard(&[0xf3, 0x20]), [ACK, ACK], "set rate");
    assert_eq!(
        rig.keyboard(&[0xf0, 0x00]),
        [ACK, ACK, 0x41],
        "set 2, translated"
    );
    let mut rig = Rig::untranslated();
    assert_eq!(rig.keyboard(&[0xf0, 0x00]), [ACK, ACK, 0x02]);
    assert_eq!(
        rig.keyboard(&[0xf0, 0x03, 0xf0, 0x00]),
        [ACK, ACK, ACK, ACK, 3]
    );
}

#[test]
fn keyboard_enable_disable_and_unknown_commands() {
    let mut rig = Rig::new();
    assert_eq!(rig.keyboard(&[0xf5]), [ACK]);
    assert!(rig.dev.send_ctrl_alt_del().is_err());
    assert_eq!(rig.keyboard(&[0xf4]), [ACK]);
    assert_eq!(rig.keyboard(&[0x42]), [0xfe], "resend");
    assert_eq!(rig.keyboard(&[0xee]), [0xee], "echo");
}

#[test]
fn each_keyboard_byte_raises_irq_1_as_the_previous_one_is_read() {
    let mut rig = Rig::new();
    rig.data(0xf2);
    assert_eq!(rig.irq.count(), 1);
    assert_eq!(rig.read(), ACK);
    assert_eq!(rig.irq.count(), 2);
    assert_eq!(rig.read(), 0xab);
    assert_eq!(rig.irq.count(), 3);
    assert_eq!(rig.read(), 0x41);
    assert_eq!(rig.irq.count(), 3, "nothing left");
    assert_eq!(rig.read(), 0x41, "an empty data port reads its last byte");
    assert_eq!(rig.irq.count(), 3);
}

#[test]
fn no_irq_while_the_interrupt_is_off_and_one_when_it_is_turned_on() {
    let mut rig = Rig::new();
    rig.command(0x60);
    rig.data(command_byte::POWER_ON & !command_byte::KEYBOARD_INTERRUPT);
    rig.data(0xf4);
    assert_eq!(rig.irq.count(), 0);
    rig.command(0x60);
    rig.data(command_byte::POWER_ON);
    assert_eq!(rig.irq.count(), 1, "the pending ACK raises the line");
    assert_eq!(rig.drain(), [ACK]);
}

#[test]
fn ctrl_alt_del_reaches_a_translating_controller_as_set_1() {
    let mut rig = Rig::new();
    rig.dev.send_ctrl_alt_del().unwrap();
    assert_eq!(
        rig.drain(),
        [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d]
    );
    assert_eq!(rig.irq.count(), 8, "one interrupt per byte");
}

#[test]
fn ctrl_alt_del_reaches_an_untranslating_controller_as_set_2() {
    let mut rig = Rig::untranslated();
    rig.dev.send_ctrl_alt_del().unwrap();
    assert_eq!(
        rig.drain(),
        [0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14]
    );
    assert_eq!(rig.irq.count(), 11);
}

#[test]
fn ctrl_alt_del_in_set_3_when_the_guest_picked_it() {
    let mut rig = Rig::untranslated();
    assert_eq!(rig.keyboard(&[0xf0, 0x03]), [ACK, ACK]);
    rig.dev.send_ctrl_alt_del().unwrap();
    assert_eq!(
        rig.drain(),
        [0x11, 0x19, 0x64, 0xf0, 0x64, 0xf0, 0x19, 0xf0, 0x11]
    );
}

#[test]
fn ctrl_alt_del_while_the_guest_reads_nothing_is_bounded() {
    let mut rig = Rig::new();
    rig.dev.send_ctrl_alt_del().unwrap();
    for _ in 0..100 {
        assert!(matches!(
            rig.dev.send_ctrl_alt_del(),
            Err(KeyboardError::BufferFull { .. })
        ));
    }
    assert_eq!(rig.drain().len(), 8);
    rig.dev.send_ctrl_alt_del().unwrap();
}

#[test]
fn a_controller_reply_does_not_lose_a_pending_key() {
    let mut rig = Rig::new();
    rig.dev.send_ctrl_alt_del().unwrap();
    assert_eq!(rig.ask(0x20), 0x65, "the reply comes first");
    assert_eq!(
        rig.drain(),
        [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d]
    );
}

#[test]
fn odd_accesses_change_nothing() {
    let mut rig = Rig::new();
    let before = rig.dev.state().clone();
    let mut wide = [0u8; 2];
    rig.dev.read(0, &mut wide);
    assert_eq!(wide, [0xff; 2]);
    for offset in 1..4 {
        let mut byte = [0x55];
        rig.dev.read(offset, &mut byte);
        assert_eq!(byte, [0], "port {:#x}", 0x60 + offset);
        rig.dev.write(offset, &[0xfe]);
    }
    rig.dev.write(0, &[0xf2, 0xf2]);
    rig.dev.write(99, &[0xfe]);
    assert_eq!(rig.dev.state(), &before);
    assert_eq!(rig.reset.count(), 0);
}

/// What Linux's `i8042` then `atkbd` drivers do at boot, in order.
#[test]
fn linux_probe_then_ctrl_alt_del() {
    let mut rig = Rig::new();
    assert_eq!(rig.drain(), [0u8; 0], "flush");
    assert_eq!(rig.ask(0xaa), 0x55, "controller self-test");
    let ctr = rig.ask(0x20);
    assert_eq!(rig.ask(0x20), ctr, "stable CTR read");
    assert_ne!(rig.status() & UNLOCKED, 0, "no keylock");
    // Keyboard off and its interrupt off while probing; translation kept.
    rig.command(0x60);
    rig.data((ctr | 0x10) & !0x01);
    // Linux's A20 gate and SMM null command.
    rig.command(0xd1);
    rig.data(0xdf);
    rig.command(0xff);
    // Keyboard port on with its interrupt.
    rig.command(0x60);
    rig.data(ctr & !0x10);
    assert_eq!(rig.keyboard(&[0xf2]), [ACK, 0xab, 0x41], "atkbd GETID");
    assert_eq!(rig.keyboard(&[0xf5]), [ACK], "deactivate");
    assert_eq!(rig.keyboard(&[0xed, 0x00]), [ACK, ACK], "LEDs");
    assert_eq!(rig.keyboard(&[0xf3, 0x00]), [ACK, ACK], "rate");
    assert_eq!(rig.keyboard(&[0xf4]), [ACK], "activate");
    let irqs = rig.irq.count();
    rig.dev.send_ctrl_alt_del().unwrap();
    assert_eq!(
        rig.drain(),
        [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d]
    );
    assert_eq!(rig.irq.count(), irqs + 8);
    assert_eq!(rig.reset.count(), 0);
}

#[test]
fn state_round_trips() {
    let mut rig = Rig::new();
    rig.keyboard(&[0xf0, 0x01]);
    rig.dev.send_ctrl_alt_del().unwrap();
    rig.read();
    let state = rig.dev.state().clone();
    let mut copy = I8042::from_state(
        CountingTrigger::default(),
        CountingTrigger::default(),
        state,
    );
    for _ in 0..10 {
        let (mut a, mut b) = ([0], [0]);
        rig.dev.read(4, &mut a);
        copy.read(4, &mut b);
        assert_eq!(a, b);
        rig.dev.read(0, &mut a);
        copy.read(0, &mut b);
        assert_eq!(a, b);
    }
    assert_eq!(copy.state(), rig.dev.state());
}

/// Any access sequence: no panic, and the keyboard's buffer stays within
/// its size (what a fuzzer checks, with a fixed generator).
#[test]
fn arbitrary_accesses_stay_bounded() {
    let mut rig = Rig::new();
    let mut seed: u32 = 0x1234_5678;
    let mut next = || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        seed.to_le_bytes()[2]
    };
    for _ in 0..200_000 {
        let op = next();
        let byte = next();
        match op % 8 {
            0 => rig.command(byte),
            1 | 2 => rig.data(byte),
            3 | 4 => {
                rig.read();
            }
            5 => {
                rig.status();
            }
            6 => {
                let _ = rig.dev.send_ctrl_alt_del();
            }
            _ => {
                let mut wide = [0; 4];
                rig.dev
                    .read(u64::from(byte % 6), &mut wide[..usize::from(op % 4) + 1]);
            }
        }
        assert!(rig.dev.state().keyboard().pending() <= KEYBOARD_BUFFER_LEN);
    }
}
