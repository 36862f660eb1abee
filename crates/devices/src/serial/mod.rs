//! COM port: a 16550A UART from `vm-superio`, on the I/O-port bus.

use std::io::Write;
use std::sync::Arc;

use metrics::UartMetrics;
use vm_superio::serial::SerialEvents;
use vm_superio::{Serial, Trigger};

use crate::bus::BusDevice;

mod persist;

pub use persist::{UartEdges, UartState};

/// Number of I/O ports a 16550 occupies.
pub const SERIAL_PORT_LEN: u64 = 8;

/// The events the UART reports, counted in its metrics on the way to
/// the events the device was made with.
pub struct CountedEvents<EV> {
    events: EV,
    metrics: Arc<UartMetrics>,
}

impl<EV: SerialEvents> SerialEvents for CountedEvents<EV> {
    fn buffer_read(&self) {
        self.metrics.read_count.inc();
        self.events.buffer_read();
    }

    fn out_byte(&self) {
        self.metrics.write_count.inc();
        self.events.out_byte();
    }

    fn tx_lost_byte(&self) {
        self.metrics.missed_write_count.inc();
        self.events.tx_lost_byte();
    }

    fn in_buffer_empty(&self) {
        self.events.in_buffer_empty();
    }
}

/// A 16550 UART whose interrupt line is `T` and whose output goes to `W`.
pub struct SerialDevice<T: Trigger, EV: SerialEvents, W: Write> {
    uart: Serial<T, CountedEvents<EV>, W>,
    metrics: Arc<UartMetrics>,
}

impl<T: Trigger, EV: SerialEvents, W: Write> SerialDevice<T, EV, W> {
    /// A UART that raises `irq`, reports to `events` and writes to `out`.
    pub fn new(irq: T, events: EV, out: W) -> Self {
        Self::with_metrics(irq, events, out, Arc::default())
    }

    /// [`SerialDevice::new`], counting in `metrics`.
    pub fn with_metrics(irq: T, events: EV, out: W, metrics: Arc<UartMetrics>) -> Self {
        let events = CountedEvents {
            events,
            metrics: metrics.clone(),
        };
        SerialDevice {
            uart: Serial::with_events(irq, events, out),
            metrics,
        }
    }

    /// What the UART counted.
    pub fn metrics(&self) -> &UartMetrics {
        &self.metrics
    }

    /// Queues host input for the guest; returns how many bytes fit in the
    /// receive FIFO (the rest must be offered again later).
    pub fn enqueue_input(&mut self, input: &[u8]) -> usize {
        let room = self.uart.fifo_capacity();
        let n = room.min(input.len());
        if n == 0 {
            return 0;
        }
        match self.uart.enqueue_raw_bytes(&input[..n]) {
            Ok(queued) => queued,
            // Only the interrupt trigger can fail here, after the bytes
            // were queued; the guest will still find them by polling.
            Err(_) => n,
        }
    }

    /// Free room in the receive FIFO.
    pub fn input_capacity(&self) -> usize {
        self.uart.fifo_capacity()
    }
}

impl<T, EV, W> BusDevice for SerialDevice<T, EV, W>
where
    T: Trigger + Send,
    EV: SerialEvents + Send,
    W: Write + Send,
{
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (u8::try_from(offset), data) {
            (Ok(offset), [byte]) if u64::from(offset) < SERIAL_PORT_LEN => {
                *byte = self.uart.read(offset)
            }
            (_, data) => {
                self.metrics.missed_read_count.inc();
                data.fill(0xff)
            }
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(offset), [byte]) = (u8::try_from(offset), data) {
            // A failed write is a failed interrupt or a closed output: the
            // guest cannot act on either, so the byte is dropped.
            if self.uart.write(offset, *byte).is_err() {
                self.metrics.error_count.inc();
            }
        } else {
            self.metrics.missed_write_count.inc();
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use crate::test_utils::CountingTrigger;
    use vm_superio::serial::NoEvents;

    const THR: u64 = 0;
    const IER: u64 = 1;
    const LSR: u64 = 5;

    fn device() -> (
        SerialDevice<CountingTrigger, NoEvents, Vec<u8>>,
        CountingTrigger,
    ) {
        let irq = CountingTrigger::default();
        (SerialDevice::new(irq.clone(), NoEvents, Vec::new()), irq)
    }

    #[test]
    fn guest_output_reaches_the_writer() {
        let (mut dev, _) = device();
        for b in b"hi\n" {
            dev.write(THR, &[*b]);
        }
        assert_eq!(dev.uart.writer().as_slice(), b"hi\n");
        assert_eq!(dev.metrics().write_count.get(), 3);
    }

    #[test]
    fn host_input_is_readable_and_raises_an_interrupt_when_enabled() {
        let (mut dev, irq) = device();
        dev.write(IER, &[0x01]); // received-data interrupt
        assert_eq!(dev.enqueue_input(b"ok"), 2);
        assert!(irq.count() >= 1);
        let mut lsr = [0u8];
        dev.read(LSR, &mut lsr);
        assert_eq!(lsr[0] & 1, 1, "data ready");
        let mut byte = [0u8];
        dev.read(THR, &mut byte);
        assert_eq!(byte, [b'o']);
        assert_eq!(dev.metrics().read_count.get(), 1);
    }

    #[test]
    fn input_beyond_the_fifo_is_left_for_later() {
        let (mut dev, _) = device();
        let big = vec![b'x'; 1000];
        let taken = dev.enqueue_input(&big);
        assert!(taken > 0 && taken < big.len());
        assert_eq!(dev.input_capacity(), 0);
        assert_eq!(dev.enqueue_input(&big), 0);
    }

    #[test]
    fn wide_or_out_of_range_accesses_do_not_panic() {
        let (mut dev, _) = device();
        let mut wide = [0u8; 4];
        dev.read(0, &mut wide);
        assert_eq!(wide, [0xff; 4]);
        dev.write(0, &[1, 2]);
        let mut one = [0u8];
        dev.read(u64::MAX, &mut one);
        assert_eq!(one, [0xff]);
        assert_eq!(dev.metrics().missed_read_count.get(), 2);
        assert_eq!(dev.metrics().missed_write_count.get(), 1);
        assert_eq!(dev.metrics().write_count.get(), 0);
    }
}
