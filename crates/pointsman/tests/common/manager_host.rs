//! The host manager tests' harness: a `pointsman serve` of the test's
//! own (socket, state directory, uid range), `pointsman vm` against it,
//! and clean-up of whatever a failed test left running. Needs root (as CI
//! is) and /dev/kvm.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use manager::cgroup::CgroupLayout;

use super::{pointsman, require_kvm, run_command, Run, Scratch, TIME_LIMIT};

/// The parent cgroup of the tests' guests (as the jail tests use).
pub const PARENT_CGROUP: &str = "pointsman-test";

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(root, "the manager tests need root (CI runs as root)");
}

/// A daemon of the test's own, and the test guest's kernel.
pub struct Host {
    pub dir: Scratch,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub kernel: PathBuf,
    pub extra: Vec<String>,
    pub daemon: Option<Child>,
}

impl Host {
    /// Starts `pointsman serve` with `uid_range` and `extra` options.
    pub fn start(name: &str, uid_range: &str, extra: &[&str]) -> Host {
        require_kvm();
        require_root();
        let dir = Scratch::new(name);
        let kernel = dir.file("pvh.elf", guests::PVH);
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        extra.extend(["--uid-range".into(), uid_range.into()]);
        let mut host = Host {
            socket: dir.path().join("pointsman.sock"),
            state: dir.path().join("state"),
            kernel,
            dir,
            extra,
            daemon: None,
        };
        host.start_daemon();
        host
    }

    pub fn serve_args(&self) -> Vec<String> {
        let mut args = vec![
            "serve".to_owned(),
            "--socket".into(),
            self.socket.display().to_string(),
            "--state-dir".into(),
            self.state.display().to_string(),
            "--parent-cgroup".into(),
            PARENT_CGROUP.into(),
        ];
        args.extend(self.extra.iter().cloned());
        args
    }

    pub fn start_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("serve.log"))
            .unwrap();
        let child = pointsman()
            .args(self.serve_args())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                start.elapsed() < TIME_LIMIT,
                "the daemon never listened: {}",
                self.serve_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL to the daemon, reaped.
    pub fn kill_daemon(&mut self) {
        let mut daemon = self.daemon.take().unwrap();
        daemon.kill().unwrap();
        daemon.wait().unwrap();
    }

    /// SIGTERM to the daemon; its exit status.
    pub fn terminate_daemon(&mut self) -> std::process::ExitStatus {
        let mut daemon = self.daemon.take().unwrap();
        let pid = libc::pid_t::try_from(daemon.id()).unwrap();
        // SAFETY: kill(2) on our own child, not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        daemon.wait().unwrap()
    }

    pub fn serve_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// `pointsman vm ARGS` against this daemon (through POINTSMAN_SOCKET).
    pub fn vm(&self, args: &[&str]) -> Run {
        let mut command = pointsman();
        command.env("POINTSMAN_SOCKET", &self.socket);
        let mut all = vec!["vm"];
        all.extend_from_slice(args);
        run_command(command, &all, b"")
    }

    /// `vm create NAME` of a counting guest, with `extra` options; must work.
    pub fn create(&self, name: &str, extra: &[&str]) -> Run {
        let kernel = self.kernel.to_str().unwrap();
        let mut args = vec!["create", name, "--kernel", kernel, "--cmdline", "count"];
        args.extend_from_slice(extra);
        self.vm(&args)
    }

    pub fn show(&self, name: &str) -> serde_json::Value {
        let run = self.vm(&["show", name, "--json"]);
        assert_eq!(run.status, 0, "{run:?}");
        serde_json::from_str(&run.stdout).unwrap()
    }

    pub fn logs(&self, name: &str) -> String {
        let run = self.vm(&["logs", name]);
        assert_eq!(run.status, 0, "{run:?}");
        run.stdout
    }

    /// Waits until the guest's console has printed `text`.
    pub fn wait_for_log(&self, name: &str, text: &str) {
        let start = Instant::now();
        while !self.logs(name).contains(text) {
            assert!(
                start.elapsed() < TIME_LIMIT,
                "{name} never printed {text:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn guest_dir(&self, name: &str) -> PathBuf {
        self.state.join("guests").join(name)
    }

    pub fn jail_dir(&self, name: &str) -> PathBuf {
        self.state.join("jails/pointsman").join(name)
    }
}

impl Drop for Host {
    /// Kills what a failed test left running and removes its cgroups.
    fn drop(&mut self) {
        let names: Vec<String> = std::fs::read_dir(self.state.join("guests"))
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        for name in &names {
            if let Ok(text) = std::fs::read_to_string(self.guest_dir(name).join("process.json")) {
                let record: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                if let Some(pid) = record["pid"].as_i64().and_then(|p| i32::try_from(p).ok()) {
                    if pid > 0 && start_time(pid) == record["start_time"].as_u64() {
                        // SAFETY: kill(2) on the guest's VMM, checked by start time.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
        }
        if let Some(mut daemon) = self.daemon.take() {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        // A killed VMM leaves its cgroup within moments.
        let start = Instant::now();
        for name in &names {
            // Every controller's: cpuset and blkio too.
            for dir in CgroupLayout::of_host().all_dirs(PARENT_CGROUP, name) {
                while std::fs::remove_dir(&dir).is_err()
                    && dir.exists()
                    && start.elapsed() < Duration::from_secs(5)
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}

/// Field 22 of /proc/PID/stat.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn is_running(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

/// The guest's cgroup directories on this host (v1: cpu and memory; v2:
/// one), found as the daemon finds them.
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    CgroupLayout::of_host().dirs(PARENT_CGROUP, name)
}

/// A guest name unique to this test process.
pub fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

pub fn pid_of(shown: &serde_json::Value) -> i32 {
    i32::try_from(shown["pid"].as_i64().expect("a pid")).unwrap()
}
