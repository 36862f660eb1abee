//! The i8042 controller: its status register, its command byte, the
//! commands the guest writes to port 0x64, and the one-byte output buffer
//! the guest reads at port 0x60, which the controller's own replies and
//! the keyboard behind it fill.
//!
//! It is a PS/2 controller with an AUX (mouse) port and no mouse on it,
//! whose AUX interrupt (IRQ 12) is not wired: guests that look for a
//! mouse find none.

use serde::{Deserialize, Serialize};
use vm_superio::Trigger;

use super::keyboard::{Keyboard, KeyboardError};
use super::scancode::{set2_to_set1, BREAK_PREFIX, CTRL_ALT_DEL};
use crate::bus::BusDevice;

/// The controller spans the data port (offset 0) to the command and
/// status port (offset 4).
pub const I8042_PORT_LEN: u64 = 5;
const DATA_OFFSET: u64 = 0;
const COMMAND_OFFSET: u64 = 4;

/// Status register bits (read at port 0x64).
mod status {
    pub const OUTPUT_FULL: u8 = 0x01;
    /// A copy of the command byte's system flag.
    pub const SYSTEM: u8 = 0x04;
    /// The last write was to the command port, not the data port.
    pub const COMMAND: u8 = 0x08;
    /// No keylock inhibits the keyboard.
    pub const UNLOCKED: u8 = 0x10;
    /// The output buffer holds a byte from the AUX port.
    pub const AUX_DATA: u8 = 0x20;
    /// The AUX device did not answer.
    pub const TIMEOUT: u8 = 0x40;
}

/// Command byte bits (read with 0x20, written with 0x60).
pub mod command_byte {
    /// Raise IRQ 1 when the output buffer fills with keyboard data.
    pub const KEYBOARD_INTERRUPT: u8 = 0x01;
    /// Set after a passed self-test; the status register shows it.
    pub const SYSTEM: u8 = 0x04;
    /// The keyboard's bytes stay in the keyboard.
    pub const KEYBOARD_DISABLED: u8 = 0x10;
    pub const AUX_DISABLED: u8 = 0x20;
    /// Translate the keyboard's set 2 codes to set 1.
    pub const TRANSLATE: u8 = 0x40;
    /// What a PC's firmware leaves for the OS (Pointsman has none): the
    /// keyboard on with its interrupt and translation, the AUX port off.
    pub const POWER_ON: u8 = KEYBOARD_INTERRUPT | SYSTEM | AUX_DISABLED | TRANSLATE;
}

/// Controller commands (written to port 0x64).
mod command {
    pub const READ_COMMAND_BYTE: u8 = 0x20;
    /// 0x21-0x3f read the rest of the controller's RAM.
    pub const READ_RAM_LAST: u8 = 0x3f;
    pub const WRITE_COMMAND_BYTE: u8 = 0x60;
    /// 0x61-0x7f write the rest of the controller's RAM.
    pub const WRITE_RAM_LAST: u8 = 0x7f;
    pub const DISABLE_AUX: u8 = 0xa7;
    pub const ENABLE_AUX: u8 = 0xa8;
    pub const TEST_AUX: u8 = 0xa9;
    pub const SELF_TEST: u8 = 0xaa;
    pub const TEST_KEYBOARD: u8 = 0xab;
    pub const DISABLE_KEYBOARD: u8 = 0xad;
    pub const ENABLE_KEYBOARD: u8 = 0xae;
    pub const READ_OUTPUT_PORT: u8 = 0xd0;
    pub const WRITE_OUTPUT_PORT: u8 = 0xd1;
    /// The next data byte comes back as if the keyboard sent it.
    pub const WRITE_KEYBOARD_OUTPUT: u8 = 0xd2;
    /// The next data byte comes back as if the AUX device sent it (Linux's
    /// AUX loopback test).
    pub const WRITE_AUX_OUTPUT: u8 = 0xd3;
    /// The next data byte goes to the AUX device.
    pub const WRITE_AUX: u8 = 0xd4;
    /// 0xf0-0xff pulse the output port lines whose bits are clear in the
    /// low nibble; 0xfe pulses the reset line alone.
    pub const PULSE_FIRST: u8 = 0xf0;
}

/// Replies to controller commands.
const SELF_TEST_PASSED: u8 = 0x55;
const INTERFACE_TEST_PASSED: u8 = 0x00;
/// What the controller reports when the AUX device does not answer.
const NO_AUX_DEVICE: u8 = 0xfe;
/// Output port bit 0: the CPU reset line, active low.
const RESET_LINE: u8 = 0x01;
/// The output port at power-on: reset not asserted, the A20 gate open.
const OUTPUT_PORT_POWER_ON: u8 = 0x03;

/// Who put a byte in the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Source {
    Controller,
    Keyboard,
    Aux,
    /// The AUX device did not answer (no mouse).
    AuxTimeout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Output {
    byte: u8,
    source: Source,
}

/// A controller command waiting for its data byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Parameter {
    CommandByte,
    Ram,
    OutputPort,
    KeyboardOutput,
    AuxOutput,
    Aux,
}

/// The controller's whole state, keyboard included: a plain value, for
/// snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct I8042State {
    command_byte: u8,
    output_port: u8,
    /// The byte the guest reads next at the data port.
    output: Option<Output>,
    /// A keyboard byte a controller reply pushed out of the output
    /// buffer; it comes back once the reply is read.
    held: Option<Output>,
    /// What a read of an empty data port gives: the last byte again.
    last_read: u8,
    last_write_was_command: bool,
    parameter: Option<Parameter>,
    /// Translation saw the keyboard's break prefix: the next code is a
    /// release.
    break_prefix: bool,
    /// The level of IRQ 1 last time it was looked at; the interrupt is
    /// sent on each rise.
    irq_level: bool,
    keyboard: Keyboard,
}

impl Default for I8042State {
    fn default() -> Self {
        I8042State {
            command_byte: command_byte::POWER_ON,
            output_port: OUTPUT_PORT_POWER_ON,
            output: None,
            held: None,
            last_read: 0,
            last_write_was_command: false,
            parameter: None,
            break_prefix: false,
            irq_level: false,
            keyboard: Keyboard::new(),
        }
    }
}

/// An i8042 with a PS/2 keyboard; its reset line fires `R`, its keyboard
/// interrupt (IRQ 1) `K`.
pub struct I8042<R: Trigger, K: Trigger> {
    reset: R,
    keyboard_irq: K,
    state: I8042State,
}

impl I8042State {
    /// What is wrong with a state read from a snapshot, if anything.
    pub(super) fn invalid(&self) -> Option<String> {
        self.keyboard.invalid()
    }

    /// The keyboard behind the controller.
    pub fn keyboard(&self) -> &Keyboard {
        &self.keyboard
    }
}

impl<R: Trigger, K: Trigger> I8042<R, K> {
    /// A controller as the firmware would leave it (see
    /// [`command_byte::POWER_ON`]).
    pub fn new(reset: R, keyboard_irq: K) -> Self {
        Self::from_state(reset, keyboard_irq, I8042State::default())
    }

    /// A controller that goes on from `state`.
    pub fn from_state(reset: R, keyboard_irq: K, state: I8042State) -> Self {
        I8042 {
            reset,
            keyboard_irq,
            state,
        }
    }

    /// The controller's state, to save.
    pub fn state(&self) -> &I8042State {
        &self.state
    }

    /// Presses and releases Ctrl, Alt and Delete on the keyboard: the
    /// guest reads them one byte per IRQ 1, in the keyboard's scan code
    /// set, translated to set 1 if the command byte says so.
    pub fn send_ctrl_alt_del(&mut self) -> Result<(), KeyboardError> {
        self.state.keyboard.type_keys(&CTRL_ALT_DEL)?;
        self.settle();
        Ok(())
    }

    fn status(&self) -> u8 {
        let s = &self.state;
        let mut status = status::UNLOCKED;
        if s.command_byte & command_byte::SYSTEM != 0 {
            status |= status::SYSTEM;
        }
        if s.last_write_was_command {
            status |= status::COMMAND;
        }
        if let Some(output) = s.output {
            status |= status::OUTPUT_FULL;
            match output.source {
                Source::Aux => status |= status::AUX_DATA,
                Source::AuxTimeout => status |= status::AUX_DATA | status::TIMEOUT,
                Source::Controller | Source::Keyboard => {}
            }
        }
        status
    }

    fn read_data(&mut self) -> u8 {
        if let Some(output) = self.state.output.take() {
            self.state.last_read = output.byte;
        }
        self.settle();
        self.state.last_read
    }

    fn write_command(&mut self, byte: u8) {
        self.state.last_write_was_command = true;
        // A new command abandons one still waiting for its data byte.
        self.state.parameter = None;
        let cb = self.state.command_byte;
        match byte {
            command::READ_COMMAND_BYTE => self.reply(cb, Source::Controller),
            // Nothing is kept in the rest of the RAM.
            0x21..=command::READ_RAM_LAST => self.reply(0, Source::Controller),
            command::WRITE_COMMAND_BYTE => self.state.parameter = Some(Parameter::CommandByte),
            0x61..=command::WRITE_RAM_LAST => self.state.parameter = Some(Parameter::Ram),
            command::DISABLE_AUX => self.state.command_byte = cb | command_byte::AUX_DISABLED,
            command::ENABLE_AUX => self.state.command_byte = cb & !command_byte::AUX_DISABLED,
            // The port's lines are fine; there is just nothing on them.
            command::TEST_AUX => self.reply(INTERFACE_TEST_PASSED, Source::Controller),
            command::SELF_TEST => {
                self.state.command_byte = cb | command_byte::SYSTEM;
                self.reply(SELF_TEST_PASSED, Source::Controller);
            }
            command::TEST_KEYBOARD => self.reply(INTERFACE_TEST_PASSED, Source::Controller),
            command::DISABLE_KEYBOARD => {
                self.state.command_byte = cb | command_byte::KEYBOARD_DISABLED;
            }
            command::ENABLE_KEYBOARD => {
                self.state.command_byte = cb & !command_byte::KEYBOARD_DISABLED;
                self.settle();
            }
            command::READ_OUTPUT_PORT => self.reply(self.state.output_port, Source::Controller),
            command::WRITE_OUTPUT_PORT => self.state.parameter = Some(Parameter::OutputPort),
            command::WRITE_KEYBOARD_OUTPUT => {
                self.state.parameter = Some(Parameter::KeyboardOutput);
            }
            command::WRITE_AUX_OUTPUT => self.state.parameter = Some(Parameter::AuxOutput),
            command::WRITE_AUX => self.state.parameter = Some(Parameter::Aux),
            command::PULSE_FIRST.. if byte & RESET_LINE == 0 => self.pulse_reset(),
            // Unknown commands, and pulses of lines other than reset
            // (Linux's 0xff "null command"), do nothing.
            _ => {}
        }
    }

    fn write_data(&mut self, byte: u8) {
        self.state.last_write_was_command = false;
        match self.state.parameter.take() {
            Some(Parameter::CommandByte) => {
                self.state.command_byte = byte;
                // The new byte may enable the keyboard or its interrupt.
                self.settle();
            }
            Some(Parameter::Ram) => {}
            Some(Parameter::OutputPort) => {
                self.state.output_port = byte;
                if byte & RESET_LINE == 0 {
                    self.pulse_reset();
                }
            }
            Some(Parameter::KeyboardOutput) => self.reply(byte, Source::Keyboard),
            Some(Parameter::AuxOutput) => self.reply(byte, Source::Aux),
            Some(Parameter::Aux) => self.reply(NO_AUX_DEVICE, Source::AuxTimeout),
            None => {
                self.state.keyboard.receive(byte);
                // The keyboard dropped what it had not sent, a release's
                // code after its prefix included.
                self.state.break_prefix = false;
                self.settle();
            }
        }
    }

    fn pulse_reset(&mut self) {
        // A failed reset trigger leaves the guest running; it will try
        // again or fall back to another reset method.
        let _ = self.reset.trigger();
    }

    /// Puts a reply in the output buffer. A keyboard byte there waits
    /// until the reply is read, and is not lost.
    fn reply(&mut self, byte: u8, source: Source) {
        let displaced = self.state.output.replace(Output { byte, source });
        if let Some(
            displaced @ Output {
                source: Source::Keyboard,
                ..
            },
        ) = displaced
        {
            self.state.held.get_or_insert(displaced);
        }
        self.settle();
    }

    /// Refills an empty output buffer and raises IRQ 1 if its level rose.
    fn settle(&mut self) {
        // Emptied by a read: the line drops before the next byte raises
        // it again, so that each byte gets its own interrupt.
        self.sync_irq();
        if self.state.output.is_none() {
            self.state.output = match self.state.held.take() {
                Some(held) => Some(held),
                None => self.next_keyboard_byte(),
            };
        }
        self.sync_irq();
    }

    /// The keyboard's next byte, translated to set 1 if the command byte
    /// asks for it; none while the keyboard is disabled.
    fn next_keyboard_byte(&mut self) -> Option<Output> {
        let s = &mut self.state;
        if s.command_byte & command_byte::KEYBOARD_DISABLED != 0 {
            return None;
        }
        loop {
            let byte = s.keyboard.next_byte()?;
            if s.command_byte & command_byte::TRANSLATE == 0 {
                return Some(Output {
                    byte,
                    source: Source::Keyboard,
                });
            }
            // In set 1 a release is one byte: the prefix becomes bit 7 of
            // the code after it.
            if byte == BREAK_PREFIX {
                s.break_prefix = true;
                continue;
            }
            let mut translated = set2_to_set1(byte);
            if std::mem::take(&mut s.break_prefix) {
                translated |= 0x80;
            }
            return Some(Output {
                byte: translated,
                source: Source::Keyboard,
            });
        }
    }

    fn sync_irq(&mut self) {
        let s = &mut self.state;
        let level = s.command_byte & command_byte::KEYBOARD_INTERRUPT != 0
            && s.output
                .is_some_and(|o| matches!(o.source, Source::Controller | Source::Keyboard));
        if level && !s.irq_level {
            // A lost interrupt leaves the byte for the guest's next poll.
            let _ = self.keyboard_irq.trigger();
        }
        s.irq_level = level;
    }
}

impl<R: Trigger + Send, K: Trigger + Send> BusDevice for I8042<R, K> {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (offset, data) {
            (DATA_OFFSET, [byte]) => *byte = self.read_data(),
            (COMMAND_OFFSET, [byte]) => *byte = self.status(),
            // Ports 0x61-0x63 belong to other chips of a PC.
            (_, [byte]) => *byte = 0,
            (_, data) => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match (offset, data) {
            (DATA_OFFSET, [byte]) => self.write_data(*byte),
            (COMMAND_OFFSET, [byte]) => self.write_command(*byte),
            _ => {}
        }
    }
}
