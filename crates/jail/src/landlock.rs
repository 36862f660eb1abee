//! Landlock: the VMM limits its own file access to the files its guest
//! needs, so that code run through a device bug cannot open others even
//! where the user it runs as could. Applied on the main thread before
//! any other thread starts (each thread inherits it).

use std::path::PathBuf;

use landlock::{
    path_beneath_rules, Access, AccessFs, BitFlags, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, ABI,
};

/// The Landlock ABI whose rights are handled: 3 adds truncation. A
/// kernel with an older one enforces what it knows (best effort).
const ABI_HANDLED: ABI = ABI::V3;

/// How the VMM may use a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileAccess {
    /// Read a file (a kernel, a read-only disk, a snapshot).
    Read(PathBuf),
    /// Read and write a file (a disk, /dev/kvm).
    ReadWrite(PathBuf),
    /// Make, write and remove files and sockets beneath a directory
    /// (where snapshots or logs are made).
    Directory(PathBuf),
    /// Make and remove sockets in a directory, and nothing else (where
    /// the API and vsock sockets are).
    Sockets(PathBuf),
}

/// What the kernel did with the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LandlockStatus {
    Enforced,
    /// An older Landlock: some rights (truncation) are not restricted.
    PartlyEnforced,
    /// No Landlock in this kernel: nothing is restricted.
    Unavailable,
}

/// Why the rules could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("cannot restrict file access with Landlock: {0}")]
pub struct LandlockError(String);

/// Restricts this thread (and the threads it starts later) to `allowed`.
pub fn restrict_to(allowed: &[FileAccess]) -> Result<LandlockStatus, LandlockError> {
    let err = |e: &dyn std::fmt::Display| LandlockError(e.to_string());
    let read = AccessFs::from_read(ABI_HANDLED);
    let read_write: BitFlags<AccessFs> = read | AccessFs::WriteFile | AccessFs::Truncate;
    let paths = |pick: fn(&FileAccess) -> Option<&PathBuf>| -> Vec<PathBuf> {
        allowed.iter().filter_map(pick).cloned().collect()
    };
    let reads = paths(|a| match a {
        FileAccess::Read(p) => Some(p),
        _ => None,
    });
    let writes = paths(|a| match a {
        FileAccess::ReadWrite(p) => Some(p),
        _ => None,
    });
    let dirs = paths(|a| match a {
        FileAccess::Directory(p) => Some(p),
        _ => None,
    });
    let socket_dirs = paths(|a| match a {
        FileAccess::Sockets(p) => Some(p),
        _ => None,
    });
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_HANDLED))
        .map_err(|e| err(&e))?
        .create()
        .map_err(|e| err(&e))?
        .add_rules(path_beneath_rules(&reads, read))
        .map_err(|e| err(&e))?
        .add_rules(path_beneath_rules(&writes, read_write))
        .map_err(|e| err(&e))?
        .add_rules(path_beneath_rules(&dirs, AccessFs::from_all(ABI_HANDLED)))
        .map_err(|e| err(&e))?
        .add_rules(path_beneath_rules(
            &socket_dirs,
            AccessFs::MakeSock | AccessFs::RemoveFile,
        ))
        .map_err(|e| err(&e))?
        .restrict_self()
        .map_err(|e| err(&e))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LandlockStatus::Enforced,
        RulesetStatus::PartiallyEnforced => LandlockStatus::PartlyEnforced,
        RulesetStatus::NotEnforced => LandlockStatus::Unavailable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a thread of its own (Landlock stays with the thread): a file
    /// allowed for reading reads, one not allowed does not, nor can one
    /// be made outside the allowed directory.
    #[test]
    fn only_allowed_files_open() {
        let dir = std::env::temp_dir().join(format!("jail-landlock-{}", std::process::id()));
        let inside = dir.join("inside");
        std::fs::create_dir_all(&inside).unwrap();
        let allowed = dir.join("allowed");
        let other = dir.join("other");
        std::fs::write(&allowed, b"a").unwrap();
        std::fs::write(&other, b"o").unwrap();
        let sockets = dir.join("sockets");
        std::fs::create_dir_all(&sockets).unwrap();
        let (a, o, i, d, s) = (
            allowed.clone(),
            other.clone(),
            inside.clone(),
            dir.clone(),
            sockets.clone(),
        );
        let status = std::thread::spawn(move || {
            let status = restrict_to(&[
                FileAccess::Read(a.clone()),
                FileAccess::Directory(i.clone()),
                FileAccess::Sockets(s.clone()),
            ])
            .unwrap();
            if status == LandlockStatus::Unavailable {
                return status;
            }
            assert_eq!(std::fs::read(&a).unwrap(), b"a");
            assert!(
                std::fs::write(&a, b"x").is_err(),
                "a read-only file was written"
            );
            assert!(std::fs::read(&o).is_err(), "a file not allowed was read");
            std::fs::write(i.join("made"), b"m").unwrap();
            assert!(
                std::fs::write(d.join("made"), b"m").is_err(),
                "a file was made outside"
            );
            std::os::unix::net::UnixListener::bind(s.join("api.sock")).unwrap();
            std::fs::remove_file(s.join("api.sock")).unwrap();
            let beside = std::fs::write(s.join("file"), b"f");
            assert!(beside.is_err(), "a file was made beside sockets");
            status
        })
        .join()
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        eprintln!("landlock: {status:?}");
    }
}
