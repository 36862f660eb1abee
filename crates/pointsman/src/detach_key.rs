//! `vm console --detach-key`: the one byte that ends the console client
//! instead of going to the guest.

use std::fmt;
use std::str::FromStr;

/// A key as the byte the terminal sends for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetachKey(pub u8);

/// Ctrl-], as telnet and virsh have it.
pub const DEFAULT_DETACH_KEY: &str = "^]";

impl DetachKey {
    /// Where the key is in `bytes`.
    pub fn find_in(self, bytes: &[u8]) -> Option<usize> {
        bytes.iter().position(|&b| b == self.0)
    }
}

/// The control byte of `key` (`]` → 0x1D, `?` → DEL), as Ctrl gives it.
fn control(key: char) -> Option<u8> {
    match key.to_ascii_uppercase() {
        '?' => Some(0x7F),
        c @ '@'..='_' => Some(c as u8 & 0x1F),
        _ => None,
    }
}

impl FromStr for DetachKey {
    type Err = String;

    /// `^X` or `ctrl-X` (`C-X`, as tmux writes it) for Ctrl with X one of
    /// `@ A-Z [ \ ] ^ _ ?`, or a single ASCII character for itself.
    fn from_str(text: &str) -> Result<DetachKey, String> {
        let bad = || {
            format!(
                "{text:?}: expected ^X or ctrl-X (X a letter or one of @[\\]^_?) or one ASCII character"
            )
        };
        let lower = text.to_ascii_lowercase();
        let ctrl = ["^", "ctrl-", "ctrl+", "c-"]
            .iter()
            .find_map(|prefix| lower.strip_prefix(prefix).map(|_| &text[prefix.len()..]));
        let mut chars = match ctrl {
            // "^" alone is the caret itself.
            Some(rest) if !rest.is_empty() => rest.chars(),
            _ => {
                let mut chars = text.chars();
                return match (chars.next(), chars.next()) {
                    (Some(c), None) if c.is_ascii() => Ok(DetachKey(c as u8)),
                    _ => Err(bad()),
                };
            }
        };
        match (chars.next(), chars.next()) {
            (Some(c), None) => control(c).map(DetachKey).ok_or_else(bad),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for DetachKey {
    /// Caret notation for control bytes (`^]`), else the character.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0x7F => write!(f, "^?"),
            b if b < 0x20 => write!(f, "^{}", char::from(b | 0x40)),
            b => write!(f, "{}", char::from(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<u8, String> {
        text.parse::<DetachKey>().map(|k| k.0)
    }

    #[test]
    fn control_keys_parse_in_every_spelling() {
        for text in ["^]", "ctrl-]", "Ctrl+]", "C-]", "c-]"] {
            assert_eq!(parse(text), Ok(0x1D), "{text}");
        }
        assert_eq!(parse(DEFAULT_DETACH_KEY), Ok(0x1D));
        assert_eq!(parse("^a"), Ok(0x01));
        assert_eq!(parse("^A"), Ok(0x01));
        assert_eq!(parse("ctrl-q"), Ok(0x11));
        assert_eq!(parse("^@"), Ok(0x00));
        assert_eq!(parse("^_"), Ok(0x1F));
        assert_eq!(parse("^?"), Ok(0x7F));
    }

    #[test]
    fn a_single_character_is_itself() {
        assert_eq!(parse("~"), Ok(b'~'));
        assert_eq!(parse("^"), Ok(b'^'));
        assert_eq!(parse("q"), Ok(b'q'));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "ab", "^ab", "ctrl-", "^1", "C-é", "é", "ctrl-]]"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(parse("^1").unwrap_err().contains("\"^1\""));
    }

    #[test]
    fn keys_show_as_they_are_typed() {
        let show = |b: u8| DetachKey(b).to_string();
        assert_eq!(show(0x1D), "^]");
        assert_eq!(show(0x01), "^A");
        assert_eq!(show(0x7F), "^?");
        assert_eq!(show(b'~'), "~");
        for text in ["^]", "^A", "^?", "~", "^@"] {
            assert_eq!(text.parse::<DetachKey>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn the_key_is_found_among_bytes() {
        let key = DetachKey(0x1D);
        assert_eq!(key.find_in(b"hello\n\x1dmore"), Some(6));
        assert_eq!(key.find_in(b"hello"), None);
    }
}
