//! Moving and copying the big files of snapshots and clones: a rename
//! where source and target share a file system, a reflink (the blocks
//! shared until either side writes) where the file system has them, a
//! plain copy otherwise.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::ManagerError;

/// `FICLONE` (`_IOW(0x94, 9, int)`, linux/fs.h): the target file shares
/// all of the source's blocks, copy-on-write (btrfs, XFS, bcachefs).
const FICLONE: libc::c_ulong = 0x4004_9409;

/// How a file got to its new place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copied {
    Renamed,
    Reflinked,
    Copied,
}

/// Moves `from` to `to` (which must not exist): renamed on one file
/// system, else copied and the source removed.
pub fn move_file(from: &Path, to: &Path) -> Result<Copied, ManagerError> {
    match std::fs::rename(from, to) {
        Ok(()) => return Ok(Copied::Renamed),
        Err(e) if e.raw_os_error() != Some(libc::EXDEV) => {
            return Err(ManagerError::io("move", from)(e))
        }
        Err(_) => {}
    }
    let how = copy_file(from, to)?;
    std::fs::remove_file(from).map_err(ManagerError::io("remove", from))?;
    Ok(how)
}

/// Copies `from` to a new file `to` (mode 0600), reflinked where the file
/// system can.
pub fn copy_file(from: &Path, to: &Path) -> Result<Copied, ManagerError> {
    let mut source = File::open(from).map_err(ManagerError::io("open", from))?;
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(ManagerError::io("create", to))?;
    // SAFETY: FICLONE reads the source descriptor number and changes only
    // the target file's blocks; both descriptors are open and owned here.
    let cloned = unsafe { libc::ioctl(target.as_raw_fd(), FICLONE as _, source.as_raw_fd()) };
    if cloned == 0 {
        return Ok(Copied::Reflinked);
    }
    // std's copy goes through copy_file_range, which keeps it in the
    // kernel (and is itself a reflink on some file systems).
    std::io::copy(&mut source, &mut target).map_err(ManagerError::io("copy", from))?;
    target.sync_all().map_err(ManagerError::io("write", to))?;
    Ok(Copied::Copied)
}

/// Gives `path` to `uid`:`gid` with `mode`.
pub fn give(path: &Path, uid: u32, gid: u32, mode: u32) -> Result<(), ManagerError> {
    use std::os::unix::fs::PermissionsExt;
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(ManagerError::io("chown", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(ManagerError::io("set the mode of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_whole_and_new_and_a_move_leaves_no_source() {
        let dir = std::env::temp_dir().join(format!("manager-copy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let (a, b, c) = (dir.join("a"), dir.join("b"), dir.join("c"));
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&a, &bytes).unwrap();
        let how = copy_file(&a, &b).unwrap();
        assert_ne!(how, Copied::Renamed);
        assert_eq!(std::fs::read(&b).unwrap(), bytes);
        // The copy is its own file: writing it leaves the source as it was.
        std::fs::write(&b, b"changed").unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), bytes);
        // A target that exists is never overwritten.
        assert!(copy_file(&a, &b).is_err());
        assert_eq!(move_file(&a, &c).unwrap(), Copied::Renamed);
        assert!(!a.exists());
        assert_eq!(std::fs::read(&c).unwrap(), bytes);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
