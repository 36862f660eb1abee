//! What to boot, and with which resources.

use std::path::PathBuf;

use arch::x86_64::memory::guest_phys_end;
use arch::x86_64::mptable::MAX_CPUS;
use hypervisor::Hypervisor;
use virtio::block::DiskConfig;
use virtio::net::NetConfig;

use crate::device_updates::{drive_key, nic_key};
use crate::serial_output::SerialOutput;
use crate::{Error, Result};

/// Guest RAM when the user gives none.
pub const DEFAULT_MEMORY: u64 = 128 << 20;
/// Command line when the user gives none: console on the serial port,
/// reboot through the keyboard controller, reboot 1 s after a panic.
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=1";
/// Smallest guest: room for the boot structures below 1 MiB and a kernel.
const MIN_MEMORY: u64 = 2 << 20;

/// Where the kernel comes from.
#[derive(Clone, Debug)]
pub enum KernelSource {
    /// A file on the host.
    File(PathBuf),
    /// An image built into the binary (the demo guest).
    Embedded(&'static [u8]),
}

/// The transparent huge page advice for guest RAM (`--memory SIZE,thp=`).
/// RAM is mapped on 2 MiB boundaries whichever it is, so that KVM can map
/// a huge page the host kernel hands out with one nested page-table entry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HugePages {
    /// No advice: the host's policy decides (`always` gives huge pages,
    /// `madvise`, the usual default, does not).
    #[default]
    HostPolicy,
    /// `thp=on`: ask for huge pages (`MADV_HUGEPAGE`).
    On,
    /// `thp=off`: refuse them (`MADV_NOHUGEPAGE`), which keeps a small
    /// guest's footprint in 4 KiB steps on any host.
    Off,
}

/// One guest.
#[derive(Clone, Debug)]
pub struct VmConfig {
    pub kernel: KernelSource,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub cpus: u32,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// Whether guest RAM asks for transparent huge pages.
    pub huge_pages: HugePages,
    /// KVM logs the pages the guest writes, for Diff snapshots.
    pub track_dirty_pages: bool,
    /// End the run, instead of restarting the guest, when it resets.
    pub no_reboot: bool,
    /// Give the guest a virtio-rng device.
    pub rng: bool,
    /// Give the guest a virtio-balloon device.
    pub balloon: Option<virtio::balloon::BalloonConfig>,

    /// Give the guest a virtio-vsock device, reached through Unix sockets.
    pub vsock: Option<virtio::vsock::VsockConfig>,
    /// virtio-blk disks, in the order the guest sees them.
    pub disks: Vec<DiskConfig>,
    /// The guest's NICs (virtio-net over host TAPs), in order.
    pub net: Vec<NetConfig>,
    /// Put the virtio devices on a PCI bus, with MSI-X interrupts, rather
    /// than on virtio-mmio.
    pub pci: bool,
    /// Where the serial console's output goes (`PUT /serial`).
    pub serial: SerialOutput,
}

/// Refuses a second device with the same id.
fn unique_ids(option: &'static str, ids: impl Iterator<Item = String>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id.clone()) {
            return Err(Error::DuplicateId { option, id });
        }
    }
    Ok(())
}

impl VmConfig {
    /// Checks the resources against what this host's KVM allows.
    pub fn validate(&self, hypervisor: &Hypervisor) -> Result<()> {
        let max_cpus = u32::try_from(hypervisor.max_vcpus())
            .unwrap_or(u32::MAX)
            .min(MAX_CPUS);
        if self.cpus == 0 || self.cpus > max_cpus {
            return Err(Error::InvalidCpus {
                requested: self.cpus,
                max: max_cpus,
            });
        }
        if self.memory < MIN_MEMORY {
            return Err(Error::MemoryTooSmall(self.memory, MIN_MEMORY >> 20));
        }
        for (i, net) in self.net.iter().enumerate() {
            if self.net[..i].iter().any(|other| other.tap == net.tap) {
                return Err(Error::DuplicateTap(net.tap.clone()));
            }
        }
        let drives = self.disks.iter().enumerate();
        let drives = drives.map(|(i, d)| drive_key(i, d.id.as_deref()));
        unique_ids("--disk", drives)?;
        let nics = self.net.iter().enumerate();
        unique_ids("--net", nics.map(|(i, n)| nic_key(i, n.id.as_deref())))?;
        let limit = 1u64 << crate::memory::guest_phys_bits(hypervisor);
        if self.memory > limit || guest_phys_end(self.memory) > limit {
            return Err(Error::MemoryTooLarge {
                requested: self.memory,
                limit,
            });
        }
        if let Some(balloon) = &self.balloon {
            if balloon.size > self.memory {
                return Err(Error::BalloonTooLarge {
                    size: balloon.size,
                    memory: self.memory,
                });
            }
        }
        Ok(())
    }
}

/// Parses `--memory`: `SIZE[,thp=on|off]` (also `size=SIZE`), returning
/// the size in bytes and the transparent huge page advice.
pub fn parse_memory_option(text: &str) -> Result<(u64, HugePages)> {
    let invalid = |why: String| Error::InvalidMemoryOption(text.to_owned(), why);
    let mut size = None;
    let mut huge_pages = HugePages::HostPolicy;
    for (i, item) in text.split(',').enumerate() {
        match item.split_once('=') {
            None if i == 0 => size = Some(parse_memory_size(item)?),
            Some(("size", value)) => size = Some(parse_memory_size(value)?),
            Some(("thp", "on")) => huge_pages = HugePages::On,
            Some(("thp", "off")) => huge_pages = HugePages::Off,
            Some(("thp", other)) => {
                return Err(invalid(format!("thp={other}: expected on or off")))
            }
            _ => return Err(invalid(format!("unknown item {item:?}"))),
        }
    }
    let size = size.ok_or_else(|| invalid("no size".into()))?;
    Ok((size, huge_pages))
}

/// Parses a memory size: a whole number with an optional `K`, `M`, `G` or
/// `T` suffix (powers of 1024; `KiB`/`MB` spellings too). A bare number is
/// in MiB, as in Firecracker's `mem_size_mib`.
pub fn parse_memory_size(text: &str) -> Result<u64> {
    let invalid = || Error::InvalidMemorySize(text.to_owned());
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, suffix) = t.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let shift = match suffix.to_ascii_uppercase().as_str() {
        "" | "M" | "MB" | "MIB" => 20,
        "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(invalid()),
    };
    number.checked_mul(1u64 << shift).ok_or_else(invalid)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;

    #[test]
    fn sizes_with_suffixes() {
        assert_eq!(parse_memory_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_memory_size("6G").unwrap(), 6 << 30);
        assert_eq!(parse_memory_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_memory_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_memory_size("128").unwrap(), 128 << 20);
        assert_eq!(parse_memory_size("0").unwrap(), 0);
    }

    #[test]
    fn memory_options() {
        assert_eq!(
            parse_memory_option("256M").unwrap(),
            (256 << 20, HugePages::HostPolicy)
        );
        assert_eq!(
            parse_memory_option("1G,thp=on").unwrap(),
            (1 << 30, HugePages::On)
        );
        assert_eq!(
            parse_memory_option("size=2G,thp=off").unwrap(),
            (2 << 30, HugePages::Off)
        );
        assert_eq!(
            parse_memory_option("thp=on,size=64").unwrap(),
            (64 << 20, HugePages::On)
        );
        for bad in [
            "",
            "thp=on",
            "1G,thp=yes",
            "1G,huge=on",
            "1G,2G",
            "12Q,thp=on",
        ] {
            assert!(parse_memory_option(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_sizes_are_refused() {
        for bad in ["12Q", "", "M", "-5M", "1.5G", "99999999999999T", "5 G"] {
            assert!(
                matches!(parse_memory_size(bad), Err(Error::InvalidMemorySize(_))),
                "{bad}"
            );
        }
    }
}
