//! What the manager's unit tests share: scratch directories, and a
//! daemon for them: a small host, no cgroup hierarchies, and a
//! "pointsman" that is any program (`/bin/false`: every VMM exits at once
//! with status 1; `/bin/true`: with status 0, as a guest that powers off
//! at once).

use std::path::{Path, PathBuf};

use crate::capacity::{Capacity, Overcommit};
use crate::cgroup::CgroupLayout;
use crate::daemon::{Daemon, Settings};
use crate::size::MIB;
use crate::state_dir::StateDir;

/// The daemon over state directory `root`, starting `exe` as its VMMs.
pub fn open(root: &Path, exe: &str) -> Daemon {
    let settings = Settings {
        capacity: Capacity {
            cpus: 2,
            memory: 256 * MIB,
        },
        overcommit: Overcommit::default(),
        uid_range: (40000, 40001),
        parent_cgroup: "pointsman-unit".into(),
        exe: exe.into(),
        cgroups: CgroupLayout::V1 { mounts: Vec::new() },
        console_log_max: crate::console_log::DEFAULT_MAX_BYTES,
    };
    Daemon::new(settings, StateDir::open(root).unwrap()).unwrap()
}

/// A fresh directory of the test's own under the temporary directory
/// (`manager-KIND-TAG-PID`), emptied first.
pub fn fresh_dir(kind: &str, tag: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("manager-{kind}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    root
}

/// [`fresh_dir`], made.
pub fn made_dir(kind: &str, tag: &str) -> PathBuf {
    let dir = fresh_dir(kind, tag);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
