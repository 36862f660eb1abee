//! The virtio-pci transport driven as Linux's `virtio_pci` driver drives
//! it: capabilities found through configuration space, the common
//! configuration written through the BAR, MSI-X programmed and signalled.

#![allow(clippy::cast_possible_truncation)] // small fixed test values

use std::sync::{Arc, Mutex};

use devices::pci::PciDevice;
use devices::BusDevice;
use vm_memory::GuestAddress;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::layout::*;
use super::msix::{MsiMessage, MsiRoutes, Msix, MsixVector, NO_VECTOR};
use super::VirtioPciDevice;
use crate::transport::core::status;
use crate::{device_type, features, ActivateContext, ActivateError, GuestMemoryMmap, VirtioDevice};

const BAR: u64 = 0xd000_0000;

#[derive(Default)]
struct Seen {
    activations: usize,
    resets: usize,
    interrupt: Option<Arc<dyn crate::VirtioInterrupt>>,
    /// The device's own configuration changes.
    generation: u32,
}

struct FakeDevice(Arc<Mutex<Seen>>);

impl VirtioDevice for FakeDevice {
    fn device_type(&self) -> u32 {
        device_type::BLOCK
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &[16, 8]
    }
    fn avail_features(&self) -> u64 {
        1 << 3
    }
    fn set_acked_features(&mut self, _: u64) {}
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        crate::device::read_config_bytes(&[0xa, 0xb, 0xc, 0xd], offset, data);
    }
    fn write_config(&mut self, _: u64, _: &[u8]) {}
    fn config_generation(&self) -> u32 {
        self.0.lock().unwrap().generation
    }
    fn activate(&mut self, ctx: ActivateContext) -> Result<(), ActivateError> {
        let mut seen = self.0.lock().unwrap();
        seen.activations += 1;
        seen.interrupt = Some(ctx.interrupt);
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

#[derive(Default)]
struct Routes(Mutex<Vec<(u32, Option<MsiMessage>)>>);

impl MsiRoutes for Routes {
    fn set_msi_route(&self, gsi: u32, message: Option<MsiMessage>) -> std::io::Result<()> {
        self.0.lock().unwrap().push((gsi, message));
        Ok(())
    }
}

struct Rig {
    dev: VirtioPciDevice,
    seen: Arc<Mutex<Seen>>,
    routes: Arc<Routes>,
    /// Clones of the vectors' irqfds, to see interrupts.
    irqfds: Vec<EventFd>,
    kicks: Vec<EventFd>,
}

fn rig() -> Rig {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let routes = Arc::new(Routes::default());
    let mut vectors = Vec::new();
    let mut irqfds = Vec::new();
    for gsi in 24..24 + VirtioPciDevice::vectors_needed(2) as u32 {
        let irqfd = EventFd::new(EFD_NONBLOCK).unwrap();
        irqfds.push(irqfd.try_clone().unwrap());
        vectors.push(MsixVector { gsi, irqfd });
    }
    let kicks: Vec<EventFd> = (0..2)
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    let evts = kicks.iter().map(|e| e.try_clone().unwrap()).collect();
    let msix = Arc::new(Msix::new(vectors, routes.clone()));
    let dev =
        VirtioPciDevice::new(Box::new(FakeDevice(seen.clone())), mem, evts, msix, BAR).unwrap();
    Rig {
        dev,
        seen,
        routes,
        irqfds,
        kicks,
    }
}

impl Rig {
    fn config_byte(&mut self, offset: usize) -> u8 {
        let reg = self.dev.read_config_register(offset / 4);
        reg.to_le_bytes()[offset % 4]
    }

    fn config_word(&mut self, offset: usize) -> u32 {
        u32::from_le_bytes([0, 1, 2, 3].map(|i| self.config_byte(offset + i)))
    }

    fn write_config(&mut self, offset: usize, data: &[u8]) {
        self.dev
            .write_config_register(offset / 4, (offset % 4) as u64, data);
    }

    /// The virtio capabilities: (cfg_type, offset in config space).
    fn capabilities(&mut self) -> Vec<(u8, u8, usize)> {
        let mut caps = Vec::new();
        let mut at = usize::from(self.config_byte(0x34));
        while at != 0 && caps.len() < 16 {
            let id = self.config_byte(at);
            let kind = if id == CAP_ID_VENDOR {
                self.config_byte(at + 3)
            } else {
                0
            };
            caps.push((id, kind, at));
            at = usize::from(self.config_byte(at + 1));
        }
        caps
    }

    fn read(&mut self, offset: u64, len: usize) -> u64 {
        let mut data = [0u8; 8];
        self.dev.read(offset, &mut data[..len]);
        u64::from_le_bytes(data)
    }

    fn write(&mut self, offset: u64, len: usize, value: u64) {
        self.dev.write(offset, &value.to_le_bytes()[..len]);
    }

    /// Feature negotiation and queue setup, as `virtio_pci_modern` does it.
    fn initialize(&mut self) {
        self.write(0x14, 1, u64::from(status::ACKNOWLEDGE | status::DRIVER));
        self.write(0x08, 4, 1);
        self.write(0x0c, 4, features::VERSION_1 >> 32);
        self.write(0x08, 4, 0);
        self.write(0x0c, 4, 1 << 3);
        let s = u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
        self.write(0x14, 1, s);
        assert_eq!(self.read(0x14, 1), s, "features accepted");
        for (queue, base) in [(0u64, 0x1_0000u64), (1, 0x2_0000)] {
            self.write(0x16, 2, queue);
            self.write(0x1a, 2, queue + 1); // vector 0 is for config changes
            assert_eq!(self.read(0x1a, 2), queue + 1);
            self.write(0x20, 8, base);
            self.write(0x28, 4, base + 0x1000);
            self.write(0x2c, 4, 0);
            self.write(0x30, 4, base + 0x2000);
            self.write(0x34, 4, 0);
            self.write(0x1c, 2, 1);
        }
        self.write(0x10, 2, 0);
        self.write(0x14, 1, s | u64::from(status::DRIVER_OK));
    }

    /// MSI-X on, vector `v` unmasked with a message of its own.
    fn enable_msix(&mut self, vectors: u64) {
        let cap = self
            .capabilities()
            .iter()
            .find(|c| c.0 == CAP_ID_MSIX)
            .unwrap()
            .2;
        for v in 0..vectors {
            let entry = MSIX_TABLE_OFFSET + v * 16;
            self.write(entry, 8, 0xfee0_0000);
            self.write(entry + 8, 4, 0x40 + v);
            self.write(entry + 12, 4, 0);
        }
        self.write_config(cap + 2, &0x8000u16.to_le_bytes());
    }
}

#[test]
fn config_space_identifies_a_modern_virtio_device() {
    let mut r = rig();
    assert_eq!(r.config_word(0), 0x1042_1af4, "virtio-blk, modern ID");
    assert_eq!(r.config_byte(8), 1, "revision 1: no legacy interface");
    assert_eq!(r.config_word(0x2c), 0x0002_1af4, "subsystem: type 2");
    assert_eq!(r.config_byte(0x3d), 0, "no INTx pin");
    // 64-bit memory BAR 0 at its fixed address, and its size.
    assert_eq!(r.config_word(0x10), BAR as u32 | 0b100);
    r.write_config(0x10, &[0xff; 4]);
    assert_eq!(r.config_word(0x10) & !0xf, !(BAR_SIZE as u32 - 1));
    r.write_config(0x10, &(BAR as u32 | 0b100).to_le_bytes());
    assert_eq!(r.config_word(0x10), BAR as u32 | 0b100);
}

#[test]
fn capabilities_point_into_the_bar() {
    let mut r = rig();
    let caps = r.capabilities();
    let kinds: Vec<u8> = caps
        .iter()
        .filter(|c| c.0 == CAP_ID_VENDOR)
        .map(|c| c.1)
        .collect();
    assert_eq!(
        kinds,
        vec![
            cfg_type::COMMON,
            cfg_type::NOTIFY,
            cfg_type::ISR,
            cfg_type::DEVICE,
            cfg_type::PCI_CFG
        ]
    );
    let notify = caps.iter().find(|c| c.1 == cfg_type::NOTIFY).unwrap().2;
    assert_eq!(r.config_byte(notify + 4), 0, "in BAR 0");
    assert_eq!(r.config_word(notify + 8), NOTIFY_OFFSET as u32);
    assert_eq!(r.config_word(notify + 16), NOTIFY_MULTIPLIER);
    let msix = caps.iter().find(|c| c.0 == CAP_ID_MSIX).unwrap().2;
    let control = r.config_word(msix) >> 16;
    assert_eq!(control & 0x7ff, 2, "3 vectors: 2 queues and config");
    assert_eq!(r.config_word(msix + 4), MSIX_TABLE_OFFSET as u32);
    assert_eq!(r.config_word(msix + 8), MSIX_PBA_OFFSET as u32);
}

#[test]
fn driver_initialization_activates_the_device() {
    let mut r = rig();
    assert_eq!(r.read(0x12, 2), 2, "num_queues");
    r.write(0x16, 2, 1);
    assert_eq!(r.read(0x18, 2), 8, "queue 1's size reads its maximum");
    assert_eq!(r.read(0x1e, 2), 1, "queue 1 notifies at its own address");
    r.write(0x00, 4, 1);
    assert_eq!(r.read(0x04, 4), 1, "VERSION_1 in the high word");
    r.initialize();
    assert_eq!(r.seen.lock().unwrap().activations, 1);
    // Queue registers are frozen once the device runs.
    r.write(0x16, 2, 0);
    r.write(0x18, 2, 4);
    assert_eq!(r.read(0x18, 2), 16);
    assert_eq!(r.read(0x20, 8), 0x1_0000);
    // Reset: status 0 forgets the driver's vector choices.
    r.write(0x14, 1, 0);
    assert_eq!(r.seen.lock().unwrap().resets, 1);
    assert_eq!(r.read(0x14, 1), 0);
    assert_eq!(r.read(0x1a, 2), u64::from(NO_VECTOR));
}

#[test]
fn a_vector_the_device_lacks_reads_back_as_none() {
    let mut r = rig();
    r.write(0x16, 2, 0);
    r.write(0x1a, 2, 3);
    assert_eq!(r.read(0x1a, 2), u64::from(NO_VECTOR));
    r.write(0x10, 2, 7);
    assert_eq!(r.read(0x10, 2), u64::from(NO_VECTOR));
    r.write(0x10, 2, 2);
    assert_eq!(r.read(0x10, 2), 2);
}

#[test]
fn used_buffers_raise_the_queues_vector_through_msix() {
    let mut r = rig();
    r.initialize();
    r.enable_msix(3);
    let routes = r.routes.0.lock().unwrap().clone();
    assert!(routes.contains(&(
        26,
        Some(MsiMessage {
            address: 0xfee0_0000,
            data: 0x42
        })
    )));
    let irq = r.seen.lock().unwrap().interrupt.clone().unwrap();
    irq.signal_used_queue(1);
    assert_eq!(r.irqfds[2].read().unwrap(), 1, "queue 1 is on vector 2");
    assert!(r.irqfds[1].read().is_err(), "queue 0's vector stays quiet");
    irq.signal_config_change();
    assert_eq!(r.irqfds[0].read().unwrap(), 1);
    // ISR: both causes, cleared by the read.
    assert_eq!(r.read(ISR_OFFSET, 1), 3);
    assert_eq!(r.read(ISR_OFFSET, 1), 0);
}

#[test]
fn masked_vectors_wait_in_the_pending_bits() {
    let mut r = rig();
    r.initialize();
    r.enable_msix(3);
    let entry = MSIX_TABLE_OFFSET + 16;
    r.write(entry + 12, 4, 1); // mask vector 1 (queue 0)
    let irq = r.seen.lock().unwrap().interrupt.clone().unwrap();
    irq.signal_used_queue(0);
    assert!(r.irqfds[1].read().is_err());
    assert_eq!(r.read(MSIX_PBA_OFFSET, 8), 0b10);
    r.write(entry + 12, 4, 0);
    assert_eq!(r.irqfds[1].read().unwrap(), 1, "delivered when unmasked");
    assert_eq!(r.read(MSIX_PBA_OFFSET, 8), 0);
}

#[test]
fn notifications_and_device_config_through_the_bar() {
    let mut r = rig();
    r.write(notify_offset(1), 2, 1);
    assert_eq!(r.kicks[1].read().unwrap(), 1);
    assert!(r.kicks[0].read().is_err());
    assert_eq!(r.read(DEVICE_CONFIG_OFFSET + 1, 2), 0x0c0b);
}

#[test]
fn the_devices_own_config_changes_move_the_generation() {
    let mut r = rig();
    assert_eq!(r.read(0x15, 1), 0);
    // A new disk capacity, say; the 8-bit register wraps.
    r.seen.lock().unwrap().generation = 0x102;
    assert_eq!(r.read(0x15, 1), 2);
}

#[test]
fn the_config_access_capability_reaches_the_bar() {
    let mut r = rig();
    let cap = r
        .capabilities()
        .iter()
        .find(|c| c.1 == cfg_type::PCI_CFG)
        .unwrap()
        .2;
    r.write_config(cap + 4, &[0]);
    r.write_config(cap + 8, &0x12u32.to_le_bytes()); // num_queues
    r.write_config(cap + 12, &2u32.to_le_bytes());
    assert_eq!(r.config_word(cap + 16), 2);
    // A write through the window: select queue 1.
    r.write_config(cap + 8, &0x16u32.to_le_bytes());
    r.write_config(cap + 16, &1u32.to_le_bytes());
    assert_eq!(r.read(0x16, 2), 1);
    // A window on another BAR, past the BAR or of an odd width reads the
    // plain register.
    r.write_config(cap + 8, &0x12u32.to_le_bytes());
    r.write_config(cap + 4, &[1]);
    r.write_config(cap + 16, &0xdead_beefu32.to_le_bytes());
    assert_eq!(r.config_word(cap + 16), 0xdead_beef);
    r.write_config(cap + 4, &[0]);
    r.write_config(cap + 12, &3u32.to_le_bytes());
    assert_eq!(r.config_word(cap + 16), 0xdead_beef);
    r.write_config(cap + 12, &4u32.to_le_bytes());
    r.write_config(cap + 8, &(BAR_SIZE as u32 - 2).to_le_bytes());
    assert_eq!(r.config_word(cap + 16), 0xdead_beef);
}

#[test]
fn odd_accesses_are_ignored_without_panic() {
    let mut r = rig();
    for offset in (0..BAR_SIZE + 16).step_by(3) {
        for len in [1usize, 2, 3, 4, 8] {
            let _ = r.read(offset, len);
            r.write(offset, len, u64::MAX);
        }
    }
    for reg in 0..80 {
        let _ = r.dev.read_config_register(reg);
        r.dev.write_config_register(reg, 3, &[0xff, 0xff]);
        r.dev.write_config_register(reg, 0, &[0xff; 4]);
    }
}
