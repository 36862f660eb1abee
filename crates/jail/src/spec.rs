//! What a jail is made of, and the checks that need no change to the host.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::cgroup::{CgroupSetting, CgroupVersion};
use crate::limits::ResourceLimits;
use crate::{JailError, EXEC_NAME};

/// One file of the VM's, given to the jail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmFile {
    /// A file the VMM opens (kernel, initrd, disk image, snapshot):
    /// bind-mounted at `/<name>` in the root.
    Input {
        /// For messages: the option that named it (`--kernel`).
        what: String,
        host: PathBuf,
        name: String,
        /// The guest may write it (a disk that is not read-only).
        writable: bool,
    },
    /// A file the VMM creates (an API or vsock socket, a snapshot being
    /// written): at `/<name>` in the root, which the VMM's user owns.
    Output { what: String, name: String },
}

impl VmFile {
    /// Its name in the root (a single path component).
    pub fn name(&self) -> &str {
        match self {
            VmFile::Input { name, .. } | VmFile::Output { name, .. } => name,
        }
    }

    /// Its path as the jailed VMM sees it.
    pub fn inside(&self) -> PathBuf {
        Path::new("/").join(self.name())
    }
}

/// How to jail one VMM (`pointsman jail`'s options).
#[derive(Clone, Debug)]
pub struct JailSpec {
    pub id: String,
    pub uid: u32,
    pub gid: u32,
    pub allow_root: bool,
    /// The root is `<chroot_base>/pointsman/<id>/root`.
    pub chroot_base: PathBuf,
    /// A network namespace to join (`/var/run/netns/NAME`).
    pub netns: Option<PathBuf>,
    pub cgroups: Vec<CgroupSetting>,
    pub cgroup_version: CgroupVersion,
    /// Under which cgroup the VMM's own is made (`pointsman` by default).
    pub parent_cgroup: String,
    pub limits: ResourceLimits,
    pub daemonize: bool,
    pub new_pid_ns: bool,
    /// The TAPs the VM's NICs use: made (or taken) for the VMM's user.
    pub taps: Vec<String>,
}

/// Longest id, as Firecracker's jailer.
const MAX_ID_LEN: usize = 64;

impl JailSpec {
    /// `<chroot_base>/pointsman/<id>`: what the jail adds to the host.
    pub fn instance_dir(&self) -> PathBuf {
        self.chroot_base.join(EXEC_NAME).join(&self.id)
    }

    /// The VMM's root.
    pub fn root(&self) -> PathBuf {
        self.instance_dir().join("root")
    }

    /// Everything that can be checked before the host is changed.
    pub fn validate(&self, files: &[VmFile]) -> Result<(), JailError> {
        let id_ok = !self.id.is_empty()
            && self.id.len() <= MAX_ID_LEN
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(JailError::BadId(self.id.clone()));
        }
        if (self.uid == 0 || self.gid == 0) && !self.allow_root {
            return Err(JailError::RootUser);
        }
        if !self.chroot_base.is_absolute() {
            return Err(JailError::BaseRelative(self.chroot_base.clone()));
        }
        if !self.chroot_base.is_dir() {
            return Err(JailError::BaseNotDirectory(self.chroot_base.clone()));
        }
        if self.instance_dir().exists() {
            return Err(JailError::Exists(self.instance_dir()));
        }
        if let Some(netns) = &self.netns {
            std::fs::File::open(netns).map_err(|source| JailError::NetNs {
                path: netns.clone(),
                source,
            })?;
        }
        if let Some(bad) = self.taps.iter().find(|t| !crate::tap::valid_name(t)) {
            return Err(JailError::BadTap(bad.clone()));
        }
        crate::cgroup::validate(self)?;
        check_files(files)?;
        for file in files {
            if let VmFile::Input {
                what,
                host,
                writable,
                ..
            } = file
            {
                self.check_access(what, host, *writable)?;
            }
        }
        Ok(())
    }

    /// The VMM's user must be able to open `host` as it will (the jail
    /// changes no file's owner on the host: give the file to that user,
    /// or to its group, as for Firecracker's jailer).
    fn check_access(&self, what: &str, host: &Path, writable: bool) -> Result<(), JailError> {
        use std::os::unix::fs::MetadataExt;
        if self.uid == 0 {
            return Ok(());
        }
        let meta = std::fs::metadata(host).map_err(|source| JailError::MissingFile {
            what: what.to_owned(),
            path: host.to_owned(),
            source,
        })?;
        // The permission bits that apply to the VMM's user: owner's,
        // group's or others'.
        let shift = if meta.uid() == self.uid {
            6
        } else if meta.gid() == self.gid {
            3
        } else {
            0
        };
        let bits = (meta.mode() >> shift) & 0o7;
        let needed = if writable { 0o6 } else { 0o4 };
        if bits & needed == needed {
            return Ok(());
        }
        Err(JailError::NoAccess {
            what: what.to_owned(),
            path: host.to_owned(),
            uid: self.uid,
            access: if writable { "read and write" } else { "read" },
            owner: meta.uid(),
            mode: meta.mode() & 0o7777,
        })
    }
}

/// Each input exists and is a file or block device; no two files share
/// a name in the root, nor take the binary's.
fn check_files(files: &[VmFile]) -> Result<(), JailError> {
    let mut names = HashSet::from([EXEC_NAME, "dev"]);
    for file in files {
        if !names.insert(file.name()) {
            return Err(JailError::SameName(file.inside().display().to_string()));
        }
        if let VmFile::Input { what, host, .. } = file {
            let meta = std::fs::metadata(host).map_err(|source| JailError::MissingFile {
                what: what.clone(),
                path: host.clone(),
                source,
            })?;
            use std::os::unix::fs::FileTypeExt;
            if !(meta.is_file() || meta.file_type().is_block_device()) {
                return Err(JailError::NotAFile {
                    what: what.clone(),
                    path: host.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(base: &Path) -> JailSpec {
        JailSpec {
            id: "vm1".into(),
            uid: 1000,
            gid: 1000,
            allow_root: false,
            chroot_base: base.to_owned(),
            netns: None,
            cgroups: Vec::new(),
            cgroup_version: CgroupVersion::V1,
            parent_cgroup: "pointsman".into(),
            limits: ResourceLimits::default(),
            daemonize: false,
            new_pid_ns: false,
            taps: Vec::new(),
        }
    }

    fn input(host: &str, name: &str) -> VmFile {
        VmFile::Input {
            what: "--kernel".into(),
            host: host.into(),
            name: name.into(),
            writable: false,
        }
    }

    #[test]
    fn bad_specs_are_refused_by_name() {
        let base = std::env::temp_dir();
        let ok = spec(&base);
        ok.validate(&[input("/proc/self/exe", "vmlinux")]).unwrap();
        for (change, why) in [
            (
                Box::new(|s: &mut JailSpec| s.id = "a/b".into()) as Box<dyn Fn(&mut JailSpec)>,
                "--id",
            ),
            (Box::new(|s| s.id = String::new()), "--id"),
            (Box::new(|s| s.id = "x".repeat(65)), "--id"),
            (Box::new(|s| s.uid = 0), "--allow-root"),
            (Box::new(|s| s.taps = vec!["a/b".into()]), "TAP"),
            (Box::new(|s| s.gid = 0), "--allow-root"),
            (
                Box::new(|s| s.chroot_base = "/proc/self/exe".into()),
                "not a directory",
            ),
            (Box::new(|s| s.chroot_base = "rel".into()), "relative"),
            (
                Box::new(|s| s.netns = Some("/nonexistent/netns".into())),
                "--netns",
            ),
        ] {
            let mut bad = ok.clone();
            change(&mut bad);
            let err = bad.validate(&[]).unwrap_err();
            assert!(err.is_bad_input(), "{err}");
            assert!(err.to_string().contains(why), "{err}");
        }
        let mut root = ok.clone();
        (root.uid, root.gid, root.allow_root) = (0, 0, true);
        root.validate(&[]).unwrap();
    }

    #[test]
    fn files_must_exist_and_not_collide() {
        let ok = spec(&std::env::temp_dir());
        let missing = ok.validate(&[input("/nonexistent/vmlinux", "vmlinux")]);
        assert!(matches!(missing, Err(JailError::MissingFile { .. })));
        let dir = ok.validate(&[input("/tmp", "tmp")]);
        assert!(matches!(dir, Err(JailError::NotAFile { .. })));
        let twice = ok.validate(&[
            input("/proc/self/exe", "a"),
            VmFile::Output {
                what: "--api-sock".into(),
                name: "a".into(),
            },
        ]);
        assert!(matches!(twice, Err(JailError::SameName(_))));
        let mut unreadable = ok.clone();
        unreadable.uid = 4242;
        let dir = std::env::temp_dir().join(format!("jail-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, b"k").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let disk = |writable| VmFile::Input {
            what: "--disk".into(),
            host: secret.clone(),
            name: "secret".into(),
            writable,
        };
        unreadable.validate(&[disk(false)]).unwrap();
        let err = unreadable.validate(&[disk(true)]).unwrap_err();
        assert!(err.to_string().contains("read and write"), "{err}");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = unreadable.validate(&[disk(false)]).unwrap_err();
        assert!(
            err.is_bad_input() && err.to_string().contains("chown"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let binary = ok.validate(&[input("/proc/self/exe", EXEC_NAME)]);
        assert!(matches!(binary, Err(JailError::SameName(_))));
    }
}
