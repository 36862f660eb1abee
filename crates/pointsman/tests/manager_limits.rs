//! The host manager's limits and restarts: `vm set` on a running guest,
//! `--cpuset`, `--io-weight`, `--restart`, and KVM's PIT thread in the
//! guest's cgroup. Each test has its own daemon, uid range (43000-43099)
//! and guest names; cgroup files are read to check what the daemon did.
//! Needs root (as CI is) and /dev/kvm.

mod common;
use common::manager_host::*;
use common::*;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use manager::cgroup::CgroupLayout;
use manager::io_weight::{host_schedulers, IoWeightFile};

/// The text of guest `name`'s cgroup file `file` (`cpu.shares`, ...).
fn cgroup_file(name: &str, file: &str) -> Option<String> {
    let path: PathBuf = CgroupLayout::of_host().file_of(PARENT_CGROUP, name, file)?;
    Some(std::fs::read_to_string(path).ok()?.trim().to_owned())
}

/// A refusal: status 2, one line saying `says`.
fn assert_refused(run: &Run, says: &str) {
    assert_eq!(run.status, EXIT_BAD_INPUT, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{run:?}");
    assert!(run.stderr.contains(says), "{says:?}: {run:?}");
}

/// Nothing of guest `name` is left: no state, jail or cgroup.
fn assert_nothing_left(host: &Host, name: &str) {
    assert!(!host.guest_dir(name).exists());
    assert!(!host.jail_dir(name).exists());
    let dirs = CgroupLayout::of_host().all_dirs(PARENT_CGROUP, name);
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
}

/// Waits until `done` holds for guest `name`'s `show`; that `show`.
fn wait_for_show(
    host: &Host,
    name: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let shown = host.show(name);
        if done(&shown) {
            return shown;
        }
        assert!(
            start.elapsed() < TIME_LIMIT,
            "{name} never {what}: {shown}\n{}",
            host.serve_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) on a guest's VMM, as an outsider would.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

fn v1() -> bool {
    CgroupLayout::of_host().version() == 1
}

#[test]
fn set_changes_a_running_guests_limits_and_a_bad_set_changes_nothing() {
    let name = unique("set");
    let host = Host::start("mgrl-set", "43000-43009", &[]);
    let run = host.create(&name, &["--memory", "64M", "--cpu-max", "50"]);
    assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    let pid = pid_of(&host.show(&name));
    // A VMM may not make threads without end: 1 vCPU + 64.
    if CgroupLayout::of_host().mount_of("pids").is_some() {
        assert_eq!(cgroup_file(&name, "pids.max").as_deref(), Some("65"));
        let tasks: u32 = cgroup_file(&name, "pids.current").unwrap().parse().unwrap();
        assert!((2..65).contains(&tasks), "{tasks} tasks");
    }
    let (weight_file, quota_file, memory_file) = if v1() {
        ("cpu.shares", "cpu.cfs_quota_us", "memory.limit_in_bytes")
    } else {
        ("cpu.weight", "cpu.max", "memory.max")
    };
    let files = || {
        [weight_file, quota_file, memory_file].map(|f| cgroup_file(&name, f).unwrap_or_default())
    };

    let set = host.vm(&[
        "set",
        &name,
        "--cpu-weight",
        "300",
        "--cpu-max",
        "25",
        "--memory-max",
        "200M",
    ]);
    assert_eq!(set.status, 0, "{set:?}\n{}", host.serve_log());
    let memory = (200u64 << 20).to_string();
    if v1() {
        assert_eq!(files(), ["3072".to_owned(), "25000".into(), memory.clone()]);
    } else {
        assert_eq!(
            files(),
            ["300".to_owned(), "25000 100000".into(), memory.clone()]
        );
    }
    let shown = host.show(&name);
    assert_eq!(
        (
            &shown["cpu_weight"],
            &shown["cpu_max"],
            &shown["memory_max_mib"]
        ),
        (&300.into(), &25.into(), &200.into()),
        "{shown}"
    );
    assert_eq!(pid_of(&shown), pid, "a set does not restart the guest");
    // Kept in config.json, for `show` and a restarted daemon.
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(host.guest_dir(&name).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            &config["cpu_weight"],
            &config["cpu_max"],
            &config["memory_max"]
        ),
        (&300.into(), &25.into(), &"200M".into()),
        "{config}"
    );

    // `max` takes the cap away.
    assert_eq!(host.vm(&["set", &name, "--cpu-max", "max"]).status, 0);
    let quota = cgroup_file(&name, quota_file).unwrap();
    assert!(quota == "-1" || quota == "max 100000", "{quota}");
    assert_eq!(host.show(&name)["cpu_max"], serde_json::Value::Null);

    // Bad sets: refused with one line, and nothing changes.
    let before = files();
    assert_refused(
        &host.vm(&["set", &name, "--cpu-weight", "0", "--memory-max", "100M"]),
        "cpu-weight 0",
    );
    assert_refused(
        &host.vm(&["set", &name, "--memory-max", "lots", "--cpu-weight", "5"]),
        "size \"lots\"",
    );
    assert_refused(
        &host.vm(&["set", &name, "--cpu-max", "none"]),
        "cpu-max \"none\"",
    );
    assert_refused(&host.vm(&["set", &name]), "nothing to set");
    // Below what the VMM uses: the kernel refuses (where there is no swap
    // to push its memory to), and as the memory limit goes first,
    // nothing changed.
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps.lines().count() <= 1 {
        assert_refused(
            &host.vm(&["set", &name, "--memory-max", "1M", "--cpu-weight", "7"]),
            "the kernel refused it (below what the VMM uses?)",
        );
    }
    assert_refused(
        &host.vm(&["set", "nobody", "--cpu-weight", "5"]),
        "no guest named",
    );
    assert_eq!(files(), before);
    assert_eq!(host.show(&name)["cpu_weight"], 300);

    // A guest that has ended: nothing would use new limits.
    assert_eq!(host.vm(&["kill", &name]).status, 0);
    assert_refused(
        &host.vm(&["set", &name, "--cpu-weight", "5"]),
        "is not running",
    );
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}

#[test]
fn a_cpuset_guest_has_its_cpus_and_shared_guests_are_kept_off_them() {
    let shared = unique("shared");
    let own = unique("own");
    let overlap = unique("overlap");
    let last = unique("last");
    let host = Host::start("mgrl-cpuset", "43010-43019", &[]);
    if CgroupLayout::of_host().mount_of("cpuset").is_none() {
        eprintln!("skipped: no cpuset controller here");
        return;
    }
    assert_eq!(host.create(&shared, &["--memory", "64M"]).status, 0);
    let all = cgroup_file(&shared, "cpuset.cpus").unwrap();
    if all != "0-1" && !all.starts_with("0-") {
        eprintln!("skipped: the guests' CPUs here are {all:?}, not 0-N");
        return;
    }
    let top = all.trim_start_matches("0-").to_owned();
    let shared_pid = pid_of(&host.show(&shared));
    let allowed = |pid: i32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_owned()
    };

    // The last CPU for `own`: the shared guest moves off it.
    let run = host.create(&own, &["--memory", "64M", "--cpuset", &top]);
    assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    assert_eq!(cgroup_file(&own, "cpuset.cpus").unwrap(), top);
    let rest = if top == "1" {
        "0".to_owned()
    } else {
        format!("0-{}", top.parse::<u32>().unwrap() - 1)
    };
    assert_eq!(cgroup_file(&shared, "cpuset.cpus").unwrap(), rest);
    assert_eq!(allowed(shared_pid), rest);
    assert_eq!(allowed(pid_of(&host.show(&own))), top);
    let shown = host.show(&own);
    assert_eq!(shown["cpuset"], top.as_str(), "{shown}");
    assert!(
        shown["cgroup"]
            .as_array()
            .unwrap()
            .contains(&format!("cpuset.cpus={top}").into()),
        "{shown}"
    );

    // Taken, missing, or the shared guests' last: refused, nothing made.
    assert_refused(
        &host.create(&overlap, &["--memory", "64M", "--cpuset", &top]),
        &format!("CPU {top} is dedicated to guest \"{own}\" already"),
    );
    assert_nothing_left(&host, &overlap);
    assert_refused(
        &host.create(&overlap, &["--memory", "64M", "--cpuset", "4000"]),
        "the CPUs guests may use here are",
    );
    assert_nothing_left(&host, &overlap);
    assert_refused(
        &host.create(&last, &["--memory", "64M", "--cpuset", &rest]),
        "it would leave no CPU for the 1 guest(s) without --cpuset",
    );
    assert_nothing_left(&host, &last);
    assert_refused(
        &host.create(&last, &["--memory", "64M", "--cpuset", "1-0"]),
        "cpuset \"1-0\"",
    );

    // The dedicated guest ends: its CPU is the shared guests' again.
    assert_eq!(host.vm(&["kill", &own]).status, 0);
    assert_eq!(cgroup_file(&shared, "cpuset.cpus").unwrap(), all);
    assert_eq!(allowed(shared_pid), all);
    assert_eq!(host.vm(&["rm", &own]).status, 0);
    assert_nothing_left(&host, &own);
    assert_eq!(host.vm(&["kill", &shared]).status, 0);
    assert_eq!(host.vm(&["rm", &shared]).status, 0);
}

#[test]
fn io_weight_is_written_where_the_host_has_a_file_and_refused_where_not() {
    let name = unique("io");
    let host = Host::start("mgrl-io", "43020-43029", &[]);
    let layout = CgroupLayout::of_host();
    let io = match &layout {
        CgroupLayout::V1 { .. } => {
            IoWeightFile::of_v1(layout.mount_of("blkio").as_deref(), &host_schedulers())
        }
        CgroupLayout::V2 { mount } => IoWeightFile::of_v2(
            &std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default(),
        ),
    };
    let create = host.create(&name, &["--memory", "64M", "--io-weight", "500"]);
    match io {
        IoWeightFile::Missing(why) => {
            assert_refused(&create, &why);
            assert_nothing_left(&host, &name);
            // Nor may a set ask for one.
            assert_eq!(host.create(&name, &["--memory", "64M"]).status, 0);
            assert_refused(&host.vm(&["set", &name, "--io-weight", "200"]), &why);
            assert_eq!(host.show(&name)["io_weight"], serde_json::Value::Null);
        }
        IoWeightFile::V1 => {
            assert_eq!(create.status, 0, "{create:?}");
            assert_eq!(cgroup_file(&name, "blkio.weight").unwrap(), "50");
        }
        IoWeightFile::V1Bfq => {
            assert_eq!(create.status, 0, "{create:?}");
            assert_eq!(cgroup_file(&name, "blkio.bfq.weight").unwrap(), "50");
        }
        IoWeightFile::V2 => {
            assert_eq!(create.status, 0, "{create:?}");
            let weight = cgroup_file(&name, "io.weight").unwrap();
            assert!(weight.contains("default 500"), "{weight}");
        }
    }
    // Without --io-weight, no weight is written: the guest's blkio cgroup
    // (made to count its disk I/O for GET /metrics) keeps its parent's.
    let other = unique("noio");
    assert_eq!(host.create(&other, &["--memory", "64M"]).status, 0);
    assert_eq!(host.show(&other)["io_weight"], serde_json::Value::Null);
    for file in ["blkio.weight", "blkio.bfq.weight", "io.weight"] {
        let Some(path) = layout.file_of(PARENT_CGROUP, &other, file) else {
            continue;
        };
        let parent = path.parent().unwrap().parent().unwrap().join(file);
        if let (Ok(own), Ok(inherited)) = (
            std::fs::read_to_string(&path),
            std::fs::read_to_string(&parent),
        ) {
            assert_eq!(own, inherited, "{path:?}");
        }
    }
    for guest in [&name, &other] {
        let _ = host.vm(&["kill", guest]);
        assert_eq!(host.vm(&["rm", guest]).status, 0);
    }
}

#[test]
fn on_failure_restarts_a_killed_vmm_and_no_leaves_it_stopped() {
    let again = unique("onfail");
    let once = unique("norestart");
    let host = Host::start("mgrl-restart", "43030-43039", &[]);
    let run = host.create(&again, &["--memory", "64M", "--restart", "on-failure"]);
    assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    assert_eq!(host.create(&once, &["--memory", "64M"]).status, 0);
    let first = host.show(&again);
    assert_eq!(
        (&first["restart"], &first["restarts"]),
        (&"on-failure".into(), &0.into())
    );
    let old_pid = pid_of(&first);
    let uid = first["uid"].clone();
    let once_pid = pid_of(&host.show(&once));

    // Killed from outside, not through `vm kill`.
    sigkill(old_pid);
    sigkill(once_pid);
    let shown = wait_for_show(&host, &again, "restarted", |s| {
        s["state"] == "running" && s["restarts"] == 1
    });
    let new_pid = pid_of(&shown);
    assert_ne!(new_pid, old_pid);
    assert!(is_running(new_pid));
    assert_eq!(shown["uid"], uid, "the restart keeps the uid");
    assert_eq!(shown["last_exit"]["status"], 137, "{shown}");
    assert_eq!(shown["exit"], serde_json::Value::Null, "{shown}");
    // The same cgroup, and the guest runs again.
    let procs = CgroupLayout::of_host().dirs(PARENT_CGROUP, &again)[0].join("cgroup.procs");
    let procs = std::fs::read_to_string(procs).unwrap();
    assert!(procs.lines().any(|p| p == new_pid.to_string()), "{procs}");
    let printed = host.logs(&again).matches("count ").count();
    let start = Instant::now();
    while host.logs(&again).matches("count ").count() == printed {
        assert!(
            start.elapsed() < TIME_LIMIT,
            "the restarted guest is silent"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // `--restart no` (the default): it stays stopped.
    std::thread::sleep(Duration::from_millis(1500));
    let stopped = host.show(&once);
    assert_eq!(
        (&stopped["state"], &stopped["restarts"]),
        (&"stopped".into(), &0.into()),
        "{stopped}"
    );
    assert_eq!(stopped["exit"]["status"], 137);

    // `vm kill` is asked for: no restart.
    assert_eq!(host.vm(&["kill", &again]).status, 0);
    std::thread::sleep(Duration::from_millis(1500));
    let killed = host.show(&again);
    assert_eq!(
        (&killed["state"], &killed["restarts"]),
        (&"stopped".into(), &1.into()),
        "{killed}"
    );
    for guest in [&again, &once] {
        assert_eq!(host.vm(&["rm", guest]).status, 0);
    }
}

#[test]
fn always_restarts_a_guest_that_powers_off_and_stop_ends_it_for_good() {
    let off = unique("poweroff");
    let up = unique("alwaysup");
    let host = Host::start("mgrl-always", "43040-43049", &[]);
    let kernel = host.kernel.to_str().unwrap().to_owned();
    // `exit` powers off at once (status 0): restarted all the same.
    let run = host.vm(&[
        "create",
        &off,
        "--kernel",
        &kernel,
        "--cmdline",
        "exit",
        "--memory",
        "64M",
        "--restart",
        "always",
    ]);
    assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    let shown = wait_for_show(&host, &off, "restarted", |s| {
        s["restarts"].as_u64().unwrap_or(0) >= 1
    });
    assert_eq!(shown["last_exit"]["status"], 0, "{shown}");
    assert_eq!(
        shown["last_exit"]["reason"], "the guest powered off or reset",
        "{shown}"
    );
    // A stop (even while it waits to restart) ends it for good.
    let stop = host.vm(&["stop", &off, "--grace", "1"]);
    assert_eq!(stop.status, 0, "{stop:?}");
    let count = host.show(&off)["restarts"].clone();
    std::thread::sleep(Duration::from_millis(2500));
    let shown = host.show(&off);
    assert_eq!(
        (&shown["state"], &shown["restarts"]),
        (&"stopped".into(), &count),
        "{shown}"
    );

    // A running guest with `always`, stopped: stays stopped.
    assert_eq!(
        host.create(&up, &["--memory", "64M", "--restart", "always"])
            .status,
        0
    );
    let stop = host.vm(&["stop", &up, "--grace", "1"]);
    assert_eq!(stop.status, 0, "{stop:?}");
    std::thread::sleep(Duration::from_millis(2000));
    let shown = host.show(&up);
    assert_eq!(
        (&shown["state"], &shown["restarts"]),
        (&"stopped".into(), &0.into()),
        "{shown}"
    );
    assert!(
        shown["exit"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("stopped"),
        "{shown}"
    );
    for guest in [&off, &up] {
        assert_eq!(host.vm(&["rm", guest]).status, 0);
    }
}

#[test]
fn an_adopted_guest_is_restarted_too() {
    let name = unique("adoptrestart");
    let mut host = Host::start("mgrl-adopt", "43050-43059", &[]);
    let run = host.create(&name, &["--memory", "64M", "--restart", "on-failure"]);
    assert_eq!(run.status, 0, "{run:?}");
    let old_pid = pid_of(&host.show(&name));
    host.kill_daemon();
    host.start_daemon();
    assert_eq!(host.show(&name)["state"], "running");
    // Not the new daemon's child: its end is seen in /proc, status
    // unknown, which counts as a failure.
    sigkill(old_pid);
    let shown = wait_for_show(&host, &name, "restarted", |s| {
        s["state"] == "running" && s["restarts"] == 1
    });
    assert_ne!(pid_of(&shown), old_pid);
    assert_eq!(shown["last_exit"]["status"], serde_json::Value::Null);
    // Killed again, it waits longer (2 s); a daemon that dies meanwhile
    // leaves the wait recorded, and the next one restarts it.
    sigkill(pid_of(&shown));
    wait_for_show(&host, &name, "waited", |s| s["state"] == "restarting");
    host.kill_daemon();
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(host.guest_dir(&name).join("restart.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (&record["count"], &record["waiting"]),
        (&1.into(), &true.into())
    );
    host.start_daemon();
    let shown = wait_for_show(&host, &name, "restarted again", |s| {
        s["state"] == "running" && s["restarts"] == 2
    });
    assert!(is_running(pid_of(&shown)));
    assert_eq!(host.vm(&["kill", &name]).status, 0);
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}

#[test]
fn kvms_pit_thread_joins_the_guests_cgroup() {
    let name = unique("pit");
    let host = Host::start("mgrl-pit", "43060-43069", &[]);
    assert_eq!(host.create(&name, &["--memory", "64M"]).status, 0);
    let pid = pid_of(&host.show(&name));
    let start = Instant::now();
    let pit = loop {
        if let Some(pit) = manager::kvm_pit::find(u32::try_from(pid).unwrap()) {
            break pit;
        }
        if start.elapsed() > Duration::from_secs(5) {
            eprintln!("skipped: this kernel makes no kvm-pit/{pid} thread");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let want = format!("/{PARENT_CGROUP}/{name}");
    let start = Instant::now();
    loop {
        let cgroups = std::fs::read_to_string(format!("/proc/{pit}/cgroup")).unwrap();
        // The cpu hierarchy (v1, maybe shared with cpuacct) or the
        // unified one (v2).
        let in_guests = cgroups.lines().any(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next(), fields.next(), fields.next());
            let cpu = controllers.is_some_and(|c| c.split(',').any(|c| c == "cpu") || c.is_empty());
            cpu && path == Some(want.as_str())
        });
        if in_guests {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "kvm-pit/{pid} ({pit}) stays out: {cgroups}\n{}",
            host.serve_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(host.vm(&["kill", &name]).status, 0);
    assert_eq!(host.vm(&["rm", &name]).status, 0);
}
