//! The daemon's state directory: one lock so that one daemon owns it, a
//! directory per guest with what the daemon needs to find the guest
//! again after a restart, and the guests' jails.
//!
//! ```text
//! STATE/pointsman.lock                 flock'd by the running daemon
//! STATE/guests/NAME/config.json        the create request
//! STATE/guests/NAME/process.json       pid, start time, uid
//! STATE/guests/NAME/console.log        the VMM's stdout and stderr
//! STATE/guests/NAME/console.in         FIFO: the VMM's stdin (console input)
//! STATE/guests/NAME/exit.json          how it ended, once it has
//! STATE/jails/pointsman/NAME/root/     the jail (api.sock inside)
//! ```

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::ManagerError;

pub const LOCK_FILE: &str = "pointsman.lock";
pub const CONFIG_FILE: &str = "config.json";
pub const PROCESS_FILE: &str = "process.json";
pub const CONSOLE_FILE: &str = "console.log";
pub const CONSOLE_INPUT_FILE: &str = "console.in";
pub const EXIT_FILE: &str = "exit.json";

/// The VMM's API socket, as the VMM sees it inside its root.
pub const API_SOCK_IN_JAIL: &str = "/api.sock";

/// Which process runs a guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    pub pid: u32,
    /// Field 22 of /proc/PID/stat when the daemon started it.
    pub start_time: u64,
    /// The guest's user and group id.
    pub uid: u32,
}

/// How a guest's VMM ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// The exit status, or 128 + signal; unknown for a guest the daemon
    /// adopted (not its child, so not its to reap).
    pub status: Option<i32>,
    pub reason: String,
}

/// The state directory, locked for this daemon while the value lives.
#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    _lock: File,
}

impl StateDir {
    /// Makes the layout and takes the lock; another daemon holding it is
    /// [`ManagerError::Locked`].
    pub fn open(root: &Path) -> Result<StateDir, ManagerError> {
        let root = std::path::absolute(root).map_err(ManagerError::io("find", root))?;
        for dir in [root.clone(), root.join("guests"), root.join("jails")] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(ManagerError::io("create", &dir))?;
        }
        let lock_path = root.join(LOCK_FILE);
        // Close-on-exec (std's default): guests must not hold the lock.
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(ManagerError::io("open", &lock_path))?;
        // SAFETY: flock on a descriptor `lock` owns; no memory involved.
        let taken = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if taken != 0 {
            let error = std::io::Error::last_os_error();
            return Err(match error.kind() {
                std::io::ErrorKind::WouldBlock => ManagerError::Locked { dir: root },
                _ => ManagerError::io("lock", lock_path)(error),
            });
        }
        Ok(StateDir { root, _lock: lock })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn guest_dir(&self, name: &str) -> PathBuf {
        self.root.join("guests").join(name)
    }

    /// `--chroot-base` of every guest's jail.
    pub fn jails_dir(&self) -> PathBuf {
        self.root.join("jails")
    }

    /// Where the jail makes guest `name`'s root, and what `rm` removes.
    pub fn jail_dir(&self, name: &str) -> PathBuf {
        self.jails_dir().join("pointsman").join(name)
    }

    /// The guest's API socket as the host sees it.
    pub fn api_socket(&self, name: &str) -> PathBuf {
        self.jail_dir(name).join("root").join("api.sock")
    }

    pub fn console(&self, name: &str) -> PathBuf {
        self.guest_dir(name).join(CONSOLE_FILE)
    }

    /// The FIFO the guest's VMM reads its console input from.
    pub fn console_input(&self, name: &str) -> PathBuf {
        self.guest_dir(name).join(CONSOLE_INPUT_FILE)
    }

    /// The names of the guests that have a directory.
    pub fn guest_names(&self) -> Result<Vec<String>, ManagerError> {
        let dir = self.root.join("guests");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(ManagerError::io("read", &dir))? {
            let entry = entry.map_err(ManagerError::io("read", &dir))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Makes guest `name`'s directory; it must not exist.
    pub fn create_guest_dir(&self, name: &str) -> Result<PathBuf, ManagerError> {
        let dir = self.guest_dir(name);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(ManagerError::io("create", &dir))?;
        Ok(dir)
    }

    /// Opens the console log for the VMM to write (appending, so that
    /// nothing from a previous run is lost).
    pub fn open_console(&self, name: &str) -> Result<File, ManagerError> {
        let path = self.console(name);
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&path)
            .map_err(ManagerError::io("open", &path))
    }

    pub fn write_json<T: Serialize>(
        &self,
        name: &str,
        file: &str,
        value: &T,
    ) -> Result<(), ManagerError> {
        let path = self.guest_dir(name).join(file);
        let text = serde_json::to_vec_pretty(value).map_err(|e| ManagerError::Io {
            what: "encode",
            path: path.clone(),
            source: e.into(),
        })?;
        // Written whole then renamed: a crash leaves the old or the new.
        let partial = path.with_extension("json.new");
        std::fs::write(&partial, text).map_err(ManagerError::io("write", &partial))?;
        std::fs::rename(&partial, &path).map_err(ManagerError::io("rename", &path))
    }

    /// A guest's JSON file; `Ok(None)` if it is not there.
    pub fn read_json<T: DeserializeOwned>(
        &self,
        name: &str,
        file: &str,
    ) -> Result<Option<T>, ManagerError> {
        let path = self.guest_dir(name).join(file);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ManagerError::io("read", &path)(e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| ManagerError::Io {
                what: "parse",
                path,
                source: e.into(),
            })
    }

    /// Removes the guest's directory and its jail.
    pub fn remove_guest(&self, name: &str) -> Result<(), ManagerError> {
        for dir in [self.jail_dir(name), self.guest_dir(name)] {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(ManagerError::io("remove", &dir)(e))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_daemon_per_state_dir() {
        let root = std::env::temp_dir().join(format!("manager-state-{}", std::process::id()));
        let first = StateDir::open(&root).unwrap();
        let second = StateDir::open(&root).unwrap_err();
        assert!(matches!(second, ManagerError::Locked { .. }), "{second}");
        first.create_guest_dir("a").unwrap();
        let record = ProcessRecord {
            pid: 7,
            start_time: 8,
            uid: 40000,
        };
        first.write_json("a", PROCESS_FILE, &record).unwrap();
        assert_eq!(first.read_json("a", PROCESS_FILE).unwrap(), Some(record));
        assert_eq!(first.read_json::<ExitRecord>("a", EXIT_FILE).unwrap(), None);
        assert_eq!(first.guest_names().unwrap(), ["a"]);
        first.remove_guest("a").unwrap();
        assert!(first.guest_names().unwrap().is_empty());
        drop(first);
        // The lock goes with the daemon.
        let again = StateDir::open(&root).unwrap();
        drop(again);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
