//! The i8042 keyboard controller with a PS/2 keyboard behind it: enough
//! for Linux's `i8042` and `atkbd` drivers to probe it and take keys, its
//! `0xfe` command to reset the machine, and Ctrl-Alt-Del sent from the
//! host.

mod controller;
mod keyboard;
mod persist;
mod scancode;
#[cfg(test)]
mod tests;

pub use controller::{command_byte, I8042State, I8042, I8042_PORT_LEN};
pub use keyboard::{Keyboard, KeyboardError, KEYBOARD_BUFFER_LEN};
pub use scancode::{Key, KeyEvent, ScanCodeSet, CTRL_ALT_DEL};
