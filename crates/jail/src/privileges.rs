//! The last steps before the VMM: a child in a new PID namespace or a
//! daemon if asked, no inherited descriptors, and an unprivileged user
//! with no capabilities that can gain none.

use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{dup2_stderr, dup2_stdin, dup2_stdout, fork, setsid, ForkResult, Gid, Uid};

use crate::{JailError, Outcome};

/// With a new PID namespace the VMM must be a child (the first process
/// of the namespace); a daemon must be one too, to leave its session.
/// Returns `None` in the child, which goes on to become the VMM, and
/// in this process what became of the child.
pub(crate) fn fork_into_pid_ns(
    new_pid_ns: bool,
    daemonize: bool,
) -> Result<Option<Outcome>, JailError> {
    if new_pid_ns {
        unshare(CloneFlags::CLONE_NEWPID).map_err(JailError::system("make a PID namespace"))?;
    }
    // SAFETY: the jailer has one thread here (it starts none), so the
    // child may run any code.
    match unsafe { fork() }.map_err(JailError::system("fork the VMM"))? {
        ForkResult::Child => {
            if daemonize {
                detach()?;
            }
            Ok(None)
        }
        ForkResult::Parent { child } if daemonize => Ok(Some(Outcome::Detached(child.as_raw()))),
        ForkResult::Parent { child } => loop {
            match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, code)) => return Ok(Some(Outcome::ChildExited(code))),
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    return Ok(Some(Outcome::ChildExited(128 + signal as i32)))
                }
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(JailError::system("wait for the VMM")(e)),
            }
        },
    }
}

/// A session of its own and `/dev/null` (the jail's) for its streams.
fn detach() -> Result<(), JailError> {
    setsid().map_err(JailError::system("start a session"))?;
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| JailError::host("open", std::path::Path::new("/dev/null"), e))?;
    dup2_stdin(&null).map_err(JailError::system("redirect stdin"))?;
    dup2_stdout(&null).map_err(JailError::system("redirect stdout"))?;
    dup2_stderr(&null).map_err(JailError::system("redirect stderr"))?;
    Ok(())
}

/// Closes every descriptor but the standard streams: the VMM must not
/// hold what its caller had open.
pub(crate) fn close_inherited_fds() {
    // SAFETY: close_range only closes descriptors; none above 2 is used
    // by the jailer from here on.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
    }
}

/// Becomes `uid`:`gid` with no supplementary groups and no capabilities
/// (the bounding set emptied, so that not even an exec of a file with
/// capabilities gives any back), and `no_new_privs`.
pub(crate) fn drop_to(uid: u32, gid: u32) -> Result<(), JailError> {
    for cap in 0..64 {
        // SAFETY: prctl with integer arguments; EINVAL past the last
        // capability this kernel knows is expected and ignored.
        unsafe {
            libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
        }
    }
    nix::unistd::setgroups(&[]).map_err(JailError::system("drop the supplementary groups"))?;
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    nix::unistd::setresgid(gid, gid, gid).map_err(JailError::system("set the group"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(JailError::system("set the user"))?;
    nix::sys::prctl::set_no_new_privs().map_err(JailError::system("set no_new_privs"))
}
