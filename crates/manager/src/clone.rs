//! `PUT /vms/{name}/clone`: a new guest restored from a snapshot that
//! `vm snapshot` made. It is admitted as `create` admits (the snapshot's
//! guest's memory and vCPUs), gets a uid, cgroup, jail and console of its
//! own, and its VMM runs `pointsman run --restore --resume` inside its
//! jail. The memory file is shared by every clone (read-only, mapped
//! copy-on-write); each writable disk is copied for each clone (a reflink
//! where the file system has them), read-only ones are shared.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::daemon::Daemon;
use crate::file_copy::{copy_file, give};
use crate::guest::GuestConfig;
use crate::snapshot::{
    disk_is_readonly, disk_name, disk_path, read_manifest, DISKS_DIR, MEMORY_FILE, SNAPSHOT_FILE,
};
use crate::ManagerError;

/// Where a clone came from and what its jail needs beyond a boot's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneOrigin {
    /// The snapshot's directory.
    pub snapshot_dir: PathBuf,
    /// The guest the snapshot is of.
    pub source: String,
    /// The group that may read the snapshot's files: the clone's VMM's.
    pub gid: u32,
    /// `--net id=ID,tap=TAP`: the clone's own TAP for each NIC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net: Vec<String>,
    /// `pointsman jail --file` specs: the disks, which the snapshot's
    /// configuration names by their place in the jail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

impl CloneOrigin {
    /// The arguments of `pointsman run` that restore the clone, paths as
    /// on the host (the jail rewrites them).
    pub fn run_args(&self, api_sock: &str) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--restore".into(),
            self.snapshot_dir.join(SNAPSHOT_FILE).into(),
            "--mem-file".into(),
            self.snapshot_dir.join(MEMORY_FILE).into(),
            "--resume".into(),
            "--api-sock".into(),
            api_sock.into(),
        ];
        for net in &self.net {
            args.push("--net".into());
            args.push(net.into());
        }
        args
    }
}

/// The body of `PUT /vms/{name}/clone`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// The snapshot's directory.
    pub dir: PathBuf,
    /// `id=ID,tap=TAP` for each NIC of the snapshot's guest.
    #[serde(default)]
    pub net: Vec<String>,
}

/// `spec` for the clone `name`, the `index`th of one `vm clone` (from 0):
/// `{name}` and `{index}` replaced.
pub fn expand(spec: &str, name: &str, index: usize) -> String {
    spec.replace("{name}", name)
        .replace("{index}", &index.to_string())
}

/// A disk of the clone: the jail's `--file` spec, the clone's `--disk`
/// spec (recorded in its config) and, for a writable disk, the copy to
/// make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloneDisk {
    pub file: String,
    pub spec: String,
    pub copy: Option<(PathBuf, PathBuf)>,
}

/// Each disk of `config` for a clone whose directory is `guest_dir`: a
/// read-only disk shared as it is; a writable one copied from the
/// snapshot's `disks/` to the clone's `disks/`, under the same name (the
/// name the snapshot's configuration gives it in the jail).
pub fn plan_disks(config: &GuestConfig, snapshot_dir: &Path, guest_dir: &Path) -> Vec<CloneDisk> {
    let mut disks = Vec::new();
    for spec in &config.disk {
        let (Some(host), Some(name)) = (disk_path(spec), disk_name(spec)) else {
            continue;
        };
        if disk_is_readonly(spec) {
            disks.push(CloneDisk {
                file: format!("path={host},readonly=on"),
                spec: spec.clone(),
                copy: None,
            });
            continue;
        }
        let copy = guest_dir.join(DISKS_DIR).join(name);
        let with_copy = spec
            .split(',')
            .map(|part| match part.strip_prefix("path=") {
                Some(_) => format!("path={}", copy.display()),
                None => part.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",");
        disks.push(CloneDisk {
            file: format!("path={}", copy.display()),
            spec: with_copy,
            copy: Some((snapshot_dir.join(DISKS_DIR).join(name), copy)),
        });
    }
    disks
}

impl Daemon {
    /// Admits and starts guest `name` restored from the snapshot in
    /// `request.dir`. Whatever fails leaves nothing, as `create`.
    pub fn clone_guest(
        &mut self,
        name: &str,
        request: CloneRequest,
    ) -> Result<Value, ManagerError> {
        let dir = &request.dir;
        if !dir.is_absolute() {
            return Err(ManagerError::SnapshotDir {
                dir: dir.clone(),
                why: "give an absolute path (the daemon has its own working directory)".into(),
            });
        }
        let manifest = read_manifest(dir)?;
        let missing = |file: &str, e: std::io::Error| ManagerError::SnapshotDir {
            dir: dir.clone(),
            why: format!("{file}: {e}"),
        };
        std::fs::metadata(dir.join(SNAPSHOT_FILE)).map_err(|e| missing(SNAPSHOT_FILE, e))?;
        // The memory file's group is the one that may read the snapshot.
        let gid = std::fs::metadata(dir.join(MEMORY_FILE))
            .map_err(|e| missing(MEMORY_FILE, e))?
            .gid();
        let nics = manifest.config.net.len();
        if nics > 0 && request.net.is_empty() {
            return Err(ManagerError::BadGuest(format!(
                "the snapshot's guest has {nics} NIC(s): give each clone its own TAP with \
                 --net id=ID,tap=TAP ({{name}} and {{index}} in it are replaced per clone)"
            )));
        }
        let mut config = manifest.config;
        let disks = plan_disks(&config, dir, &self.state.guest_dir(name));
        config.disk = disks.iter().map(|d| d.spec.clone()).collect();
        let origin = CloneOrigin {
            snapshot_dir: dir.clone(),
            source: manifest.guest,
            gid,
            net: request.net,
            files: disks.iter().map(|d| d.file.clone()).collect(),
        };
        config.clone_of = Some(origin);
        let uid = self.admit(name, &config)?;
        let guest_dir = self.state.create_guest_dir(name)?;
        if let Err(e) = copy_disks(&guest_dir, &disks, uid, gid) {
            self.clean_up(name);
            return Err(e);
        }
        self.launch(name, config, uid)
    }
}

/// Makes the clone's own copies of its writable disks, its VMM's alone.
fn copy_disks(
    guest_dir: &Path,
    disks: &[CloneDisk],
    uid: u32,
    gid: u32,
) -> Result<(), ManagerError> {
    let copies: Vec<&(PathBuf, PathBuf)> = disks.iter().filter_map(|d| d.copy.as_ref()).collect();
    if copies.is_empty() {
        return Ok(());
    }
    let dir = guest_dir.join(DISKS_DIR);
    std::fs::create_dir(&dir).map_err(ManagerError::io("create", &dir))?;
    for (from, to) in copies {
        copy_file(from, to)?;
        give(to, uid, gid, 0o600)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{Manifest, GUEST_FILE};

    /// A daemon whose "pointsman" is `/bin/false` (every VMM exits at
    /// once) and a snapshot directory holding `config`'s guest.
    fn daemon_and_snapshot(tag: &str, config: GuestConfig) -> (Daemon, PathBuf) {
        let root = crate::test_daemon::fresh_dir("clone", tag);
        let daemon = crate::test_daemon::open(&root.join("state"), "/bin/false");
        let snap = root.join("snap");
        std::fs::create_dir_all(snap.join(DISKS_DIR)).unwrap();
        for file in [SNAPSHOT_FILE, MEMORY_FILE, "disks/data.raw"] {
            std::fs::write(snap.join(file), b"").unwrap();
        }
        let manifest = Manifest {
            guest: "orig".into(),
            config,
        };
        std::fs::write(
            snap.join(GUEST_FILE),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        (daemon, root)
    }

    fn request(dir: &Path, net: &[&str]) -> CloneRequest {
        CloneRequest {
            dir: dir.to_owned(),
            net: net.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn a_refused_or_failed_clone_leaves_nothing() {
        let config = GuestConfig {
            kernel: Some("/k".into()),
            memory: "64M".into(),
            cpus: 1,
            disk: vec!["path=/img/data.raw".into()],
            net: vec!["id=eth0,tap=tap0".into()],
            ..GuestConfig::default()
        };
        let (mut d, root) = daemon_and_snapshot("refused", config);
        let snap = root.join("snap");
        let message = |d: &mut Daemon, dir: &Path, net: &[&str]| {
            d.clone_guest("c1", request(dir, net))
                .unwrap_err()
                .to_string()
        };
        assert!(message(&mut d, Path::new("snap"), &[]).contains("absolute path"));
        assert!(message(&mut d, &root, &[]).contains("holds no snapshot"));
        let no_taps = message(&mut d, &snap, &[]);
        assert!(no_taps.contains("has 1 NIC(s)"), "{no_taps}");
        // `/bin/false` as the VMM: the clone fails to start, its disk
        // copy goes with the rest.
        let failed = message(&mut d, &snap, &["id=eth0,tap=tap-c1"]);
        // SAFETY: geteuid has no preconditions.
        let root_user = unsafe { libc::geteuid() } == 0;
        // Only root gives the copy to the clone's uid.
        let expected = if root_user { "exited at once" } else { "chown" };
        assert!(failed.contains(expected), "{failed}");
        assert!(!root.join("state/guests/c1").exists());
        assert_eq!(d.list(), serde_json::json!([]));
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn placeholders_give_each_clone_its_own() {
        let spec = "id=eth0,tap=tap-{name}-{index}";
        assert_eq!(expand(spec, "c1", 0), "id=eth0,tap=tap-c1-0");
        assert_eq!(expand(spec, "web_2", 11), "id=eth0,tap=tap-web_2-11");
        assert_eq!(expand("id=eth0,tap=t0", "c1", 3), "id=eth0,tap=t0");
    }

    #[test]
    fn writable_disks_are_copied_under_their_names_and_read_only_ones_shared() {
        let config = GuestConfig {
            disk: vec![
                "path=/img/root.raw,readonly=on".into(),
                "id=data,path=/img/data.raw".into(),
            ],
            ..GuestConfig::default()
        };
        let disks = plan_disks(
            &config,
            Path::new("/snaps/s1"),
            Path::new("/state/guests/c1"),
        );
        assert_eq!(
            disks,
            [
                CloneDisk {
                    file: "path=/img/root.raw,readonly=on".into(),
                    spec: "path=/img/root.raw,readonly=on".into(),
                    copy: None,
                },
                CloneDisk {
                    file: "path=/state/guests/c1/disks/data.raw".into(),
                    spec: "id=data,path=/state/guests/c1/disks/data.raw".into(),
                    copy: Some((
                        "/snaps/s1/disks/data.raw".into(),
                        "/state/guests/c1/disks/data.raw".into()
                    )),
                },
            ]
        );
    }

    #[test]
    fn a_clone_restores_its_snapshot_with_its_own_taps() {
        let origin = CloneOrigin {
            snapshot_dir: "/snaps/s1".into(),
            source: "web".into(),
            gid: 40000,
            net: vec!["id=eth0,tap=tap-c1".into()],
            files: Vec::new(),
        };
        let args: Vec<String> = origin
            .run_args("/api.sock")
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "--restore /snaps/s1/snapshot --mem-file /snaps/s1/memory --resume \
             --api-sock /api.sock --net id=eth0,tap=tap-c1"
        );
    }
}
