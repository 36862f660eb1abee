//! The machine's devices, wired to KVM interrupts, the host terminal and
//! the exit signal, and placed on the buses.

use std::sync::{Arc, Mutex};

use arch::layout::{ports, virtio_mmio_base, VIRTIO_GSIS, VIRTIO_MMIO_SIZE};
use arch::x86_64::acpi;
use devices::acpi_pm::{AcpiPm, ACPI_PM_LEN};
use devices::i8042::{I8042, I8042_PORT_LEN};
use devices::pci::{PciRoot, PCI_CONFIG_PORT_LEN};
use devices::pvpanic::{PvPanic, PVPANIC_PORT_LEN};
use devices::serial::{SerialDevice, UartEdges, SERIAL_PORT_LEN};
use devices::Bus;
use hypervisor::Vm;
use virtio::{
    IrqTrigger, MmioEdges, MmioState, MmioTransport, Pausable, VirtioDevice, INTERRUPT_ACK_OFFSET,
    QUEUE_NOTIFY_OFFSET,
};
use vm_superio::serial::SerialEvents;
use vm_superio::Trigger;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::config::VmConfig;
use crate::device_updates::{drive_key, nic_key, DeviceHandles};
use crate::exit::{DeviceExit, ExitSignal, ExitTrigger};
use crate::memory::GuestMemoryMmap;
use crate::net::Taps;
use crate::pci::PciBus;
use crate::serial_output::SerialWriter;
use crate::snapshot::DevicesState;
use crate::vcpu::Buses;
use crate::{Error, Result};
use ::snapshot::Persist;

/// An interrupt line: a write to the eventfd, which KVM turns into the
/// guest interrupt through an irqfd.
pub(crate) struct IrqLine(EventFd);

impl Trigger for IrqLine {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// Tells the console that the guest emptied the receive FIFO, so host
/// input held back for lack of room can be offered again.
pub(crate) struct InputDrained(EventFd);

impl SerialEvents for InputDrained {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        // A lost wake-up only delays input until the next stdin event.
        let _ = self.0.write(1);
    }
}

/// A virtio transport, as a pause of the machine reaches it.
pub(crate) type SharedTransport = Arc<Mutex<dyn Pausable>>;

/// COM1 as wired in this VMM: IRQ 4, output to the host's stdout or the
/// file `PUT /serial` names.
pub(crate) type Com1 = SerialDevice<IrqLine, InputDrained, SerialWriter>;

/// The i8042 as wired in this VMM: its reset line resets the machine, its
/// keyboard interrupt is IRQ 1.
pub(crate) type KeyboardController = I8042<ExitTrigger, IrqLine>;

/// Devices that other parts of the VMM talk to after start-up.
pub(crate) struct Devices {
    pub buses: Arc<Buses>,
    pub com1: Arc<Mutex<Com1>>,
    /// Readable when COM1's receive FIFO has room again.
    pub com1_input_drained: EventFd,
    /// Whether host stdin feeds COM1 (not when its output goes to a file).
    pub com1_reads_stdin: bool,
    /// The keyboard controller, for Ctrl-Alt-Del from the host.
    pub i8042: Arc<Mutex<KeyboardController>>,
    /// The ACPI power-management block, for snapshots.
    pub acpi_pm: Arc<Mutex<AcpiPm<ExitTrigger>>>,
    /// The ACPI generic event device's interrupt: tells the guest its VM
    /// generation ID changed.
    pub ged_irq: EventFd,
    /// The ACPI (DSDT) description of every device.
    pub aml: Vec<u8>,
    /// Steers the balloon at run time (for the control plane to come).
    #[allow(dead_code)]
    pub balloon: Option<virtio::balloon::BalloonHandle>,
    /// Every virtio transport, for a pause of the machine.
    pub virtio: Vec<SharedTransport>,
    /// The root of PCI bus 0, when the virtio devices are on PCI.
    pub pci_root: Option<Arc<Mutex<PciRoot>>>,
    /// The disks and NICs, to change while the guest runs.
    pub handles: DeviceHandles,
    /// Each NIC's MAC, drawn at random where the configuration gave none:
    /// a snapshot keeps it, so that the restored guest's NIC is the same.
    pub nic_macs: Vec<[u8; 6]>,
}

pub(crate) fn eventfd(what: &'static str) -> Result<EventFd> {
    EventFd::new(EFD_NONBLOCK).map_err(|source| Error::Host { what, source })
}

/// Creates the devices `config` asks for and places them on the buses;
/// the devices go on from `restored` if given (a snapshot's).
pub(crate) fn create_devices(
    vm: &Arc<Vm>,
    memory: &GuestMemoryMmap,
    config: &VmConfig,
    exit: &Arc<ExitSignal>,
    taps: &Taps,
    restored: Option<&DevicesState>,
) -> Result<Devices> {
    let saved_devices = restored;
    let restored = restored.map(|state| &state.legacy);
    let irq = eventfd("create the COM1 interrupt eventfd")?;
    vm.register_irqfd(&irq, ports::COM1_IRQ)?;
    let drained = eventfd("create the COM1 input eventfd")?;
    let drained_for_uart = drained.try_clone().map_err(|source| Error::Host {
        what: "clone the COM1 input eventfd",
        source,
    })?;
    // Each device counts in the registry's metrics for its id, the same
    // ones again after a reboot in place.
    let registry = metrics::registry();
    let com1 = match restored {
        Some(state) => SerialDevice::restore(
            UartEdges {
                irq: IrqLine(irq),
                events: InputDrained(drained_for_uart),
                out: config.serial.writer(registry.uart())?,
                metrics: registry.uart(),
            },
            &state.com1,
        )?,
        None => SerialDevice::with_metrics(
            IrqLine(irq),
            InputDrained(drained_for_uart),
            config.serial.writer(registry.uart())?,
            registry.uart(),
        ),
    };
    let com1 = Arc::new(Mutex::new(com1));

    let keyboard_irq = eventfd("create the i8042 interrupt eventfd")?;
    vm.register_irqfd(&keyboard_irq, ports::I8042_IRQ)?;
    let i8042_edges = (
        ExitTrigger::new(exit, DeviceExit::Reset),
        IrqLine(keyboard_irq),
    );
    let i8042 = match restored {
        Some(state) => I8042::restore(i8042_edges, &state.i8042)?,
        None => I8042::new(i8042_edges.0, i8042_edges.1),
    };
    let i8042 = Arc::new(Mutex::new(i8042));
    let acpi_pm_edges = (
        ExitTrigger::new(exit, DeviceExit::PowerOff),
        ExitTrigger::new(exit, DeviceExit::Reset),
    );
    let acpi_pm = match restored {
        Some(state) => AcpiPm::restore(acpi_pm_edges, &state.acpi_pm)?,
        None => AcpiPm::new(
            acpi_pm_edges.0,
            acpi_pm_edges.1,
            ports::ACPI_S5_SLEEP_TYPE,
            ports::ACPI_RESET_VALUE,
        ),
    };
    let acpi_pm = Arc::new(Mutex::new(acpi_pm));

    let mut pio = Bus::new();
    pio.insert(u64::from(ports::COM1), SERIAL_PORT_LEN, com1.clone())?;
    pio.insert(u64::from(ports::I8042_DATA), I8042_PORT_LEN, i8042.clone())?;
    pio.insert(u64::from(ports::ACPI_PM), ACPI_PM_LEN, acpi_pm.clone())?;

    pio.insert(
        u64::from(ports::PVPANIC),
        PVPANIC_PORT_LEN,
        Arc::new(Mutex::new(PvPanic::new(ExitTrigger::new(
            exit,
            DeviceExit::Crash,
        )))),
    )?;

    let ged_irq = eventfd("create the generic event device's interrupt eventfd")?;
    vm.register_irqfd(&ged_irq, ports::GED_IRQ)?;

    let mut aml = acpi::com1_aml();
    aml.extend(acpi::i8042_aml());
    aml.extend(acpi::pvpanic_aml());
    aml.extend(acpi::vmgenid_aml());

    let mut virtio_devices: Vec<Box<dyn VirtioDevice>> = Vec::new();
    if config.rng {
        let rng = virtio::rng::Rng::new().with_metrics(registry.entropy());
        virtio_devices.push(Box::new(rng));
    }
    let mut balloon = None;
    if let Some(balloon_config) = &config.balloon {
        let device = virtio::balloon::Balloon::new(balloon_config, config.memory)
            .with_metrics(registry.balloon());
        balloon = Some(device.handle());
        virtio_devices.push(Box::new(device));
    }
    if let Some(vsock) = &config.vsock {
        let device = virtio::vsock::Vsock::new(vsock.clone())
            .map_err(Error::VsockSocket)?
            .with_metrics(registry.vsock());
        virtio_devices.push(Box::new(device));
    }
    let mut handles = DeviceHandles::default();
    for (index, disk) in config.disks.iter().enumerate() {
        let key = drive_key(index, disk.id.as_deref());
        let block = virtio::block::Block::new(disk.clone())
            .map_err(Error::Disk)?
            .with_metrics(registry.block(&key));
        handles.drives.push((key, block.handle()));
        virtio_devices.push(Box::new(block));
    }
    let mut nic_macs = Vec::new();
    for (index, (net, device)) in taps.devices().into_iter().enumerate() {
        let key = nic_key(index, net.id.as_deref());
        let device = device.with_metrics(registry.net(&key));
        handles.nics.push((key, device.handle()));
        nic_macs.push(device.mac());
        virtio_devices.push(Box::new(device));
    }
    let mut mmio = Bus::new();
    let mut virtio = Vec::with_capacity(virtio_devices.len());
    if let Some(saved) = saved_devices {
        saved
            .check_transports(config.pci, virtio_devices.len())
            .map_err(Error::SnapshotMismatch)?;
    }
    let saved_virtio = saved_devices.map(|state| state.virtio.as_slice());
    let mut pci_root = None;
    if config.pci {
        let saved_pci = saved_devices.map(|state| state.pci.as_slice());
        let mut bus = PciBus::new();
        for (index, device) in virtio_devices.into_iter().enumerate() {
            let saved = saved_pci.and_then(|states| states.get(index));
            virtio.push(bus.attach(vm, memory, &mut mmio, device, saved)?);
        }
        let mut root = bus.root;
        if let Some(state) = saved_devices.and_then(|state| state.pci_root.as_ref()) {
            root.restore_state(state)
                .map_err(|e| Error::SnapshotMismatch(e.to_string()))?;
        }
        let root = Arc::new(Mutex::new(root));
        pio.insert(
            u64::from(ports::PCI_CONFIG),
            PCI_CONFIG_PORT_LEN,
            root.clone(),
        )?;
        pci_root = Some(root);
        aml.extend(acpi::pci_host_bridge_aml());
    } else {
        for (slot, device) in virtio_devices.into_iter().enumerate() {
            let saved = saved_virtio.and_then(|states| states.get(slot));
            let (transport, device_aml) =
                attach_virtio(vm, memory, &mut mmio, (slot, device), saved)?;
            virtio.push(transport);
            aml.extend(device_aml);
        }
    }

    Ok(Devices {
        buses: Arc::new(Buses { pio, mmio }),
        com1,
        com1_input_drained: drained,
        com1_reads_stdin: config.serial.is_terminal(),
        i8042,
        acpi_pm,
        ged_irq,
        aml,
        balloon,
        virtio,
        pci_root,
        handles,
        nic_macs,
    })
}

/// Puts a virtio device behind an MMIO transport in `slot`: its page of
/// MMIO space and its interrupt line, its kicks caught by ioeventfds and
/// its interrupts sent through an irqfd; as `saved` left it, if given (a
/// snapshot's). Returns the transport and its ACPI description.
fn attach_virtio(
    vm: &Vm,
    memory: &GuestMemoryMmap,
    mmio: &mut Bus,
    (slot, device): (usize, Box<dyn VirtioDevice>),
    saved: Option<&MmioState>,
) -> Result<(SharedTransport, Vec<u8>)> {
    let gsi = *VIRTIO_GSIS
        .get(slot)
        .ok_or(Error::TooManyDevices(VIRTIO_GSIS.len()))?;
    let index = u32::try_from(slot).map_err(|_| Error::TooManyDevices(VIRTIO_GSIS.len()))?;
    let base = virtio_mmio_base(index);

    let irq = eventfd("create a virtio interrupt eventfd")?;
    vm.register_irqfd(&irq, gsi)?;
    let mut queue_evts = Vec::with_capacity(device.queue_max_sizes().len());
    for queue in 0..device.queue_max_sizes().len() {
        let evt = eventfd("create a virtio queue eventfd")?;
        let datamatch = u32::try_from(queue).unwrap_or(u32::MAX);
        vm.register_mmio_ioevent(&evt, base + QUEUE_NOTIFY_OFFSET, datamatch)?;
        queue_evts.push(evt);
    }
    // The driver's ack of each interrupt stays in KVM (see
    // `IrqTrigger::take_status`): one exit to the VMM fewer per interrupt.
    let ack = eventfd("create a virtio interrupt ack eventfd")?;
    vm.register_mmio_ioevent_any(&ack, base + INTERRUPT_ACK_OFFSET)?;
    let interrupt = Arc::new(IrqTrigger::new(irq));
    let transport = match saved {
        Some(state) => MmioTransport::restore(
            MmioEdges {
                device,
                mem: memory.clone(),
                interrupt,
                queue_evts,
            },
            state,
        )
        .map_err(|e| Error::SnapshotMismatch(e.to_string()))?,
        None => MmioTransport::new(device, memory.clone(), interrupt, queue_evts),
    }
    .with_ack_eventfd(ack);
    let transport = Arc::new(Mutex::new(transport));
    mmio.insert(base, VIRTIO_MMIO_SIZE, transport.clone())?;
    Ok((transport, acpi::virtio_mmio_aml(index, gsi)))
}
