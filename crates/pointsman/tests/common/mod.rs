//! Runs the real `pointsman` binary on test guests, with a time limit.
#![allow(dead_code)]

pub mod api_client;
pub mod linux;
pub mod manager_host;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest any single guest run may take before the test fails.
pub const TIME_LIMIT: Duration = Duration::from_secs(60);

pub const EXIT_OK: i32 = 0;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_TRIPLE_FAULT: i32 = 3;
pub const EXIT_EMULATION_FAILURE: i32 = 4;

/// Fails the test where `/dev/kvm` is missing, as CI requires: these tests
/// never skip silently.
pub fn require_kvm() {
    assert!(
        Path::new("/dev/kvm").exists(),
        "/dev/kvm is missing: the integration tests need KVM"
    );
}

/// A scratch directory removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        // Unique per process and call, and free of the commas and spaces
        // that option lists (`--disk path=...`) split on.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "pointsman-test-{}-{}-{n}",
            name,
            std::process::id(),
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `bytes` to a file named `name` in the directory.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a finished run left behind.
#[derive(Debug)]
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Lines of the guest console, without carriage returns.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .collect()
    }
}

pub fn pointsman() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pointsman"))
}

fn code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn wait_with_limit(mut child: Child, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: no exit within {TIME_LIMIT:?}: the guest or the VMM hangs");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `pointsman` with `args`, feeding `stdin`, until it exits.
pub fn run(args: &[&str], stdin: &[u8]) -> Run {
    run_command(pointsman(), args, stdin)
}

/// Runs `command` (the binary under another name, say) with `args`,
/// feeding `stdin`, until it exits.
pub fn run_command(mut command: Command, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pointsman");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let status = wait_with_limit(child, &format!("{command:?} {args:?}"));
    Run {
        status: code(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Boots `kernel` with the command line `cmdline` and extra `args`.
pub fn boot(kernel: &Path, cmdline: &str, args: &[&str]) -> Run {
    let kernel = kernel.to_str().unwrap();
    let mut all = vec!["run", "--kernel", kernel, "--cmdline", cmdline];
    all.extend_from_slice(args);
    run(&all, b"")
}

fn reader<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = r.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// A run that the test talks to while it goes on: it waits for console
/// output and types input.
pub struct Session {
    child: Option<Child>,
    output: Arc<Mutex<String>>,
    _reader: std::thread::JoinHandle<()>,
    stderr: Option<std::thread::JoinHandle<String>>,
    seen: usize,
    _events: Receiver<()>,
}

impl Session {
    pub fn start(args: &[&str]) -> Session {
        Session::start_command(pointsman(), args)
    }

    /// [`Session::start`] for `command` (the binary under another name).
    pub fn start_command(mut command: Command, args: &[&str]) -> Session {
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pointsman");
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let sink = output.clone();
        let (tx, rx) = channel();
        let reader_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
                let _ = tx.send(());
            }
        });
        let stderr = reader(child.stderr.take().unwrap());
        Session {
            child: Some(child),
            output,
            _reader: reader_thread,
            stderr: Some(stderr),
            seen: 0,
            _events: rx,
        }
    }

    /// Waits until `text` appears in the console output after what earlier
    /// waits consumed.
    pub fn wait_for(&mut self, text: &str) {
        let start = Instant::now();
        loop {
            {
                let out = self.output.lock().unwrap();
                if let Some(at) = out[self.seen..].find(text) {
                    self.seen += at + text.len();
                    return;
                }
            }
            if start.elapsed() > TIME_LIMIT {
                let out = self.output.lock().unwrap().clone();
                panic!("no {text:?} on the console within {TIME_LIMIT:?}; it shows:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything the console printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The VMM's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Whether the VMM process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    pub fn type_text(&mut self, text: &str) {
        let stdin = self.child.as_mut().unwrap().stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Sends `signal` to the VMM process.
    pub fn send_signal(&self, signal: i32) {
        let pid = self.child.as_ref().unwrap().id();
        let pid = libc::pid_t::try_from(pid).unwrap();
        // SAFETY: kill(2) on our own child, which has not been reaped yet.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the VMM to exit; returns its status, the whole console
    /// output and stderr.
    pub fn finish(self) -> Run {
        self.finish_with_status().0
    }

    /// [`Session::finish`], with the process's own exit status (which
    /// tells an exit from a death by signal).
    pub fn finish_with_status(mut self) -> (Run, ExitStatus) {
        let child = self.child.take().unwrap();
        let status = wait_with_limit(child, "interactive pointsman run");
        // The reader ends at EOF once the process is gone.
        let start = Instant::now();
        while !self._reader.is_finished() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let run = Run {
            status: code(status),
            stdout: self.output.lock().unwrap().clone(),
            stderr: self.stderr.take().unwrap().join().unwrap(),
        };
        (run, status)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
