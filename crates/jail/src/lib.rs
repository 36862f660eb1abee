//! The jail a VMM runs in: Firecracker's jailer, built in. Before the VMM
//! starts, the process gets a root of its own holding only the files its
//! guest needs (bind-mounted, read-only where the guest may not write),
//! `/dev/kvm` and `/dev/net/tun`, new mount (and optionally PID and
//! network) namespaces, a cgroup, resource limits, no inherited
//! descriptors or environment, and an unprivileged user with no
//! capabilities and `no_new_privs`; only then is the VMM executed, from a
//! copy of this binary inside the root.
//!
//! Everything that can be checked without changing the host is checked
//! first ([`JailSpec::validate`]): bad input leaves nothing behind.

mod cgroup;
mod error;
pub mod landlock;
mod limits;
mod mounts;
mod privileges;
mod spec;
mod tap;

pub use cgroup::{CgroupSetting, CgroupVersion};
pub use error::JailError;
pub use limits::ResourceLimits;
pub use spec::{JailSpec, VmFile};

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The name of the VMM binary inside the root.
pub const EXEC_NAME: &str = "pointsman";

/// What the jailer's own process does once the jail is set up.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The VMM ran in a child (a new PID namespace) and exited so.
    ChildExited(i32),
    /// `--daemonize` with a new PID namespace: the VMM runs on, this pid.
    Detached(i32),
}

/// Builds the jail `spec` describes for `files` and executes the VMM in
/// it with `args` (its arguments, paths already as seen inside the jail).
/// Returns only if the VMM runs in a child, or on failure.
pub fn run(spec: &JailSpec, files: &[VmFile], args: &[OsString]) -> Result<Outcome, JailError> {
    spec.validate(files)?;
    let root = spec.root();
    create_instance_dir(spec)?;
    let copied = copy_self(&root.join(EXEC_NAME));
    let cgroups = copied.and_then(|()| cgroup::enter(spec));
    if let Err(e) = cgroups {
        // Nothing was mounted yet: the instance's directory can go.
        let _ = std::fs::remove_dir_all(spec.instance_dir());
        return Err(e);
    }
    spec.limits.apply()?;
    if let Some(netns) = &spec.netns {
        mounts::join_netns(netns)?;
    }
    for tap in &spec.taps {
        tap::give_tap(tap, spec.uid, spec.gid)?;
    }
    mounts::build_root(&root, files, spec.uid, spec.gid)?;
    mounts::pivot_into(&root)?;
    if spec.new_pid_ns || spec.daemonize {
        if let Some(outcome) = privileges::fork_into_pid_ns(spec.new_pid_ns, spec.daemonize)? {
            return Ok(outcome);
        }
    }
    privileges::close_inherited_fds();
    privileges::drop_to(spec.uid, spec.gid)?;
    exec_vmm(args)
}

/// Makes `<base>/pointsman/<id>/root`; an existing `<id>` is refused, so
/// that two VMMs never share a root.
fn create_instance_dir(spec: &JailSpec) -> Result<(), JailError> {
    let parent = spec.chroot_base.join(EXEC_NAME);
    std::fs::create_dir_all(&parent).map_err(|e| JailError::host("create", &parent, e))?;
    let dir = spec.instance_dir();
    std::fs::create_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => JailError::Exists(dir.clone()),
        _ => JailError::host("create", &dir, e),
    })?;
    let root = spec.root();
    std::fs::create_dir(&root).map_err(|e| JailError::host("create", &root, e))
}

/// A copy of the running binary at `to`, executable by anyone: the VMM
/// runs from inside the root (the binary is static, so nothing else is
/// needed there).
fn copy_self(to: &Path) -> Result<(), JailError> {
    use std::os::unix::fs::PermissionsExt;
    let me = PathBuf::from("/proc/self/exe");
    std::fs::copy(&me, to).map_err(|e| JailError::host("copy the binary to", to, e))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| JailError::host("make executable", to, e))
}

/// Replaces this process with the VMM, with an empty environment.
fn exec_vmm(args: &[OsString]) -> Result<Outcome, JailError> {
    let to_c = |s: &[u8]| std::ffi::CString::new(s).map_err(|_| JailError::NulInArgument);
    let path = to_c(format!("/{EXEC_NAME}").as_bytes())?;
    let mut argv = vec![to_c(EXEC_NAME.as_bytes())?];
    for arg in args {
        argv.push(to_c(arg.as_bytes())?);
    }
    let env: [&std::ffi::CStr; 0] = [];
    let err = nix::unistd::execve(&path, &argv, &env).unwrap_err();
    Err(JailError::Exec(err.into()))
}
