//! The legacy devices on the I/O-port bus, laid out as the VMM lays them
//! out (COM1, i8042, the ACPI PM block, pvpanic, the PCI configuration
//! ports with the host bridge): guest reads and writes of any length
//! (0 to 8 bytes) at any port, mostly near the devices, with host input
//! arriving at the UART in between. Nothing may panic, and the bus
//! answers exactly the accesses that fall wholly inside a device's range.
#![no_main]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arch::layout::ports;
use devices::acpi_pm::{AcpiPm, ACPI_PM_LEN};
use devices::i8042::{I8042, I8042_PORT_LEN};
use devices::pci::{PciRoot, PCI_CONFIG_PORT_LEN};
use devices::pvpanic::{PvPanic, PVPANIC_PORT_LEN};
use devices::serial::{SerialDevice, SERIAL_PORT_LEN};
use devices::{Bus, Trigger};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use vm_superio::serial::NoEvents;

/// Counts its firings; what the VMM would turn into an interrupt or an
/// exit.
#[derive(Clone, Default)]
struct Count(Arc<AtomicUsize>);

impl Trigger for Count {
    type E = ();
    fn trigger(&self) -> std::result::Result<(), ()> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Device ranges on the bus: (base, length).
const RANGES: [(u64, u64); 5] = [
    (ports::COM1 as u64, SERIAL_PORT_LEN),
    (ports::I8042_DATA as u64, I8042_PORT_LEN),
    (ports::ACPI_PM as u64, ACPI_PM_LEN),
    (ports::PVPANIC as u64, PVPANIC_PORT_LEN),
    (ports::PCI_CONFIG as u64, PCI_CONFIG_PORT_LEN),
];

type Com1 = SerialDevice<Count, NoEvents, std::io::Sink>;

fn bus() -> (Bus, Arc<Mutex<Com1>>) {
    let exit = Count::default();
    let com1 = Arc::new(Mutex::new(SerialDevice::new(
        Count::default(),
        NoEvents,
        std::io::sink(),
    )));
    let mut bus = Bus::new();
    bus.insert(RANGES[0].0, RANGES[0].1, com1.clone()).unwrap();
    let i8042 = I8042::new(exit.clone(), Count::default());
    bus.insert(RANGES[1].0, RANGES[1].1, Arc::new(Mutex::new(i8042)))
        .unwrap();
    let pm = AcpiPm::new(
        exit.clone(),
        exit.clone(),
        ports::ACPI_S5_SLEEP_TYPE,
        ports::ACPI_RESET_VALUE,
    );
    bus.insert(RANGES[2].0, RANGES[2].1, Arc::new(Mutex::new(pm)))
        .unwrap();
    let pvpanic = PvPanic::new(exit);
    bus.insert(RANGES[3].0, RANGES[3].1, Arc::new(Mutex::new(pvpanic)))
        .unwrap();
    bus.insert(
        RANGES[4].0,
        RANGES[4].1,
        Arc::new(Mutex::new(PciRoot::new())),
    )
    .unwrap();
    (bus, com1)
}

/// A port: mostly in or just around a device's range, sometimes anywhere
/// (port I/O addresses are 16-bit, but the bus takes any u64).
fn port(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0..=7)? {
        0 => u.arbitrary::<u64>()?,
        1 => u64::from(u.arbitrary::<u16>()?),
        _ => {
            let (base, len) = *u.choose(&RANGES)?;
            let offset = u.int_in_range(0..=len + 8)?;
            (base + offset).wrapping_sub(4)
        }
    })
}

fn inside(addr: u64, len: usize) -> bool {
    RANGES.iter().any(|&(base, size)| {
        addr >= base
            && addr
                .checked_add(len as u64)
                .is_some_and(|end| end <= base + size)
    })
}

fn run(u: &mut Unstructured) -> Result<()> {
    let (bus, com1) = bus();
    for _ in 0..512 {
        if u.is_empty() {
            break;
        }
        let addr = port(u)?;
        let len = u.int_in_range(0..=8)?;
        match u.int_in_range(0..=3)? {
            0 | 1 => {
                let mut data = [0u8; 8];
                u.fill_buffer(&mut data[..len])?;
                let answered = bus.write(addr, &data[..len]);
                assert_eq!(answered, inside(addr, len), "write at {addr:#x}+{len}");
            }
            2 => {
                let mut data = [0x5au8; 8];
                let answered = bus.read(addr, &mut data[..len]);
                assert_eq!(answered, inside(addr, len), "read at {addr:#x}+{len}");
            }
            _ => {
                let n = u.int_in_range(0..=96)?;
                let input = u.bytes(n)?;
                let taken = devices::bus::lock(&com1).enqueue_input(input);
                assert!(taken <= input.len());
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
