//! Scan codes: the bytes a key press or release becomes in each of the
//! three PS/2 scan code sets, and the i8042's translation of set 2 into
//! set 1.

use serde::{Deserialize, Serialize};

/// The scan code set a keyboard sends in (`0xf0` command). Set 2 is the
/// power-on default, which the controller translates to set 1 when its
/// command byte asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScanCodeSet {
    One = 1,
    Two = 2,
    Three = 3,
}

impl ScanCodeSet {
    /// The set a `0xf0` argument selects (1, 2 or 3); 0 asks for the
    /// current set instead, and anything else is not a set.
    pub fn from_number(number: u8) -> Option<Self> {
        match number {
            1 => Some(ScanCodeSet::One),
            2 => Some(ScanCodeSet::Two),
            3 => Some(ScanCodeSet::Three),
            _ => None,
        }
    }

    /// The number the keyboard answers a `0xf0 0x00` query with.
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// The keys this keyboard can press: those of Ctrl-Alt-Del.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    LeftCtrl,
    LeftAlt,
    /// The Delete of the navigation block, not the keypad's.
    Delete,
}

/// Extended keys are sent with this prefix in sets 1 and 2.
const EXTENDED: u8 = 0xe0;
/// In sets 2 and 3, a release is the key's code after this prefix.
pub const BREAK_PREFIX: u8 = 0xf0;
/// In set 1, a release is the key's code with this bit set.
const SET1_BREAK_BIT: u8 = 0x80;

impl Key {
    /// The bytes of the key's make code in `set`.
    fn make(self, set: ScanCodeSet) -> &'static [u8] {
        match (self, set) {
            (Key::LeftCtrl, ScanCodeSet::One) => &[0x1d],
            (Key::LeftCtrl, ScanCodeSet::Two) => &[0x14],
            (Key::LeftCtrl, ScanCodeSet::Three) => &[0x11],
            (Key::LeftAlt, ScanCodeSet::One) => &[0x38],
            (Key::LeftAlt, ScanCodeSet::Two) => &[0x11],
            (Key::LeftAlt, ScanCodeSet::Three) => &[0x19],
            (Key::Delete, ScanCodeSet::One) => &[EXTENDED, 0x53],
            (Key::Delete, ScanCodeSet::Two) => &[EXTENDED, 0x71],
            (Key::Delete, ScanCodeSet::Three) => &[0x64],
        }
    }
}

/// A key going down or up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEvent {
    Press(Key),
    Release(Key),
}

impl KeyEvent {
    /// Appends the bytes of this event in `set` to `out`.
    pub fn encode(self, set: ScanCodeSet, out: &mut Vec<u8>) {
        match self {
            KeyEvent::Press(key) => out.extend_from_slice(key.make(set)),
            KeyEvent::Release(key) => {
                let (code, prefix) = match key.make(set) {
                    [prefix @ .., code] => (*code, prefix),
                    [] => return,
                };
                out.extend_from_slice(prefix);
                match set {
                    ScanCodeSet::One => out.push(code | SET1_BREAK_BIT),
                    ScanCodeSet::Two | ScanCodeSet::Three => {
                        out.extend_from_slice(&[BREAK_PREFIX, code]);
                    }
                }
            }
        }
    }
}

/// Ctrl and Alt held down while Delete is pressed, then all three let go
/// in the reverse order.
pub const CTRL_ALT_DEL: [KeyEvent; 6] = [
    KeyEvent::Press(Key::LeftCtrl),
    KeyEvent::Press(Key::LeftAlt),
    KeyEvent::Press(Key::Delete),
    KeyEvent::Release(Key::Delete),
    KeyEvent::Release(Key::LeftAlt),
    KeyEvent::Release(Key::LeftCtrl),
];

/// The set 1 byte the controller hands the guest for set 2 byte `byte`
/// (the break prefix is handled by the caller: it sets bit 7 of the byte
/// after it).
///
/// A real i8042 translates every byte below 0x80 (and 0x83, the F7 key)
/// through a table. This one knows the bytes its own keyboard sends in
/// set 2 (the keys above, the scan code set numbers and the ID's 0x83);
/// everything else (the replies 0xfa, 0xaa, 0xab, 0xee, 0xfe and the 0xe0
/// prefix) passes unchanged, as it does through a real one.
pub fn set2_to_set1(byte: u8) -> u8 {
    match byte {
        0x14 => 0x1d, // left Ctrl
        0x11 => 0x38, // left Alt
        0x71 => 0x53, // Delete, after 0xe0
        0x01 => 0x43, // set number 1 (the F9 key's code)
        0x02 => 0x41, // set number 2
        0x03 => 0x3f, // set number 3 (the F5 key's code)
        0x83 => 0x41, // second ID byte (the F7 key's code)
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_all(events: &[KeyEvent], set: ScanCodeSet) -> Vec<u8> {
        let mut out = Vec::new();
        for event in events {
            event.encode(set, &mut out);
        }
        out
    }

    #[test]
    fn ctrl_alt_del_in_each_set() {
        assert_eq!(
            encode_all(&CTRL_ALT_DEL, ScanCodeSet::One),
            [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d]
        );
        assert_eq!(
            encode_all(&CTRL_ALT_DEL, ScanCodeSet::Two),
            [0x14, 0x11, 0xe0, 0x71, 0xe0, 0xf0, 0x71, 0xf0, 0x11, 0xf0, 0x14]
        );
        assert_eq!(
            encode_all(&CTRL_ALT_DEL, ScanCodeSet::Three),
            [0x11, 0x19, 0x64, 0xf0, 0x64, 0xf0, 0x19, 0xf0, 0x11]
        );
    }

    #[test]
    fn translation_turns_set_2_keys_into_their_set_1_codes() {
        for key in [Key::LeftCtrl, Key::LeftAlt, Key::Delete] {
            let set2 = key.make(ScanCodeSet::Two);
            let translated: Vec<u8> = set2.iter().map(|&b| set2_to_set1(b)).collect();
            assert_eq!(translated, key.make(ScanCodeSet::One), "{key:?}");
        }
    }

    #[test]
    fn translation_of_replies_and_set_numbers() {
        for reply in [0xfa, 0xaa, 0xab, 0xee, 0xfe, EXTENDED] {
            assert_eq!(set2_to_set1(reply), reply);
        }
        assert_eq!(set2_to_set1(0x83), 0x41, "translated ID is ab 41");
        assert_eq!(set2_to_set1(1), 0x43);
        assert_eq!(set2_to_set1(2), 0x41);
        assert_eq!(set2_to_set1(3), 0x3f);
    }

    #[test]
    fn set_numbers() {
        for n in 1..=3 {
            assert_eq!(
                ScanCodeSet::from_number(n).map(ScanCodeSet::number),
                Some(n)
            );
        }
        assert_eq!(ScanCodeSet::from_number(0), None);
        assert_eq!(ScanCodeSet::from_number(4), None);
    }
}
