//! The machine's devices, wired to KVM interrupts, the host terminal and
//! the exit signal, and placed on the buses.

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use arch::layout::ports;
use devices::acpi_pm::{AcpiPm, ACPI_PM_LEN};
use devices::i8042::{I8042, I8042_PORT_LEN};
use devices::pvpanic::{PvPanic, PVPANIC_PORT_LEN};
use devices::serial::{SerialDevice, SERIAL_PORT_LEN};
use devices::Bus;
use hypervisor::Vm;
use vm_superio::serial::SerialEvents;
use vm_superio::Trigger;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::exit::{DeviceExit, ExitSignal, ExitTrigger};
use crate::vcpu::Buses;
use crate::{Error, Result};

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

/// COM1 as wired in this VMM: IRQ 4, output to the host's stdout.
pub(crate) type Com1 = SerialDevice<IrqLine, InputDrained, File>;

/// Devices that other parts of the VMM talk to after start-up.
pub(crate) struct Devices {
    pub buses: Arc<Buses>,
    pub com1: Arc<Mutex<Com1>>,
    /// Readable when COM1's receive FIFO has room again.
    pub com1_input_drained: EventFd,
}

fn eventfd(what: &'static str) -> Result<EventFd> {
    EventFd::new(EFD_NONBLOCK).map_err(|source| Error::Host { what, source })
}

fn host_stdout() -> Result<File> {
    // An unbuffered handle of its own, so each guest byte reaches the
    // terminal at once, prompts included.
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .map_err(|source| Error::Host {
            what: "duplicate stdout for the serial console",
            source,
        })
}

/// Creates the legacy devices and places them on the I/O-port bus.
pub(crate) fn create_devices(vm: &Vm, exit: &Arc<ExitSignal>) -> Result<Devices> {
    let irq = eventfd("create the COM1 interrupt eventfd")?;
    vm.register_irqfd(&irq, ports::COM1_IRQ)?;
    let drained = eventfd("create the COM1 input eventfd")?;
    let drained_for_uart = drained.try_clone().map_err(|source| Error::Host {
        what: "clone the COM1 input eventfd",
        source,
    })?;
    let com1 = Arc::new(Mutex::new(SerialDevice::new(
        IrqLine(irq),
        InputDrained(drained_for_uart),
        host_stdout()?,
    )));

    let i8042 = I8042::new(ExitTrigger::new(exit, DeviceExit::Reset));
    let acpi_pm = AcpiPm::new(
        ExitTrigger::new(exit, DeviceExit::PowerOff),
        ExitTrigger::new(exit, DeviceExit::Reset),
        ports::ACPI_S5_SLEEP_TYPE,
        ports::ACPI_RESET_VALUE,
    );

    let mut pio = Bus::new();
    pio.insert(u64::from(ports::COM1), SERIAL_PORT_LEN, com1.clone())?;
    pio.insert(
        u64::from(ports::I8042_DATA),
        I8042_PORT_LEN,
        Arc::new(Mutex::new(i8042)),
    )?;
    pio.insert(
        u64::from(ports::ACPI_PM),
        ACPI_PM_LEN,
        Arc::new(Mutex::new(acpi_pm)),
    )?;

    pio.insert(
        u64::from(ports::PVPANIC),
        PVPANIC_PORT_LEN,
        Arc::new(Mutex::new(PvPanic::new(ExitTrigger::new(
            exit,
            DeviceExit::Crash,
        )))),
    )?;

    Ok(Devices {
        buses: Arc::new(Buses {
            pio,
            mmio: Bus::new(),
        }),
        com1,
        com1_input_drained: drained,
    })
}
