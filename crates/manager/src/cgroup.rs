//! A guest's share of the host as cgroup settings, in v1 or v2 terms, and
//! where its cgroup lives so that `rm` can take it away. The jail makes
//! the cgroup and writes the settings (`--cgroup FILE=VALUE`); this module
//! only decides what they say.

use std::path::{Path, PathBuf};

/// The controllers every guest's cgroup has.
const CONTROLLERS: [&str; 2] = ["cpu", "memory"];
/// v1 controllers a guest's cgroup may have too: `cpuset` (every guest,
/// where the host has it: see `cpuset.rs`) and `blkio` (`--io-weight`).
const MORE_V1_CONTROLLERS: [&str; 3] = ["cpuset", "blkio", "pids"];

/// cgroup v1 hierarchies that only count (CPU time, block I/O), where
/// they are mounted: the guest gets a cgroup in each so that
/// `GET /metrics` can read its figures there (v2 counts in `cpu.stat`
/// and `io.stat` of the one cgroup).
const V1_ACCOUNTING: [&str; 2] = ["cpuacct", "blkio"];

/// The settings that make the jail put the VMM in a v1 accounting
/// hierarchy: each only zeroes counters a new cgroup starts at zero.
const V1_ACCOUNTING_SETTINGS: [(&str, &str); 2] = [
    ("cpuacct", "cpuacct.usage=0"),
    ("blkio", "blkio.reset_stats=0"),
];

/// cgroup v1's CFS period: a tenth of a second, its default.
pub const CFS_PERIOD_US: u64 = 100_000;

/// The default and the range of `--cpu-weight`, as cgroup v2's
/// `cpu.weight`.
pub const DEFAULT_CPU_WEIGHT: u32 = 100;
pub const CPU_WEIGHT_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;

/// The limits one guest is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestLimits {
    /// Relative share of contended CPU time, 1-10000.
    pub cpu_weight: u32,
    /// Hard cap in percent of one CPU (200 = two CPUs' worth).
    pub cpu_max_percent: Option<u32>,
    /// Limit on the whole VMM process's memory, in bytes.
    pub memory_max: u64,
}

/// Which hierarchy, and where each controller is mounted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupLayout {
    /// One mount per controller.
    V1 { mounts: Vec<(String, PathBuf)> },
    /// The unified hierarchy, with the cpu and memory controllers.
    V2 { mount: PathBuf },
}

impl CgroupLayout {
    /// The host's layout: v2 where the unified hierarchy has the cpu and
    /// memory controllers, else v1.
    pub fn of_host() -> CgroupLayout {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        Self::from_mounts(&mounts, |mount| {
            std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default()
        })
    }

    /// The layout `/proc/self/mounts` text describes; `controllers` reads
    /// a v2 mount's `cgroup.controllers`.
    pub fn from_mounts(mounts: &str, controllers: impl Fn(&Path) -> String) -> CgroupLayout {
        let mut v1: Vec<(String, PathBuf)> = Vec::new();
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, path, fstype, options, ..] = fields[..] else {
                continue;
            };
            let path = PathBuf::from(path);
            if fstype == "cgroup2" {
                let available = controllers(&path);
                let has = |c: &str| available.split_whitespace().any(|a| a == c);
                if CONTROLLERS.iter().all(|c| has(c)) {
                    return CgroupLayout::V2 { mount: path };
                }
            } else if fstype == "cgroup" {
                let more = MORE_V1_CONTROLLERS.iter().chain(&V1_ACCOUNTING);
                for controller in CONTROLLERS.iter().chain(more) {
                    // blkio is in both lists: one entry is enough.
                    if v1.iter().any(|(c, _): &(String, PathBuf)| c == controller) {
                        continue;
                    }
                    if options.split(',').any(|o| o == *controller) {
                        v1.push(((*controller).to_owned(), path.clone()));
                    }
                }
            }
        }
        CgroupLayout::V1 { mounts: v1 }
    }

    /// `1` or `2`, as `pointsman jail --cgroup-version` takes it.
    pub fn version(&self) -> u8 {
        match self {
            CgroupLayout::V1 { .. } => 1,
            CgroupLayout::V2 { .. } => 2,
        }
    }

    /// The `FILE=VALUE` settings that give a guest `limits`.
    pub fn settings(&self, limits: &GuestLimits) -> Vec<String> {
        let mut settings = Vec::new();
        match self {
            CgroupLayout::V1 { .. } => {
                settings.push(format!("cpu.shares={}", v1_shares(limits.cpu_weight)));
                if let Some(percent) = limits.cpu_max_percent {
                    // The period first: the kernel checks the quota against it.
                    settings.push(format!("cpu.cfs_period_us={CFS_PERIOD_US}"));
                    settings.push(format!("cpu.cfs_quota_us={}", quota_us(percent)));
                }
                settings.push(format!("memory.limit_in_bytes={}", limits.memory_max));
                settings.extend(self.v1_accounting_settings());
            }
            CgroupLayout::V2 { .. } => {
                settings.push(format!("cpu.weight={}", limits.cpu_weight));
                if let Some(percent) = limits.cpu_max_percent {
                    settings.push(format!("cpu.max={} {CFS_PERIOD_US}", quota_us(percent)));
                }
                settings.push(format!("memory.max={}", limits.memory_max));
            }
        }
        settings
    }

    /// [`V1_ACCOUNTING_SETTINGS`] of the hierarchies this host mounts.
    fn v1_accounting_settings(&self) -> Vec<String> {
        V1_ACCOUNTING_SETTINGS
            .iter()
            .filter(|(controller, _)| self.mount_of(controller).is_some())
            .map(|(_, setting)| (*setting).to_owned())
            .collect()
    }

    /// The directory of cgroup `parent/name` that has `controller`'s
    /// files (v2: the one directory), `None` if it is not mounted.
    pub fn controller_dir(&self, controller: &str, parent: &str, name: &str) -> Option<PathBuf> {
        let mount = match self {
            CgroupLayout::V1 { .. } => self.mount_of(controller)?,
            CgroupLayout::V2 { mount } => mount.clone(),
        };
        Some(mount.join(parent).join(name))
    }

    /// The directories of cgroup `parent/name` for the cpu and memory
    /// controllers (v1), or its one directory (v2).
    pub fn dirs(&self, parent: &str, name: &str) -> Vec<PathBuf> {
        match self {
            CgroupLayout::V1 { mounts } => mounts
                .iter()
                .filter(|(controller, _)| CONTROLLERS.contains(&controller.as_str()))
                .map(|(_, mount)| mount.join(parent).join(name))
                .collect(),
            CgroupLayout::V2 { mount } => vec![mount.join(parent).join(name)],
        }
    }

    /// Every directory cgroup `parent/name` may have: [`Self::dirs`] and
    /// those of the other controllers a guest may be in.
    pub fn all_dirs(&self, parent: &str, name: &str) -> Vec<PathBuf> {
        match self {
            CgroupLayout::V1 { mounts } => mounts
                .iter()
                .map(|(_, mount)| mount.join(parent).join(name))
                .collect(),
            CgroupLayout::V2 { .. } => self.dirs(parent, name),
        }
    }

    /// Where `controller`'s hierarchy is mounted (v1), or the unified
    /// one if it offers `controller` (v2).
    pub fn mount_of(&self, controller: &str) -> Option<PathBuf> {
        match self {
            CgroupLayout::V1 { mounts } => mounts
                .iter()
                .find(|(c, _)| c == controller)
                .map(|(_, mount)| mount.clone()),
            CgroupLayout::V2 { mount } => {
                let available =
                    std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
                available
                    .split_whitespace()
                    .any(|c| c == controller)
                    .then(|| mount.clone())
            }
        }
    }

    /// The file a `FILE=VALUE` setting of cgroup `parent/name` is written
    /// to (`cpu.shares` in the cpu hierarchy, ...).
    pub fn file_of(&self, parent: &str, name: &str, file: &str) -> Option<PathBuf> {
        let controller = file.split('.').next()?;
        Some(
            self.mount_of(controller)?
                .join(parent)
                .join(name)
                .join(file),
        )
    }

    /// Each existing directory's file that takes a task by id (v1
    /// `tasks`, v2 `cgroup.procs`).
    pub fn task_files(&self, parent: &str, name: &str) -> Vec<PathBuf> {
        let file = match self {
            CgroupLayout::V1 { .. } => "tasks",
            CgroupLayout::V2 { .. } => "cgroup.procs",
        };
        self.all_dirs(parent, name)
            .into_iter()
            .filter(|dir| dir.is_dir())
            .map(|dir| dir.join(file))
            .collect()
    }

    /// Removes cgroup `parent/name` (empty once its VMM has ended); one
    /// already gone is fine.
    pub fn remove(&self, parent: &str, name: &str) -> std::io::Result<()> {
        for dir in self.all_dirs(parent, name) {
            remove_when_empty(&dir)?;
        }
        Ok(())
    }
}

/// How long `rm` waits for the last threads of a killed VMM to leave its
/// cgroup (a VMM's main thread can be a zombie while a vCPU thread is
/// still being torn down).
const EMPTY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

fn remove_when_empty(dir: &Path) -> std::io::Result<()> {
    let start = std::time::Instant::now();
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // EBUSY: tasks are still in it.
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < EMPTY_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// v1's `cpu.shares` for a v2-style weight: weight 100 (both defaults)
/// is v1's default of 1024 shares, and the ratio between guests is kept
/// (shares = weight * 1024 / 100, at least v1's minimum of 2).
pub fn v1_shares(weight: u32) -> u64 {
    (u64::from(weight) * 1024 / 100).max(2)
}

/// CFS quota for `percent` of one CPU over [`CFS_PERIOD_US`].
pub fn quota_us(percent: u32) -> u64 {
    u64::from(percent) * CFS_PERIOD_US / 100
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "tmpfs /sys/fs/cgroup tmpfs rw 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
";

    fn limits(cpu_max_percent: Option<u32>) -> GuestLimits {
        GuestLimits {
            cpu_weight: 200,
            cpu_max_percent,
            memory_max: 192 << 20,
        }
    }

    #[test]
    fn v1_when_the_unified_hierarchy_has_no_controllers() {
        let layout = CgroupLayout::from_mounts(MOUNTS, |_| String::new());
        assert_eq!(layout.version(), 1);
        assert_eq!(
            layout.dirs("pointsman", "web"),
            [
                PathBuf::from("/sys/fs/cgroup/cpu/pointsman/web"),
                PathBuf::from("/sys/fs/cgroup/memory/pointsman/web"),
            ]
        );
        assert_eq!(
            layout.all_dirs("pointsman", "web"),
            [
                PathBuf::from("/sys/fs/cgroup/cpu/pointsman/web"),
                PathBuf::from("/sys/fs/cgroup/memory/pointsman/web"),
                PathBuf::from("/sys/fs/cgroup/cpuacct/pointsman/web"),
                PathBuf::from("/sys/fs/cgroup/pids/pointsman/web")
            ]
        );
        assert_eq!(
            layout.controller_dir("cpuacct", "pointsman", "web"),
            Some(PathBuf::from("/sys/fs/cgroup/cpuacct/pointsman/web"))
        );
        assert_eq!(layout.controller_dir("blkio", "pointsman", "web"), None);
        assert_eq!(
            layout.settings(&limits(Some(50))),
            [
                "cpu.shares=2048",
                "cpu.cfs_period_us=100000",
                "cpu.cfs_quota_us=50000",
                "memory.limit_in_bytes=201326592",
                // cpuacct is mounted, blkio is not.
                "cpuacct.usage=0"
            ]
        );
        assert_eq!(layout.settings(&limits(None)).len(), 3);
    }

    #[test]
    fn v2_when_it_has_cpu_and_memory() {
        let layout = CgroupLayout::from_mounts(MOUNTS, |_| "cpuset cpu io memory pids".into());
        assert_eq!(layout.version(), 2);
        assert_eq!(
            layout.dirs("pointsman", "web"),
            [PathBuf::from("/sys/fs/cgroup/unified/pointsman/web")]
        );
        assert_eq!(
            layout.controller_dir("io", "pointsman", "web"),
            Some(PathBuf::from("/sys/fs/cgroup/unified/pointsman/web"))
        );
        assert_eq!(
            layout.settings(&limits(Some(150))),
            [
                "cpu.weight=200",
                "cpu.max=150000 100000",
                "memory.max=201326592"
            ]
        );
    }

    #[test]
    fn cpuset_and_blkio_dirs_are_known_and_removed_too() {
        let mounts = format!(
            "{MOUNTS}cgroup /sys/fs/cgroup/cpuset cgroup rw,cpuset 0 0\ncgroup /sys/fs/cgroup/blkio cgroup rw,blkio 0 0\n"
        );
        let layout = CgroupLayout::from_mounts(&mounts, |_| String::new());
        assert_eq!(layout.dirs("p", "g").len(), 2);
        // cpu, memory, cpuacct, pids, cpuset, blkio.
        assert_eq!(layout.all_dirs("p", "g").len(), 6);
        assert_eq!(
            layout.file_of("p", "g", "cpuset.cpus"),
            Some(PathBuf::from("/sys/fs/cgroup/cpuset/p/g/cpuset.cpus"))
        );
        assert_eq!(
            layout.file_of("p", "g", "blkio.weight"),
            Some(PathBuf::from("/sys/fs/cgroup/blkio/p/g/blkio.weight"))
        );
        assert_eq!(layout.file_of("p", "g", "io.weight"), None);
        assert_eq!(
            CgroupLayout::from_mounts(MOUNTS, |_| String::new()).mount_of("cpuset"),
            None
        );
    }

    #[test]
    fn weights_map_to_shares_in_proportion() {
        assert_eq!(v1_shares(100), 1024);
        assert_eq!(v1_shares(200), 2048);
        assert_eq!(v1_shares(10_000), 102_400);
        assert_eq!(v1_shares(1), 10);
        assert_eq!(quota_us(100), 100_000);
        assert_eq!(quota_us(250), 250_000);
    }

    #[test]
    fn remove_takes_each_controllers_directory() {
        let root = std::env::temp_dir().join(format!("manager-cg-{}", std::process::id()));
        let mounts = format!(
            "cgroup {0}/cpu cgroup rw,cpu 0 0\ncgroup {0}/memory cgroup rw,memory 0 0\n",
            root.display()
        );
        let layout = CgroupLayout::from_mounts(&mounts, |_| String::new());
        for dir in layout.dirs("p", "g") {
            std::fs::create_dir_all(dir).unwrap();
        }
        layout.remove("p", "g").unwrap();
        assert!(layout.dirs("p", "g").iter().all(|d| !d.exists()));
        // Gone already: still fine.
        layout.remove("p", "g").unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
