//! Running a VMM as a child process and reading what it costs: its console
//! lines as they come, its CPU time and memory while it runs, and its
//! resource usage once reaped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest any run may take: a guest that cannot power off is killed.
pub const TIME_LIMIT: Duration = Duration::from_secs(60);

/// What `wait4` says about one finished run.
#[derive(Clone, Copy)]
pub struct Sample {
    pub user: Duration,
    pub sys: Duration,
    pub wall: Duration,
    pub maxrss_kib: u64,
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u64::try_from(tv.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

fn pid_of(child: &Child) -> libc::pid_t {
    libc::pid_t::try_from(child.id()).expect("a pid fits pid_t")
}

/// Reaps `child` with `wait4`, for the resource usage of exactly that
/// process (all its threads), which `Child::wait` does not give.
fn wait_usage(child: &Child) -> Result<(ExitStatus, libc::rusage), String> {
    use std::os::unix::process::ExitStatusExt;
    let pid = pid_of(child);
    let mut status = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (integers and timevals).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our unreaped child; both pointers are to live locals.
        let ret = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if ret == pid {
            return Ok((ExitStatus::from_raw(status), usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4: {err}"));
        }
    }
}

/// Kills the child `pid` unless `done` hears from the waiter first, so a
/// guest that never powers off cannot hang the benchmark.
fn watchdog(pid: libc::pid_t) -> std::sync::mpsc::Sender<()> {
    let (done, heard) = channel::<()>();
    std::thread::spawn(move || {
        if heard.recv_timeout(TIME_LIMIT) == Err(RecvTimeoutError::Timeout) {
            // SAFETY: plain kill(2); the waiter has not reaped `pid` (it
            // would have told us), so it is still our child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    });
    done
}

/// Sends each line a pipe carries, until EOF.
fn forward_lines(pipe: impl Read + Send + 'static) -> (Receiver<String>, JoinHandle<()>) {
    let (tx, rx) = channel();
    let handle = std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            if tx.send(text).is_err() {
                break;
            }
            line.clear();
        }
    });
    (rx, handle)
}

/// A started VMM whose console and log lines are being collected.
pub struct Running {
    pub child: Child,
    pub started: Instant,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn start(mut command: Command) -> Result<Running, String> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
        let (stdout, out_reader) = forward_lines(child.stdout.take().expect("piped stdout"));
        let (stderr, err_reader) = forward_lines(child.stderr.take().expect("piped stderr"));
        Ok(Running {
            child,
            started,
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        })
    }

    /// Waits for a console line `wanted` accepts and returns it; `None` on
    /// EOF or timeout.
    pub fn wait_for(&self, wanted: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = self.started + TIME_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(got) if wanted(&got) => return Some(got),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Waits for a console line equal to `line`; false on EOF or timeout.
    pub fn wait_for_line(&self, line: &str) -> bool {
        self.wait_for(|got| got == line).is_some()
    }

    /// The console lines that came since the last look, without waiting.
    pub fn lines_so_far(&self) -> Vec<String> {
        self.stdout.try_iter().collect()
    }

    /// The user plus system CPU time of every thread of the VMM so far, to
    /// the nanosecond (/proc/PID/stat counts in 10 ms clock ticks, too
    /// coarse for a start-up of a few milliseconds).
    pub fn cpu_time(&self) -> Result<Duration, String> {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: the pointer is to a live local; the pid is our unreaped
        // child, so it names this VMM and no other process.
        let err = unsafe { libc::clock_getcpuclockid(pid_of(&self.child), &mut clock) };
        if err != 0 {
            return Err(format!(
                "clock_getcpuclockid: {}",
                std::io::Error::from_raw_os_error(err)
            ));
        }
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `clock` came from clock_getcpuclockid; `now` is a live local.
        if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
            return Err(format!(
                "clock_gettime: {}",
                std::io::Error::last_os_error()
            ));
        }
        let secs = u64::try_from(now.tv_sec).unwrap_or(0);
        let nanos = u32::try_from(now.tv_nsec).unwrap_or(0);
        Ok(Duration::new(secs, nanos))
    }

    /// The VMM's /proc/PID/status.
    pub fn proc_status(&self) -> Result<String, String> {
        self.proc_file("status")
    }

    /// The VMM's /proc/PID/`name` (`status`, `smaps_rollup`, ...).
    pub fn proc_file(&self, name: &str) -> Result<String, String> {
        let path = format!("/proc/{}/{name}", self.child.id());
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))
    }

    /// Whether the VMM still runs: not exited, which leaves it a zombie
    /// (state `Z` in /proc/PID/stat) until it is reaped.
    pub fn is_alive(&self) -> bool {
        self.proc_file("stat").is_ok_and(|stat| {
            // The state follows the command name, which may hold spaces.
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !state.is_some_and(|s| s.starts_with('Z'))
        })
    }

    /// Reaps the VMM; returns its exit status, usage and console lines.
    pub fn finish(self) -> Result<(ExitStatus, Sample, Vec<String>), String> {
        let done = watchdog(pid_of(&self.child));
        let waited = wait_usage(&self.child);
        let wall = self.started.elapsed();
        let _ = done.send(());
        let (status, usage) = waited?;
        for reader in self.readers {
            let _ = reader.join();
        }
        let mut lines: Vec<String> = self.stdout.try_iter().collect();
        let errors: Vec<String> = self.stderr.try_iter().collect();
        if !status.success() {
            lines.extend(errors);
        }
        let sample = Sample {
            user: timeval(usage.ru_utime),
            sys: timeval(usage.ru_stime),
            wall,
            maxrss_kib: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        };
        Ok((status, sample, lines))
    }

    /// The memory of the VMM, idle now, after `settle`; then kills it.
    pub fn idle_memory(self, settle: Duration) -> Result<IdleMemory, String> {
        std::thread::sleep(settle);
        let status = self.proc_status();
        let (sample, lines) = self.kill()?;
        let status = status.map_err(|e| format!("{e}; output: {}", lines.join(" / ")))?;
        let field = |name| status_kib(&status, name).ok_or(format!("no {name} in /proc status"));
        Ok(IdleMemory {
            vm_rss: field("VmRSS:")?,
            vm_hwm: field("VmHWM:")?,
            rss_anon: field("RssAnon:")?,
            rss_file: field("RssFile:")?,
            maxrss: sample.maxrss_kib,
        })
    }

    /// `why`, with the VMM's output, after killing it: the error of a run
    /// that went wrong.
    pub fn failed(self, why: &str) -> String {
        match self.kill() {
            Ok((_, lines)) => format!("{why}; output: {}", lines.join(" / ")),
            Err(e) => format!("{why}; then {e}"),
        }
    }

    /// Kills and reaps the VMM, for runs whose guest never powers off;
    /// returns its usage and its console lines, then its log lines.
    pub fn kill(mut self) -> Result<(Sample, Vec<String>), String> {
        let _ = self.child.kill();
        self.finish().map(|(_, sample, lines)| (sample, lines))
    }
}

/// The memory of a VMM whose guest idles, all in KiB.
#[derive(Clone, Copy)]
pub struct IdleMemory {
    /// Resident now (/proc/PID/status).
    pub vm_rss: u64,
    /// The most resident so far.
    pub vm_hwm: u64,
    /// Of `vm_rss`: anonymous memory (heap, stacks, touched guest RAM).
    pub rss_anon: u64,
    /// Of `vm_rss`: pages of mapped files, mostly the VMM's own binary.
    pub rss_file: u64,
    /// `ru_maxrss` once reaped.
    pub maxrss: u64,
}

/// A `Vm*:   1234 kB` field of /proc/PID/status.
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// One run of `command` to its end, which must exit with status 0 and, if
/// `expect` says so, print that line.
pub fn run_once(command: Command, expect: Option<&str>) -> Result<Sample, String> {
    let shown = format!("{command:?}");
    let (status, sample, lines) = Running::start(command)?.finish()?;
    let printed = expect.is_none_or(|want| lines.iter().any(|l| l == want));
    if status.success() && printed {
        Ok(sample)
    } else {
        Err(format!(
            "{shown} failed ({status}); output: {}",
            lines.join(" / ")
        ))
    }
}
