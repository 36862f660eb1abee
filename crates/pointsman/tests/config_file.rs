//! `--config-file` (Firecracker's JSON configuration) and the
//! `firecracker` name: test guests booted through a config file under
//! `pointsman run`, `pointsman firecracker --no-api` and a `firecracker`
//! symlink, Firecracker's flags, and bad config files.

mod common;
use common::*;

use std::path::PathBuf;
use std::process::Command;

/// A scratch directory with a test guest kernel, config files and a
/// `firecracker` symlink to the binary.
struct Setup {
    dir: Scratch,
    kernel: PathBuf,
}

impl Setup {
    fn new(name: &str, image: &[u8]) -> Setup {
        let dir = Scratch::new(name);
        let kernel = dir.file("kernel", image);
        Setup { dir, kernel }
    }

    /// A config file booting the kernel with `boot_args` and `more`
    /// sections (JSON members, without the braces).
    fn config(&self, boot_args: &str, more: &str) -> String {
        let more = if more.is_empty() {
            String::new()
        } else {
            format!(", {more}")
        };
        let text = format!(
            r#"{{"boot-source": {{"kernel_image_path": "{}", "boot_args": "{boot_args}"}}{more}}}"#,
            self.kernel.display()
        );
        self.file("vm.json", &text)
    }

    fn file(&self, name: &str, text: &str) -> String {
        self.dir
            .file(name, text.as_bytes())
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// The binary under the name `firecracker`, as tools start it.
    fn firecracker(&self) -> Command {
        let link = self.dir.path().join("firecracker");
        if !link.exists() {
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pointsman"), &link).unwrap();
        }
        Command::new(link)
    }
}

const TWO_VCPUS: &str = r#""machine-config": {"vcpu_count": 2, "mem_size_mib": 64}"#;

#[test]
fn the_demo_guest_boots_from_a_config_file() {
    require_kvm();
    let setup = Setup::new("cf-demo", guests::DEMO);
    let config = setup.config("", TWO_VCPUS);
    let run = run(&["run", "--config-file", &config], b"");
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    let lines = run.lines();
    assert_eq!(lines[..2], ["Pointsman demo guest", "vcpus: 2"], "{run:?}");
    assert!(run.stderr.is_empty(), "the VMM printed: {}", run.stderr);
}

#[test]
fn pointsman_firecracker_no_api_boots_the_config_file() {
    require_kvm();
    let setup = Setup::new("cf-sub", guests::PVH);
    let config = setup.config("smp", TWO_VCPUS);
    let run = run(&["firecracker", "--no-api", "--config-file", &config], b"");
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert!(run.stdout.contains("smp ok 2"), "{run:?}");
}

#[test]
fn a_firecracker_symlink_boots_the_config_file() {
    require_kvm();
    let setup = Setup::new("cf-link", guests::ELF64);
    let config = setup.config("smp", TWO_VCPUS);
    let run = run_command(
        setup.firecracker(),
        &["--no-api", "--config-file", &config],
        b"",
    );
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert!(run.stdout.contains("smp ok 2"), "{run:?}");
}

/// Every device section Pointsman supports, in one file: the guest boots
/// with them all and powers off.
#[test]
fn a_config_file_with_every_device_boots() {
    require_kvm();
    let setup = Setup::new("cf-full", guests::PVH);
    let disk = setup.dir.file("disk.img", &[0u8; 65536]);
    let vsock = setup.dir.path().join("v.sock");
    let more = format!(
        r#""machine-config": {{"vcpu_count": 1, "mem_size_mib": 64, "smt": false,
                               "track_dirty_pages": false, "huge_pages": "None"}},
           "drives": [{{"drive_id": "rootfs", "path_on_host": "{}", "is_root_device": true,
                        "is_read_only": false, "cache_type": "Writeback", "io_engine": "Sync",
                        "rate_limiter": {{"bandwidth": {{"size": 1048576, "refill_time": 100}}}}}}],
           "vsock": {{"guest_cid": 3, "uds_path": "{}"}},
           "balloon": {{"amount_mib": 0, "deflate_on_oom": true, "stats_polling_interval_s": 1}},
           "entropy": {{}}"#,
        disk.display(),
        vsock.display()
    );
    let config = setup.config("memmap", &more);
    let run = run(&["firecracker", "--no-api", "--config-file", &config], b"");
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert!(!run.stdout.is_empty(), "{run:?}");
    assert!(run.stderr.is_empty(), "the VMM printed: {}", run.stderr);
}

#[test]
fn a_reset_ends_the_run_with_status_0_under_the_firecracker_name() {
    require_kvm();
    let setup = Setup::new("cf-reset", guests::PVH);
    let config = setup.config("reset", "");
    let run = run_command(
        setup.firecracker(),
        &["--no-api", "--config-file", &config],
        b"",
    );
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert_eq!(run.lines(), vec!["resetting"], "{run:?}");
    let run = common::run(&["firecracker", "--no-api", "--config-file", &config], b"");
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert_eq!(run.lines(), vec!["resetting"], "{run:?}");
    // Under Pointsman's own name, --no-reboot still applies to a config file.
    let run = common::run(&["run", "--config-file", &config, "--no-reboot"], b"");
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert_eq!(run.lines(), vec!["resetting"], "{run:?}");
}

/// With the API on, a config file's guest still boots at once; the
/// socket is gone once the VMM ends.
#[test]
fn a_config_file_boots_at_once_with_the_api_on() {
    require_kvm();
    let setup = Setup::new("cf-api", guests::PVH);
    let sock = setup.dir.path().join("api.sock");
    let config = setup.config("exit", "");
    let run = run_command(
        setup.firecracker(),
        &[
            "--api-sock",
            sock.to_str().unwrap(),
            "--config-file",
            &config,
        ],
        b"",
    );
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert!(!sock.exists(), "the API socket outlived the VMM");
}

#[test]
fn version_and_help_under_the_firecracker_name() {
    let setup = Setup::new("cf-version", guests::PVH);
    let run = run_command(setup.firecracker(), &["--version"], b"");
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    let first = run.stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("Firecracker v1."), "{run:?}");
    assert!(run.stdout.contains("Pointsman"), "{run:?}");
    let help = run_command(setup.firecracker(), &["--help"], b"");
    assert_eq!(help.status, EXIT_OK, "{help:?}");
    for flag in [
        "--api-sock",
        "--config-file",
        "--no-api",
        "--id",
        "--log-path",
        "--level",
        "--show-level",
        "--show-log-origin",
        "--metrics-path",
        "--boot-timer",
        "--http-api-max-payload-size",
        "--seccomp-filter",
        "--no-seccomp",
        "--start-time-us",
        "--start-time-cpu-us",
        "--parent-cpu-time-us",
        "--mmds-size-limit",
        "--enable-pci",
        "--version",
    ] {
        assert!(
            help.stdout.contains(flag),
            "{flag} missing from {}",
            help.stdout
        );
    }
    let sub = common::run(&["firecracker", "--version"], b"");
    assert_eq!(sub.stdout, run.stdout);
}

/// The flags Pointsman accepts without using them do not stop a boot.
#[test]
fn unused_firecracker_flags_are_accepted() {
    require_kvm();
    let setup = Setup::new("cf-flags", guests::PVH);
    let config = setup.config("exit", "");
    let log = setup.dir.path().join("fc.log");
    let run = run_command(
        setup.firecracker(),
        &[
            "--no-api",
            "--config-file",
            &config,
            "--id",
            "vm-42",
            "--boot-timer",
            "--no-seccomp",
            "--start-time-us",
            "1",
            "--start-time-cpu-us",
            "2",
            "--parent-cpu-time-us",
            "3",
            "--mmds-size-limit",
            "4096",
            "--http-api-max-payload-size",
            "100000",
            "--log-path",
            log.to_str().unwrap(),
            "--level",
            "Info",
            "--show-level",
            "--metrics-path",
            "/dev/null",
        ],
        b"",
    );
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("INFO") && logged.contains("guest started"),
        "{logged}"
    );
}

/// `--enable-pci` is Pointsman's `--pci`: virtio-mmio has room for 17
/// devices, PCI bus 0 for 31, so 18 drives boot only with it.
#[test]
fn enable_pci_puts_the_devices_on_pci() {
    require_kvm();
    let setup = Setup::new("cf-pci", guests::PVH);
    let drives: Vec<String> = (0..18)
        .map(|i| {
            let image = setup.dir.file(&format!("d{i}.img"), &[0u8; 4096]);
            format!(
                r#"{{"drive_id": "d{i}", "path_on_host": "{}", "is_root_device": false, "is_read_only": true}}"#,
                image.display()
            )
        })
        .collect();
    let config = setup.config("exit", &format!(r#""drives": [{}]"#, drives.join(",")));
    let mmio = run(&["firecracker", "--no-api", "--config-file", &config], b"");
    assert_eq!(mmio.status, EXIT_BAD_INPUT, "{mmio:?}");
    assert!(
        mmio.stderr.contains("room for 17 virtio devices"),
        "{}",
        mmio.stderr
    );
    let pci = run(
        &[
            "firecracker",
            "--no-api",
            "--enable-pci",
            "--config-file",
            &config,
        ],
        b"",
    );
    assert_eq!(pci.status, EXIT_OK, "{pci:?}");
}

/// One line on stderr naming `expect`, status 2, nothing booted.
fn assert_refused(run: &Run, expect: &str) {
    assert_eq!(run.status, EXIT_BAD_INPUT, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
    assert!(
        run.stderr.contains(expect),
        "{expect:?} not in {}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{run:?}");
}

#[test]
fn bad_config_files_are_refused_in_one_line() {
    let setup = Setup::new("cf-bad", guests::PVH);
    let kernel = setup.kernel.display().to_string();
    let boot = format!(r#""boot-source": {{"kernel_image_path": "{kernel}"}}"#);
    let missing_disk = setup.dir.path().join("nonexistent.img");
    let disk_refusal = format!("cannot open path_on_host {}", missing_disk.display());
    let cases = [
        ("missing", None, "cannot read it: No such file"),
        (
            "json",
            Some("{\"boot-source\": ".to_owned()),
            "invalid configuration: EOF",
        ),
        (
            "unknown",
            Some(format!(r#"{{{boot}, "mmds": {{}}}}"#)),
            "unknown field `mmds`",
        ),
        (
            "unknown_inner",
            Some(format!(
                r#"{{{boot}, "machine-config": {{"vcpu_count": 1, "mem_size_mib": 64, "vcpus": 1}}}}"#
            )),
            "unknown field `vcpus`",
        ),
        (
            "vcpus",
            Some(format!(
                r#"{{{boot}, "machine-config": {{"vcpu_count": 0, "mem_size_mib": 64}}}}"#
            )),
            "invalid vcpu_count 0",
        ),
        (
            "mac",
            Some(format!(
                r#"{{{boot}, "network-interfaces": [{{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "12:34"}}]}}"#
            )),
            "invalid guest_mac \"12:34\"",
        ),
        (
            "disk",
            Some(format!(
                r#"{{{boot}, "drives": [{{"drive_id": "rootfs", "path_on_host": "{}", "is_root_device": true}}]}}"#,
                missing_disk.display()
            )),
            &disk_refusal,
        ),
        (
            "kernel",
            Some(r#"{"boot-source": {"kernel_image_path": "/nonexistent/vmlinux"}}"#.to_owned()),
            "cannot open kernel_image_path /nonexistent/vmlinux",
        ),
        ("noboot", Some("{}".to_owned()), "boot-source is missing"),
        (
            "mmds",
            Some(format!(
                r#"{{{boot}, "mmds-config": {{"network_interfaces": ["eth0"]}}}}"#
            )),
            "mmds-config (the microVM metadata service) is not supported by Pointsman",
        ),
        (
            "template",
            Some(format!(
                r#"{{{boot}, "machine-config": {{"vcpu_count": 1, "mem_size_mib": 64, "cpu_template": "T2"}}}}"#
            )),
            "cpu_template \"T2\" is not supported",
        ),
    ];
    for (name, text, expect) in cases {
        let path = match &text {
            Some(text) => setup.file(&format!("{name}.json"), text),
            None => setup
                .dir
                .path()
                .join("absent.json")
                .to_str()
                .unwrap()
                .to_owned(),
        };
        let under_run = run(&["run", "--config-file", &path], b"");
        assert_refused(&under_run, expect);
        assert!(
            under_run.stderr.contains(&path),
            "names the file: {}",
            under_run.stderr
        );
        let under_name = run_command(
            setup.firecracker(),
            &["--no-api", "--config-file", &path],
            b"",
        );
        assert_refused(&under_name, expect);
    }
}

#[test]
fn a_config_file_replaces_the_guest_options() {
    let setup = Setup::new("cf-conflict", guests::PVH);
    let config = setup.config("exit", "");
    for option in [
        &["--kernel", "/k"][..],
        &["--cpus", "2"],
        &["--disk", "path=/d"],
    ] {
        let mut args = vec!["run", "--config-file", &config];
        args.extend_from_slice(option);
        let run = run(&args, b"");
        assert_eq!(run.status, EXIT_BAD_INPUT, "{option:?}: {run:?}");
        assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    }
    let run = run(&["firecracker", "--no-api"], b"");
    assert_eq!(run.status, EXIT_BAD_INPUT, "{run:?}");
    assert!(run.stderr.contains("--config-file"), "{}", run.stderr);
}

/// The config file's `logger` section sends Pointsman's log to its file,
/// under `pointsman run` and, over the flags, under the firecracker name,
/// where it changes what the flags set as Firecracker does.
#[test]
fn the_config_files_logger_is_used() {
    require_kvm();
    let setup = Setup::new("cf-logger", guests::PVH);
    let log = setup.dir.path().join("vm.log");
    let config = setup.config(
        "exit",
        &format!(
            r#""logger": {{"log_path": "{}", "level": "Info", "show_level": true}}"#,
            log.display()
        ),
    );
    let run = run(&["run", "--config-file", &config], b"");
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("INFO") && logged.contains("guest started"),
        "{logged}"
    );
    let flag_log = setup.dir.path().join("flag.log");
    let with_flag_log = |config: &str| {
        let run = run_command(
            setup.firecracker(),
            &[
                "--no-api",
                "--config-file",
                config,
                "--log-path",
                flag_log.to_str().unwrap(),
            ],
            b"",
        );
        assert_eq!(run.status, EXIT_OK, "{run:?}");
    };
    with_flag_log(&config);
    assert_eq!(
        std::fs::read_to_string(&log)
            .unwrap()
            .matches("guest started")
            .count(),
        2
    );
    // As in Firecracker, the flags' file was opened first, then left.
    let flagged = std::fs::read_to_string(&flag_log).unwrap();
    assert!(!flagged.contains("guest started"), "{flagged}");
    // A section without log_path changes the flags' log, not its file.
    with_flag_log(&setup.config("exit", r#""logger": {"show_level": true}"#));
    let flagged = std::fs::read_to_string(&flag_log).unwrap();
    assert!(flagged.contains("INFO guest started"), "{flagged}");
}
