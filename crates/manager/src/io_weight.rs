//! `--io-weight`: a guest's share of contended disk time, written to the
//! weight file this host's kernel offers. Where it offers none, asking
//! for a weight is refused, never silently ignored.

use std::path::Path;

use crate::ManagerError;

/// The range of `--io-weight`, as cgroup v2's `io.weight`.
pub const IO_WEIGHT_RANGE: std::ops::RangeInclusive<u32> = 1..=10_000;

/// Which file carries a cgroup's I/O weight on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoWeightFile {
    /// cgroup v2 `io.weight` (`default W`, 1-10000).
    V2,
    /// cgroup v1 `blkio.weight` (10-1000: CFQ's, or BFQ's in kernels
    /// that name it so).
    V1,
    /// cgroup v1 `blkio.bfq.weight` (1-1000).
    V1Bfq,
    /// No weight file: why, for the refusal.
    Missing(String),
}

impl IoWeightFile {
    /// What a v1 blkio hierarchy mounted at `mount` offers. The weight
    /// files of BFQ are only in non-root cgroups, and only once BFQ is
    /// loaded: `schedulers` is the text of `/sys/block/*/queue/scheduler`.
    pub fn of_v1(mount: Option<&Path>, schedulers: &str) -> IoWeightFile {
        let Some(mount) = mount else {
            return IoWeightFile::Missing(
                "io-weight: this host has no blkio cgroup controller".to_owned(),
            );
        };
        if mount.join("blkio.weight").exists() {
            return IoWeightFile::V1;
        }
        let bfq = mount.join("blkio.bfq.weight").exists()
            || schedulers
                .split_whitespace()
                .any(|s| s.trim_matches(['[', ']']) == "bfq");
        if bfq {
            return IoWeightFile::V1Bfq;
        }
        IoWeightFile::Missing(
            "io-weight: this host's blkio controller has no weight file (it needs the BFQ I/O scheduler)"
                .to_owned(),
        )
    }

    /// What a v2 hierarchy whose root lists `controllers` offers.
    pub fn of_v2(controllers: &str) -> IoWeightFile {
        if controllers.split_whitespace().any(|c| c == "io") {
            IoWeightFile::V2
        } else {
            IoWeightFile::Missing(
                "io-weight: this host's cgroup v2 hierarchy has no io controller".to_owned(),
            )
        }
    }

    /// For the daemon's log: the file, or why there is none.
    pub fn describe(&self) -> &str {
        match self {
            IoWeightFile::V2 => "io.weight",
            IoWeightFile::V1 => "blkio.weight",
            IoWeightFile::V1Bfq => "blkio.bfq.weight",
            IoWeightFile::Missing(why) => why,
        }
    }

    /// The `FILE=VALUE` setting for `weight` (1-10000), or why there is
    /// none.
    pub fn setting(&self, weight: u32) -> Result<String, ManagerError> {
        check(weight)?;
        match self {
            IoWeightFile::V2 => Ok(format!("io.weight=default {weight}")),
            IoWeightFile::V1 => Ok(format!("blkio.weight={}", v1_weight(weight, 10))),
            IoWeightFile::V1Bfq => Ok(format!("blkio.bfq.weight={}", v1_weight(weight, 1))),
            IoWeightFile::Missing(why) => Err(ManagerError::BadGuest(why.clone())),
        }
    }
}

/// Checks `weight` is in [`IO_WEIGHT_RANGE`].
pub fn check(weight: u32) -> Result<(), ManagerError> {
    if IO_WEIGHT_RANGE.contains(&weight) {
        Ok(())
    } else {
        Err(ManagerError::BadGuest(format!(
            "io-weight {weight}: expected 1 to 10000"
        )))
    }
}

/// v1's weight (`min`-1000) for a v2-style one (1-10000): a tenth, so
/// that 100 (v2's default) is 10, and the ratios hold above the floor.
pub fn v1_weight(weight: u32, min: u32) -> u32 {
    (weight / 10).clamp(min, 1000)
}

/// The text of every block device's scheduler list.
pub fn host_schedulers() -> String {
    let mut text = String::new();
    if let Ok(dir) = std::fs::read_dir("/sys/block") {
        for entry in dir.flatten() {
            let path = entry.path().join("queue/scheduler");
            text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
            text.push(' ');
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_scale_to_each_file() {
        assert_eq!(
            IoWeightFile::V2.setting(300).unwrap(),
            "io.weight=default 300"
        );
        assert_eq!(IoWeightFile::V2.setting(1).unwrap(), "io.weight=default 1");
        assert_eq!(IoWeightFile::V1.setting(500).unwrap(), "blkio.weight=50");
        assert_eq!(IoWeightFile::V1.setting(1).unwrap(), "blkio.weight=10");
        assert_eq!(
            IoWeightFile::V1.setting(10_000).unwrap(),
            "blkio.weight=1000"
        );
        assert_eq!(
            IoWeightFile::V1Bfq.setting(5).unwrap(),
            "blkio.bfq.weight=1"
        );
        assert_eq!(
            IoWeightFile::V1Bfq.setting(2_000).unwrap(),
            "blkio.bfq.weight=200"
        );
        for bad in [0, 10_001] {
            let e = IoWeightFile::V2.setting(bad).unwrap_err().to_string();
            assert_eq!(e, format!("io-weight {bad}: expected 1 to 10000"));
        }
    }

    #[test]
    fn the_weight_file_is_what_the_host_has() {
        let root = std::env::temp_dir().join(format!("manager-io-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let none = IoWeightFile::of_v1(Some(&root), "[none] mq-deadline kyber ");
        let IoWeightFile::Missing(why) = &none else {
            panic!("{none:?}")
        };
        assert!(why.contains("no weight file (it needs the BFQ"), "{why}");
        assert!(none.setting(100).unwrap_err().to_string().contains("BFQ"));
        assert_eq!(
            IoWeightFile::of_v1(Some(&root), "mq-deadline [bfq] none"),
            IoWeightFile::V1Bfq
        );
        std::fs::write(root.join("blkio.weight"), "500\n").unwrap();
        assert_eq!(IoWeightFile::of_v1(Some(&root), ""), IoWeightFile::V1);
        std::fs::remove_dir_all(&root).unwrap();
        assert!(matches!(
            IoWeightFile::of_v1(None, ""),
            IoWeightFile::Missing(_)
        ));
        assert_eq!(
            IoWeightFile::of_v2("cpuset cpu io memory"),
            IoWeightFile::V2
        );
        assert!(matches!(
            IoWeightFile::of_v2("cpu memory"),
            IoWeightFile::Missing(_)
        ));
    }
}
