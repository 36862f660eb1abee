//! A virtio device as a PCI function: its configuration space (header,
//! virtio capabilities, MSI-X capability) and its memory BAR.

use std::sync::Arc;

use devices::pci::{PciConfiguration, PciDevice, PciError, PciHeader};
use devices::BusDevice;
use vmm_sys_util::eventfd::EventFd;

use super::common_config::CommonConfig;
use super::interrupt::PciInterrupt;
use super::layout::*;
use super::msix::Msix;
use crate::transport::core::TransportCore;
use crate::{device_type, GuestMemoryMmap, VirtioDevice};

/// PCI vendor ID of virtio devices.
const VIRTIO_VENDOR_ID: u16 = 0x1af4;
/// Modern (virtio 1.x only) devices are 0x1040 plus the device type.
const MODERN_DEVICE_ID_BASE: u16 = 0x1040;
/// Revision 1 marks a device with no legacy interface.
const MODERN_REVISION: u8 = 1;
/// Message Control bits of the MSI-X capability.
pub(super) const MSIX_ENABLE: u16 = 1 << 15;
pub(super) const MSIX_FUNCTION_MASK: u16 = 1 << 14;

/// PCI class and subclass for a virtio device type, as guests' tools show
/// them (they matter to no driver: virtio binds by vendor and device ID).
fn class_of(device: u32) -> (u8, u8) {
    match device {
        device_type::NET => (0x02, 0x00),   // Ethernet controller
        device_type::BLOCK => (0x01, 0x00), // SCSI storage controller
        _ => (0xff, 0x00),                  // unassigned class
    }
}

/// A virtio device behind its virtio-pci registers.
pub struct VirtioPciDevice {
    pub(super) core: TransportCore,
    pub(super) common: CommonConfig,
    pub(super) interrupt: Arc<PciInterrupt>,
    pub(super) config: PciConfiguration,
    /// Offset of the MSI-X capability in configuration space.
    pub(super) msix_cap: u8,
    /// Offset of the configuration-access capability (`VIRTIO_PCI_CAP_PCI_CFG`).
    pub(super) cfg_cap: u8,
}

impl VirtioPciDevice {
    /// The transport-independent part, for what all transports share.
    pub(in crate::transport) fn core(&self) -> &TransportCore {
        &self.core
    }

    /// Puts `device` behind a PCI function whose BAR 0 sits at
    /// `bar_address`. `queue_evts[i]` is signalled when the driver kicks
    /// queue `i`; `msix` needs a vector per queue plus one for
    /// configuration changes.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        queue_evts: Vec<EventFd>,
        msix: Arc<Msix>,
        bar_address: u64,
    ) -> Result<Self, PciError> {
        let queues = device.queue_max_sizes().len();
        let (config, msix_cap, cfg_cap) =
            build_config(device.device_type(), msix.vector_count(), bar_address)?;
        Ok(VirtioPciDevice {
            core: TransportCore::new(device, mem, queue_evts),
            common: CommonConfig::default(),
            interrupt: Arc::new(PciInterrupt::new(msix, queues)),
            config,
            msix_cap,
            cfg_cap,
        })
    }

    /// MSI-X vectors a device with `queues` queues needs.
    pub fn vectors_needed(queues: usize) -> usize {
        queues + 1
    }

    fn bar_read(&mut self, offset: u64, data: &mut [u8]) {
        let msix = self.interrupt.msix();
        match region(offset) {
            Some((Region::Common, at)) => self.common.read(at, data, &self.core, &self.interrupt),
            Some((Region::Isr, 0)) if data.len() == 1 => data[0] = self.interrupt.read_isr(),
            Some((Region::DeviceConfig, at)) => self.core.device().read_config(at, data),
            Some((Region::MsixTable, at)) => msix.read_table(at, data),
            Some((Region::MsixPba, at)) => msix.read_pba(at, data),
            _ => data.fill(0),
        }
    }

    fn bar_write(&mut self, offset: u64, data: &[u8]) {
        let msix = self.interrupt.msix();
        match region(offset) {
            Some((Region::Common, at)) => {
                self.common.write(at, data, &mut self.core, &self.interrupt)
            }
            Some((Region::DeviceConfig, at)) if !self.core.failed() => {
                self.core.device_mut().write_config(at, data);
                self.common.config_generation = self.common.config_generation.wrapping_add(1);
            }
            // A kick that no ioeventfd caught (or an odd width).
            Some((Region::Notify, at)) if at.is_multiple_of(u64::from(NOTIFY_MULTIPLIER)) => {
                let queue = at / u64::from(NOTIFY_MULTIPLIER);
                self.core.notify(u32::try_from(queue).unwrap_or(u32::MAX));
            }
            Some((Region::MsixTable, at)) => msix.write_table(at, data),
            _ => tracing::debug!(offset, "virtio-pci: write to nothing in the BAR"),
        }
    }

    /// The Message Control word, after the guest wrote configuration space.
    fn update_msix_control(&self) {
        let reg = usize::from(self.msix_cap) / 4;
        let control = u16::try_from(self.config.read_register(reg) >> 16).unwrap_or(0);
        self.interrupt.msix().set_control(
            control & MSIX_ENABLE != 0,
            control & MSIX_FUNCTION_MASK != 0,
        );
    }

    /// The window of the configuration-access capability: the BAR offset
    /// and width it names, when it names BAR 0 and 1, 2 or 4 bytes in it.
    fn cfg_window(&self) -> Option<(u64, usize)> {
        let cap = usize::from(self.cfg_cap) / 4;
        // `bar` is the first byte of the capability's second dword.
        let bar = self.config.read_register(cap + 1) & 0xff;
        let offset = u64::from(self.config.read_register(cap + 2));
        let len = usize::try_from(self.config.read_register(cap + 3)).ok()?;
        let fits = offset
            .checked_add(len as u64)
            .is_some_and(|end| end <= BAR_SIZE);
        (bar == u32::from(BAR_INDEX) && matches!(len, 1 | 2 | 4) && fits).then_some((offset, len))
    }

    fn cfg_data_register(&self) -> usize {
        usize::from(self.cfg_cap) / 4 + 4
    }
}

/// The configuration space of a virtio device of type `kind` with
/// `vectors` MSI-X vectors and BAR 0 at `bar_address`, as the guest first
/// sees it, with the offsets of its MSI-X and configuration-access
/// capabilities.
pub(super) fn build_config(
    kind: u32,
    vectors: u16,
    bar_address: u64,
) -> Result<(PciConfiguration, u8, u8), PciError> {
    let (class_code, subclass) = class_of(kind);
    let id = u16::try_from(kind).unwrap_or(0);
    let mut config = PciConfiguration::new(&PciHeader {
        vendor_id: VIRTIO_VENDOR_ID,
        device_id: MODERN_DEVICE_ID_BASE.saturating_add(id),
        revision: MODERN_REVISION,
        class_code,
        subclass,
        prog_if: 0,
        subsystem_vendor_id: VIRTIO_VENDOR_ID,
        subsystem_id: id,
    });
    config.add_memory_bar(usize::from(BAR_INDEX), bar_address, BAR_SIZE)?;
    let vendor = CAP_ID_VENDOR;
    config.add_capability(
        vendor,
        &virtio_cap_body(cfg_type::COMMON, COMMON_OFFSET, COMMON_LEN, &[]),
    )?;
    config.add_capability(
        vendor,
        &virtio_cap_body(
            cfg_type::NOTIFY,
            NOTIFY_OFFSET,
            NOTIFY_LEN,
            &NOTIFY_MULTIPLIER.to_le_bytes(),
        ),
    )?;
    config.add_capability(
        vendor,
        &virtio_cap_body(cfg_type::ISR, ISR_OFFSET, ISR_LEN, &[]),
    )?;
    config.add_capability(
        vendor,
        &virtio_cap_body(
            cfg_type::DEVICE,
            DEVICE_CONFIG_OFFSET,
            DEVICE_CONFIG_LEN,
            &[],
        ),
    )?;
    // The driver picks a window (bar, offset, length) and moves data
    // through `pci_cfg_data`: BAR access through config space alone.
    let cfg_cap =
        config.add_capability(vendor, &virtio_cap_body(cfg_type::PCI_CFG, 0, 0, &[0; 4]))?;
    config.set_writable(cfg_cap + 4, &[0xff])?; // bar
    config.set_writable(cfg_cap + 8, &[0xff; 8])?; // offset, length
    config.set_writable(cfg_cap + 16, &[0xff; 4])?; // pci_cfg_data
    let msix_cap = config.add_capability(CAP_ID_MSIX, &msix_cap_body(vectors))?;
    let control = (MSIX_ENABLE | MSIX_FUNCTION_MASK).to_le_bytes();
    config.set_writable(msix_cap + 2, &control)?;
    Ok((config, msix_cap, cfg_cap))
}

/// The parts of the BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    Common,
    Isr,
    DeviceConfig,
    Notify,
    MsixTable,
    MsixPba,
}

/// Which part of the BAR `offset` falls in, and the offset inside it.
fn region(offset: u64) -> Option<(Region, u64)> {
    let regions = [
        (Region::Common, COMMON_OFFSET, COMMON_LEN),
        (Region::Isr, ISR_OFFSET, ISR_LEN),
        (
            Region::DeviceConfig,
            DEVICE_CONFIG_OFFSET,
            DEVICE_CONFIG_LEN,
        ),
        (Region::Notify, NOTIFY_OFFSET, NOTIFY_LEN),
        (Region::MsixTable, MSIX_TABLE_OFFSET, MSIX_TABLE_LEN),
        (Region::MsixPba, MSIX_PBA_OFFSET, MSIX_PBA_LEN),
    ];
    regions
        .into_iter()
        .find(|&(_, start, len)| offset >= start && offset - start < len)
        .map(|(r, start, _)| (r, offset - start))
}

impl PciDevice for VirtioPciDevice {
    fn read_config_register(&mut self, reg: usize) -> u32 {
        if reg == self.cfg_data_register() {
            if let Some((offset, len)) = self.cfg_window() {
                let mut data = [0u8; 4];
                self.bar_read(offset, &mut data[..len]);
                return u32::from_le_bytes(data);
            }
        }
        self.config.read_register(reg)
    }

    fn write_config_register(&mut self, reg: usize, offset: u64, data: &[u8]) {
        self.config.write_register(reg, offset, data);
        if reg == usize::from(self.msix_cap) / 4 {
            self.update_msix_control();
        }
        if reg == self.cfg_data_register() {
            if let Some((at, len)) = self.cfg_window() {
                let value = self.config.read_register(reg).to_le_bytes();
                self.bar_write(at, &value[..len]);
            }
        }
    }
}

impl BusDevice for VirtioPciDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.bar_read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.bar_write(offset, data);
    }
}
