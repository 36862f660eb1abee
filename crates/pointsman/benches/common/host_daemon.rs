//! A `pointsman serve` of the host bench's own, driven through
//! `pointsman vm` as a user drives it, and what the bench reads of its
//! guests: CPU time and progress, memory, cgroup figures.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::scratch::ScratchDir;

/// The bench guests' parent cgroup.
const PARENT_CGROUP: &str = "pointsman-bench";
/// The bench guests' users: room for the density figure's 100 guests.
const UID_RANGE: &str = "47000-47199";
/// How long the daemon has to open its socket.
const START_LIMIT: Duration = Duration::from_secs(20);

/// One reading of a guest.
pub struct GuestSample {
    /// User + system CPU time of its VMM (all threads).
    pub cpu: Duration,
    /// The last number its `count`/`stamp` console printed.
    pub progress: u64,
}

/// How a guest ended, as `vm show` says.
pub struct Ended {
    pub reason: String,
}

pub struct Daemon {
    dir: ScratchDir,
    socket: PathBuf,
    state: PathBuf,
    kernel: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts a daemon over a fresh state directory: capacity for the
    /// density figure's guests, CPU overcommitted to match.
    pub fn start(bench: &str) -> Result<Daemon, String> {
        let dir = ScratchDir::new(bench)?;
        let kernel = dir.write("pvh.elf", guests::PVH)?;
        let socket = dir.join("pointsman.sock");
        let state = dir.join("state");
        let log = std::fs::File::create(dir.join("serve.log")).map_err(|e| e.to_string())?;
        let child = Command::new(env!("CARGO_BIN_EXE_pointsman"))
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            .arg("--state-dir")
            .arg(&state)
            .args(["--capacity", "cpus=2,memory=16G"])
            .args(["--overcommit", "cpu=100,memory=1"])
            .args(["--uid-range", UID_RANGE, "--parent-cgroup", PARENT_CGROUP])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start pointsman serve: {e}"))?;
        let daemon = Daemon {
            dir,
            socket,
            state,
            kernel,
            child,
        };
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(&daemon.socket).is_err() {
            if started.elapsed() > START_LIMIT {
                return Err(format!("no socket: {}", daemon.serve_log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    fn serve_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap_or_default()
    }

    /// `pointsman vm ARGS`; its stdout, or its stderr as the error.
    pub fn vm(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new(env!("CARGO_BIN_EXE_pointsman"))
            .arg("vm")
            .args(args)
            .env("POINTSMAN_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run pointsman vm: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "vm {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Creates guest `name` running test guest command `command`, one
    /// vCPU, 32 MiB unless `extra` says otherwise.
    pub fn create(&self, name: &str, command: &str, extra: &[&str]) -> Result<(), String> {
        let kernel = self.kernel.to_str().unwrap_or("");
        let mut args = vec!["create", name, "--kernel", kernel, "--cmdline", command];
        if !extra.contains(&"--memory") {
            args.extend(["--memory", "32M"]);
        }
        args.extend_from_slice(extra);
        self.vm(&args).map(drop)
    }

    pub fn show(&self, name: &str) -> Result<Value, String> {
        let text = self.vm(&["show", name, "--json"])?;
        serde_json::from_str(&text).map_err(|e| format!("vm show {name}: {e}"))
    }

    fn pid(&self, name: &str) -> Result<u32, String> {
        let shown = self.show(name)?;
        shown["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| format!("{name} has no pid: it is {}", shown["state"]))
    }

    /// Kills and removes the guests (errors are of no interest here: a
    /// guest that ended is removed all the same).
    pub fn remove(&self, names: &[&str]) {
        for name in names {
            let _ = self.vm(&["kill", name]);
            let _ = self.vm(&["rm", name]);
        }
    }

    /// The guest's CPU time and progress now.
    pub fn sample(&self, name: &str) -> Result<GuestSample, String> {
        let pid = self.pid(name)?;
        Ok(GuestSample {
            cpu: process_cpu(pid)?,
            progress: self.progress(name),
        })
    }

    /// The last number the guest's console printed (`count N`,
    /// `stamp N ok`).
    fn progress(&self, name: &str) -> u64 {
        let log = self.state.join("guests").join(name).join("console.log");
        let text = read_end(&log, 4096);
        text.lines()
            .rev()
            .filter(|l| l.ends_with(" ok") || l.starts_with("count "))
            .find_map(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    }

    /// Waits for the guest to end; how it did.
    pub fn wait_ended(&self, name: &str, limit: Duration) -> Result<Ended, String> {
        let started = Instant::now();
        loop {
            let shown = self.show(name)?;
            if shown["state"] == "stopped" {
                return Ok(Ended {
                    reason: shown["exit"]["reason"]
                        .as_str()
                        .unwrap_or("unknown")
                        .to_owned(),
                });
            }
            if started.elapsed() > limit {
                return Err(format!("{name} still {} after {limit:?}", shown["state"]));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A v1 memory cgroup file of the guest's, if this host has one.
    fn memcg_file(&self, name: &str, file: &str) -> Option<String> {
        let path = PathBuf::from("/sys/fs/cgroup/memory")
            .join(PARENT_CGROUP)
            .join(name)
            .join(file);
        std::fs::read_to_string(path).ok()
    }

    /// OOM kills in the guest's memory cgroup (v1 `memory.oom_control`'s
    /// `oom_kill`, where the kernel shows it).
    pub fn memcg_oom_kills(&self, name: &str) -> Option<u64> {
        let text = self.memcg_file(name, "memory.oom_control")?;
        field(&text, "oom_kill")
    }

    pub fn memcg_kib(&self, name: &str) -> Option<u64> {
        let text = self.memcg_file(name, "memory.usage_in_bytes")?;
        text.trim().parse::<u64>().ok().map(|b| b / 1024)
    }

    pub fn kmem_kib(&self, name: &str) -> Option<u64> {
        let text = self.memcg_file(name, "memory.kmem.usage_in_bytes")?;
        text.trim().parse::<u64>().ok().map(|b| b / 1024)
    }

    pub fn vmm_rss_kib(&self, name: &str) -> Result<u64, String> {
        let pid = self.pid(name)?;
        status_kib(pid, "VmRSS:")
    }

    /// The daemon's CPU time over `window`, and its VmRSS after it.
    pub fn own_cost(&self, window: Duration) -> Result<(Duration, u64), String> {
        let before = process_cpu(self.child.id())?;
        std::thread::sleep(window);
        let after = process_cpu(self.child.id())?;
        Ok((
            after.saturating_sub(before),
            status_kib(self.child.id(), "VmRSS:")?,
        ))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// User + system time of process `pid`, all its threads (/proc/PID/stat
/// fields 14 and 15, in clock ticks).
fn process_cpu(pid: u32) -> Result<Duration, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // Fields 14 and 15 counted from 1; `rest` starts at field 3.
    let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
        return Err(format!("/proc/{pid}/stat: no CPU times"));
    };
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    Ok(Duration::from_secs_f64(
        (user + system) as f64 / hz.max(1) as f64,
    ))
}

fn status_kib(pid: u32, key: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("/proc/{pid}/status: no {key}"))
}

/// `KEY VALUE` lines' value for `key`.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// The host's OOM kills so far (`/proc/vmstat`'s `oom_kill`: the whole
/// host's, memory cgroups' included).
pub fn host_oom_kills() -> u64 {
    field(
        &std::fs::read_to_string("/proc/vmstat").unwrap_or_default(),
        "oom_kill",
    )
    .unwrap_or(0)
}

pub fn mem_available_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemAvailable:")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

pub fn online_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn read_end(path: &std::path::Path, max: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut bytes = Vec::new();
    let _ = file.take(max).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}
