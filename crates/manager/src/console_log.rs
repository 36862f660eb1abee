//! Keeping a guest's console log from filling the host's disk. The VMM
//! writes its console straight to `console.log` (opened with O_APPEND by
//! the daemon, so that no output passes through the daemon), and a guest
//! can print for ever. Once the log passes its limit the daemon copies it
//! to `console.log.1` (replacing the older one) and truncates it: the
//! VMM's next write lands at the new end, as with logrotate's
//! `copytruncate`. A guest's logs then take at most about twice the limit.
//! Output the VMM writes between the copy and the truncation (a few
//! microseconds) is lost; a rename would lose nothing but cannot work, as
//! the VMM would go on writing to the renamed file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::size::MIB;

/// `pointsman serve --console-log-max`'s default.
pub const DEFAULT_MAX_BYTES: u64 = 16 * MIB;

/// The previous log kept beside `log`.
pub fn previous(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// Moves `log`'s content to [`previous`] and empties it if it is longer
/// than `max`; whether it did.
pub fn rotate_if_over(log: &Path, max: u64) -> std::io::Result<bool> {
    let len = match std::fs::metadata(log) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= max {
        return Ok(false);
    }
    // Copied aside and renamed over the older copy: each kept part is a
    // new file, whose inode is the log's generation.
    let mut staging = previous(log).into_os_string();
    staging.push(".new");
    std::fs::copy(log, &staging)?;
    std::fs::rename(&staging, previous(log))?;
    File::options().write(true).open(log)?.set_len(0)?;
    Ok(true)
}

/// Which part of the output `log` holds now: the inode of the part kept
/// last ([`previous`]), new at each rotation; 0 before the first. A
/// follower that read another generation knows the log was emptied since.
pub fn generation(log: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(previous(log)).map_or(0, |m| m.ino())
}

/// The last `max` bytes of the console's output, as text: the end of the
/// previous log too when the current one is shorter.
pub fn read_end(log: &Path, max: u64) -> std::io::Result<String> {
    let current = read_file_end(log, max)?;
    let wanted = max.saturating_sub(u64::try_from(current.len()).unwrap_or(u64::MAX));
    let mut bytes = if wanted > 0 {
        match read_file_end(&previous(log), wanted) {
            Ok(older) => older,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        }
    } else {
        Vec::new()
    };
    bytes.extend_from_slice(&current);
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last `max` bytes of `path`.
fn read_file_end(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_log_past_its_limit_is_kept_once_and_emptied_and_appends_go_on() {
        let dir = crate::test_daemon::made_dir("console-log", "rotate");
        let log = dir.join("console.log");
        // As the daemon hands it to the VMM.
        let mut vmm = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        vmm.write_all(b"0123456789").unwrap();
        assert!(!rotate_if_over(&log, 10).unwrap(), "at the limit: kept");
        vmm.write_all(b"ab").unwrap();
        assert_eq!(generation(&log), 0);
        assert!(rotate_if_over(&log, 10).unwrap());
        let first = generation(&log);
        assert_ne!(first, 0);
        assert_eq!(std::fs::read(previous(&log)).unwrap(), b"0123456789ab");
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
        // O_APPEND: the next write starts the emptied file, no hole.
        vmm.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), b"new");
        // The end of the output spans both files.
        assert_eq!(read_end(&log, 6).unwrap(), "9abnew");
        assert_eq!(read_end(&log, 2).unwrap(), "ew");
        assert_eq!(read_end(&log, 100).unwrap(), "0123456789abnew");
        // A second rotation replaces the older copy.
        vmm.write_all(b"0123456789").unwrap();
        assert!(rotate_if_over(&log, 10).unwrap());
        assert_eq!(std::fs::read(previous(&log)).unwrap(), b"new0123456789");
        assert_ne!(generation(&log), first);
        // No log yet: nothing to do.
        assert!(!rotate_if_over(&dir.join("none.log"), 10).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_end_of_a_log_never_rotated_is_its_own() {
        let dir = crate::test_daemon::made_dir("console-log", "plain");
        let log = dir.join("console.log");
        std::fs::write(&log, b"hello\nworld\n").unwrap();
        assert_eq!(read_end(&log, 6).unwrap(), "world\n");
        assert_eq!(read_end(&log, 1 << 20).unwrap(), "hello\nworld\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
