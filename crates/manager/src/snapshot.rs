//! `PUT /vms/{name}/snapshot`: a guest's VMM writes a Full snapshot
//! inside its jail root (the only place it can write), and the daemon
//! moves it to the asked directory with what a clone needs beside it:
//!
//! ```text
//! DIR/snapshot        the VMM's state          root:GID 0640
//! DIR/memory          the guest's RAM          root:GID 0640
//! DIR/guest.json      the guest's config       root:root 0600
//! DIR/disks/NAME      each writable disk, as it was while paused
//! ```
//!
//! GID is the snapshotted guest's group. Every clone of the snapshot runs
//! with it as its group (its uid its own): so each clone's jailed VMM can
//! read the one memory file, which they all map copy-on-write and share
//! through the page cache, without a copy per clone and without the files
//! being readable by anyone else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::file_copy::{copy_file, give, move_file};
use crate::guest::GuestConfig;
use crate::guest_record::Phase;
use crate::http_client;
use crate::ManagerError;

pub const SNAPSHOT_FILE: &str = "snapshot";
pub const MEMORY_FILE: &str = "memory";
pub const GUEST_FILE: &str = "guest.json";
pub const DISKS_DIR: &str = "disks";

/// What the VMM writes in its root, before the daemon moves it out.
const TAKING: [&str; 2] = ["snapshot.taking", "memory.taking"];

/// Writing a guest's RAM out takes a while on a slow disk.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(120);

/// `DIR/guest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The guest the snapshot is of.
    pub guest: String,
    /// Its configuration, paths as on the host.
    pub config: GuestConfig,
}

/// A `--disk` spec's `path=`.
pub fn disk_path(spec: &str) -> Option<&str> {
    spec.split(',').find_map(|part| part.strip_prefix("path="))
}

pub fn disk_is_readonly(spec: &str) -> bool {
    spec.split(',')
        .any(|p| p == "readonly=on" || p == "readonly=true")
}

/// The file name a disk has in the jail (its host path's), and so in
/// the snapshot's saved configuration.
pub fn disk_name(spec: &str) -> Option<&str> {
    Path::new(disk_path(spec)?).file_name()?.to_str()
}

/// Checks that a clone can be given the guest's disks under the names
/// the snapshot will hold: each has a path and a name of its own, not
/// one the snapshot's files take in the clone's jail.
pub fn check_disks(config: &GuestConfig) -> Result<(), ManagerError> {
    let mut names: Vec<&str> = Vec::new();
    for spec in &config.disk {
        let bad = |why: &str| Err(ManagerError::BadGuest(format!("--disk {spec}: {why}")));
        let Some(name) = disk_name(spec) else {
            return bad("no path=FILE: a clone could not be given it");
        };
        if names.contains(&name) {
            return bad("another disk has this file name: in a clone's jail they would be one");
        }
        if [SNAPSHOT_FILE, MEMORY_FILE, "api.sock"].contains(&name) || TAKING.contains(&name) {
            return bad("a clone's jail holds a file of this name already");
        }
        names.push(name);
    }
    Ok(())
}

/// Makes `dir` if it is missing (true if made); refuses a relative path,
/// a file, or a directory that holds a snapshot already.
pub fn prepare_dir(dir: &Path) -> Result<bool, ManagerError> {
    let refuse = |why: &str| {
        Err(ManagerError::SnapshotDir {
            dir: dir.to_owned(),
            why: why.to_owned(),
        })
    };
    if !dir.is_absolute() {
        return refuse("give an absolute path (the daemon has its own working directory)");
    }
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if !meta.is_dir() => refuse("not a directory"),
        Ok(_) => {
            let held = [SNAPSHOT_FILE, MEMORY_FILE, GUEST_FILE, DISKS_DIR]
                .iter()
                .any(|f| std::fs::symlink_metadata(dir.join(f)).is_ok());
            if held {
                return refuse("it holds a snapshot already: give an empty or new directory");
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(ManagerError::io("create", dir))?;
            Ok(true)
        }
        Err(e) => Err(ManagerError::io("read", dir)(e)),
    }
}

/// Reads `DIR/guest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest, ManagerError> {
    let path = dir.join(GUEST_FILE);
    let text = std::fs::read(&path).map_err(|e| ManagerError::SnapshotDir {
        dir: dir.to_owned(),
        why: format!("it holds no snapshot ({GUEST_FILE}: {e}): make one with `vm snapshot`"),
    })?;
    serde_json::from_slice(&text).map_err(|e| ManagerError::SnapshotDir {
        dir: dir.to_owned(),
        why: format!("{GUEST_FILE} is not a snapshot's: {e}"),
    })
}

/// What a snapshot wrote, to remove it again if a later step fails.
struct Written {
    dir: PathBuf,
    made_dir: bool,
    paths: Vec<PathBuf>,
}

impl Written {
    fn undo(&self) {
        for path in self.paths.iter().rev() {
            let _ = std::fs::remove_file(path).or_else(|_| std::fs::remove_dir(path));
        }
        if self.made_dir {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

impl Daemon {
    /// Snapshots guest `name` into `dir`: paused if it runs, written,
    /// moved out of its jail, resumed. Nothing is left in `dir` if it
    /// fails.
    pub fn snapshot(&mut self, name: &str, dir: &Path) -> Result<Value, ManagerError> {
        self.poll(name);
        let guest = self.guest(name)?;
        let was_running = match guest.phase {
            Phase::Running => true,
            Phase::Paused => false,
            _ => return Err(ManagerError::NotRunning(name.to_owned())),
        };
        let mut config = guest.config.clone();
        let gid = config
            .clone_of
            .as_ref()
            .map_or(guest.process.uid, |o| o.gid);
        check_disks(&config)?;
        let mut written = Written {
            dir: dir.to_owned(),
            made_dir: prepare_dir(dir)?,
            paths: Vec::new(),
        };
        if was_running {
            if let Err(e) = self.vmm_request(name, "PATCH", "/vm", PAUSE, "pause") {
                written.undo();
                return Err(e);
            }
            self.guest_mut(name)?.phase = Phase::Paused;
        }
        // A clone of the snapshot is a guest of its own, not a clone.
        config.clone_of = None;
        let result = self.write_snapshot(name, &config, gid, &mut written);
        let resumed = if was_running {
            self.vmm_request(name, "PATCH", "/vm", RESUME, "resume")
                .map(|()| true)
        } else {
            Ok(false)
        };
        if matches!(resumed, Ok(true)) {
            self.guest_mut(name)?.phase = Phase::Running;
        }
        match (result, resumed) {
            (Ok(files), Ok(resumed)) => {
                tracing::info!("guest {name}: snapshot in {}", dir.display());
                Ok(json!({ "guest": name, "dir": dir, "files": files, "resumed": resumed }))
            }
            (Err(e), _) | (Ok(_), Err(e)) => {
                written.undo();
                Err(e)
            }
        }
    }

    fn write_snapshot(
        &self,
        name: &str,
        config: &GuestConfig,
        gid: u32,
        written: &mut Written,
    ) -> Result<Vec<PathBuf>, ManagerError> {
        let root = self.state.jail_dir(name).join("root");
        let dir = written.dir.clone();
        for file in TAKING {
            let _ = std::fs::remove_file(root.join(file));
        }
        let body = json!({
            "snapshot_type": "Full",
            "snapshot_path": format!("/{}", TAKING[0]),
            "mem_file_path": format!("/{}", TAKING[1]),
        })
        .to_string();
        let socket = self.state.api_socket(name);
        let refused = |message: String| ManagerError::Vmm {
            name: name.to_owned(),
            what: "the snapshot",
            message,
        };
        let answer = http_client::request(
            &socket,
            "PUT",
            "/snapshot/create",
            Some(&body),
            SNAPSHOT_TIMEOUT,
        )
        .map_err(|e| refused(e.to_string()))?;
        if !answer.is_success() {
            for file in TAKING {
                let _ = std::fs::remove_file(root.join(file));
            }
            return Err(refused(answer.fault_message()));
        }
        for (taking, file) in TAKING.iter().zip([SNAPSHOT_FILE, MEMORY_FILE]) {
            let (from, to) = (root.join(taking), dir.join(file));
            let moved = move_file(&from, &to);
            if moved.is_err() {
                let _ = std::fs::remove_file(&from);
            }
            moved?;
            written.paths.push(to.clone());
            give(&to, 0, gid, 0o640)?;
        }
        // The disks as they are now, while the guest is paused: a clone
        // must find its disk as the snapshot's memory left it.
        let writable: Vec<&String> = config
            .disk
            .iter()
            .filter(|d| !disk_is_readonly(d))
            .collect();
        if !writable.is_empty() {
            let disks = dir.join(DISKS_DIR);
            std::fs::create_dir(&disks).map_err(ManagerError::io("create", &disks))?;
            written.paths.push(disks.clone());
            for spec in writable {
                let (Some(host), Some(file)) = (disk_path(spec), disk_name(spec)) else {
                    continue;
                };
                let to = disks.join(file);
                copy_file(Path::new(host), &to)?;
                written.paths.push(to);
            }
        }
        let manifest = Manifest {
            guest: name.to_owned(),
            config: config.clone(),
        };
        let path = dir.join(GUEST_FILE);
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| ManagerError::Io {
            what: "encode",
            path: path.clone(),
            source: e.into(),
        })?;
        std::fs::write(&path, text).map_err(ManagerError::io("write", &path))?;
        written.paths.push(path.clone());
        give(&path, 0, 0, 0o600)?;
        Ok(written.paths.clone())
    }
}

const PAUSE: &str = r#"{"state": "Paused"}"#;
const RESUME: &str = r#"{"state": "Resumed"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_made_or_must_hold_no_snapshot() {
        let dir = crate::test_daemon::fresh_dir("snapshot", "dir");
        let message = |d: &Path| prepare_dir(d).unwrap_err().to_string();
        assert!(message(Path::new("rel/dir")).contains("absolute path"));
        assert!(prepare_dir(&dir).unwrap(), "made");
        assert!(!prepare_dir(&dir).unwrap(), "empty: taken as it is");
        std::fs::write(dir.join(MEMORY_FILE), b"").unwrap();
        assert!(message(&dir).contains("holds a snapshot already"));
        assert!(message(&dir.join(MEMORY_FILE)).contains("not a directory"));
        assert!(read_manifest(&dir)
            .unwrap_err()
            .to_string()
            .contains("holds no snapshot"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn disks_must_have_names_of_their_own() {
        let config = |disks: &[&str]| GuestConfig {
            disk: disks.iter().map(|d| d.to_string()).collect(),
            ..GuestConfig::default()
        };
        check_disks(&config(&[
            "path=/a/root.raw,readonly=on",
            "path=/b/data.raw",
        ]))
        .unwrap();
        let message = |disks: &[&str]| check_disks(&config(disks)).unwrap_err().to_string();
        assert!(message(&["path=/a/x.raw", "path=/b/x.raw"]).contains("another disk"));
        assert!(message(&["path=/a/memory"]).contains("holds a file of this name"));
        assert!(message(&["id=root"]).contains("no path="));
        assert_eq!(disk_name("id=r,path=/a/b.raw,readonly=on"), Some("b.raw"));
        assert!(disk_is_readonly("path=/a,readonly=on"));
        assert!(!disk_is_readonly("path=/a"));
    }
}
