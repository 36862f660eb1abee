//! The host manager: `pointsman serve` and `pointsman vm`. Each test has
//! its own daemon, state directory, socket, uid range and guest names, so
//! tests run side by side. Needs root (as CI is) and /dev/kvm.

mod common;
use common::manager_host::*;
use common::*;

use std::path::{Path, PathBuf};

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_guest_is_created_listed_paused_resumed_stopped_and_removed() {
    let host = Host::start("mgr-life", "42000-42009", &[]);
    let name = unique("life");
    let run = host.create(
        &name,
        &["--cpu-weight", "200", "--cpu-max", "50", "--memory", "64M"],
    );
    assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    host.wait_for_log(&name, "count ");

    // list --json: an array of objects with name, state and pid.
    let list = host.vm(&["list", "--json"]);
    assert_eq!(list.status, 0, "{list:?}");
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name.as_str())
        .expect("the guest is listed");
    assert_eq!(entry["state"], "running");
    let pid = pid_of(entry);
    assert!(is_running(pid));
    let table = host.vm(&["list"]);
    assert!(
        table.stdout.contains(&name) && table.stdout.contains("running"),
        "{table:?}"
    );

    // show: its uid from the range, and the cgroup the settings made.
    let shown = host.show(&name);
    assert_eq!(shown["uid"], 42000);
    assert_eq!(shown["memory_max_mib"], 128, "64M guest + 64 MiB: {shown}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains("42000")),
        "{status}"
    );
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap().trim().to_owned();
    let dirs = cgroup_dirs(&name);
    let memory_max = (128u64 << 20).to_string();
    let layout = manager::cgroup::CgroupLayout::of_host();
    let dir_of = |controller| layout.controller_dir(controller, PARENT_CGROUP, &name);
    if layout.version() == 1 {
        let (cpu, memory) = (dir_of("cpu").unwrap(), dir_of("memory").unwrap());
        assert_eq!(read(cpu.join("cpu.shares")), "2048");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(memory.join("memory.limit_in_bytes")), memory_max);
    } else {
        assert_eq!(read(dirs[0].join("cpu.weight")), "200");
        assert_eq!(read(dirs[0].join("cpu.max")), "50000 100000");
        assert_eq!(read(dirs[0].join("memory.max")), memory_max);
    }
    // The VMM (and so every thread it starts) is in the guest's cgroup.
    assert!(read(dirs[0].join("cgroup.procs"))
        .lines()
        .any(|p| p == pid.to_string()));

    // pause: the console stops growing; resume: it grows again.
    assert_eq!(host.vm(&["pause", &name]).status, 0);
    assert_eq!(host.show(&name)["state"], "paused");
    std::thread::sleep(Duration::from_millis(300));
    let paused_at = host.logs(&name).len();
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(host.logs(&name).len(), paused_at, "a paused guest printed");
    assert_eq!(host.vm(&["resume", &name]).status, 0);
    assert_eq!(host.show(&name)["state"], "running");
    let start = Instant::now();
    while host.logs(&name).len() == paused_at {
        assert!(
            start.elapsed() < TIME_LIMIT,
            "the resumed guest printed nothing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // rm is refused while it runs.
    let rm = host.vm(&["rm", &name]);
    assert_eq!(rm.status, EXIT_BAD_INPUT, "{rm:?}");
    assert!(rm.stderr.contains("is running"), "{rm:?}");

    // stop: the counting guest ignores Ctrl-Alt-Del: killed after the grace.
    let stop = host.vm(&["stop", &name, "--grace", "1"]);
    assert_eq!(stop.status, 0, "{stop:?}");
    let shown = host.show(&name);
    assert_eq!(shown["state"], "stopped", "{shown}");
    assert_eq!(shown["exit"]["status"], 137, "{shown}");
    assert!(
        shown["exit"]["reason"]
            .as_str()
            .unwrap()
            .contains("grace period"),
        "{shown}"
    );
    assert!(
        !shown["console_tail"].as_array().unwrap().is_empty(),
        "{shown}"
    );
    assert!(!is_running(pid));

    let rm = host.vm(&["rm", &name]);
    assert_eq!(rm.status, 0, "{rm:?}");
    assert!(!host.guest_dir(&name).exists());
    assert!(!host.jail_dir(&name).exists());
    assert!(cgroup_dirs(&name).iter().all(|d| !d.exists()));
    let unknown = host.vm(&["show", &name]);
    assert_eq!(unknown.status, EXIT_BAD_INPUT, "{unknown:?}");
    assert!(unknown.stderr.contains("no guest named"), "{unknown:?}");
}

#[test]
fn kill_ends_a_guest_at_once() {
    let host = Host::start("mgr-kill", "42010-42019", &[]);
    let name = unique("kill");
    let run = host.create(&name, &["--memory", "64M"]);
    assert_eq!(run.status, 0, "{run:?}");
    let pid = pid_of(&host.show(&name));
    let kill = host.vm(&["kill", &name]);
    assert_eq!(kill.status, 0, "{kill:?}");
    let shown = host.show(&name);
    assert_eq!(shown["state"], "stopped");
    assert_eq!(shown["exit"]["status"], 137);
    assert!(
        shown["exit"]["reason"]
            .as_str()
            .unwrap()
            .contains("vm kill"),
        "{shown}"
    );
    assert!(!is_running(pid));
    // Killing it again: it is not running.
    assert_eq!(host.vm(&["kill", &name]).status, EXIT_BAD_INPUT);
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}

#[test]
fn a_create_past_capacity_is_refused_and_leaves_nothing() {
    let host = Host::start(
        "mgr-admit",
        "42020-42029",
        &["--capacity", "cpus=2,memory=256M"],
    );
    let first = unique("fits");
    let second = unique("nofit");
    let run = host.create(&first, &["--memory", "192M"]);
    assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    let refused = host.create(&second, &["--memory", "192M"]);
    assert_eq!(refused.status, EXIT_BAD_INPUT, "{refused:?}");
    assert_eq!(
        refused.stderr.trim(),
        "pointsman: memory: 192 MiB asked, 64 MiB left of 256 MiB"
    );
    assert!(!host.guest_dir(&second).exists());
    assert!(!host.jail_dir(&second).exists());
    assert!(cgroup_dirs(&second).iter().all(|d| !d.exists()));
    // CPUs are overcommitted 4 times by default: 8 vCPUs fit, not 9.
    let cpus = host.create(&second, &["--memory", "32M", "--cpus", "8"]);
    assert_eq!(cpus.status, EXIT_BAD_INPUT, "{cpus:?}");
    assert!(
        cpus.stderr.contains("cpus: 8 asked, 7 left of 8"),
        "{cpus:?}"
    );
    assert_eq!(host.show(&first)["state"], "running");
    assert_eq!(host.vm(&["kill", &first]).status, 0);
    assert_eq!(host.vm(&["rm", &first]).status, 0);
}

#[test]
fn a_restarted_daemon_adopts_its_running_guests() {
    let mut host = Host::start("mgr-adopt", "42030-42039", &[]);
    let name = unique("adopt");
    let run = host.create(&name, &["--memory", "64M"]);
    assert_eq!(run.status, 0, "{run:?}");
    let pid = pid_of(&host.show(&name));
    // Paused before the daemon dies: the new one sees it paused.
    assert_eq!(host.vm(&["pause", &name]).status, 0);
    host.kill_daemon();
    host.start_daemon();
    assert_eq!(host.show(&name)["state"], "paused");
    assert_eq!(host.vm(&["resume", &name]).status, 0);
    host.kill_daemon();
    // The guest runs on without its daemon, and goes on printing.
    std::thread::sleep(Duration::from_millis(200));
    assert!(is_running(pid));
    let console = host.guest_dir(&name).join("console.log");
    let before = std::fs::metadata(&console).unwrap().len();
    let start = Instant::now();
    while std::fs::metadata(&console).unwrap().len() == before {
        assert!(
            start.elapsed() < TIME_LIMIT,
            "the guest stopped printing without its daemon"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    host.start_daemon();
    let shown = host.show(&name);
    assert_eq!(shown["state"], "running", "{shown}");
    assert_eq!(pid_of(&shown), pid);
    // Still controllable: through its own API socket, then stopped.
    assert_eq!(host.vm(&["pause", &name]).status, 0);
    assert_eq!(host.vm(&["resume", &name]).status, 0);
    let stop = host.vm(&["stop", &name, "--grace", "1"]);
    assert_eq!(stop.status, 0, "{stop:?}");
    let shown = host.show(&name);
    assert_eq!(shown["state"], "stopped");
    // Not the daemon's child any more: whoever adopted the orphan reaps it.
    let start = Instant::now();
    while is_running(pid) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(!is_running(pid), "{stat}\n{shown}\n{}", host.serve_log());
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}

#[test]
fn a_second_daemon_on_the_same_state_dir_refuses_to_start() {
    let mut host = Host::start("mgr-twice", "42040-42049", &[]);
    let mut args = host.serve_args();
    let other_socket = host.dir.path().join("other.sock");
    args[2] = other_socket.display().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = run_command(Command::new(env!("CARGO_BIN_EXE_pointsman")), &args, b"");
    assert_eq!(second.status, EXIT_BAD_INPUT, "{second:?}");
    assert_eq!(second.stderr.lines().count(), 1, "{second:?}");
    assert!(
        second.stderr.contains("another pointsman serve holds"),
        "{second:?}"
    );
    assert!(!other_socket.exists());
    // Another state directory but the same socket: refused too.
    let mut args = host.serve_args();
    let other_state = host.dir.path().join("other-state");
    args[4] = other_state.display().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let third = run_command(Command::new(env!("CARGO_BIN_EXE_pointsman")), &args, b"");
    assert_eq!(third.status, EXIT_BAD_INPUT, "{third:?}");
    assert!(
        third.stderr.contains("in use by a running server"),
        "{third:?}"
    );
    // The first goes on; SIGTERM ends it cleanly, its socket removed.
    assert_eq!(host.vm(&["list"]).status, 0);
    let status = host.terminate_daemon();
    assert_eq!(status.code(), Some(0), "{}", host.serve_log());
    assert!(!host.socket.exists());
}

#[test]
fn bad_input_is_refused_and_the_daemon_goes_on() {
    let host = Host::start("mgr-bad", "42050-42059", &[]);
    let name = unique("ok");
    assert_eq!(host.create(&name, &["--memory", "64M"]).status, 0);
    let refused = |args: &[&str], says: &str| {
        let run = host.vm(args);
        assert_eq!(run.status, EXIT_BAD_INPUT, "{args:?}: {run:?}");
        assert!(run.stderr.contains(says), "{args:?}: {run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {run:?}");
    };
    let kernel = host.kernel.to_str().unwrap();
    refused(
        &["create", "a.b", "--kernel", kernel],
        "a guest's name is 1 to 64",
    );
    refused(
        &["create", "a b", "--kernel", kernel],
        "a guest's name is 1 to 64",
    );
    refused(
        &["create", &"x".repeat(65), "--kernel", kernel],
        "a guest's name",
    );
    refused(&["create", &name, "--kernel", kernel], "exists already");
    refused(&["create", "sized", "--memory", "lots"], "size \"lots\"");
    refused(&["create", "weighted", "--cpu-weight", "0"], "cpu-weight 0");
    refused(
        &["create", "capped", "--cpu-weight", "10001"],
        "cpu-weight 10001",
    );
    refused(&["show", "nobody"], "no guest named \"nobody\"");
    refused(&["pause", "nobody"], "no guest named");
    refused(&["rm", "nobody"], "no guest named");
    // A kernel that is not there: the jail's message, and nothing left.
    let missing = host.dir.path().join("missing.elf");
    let gone = unique("nokernel");
    refused(
        &["create", &gone, "--kernel", missing.to_str().unwrap()],
        &format!("--kernel {}", missing.display()),
    );
    assert!(!host.guest_dir(&gone).exists());
    assert!(!host.jail_dir(&gone).exists());
    assert!(cgroup_dirs(&gone).iter().all(|d| !d.exists()));
    // A bad request straight to the API: a 4xx fault_message.
    let answer = raw_request(
        &host.socket,
        "PATCH /vms/x%2F HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"fault_message\""), "{answer}");
    // The daemon and its guest go on.
    assert_eq!(host.show(&name)["state"], "running");
    let list: serde_json::Value =
        serde_json::from_str(&host.vm(&["list", "--json"]).stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

/// Sends `request` as is and reads the answer to the end.
fn raw_request(socket: &Path, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// `docs/openapi-manager.yaml`'s operations, as (method, path).
fn documented_operations() -> Vec<(String, String)> {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi-manager.yaml"
    );
    let doc: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if method != "parameters" {
                operations.push((method.to_uppercase(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    operations
}

#[test]
fn every_documented_operation_is_served() {
    let host = Host::start("mgr-openapi", "42060-42069", &[]);
    let operations = documented_operations();
    assert_eq!(operations.len(), 13, "{operations:?}");
    for (method, path) in operations {
        let path = path.replace("{name}", "nobody");
        let body = if method == "GET" || method == "DELETE" {
            ""
        } else {
            "{}"
        };
        let request = format!(
            "{method} {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let answer = raw_request(&host.socket, &request);
        assert!(
            !answer.contains("no such request"),
            "{method} {path}: {answer}"
        );
        assert!(answer.starts_with("HTTP/1.1 "), "{method} {path}: {answer}");
    }
    // And a path that is not documented is not served.
    let answer = raw_request(&host.socket, "GET /guests HTTP/1.1\r\n\r\n");
    assert!(answer.contains("no such request"), "{answer}");
}

#[test]
fn a_guest_whose_vmm_ends_is_marked_with_its_status_and_reaped() {
    let host = Host::start("mgr-ends", "42070-42079", &[]);
    let name = unique("ends");
    assert_eq!(host.create(&name, &["--memory", "64M"]).status, 0);
    host.wait_for_log(&name, "count ");
    let pid = pid_of(&host.show(&name));
    // Ended behind the daemon's back: the VMM stops on SIGTERM.
    // SAFETY: kill(2) on the guest's VMM, which the daemon has not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let start = Instant::now();
    let shown = loop {
        let shown = host.show(&name);
        if shown["state"] == "stopped" {
            break shown;
        }
        assert!(
            start.elapsed() < TIME_LIMIT,
            "never marked stopped: {shown}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(shown["exit"]["status"], 143, "{shown}");
    assert_eq!(shown["exit"]["reason"], "killed by signal 15 (status 143)");
    assert_eq!(shown["pid"], serde_json::Value::Null);
    // Reaped: no zombie is left.
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} not reaped"
    );
    let exit: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(host.guest_dir(&name).join("exit.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(exit["status"], 143);
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}
