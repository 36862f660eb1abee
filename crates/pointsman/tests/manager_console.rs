//! The host manager's console: `pointsman vm console` (through a pipe and
//! in a real terminal, under tmux), input after a daemon restart, and
//! `pointsman vm logs --follow`. The guests run the test guest's `echo`
//! command, which sends back every byte its serial port receives. Needs
//! root (as CI is), /dev/kvm and tmux.

mod common;
use common::manager_host::*;
use common::*;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Ctrl-], `vm console`'s default detach key.
const CTRL_RIGHT_BRACKET: &str = "\x1d";

/// `vm create NAME` of an echoing guest; waits until it reads input.
fn create_echo(host: &Host, name: &str) {
    let kernel = host.kernel.to_str().unwrap();
    let run = host.vm(&[
        "create",
        name,
        "--kernel",
        kernel,
        "--cmdline",
        "echo",
        "--memory",
        "64M",
    ]);
    assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    host.wait_for_log(name, "ready");
}

/// `pointsman vm ARGS` against `host`, talked to as it runs.
fn vm_session(host: &Host, args: &[&str]) -> Session {
    let mut command = pointsman();
    command.env("POINTSMAN_SOCKET", &host.socket);
    let mut all = vec!["vm"];
    all.extend_from_slice(args);
    Session::start_command(command, &all)
}

fn console_log(host: &Host, name: &str) -> Vec<u8> {
    std::fs::read(host.guest_dir(name).join("console.log")).unwrap()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < TIME_LIMIT, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn console_through_a_pipe_sends_input_and_detaches_leaving_the_guest_running() {
    let host = Host::start("mgr-con-pipe", "45000-45009", &[]);
    let name = unique("con-pipe");
    create_echo(&host, &name);
    let pid = pid_of(&host.show(&name));

    let mut console = vm_session(&host, &["console", &name]);
    // The recent output first, then what the guest echoes.
    console.wait_for("ready");
    console.type_text("hello\n");
    console.wait_for("hello\n");
    // Any byte gets through, control characters too; and more than the
    // UART's FIFO holds at once.
    console.type_text("a\x01\x03\x7fb\n");
    console.wait_for("b\n");
    let long: String = (0..1000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    console.type_text(&format!("{long}\n"));
    console.wait_for(&format!("{long}\n"));
    console.type_text(CTRL_RIGHT_BRACKET);
    let run = console.finish();
    assert_eq!(run.status, 0, "{run:?}");
    assert!(
        run.stderr
            .starts_with(&format!("connected to {name}; ^] detaches\n")),
        "{run:?}"
    );
    assert!(run.stderr.contains("detached from"), "{run:?}");
    let log = console_log(&host, &name);
    assert!(
        log.windows(6).any(|w| w == b"a\x01\x03\x7fb\n"),
        "{}",
        String::from_utf8_lossy(&log)
    );
    // Detached, not stopped.
    assert_eq!(host.show(&name)["state"], "running");
    assert!(is_running(pid));

    // Another key, and bytes before it in the same read still go.
    let mut console = vm_session(&host, &["console", &name, "--detach-key", "~"]);
    console.wait_for("ready");
    console.type_text("tilde\n~");
    let run = console.finish();
    assert_eq!(run.status, 0, "{run:?}");
    assert!(run.stderr.contains("; ~ detaches"), "{run:?}");
    wait_until("the bytes before the detach key are echoed", || {
        String::from_utf8_lossy(&console_log(&host, &name)).contains("tilde\n")
    });
    let bad_key = host.vm(&["console", &name, "--detach-key", "^1"]);
    assert_eq!(bad_key.status, EXIT_BAD_INPUT, "{bad_key:?}");

    // Input at its end: output is still followed, until the guest ends,
    // which ends the console with a line saying so.
    let mut follower = pointsman()
        .env("POINTSMAN_SOCKET", &host.socket)
        .args(["vm", "console", &name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        follower.try_wait().unwrap().is_none(),
        "ended at its input's end"
    );
    assert_eq!(host.vm(&["kill", &name]).status, 0);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < TIME_LIMIT,
            "the console outlived its guest"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    follower
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("guest {name} has ended: killed by `vm kill`")),
        "{stderr}"
    );

    // A guest that is not running, or not there: refused with status 2.
    let stopped = host.vm(&["console", &name]);
    assert_eq!(stopped.status, EXIT_BAD_INPUT, "{stopped:?}");
    assert!(stopped.stderr.contains("is not running"), "{stopped:?}");
    let nobody = host.vm(&["console", "nobody"]);
    assert_eq!(nobody.status, EXIT_BAD_INPUT, "{nobody:?}");
    assert!(nobody.stderr.contains("no guest named"), "{nobody:?}");
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}

/// A tmux server of the test's own, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        let found = Command::new("tmux").arg("-V").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "tmux is missing: scripts/setup installs it"
        );
        Tmux {
            socket: format!("{name}-{}", std::process::id()),
        }
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn pane(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "console"]).stdout)
            .into_owned()
    }

    fn wait_for_pane(&self, text: &str) {
        let start = Instant::now();
        loop {
            let pane = self.pane();
            if pane.contains(text) {
                return;
            }
            assert!(
                start.elapsed() < TIME_LIMIT,
                "the pane never showed {text:?}:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn is_alive(&self) -> bool {
        self.run(&["has-session", "-t", "console"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

#[test]
fn console_in_a_terminal_is_raw_and_the_terminal_is_restored_on_detach() {
    let host = Host::start("mgr-con-tty", "45010-45019", &[]);
    let name = unique("con-tty");
    create_echo(&host, &name);
    let dir = host.dir.path();
    let tmux = Tmux::new("pointsman-console");
    // The shell saves the terminal's mode before and after the console.
    let script = format!(
        "stty -g > {dir}/before; POINTSMAN_SOCKET={socket} {exe} vm console {name}; \
         echo $? > {dir}/status; stty -g > {dir}/after",
        dir = dir.display(),
        socket = host.socket.display(),
        exe = env!("CARGO_BIN_EXE_pointsman"),
    );
    // A session of fixed size running the script, until the console says
    // it is connected.
    let start = || {
        let started = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "console",
            "-x",
            "120",
            "-y",
            "30",
            &script,
        ]);
        assert!(started.status.success(), "{started:?}");
        tmux.wait_for_pane(&format!("connected to {name}; ^] detaches"));
    };
    start();
    tmux.wait_for_pane("ready");
    // Keys go to the guest as typed, Enter as a CR, not echoed by the
    // terminal: what shows is the guest's echo.
    let typed = tmux.run(&["send-keys", "-t", "console", "hello", "Enter"]);
    assert!(typed.status.success(), "{typed:?}");
    tmux.wait_for_pane("hello");
    wait_until("the guest gets hello and a CR", || {
        console_log(&host, &name)
            .windows(6)
            .any(|w| w == b"hello\r")
    });
    // Ctrl-C is the guest's, not a signal to the client.
    tmux.run(&["send-keys", "-t", "console", "C-c"]);
    wait_until("the guest gets Ctrl-C", || {
        console_log(&host, &name).ends_with(b"\x03")
    });
    assert!(tmux.is_alive(), "Ctrl-C ended the console");
    tmux.run(&["send-keys", "-t", "console", "C-]"]);
    wait_until("the pane's command ends", || !tmux.is_alive());
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
    assert_eq!(read("status").trim(), "0");
    assert_eq!(read("before"), read("after"), "the terminal's mode changed");
    assert_eq!(host.show(&name)["state"], "running");

    // The guest's end ends the console, and the terminal comes back too.
    for file in ["before", "status", "after"] {
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    start();
    assert_eq!(host.vm(&["kill", &name]).status, 0);
    wait_until("the console ends with its guest", || !tmux.is_alive());
    assert_eq!(read("status").trim(), "0");
    assert_eq!(read("before"), read("after"), "the terminal's mode changed");
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}

#[test]
fn console_input_works_after_the_daemon_is_killed_and_started_again() {
    let mut host = Host::start("mgr-con-adopt", "45020-45029", &[]);
    let name = unique("con-adopt");
    create_echo(&host, &name);
    let pid = pid_of(&host.show(&name));
    host.kill_daemon();
    host.start_daemon();
    assert_eq!(host.show(&name)["state"], "running");
    // The adopted VMM still reads the FIFO the first daemon gave it.
    let mut console = vm_session(&host, &["console", &name]);
    console.wait_for("ready");
    console.type_text("adopted\n");
    console.wait_for("adopted\n");
    console.type_text(CTRL_RIGHT_BRACKET);
    let run = console.finish();
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(pid_of(&host.show(&name)), pid);
    assert_eq!(host.vm(&["kill", &name]).status, 0);
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}

#[test]
fn logs_follow_prints_new_output_and_ends_when_the_guest_does() {
    let host = Host::start("mgr-con-follow", "45030-45039", &[]);
    let name = unique("con-follow");
    let run = host.create(&name, &["--memory", "64M"]);
    assert_eq!(run.status, 0, "{run:?}");
    host.wait_for_log(&name, "count ");
    let mut follow = vm_session(&host, &["logs", &name, "--follow"]);
    follow.wait_for("count ");
    // New lines come while it runs.
    let first = follow.output().len();
    wait_until("new output is printed", || follow.output().len() > first);
    assert!(follow.is_running());
    // Stopped (killed after the grace, as the counting guest ignores
    // Ctrl-Alt-Del): it ends, status 0, with all of the log printed.
    let stop = host.vm(&["stop", &name, "--grace", "1"]);
    assert_eq!(stop.status, 0, "{stop:?}");
    let run = follow.finish();
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(run.stdout, host.logs(&name));

    // Plain logs stay as they were; unknown guests are refused.
    let nobody = host.vm(&["logs", "nobody", "--follow"]);
    assert_eq!(nobody.status, EXIT_BAD_INPUT, "{nobody:?}");
    // An ended guest's log is printed whole and the command ends at once.
    let again = host.vm(&["logs", &name, "--follow"]);
    assert_eq!(again.status, 0, "{again:?}");
    assert_eq!(again.stdout, run.stdout);
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}

#[test]
fn the_detach_key_works_while_a_paused_guest_takes_no_input() {
    let host = Host::start("mgr-con-full", "45040-45049", &[]);
    let name = unique("con-full");
    create_echo(&host, &name);
    // Paused, the VMM reads no input: its FIFO (64 KiB) fills up.
    assert_eq!(host.vm(&["pause", &name]).status, 0);
    let mut console = vm_session(&host, &["console", &name]);
    console.wait_for("ready");
    console.type_text(&"x".repeat(100 * 1024));
    console.type_text(CTRL_RIGHT_BRACKET);
    let run = console.finish();
    assert_eq!(run.status, 0, "{run:?}");
    assert!(run.stderr.contains("bytes of input not sent"), "{run:?}");
    // The daemon never waited on the full FIFO.
    assert_eq!(host.show(&name)["state"], "paused");
    assert_eq!(host.vm(&["kill", &name]).status, 0);
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}

#[test]
fn a_console_log_past_its_limit_is_rotated_and_a_follower_misses_nothing() {
    let host = Host::start(
        "mgr-con-rotate",
        "45050-45059",
        &["--console-log-max", "4K"],
    );
    let name = unique("con-rotate");
    create_echo(&host, &name);
    let log = host.guest_dir(&name).join("console.log");
    let previous = host.guest_dir(&name).join("console.log.1");
    let mut follow = vm_session(&host, &["logs", &name, "--follow"]);
    follow.wait_for("ready");
    let mut console = vm_session(&host, &["console", &name]);
    console.wait_for("ready");
    // 12 lines of 1000 bytes echoed: three times the limit.
    let lines: Vec<String> = (0..12)
        .map(|i| format!("{i:02}-{}\n", "x".repeat(996)))
        .collect();
    for line in &lines {
        console.type_text(line);
        console.wait_for(line);
    }
    console.type_text(CTRL_RIGHT_BRACKET);
    assert_eq!(console.finish().status, 0);
    wait_until("the log is rotated", || previous.exists());
    // Neither file grows much past the limit (a tick is 200 ms of output).
    for file in [&log, &previous] {
        let len = std::fs::metadata(file).unwrap().len();
        assert!(len < 8192, "{file:?}: {len} bytes");
    }
    // `logs` reads across both files; the follower saw every line once,
    // in order, rotations or not.
    assert!(host.logs(&name).ends_with(lines.last().unwrap()));
    let serve_log = host.serve_log();
    assert!(serve_log.contains("console log past"), "{serve_log}");
    assert!(follow.is_running());
    assert_eq!(host.vm(&["kill", &name]).status, 0);
    let run = follow.finish();
    assert_eq!(run.status, 0, "{run:?}");
    let mut at = 0;
    for line in &lines {
        let found = run.stdout[at..]
            .find(line.as_str())
            .unwrap_or_else(|| panic!("the follower missed {:?}", &line[..8]));
        at += found + line.len();
    }
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}
