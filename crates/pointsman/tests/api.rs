//! Firecracker's API on its Unix socket, driven as Firecracker's clients and
//! docs drive it: the PVH test guest configured and started through the
//! API, under `pointsman run --api-sock`, the `firecracker` name and a
//! command-line guest; pause and resume with the `count` guest; every kind
//! of bad request, after each of which the VMM and its guest go on; metrics,
//! logger (configured again and again), the serial console in a file,
//! drives and NICs changed after boot.

mod common;
use common::api_client::{Answer, ApiClient};
use common::*;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A scratch directory with the PVH test guest, a socket path and a
/// `firecracker` symlink to the binary.
struct Host {
    dir: Scratch,
    kernel: PathBuf,
    socket: PathBuf,
}

impl Host {
    fn new(name: &str) -> Host {
        let dir = Scratch::new(name);
        let kernel = dir.file("pvh.elf", guests::PVH);
        let socket = dir.path().join("api.sock");
        Host {
            dir,
            kernel,
            socket,
        }
    }

    fn kernel(&self) -> &str {
        self.kernel.to_str().unwrap()
    }

    fn socket(&self) -> &str {
        self.socket.to_str().unwrap()
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// `pointsman run --api-sock SOCKET` with `more` arguments.
    fn run(&self, more: &[&str]) -> Session {
        let mut args = vec!["run", "--api-sock", self.socket()];
        args.extend_from_slice(more);
        Session::start(&args)
    }

    /// The binary under the name `firecracker`, as tools start it.
    fn firecracker(&self) -> Command {
        let link = self.dir.path().join("firecracker");
        if !link.exists() {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pointsman"), &link).unwrap();
        }
        Command::new(link)
    }

    fn client(&self) -> ApiClient {
        ApiClient::connect(&self.socket)
    }

    /// A raw connection, for requests the client cannot send.
    fn raw(&self) -> UnixStream {
        // The client waits for the socket to appear.
        drop(self.client());
        let stream = UnixStream::connect(&self.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    }

    /// Configures the `count` guest.
    fn configure_count(&self, api: &mut ApiClient) {
        api.configure(&self.kernel, "count");
    }
}

/// Asserts `answer` has `status`, showing it otherwise.
#[track_caller]
fn expect(answer: Answer, status: u16) -> Answer {
    answer.expect(status)
}

/// Asserts `answer` is a 400 whose `fault_message` contains `text`.
#[track_caller]
fn refused(answer: Answer, text: &str) {
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(
        answer.fault().contains(text),
        "fault_message without {text:?}: {answer:?}"
    );
}

fn start(api: &mut ApiClient) {
    expect(
        api.put("/actions", r#"{"action_type": "InstanceStart"}"#),
        204,
    );
}

fn state(api: &mut ApiClient) -> String {
    let info = expect(api.get("/"), 200).json();
    info["state"].as_str().unwrap().to_owned()
}

/// Waits until the guest prints a new `count` line.
#[track_caller]
fn still_counts(vm: &Session) {
    let before = vm.output().len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !vm.output()[before..].contains("count ") {
        assert!(
            Instant::now() < deadline,
            "the guest stopped counting:\n{}",
            vm.output()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Asserts the paused guest prints nothing for over a second.
#[track_caller]
fn no_progress(vm: &Session) {
    // Lines the guest wrote just before the pause may still be on their
    // way through the pipe.
    std::thread::sleep(Duration::from_millis(300));
    let before = vm.output();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(vm.output(), before, "the paused guest went on");
}

/// Pauses and resumes the running `count` guest.
fn pause_and_resume(api: &mut ApiClient, vm: &Session) {
    still_counts(vm);
    expect(api.patch("/vm", r#"{"state": "Paused"}"#), 204);
    assert_eq!(state(api), "Paused");
    no_progress(vm);
    expect(api.patch("/vm", r#"{"state": "Resumed"}"#), 204);
    assert_eq!(state(api), "Running");
    still_counts(vm);
}

/// Powers the `count` guest off (it reads `P`) and checks the VMM ends
/// with status 0 and removes its socket.
fn power_off(mut vm: Session, host: &Host) -> Run {
    vm.type_text("P");
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert!(!host.socket.exists(), "the socket file is left behind");
    run
}

#[test]
fn a_guest_configured_through_the_api_runs_and_powers_off() {
    require_kvm();
    let host = Host::new("api-boot");
    let vm = host.run(&[]);
    let mut api = host.client();

    let info = expect(api.get("/"), 200).json();
    assert_eq!(info["state"], "Not started", "{info}");
    assert_eq!(info["id"], "anonymous-instance", "{info}");
    assert_eq!(info["app_name"], "Firecracker", "{info}");
    assert!(info["vmm_version"].is_string(), "{info}");
    let version = expect(api.get("/version"), 200).json();
    assert!(
        version["firecracker_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{version}"
    );

    host.configure_count(&mut api);
    let config = expect(api.get("/vm/config"), 200).json();
    assert_eq!(
        config["boot-source"]["kernel_image_path"],
        host.kernel(),
        "{config}"
    );
    assert_eq!(config["boot-source"]["boot_args"], "count", "{config}");
    assert_eq!(config["machine-config"]["vcpu_count"], 1, "{config}");
    assert_eq!(config["machine-config"]["mem_size_mib"], 64, "{config}");
    let machine = expect(api.get("/machine-config"), 200).json();
    assert_eq!(machine["mem_size_mib"], 64, "{machine}");

    start(&mut api);
    assert_eq!(state(&mut api), "Running");
    still_counts(&vm);
    // A second VMM cannot take the socket a live one serves on.
    let second = run(&["run", "--api-sock", host.socket()], b"");
    assert_eq!(second.status, EXIT_BAD_INPUT, "{second:?}");
    assert!(second.stderr.contains("in use"), "{second:?}");
    still_counts(&vm);
    let run = power_off(vm, &host);
    assert!(run.stdout.contains("count "), "{run:?}");
}

/// The demo guest (the PVH image without a command word) through
/// `pointsman firecracker`: it prints what it sees and powers off.
#[test]
fn the_demo_guest_boots_through_pointsman_firecracker() {
    require_kvm();
    let host = Host::new("api-demo");
    let vm = Session::start(&["firecracker", "--api-sock", host.socket()]);
    let mut api = host.client();
    let boot = format!(r#"{{"kernel_image_path": "{}"}}"#, host.kernel());
    expect(api.put("/boot-source", &boot), 204);
    expect(
        api.put(
            "/machine-config",
            r#"{"vcpu_count": 2, "mem_size_mib": 32}"#,
        ),
        204,
    );
    start(&mut api);
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    let lines = run.lines();
    assert_eq!(lines[..2], ["Pointsman demo guest", "vcpus: 2"], "{run:?}");
    assert!(!host.socket.exists(), "the socket file is left behind");
}

#[test]
fn pause_stops_the_guest_and_resume_goes_on() {
    require_kvm();
    let host = Host::new("api-pause");
    let vm = host.run(&[]);
    let mut api = host.client();
    host.configure_count(&mut api);
    start(&mut api);
    still_counts(&vm);

    expect(api.patch("/vm", r#"{"state": "Paused"}"#), 204);
    assert_eq!(state(&mut api), "Paused");
    // Pausing a paused VM is not an error.
    expect(api.patch("/vm", r#"{"state": "Paused"}"#), 204);
    no_progress(&vm);
    // The API still answers while the guest is paused.
    expect(api.get("/vm/config"), 200);
    expect(api.patch("/vm", r#"{"state": "Resumed"}"#), 204);
    expect(api.patch("/vm", r#"{"state": "Resumed"}"#), 204);
    assert_eq!(state(&mut api), "Running");
    still_counts(&vm);

    // The test guest has no keyboard driver: the keys go to the i8042 and
    // the guest counts on (the Linux test checks a guest's reaction).
    expect(
        api.put("/actions", r#"{"action_type": "SendCtrlAltDel"}"#),
        204,
    );
    still_counts(&vm);
    pause_and_resume(&mut api, &vm);
    power_off(vm, &host);
}

#[test]
fn the_firecracker_name_serves_the_api_under_its_id() {
    require_kvm();
    let host = Host::new("api-fc-id");
    let vm = Session::start_command(
        host.firecracker(),
        &["--api-sock", host.socket(), "--id", "api-vm-7"],
    );
    let mut api = host.client();
    let info = expect(api.get("/"), 200).json();
    assert_eq!(info["id"], "api-vm-7", "{info}");
    assert_eq!(info["state"], "Not started", "{info}");
    host.configure_count(&mut api);
    start(&mut api);
    still_counts(&vm);
    let info = expect(api.get("/"), 200).json();
    assert_eq!(info["id"], "api-vm-7", "{info}");
    power_off(vm, &host);
}

#[test]
fn the_firecracker_name_boots_a_config_file_and_serves_the_api() {
    require_kvm();
    let host = Host::new("api-fc-file");
    let config = host.dir.file(
        "vm.json",
        format!(
            r#"{{"boot-source": {{"kernel_image_path": "{}", "boot_args": "count"}},
                "machine-config": {{"vcpu_count": 1, "mem_size_mib": 32}}}}"#,
            host.kernel()
        )
        .as_bytes(),
    );
    let vm = Session::start_command(
        host.firecracker(),
        &[
            "--api-sock",
            host.socket(),
            "--config-file",
            config.to_str().unwrap(),
        ],
    );
    // The guest boots at once, without InstanceStart.
    still_counts(&vm);
    let mut api = host.client();
    assert_eq!(state(&mut api), "Running");
    let config = expect(api.get("/vm/config"), 200).json();
    assert_eq!(config["machine-config"]["mem_size_mib"], 32, "{config}");
    refused(
        api.put("/actions", r#"{"action_type": "InstanceStart"}"#),
        "after starting",
    );
    pause_and_resume(&mut api, &vm);
    power_off(vm, &host);
}

#[test]
fn a_command_line_guest_is_controlled_through_the_api() {
    require_kvm();
    let host = Host::new("api-cli");
    let vm = host.run(&["--kernel", host.kernel(), "--cmdline", "count"]);
    still_counts(&vm);
    let mut api = host.client();
    assert_eq!(state(&mut api), "Running");
    let config = expect(api.get("/vm/config"), 200).json();
    assert_eq!(
        config["boot-source"]["kernel_image_path"],
        host.kernel(),
        "{config}"
    );
    assert_eq!(config["boot-source"]["boot_args"], "count", "{config}");
    pause_and_resume(&mut api, &vm);
    power_off(vm, &host);
}

/// Requests refused before the guest starts leave the configuration as it
/// was; the files a request names are checked when it is made (drives) or
/// at InstanceStart (the kernel); state rules hold both ways.
#[test]
fn refused_requests_change_nothing_and_state_rules_hold() {
    require_kvm();
    let host = Host::new("api-refused");
    let vm = host.run(&[]);
    let mut api = host.client();

    refused(
        api.patch("/vm", r#"{"state": "Paused"}"#),
        "before starting",
    );
    refused(
        api.put("/actions", r#"{"action_type": "SendCtrlAltDel"}"#),
        "before starting",
    );
    assert_eq!(state(&mut api), "Not started");

    // A kernel that does not exist is accepted, then InstanceStart names it.
    let missing_kernel = host.path("no-such-kernel");
    expect(
        api.put(
            "/boot-source",
            &format!(r#"{{"kernel_image_path": "{missing_kernel}", "boot_args": "count"}}"#),
        ),
        204,
    );
    refused(
        api.put("/actions", r#"{"action_type": "InstanceStart"}"#),
        &missing_kernel,
    );
    assert_eq!(state(&mut api), "Not started");

    // A file that is not a kernel, and too little memory, are refused at
    // InstanceStart too, and the VMM waits for a corrected request.
    let text = host.dir.file("not-a-kernel", b"hello\n");
    expect(
        api.put(
            "/boot-source",
            &format!(r#"{{"kernel_image_path": "{}"}}"#, text.display()),
        ),
        204,
    );
    refused(
        api.put("/actions", r#"{"action_type": "InstanceStart"}"#),
        "kernel",
    );
    host.configure_count(&mut api);
    expect(api.patch("/machine-config", r#"{"mem_size_mib": 1}"#), 204);
    refused(
        api.put("/actions", r#"{"action_type": "InstanceStart"}"#),
        "too small",
    );
    assert_eq!(state(&mut api), "Not started");

    host.configure_count(&mut api);
    let config = expect(api.get("/vm/config"), 200).json();

    let missing_disk = host.path("no-such-disk.img");
    let refusals = [
        (
            "/drives/scratch",
            format!(
                r#"{{"drive_id": "scratch", "path_on_host": "{missing_disk}",
                    "is_root_device": false, "is_read_only": false}}"#
            ),
            missing_disk.as_str(),
        ),
        ("/machine-config", r#"{"vcpu_count": 0, "mem_size_mib": 64}"#.into(), "vcpu_count"),
        ("/machine-config", r#"{"vcpu_count": 1, "mem_size_mib": 0}"#.into(), "mem_size_mib"),
        ("/machine-config", r#"{"vcpu_count": "1", "mem_size_mib": 64}"#.into(), "invalid type"),
        ("/machine-config", r#"{"mem_size_mib": 64}"#.into(), "missing field"),
        ("/machine-config", r#"{"vcpu_count": 1, "mem_size_mib": 64, "cores": 2}"#.into(), "unknown field"),
        ("/machine-config", r#"{"vcpu_count": 1, "mem_size_mib": 64"#.into(), "JSON"),
        ("/boot-source", r#"{"kernel_image_path": 7}"#.into(), "invalid type"),
        ("/boot-source", r#"{"boot_args": "count"}"#.into(), "missing field"),
        ("/boot-source", "not json".into(), "JSON"),
        (
            "/drives/one",
            r#"{"drive_id": "two", "path_on_host": "/dev/null", "is_root_device": false, "is_read_only": true}"#.into(),
            "does not match",
        ),
        (
            "/drives/b%20d",
            r#"{"drive_id": "b d", "path_on_host": "/dev/null", "is_root_device": false, "is_read_only": true}"#.into(),
            "invalid id",
        ),
        (
            "/drives/bad.id",
            r#"{"drive_id": "bad.id", "path_on_host": "/dev/null", "is_root_device": false, "is_read_only": true}"#.into(),
            "invalid id",
        ),
        ("/vsock", r#"{"guest_cid": 2, "uds_path": "/tmp/v.sock"}"#.into(), "guest_cid"),
        ("/logger", r#"{"level": "Loud"}"#.into(), "Loud"),
        ("/serial", r#"{"serial_out_path": "/nonexistent/serial.out"}"#.into(), "/nonexistent/serial.out"),
    ];
    for (path, body, text) in &refusals {
        refused(api.put(path, body), text);
        let now = expect(api.get("/vm/config"), 200).json();
        assert_eq!(now, config, "PUT {path} {body} changed the configuration");
    }
    refused(
        api.patch("/machine-config", r#"{"vcpu_count": 0}"#),
        "vcpu_count",
    );
    assert_eq!(expect(api.get("/vm/config"), 200).json(), config);

    start(&mut api);
    still_counts(&vm);
    refused(
        api.put("/actions", r#"{"action_type": "InstanceStart"}"#),
        "after starting",
    );
    let boot = format!(r#"{{"kernel_image_path": "{}"}}"#, host.kernel());
    refused(api.put("/boot-source", &boot), "after starting");
    refused(
        api.put(
            "/machine-config",
            r#"{"vcpu_count": 1, "mem_size_mib": 64}"#,
        ),
        "after starting",
    );
    refused(api.put("/entropy", "{}"), "after starting");
    assert_eq!(expect(api.get("/vm/config"), 200).json(), config);
    assert_eq!(state(&mut api), "Running");
    still_counts(&vm);
    power_off(vm, &host);
}

/// Reads one answer's status from a raw connection; `None` at EOF.
fn raw_status(stream: &mut UnixStream) -> Option<u16> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn malformed_requests_are_refused_and_the_guest_goes_on() {
    require_kvm();
    let host = Host::new("api-malformed");
    let vm = host.run(&["--kernel", host.kernel(), "--cmdline", "count"]);
    still_counts(&vm);
    let mut api = host.client();
    // A client that connects and sends nothing, and one that sends half a
    // request, hold up no one.
    let idle = host.raw();
    let mut half = host.raw();
    half.write_all(b"GET / HTTP/1.1\r\nHost: loc").unwrap();

    let bad: &[(&str, &str, Option<&str>, &str)] = &[
        ("PATCH", "/vm", Some(r#"{"state": 1}"#), "invalid JSON"),
        ("PATCH", "/vm", Some("{}"), "missing field"),
        (
            "PATCH",
            "/vm",
            Some(r#"{"state": "Frozen"}"#),
            "unknown variant",
        ),
        (
            "PATCH",
            "/vm",
            Some(r#"{"state": "Paused", "now": true}"#),
            "unknown field",
        ),
        ("PATCH", "/vm", Some(r#"{"state": "Paused""#), "JSON"),
        ("PATCH", "/vm", None, "body"),
        (
            "PUT",
            "/actions",
            Some(r#"{"action_type": "Explode"}"#),
            "unknown variant",
        ),
        (
            "GET",
            "/nowhere",
            None,
            "invalid request method and/or path",
        ),
        ("DELETE", "/vm", None, "invalid request method and/or path"),
        ("PUT", "/", Some("{}"), "invalid request method and/or path"),
        ("GET", "/vm/config/more", None, "invalid path"),
        ("PUT", "/mmds", Some("{}"), "MMDS"),
        ("GET", "/mmds", None, "MMDS"),
        (
            "PUT",
            "/mmds/config",
            Some(r#"{"network_interfaces": []}"#),
            "MMDS",
        ),
        ("PUT", "/snapshot/create", Some("{}"), "snapshot"),
        (
            "PATCH",
            "/balloon/hinting/start",
            Some("{}"),
            "free page hinting",
        ),
        ("GET", "/balloon/hinting/status", None, "free page hinting"),
        ("PUT", "/cpu-config", Some("{}"), "CPU templates"),
        ("PUT", "/hotplug/memory", Some("{}"), "hotplug"),
        ("PUT", "/pmem/p0", Some("{}"), "pmem"),
        ("PUT", "/serial", Some("{}"), "after starting"),
        (
            "PATCH",
            "/drives/a",
            Some(r#"{"drive_id": "b"}"#),
            "does not match",
        ),
        (
            "PATCH",
            "/drives/nosuch",
            Some(r#"{"drive_id": "nosuch"}"#),
            "nosuch",
        ),
        (
            "PATCH",
            "/drives/bad$id",
            Some(r#"{"drive_id": "bad$id"}"#),
            "invalid id",
        ),
        (
            "PUT",
            "/logger",
            Some(r#"{"level": "Loud"}"#),
            "after starting",
        ),
    ];
    for (method, path, body, text) in bad {
        let answer = api.send(method, path, *body);
        assert_eq!(answer.status, 400, "{method} {path}: {answer:?}");
        assert!(
            answer.fault().contains(text),
            "{method} {path}: no {text:?} in {answer:?}"
        );
        assert_eq!(state(&mut api), "Running", "after {method} {path}");
    }
    // A method the server does not know.
    let answer = api.send("POST", "/actions", Some("{}"));
    assert_eq!(answer.status, 405, "POST: {answer:?}");
    assert!(!answer.fault().is_empty(), "{answer:?}");

    // A body on a GET.
    let mut client = host.client();
    let answer = client.send_raw(b"GET / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}");
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(!answer.fault().is_empty(), "{answer:?}");

    // A body over the 51200-byte default limit: 413, decided from the
    // header; the writer may see the connection close under it.
    let mut stream = host.raw();
    let body = format!(r#"{{"state": "Paused", "pad": "{}"}}"#, "x".repeat(60_000));
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let request = format!(
            "PATCH /vm HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = writer.write_all(request.as_bytes());
    });
    assert_eq!(raw_status(&mut stream), Some(413));
    sender.join().unwrap();
    // Just under the limit is parsed (and refused for its unknown field).
    let body = format!(r#"{{"state": "Paused", "pad": "{}"}}"#, "x".repeat(51_000));
    refused(api.patch("/vm", &body), "unknown field");
    assert_eq!(state(&mut api), "Running");

    // A request cut short, then a disconnect.
    let mut cut = host.raw();
    cut.write_all(b"PATCH /vm HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"sta")
        .unwrap();
    drop(cut);
    // Headers that never end, then a disconnect.
    let mut cut = host.raw();
    cut.write_all(b"PUT /actions HTTP/1.1\r\nContent-Le")
        .unwrap();
    drop(cut);
    // Garbage.
    let mut garbage = host.raw();
    garbage.write_all(b"\x00\x01\x02 nonsense\r\n\r\n").unwrap();
    let status = raw_status(&mut garbage);
    assert!(matches!(status, Some(400) | None), "{status:?}");
    assert_eq!(state(&mut api), "Running");

    // Many clients at once.
    let workers: Vec<_> = (0..20)
        .map(|_| {
            let socket = host.socket.clone();
            std::thread::spawn(move || {
                let mut client = ApiClient::connect(&socket);
                for _ in 0..5 {
                    let answer = client.get("/");
                    assert_eq!(answer.status, 200, "{answer:?}");
                    assert_eq!(answer.json()["state"], "Running", "{answer:?}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }

    // The idle and half-done clients did not stop the others; the
    // half-done one can still finish its request.
    half.write_all(b"alhost\r\n\r\n").unwrap();
    assert_eq!(raw_status(&mut half), Some(200));
    drop(idle);
    assert_eq!(state(&mut api), "Running");
    still_counts(&vm);
    power_off(vm, &host);
}

#[test]
fn the_payload_limit_is_configurable() {
    require_kvm();
    let host = Host::new("api-payload");
    let vm = Session::start_command(
        host.firecracker(),
        &[
            "--api-sock",
            host.socket(),
            "--http-api-max-payload-size",
            "1000",
        ],
    );
    let mut api = host.client();
    let boot = |pad: usize| {
        format!(
            r#"{{"kernel_image_path": "{}", "boot_args": "count {}"}}"#,
            host.kernel(),
            "x".repeat(pad)
        )
    };
    let small = boot(100);
    assert!(small.len() < 1000);
    expect(api.put("/boot-source", &small), 204);
    let large = boot(1000);
    let mut stream = host.raw();
    let request = format!(
        "PUT /boot-source HTTP/1.1\r\nContent-Length: {}\r\n\r\n{large}",
        large.len()
    );
    let _ = stream.write_all(request.as_bytes());
    assert_eq!(raw_status(&mut stream), Some(413));
    let config = expect(api.get("/vm/config"), 200).json();
    assert_eq!(
        config["boot-source"]["boot_args"].as_str().unwrap().len(),
        106
    );
    drop(vm);
}

#[test]
fn flush_metrics_writes_vcpu_exits_and_the_logger_its_file() {
    require_kvm();
    let host = Host::new("api-metrics");
    let vm = host.run(&[]);
    let mut api = host.client();
    let log = host.path("vmm.log");
    let metrics = host.path("metrics.json");
    expect(
        api.put(
            "/logger",
            &format!(r#"{{"log_path": "{log}", "level": "Info"}}"#),
        ),
        204,
    );
    assert!(Path::new(&log).exists(), "PUT /logger made no {log}");
    expect(
        api.put("/metrics", &format!(r#"{{"metrics_path": "{metrics}"}}"#)),
        204,
    );
    host.configure_count(&mut api);
    start(&mut api);
    still_counts(&vm);
    expect(
        api.put("/actions", r#"{"action_type": "FlushMetrics"}"#),
        204,
    );
    let text = std::fs::read_to_string(&metrics).unwrap();
    let line = text.lines().last().expect("no metrics line");
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    let vcpu = &line["vcpu"];
    // The guest prints through COM1: port writes.
    assert!(
        vcpu["exit_io_out"].as_u64().is_some_and(|n| n > 0),
        "{line}"
    );
    assert!(
        line["api_server"]["requests"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{line}"
    );
    power_off(vm, &host);
}

/// `PUT /serial` sends the guest's console to a file, as in Firecracker:
/// the demo guest's lines land there, not on stdout. A path that cannot
/// be opened is refused by name and the VMM waits on.
#[test]
fn the_serial_console_goes_to_serial_out_path() {
    require_kvm();
    let host = Host::new("api-serial");
    let vm = Session::start_command(host.firecracker(), &["--api-sock", host.socket()]);
    let mut api = host.client();
    let config = expect(api.get("/vm/config"), 200).json();
    let missing = host.path("no/such/dir/serial.out");
    refused(
        api.put("/serial", &format!(r#"{{"serial_out_path": "{missing}"}}"#)),
        &missing,
    );
    assert_eq!(state(&mut api), "Not started");
    let out = host.path("serial.out");
    let serial = format!(r#"{{"serial_out_path": "{out}"}}"#);
    expect(api.put("/serial", &serial), 204);
    assert!(Path::new(&out).exists(), "PUT /serial made no {out}");
    // Firecracker's configuration has no serial section.
    assert_eq!(expect(api.get("/vm/config"), 200).json(), config);
    // Given again, as Firecracker allows before the start.
    expect(api.put("/serial", &serial), 204);
    let boot = format!(r#"{{"kernel_image_path": "{}"}}"#, host.kernel());
    expect(api.put("/boot-source", &boot), 204);
    start(&mut api);
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    let console = std::fs::read_to_string(&out).unwrap();
    assert!(console.starts_with("Pointsman demo guest\n"), "{console:?}");
    assert!(!run.stdout.contains("demo guest"), "{run:?}");
}

/// The serial console's `rate_limiter` drops what the guest writes past
/// its bytes; a console in a file takes no input from stdin (the `count`
/// guest would power off on `P`); after the start `PUT /serial` is refused.
#[test]
fn the_serial_console_in_a_file_is_rate_limited_and_reads_no_input() {
    require_kvm();
    let host = Host::new("api-serial-limit");
    let mut vm = host.run(&[]);
    let mut api = host.client();
    let out = host.path("serial.out");
    expect(
        api.put(
            "/serial",
            &format!(
                r#"{{"serial_out_path": "{out}",
                     "rate_limiter": {{"size": 60, "one_time_burst": 40, "refill_time": 3600000}}}}"#
            ),
        ),
        204,
    );
    host.configure_count(&mut api);
    start(&mut api);
    let len = || std::fs::metadata(&out).map_or(0, |m| m.len());
    let deadline = Instant::now() + Duration::from_secs(30);
    while len() < 100 {
        assert!(Instant::now() < deadline, "only {} bytes in {out}", len());
        std::thread::sleep(Duration::from_millis(10));
    }
    vm.type_text("P");
    // "count N\n" lines come every few ms: many more were written.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(len(), 100, "the burst and the bucket, then nothing");
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .starts_with("count 1\ncount 2\n"),
        "{out}"
    );
    assert_eq!(state(&mut api), "Running", "the guest read the P");
    refused(api.put("/serial", "{}"), "after starting");
    vm.send_signal(libc::SIGTERM);
    let run = vm.finish();
    assert!(!run.stdout.contains("count"), "{run:?}");
}

/// `PUT /logger` changes the log as often as it comes before the start,
/// over the command line's `--log-path`, as in Firecracker: a field it
/// leaves out stays (the file too), the level goes back to Info.
#[test]
fn the_logger_is_configured_again_and_again_before_the_start() {
    require_kvm();
    let host = Host::new("api-logger");
    let flags_log = host.path("flags.log");
    let vm = Session::start_command(
        host.firecracker(),
        &["--api-sock", host.socket(), "--log-path", &flags_log],
    );
    let mut api = host.client();
    let log = host.path("vmm.log");
    expect(
        api.put(
            "/logger",
            &format!(r#"{{"log_path": "{log}", "level": "Error"}}"#),
        ),
        204,
    );
    let missing = host.path("no/such/dir/vmm.log");
    refused(
        api.put("/logger", &format!(r#"{{"log_path": "{missing}"}}"#)),
        &missing,
    );
    refused(api.put("/logger", r#"{"level": "Loud"}"#), "Loud");
    // No log_path: still vmm.log; no level: Info.
    expect(api.put("/logger", r#"{"show_level": true}"#), 204);
    let boot = format!(r#"{{"kernel_image_path": "{}"}}"#, host.kernel());
    expect(api.put("/boot-source", &boot), 204);
    start(&mut api);
    let run = vm.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("INFO guest started"), "{text}");
    let flags_text = std::fs::read_to_string(&flags_log).unwrap_or_default();
    assert!(!flags_text.contains("guest started"), "{flags_text}");
    assert!(!run.stdout.contains("guest started"), "{run:?}");
}

fn can_create_taps() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    root && Path::new("/dev/net/tun").exists()
}

#[test]
fn drives_and_nics_change_after_boot() {
    require_kvm();
    let host = Host::new("api-update");
    let first = host.dir.file("first.img", &[1u8; 65536]);
    let second = host.dir.file("second.img", &[2u8; 65536]);
    let vm = host.run(&[]);
    let mut api = host.client();
    let drive = format!(
        r#"{{"drive_id": "scratch", "path_on_host": "{}", "is_root_device": false,
            "is_read_only": false}}"#,
        first.display()
    );
    expect(api.put("/drives/scratch", &drive), 204);

    let net = can_create_taps();
    if std::env::var_os("CI").is_some() {
        assert!(
            net,
            "CI runs as root with /dev/net/tun: the NIC part must run"
        );
    }
    if net {
        let tap = format!("api{}", std::process::id() % 100_000);
        let iface = format!(r#"{{"iface_id": "eth0", "host_dev_name": "{tap}"}}"#);
        expect(api.put("/network-interfaces/eth0", &iface), 204);
    } else {
        println!("note: not root or no /dev/net/tun: the NIC update is not tested");
    }
    host.configure_count(&mut api);
    start(&mut api);
    still_counts(&vm);

    let path_of = |api: &mut ApiClient| {
        let config = expect(api.get("/vm/config"), 200).json();
        config["drives"][0]["path_on_host"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let missing = host.path("missing.img");
    refused(
        api.patch(
            "/drives/scratch",
            &format!(r#"{{"drive_id": "scratch", "path_on_host": "{missing}"}}"#),
        ),
        &missing,
    );
    assert_eq!(path_of(&mut api), first.to_str().unwrap());
    expect(
        api.patch(
            "/drives/scratch",
            &format!(
                r#"{{"drive_id": "scratch", "path_on_host": "{}"}}"#,
                second.display()
            ),
        ),
        204,
    );
    assert_eq!(path_of(&mut api), second.to_str().unwrap());
    expect(
        api.patch(
            "/drives/scratch",
            r#"{"drive_id": "scratch",
                "rate_limiter": {"bandwidth": {"size": 1048576, "refill_time": 100}}}"#,
        ),
        204,
    );
    refused(
        api.patch("/drives/other", r#"{"drive_id": "other"}"#),
        "other",
    );
    // A paused guest's drive changes too, and the guest goes on after.
    expect(api.patch("/vm", r#"{"state": "Paused"}"#), 204);
    let back = format!(
        r#"{{"drive_id": "scratch", "path_on_host": "{}"}}"#,
        first.display()
    );
    expect(api.patch("/drives/scratch", &back), 204);
    assert_eq!(path_of(&mut api), first.to_str().unwrap());
    expect(api.patch("/vm", r#"{"state": "Resumed"}"#), 204);
    still_counts(&vm);

    if net {
        expect(
            api.patch(
                "/network-interfaces/eth0",
                r#"{"iface_id": "eth0",
                    "rx_rate_limiter": {"bandwidth": {"size": 65536, "refill_time": 100}},
                    "tx_rate_limiter": {"ops": {"size": 100, "refill_time": 1000}}}"#,
            ),
            204,
        );
        refused(
            api.patch("/network-interfaces/eth9", r#"{"iface_id": "eth9"}"#),
            "eth9",
        );
        expect(api.patch("/vm", r#"{"state": "Paused"}"#), 204);
        expect(
            api.patch(
                "/network-interfaces/eth0",
                r#"{"iface_id": "eth0", "rx_rate_limiter": {"bandwidth": {"size": 65536, "refill_time": 100}}}"#,
            ),
            204,
        );
        expect(api.patch("/vm", r#"{"state": "Resumed"}"#), 204);
        let config = expect(api.get("/vm/config"), 200).json();
        let iface = &config["network-interfaces"][0];
        assert_eq!(
            iface["rx_rate_limiter"]["bandwidth"]["size"], 65536,
            "{config}"
        );
    }
    still_counts(&vm);
    power_off(vm, &host);
}
