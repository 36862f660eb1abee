//! The serial console: output to stdout, stdin to the guest.

mod common;
use common::*;

#[test]
fn typed_input_reaches_the_guest_and_comes_back() {
    require_kvm();
    let dir = Scratch::new("echo");
    let kernel = dir.file("pvh", guests::PVH);
    let mut session = Session::start(&[
        "run",
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "echo",
    ]);
    session.wait_for("ready");
    session.type_text("hello pointsman");
    session.wait_for("hello pointsman");
    session.type_text("P");
    let run = session.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
}

#[test]
fn input_larger_than_the_uart_fifo_arrives_whole() {
    require_kvm();
    let dir = Scratch::new("echo-long");
    let kernel = dir.file("elf64", guests::ELF64);
    let text: String = (0..300)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut input = text.clone().into_bytes();
    input.push(b'P');
    let run = run(
        &[
            "run",
            "--kernel",
            kernel.to_str().unwrap(),
            "--cmdline",
            "echo",
        ],
        &input,
    );
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert!(run.stdout.contains(&text), "{run:?}");
}

#[test]
fn vmm_prints_nothing_of_its_own_in_a_normal_run() {
    require_kvm();
    let dir = Scratch::new("quiet");
    let kernel = dir.file("bz", guests::BZIMAGE);
    let run = boot(&kernel, "demo", &[]);
    assert_eq!(run.status, EXIT_OK);
    assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
    assert!(run.stdout.starts_with("Pointsman demo guest"), "{run:?}");
}

/// Opens a pseudo-terminal; returns (controller, terminal) descriptors.
fn open_pty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let (mut controller, mut terminal) = (0, 0);
    // SAFETY: openpty writes two descriptors into the integers we pass and
    // reads nothing else (the name, termios and window size are null).
    let rc = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened for us and are owned here.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(controller),
            std::os::fd::OwnedFd::from_raw_fd(terminal),
        )
    }
}

fn local_modes(fd: &std::os::fd::OwnedFd) -> libc::tcflag_t {
    use std::os::fd::AsRawFd;
    // SAFETY: termios is plain data that tcgetattr fills in.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a termios to write.
    assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut t) }, 0);
    t.c_lflag
}

#[test]
fn terminal_is_raw_while_the_guest_runs_and_restored_after() {
    require_kvm();
    let dir = Scratch::new("tty");
    let kernel = dir.file("pvh", guests::PVH);
    let (controller, terminal) = open_pty();
    let before = local_modes(&terminal);
    assert_ne!(
        before & libc::ICANON,
        0,
        "a new terminal starts in canonical mode"
    );
    let mut child = pointsman()
        .args([
            "run",
            "--kernel",
            kernel.to_str().unwrap(),
            "--cmdline",
            "echo",
        ])
        .stdin(std::process::Stdio::from(terminal.try_clone().unwrap()))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    while !String::from_utf8_lossy(&seen).contains("ready") {
        let n = std::io::Read::read(&mut out, &mut buf).unwrap();
        assert!(n > 0, "the guest never got ready");
        seen.extend_from_slice(&buf[..n]);
    }
    let during = local_modes(&terminal);
    assert_eq!(
        during & (libc::ICANON | libc::ECHO),
        0,
        "raw while the guest runs"
    );
    // Keys typed on the terminal reach the guest: P powers it off.
    let mut keys = std::fs::File::from(controller);
    std::io::Write::write_all(&mut keys, b"P").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        local_modes(&terminal),
        before,
        "the terminal's modes are restored"
    );
}
