//! virtio-vsock with Debian's cloud kernel in the test host: host programs
//! and guest programs talking both ways through Pointsman's Unix sockets
//! (`vsock-test-tool` on both sides), and the `--vsock` option itself.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use testhost::{build_tool, linux_guest_initramfs, HostRun, TestHost};

const CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 quiet";
const MODULES: &[&str] = &["virtio_mmio", "vmw_vsock_virtio_transport"];
const TOOL: &str = "vsock-test-tool";
/// Bytes echoed each way: a few hundred KiB, many times the credit.
const ECHO_BYTES: u64 = 300 * 1024;
/// The VM's vsock option in the test host.
const VSOCK: &str = "--vsock cid=3,socket=/tmp/v.sock";

fn pointsman_path() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pointsman"))
}

/// Boots a guest whose init runs `guest` (with the tool in /bin) while
/// the test host runs `host` (the tool is in /bin there too).
fn run(name: &str, guest: &str, host: &str) -> HostRun {
    let tool = build_tool(TOOL, pointsman_path()).expect("build the vsock test tool");
    let testhost = TestHost::new(pointsman_path()).expect("set up the test host");
    let dir = Scratch::new(name);
    let initrd: PathBuf = dir.path().join("guest.cpio");
    let assets = testhost.assets();
    let mut image = linux_guest_initramfs(&assets.busybox, &assets.cloud, MODULES, guest)
        .expect("build the guest initramfs");
    image
        .program(&format!("bin/{TOOL}"), &tool)
        .expect("add the tool to the guest")
        .write(&initrd)
        .expect("write the guest initramfs");
    let kernel = assets.cloud.vmlinuz.clone();
    // `run` copies files without their mode; the tool needs no libraries
    // it does not share with pointsman (both are linked statically).
    let script = format!(
        "chmod 755 /bin/{TOOL}\n\
         VM_ARGS=\"--kernel /guest/vmlinuz --initrd /guest/initrd.cpio {VSOCK}\"\n\
         {host}\n"
    );
    testhost
        .run(
            &[
                ("guest/vmlinuz", &kernel),
                ("guest/initrd.cpio", &initrd),
                (&format!("bin/{TOOL}"), &tool),
            ],
            &script,
        )
        .expect("run the test host")
}

/// The one line starting `@@<tag>` in `text`, without the tag.
fn line<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let tag = format!("@@{tag}");
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .find_map(|l| l.strip_prefix(tag.as_str()))
        .map(str::trim)
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn echo_both_ways_and_refused_ports() {
    let guest = format!(
        "{TOOL} echo-vsock 6000 1\n\
         {TOOL} send-vsock 2 5000 {ECHO_BYTES}\n\
         {TOOL} send-vsock 2 5999 16\n\
         poweroff -f\n"
    );
    let host = format!(
        "{TOOL} echo-unix /tmp/v.sock_5000 1 &\n\
         start_vm $VM_ARGS --cmdline '{CMDLINE}'\n\
         wait_for '@@echo-vsock listening' 1 120\n\
         {TOOL} send-unix /tmp/v.sock 6000 {ECHO_BYTES}\n\
         {TOOL} send-unix /tmp/v.sock 6001 16\n\
         wait_for '@@send-vsock refused' 1 120\n\
         finish_vm\n\
         wait\n\
         [ -e /tmp/v.sock ] && echo '@@socket-left' || echo '@@socket-removed'\n"
    );
    let run = run("vsock-echo", &guest, &host);
    let console = &run.console;
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{console}");
    let (vm, status) = &vms[0];
    assert_eq!(*status, 0, "{console}");

    // Host program -> guest port 6000 -> back.
    let sent = line(console, "send-unix ok").unwrap_or_else(|| panic!("{console}"));
    assert_eq!(field(sent, "received"), Some("307200"), "{sent}");
    assert_eq!(field(sent, "sent-sum"), field(sent, "received-sum"));
    assert_eq!(line(vm, "echo-vsock echoed"), Some("307200"), "{vm}");
    // Guest -> host port 5000 (PATH_5000) -> back.
    let sent = line(vm, "send-vsock ok").unwrap_or_else(|| panic!("{vm}"));
    assert_eq!(field(sent, "received"), Some("307200"), "{sent}");
    assert_eq!(field(sent, "sent-sum"), field(sent, "received-sum"));
    assert_eq!(
        line(console, "echo-unix echoed"),
        Some("307200"),
        "{console}"
    );
    // Nobody listens: the host program gets no OK, the guest a reset.
    assert!(line(console, "send-unix refused").is_some(), "{console}");
    let refused = line(vm, "send-vsock refused").unwrap_or_else(|| panic!("{vm}"));
    assert!(refused.contains("reset"), "{refused}");
    assert!(console.contains("@@socket-removed"), "{console}");
    for (tag, result) in [("host to guest", &run.console), ("guest to host", vm)] {
        eprintln!(
            "{tag}: {:?}",
            line(result, "send-unix ok").or(line(result, "send-vsock ok"))
        );
    }
}

#[test]
fn slow_readers_block_the_writers_both_ways() {
    let guest = format!(
        "{TOOL} hold-vsock 6002 15 &\n\
         {TOOL} push-vsock 2 5002\n\
         wait\n\
         poweroff -f\n"
    );
    let host = format!(
        "{TOOL} hold-unix /tmp/v.sock_5002 15 &\n\
         start_vm $VM_ARGS --cmdline '{CMDLINE}'\n\
         wait_for '@@hold-vsock listening' 1 120\n\
         {TOOL} push-unix /tmp/v.sock 6002\n\
         wait_for '@@hold-vsock ok' 1 120\n\
         wait\n\
         finish_vm\n"
    );
    let run = run("vsock-slow", &guest, &host);
    let console = &run.console;
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{console}");
    let (vm, status) = &vms[0];
    assert_eq!(*status, 0, "{console}");
    let stalled_at = |text: &str, tag: &str| -> u64 {
        line(text, tag)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {tag}\n{console}"))
    };
    // Host writer, guest reader that does not read: what the writer got
    // rid of fits in the Unix socket's buffer and the guest's 256 KiB
    // receive buffer; the VMM read nothing more.
    let host_stalled = stalled_at(console, "push-unix stalled-at=");
    assert!(
        host_stalled > 64 * 1024 && host_stalled < 2 << 20,
        "host writer stalled at {host_stalled}\n{console}"
    );
    // Guest writer, host reader that does not read: the VMM holds at
    // most its 64 KiB credit beyond the Unix socket's buffer.
    let guest_stalled = stalled_at(vm, "push-vsock stalled-at=");
    assert!(
        guest_stalled > 32 * 1024 && guest_stalled < 1 << 20,
        "guest writer stalled at {guest_stalled}\n{vm}"
    );
    // Then the readers read: every byte arrives, in order.
    let held = line(vm, "hold-vsock ok").unwrap_or_else(|| panic!("{vm}"));
    assert_eq!(
        field(held, "received"),
        Some(host_stalled.to_string().as_str())
    );
    let held = line(console, "hold-unix ok").unwrap_or_else(|| panic!("{console}"));
    assert_eq!(
        field(held, "received"),
        Some(guest_stalled.to_string().as_str())
    );
    eprintln!("writers stalled after: host {host_stalled} bytes, guest {guest_stalled} bytes");
}

/// A scratch directory whose path has no comma (`Scratch`'s do), which
/// the `key=value,...` syntax could not carry.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("pointsman-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_refused(args: &[&str], expect: &str) {
    let run = common::run(args, b"");
    assert_eq!(run.status, EXIT_BAD_INPUT, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {}", run.stderr);
    assert!(lines[0].starts_with("pointsman: "), "{}", lines[0]);
    assert!(
        lines[0].contains(expect),
        "expected {expect:?} in {:?}",
        lines[0]
    );
}

#[test]
fn bad_vsock_options_are_refused() {
    require_kvm();
    let dir = Dir::new("vsock-options");
    let sock = dir.0.join("v.sock");
    let sock = sock.to_str().unwrap();
    for (value, expect) in [
        (format!("cid=2,socket={sock}"), "cid 2 is out of range"),
        (format!("cid=x,socket={sock}"), "cid \"x\" is not a number"),
        ("cid=3".to_owned(), "socket= is missing"),
        (format!("cid=3,socket={sock},mtu=5"), "unknown key \"mtu\""),
        (
            "cid=3,socket=/nonexistent/v.sock".to_owned(),
            "cannot listen on /nonexistent/v.sock",
        ),
    ] {
        assert_refused(&["run", "--vsock", &value], expect);
    }
    let file = dir.0.join("plain");
    std::fs::write(&file, b"").unwrap();
    let value = format!("cid=3,socket={}", file.display());
    assert_refused(&["run", "--vsock", &value], "is not a socket");
}

#[test]
fn stale_socket_is_replaced_and_the_socket_removed_at_exit() {
    require_kvm();
    let dir = Dir::new("vsock-lifetime");
    let sock = dir.0.join("v.sock");
    // A stale socket file from a killed VMM is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let value = format!("cid=3,socket={}", sock.display());
    let run = common::run(&["run", "--vsock", &value], b"");
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert!(!sock.exists(), "the socket file is removed at exit");
}
