//! virtio-mmio (virtio 1.2, section 4.2), version 2 register layout.

use std::sync::Arc;

use devices::BusDevice;
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;

use super::core::TransportCore;
use crate::{GuestMemoryMmap, IrqTrigger, VirtioDevice, VirtioInterrupt};

mod persist;
pub use persist::{MmioEdges, MmioState};

/// Bytes of MMIO space each device takes.
pub const MMIO_SIZE: u64 = 0x1000;
/// Offset of QueueNotify, where ioeventfds catch the driver's kicks.
pub const QUEUE_NOTIFY_OFFSET: u64 = 0x050;
/// Offset of InterruptACK, where an ioeventfd catches the driver's acks
/// (reading InterruptStatus clears it, see [`IrqTrigger::take_status`]).
pub const INTERRUPT_ACK_OFFSET: u64 = 0x064;

const MAGIC_VALUE: u32 = 0x7472_6976; // "virt"
const VERSION: u32 = 2;
const VENDOR_ID: u32 = 0x4d53_5450; // "PTSM"
const CONFIG_SPACE: u64 = 0x100;

mod reg {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = super::QUEUE_NOTIFY_OFFSET;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = super::INTERRUPT_ACK_OFFSET;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
}

/// The registers of one virtio-mmio device, in front of the device.
pub struct MmioTransport {
    core: TransportCore,
    interrupt: Arc<IrqTrigger>,
    /// The eventfd KVM signals on the driver's acks, kept with the device
    /// it belongs to (nothing reads it: see [`IrqTrigger::take_status`]).
    ack_evt: Option<EventFd>,
    queue_select: u32,
    device_features_select: u32,
    driver_features_select: u32,
    config_generation: u32,
}

impl MmioTransport {
    /// The transport-independent part, for what all transports share.
    pub(super) fn core(&self) -> &TransportCore {
        &self.core
    }

    /// `queue_evts[i]` is signalled when the driver kicks queue `i` (the
    /// VMM also registers them as ioeventfds on QueueNotify).
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        interrupt: Arc<IrqTrigger>,
        queue_evts: Vec<EventFd>,
    ) -> Self {
        MmioTransport {
            core: TransportCore::new(device, mem, queue_evts),
            interrupt,
            ack_evt: None,
            queue_select: 0,
            device_features_select: 0,
            driver_features_select: 0,
            config_generation: 0,
        }
    }

    /// Keeps `evt`, the ioeventfd the VMM registered on InterruptACK.
    pub fn with_ack_eventfd(mut self, evt: EventFd) -> Self {
        self.ack_evt = Some(evt);
        self
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        let queue = self.core.queue(self.queue_select);
        match offset {
            reg::MAGIC_VALUE => MAGIC_VALUE,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.core.device().device_type(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => self.core.device_features_page(self.device_features_select),
            reg::QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready())),
            reg::INTERRUPT_STATUS => self.interrupt.take_status(),
            reg::STATUS => self.core.status(),
            reg::CONFIG_GENERATION => self
                .config_generation
                .wrapping_add(self.core.device().config_generation()),
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        let queue = self.queue_select;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_select = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_select = value,
            reg::DRIVER_FEATURES => self
                .core
                .set_driver_features_page(self.driver_features_select, value),
            reg::QUEUE_SEL => self.queue_select = value,
            reg::QUEUE_NUM => self.with_queue(|q| {
                // `u16::MAX` is over any max size: the queue refuses it.
                q.set_size(u16::try_from(value).unwrap_or(u16::MAX))
            }),
            reg::QUEUE_READY => self.with_queue(|q| q.set_ready(value == 1)),
            reg::QUEUE_DESC_LOW => self.with_queue(|q| q.set_desc_table_address(Some(value), None)),
            reg::QUEUE_DESC_HIGH => {
                self.with_queue(|q| q.set_desc_table_address(None, Some(value)))
            }
            reg::QUEUE_DRIVER_LOW => {
                self.with_queue(|q| q.set_avail_ring_address(Some(value), None))
            }
            reg::QUEUE_DRIVER_HIGH => {
                self.with_queue(|q| q.set_avail_ring_address(None, Some(value)))
            }
            reg::QUEUE_DEVICE_LOW => {
                self.with_queue(|q| q.set_used_ring_address(Some(value), None))
            }
            reg::QUEUE_DEVICE_HIGH => {
                self.with_queue(|q| q.set_used_ring_address(None, Some(value)))
            }
            reg::QUEUE_NOTIFY => self.core.notify(value),
            reg::INTERRUPT_ACK => self.interrupt.ack(value),
            reg::STATUS => {
                let interrupt: Arc<dyn VirtioInterrupt> = self.interrupt.clone();
                if self.core.set_status(value, &interrupt) {
                    self.interrupt.ack(u32::MAX);
                    self.queue_select = 0;
                }
            }
            _ => tracing::debug!(
                offset,
                queue,
                value,
                "write to an unknown or read-only virtio-mmio register"
            ),
        }
    }

    /// Changes the selected queue, while the driver may still configure it.
    fn with_queue(&mut self, f: impl FnOnce(&mut Queue)) {
        if let Some(q) = self.core.configurable_queue(self.queue_select) {
            f(q);
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_SPACE {
            self.core.device().read_config(offset - CONFIG_SPACE, data);
            return;
        }
        match <&mut [u8; 4]>::try_from(&mut *data) {
            Ok(word) if offset.is_multiple_of(4) => {
                *word = self.read_register(offset).to_le_bytes()
            }
            _ => data.fill(0),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= CONFIG_SPACE {
            if !self.core.failed() {
                self.core
                    .device_mut()
                    .write_config(offset - CONFIG_SPACE, data);
                self.config_generation = self.config_generation.wrapping_add(1);
            }
            return;
        }
        if let (Ok(word), true) = (<[u8; 4]>::try_from(data), offset.is_multiple_of(4)) {
            self.write_register(offset, u32::from_le_bytes(word));
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;
    use crate::transport::core::status;
    use crate::{features, ActivateContext, ActivateError};
    use std::sync::Mutex;
    use vm_memory::GuestAddress;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    #[derive(Default)]
    struct Seen {
        acked: u64,
        activations: usize,
        resets: usize,
        config_writes: Vec<(u64, Vec<u8>)>,
        /// The device's own configuration changes.
        generation: u32,
    }

    struct FakeDevice(Arc<Mutex<Seen>>);

    impl VirtioDevice for FakeDevice {
        fn device_type(&self) -> u32 {
            crate::device_type::RNG
        }
        fn queue_max_sizes(&self) -> &[u16] {
            &[16, 8]
        }
        fn avail_features(&self) -> u64 {
            1 << 3
        }
        fn set_acked_features(&mut self, features: u64) {
            self.0.lock().unwrap().acked = features;
        }
        fn read_config(&self, offset: u64, data: &mut [u8]) {
            crate::device::read_config_bytes(&[0xa, 0xb, 0xc], offset, data);
        }
        fn write_config(&mut self, offset: u64, data: &[u8]) {
            self.0
                .lock()
                .unwrap()
                .config_writes
                .push((offset, data.to_vec()));
        }
        fn config_generation(&self) -> u32 {
            self.0.lock().unwrap().generation
        }
        fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
            assert_eq!(ctx.queues.len(), 2);
            self.0.lock().unwrap().activations += 1;
            Ok(())
        }
        fn reset(&mut self) {
            self.0.lock().unwrap().resets += 1;
        }

        fn worker(&self) -> Option<&crate::Worker> {
            None
        }
        fn save(&self) -> Result<crate::SavedDevice, crate::SaveError> {
            Ok(crate::SavedDevice::default())
        }
        fn restore_state(
            &mut self,
            state: Option<&crate::DeviceState>,
        ) -> Result<(), crate::DeviceStateError> {
            crate::expect_no_state("fake", state)
        }
    }

    fn transport() -> (MmioTransport, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
        let evts = (0..2)
            .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
            .collect();
        (
            MmioTransport::new(Box::new(FakeDevice(seen.clone())), mem, irq, evts),
            seen,
        )
    }

    fn read(t: &mut MmioTransport, offset: u64) -> u32 {
        let mut data = [0u8; 4];
        t.read(offset, &mut data);
        u32::from_le_bytes(data)
    }

    fn write(t: &mut MmioTransport, offset: u64, value: u32) {
        t.write(offset, &value.to_le_bytes());
    }

    /// Walks the driver's initialization sequence with `features`.
    fn negotiate(t: &mut MmioTransport, features: u64) -> u32 {
        write(t, reg::STATUS, status::ACKNOWLEDGE);
        write(t, reg::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        write(t, reg::DRIVER_FEATURES_SEL, 0);
        write(t, reg::DRIVER_FEATURES, features as u32);
        write(t, reg::DRIVER_FEATURES_SEL, 1);
        write(t, reg::DRIVER_FEATURES, (features >> 32) as u32);
        write(
            t,
            reg::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        read(t, reg::STATUS)
    }

    fn set_up_queue(t: &mut MmioTransport, index: u32, size: u32, base: u32) {
        write(t, reg::QUEUE_SEL, index);
        write(t, reg::QUEUE_NUM, size);
        write(t, reg::QUEUE_DESC_LOW, base);
        write(t, reg::QUEUE_DRIVER_LOW, base + 0x1000);
        write(t, reg::QUEUE_DEVICE_LOW, base + 0x2000);
        write(t, reg::QUEUE_READY, 1);
    }

    #[test]
    fn identifies_itself() {
        let (mut t, _) = transport();
        assert_eq!(read(&mut t, reg::MAGIC_VALUE), MAGIC_VALUE);
        assert_eq!(read(&mut t, reg::VERSION), 2);
        assert_eq!(read(&mut t, reg::DEVICE_ID), crate::device_type::RNG);
        write(&mut t, reg::DEVICE_FEATURES_SEL, 1);
        assert_eq!(
            read(&mut t, reg::DEVICE_FEATURES),
            1,
            "VERSION_1 in the high word"
        );
        write(&mut t, reg::DEVICE_FEATURES_SEL, 0);
        assert_eq!(read(&mut t, reg::DEVICE_FEATURES), 1 << 3);
        write(&mut t, reg::QUEUE_SEL, 1);
        assert_eq!(read(&mut t, reg::QUEUE_NUM_MAX), 8);
        write(&mut t, reg::QUEUE_SEL, 7);
        assert_eq!(read(&mut t, reg::QUEUE_NUM_MAX), 0, "no such queue");
    }

    #[test]
    fn full_initialization_activates_the_device() {
        let (mut t, seen) = transport();
        let s = negotiate(&mut t, features::VERSION_1 | (1 << 3));
        assert_ne!(s & status::FEATURES_OK, 0);
        assert_eq!(seen.lock().unwrap().acked, features::VERSION_1 | (1 << 3));
        set_up_queue(&mut t, 0, 16, 0x10000);
        set_up_queue(&mut t, 1, 8, 0x20000);
        write(&mut t, reg::STATUS, s | status::DRIVER_OK);
        assert_eq!(seen.lock().unwrap().activations, 1);
        assert_eq!(read(&mut t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
        // Queue registers are frozen once the device runs.
        write(&mut t, reg::QUEUE_SEL, 0);
        write(&mut t, reg::QUEUE_NUM, 4);
        assert_eq!(t.core.queue(0).unwrap().size(), 16);
        write(&mut t, reg::STATUS, 0);
        assert_eq!(seen.lock().unwrap().resets, 1);
        assert_eq!(read(&mut t, reg::STATUS), 0);
    }

    #[test]
    fn unoffered_features_or_no_version_1_are_refused() {
        let (mut t, _) = transport();
        let s = negotiate(&mut t, features::VERSION_1 | (1 << 5));
        assert_eq!(s & status::FEATURES_OK, 0);
        write(&mut t, reg::STATUS, 0);
        let s = negotiate(&mut t, 1 << 3);
        assert_eq!(s & status::FEATURES_OK, 0);
    }

    #[test]
    fn queue_outside_memory_fails_activation_without_panic() {
        let (mut t, seen) = transport();
        let s = negotiate(&mut t, features::VERSION_1);
        set_up_queue(&mut t, 0, 16, 0xfff0_0000);
        write(&mut t, reg::STATUS, s | status::DRIVER_OK);
        assert_eq!(seen.lock().unwrap().activations, 0);
        assert_ne!(read(&mut t, reg::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    }

    #[test]
    fn config_space_and_odd_accesses() {
        let (mut t, seen) = transport();
        let mut b = [0u8; 2];
        t.read(CONFIG_SPACE + 1, &mut b);
        assert_eq!(b, [0xb, 0xc]);
        t.write(CONFIG_SPACE + 2, &[9]);
        assert_eq!(seen.lock().unwrap().config_writes, vec![(2, vec![9])]);
        assert_eq!(read(&mut t, reg::CONFIG_GENERATION), 1);
        // The device changed its configuration (a new disk capacity).
        seen.lock().unwrap().generation = 2;
        assert_eq!(read(&mut t, reg::CONFIG_GENERATION), 3);
        // Unaligned or narrow register accesses are ignored, never a panic.
        let mut one = [0xffu8; 1];
        t.read(reg::MAGIC_VALUE, &mut one);
        assert_eq!(one, [0]);
        t.write(reg::STATUS + 1, &[1, 2, 3, 4]);
        t.write(reg::STATUS, &[1]);
        assert_eq!(read(&mut t, reg::STATUS), 0);
    }

    #[test]
    fn notify_signals_the_queue_eventfd() {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        let irq = Arc::new(IrqTrigger::new(EventFd::new(EFD_NONBLOCK).unwrap()));
        let evts: Vec<EventFd> = (0..2)
            .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
            .collect();
        let kick = evts[1].try_clone().unwrap();
        let mut t = MmioTransport::new(Box::new(FakeDevice(seen)), mem, irq, evts);
        write(&mut t, reg::QUEUE_NOTIFY, 1);
        assert_eq!(kick.read().unwrap(), 1);
        write(&mut t, reg::QUEUE_NOTIFY, 99);
    }

    #[test]
    fn interrupt_status_reads_clear_and_acks_still_work() {
        let (mut t, _) = transport();
        let irq = t.interrupt.clone();
        irq.signal_used_queue(0);
        irq.signal_config_change();
        // The driver reads, then acks what it read (KVM takes the ack).
        assert_eq!(read(&mut t, reg::INTERRUPT_STATUS), 3);
        assert_eq!(read(&mut t, reg::INTERRUPT_STATUS), 0);
        // An ack that does reach the transport clears only its bits.
        irq.signal_used_queue(1);
        irq.signal_config_change();
        write(&mut t, reg::INTERRUPT_ACK, 1);
        assert_eq!(read(&mut t, reg::INTERRUPT_STATUS), 2);
    }
}
