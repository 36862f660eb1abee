//! `--cpuset`: host CPUs dedicated to one guest. Every guest's cgroup is
//! in the cpuset hierarchy; a guest with a cpuset gets its own CPUs, and
//! every other guest gets the host's usable CPUs less all the dedicated
//! ones, so that no shared guest runs on a dedicated CPU.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use crate::ManagerError;

/// Highest CPU number a list may name: far above any host, low enough
/// that a typo like `0-4000000000` is refused rather than expanded.
pub const MAX_CPU: u32 = 8191;

/// A set of host CPUs, as the kernel's list format writes it
/// (`0-1,4`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CpuList(BTreeSet<u32>);

impl CpuList {
    /// Parses `1`, `0-1`, `2,4-5`.
    pub fn parse(text: &str) -> Result<CpuList, ManagerError> {
        let bad = || {
            ManagerError::BadGuest(format!(
                "cpuset {text:?}: expected CPU numbers and ranges up to {MAX_CPU}, e.g. 1, 0-1 or 2,4-5"
            ))
        };
        let number = |s: &str| -> Result<u32, ManagerError> {
            let n: u32 = s.parse().map_err(|_| bad())?;
            if n > MAX_CPU {
                return Err(bad());
            }
            Ok(n)
        };
        let mut cpus = BTreeSet::new();
        for part in text.trim().split(',') {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => (number(part)?, number(part)?),
            };
            if first > last {
                return Err(bad());
            }
            cpus.extend(first..=last);
        }
        Ok(CpuList(cpus))
    }

    /// The kernel's text for the set (empty for no CPU).
    pub fn parse_kernel(text: &str) -> Result<CpuList, ManagerError> {
        if text.trim().is_empty() {
            return Ok(CpuList::default());
        }
        CpuList::parse(text)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, of: &CpuList) -> bool {
        self.0.is_subset(&of.0)
    }

    pub fn intersection(&self, other: &CpuList) -> CpuList {
        CpuList(self.0.intersection(&other.0).copied().collect())
    }

    pub fn difference(&self, other: &CpuList) -> CpuList {
        CpuList(self.0.difference(&other.0).copied().collect())
    }

    pub fn union(&self, other: &CpuList) -> CpuList {
        CpuList(self.0.union(&other.0).copied().collect())
    }
}

impl fmt::Display for CpuList {
    /// Runs of CPUs as ranges: `0-2,5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for &cpu in &self.0 {
            match runs.last_mut() {
                Some((_, last)) if *last + 1 == cpu => *last = cpu,
                _ => runs.push((cpu, cpu)),
            }
        }
        let parts: Vec<String> = runs
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The CPUs guests may be given: those of the nearest cpuset cgroup at
/// or above `parent` (under `mount`) that exists, as its effective list
/// says (v1 `cpuset.effective_cpus`, v2 `cpuset.cpus.effective`).
pub fn usable_cpus(mount: &Path, parent: &str) -> Option<CpuList> {
    let mut dir = mount.join(parent);
    loop {
        for file in ["cpuset.effective_cpus", "cpuset.cpus.effective"] {
            if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
                return CpuList::parse_kernel(&text).ok();
            }
        }
        if dir == mount || !dir.pop() || !dir.starts_with(mount) {
            return None;
        }
    }
}

/// What the guests already hold: each dedicated guest's CPUs, and how
/// many guests share the rest.
pub struct Placement<'a> {
    pub usable: &'a CpuList,
    pub dedicated: Vec<(&'a str, CpuList)>,
    pub shared_guests: usize,
}

impl Placement<'_> {
    /// Every dedicated CPU.
    pub fn all_dedicated(&self) -> CpuList {
        self.dedicated
            .iter()
            .fold(CpuList::default(), |all, (_, cpus)| all.union(cpus))
    }

    /// What guests without a cpuset run on.
    pub fn shared(&self) -> CpuList {
        self.usable.difference(&self.all_dedicated())
    }

    /// Whether one more guest asking for `wanted` (dedicated CPUs, or
    /// `None` to share) fits; the refusal names what is in the way.
    pub fn check(&self, wanted: Option<&CpuList>) -> Result<(), ManagerError> {
        let refuse = |m: String| Err(ManagerError::Admission(m));
        let Some(wanted) = wanted else {
            if self.shared().is_empty() {
                return refuse(format!(
                    "cpuset: every usable CPU ({}) is dedicated to a guest: none is left for guests without --cpuset",
                    self.usable
                ));
            }
            return Ok(());
        };
        if wanted.is_empty() || !wanted.is_subset(self.usable) {
            return refuse(format!(
                "cpuset {wanted}: the CPUs guests may use here are {}",
                self.usable
            ));
        }
        for (owner, cpus) in &self.dedicated {
            let taken = cpus.intersection(wanted);
            if !taken.is_empty() {
                return refuse(format!(
                    "cpuset {wanted}: CPU {taken} is dedicated to guest {owner:?} already"
                ));
            }
        }
        if self.shared_guests > 0 && self.shared().difference(wanted).is_empty() {
            return refuse(format!(
                "cpuset {wanted}: it would leave no CPU for the {} guest(s) without --cpuset",
                self.shared_guests
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(text: &str) -> CpuList {
        CpuList::parse(text).unwrap()
    }

    #[test]
    fn lists_parse_and_print_as_the_kernel_writes_them() {
        assert_eq!(list("1").to_string(), "1");
        assert_eq!(list("0-1").to_string(), "0-1");
        assert_eq!(list("2,4-5").to_string(), "2,4-5");
        assert_eq!(list("5,4,3,0").to_string(), "0,3-5");
        assert_eq!(list("0-3\n").to_string(), "0-3");
        for bad in ["", "a", "3-1", "1,", ",1", "1-", "-1", "0-9000", "1 2"] {
            let e = CpuList::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("cpuset "), "{bad}: {e}");
        }
        assert!(CpuList::parse_kernel("\n").unwrap().is_empty());
    }

    #[test]
    fn placement_refuses_what_is_taken_missing_or_the_last_shared_cpu() {
        let usable = list("0-3");
        let placement = Placement {
            usable: &usable,
            dedicated: vec![("db", list("3"))],
            shared_guests: 1,
        };
        assert_eq!(placement.shared().to_string(), "0-2");
        assert!(placement.check(Some(&list("1-2"))).is_ok());
        assert!(placement.check(None).is_ok());
        let message = |wanted: &str| {
            placement
                .check(Some(&list(wanted)))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            message("2-3"),
            "cpuset 2-3: CPU 3 is dedicated to guest \"db\" already"
        );
        assert_eq!(
            message("4"),
            "cpuset 4: the CPUs guests may use here are 0-3"
        );
        assert!(message("0-2").contains("no CPU for the 1 guest(s) without --cpuset"));
        // Without shared guests, every free CPU may go.
        let alone = Placement {
            shared_guests: 0,
            ..placement
        };
        assert!(alone.check(Some(&list("0-2"))).is_ok());
        let full = Placement {
            usable: &usable,
            dedicated: vec![("a", list("0-1")), ("b", list("2-3"))],
            shared_guests: 0,
        };
        assert!(full
            .check(None)
            .unwrap_err()
            .to_string()
            .contains("none is left"));
    }

    #[test]
    fn usable_cpus_come_from_the_nearest_existing_cgroup() {
        let root = std::env::temp_dir().join(format!("manager-cpuset-{}", std::process::id()));
        std::fs::create_dir_all(root.join("parent")).unwrap();
        std::fs::write(root.join("cpuset.effective_cpus"), "0-7\n").unwrap();
        // The parent is not made yet: the mount's list.
        assert_eq!(usable_cpus(&root, "pointsman").unwrap().to_string(), "0-7");
        std::fs::write(root.join("parent/cpuset.cpus.effective"), "2-3\n").unwrap();
        assert_eq!(usable_cpus(&root, "parent").unwrap().to_string(), "2-3");
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(usable_cpus(&root, "parent"), None);
    }
}
