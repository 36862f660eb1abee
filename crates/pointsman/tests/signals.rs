//! SIGTERM and SIGINT end a run promptly, with the status the README
//! documents (128 plus the signal), after stopping the guest.

mod common;
use common::*;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

/// How soon the VMM must be gone after the signal: stopping the vCPUs
/// and the device workers is bounded by a few seconds even when one is
/// stuck; an idle guest takes far less.
const PROMPT: Duration = Duration::from_secs(5);

/// Boots the idle guest with `extra` options, sends `signal` once it is
/// up, and returns the run, the signal that killed the process (if one
/// did: then it did not end by itself) and how long it took to end.
fn stop_an_idle_guest_with(signal: i32, extra: &[&str]) -> (Run, Option<i32>, Duration) {
    let dir = Scratch::new(&format!("signal{signal}"));
    let kernel = dir.file("kernel", guests::PVH);
    let mut args = vec![
        "run",
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "idle",
    ];
    args.extend_from_slice(extra);
    let mut session = Session::start(&args);
    session.wait_for("idle");
    let sent = Instant::now();
    session.send_signal(signal);
    let (run, status) = session.finish_with_status();
    (run, status.signal(), sent.elapsed())
}

#[test]
fn sigterm_ends_the_run_with_status_143() {
    require_kvm();
    let (run, killed_by, took) = stop_an_idle_guest_with(libc::SIGTERM, &[]);
    assert_eq!(killed_by, None, "exited by itself: {run:?}");
    assert_eq!(run.status, 128 + libc::SIGTERM, "{run:?}");
    assert!(took < PROMPT, "took {took:?}");
    assert!(run.stderr.contains("stopped by SIGTERM"), "{run:?}");
}

#[test]
fn sigint_ends_the_run_with_status_130() {
    require_kvm();
    let (run, killed_by, took) = stop_an_idle_guest_with(libc::SIGINT, &[]);
    assert_eq!(killed_by, None, "exited by itself: {run:?}");
    assert_eq!(run.status, 128 + libc::SIGINT, "{run:?}");
    assert!(took < PROMPT, "took {took:?}");
}

#[test]
fn sigterm_ends_a_run_with_pci_devices_and_two_vcpus() {
    require_kvm();
    let (run, killed_by, took) =
        stop_an_idle_guest_with(libc::SIGTERM, &["--pci", "--rng", "--cpus", "2"]);
    assert_eq!(killed_by, None, "exited by itself: {run:?}");
    assert_eq!(run.status, 128 + libc::SIGTERM, "{run:?}");
    assert!(took < PROMPT, "took {took:?}");
}
