//! `pointsman jail`: a VMM confined to a root of its own, as an
//! unprivileged user with no capabilities, in a cgroup; bad jail input
//! refused with one line and nothing left behind. Needs root (as CI is).

mod common;
use common::api_client::ApiClient;
use common::*;

use std::path::{Path, PathBuf};

/// The jailed VMM's user and group: nobody on the host.
const JAIL_ID: u32 = 40_123;

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(root, "the jail tests need root (CI runs as root)");
}

/// `/proc/PID/status`'s `name:` line, its value.
fn status_field(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in:\n{status}"))
        .trim()
        .to_owned()
}

/// What `dir` holds, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The `cpu` cgroup v1 directory of jail `id`, if the host has one.
fn cpu_cgroup(id: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup/cpu/pointsman-test").join(id)
}

/// A scratch directory with an empty chroot base and the test guest.
fn jail_files(name: &str) -> (Scratch, PathBuf, PathBuf) {
    let dir = Scratch::new(name);
    let base = dir.path().join("base");
    std::fs::create_dir(&base).unwrap();
    let kernel = dir.file("pvh.elf", guests::PVH);
    (dir, base, kernel)
}

#[test]
fn a_jailed_vmm_runs_its_guest_confined() {
    require_kvm();
    require_root();
    let (dir, base, kernel) = jail_files("jail-run");
    let disk = dir.file("disk.img", &[0x5a; 64 * 1024]);
    // The guest writes its disk: the jail's user must own it.
    std::os::unix::fs::chown(&disk, Some(JAIL_ID), Some(JAIL_ID)).unwrap();
    let id = format!("jail-run-{}", std::process::id());
    let tap = format!("ptj{}", std::process::id() % 100_000);
    let id_text = JAIL_ID.to_string();
    let disk_spec = format!("path={}", disk.display());
    let mut vm = Session::start(&[
        "jail",
        "--id",
        &id,
        "--uid",
        &id_text,
        "--gid",
        &id_text,
        "--chroot-base",
        base.to_str().unwrap(),
        "--cgroup",
        "cpu.shares=512",
        "--parent-cgroup",
        "pointsman-test",
        "--",
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "vio",
        "--rng",
        "--disk",
        &disk_spec,
        "--api-sock",
        dir.path().join("api.sock").to_str().unwrap(),
        "--net",
        &format!("tap={tap}"),
    ]);
    vm.wait_for("vio 2 ok");
    let pid = vm.pid();
    // The jailer made the TAP for the jail's user (the VMM could not).
    let owner = std::fs::read_to_string(format!("/sys/class/net/{tap}/owner")).unwrap();
    assert_eq!(owner.trim(), id_text);
    let root = base.join("pointsman").join(&id).join("root");

    // Its user, capabilities and privileges.
    let uid = status_field(pid, "Uid");
    assert_eq!(
        uid.split_whitespace().collect::<Vec<_>>(),
        [id_text.as_str(); 4]
    );
    assert_eq!(
        status_field(pid, "Gid").split_whitespace().next(),
        Some(id_text.as_str())
    );
    for caps in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(status_field(pid, caps), "0000000000000000", "{caps}");
    }
    assert_eq!(status_field(pid, "NoNewPrivs"), "1");

    // Its root holds the binary, the devices, its files and its socket.
    let proc_root = PathBuf::from(format!("/proc/{pid}/root"));
    assert_eq!(
        entries(&proc_root),
        ["api.sock", "dev", "disk.img", "pointsman", "pvh.elf"]
    );
    assert_eq!(entries(&proc_root.join("dev")), ["kvm", "net", "null"]);
    assert_eq!(
        entries(&root),
        entries(&proc_root),
        "the jail is {}",
        root.display()
    );

    // Its cgroup.
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroups.contains(&format!("/pointsman-test/{id}")),
        "{cgroups}"
    );
    let shares = std::fs::read_to_string(cpu_cgroup(&id).join("cpu.shares")).unwrap();
    assert_eq!(shares.trim(), "512");

    // The API works through the socket in its root; a file outside its
    // root cannot be written, one inside can.
    let mut api = ApiClient::connect(&root.join("api.sock"));
    api.patch("/vm", r#"{"state": "Paused"}"#).expect(204);
    let outside = dir.path().join("escaped.snap");
    let body = |snap: &str, mem: &str| {
        format!(r#"{{"snapshot_path": "{snap}", "mem_file_path": "{mem}"}}"#)
    };
    let refused = api.put(
        "/snapshot/create",
        &body(outside.to_str().unwrap(), "/tmp/escaped.mem"),
    );
    let refused = refused.expect(400);
    assert!(refused.body.contains("No such file"), "{}", refused.body);
    assert!(
        !outside.exists(),
        "the jailed VMM wrote {}",
        outside.display()
    );
    api.put("/snapshot/create", &body("/inside.snap", "/inside.mem"))
        .expect(204);
    assert!(root.join("inside.snap").exists());
    api.patch("/vm", r#"{"state": "Resumed"}"#).expect(204);
    vm.wait_for("vio 3 ok");

    vm.send_signal(libc::SIGTERM);
    let run = vm.finish();
    assert_eq!(run.status, 143, "{run:?}");
    let _ = std::fs::remove_dir(cpu_cgroup(&id));
    // A TAP the jailer made persists, as one `ip tuntap` makes.
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &tap])
        .status();
}

#[test]
fn with_a_new_pid_namespace_the_jailer_waits_and_passes_the_status_on() {
    require_kvm();
    require_root();
    let (_dir, base, kernel) = jail_files("jail-pidns");
    let id = format!("jail-pidns-{}", std::process::id());
    let id_text = JAIL_ID.to_string();
    let jail = |cmdline: &str, id: &str| {
        run(
            &[
                "jail",
                "--id",
                id,
                "--uid",
                &id_text,
                "--gid",
                &id_text,
                "--chroot-base",
                base.to_str().unwrap(),
                "--new-pid-ns",
                "--",
                "run",
                "--kernel",
                kernel.to_str().unwrap(),
                "--cmdline",
                cmdline,
                "--no-reboot",
            ],
            b"",
        )
    };
    let ok = jail("exit", &format!("{id}-a"));
    assert_eq!(ok.status, 0, "{ok:?}");
    let fault = jail("triplefault", &format!("{id}-b"));
    assert_eq!(fault.status, 3, "{fault:?}");
    assert!(fault.stderr.contains("triple-faulted"), "{fault:?}");
}

#[test]
fn bad_jail_input_is_refused_and_leaves_nothing_behind() {
    require_root();
    let (dir, base, kernel) = jail_files("jail-bad");
    let base_text = base.to_str().unwrap().to_owned();
    let kernel_text = kernel.to_str().unwrap().to_owned();
    let file_base = kernel_text.clone();
    let secret = dir.file("secret.img", b"not the jail's");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let secret_disk = format!("path={}", secret.display());
    let cases: [(Vec<&str>, &str); 8] = [
        (
            vec!["--", "--kernel", &kernel_text, "--disk", &secret_disk],
            "chown",
        ),
        (vec!["--id", "a/b"], "--id"),
        (vec!["--uid", "0"], "--allow-root"),
        (vec!["--chroot-base", &file_base], "not a directory"),
        (
            vec!["--", "--kernel", "/nonexistent/vmlinux"],
            "/nonexistent/vmlinux",
        ),
        (
            vec!["--", "--kernel", &kernel_text, "--cpus", "lots"],
            "--cpus",
        ),
        (vec!["--cgroup", "nonsense"], "--cgroup"),
        (vec!["--resource-limit", "fsize=big"], "--resource-limit"),
    ];
    for (change, why) in cases {
        let mut args: Vec<&str> = vec![
            "jail",
            "--id",
            "bad",
            "--uid",
            "40123",
            "--gid",
            "40123",
            "--chroot-base",
            &base_text,
        ];
        // A later option of the same name wins; the run arguments come
        // last, after one `--`.
        let (options, run_args) = match change.iter().position(|a| *a == "--") {
            Some(at) => (&change[..at], change[at + 1..].to_vec()),
            None => (&change[..], vec!["--kernel", &kernel_text]),
        };
        for pair in options.chunks(2) {
            if let Some(at) = args.iter().position(|a| *a == pair[0]) {
                args[at + 1] = pair[1];
            } else {
                args.extend_from_slice(pair);
            }
        }
        args.push("--");
        args.extend(run_args);
        let result = run(&args, b"");
        assert_eq!(result.status, 2, "{args:?}: {result:?}");
        let line = result.stderr.trim();
        assert_eq!(line.lines().count(), 1, "{args:?}: {line}");
        assert!(line.starts_with("pointsman: jail: "), "{line}");
        assert!(line.contains(why), "{args:?}: {line}");
        assert!(
            entries(&base).is_empty(),
            "{args:?} left {:?}",
            entries(&base)
        );
    }
}

/// `run --landlock` (without the jail): the VMM reads its kernel and
/// writes its disk, but a snapshot goes only where `--landlock-rule`
/// allows, even though the VMM runs as root.
#[test]
fn landlock_keeps_the_vmm_to_its_files() {
    require_kvm();
    let (dir, _base, kernel) = jail_files("jail-landlock");
    let disk = dir.file("disk.img", &[0x5a; 64 * 1024]);
    let snapshots = dir.path().join("snapshots");
    std::fs::create_dir(&snapshots).unwrap();
    let socket = dir.path().join("api.sock");
    let disk_spec = format!("path={}", disk.display());
    let mut vm = Session::start(&[
        "run",
        "--kernel",
        kernel.to_str().unwrap(),
        "--cmdline",
        "vio",
        "--rng",
        "--disk",
        &disk_spec,
        "--api-sock",
        socket.to_str().unwrap(),
        "--landlock",
        "--landlock-rule",
        snapshots.to_str().unwrap(),
    ]);
    vm.wait_for("vio 2 ok");
    let mut api = ApiClient::connect(&socket);
    api.patch("/vm", r#"{"state": "Paused"}"#).expect(204);
    let body = |dir: &Path| {
        format!(
            r#"{{"snapshot_path": "{0}/vm.snap", "mem_file_path": "{0}/vm.mem"}}"#,
            dir.display()
        )
    };
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let refused = api.put("/snapshot/create", &body(&elsewhere)).expect(400);
    assert!(
        refused.body.contains("ermission denied"),
        "{}",
        refused.body
    );
    assert!(!elsewhere.join("vm.snap").exists());
    api.put("/snapshot/create", &body(&snapshots)).expect(204);
    assert!(snapshots.join("vm.mem").exists());
    api.patch("/vm", r#"{"state": "Resumed"}"#).expect(204);
    vm.wait_for("vio 3 ok");
    vm.send_signal(libc::SIGTERM);
    assert_eq!(vm.finish().status, 143);
}

/// `--daemonize`: the jailer prints the VMM's pid and returns at once;
/// the VMM runs on, detached, in its own session, until it is stopped.
#[test]
fn a_daemonized_jail_prints_the_pid_of_a_detached_vmm() {
    require_kvm();
    require_root();
    let (_dir, base, kernel) = jail_files("jail-daemon");
    let id = format!("jail-daemon-{}", std::process::id());
    let id_text = JAIL_ID.to_string();
    let started = run(
        &[
            "jail",
            "--id",
            &id,
            "--uid",
            &id_text,
            "--gid",
            &id_text,
            "--chroot-base",
            base.to_str().unwrap(),
            "--daemonize",
            "--",
            "--kernel",
            kernel.to_str().unwrap(),
            "--cmdline",
            "count",
        ],
        b"",
    );
    assert_eq!(started.status, 0, "{started:?}");
    let pid: i32 = started
        .stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{started:?}"));
    // Its own session, the jail's user, running the guest.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!(fields[3], pid.to_string(), "not a session leader: {stat}");
    assert!(status_field(pid as u32, "Uid").starts_with(&id_text));
    // SAFETY: kill(2) of the VMM this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let gone = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });
    assert!(gone, "the daemonized VMM did not end on SIGTERM");
}
