//! Seccomp filters: every thread of a running VMM (main, vCPUs, device
//! workers, the API server) runs under a filter, none does under
//! `--seccomp off`, and a forbidden call ends the VMM with status 159 and
//! one line naming the thread and the call (made on purpose through the
//! debug-build test hook, `POINTSMAN_TEST_SECCOMP_FORBIDDEN_CALL`).

mod common;
use common::api_client::ApiClient;
use common::*;

use std::path::Path;
use std::time::Instant;

/// `seccomp::FORBIDDEN_CALL_STATUS`, the documented exit status.
const EXIT_FORBIDDEN_CALL: i32 = 159;
const HOOK: &str = "POINTSMAN_TEST_SECCOMP_FORBIDDEN_CALL";

/// A guest with an entropy device and a disk it uses (`checks`), a vsock
/// device and the API: every kind of thread runs.
fn start(dir: &Scratch, extra: &[&str], hook: Option<&str>) -> Session {
    let kernel = dir.file("pvh.elf", guests::PVH);
    let disk = dir.file("disk.img", &[0x5a; 64 * 1024]);
    let disk = format!("path={}", disk.display());
    let vsock = format!("cid=3,socket={}", dir.path().join("v.sock").display());
    let api = dir.path().join("api.sock");
    let mut args = vec![
        "run",
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "checks",
        "--rng",
        "--disk",
        &disk,
        "--vsock",
        &vsock,
        "--api-sock",
        api.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let mut command = pointsman();
    if let Some(kind) = hook {
        command.env(HOOK, kind);
    }
    Session::start_command(command, &args)
}

fn api(dir: &Scratch) -> ApiClient {
    let socket = dir.path().join("api.sock");
    let start = Instant::now();
    loop {
        if let Ok(client) = ApiClient::try_connect(&socket) {
            return client;
        }
        assert!(start.elapsed() < TIME_LIMIT, "no API socket");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Each thread's name with its `Seccomp:` mode and `Seccomp_filters:`
/// count, from `/proc/PID/task/*/status`.
fn thread_filters(pid: u32) -> Vec<(String, u32, u32)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| panic!("no {name} in {status}"))
        };
        threads.push((
            field("Name:"),
            field("Seccomp:").parse().unwrap(),
            field("Seccomp_filters:").parse().unwrap(),
        ));
    }
    threads.sort();
    threads
}

fn names(threads: &[(String, u32, u32)]) -> Vec<&str> {
    threads.iter().map(|(name, ..)| name.as_str()).collect()
}

#[test]
fn every_thread_of_a_running_vmm_is_filtered() {
    require_kvm();
    let dir = Scratch::new("seccomp-on");
    let mut vm = start(&dir, &[], None);
    vm.wait_for("blk ok");
    api(&dir).get("/").expect(200);
    let threads = thread_filters(vm.pid());
    for kind in [
        "pointsman",
        "vcpu0",
        "pointsman-api",
        "virtio-rng",
        "virtio-blk",
    ] {
        assert!(names(&threads).contains(&kind), "{kind}: {threads:?}");
    }
    for (name, mode, filters) in &threads {
        assert_eq!(*mode, 2, "{name} is not filtered: {threads:?}");
        assert!(*filters >= 1, "{name}: {threads:?}");
    }
    vm.type_text("P");
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
}

#[test]
fn with_seccomp_off_no_thread_is_filtered() {
    require_kvm();
    let dir = Scratch::new("seccomp-off");
    let mut vm = start(&dir, &["--seccomp", "off"], None);
    vm.wait_for("blk ok");
    let threads = thread_filters(vm.pid());
    assert!(names(&threads).contains(&"virtio-blk"), "{threads:?}");
    for (name, mode, filters) in &threads {
        assert_eq!((*mode, *filters), (0, 0), "{name}: {threads:?}");
    }
    vm.type_text("P");
    assert_eq!(vm.finish().status, EXIT_OK);
}

/// Each kind of thread, made to call ptrace (which no filter allows) as
/// soon as its filter is on, ends the VMM with the documented status and
/// one line naming the thread and the call.
#[test]
fn a_forbidden_call_ends_the_vmm_with_its_own_status_and_line() {
    require_kvm();
    for (kind, thread) in [
        ("vcpu", "vcpu0"),
        ("worker", "virtio-"),
        ("api", "pointsman-api"),
        ("main", "main"),
    ] {
        let dir = Scratch::new(&format!("seccomp-trap-{kind}"));
        let vm = start(&dir, &[], Some(kind));
        let run = vm.finish();
        assert_eq!(run.status, EXIT_FORBIDDEN_CALL, "{kind}: {run:?}");
        let line = format!("pointsman: seccomp: thread {thread}");
        let reported = run.stderr.lines().find(|l| l.starts_with(&line));
        let reported = reported.unwrap_or_else(|| panic!("{kind}: no {line:?} in {run:?}"));
        assert!(
            reported.ends_with(&format!(
                "made forbidden system call {} (ptrace)",
                libc::SYS_ptrace
            )),
            "{reported}"
        );
    }
}

/// Under `--seccomp log` the same call is let through (the kernel logs
/// it): the guest runs on.
#[test]
fn with_seccomp_log_a_forbidden_call_is_let_through() {
    require_kvm();
    let dir = Scratch::new("seccomp-log");
    let mut vm = start(&dir, &["--seccomp", "log"], Some("vcpu"));
    vm.wait_for("blk ok");
    let threads = thread_filters(vm.pid());
    assert!(threads.iter().all(|(_, mode, _)| *mode == 2), "{threads:?}");
    vm.type_text("P");
    assert_eq!(vm.finish().status, EXIT_OK);
}

#[test]
fn firecrackers_compiled_filter_files_are_refused() {
    let dir = Scratch::new("seccomp-fc-filter");
    let filter = dir.file("filter.bpf", &[0; 8]);
    let run = run(
        &[
            "firecracker",
            "--no-api",
            "--config-file",
            Path::new("/nonexistent.json").to_str().unwrap(),
            "--seccomp-filter",
            filter.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(run.status, EXIT_BAD_INPUT, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains("--seccomp-filter"), "{run:?}");
}
