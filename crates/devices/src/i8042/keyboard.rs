//! A PS/2 keyboard (an MF2 keyboard: ID `0xab 0x83`) behind the i8042:
//! the commands the guest sends it through the data port, its replies,
//! and the key codes it sends, all through one bounded buffer.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::scancode::{KeyEvent, ScanCodeSet};

/// Bytes the keyboard holds for the controller, as a real one does.
pub const KEYBOARD_BUFFER_LEN: usize = 16;

/// Replies.
pub const ACK: u8 = 0xfa;
pub const RESEND: u8 = 0xfe;
pub const SELF_TEST_PASSED: u8 = 0xaa;
pub const ECHO: u8 = 0xee;
pub const KEYBOARD_ID: [u8; 2] = [0xab, 0x83];

/// Commands, as the guest writes them to the data port.
mod command {
    pub const SET_LEDS: u8 = 0xed;
    pub const ECHO: u8 = 0xee;
    pub const SCAN_CODE_SET: u8 = 0xf0;
    pub const GET_ID: u8 = 0xf2;
    pub const SET_TYPEMATIC: u8 = 0xf3;
    pub const ENABLE: u8 = 0xf4;
    pub const DISABLE: u8 = 0xf5;
    pub const SET_DEFAULT: u8 = 0xf6;
    /// 0xf7-0xfa: set every key's behaviour (set 3 only).
    pub const SET_ALL_KEYS_FIRST: u8 = 0xf7;
    pub const SET_ALL_KEYS_LAST: u8 = 0xfa;
    /// 0xfb-0xfd: set some keys' behaviour (set 3 only), a list of keys
    /// follows.
    pub const SET_KEYS_FIRST: u8 = 0xfb;
    pub const SET_KEYS_LAST: u8 = 0xfd;
    pub const RESEND: u8 = 0xfe;
    pub const RESET: u8 = 0xff;
    /// No command is below this: a byte from here up that arrives where an
    /// argument was awaited is a new command.
    pub const FIRST: u8 = SET_LEDS;
}

/// Typematic delay and rate after a reset: 500 ms, 10.9 characters/s.
const DEFAULT_TYPEMATIC: u8 = 0x2b;
/// Set LEDs argument: scroll, num and caps lock.
const LED_BITS: u8 = 0x07;
/// Set typematic argument: bit 7 must be clear.
const TYPEMATIC_BITS: u8 = 0x7f;

/// What the last command left the keyboard waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Awaiting {
    Command,
    Leds,
    Typematic,
    ScanCodeSet,
    /// Keys whose behaviour a 0xfb-0xfd command sets, until the next
    /// command.
    KeyList,
}

/// Why a key sequence could not be typed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyboardError {
    #[error("the guest has turned the keyboard's scanning off (command 0xf5)")]
    ScanningDisabled,
    #[error("the keyboard's buffer has room for {free} bytes, the keys need {needed}")]
    BufferFull { needed: usize, free: usize },
}

/// The keyboard's whole state: a plain value, for snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyboard {
    scanning: bool,
    set: ScanCodeSet,
    leds: u8,
    typematic: u8,
    awaiting: Awaiting,
    buffer: VecDeque<u8>,
    /// What a resend command sends again.
    last_sent: u8,
}

impl Default for Keyboard {
    fn default() -> Self {
        Keyboard {
            scanning: true,
            set: ScanCodeSet::Two,
            leds: 0,
            typematic: DEFAULT_TYPEMATIC,
            awaiting: Awaiting::Command,
            buffer: VecDeque::with_capacity(KEYBOARD_BUFFER_LEN),
            last_sent: 0,
        }
    }
}

impl Keyboard {
    /// What is wrong with a keyboard read from a snapshot, if anything:
    /// values the guest could never have set.
    pub(super) fn invalid(&self) -> Option<String> {
        if self.buffer.len() > KEYBOARD_BUFFER_LEN {
            return Some(format!(
                "the keyboard holds {} bytes, more than its {KEYBOARD_BUFFER_LEN}",
                self.buffer.len()
            ));
        }
        if self.leds & !LED_BITS != 0 || self.typematic & !TYPEMATIC_BITS != 0 {
            return Some(format!(
                "keyboard LEDs {:#x} or typematic {:#x} out of range",
                self.leds, self.typematic
            ));
        }
        None
    }

    /// A keyboard as after power-on: scanning, in set 2, nothing to send.
    pub fn new() -> Self {
        Self::default()
    }

    /// The scan code set keys are sent in.
    pub fn scan_code_set(&self) -> ScanCodeSet {
        self.set
    }

    /// Whether key presses are sent (commands 0xf4 / 0xf5).
    pub fn scanning(&self) -> bool {
        self.scanning
    }

    /// The LED bits last set (scroll, num, caps lock).
    pub fn leds(&self) -> u8 {
        self.leds
    }

    /// The typematic delay and rate last set.
    pub fn typematic(&self) -> u8 {
        self.typematic
    }

    /// Bytes waiting to be sent.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// The next byte for the controller, if any.
    pub fn next_byte(&mut self) -> Option<u8> {
        let byte = self.buffer.pop_front()?;
        self.last_sent = byte;
        Some(byte)
    }

    /// A byte from the guest (through the controller's data port).
    pub fn receive(&mut self, byte: u8) {
        // A byte from the host interrupts whatever the keyboard was
        // sending; only a resend wants the last byte again. This also
        // keeps replies from piling up behind a guest that never reads.
        if !(self.awaiting == Awaiting::Command && byte == command::RESEND) {
            self.buffer.clear();
        }
        if self.awaiting != Awaiting::Command && byte >= command::FIRST {
            self.awaiting = Awaiting::Command;
        }
        match self.awaiting {
            Awaiting::Command => self.command(byte),
            awaiting => self.argument(awaiting, byte),
        }
    }

    fn command(&mut self, byte: u8) {
        match byte {
            command::SET_LEDS => self.ack_and_await(Awaiting::Leds),
            command::ECHO => self.send(&[ECHO]),
            command::SCAN_CODE_SET => self.ack_and_await(Awaiting::ScanCodeSet),
            command::GET_ID => self.send(&[ACK, KEYBOARD_ID[0], KEYBOARD_ID[1]]),
            command::SET_TYPEMATIC => self.ack_and_await(Awaiting::Typematic),
            command::ENABLE => {
                self.scanning = true;
                self.send(&[ACK]);
            }
            command::DISABLE => {
                self.set_defaults();
                self.scanning = false;
                self.send(&[ACK]);
            }
            command::SET_DEFAULT => {
                self.set_defaults();
                self.send(&[ACK]);
            }
            // Every key already sends make and break codes, the mode
            // Linux picks for set 3; nothing to change.
            command::SET_ALL_KEYS_FIRST..=command::SET_ALL_KEYS_LAST => self.send(&[ACK]),
            command::SET_KEYS_FIRST..=command::SET_KEYS_LAST => {
                self.ack_and_await(Awaiting::KeyList);
            }
            command::RESEND => {
                let last = self.last_sent;
                self.send(&[last]);
            }
            command::RESET => {
                *self = Keyboard {
                    last_sent: self.last_sent,
                    ..Keyboard::default()
                };
                self.send(&[ACK, SELF_TEST_PASSED]);
            }
            // Not a command this keyboard knows: ask for it again, as a
            // real keyboard does.
            _ => self.send(&[RESEND]),
        }
    }

    fn argument(&mut self, awaiting: Awaiting, byte: u8) {
        let accepted = match awaiting {
            Awaiting::Leds if byte & !LED_BITS == 0 => {
                self.leds = byte;
                true
            }
            Awaiting::Typematic if byte & !TYPEMATIC_BITS == 0 => {
                self.typematic = byte;
                true
            }
            Awaiting::ScanCodeSet if byte == 0 => {
                let number = self.set.number();
                self.awaiting = Awaiting::Command;
                self.send(&[ACK, number]);
                return;
            }
            Awaiting::ScanCodeSet => match ScanCodeSet::from_number(byte) {
                Some(set) => {
                    self.set = set;
                    true
                }
                None => false,
            },
            Awaiting::KeyList => {
                self.send(&[ACK]);
                return;
            }
            Awaiting::Command | Awaiting::Leds | Awaiting::Typematic => false,
        };
        if accepted {
            self.awaiting = Awaiting::Command;
            self.send(&[ACK]);
        } else {
            // A bad argument: the keyboard asks for it again and goes on
            // waiting for one.
            self.send(&[RESEND]);
        }
    }

    /// Queues the bytes of `events` in the current scan code set, all of
    /// them or none.
    pub fn type_keys(&mut self, events: &[KeyEvent]) -> Result<(), KeyboardError> {
        if !self.scanning {
            return Err(KeyboardError::ScanningDisabled);
        }
        let mut bytes = Vec::new();
        for event in events {
            event.encode(self.set, &mut bytes);
        }
        let free = KEYBOARD_BUFFER_LEN.saturating_sub(self.buffer.len());
        if bytes.len() > free {
            return Err(KeyboardError::BufferFull {
                needed: bytes.len(),
                free,
            });
        }
        self.buffer.extend(bytes);
        Ok(())
    }

    fn ack_and_await(&mut self, awaiting: Awaiting) {
        self.awaiting = awaiting;
        self.send(&[ACK]);
    }

    fn set_defaults(&mut self) {
        self.typematic = DEFAULT_TYPEMATIC;
    }

    /// Queues a reply; bytes past the buffer's size are lost, as on a
    /// real keyboard (never the case: each command empties it first).
    fn send(&mut self, bytes: &[u8]) {
        let free = KEYBOARD_BUFFER_LEN.saturating_sub(self.buffer.len());
        self.buffer.extend(bytes.iter().take(free));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i8042::scancode::CTRL_ALT_DEL;

    fn drain(kbd: &mut Keyboard) -> Vec<u8> {
        std::iter::from_fn(|| kbd.next_byte()).collect()
    }

    fn send(kbd: &mut Keyboard, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            kbd.receive(b);
            out.extend(drain(kbd));
        }
        out
    }

    #[test]
    fn reset_acks_then_passes_its_self_test_and_restores_defaults() {
        let mut kbd = Keyboard::new();
        assert_eq!(send(&mut kbd, &[0xf0, 3, 0xf5, 0xed, 5]), [ACK; 5]);
        assert_eq!(send(&mut kbd, &[0xff]), [ACK, SELF_TEST_PASSED]);
        assert_eq!(kbd.scan_code_set(), ScanCodeSet::Two);
        assert!(kbd.scanning());
        assert_eq!(kbd.leds(), 0);
    }

    #[test]
    fn get_id_answers_mf2() {
        let mut kbd = Keyboard::new();
        assert_eq!(send(&mut kbd, &[0xf2]), [ACK, 0xab, 0x83]);
    }

    #[test]
    fn set_leds_acks_the_command_and_its_argument() {
        let mut kbd = Keyboard::new();
        assert_eq!(send(&mut kbd, &[0xed]), [ACK]);
        assert_eq!(send(&mut kbd, &[0x04]), [ACK]);
        assert_eq!(kbd.leds(), 4);
        // An argument out of range is asked for again.
        assert_eq!(send(&mut kbd, &[0xed, 0x40]), [ACK, RESEND]);
        assert_eq!(send(&mut kbd, &[0x02]), [ACK]);
        assert_eq!(kbd.leds(), 2);
    }

    #[test]
    fn set_typematic_acks_the_command_and_its_argument() {
        let mut kbd = Keyboard::new();
        assert_eq!(send(&mut kbd, &[0xf3, 0x20]), [ACK, ACK]);
        assert_eq!(kbd.typematic(), 0x20);
        assert_eq!(send(&mut kbd, &[0xf3, 0x80, 0x00]), [ACK, RESEND, ACK]);
        assert_eq!(kbd.typematic(), 0);
    }

    #[test]
    fn enable_and_disable_scanning() {
        let mut kbd = Keyboard::new();
        assert_eq!(send(&mut kbd, &[0xf5]), [ACK]);
        assert_eq!(
            kbd.type_keys(&CTRL_ALT_DEL),
            Err(KeyboardError::ScanningDisabled)
        );
        assert_eq!(send(&mut kbd, &[0xf4]), [ACK]);
        kbd.type_keys(&CTRL_ALT_DEL).unwrap();
    }

    #[test]
    fn scan_code_set_is_set_and_reported() {
        let mut kbd = Keyboard::new();
        assert_eq!(send(&mut kbd, &[0xf0, 0]), [ACK, ACK, 2]);
        assert_eq!(send(&mut kbd, &[0xf0, 1]), [ACK, ACK]);
        assert_eq!(kbd.scan_code_set(), ScanCodeSet::One);
        assert_eq!(send(&mut kbd, &[0xf0, 0]), [ACK, ACK, 1]);
        assert_eq!(send(&mut kbd, &[0xf0, 7]), [ACK, RESEND]);
        assert_eq!(kbd.scan_code_set(), ScanCodeSet::One);
    }

    #[test]
    fn a_command_where_an_argument_was_awaited_is_obeyed() {
        let mut kbd = Keyboard::new();
        assert_eq!(send(&mut kbd, &[0xed, 0xf2]), [ACK, ACK, 0xab, 0x83]);
        assert_eq!(send(&mut kbd, &[0x01]), [RESEND], "0x01 is no command");
    }

    #[test]
    fn echo_resend_and_unknown_commands() {
        let mut kbd = Keyboard::new();
        assert_eq!(send(&mut kbd, &[0xee]), [ECHO]);
        assert_eq!(
            send(&mut kbd, &[0xfe]),
            [ECHO],
            "resend repeats the last byte"
        );
        for unknown in [0x00, 0x5a, 0xef, 0xf1] {
            assert_eq!(send(&mut kbd, &[unknown]), [RESEND], "{unknown:#x}");
        }
    }

    #[test]
    fn set_3_key_modes_are_acked() {
        let mut kbd = Keyboard::new();
        assert_eq!(send(&mut kbd, &[0xf8]), [ACK]);
        assert_eq!(send(&mut kbd, &[0xfc, 0x11, 0x19]), [ACK; 3]);
        assert_eq!(send(&mut kbd, &[0xf2]), [ACK, 0xab, 0x83]);
        assert_eq!(send(&mut kbd, &[0xf6]), [ACK]);
    }

    #[test]
    fn ctrl_alt_del_in_set_2_and_whole_or_not_at_all() {
        let mut kbd = Keyboard::new();
        kbd.type_keys(&CTRL_ALT_DEL).unwrap();
        assert_eq!(kbd.pending(), 11);
        assert_eq!(
            kbd.type_keys(&CTRL_ALT_DEL),
            Err(KeyboardError::BufferFull {
                needed: 11,
                free: 5
            })
        );
        assert_eq!(
            drain(&mut kbd),
            [0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14]
        );
    }

    #[test]
    fn a_command_drops_unsent_keys_and_replies_never_pile_up() {
        let mut kbd = Keyboard::new();
        kbd.type_keys(&CTRL_ALT_DEL).unwrap();
        for _ in 0..1000 {
            kbd.receive(0xf2);
        }
        assert_eq!(drain(&mut kbd), [ACK, 0xab, 0x83]);
    }

    #[test]
    fn any_byte_sequence_keeps_the_buffer_bounded() {
        let mut kbd = Keyboard::new();
        for i in 0..=u16::MAX {
            let [a, b] = i.to_le_bytes();
            kbd.receive(a ^ b);
            let _ = kbd.type_keys(&CTRL_ALT_DEL);
            assert!(kbd.pending() <= KEYBOARD_BUFFER_LEN);
        }
    }
}
