//! KVM's per-VM kernel thread `kvm-pit/PID` (the emulated PIT's timer
//! work, PID being the VMM's) is not the VMM's child: it starts in the
//! root cgroup, so its CPU time would escape the guest's share. Where
//! the kernel lets it be moved, it joins the guest's cgroup.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long after the VMM's start the thread is looked for: KVM makes it
/// when the VMM creates the PIT, while it builds the machine.
const LOOK_FOR: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);

/// The kernel thread of VMM `vmm_pid`'s PIT, if there is one now.
pub fn find(vmm_pid: u32) -> Option<u32> {
    find_in(Path::new("/proc"), vmm_pid)
}

fn find_in(proc_root: &Path, vmm_pid: u32) -> Option<u32> {
    let name = format!("kvm-pit/{vmm_pid}");
    let is_it = |pid: &str| {
        std::fs::read_to_string(proc_root.join(pid).join("comm"))
            .is_ok_and(|comm| comm.trim_end() == name)
    };
    // Kernel threads are kthreadd's (pid 2) children: few to look at.
    if let Ok(children) = std::fs::read_to_string(proc_root.join("2/task/2/children")) {
        if let Some(pid) = children.split_whitespace().find(|p| is_it(p)) {
            return pid.parse().ok();
        }
    }
    None
}

/// Moves the thread into `procs_files` (each controller's `tasks` or
/// `cgroup.procs`) once it appears, on a thread of its own so that the
/// daemon does not wait for it. A kernel that refuses (EINVAL for a
/// thread it keeps where it is) is told in the log, not an error.
pub fn move_when_it_appears(guest: String, vmm_pid: u32, procs_files: Vec<PathBuf>) {
    let spawned = std::thread::Builder::new()
        .name("kvm-pit-mover".into())
        .spawn(move || {
            let until = Instant::now() + LOOK_FOR;
            let tid = loop {
                if let Some(tid) = find(vmm_pid) {
                    break tid;
                }
                if Instant::now() > until {
                    tracing::debug!("guest {guest}: no kvm-pit/{vmm_pid} thread to move");
                    return;
                }
                std::thread::sleep(POLL);
            };
            for file in &procs_files {
                match std::fs::write(file, tid.to_string()) {
                    Ok(()) => tracing::debug!(
                        "guest {guest}: kvm-pit/{vmm_pid} ({tid}) moved to {}",
                        file.display()
                    ),
                    Err(e) => tracing::info!(
                        "guest {guest}: kvm-pit/{vmm_pid} ({tid}) stays out of {}: {e}",
                        file.display()
                    ),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::info!("cannot look for kvm-pit/{vmm_pid}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thread_is_found_among_kthreadds_children() {
        let root = std::env::temp_dir().join(format!("manager-pit-{}", std::process::id()));
        std::fs::create_dir_all(root.join("2/task/2")).unwrap();
        std::fs::write(root.join("2/task/2/children"), "3 40 41 ").unwrap();
        for (pid, comm) in [
            ("3", "kthreadd-ish"),
            ("40", "kvm-pit/12"),
            ("41", "kvm-pit/123"),
        ] {
            std::fs::create_dir_all(root.join(pid)).unwrap();
            std::fs::write(root.join(pid).join("comm"), format!("{comm}\n")).unwrap();
        }
        assert_eq!(find_in(&root, 123), Some(41));
        assert_eq!(find_in(&root, 12), Some(40));
        assert_eq!(find_in(&root, 1), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
