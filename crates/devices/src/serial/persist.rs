//! The 16550 in a snapshot: `vm-superio`'s register state, mirrored in a
//! serde struct of Pointsman's own (the crate's has no serde), with the
//! bytes the guest has not read yet. Its edges (IRQ 4, the events, the
//! output, the metrics) are the new machine's.

use std::io::Write;
use std::sync::Arc;

use metrics::UartMetrics;
use serde::{Deserialize, Serialize};
use snapshot::Persist;
use vm_superio::serial::{SerialEvents, SerialState};
use vm_superio::{Serial, Trigger};

use super::{CountedEvents, SerialDevice};
use crate::StateError;

/// The UART's registers and receive FIFO.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UartState {
    pub baud_divisor_low: u8,
    pub baud_divisor_high: u8,
    pub interrupt_enable: u8,
    pub interrupt_identification: u8,
    pub line_control: u8,
    pub line_status: u8,
    pub modem_control: u8,
    pub modem_status: u8,
    pub scratch: u8,
    /// Input the guest has not read yet.
    pub in_buffer: Vec<u8>,
}

impl From<SerialState> for UartState {
    fn from(s: SerialState) -> Self {
        UartState {
            baud_divisor_low: s.baud_divisor_low,
            baud_divisor_high: s.baud_divisor_high,
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.in_buffer,
        }
    }
}

impl From<&UartState> for SerialState {
    fn from(s: &UartState) -> Self {
        SerialState {
            baud_divisor_low: s.baud_divisor_low,
            baud_divisor_high: s.baud_divisor_high,
            interrupt_enable: s.interrupt_enable,
            interrupt_identification: s.interrupt_identification,
            line_control: s.line_control,
            line_status: s.line_status,
            modem_control: s.modem_control,
            modem_status: s.modem_status,
            scratch: s.scratch,
            in_buffer: s.in_buffer.clone(),
        }
    }
}

/// What a restored UART is wired to.
pub struct UartEdges<T, EV, W> {
    pub irq: T,
    pub events: EV,
    pub out: W,
    pub metrics: Arc<UartMetrics>,
}

impl<T: Trigger, EV: SerialEvents, W: Write> Persist for SerialDevice<T, EV, W> {
    type State = UartState;
    type ConstructorArgs = UartEdges<T, EV, W>;
    type Error = StateError;

    fn save(&self) -> UartState {
        self.uart.state().into()
    }

    fn restore(edges: UartEdges<T, EV, W>, state: &UartState) -> Result<Self, StateError> {
        let events = CountedEvents {
            events: edges.events,
            metrics: edges.metrics.clone(),
        };
        // Refuses an input FIFO past its 64 bytes; raises the interrupt the
        // registers say is pending.
        let uart = Serial::from_state(&state.into(), edges.irq, events, edges.out)
            .map_err(|e| StateError::new("serial port", format!("{e:?}")))?;
        Ok(SerialDevice {
            uart,
            metrics: edges.metrics,
        })
    }
}

#[cfg(test)]
mod tests {
    use snapshot::assert_round_trip;
    use vm_superio::serial::NoEvents;

    use super::*;
    use crate::bus::BusDevice;
    use crate::test_utils::CountingTrigger;

    const DATA: u64 = 0;
    const IER: u64 = 1;
    const LCR: u64 = 3;
    const LSR: u64 = 5;

    fn edges(irq: CountingTrigger) -> UartEdges<CountingTrigger, NoEvents, Vec<u8>> {
        UartEdges {
            irq,
            events: NoEvents,
            out: Vec::new(),
            metrics: Arc::default(),
        }
    }

    #[test]
    fn a_restored_uart_keeps_its_registers_and_unread_input() {
        let mut dev = SerialDevice::new(CountingTrigger::default(), NoEvents, Vec::new());
        dev.write(LCR, &[0x1b]); // 8 bits, 2 stop bits, even parity
        dev.write(IER, &[0x01]); // received-data interrupt
        assert_eq!(dev.enqueue_input(b"left"), 4);
        let irq = CountingTrigger::default();
        let mut restored = assert_round_trip(&dev, edges(irq.clone()));
        assert!(
            irq.count() >= 1,
            "the pending data interrupt is raised again"
        );
        let mut byte = [0];
        restored.read(LCR, &mut byte);
        assert_eq!(byte, [0x1b]);
        let mut got = Vec::new();
        loop {
            restored.read(LSR, &mut byte);
            if byte[0] & 1 == 0 {
                break;
            }
            restored.read(DATA, &mut byte);
            got.push(byte[0]);
        }
        assert_eq!(got, b"left");
    }

    #[test]
    fn an_input_fifo_past_its_size_is_refused() {
        let dev = SerialDevice::new(CountingTrigger::default(), NoEvents, Vec::new());
        let mut state = dev.save();
        state.in_buffer = vec![0; 65];
        let err = SerialDevice::restore(edges(CountingTrigger::default()), &state)
            .err()
            .unwrap();
        assert!(err.to_string().contains("serial port"), "{err}");
    }
}
