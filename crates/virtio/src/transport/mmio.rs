//! virtio-mmio (virtio 1.2, section 4.2), version 2 register layout.

use std::sync::Arc;

use devices::BusDevice;
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;

use crate::device::ActivateContext;
use crate::{features, GuestMemoryMmap, IrqTrigger, VirtioDevice, VirtioInterrupt};

/// Bytes of MMIO space each device takes.
pub const MMIO_SIZE: u64 = 0x1000;
/// Offset of QueueNotify, where ioeventfds catch the driver's kicks.
pub const QUEUE_NOTIFY_OFFSET: u64 = 0x050;

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
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
}

/// Device status bits (virtio 1.2, section 2.1).
mod status {
    #[cfg(test)]
    pub const ACKNOWLEDGE: u32 = 1;
    #[cfg(test)]
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    pub const FAILED: u32 = 0x80;
}

/// The registers of one virtio-mmio device, in front of the device.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMemoryMmap,
    interrupt: Arc<IrqTrigger>,
    queues: Vec<Queue>,
    queue_evts: Vec<EventFd>,
    queue_select: u32,
    device_features_select: u32,
    driver_features_select: u32,
    driver_features: u64,
    status: u32,
    config_generation: u32,
    activated: bool,
}

impl MmioTransport {
    /// `queue_evts[i]` is signalled when the driver kicks queue `i` (the
    /// VMM also registers them as ioeventfds on QueueNotify).
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        interrupt: Arc<IrqTrigger>,
        queue_evts: Vec<EventFd>,
    ) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            .filter_map(|&max| Queue::new(max).ok())
            .collect();
        MmioTransport {
            device,
            mem,
            interrupt,
            queues,
            queue_evts,
            queue_select: 0,
            device_features_select: 0,
            driver_features_select: 0,
            driver_features: 0,
            status: 0,
            config_generation: 0,
            activated: false,
        }
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        let i = usize::try_from(self.queue_select).ok()?;
        self.queues.get_mut(i)
    }

    fn device_features(&self) -> u64 {
        self.device.avail_features() | features::VERSION_1
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        let half = |value: u64, select: u32| match select {
            0 => (value & 0xffff_ffff) as u32,
            1 => (value >> 32) as u32,
            _ => 0,
        };
        match offset {
            reg::MAGIC_VALUE => MAGIC_VALUE,
            reg::VERSION => VERSION,
            reg::DEVICE_ID => self.device.device_type(),
            reg::VENDOR_ID => VENDOR_ID,
            reg::DEVICE_FEATURES => half(self.device_features(), self.device_features_select),
            reg::QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| u32::from(q.max_size())),
            reg::QUEUE_READY => self.selected_queue().map_or(0, |q| u32::from(q.ready())),
            reg::INTERRUPT_STATUS => self.interrupt.status(),
            reg::STATUS => self.status,
            reg::CONFIG_GENERATION => self.config_generation,
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        let configurable = !self.activated && self.status & status::FEATURES_OK != 0;
        match offset {
            reg::DEVICE_FEATURES_SEL => self.device_features_select = value,
            reg::DRIVER_FEATURES_SEL => self.driver_features_select = value,
            reg::DRIVER_FEATURES if self.status & status::FEATURES_OK == 0 => {
                match self.driver_features_select {
                    0 => {
                        self.driver_features =
                            (self.driver_features & !0xffff_ffff) | u64::from(value)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
                    }
                    _ => {}
                }
            }
            reg::QUEUE_SEL => self.queue_select = value,
            reg::QUEUE_NUM if configurable => {
                if let Some(q) = self.selected_queue() {
                    // `u16::MAX` is over any max size: the queue refuses it.
                    q.set_size(u16::try_from(value).unwrap_or(u16::MAX));
                }
            }
            reg::QUEUE_READY if configurable => {
                if let Some(q) = self.selected_queue() {
                    q.set_ready(value == 1);
                }
            }
            reg::QUEUE_DESC_LOW if configurable => {
                self.with_queue(|q| q.set_desc_table_address(Some(value), None))
            }
            reg::QUEUE_DESC_HIGH if configurable => {
                self.with_queue(|q| q.set_desc_table_address(None, Some(value)))
            }
            reg::QUEUE_DRIVER_LOW if configurable => {
                self.with_queue(|q| q.set_avail_ring_address(Some(value), None))
            }
            reg::QUEUE_DRIVER_HIGH if configurable => {
                self.with_queue(|q| q.set_avail_ring_address(None, Some(value)))
            }
            reg::QUEUE_DEVICE_LOW if configurable => {
                self.with_queue(|q| q.set_used_ring_address(Some(value), None))
            }
            reg::QUEUE_DEVICE_HIGH if configurable => {
                self.with_queue(|q| q.set_used_ring_address(None, Some(value)))
            }
            reg::QUEUE_NOTIFY => self.notify(value),
            reg::INTERRUPT_ACK => self.interrupt.ack(value),
            reg::STATUS => self.set_status(value),
            _ => tracing::debug!(
                offset,
                value,
                "write to an unknown or read-only virtio-mmio register"
            ),
        }
    }

    fn with_queue(&mut self, f: impl FnOnce(&mut Queue)) {
        if let Some(q) = self.selected_queue() {
            f(q);
        }
    }

    /// A kick that no ioeventfd caught (or before they were registered).
    fn notify(&mut self, queue: u32) {
        let evt = usize::try_from(queue)
            .ok()
            .and_then(|i| self.queue_evts.get(i));
        if let Some(evt) = evt {
            let _ = evt.write(1);
        }
    }

    fn set_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let added = value & !self.status;
        if added & status::FEATURES_OK != 0 && !self.features_acceptable() {
            // Leaving FEATURES_OK clear tells the driver we refuse them.
            self.status = value & !status::FEATURES_OK;
            return;
        }
        if added & status::FEATURES_OK != 0 {
            self.device.set_acked_features(self.driver_features);
            let event_idx = self.driver_features & features::RING_EVENT_IDX != 0;
            for q in &mut self.queues {
                q.set_event_idx(event_idx);
            }
        }
        self.status = value;
        if added & status::DRIVER_OK != 0 && value & status::FEATURES_OK != 0 {
            self.activate();
        }
    }

    fn features_acceptable(&self) -> bool {
        let offered = self.device_features();
        self.driver_features & !offered == 0 && self.driver_features & features::VERSION_1 != 0
    }

    fn activate(&mut self) {
        let ready_and_valid = self
            .queues
            .iter()
            .all(|q| !q.ready() || q.is_valid(&self.mem));
        let evts: std::io::Result<Vec<EventFd>> =
            self.queue_evts.iter().map(EventFd::try_clone).collect();
        // The device gets its own copies of the queues; the transport's stay
        // as the driver configured them, for the next reset.
        let queues: Result<Vec<Queue>, _> = self
            .queues
            .iter()
            .map(|q| Queue::try_from(q.state()))
            .collect();
        let result = match (ready_and_valid, evts, queues) {
            (true, Ok(queue_evts), Ok(queues)) => self.device.activate(ActivateContext {
                mem: self.mem.clone(),
                interrupt: self.interrupt.clone(),
                queues,
                queue_evts,
            }),
            (false, _, _) => Err(crate::ActivateError::Device(
                "a ready queue is outside guest memory".into(),
            )),
            (_, Err(e), _) => Err(crate::ActivateError::Worker(e)),
            (_, _, Err(e)) => Err(crate::ActivateError::Device(format!("invalid queue: {e}"))),
        };
        match result {
            Ok(()) => self.activated = true,
            Err(e) => {
                tracing::warn!(
                    device = self.device.device_type(),
                    "virtio device failed to start: {e}"
                );
                self.status |= status::DEVICE_NEEDS_RESET;
                self.interrupt.signal_config_change();
            }
        }
    }

    fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.interrupt.ack(u32::MAX);
        self.status = 0;
        self.driver_features = 0;
        self.queue_select = 0;
        self.activated = false;
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        if offset >= CONFIG_SPACE {
            self.device.read_config(offset - CONFIG_SPACE, data);
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
            if self.status & status::FAILED == 0 {
                self.device.write_config(offset - CONFIG_SPACE, data);
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
    use crate::ActivateError;
    use std::sync::Mutex;
    use vm_memory::GuestAddress;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    #[derive(Default)]
    struct Seen {
        acked: u64,
        activations: usize,
        resets: usize,
        config_writes: Vec<(u64, Vec<u8>)>,
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
        fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
            assert_eq!(ctx.queues.len(), 2);
            self.0.lock().unwrap().activations += 1;
            Ok(())
        }
        fn reset(&mut self) {
            self.0.lock().unwrap().resets += 1;
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
        assert_eq!(t.queues[0].size(), 16);
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
        let (mut t, _) = transport();
        write(&mut t, reg::QUEUE_NOTIFY, 1);
        assert_eq!(t.queue_evts[1].read().unwrap(), 1);
        write(&mut t, reg::QUEUE_NOTIFY, 99);
    }
}
