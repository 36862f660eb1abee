//! Hostile guests: the test guest's `hostile_*` commands drive the virtio
//! devices directly (no Linux in between) the way no honest driver would,
//! on virtio-mmio and on virtio-pci, then check that each device still
//! works after a reset and power off. The VMM must exit promptly with
//! status 0, print no panic, and use little CPU time outside its vCPU
//! (each thread is sampled from `/proc` every 10 ms, so workers that a
//! reset ends count too): a device worker looping without progress for a
//! fifth of a second fails the test. Its total CPU time (`wait4`) must
//! also stay within what one busy vCPU explains.
//!
//! The virtio-mmio runs boot the 32-bit PVH image and the virtio-pci runs
//! the 64-bit ELF64 image, so both builds of the guest's driver are used.

mod common;
use common::*;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a hostile guest may take, power-off included (a few seconds
/// are usual, most of it the guest's own bounded waits).
const LIMIT: Duration = Duration::from_secs(20);

/// The guest's vsock port that reaches the test's listener (the guest's
/// `VSOCK_HOST_PORT`).
const HOST_PORT: u32 = 5000;

/// A machine with every device a hostile guest drives: the network only
/// where a TAP can be had (root, and `/dev/net/tun`).
struct Machine {
    dir: Scratch,
    args: Vec<String>,
    net: bool,
}

/// Whether this host lets the tests create TAPs.
fn can_create_taps() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root && std::path::Path::new("/dev/net/tun").exists()
}

/// A TAP name of at most 15 bytes that no other test of this run uses.
fn tap_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("hg{}x{n}", std::process::id() % 100_000)
}

impl Machine {
    fn new(command: &str, pci: bool) -> Machine {
        let dir = Scratch::new(command);
        // The 64-bit body on virtio-pci, the 32-bit one on virtio-mmio.
        let image = if pci { guests::ELF64 } else { guests::PVH };
        let kernel = dir.file("kernel", image);
        let disk = dir.file("disk.img", &vec![0u8; 1 << 20]);
        let socket = dir.path().join("vsock.sock");
        let mut args: Vec<String> = [
            "run",
            "--kernel",
            kernel.to_str().unwrap(),
            "--cmdline",
            command,
            "--memory",
            "128M",
            "--rng",
            "--balloon",
            "size=0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("--disk".into());
        args.push(format!("path={}", disk.display()));
        args.push("--vsock".into());
        args.push(format!("cid=3,socket={}", socket.display()));
        let net = can_create_taps();
        if net {
            // Pointsman creates the TAP, which goes when it exits; the
            // link is down, so frames sent go nowhere.
            args.push("--net".into());
            args.push(format!("tap={}", tap_name()));
        }
        if pci {
            args.push("--pci".into());
        }
        Machine { dir, args, net }
    }

    /// The Unix socket guest connections to vsock port `port` reach.
    fn vsock_port_path(&self, port: u32) -> PathBuf {
        self.dir.path().join(format!("vsock.sock_{port}"))
    }
}

/// How a run ended.
#[derive(Debug)]
struct Outcome {
    status: i32,
    stdout: String,
    stderr: String,
    wall: Duration,
    /// User and system time of the VMM, all its threads.
    cpu: Duration,
    /// User and system time of its threads other than the vCPUs' (device
    /// workers above all), as last sampled before each thread ended.
    device_cpu: Duration,
}

impl Outcome {
    fn lines(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .collect()
    }

    /// Exit status 0 within the limit, CPU time that one busy vCPU
    /// explains, no device check failed, and every line of `expect`.
    fn assert_clean(&self, expect: &[&str]) {
        assert_eq!(self.status, EXIT_OK, "{self:#?}");
        assert!(self.wall < LIMIT, "{self:#?}");
        // The guest polls all the time, so its vCPU is busy for the whole
        // run; honest device work adds little. A worker spinning beside it
        // would double the CPU time.
        let bound = self.wall.mul_f64(1.5) + Duration::from_secs(1);
        assert!(
            self.cpu <= bound,
            "{:?} of CPU time in {:?}: more than {bound:?}\n{self:#?}",
            self.cpu,
            self.wall
        );
        // The devices' own work is tiny (up to 30 ms measured, most runs
        // under the 10 ms a clock tick counts): a worker looping without
        // progress for a fifth of a second shows.
        let device_bound = self.wall.mul_f64(0.05) + Duration::from_millis(200);
        assert!(
            self.device_cpu <= device_bound,
            "{:?} of CPU time outside the vCPUs in {:?}: more than {device_bound:?}\n{self:#?}",
            self.device_cpu,
            self.wall
        );
        assert!(!self.stdout.contains("FAILED"), "{self:#?}");
        // A panicking device thread is a bug even when the VMM survives
        // it (a reset starts a new one): a release build aborts on panics.
        assert!(!self.stderr.contains("panicked"), "{self:#?}");
        let lines = self.lines();
        for line in expect {
            assert!(lines.contains(line), "no {line:?}: {self:#?}");
        }
    }
}

/// A running VMM whose exit is collected with `wait4`, for its resource
/// usage.
struct Vmm {
    child: Child,
    stdin: Option<ChildStdin>,
    start: Instant,
    output: Arc<Mutex<String>>,
    stdout: JoinHandle<()>,
    stderr: JoinHandle<String>,
    threads: ThreadSampler,
}

/// Samples the CPU time of each thread of a process every 10 ms, so that
/// threads that end before the process (device workers, at each reset)
/// are counted too.
struct ThreadSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<HashMap<u32, (String, u64)>>,
}

impl ThreadSampler {
    fn start(pid: u32) -> ThreadSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let done = stop.clone();
        let thread = std::thread::spawn(move || {
            // Thread ID to (name, utime + stime in clock ticks).
            let mut seen = HashMap::new();
            while !done.load(Ordering::Relaxed) {
                sample_threads(pid, &mut seen);
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        });
        ThreadSampler { stop, thread }
    }

    /// CPU time of the threads not named `vcpu*`, up to their last sample.
    fn finish(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        let seen = self.thread.join().unwrap();
        // SAFETY: sysconf has no preconditions.
        let ticks_per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
            .unwrap_or(100)
            .max(1);
        let ticks: u64 = seen
            .values()
            .filter(|(name, _)| !name.starts_with("vcpu"))
            .map(|(_, ticks)| ticks)
            .sum();
        Duration::from_millis(ticks * 1000 / ticks_per_second)
    }
}

/// Records the name and CPU ticks of every thread of `pid` now.
fn sample_threads(pid: u32, seen: &mut HashMap<u32, (String, u64)>) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for task in tasks.map_while(Result::ok) {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        // After the name: state (field 3) ... utime (14), stime (15).
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let (Some(utime), Some(stime)) = (ticks(11), ticks(12)) else {
            continue;
        };
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        seen.insert(tid, (name, utime + stime));
    }
}

impl Vmm {
    fn start(args: &[String]) -> Vmm {
        let mut child = pointsman()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pointsman");
        let mut out = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        let sink = output.clone();
        let stdout = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        Vmm {
            stdin: child.stdin.take(),
            threads: ThreadSampler::start(child.id()),
            child,
            start: Instant::now(),
            output,
            stdout,
            stderr,
        }
    }

    /// Waits for `text` on the guest console.
    fn wait_for(&self, text: &str) {
        while !self.output.lock().unwrap().contains(text) {
            assert!(
                self.start.elapsed() < LIMIT,
                "no {text:?} on the console within {LIMIT:?}: {}",
                self.output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends the VMM `SIGTERM`.
    fn terminate(&self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: a plain signal to our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }

    fn type_text(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(text.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for the VMM to exit, killing it past the limit (which fails
    /// the test, with the CPU time it had used).
    fn finish(mut self) -> Outcome {
        let pid = i32::try_from(self.child.id()).unwrap();
        let mut status = 0;
        // SAFETY: rusage is plain data, for which all zeros is valid.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let mut killed = false;
        loop {
            // SAFETY: `pid` is our child and not yet reaped (std never
            // waits for it: we do, here); both pointers are valid for writes.
            let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            assert!(reaped >= 0, "wait4: {}", std::io::Error::last_os_error());
            if reaped == pid {
                break;
            }
            if self.start.elapsed() > LIMIT && !killed {
                let _ = self.child.kill();
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let wall = self.start.elapsed();
        let device_cpu = self.threads.finish();
        drop(self.stdin.take());
        let _ = self.stdout.join();
        let outcome = Outcome {
            status: if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            },
            stdout: self.output.lock().unwrap().clone(),
            stderr: self.stderr.join().unwrap(),
            wall,
            cpu: cpu_time(&usage),
            device_cpu,
        };
        assert!(
            !killed,
            "no exit within {LIMIT:?}: killed after using {:?} of CPU time\n{outcome:#?}",
            outcome.cpu
        );
        outcome
    }
}

fn cpu_time(usage: &libc::rusage) -> Duration {
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Runs hostile command `command` and checks that the VMM coped and
/// that every device passed its check afterwards.
fn hostile(command: &str, pci: bool) {
    hostile_to(
        command,
        pci,
        &["rng ok", "blk ok", "vsock ok", "balloon ok"],
    );
}

/// Listens where guest connections to vsock port `HOST_PORT` go, and
/// gives every connection a few KiB to carry to the guest.
fn serve_host_port(machine: &Machine) {
    let listener = UnixListener::bind(machine.vsock_port_path(HOST_PORT)).unwrap();
    // Blocked in accept once the test is over: it ends with the process.
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.set_nonblocking(true);
            let _ = stream.write_all(&[b'x'; 4096]);
            // Kept open: the guest's reset must close it.
            std::mem::forget(stream);
        }
    });
}

/// Runs hostile command `command`, which checks the devices `checks`
/// name (and the network device, when there is one, if `checks` names
/// them all).
fn hostile_to(command: &str, pci: bool, checks: &[&str]) {
    require_kvm();
    let machine = Machine::new(command, pci);
    if command == "hostile_reset" {
        // Connections the guest resets with host data on its way.
        serve_host_port(&machine);
    }
    let outcome = Vmm::start(&machine.args).finish();
    let done = format!("{command} done");
    let mut expect = checks.to_vec();
    expect.push(&done);
    if machine.net && checks.len() > 1 {
        expect.push("net ok");
    }
    outcome.assert_clean(&expect);
}

#[test]
fn zero_length_and_header_only_buffers_mmio() {
    hostile("hostile_zero", false);
}

#[test]
fn zero_length_and_header_only_buffers_pci() {
    hostile("hostile_zero", true);
}

#[test]
fn looping_chains_mmio() {
    hostile("hostile_loop", false);
}

#[test]
fn looping_chains_pci() {
    hostile("hostile_loop", true);
}

#[test]
fn buffers_and_rings_outside_ram_mmio() {
    hostile("hostile_outside", false);
}

#[test]
fn buffers_and_rings_outside_ram_pci() {
    hostile("hostile_outside", true);
}

#[test]
fn block_header_wrapping_past_2_64_mmio() {
    hostile_to("hostile_blkwrap", false, &["blk ok"]);
}

#[test]
fn block_header_wrapping_past_2_64_pci() {
    hostile_to("hostile_blkwrap", true, &["blk ok"]);
}

#[test]
fn avail_indexes_past_the_queue_size_mmio() {
    hostile("hostile_index", false);
}

#[test]
fn avail_indexes_past_the_queue_size_pci() {
    hostile("hostile_index", true);
}

#[test]
fn used_rings_over_avail_rings_mmio() {
    hostile("hostile_overlap", false);
}

#[test]
fn used_rings_over_avail_rings_pci() {
    hostile("hostile_overlap", true);
}

/// `hostile_flood` makes each device refuse 2048 malformed requests in
/// about a second (blk 2048 ways, the others once per batch): guest-made
/// messages must be rate-limited, or a guest grows the host's logs
/// without bound.
fn flood(pci: bool) {
    require_kvm();
    let machine = Machine::new("hostile_flood", pci);
    let outcome = Vmm::start(&machine.args).finish();
    let mut expect = vec![
        "rng ok",
        "blk ok",
        "vsock ok",
        "balloon ok",
        "hostile_flood done",
    ];
    if machine.net {
        expect.push("net ok");
    }
    outcome.assert_clean(&expect);
    let lines = outcome.stderr.lines().count();
    assert!(lines <= 100, "{lines} lines on stderr: {}", outcome.stderr);
}

#[test]
fn malformed_requests_do_not_flood_the_log_mmio() {
    flood(false);
}

#[test]
fn malformed_requests_do_not_flood_the_log_pci() {
    flood(true);
}

#[test]
fn reset_with_requests_in_flight_mmio() {
    hostile("hostile_reset", false);
}

#[test]
fn reset_with_requests_in_flight_pci() {
    hostile("hostile_reset", true);
}

#[test]
fn notifications_without_buffers_mmio() {
    hostile("hostile_kick", false);
}

#[test]
fn notifications_without_buffers_pci() {
    hostile("hostile_kick", true);
}

#[test]
fn config_space_and_registers_byte_by_byte_mmio() {
    hostile("hostile_config", false);
}

#[test]
fn config_space_and_registers_byte_by_byte_pci() {
    hostile("hostile_config", true);
}

#[test]
fn garbage_msix_tables_and_pba_pci() {
    // Each device's check runs four times with garbage in its table.
    hostile("hostile_msix", true);
}

/// How the test ends a hostile vsock run.
#[derive(Clone, Copy)]
enum Ending {
    /// The guest powers off.
    PowerOff,
    /// The guest resets the machine, under `--no-reboot`.
    ResetNoReboot,
    /// The guest resets the vsock device, then powers off.
    DeviceReset,
    /// The host sends the VMM `SIGTERM`.
    Sigterm,
}

/// The guest connects to the host's listener, sends a line, then offers
/// a receive buffer with room for one packet header and no data while
/// the host's reply waits, and the run ends as `ending` says.
fn vsock_buffer_without_room(pci: bool, ending: Ending) {
    require_kvm();
    let mut machine = Machine::new("hostile_vsock", pci);
    if let Ending::ResetNoReboot = ending {
        machine.args.push("--no-reboot".into());
    }
    let listener = UnixListener::bind(machine.vsock_port_path(HOST_PORT)).unwrap();
    let (lines, line) = channel();
    // The host program: reads the guest's line, replies, and keeps the
    // connection open until the test ends.
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(LIMIT)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut text = String::new();
        let _ = reader.read_line(&mut text);
        let mut stream = stream;
        let _ = stream.write_all(b"pong pong pong\n");
        let _ = lines.send(text);
        std::thread::sleep(LIMIT);
    });
    let mut vmm = Vmm::start(&machine.args);
    vmm.wait_for("vsock waiting");
    let text = line.recv_timeout(LIMIT).expect("the guest's line");
    assert_eq!(text, "hello\n");
    // Long enough for the reply to reach the device, which now has data
    // for a guest whose only buffer has no room for it.
    std::thread::sleep(Duration::from_millis(300));
    match ending {
        Ending::PowerOff => vmm.type_text("P"),
        Ending::ResetNoReboot => vmm.type_text("R"),
        Ending::DeviceReset => vmm.type_text("D"),
        Ending::Sigterm => vmm.terminate(),
    }
    let outcome = vmm.finish();
    match ending {
        Ending::PowerOff => {
            outcome.assert_clean(&["vsock connected", "vsock powering off"]);
        }
        Ending::ResetNoReboot => outcome.assert_clean(&["vsock connected", "vsock resetting"]),
        Ending::DeviceReset => outcome.assert_clean(&["vsock connected", "vsock device reset"]),
        // The VMM stops the machine and ends with 128 + 15, and soon:
        // `finish` enforces the time limit.
        Ending::Sigterm => {
            assert!(outcome.lines().contains(&"vsock connected"));
            assert_eq!(outcome.status, 128 + libc::SIGTERM, "{}", outcome.stderr);
        }
    }
}

#[test]
fn vsock_receive_buffer_without_room_for_data_mmio() {
    vsock_buffer_without_room(false, Ending::PowerOff);
}

#[test]
fn vsock_receive_buffer_without_room_for_data_pci() {
    vsock_buffer_without_room(true, Ending::PowerOff);
}

#[test]
fn vsock_receive_buffer_without_room_then_reset_under_no_reboot() {
    vsock_buffer_without_room(false, Ending::ResetNoReboot);
}

#[test]
fn vsock_receive_buffer_without_room_then_device_reset() {
    vsock_buffer_without_room(false, Ending::DeviceReset);
}

#[test]
fn vsock_receive_buffer_without_room_then_sigterm() {
    vsock_buffer_without_room(false, Ending::Sigterm);
}
