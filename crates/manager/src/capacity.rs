//! Admission control: what the host offers guests (its capacity times the
//! overcommit ratio), and whether one more guest fits.

use crate::size::{mib, parse_size, MIB};
use crate::ManagerError;

/// Memory kept for the host and the VMMs' own overhead: the larger of
/// this and a tenth of the host's memory.
pub const HOST_RESERVE_BYTES: u64 = 512 * MIB;

/// What the host gives guests before overcommit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Capacity {
    pub cpus: u32,
    pub memory: u64,
}

/// How many times over CPU and memory may be promised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Overcommit {
    pub cpu: f64,
    pub memory: f64,
}

impl Default for Overcommit {
    /// CPU time may be shared by several vCPUs per host CPU; memory a
    /// guest was promised must be there.
    fn default() -> Self {
        Overcommit {
            cpu: 4.0,
            memory: 1.0,
        }
    }
}

/// What guests ask for or hold: vCPUs and guest memory in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpus: u64,
    pub memory: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.cpus = self.cpus.saturating_add(other.cpus);
        self.memory = self.memory.saturating_add(other.memory);
    }
}

impl Capacity {
    /// The host's online CPUs, and its memory less the reserve.
    pub fn of_host() -> Capacity {
        let cpus = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        let total = host_memory().unwrap_or(0);
        Capacity {
            cpus,
            memory: total.saturating_sub(HOST_RESERVE_BYTES.max(total / 10)),
        }
    }

    /// `cpus=N,memory=SIZE`; what is left out comes from `defaults`.
    pub fn parse(text: &str, defaults: Capacity) -> Result<Capacity, ManagerError> {
        let bad = || ManagerError::BadCapacity(text.to_owned());
        let mut capacity = defaults;
        for part in text.split(',') {
            match part.split_once('=') {
                Some(("cpus", n)) => {
                    capacity.cpus = n.parse().ok().filter(|&n| n > 0).ok_or_else(bad)?
                }
                Some(("memory", size)) => capacity.memory = parse_size(size).map_err(|_| bad())?,
                _ => return Err(bad()),
            }
        }
        Ok(capacity)
    }
}

impl Overcommit {
    /// `cpu=R,memory=R`; what is left out keeps its default.
    pub fn parse(text: &str) -> Result<Overcommit, ManagerError> {
        let bad = || ManagerError::BadOvercommit(text.to_owned());
        let mut ratios = Overcommit::default();
        for part in text.split(',') {
            let (key, value) = part.split_once('=').ok_or_else(bad)?;
            let ratio: f64 = value.parse().map_err(|_| bad())?;
            if !ratio.is_finite() || !(1.0..=1000.0).contains(&ratio) {
                return Err(bad());
            }
            match key {
                "cpu" => ratios.cpu = ratio,
                "memory" => ratios.memory = ratio,
                _ => return Err(bad()),
            }
        }
        Ok(ratios)
    }
}

/// What may be promised in all: capacity times overcommit, rounded down.
pub fn limits(capacity: Capacity, overcommit: Overcommit) -> Usage {
    // f64 holds these exactly enough: byte counts below 2^53 (8 PiB).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let scale = |amount: u64, ratio: f64| (amount as f64 * ratio).floor() as u64;
    Usage {
        cpus: scale(u64::from(capacity.cpus), overcommit.cpu),
        memory: scale(capacity.memory, overcommit.memory),
    }
}

/// Refuses `asked` if, on top of `used`, it passes `limits`: one line
/// naming each resource that is short.
pub fn admit(limits: Usage, used: Usage, asked: Usage) -> Result<(), ManagerError> {
    let mut short = Vec::new();
    let cpus_left = limits.cpus.saturating_sub(used.cpus);
    if asked.cpus > cpus_left {
        short.push(format!(
            "cpus: {} asked, {cpus_left} left of {}",
            asked.cpus, limits.cpus
        ));
    }
    let memory_left = limits.memory.saturating_sub(used.memory);
    if asked.memory > memory_left {
        short.push(format!(
            "memory: {} MiB asked, {} MiB left of {} MiB",
            mib(asked.memory),
            mib(memory_left),
            mib(limits.memory)
        ));
    }
    if short.is_empty() {
        Ok(())
    } else {
        Err(ManagerError::Admission(short.join("; ")))
    }
}

/// MemTotal from /proc/meminfo, in bytes.
fn host_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: Capacity = Capacity {
        cpus: 2,
        memory: 2048 * MIB,
    };

    #[test]
    fn capacity_and_overcommit_parse() {
        let c = Capacity::parse("cpus=8,memory=4G", HOST).unwrap();
        assert_eq!((c.cpus, c.memory), (8, 4096 * MIB));
        assert_eq!(Capacity::parse("memory=1G", HOST).unwrap().cpus, 2);
        for bad in ["", "cpus=0", "cpus=x", "gpus=1", "memory=lots"] {
            assert!(Capacity::parse(bad, HOST).is_err(), "{bad}");
        }
        let o = Overcommit::parse("cpu=2,memory=1.5").unwrap();
        assert_eq!((o.cpu, o.memory), (2.0, 1.5));
        for bad in ["cpu=0.5", "cpu=nan", "disk=2", "cpu", "memory=inf"] {
            assert!(Overcommit::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_scale_capacity_by_overcommit() {
        let l = limits(HOST, Overcommit::default());
        assert_eq!((l.cpus, l.memory), (8, 2048 * MIB));
        let l = limits(
            HOST,
            Overcommit {
                cpu: 1.5,
                memory: 1.5,
            },
        );
        assert_eq!((l.cpus, l.memory), (3, 3072 * MIB));
    }

    #[test]
    fn admission_names_what_is_short() {
        let limits = limits(HOST, Overcommit::default());
        let used = Usage {
            cpus: 2,
            memory: 1024 * MIB,
        };
        let fits = Usage {
            cpus: 6,
            memory: 1024 * MIB,
        };
        assert!(admit(limits, used, fits).is_ok());
        let big = Usage {
            cpus: 1,
            memory: 1536 * MIB,
        };
        assert_eq!(
            admit(limits, used, big).unwrap_err().to_string(),
            "memory: 1536 MiB asked, 1024 MiB left of 2048 MiB"
        );
        let both = Usage {
            cpus: 7,
            memory: 1025 * MIB,
        };
        let message = admit(limits, used, both).unwrap_err().to_string();
        assert_eq!(
            message,
            "cpus: 7 asked, 6 left of 8; memory: 1025 MiB asked, 1024 MiB left of 2048 MiB"
        );
        // Over-full already (a smaller capacity after a restart): nothing fits.
        let over = Usage { cpus: 9, memory: 0 };
        assert!(admit(limits, over, Usage { cpus: 1, memory: 0 }).is_err());
    }
}
