//! virtio devices on the PCI bus: each a function on bus 0 with one BAR
//! in the PCI window, an MSI-X vector per queue (plus one for
//! configuration changes) on GSIs past the IOAPIC's pins, and a 2-byte
//! ioeventfd on each queue's notification address.

use std::sync::{Arc, Mutex};

use arch::layout::{PCI_MMIO_SIZE, PCI_MMIO_START};
use devices::pci::PciRoot;
use devices::Bus;
use hypervisor::{Vm, MAX_GSI, MSI_GSI_BASE};
use virtio::transport::pci::layout::{notify_offset, BAR_SIZE, MAX_QUEUES, TABLE_VECTORS};
use virtio::transport::pci::msix::{Msix, MsixVector};
use virtio::transport::pci::{PciEdges, VirtioPciDevice, VirtioPciState};
use virtio::VirtioDevice;

use crate::device_manager::{eventfd, SharedTransport};
use crate::memory::GuestMemoryMmap;
use crate::msi::KvmMsiRoutes;
use crate::{Error, Result};

/// Functions bus 0 has room for besides the host bridge.
const PCI_DEVICE_SLOTS: usize = 31;

/// Bus 0 as it fills up: where the next BAR and the next GSI go.
pub(crate) struct PciBus {
    pub root: PciRoot,
    next_bar: u64,
    next_gsi: u32,
}

impl PciBus {
    pub(crate) fn new() -> Self {
        PciBus {
            root: PciRoot::new(),
            next_bar: PCI_MMIO_START,
            next_gsi: MSI_GSI_BASE,
        }
    }

    /// Puts `device` on the bus: its BAR on `mmio`, its kicks caught by
    /// ioeventfds and its vectors sent through irqfds; as `saved` left it,
    /// if given (a snapshot's), its live MSI-X vectors routed again.
    pub(crate) fn attach(
        &mut self,
        vm: &Arc<Vm>,
        memory: &GuestMemoryMmap,
        mmio: &mut Bus,
        device: Box<dyn VirtioDevice>,
        saved: Option<&VirtioPciState>,
    ) -> Result<SharedTransport> {
        let bar = self.next_bar;
        let queues = device.queue_max_sizes().len();
        let vector_count = VirtioPciDevice::vectors_needed(queues);
        let first_gsi = self.next_gsi;
        let vector_count_u32 = u32::try_from(vector_count).unwrap_or(u32::MAX);
        // The bus's 31 slots run out long before the window (8192 BARs)
        // or the GSIs (thousands); a device with more queues than its BAR
        // has notification addresses for does not exist here.
        if bar + BAR_SIZE > PCI_MMIO_START + PCI_MMIO_SIZE
            || queues > MAX_QUEUES
            || vector_count > TABLE_VECTORS
            || first_gsi.saturating_add(vector_count_u32) > MAX_GSI
        {
            return Err(Error::TooManyDevices(PCI_DEVICE_SLOTS));
        }

        let mut vectors = Vec::with_capacity(vector_count);
        for gsi in first_gsi..first_gsi + vector_count_u32 {
            let irqfd = eventfd("create an MSI-X vector eventfd")?;
            vm.register_irqfd(&irqfd, gsi)?;
            vectors.push(MsixVector { gsi, irqfd });
        }
        let mut queue_evts = Vec::with_capacity(queues);
        for queue in 0..queues {
            let evt = eventfd("create a virtio queue eventfd")?;
            let index = u16::try_from(queue).unwrap_or(u16::MAX); // < MAX_QUEUES
            vm.register_mmio_ioevent16(&evt, bar + notify_offset(index), index)?;
            queue_evts.push(evt);
        }
        let msix = Arc::new(Msix::new(vectors, Arc::new(KvmMsiRoutes(vm.clone()))));
        let kind = device.device_type();
        let function = match saved {
            Some(state) => VirtioPciDevice::restore(
                PciEdges {
                    device,
                    mem: memory.clone(),
                    queue_evts,
                    msix,
                    bar_address: bar,
                },
                state,
            )
            .map_err(|e| {
                Error::SnapshotMismatch(format!(
                    "the PCI function of the virtio device of type {kind}: {e}"
                ))
            })?,
            None => VirtioPciDevice::new(device, memory.clone(), queue_evts, msix, bar)?,
        };
        let function = Arc::new(Mutex::new(function));
        self.root
            .add_device(function.clone())
            .map_err(|_| Error::TooManyDevices(PCI_DEVICE_SLOTS))?;
        mmio.insert(bar, BAR_SIZE, function.clone())?;
        self.next_bar += BAR_SIZE;
        self.next_gsi += vector_count_u32;
        Ok(function)
    }
}
