//! The VMM's cgroup: `<parent>/<id>` in each controller a `--cgroup`
//! setting names (cgroup v1, as on hosts with split hierarchies), or in
//! the unified hierarchy (v2), with the settings written and the jailer
//! moved into it before it becomes the VMM.

use std::path::{Path, PathBuf};

use crate::{JailError, JailSpec};

/// Which cgroup hierarchy the settings are for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CgroupVersion {
    #[default]
    V1,
    V2,
}

/// One `--cgroup FILE=VALUE`: `cpu.shares=512`, `memory.max=256M`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupSetting {
    pub file: String,
    pub value: String,
}

impl CgroupSetting {
    /// Parses `FILE=VALUE`; FILE is `controller.name`.
    pub fn parse(text: &str) -> Result<CgroupSetting, JailError> {
        let bad = || JailError::BadCgroup(text.to_owned());
        let (file, value) = text.split_once('=').ok_or_else(bad)?;
        let (controller, name) = file.split_once('.').ok_or_else(bad)?;
        let word = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
        };
        if !word(controller) || !word(name) || value.is_empty() || value.contains('\n') {
            return Err(bad());
        }
        Ok(CgroupSetting {
            file: file.to_owned(),
            value: value.to_owned(),
        })
    }

    /// The controller the file belongs to (`cpu` of `cpu.shares`).
    pub fn controller(&self) -> &str {
        self.file.split('.').next().unwrap_or("")
    }
}

/// Where cgroup hierarchies are mounted, from /proc/self/mounts.
fn mount_point(version: CgroupVersion, controller: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, path, fstype, options, ..] = fields[..] else {
            return None;
        };
        let found = match version {
            CgroupVersion::V2 => fstype == "cgroup2",
            CgroupVersion::V1 => fstype == "cgroup" && options.split(',').any(|o| o == controller),
        };
        found.then(|| PathBuf::from(path))
    })
}

/// Each distinct controller the settings name, and its directory for
/// this VMM's cgroup.
fn cgroup_dirs(spec: &JailSpec) -> Result<Vec<(String, PathBuf, PathBuf)>, JailError> {
    let mut dirs: Vec<(String, PathBuf, PathBuf)> = Vec::new();
    for setting in &spec.cgroups {
        let controller = setting.controller();
        if dirs.iter().any(|(c, ..)| c == controller) {
            continue;
        }
        let mount = mount_point(spec.cgroup_version, controller).ok_or_else(|| {
            JailError::NoController {
                version: match spec.cgroup_version {
                    CgroupVersion::V1 => 1,
                    CgroupVersion::V2 => 2,
                },
                controller: controller.to_owned(),
                path: PathBuf::from("/sys/fs/cgroup"),
            }
        })?;
        if spec.cgroup_version == CgroupVersion::V2 {
            let available =
                std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
            if !available.split_whitespace().any(|c| c == controller) {
                return Err(JailError::NoController {
                    version: 2,
                    controller: controller.to_owned(),
                    path: mount,
                });
            }
        }
        let dir = mount.join(&spec.parent_cgroup).join(&spec.id);
        dirs.push((controller.to_owned(), mount, dir));
    }
    Ok(dirs)
}

/// Checks the settings and that their controllers are mounted.
pub(crate) fn validate(spec: &JailSpec) -> Result<(), JailError> {
    let parent_ok = !spec.parent_cgroup.is_empty()
        && spec.parent_cgroup.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        });
    if !parent_ok {
        return Err(JailError::BadParentCgroup(spec.parent_cgroup.clone()));
    }
    cgroup_dirs(spec).map(drop)
}

fn write(path: &Path, value: &str) -> Result<(), JailError> {
    std::fs::write(path, value).map_err(|e| JailError::host("write", path, e))
}

/// Makes the VMM's cgroups, writes the settings and moves this process
/// into them (the VMM it becomes, and its threads, stay there).
pub(crate) fn enter(spec: &JailSpec) -> Result<(), JailError> {
    for (controller, mount, dir) in cgroup_dirs(spec)? {
        // Each level down from the mount point: made if missing, and
        // given what a new cgroup of that controller needs to be usable.
        let mut level = mount.clone();
        let mut parts: Vec<&str> = spec.parent_cgroup.split('/').collect();
        parts.push(&spec.id);
        for part in parts {
            if spec.cgroup_version == CgroupVersion::V2 {
                // A child gets a controller only if its parent hands it down.
                write(
                    &level.join("cgroup.subtree_control"),
                    &format!("+{controller}"),
                )?;
            }
            let parent = level.clone();
            level.push(part);
            match std::fs::create_dir(&level) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(JailError::host("create the cgroup", &level, e)),
            }
            if spec.cgroup_version == CgroupVersion::V1 && controller == "cpuset" {
                inherit_cpuset(&parent, &level)?;
            }
        }
        for setting in spec.cgroups.iter().filter(|s| s.controller() == controller) {
            write(&dir.join(&setting.file), &setting.value)?;
        }
        write(&dir.join("cgroup.procs"), &std::process::id().to_string())?;
    }
    Ok(())
}

/// A v1 cpuset starts with no CPUs and no memory nodes, and takes no
/// task so: a new one gets its parent's.
fn inherit_cpuset(parent: &Path, child: &Path) -> Result<(), JailError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let current = std::fs::read_to_string(child.join(file)).unwrap_or_default();
        if current.trim().is_empty() {
            let from = std::fs::read_to_string(parent.join(file))
                .map_err(|e| JailError::host("read", &parent.join(file), e))?;
            write(&child.join(file), from.trim())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_or_say_why() {
        let s = CgroupSetting::parse("cpu.shares=512").unwrap();
        assert_eq!((s.controller(), s.value.as_str()), ("cpu", "512"));
        let s = CgroupSetting::parse("memory.limit_in_bytes=1G").unwrap();
        assert_eq!(s.controller(), "memory");
        for bad in [
            "cpu",
            "cpu=1",
            "cpu.shares=",
            "../x.y=1",
            "cpu.a/b=1",
            "cpu.x=1\n2",
        ] {
            assert!(CgroupSetting::parse(bad).is_err(), "{bad}");
        }
    }
}
