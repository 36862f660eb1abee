//! The host manager's snapshots and clones: `pointsman vm snapshot` and
//! `pointsman vm clone`, through the real daemon and jailed VMMs. Each
//! test has its own daemon, uid range (46000-46099) and guest names.
//! Needs root (as CI is) and /dev/kvm.

mod common;
use common::manager_host::*;
use common::*;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The numbers of the `count N` lines of a console, in order.
fn counts(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("count ")?.parse().ok())
        .collect()
}

/// Waits until guest `name` has printed a `count` line past `after`.
fn wait_for_count_past(host: &Host, name: &str, after: u64) -> Vec<u64> {
    let start = Instant::now();
    loop {
        let seen = counts(&host.logs(name));
        if seen.last().is_some_and(|n| *n > after) {
            return seen;
        }
        assert!(
            start.elapsed() < TIME_LIMIT,
            "{name} counted no further than {after}: {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Bytes of the regular files under `dir` (what they take on disk).
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            total += disk_usage(&entry.path());
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}

fn guest_in<'a>(list: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed: {list}"))
}

#[test]
fn a_running_guest_is_snapshotted_and_cloned_twice() {
    // Room for three 64 MiB guests, not four.
    let mut host = Host::start(
        "mgr-snapclone",
        "46000-46009",
        &["--capacity", "cpus=2,memory=200M"],
    );
    let (orig, c1, c2, c3) = (
        unique("snaporig"),
        unique("snapc1"),
        unique("snapc2"),
        unique("snapc3"),
    );
    let run = host.create(&orig, &["--memory", "64M"]);
    assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    wait_for_count_past(&host, &orig, 3);
    let before = *counts(&host.logs(&orig)).last().unwrap();

    // Snapshot while it runs: into a directory the daemon makes.
    let dir = host.dir.path().join("snaps/one");
    let dir_text = dir.to_str().unwrap();
    let snap = host.vm(&["snapshot", &orig, dir_text]);
    assert_eq!(snap.status, 0, "{snap:?}\n{}", host.serve_log());
    for file in ["snapshot", "memory", "guest.json"] {
        assert!(
            snap.stdout.contains(&format!("{dir_text}/{file}")),
            "{snap:?}"
        );
        let meta = std::fs::metadata(dir.join(file)).unwrap();
        assert_eq!(meta.uid(), 0, "{file} is root's");
        assert_eq!(meta.mode() & 0o027, 0, "{file}: {:o}", meta.mode());
    }
    let memory = std::fs::metadata(dir.join("memory")).unwrap();
    assert_eq!(memory.len(), 64 << 20);
    assert_eq!(
        memory.gid(),
        46000,
        "the snapshotted guest's group reads it"
    );

    // The original was resumed and counts on.
    assert_eq!(host.show(&orig)["state"], "running");
    let after_snapshot = *counts(&host.logs(&orig)).last().unwrap();
    wait_for_count_past(&host, &orig, after_snapshot);

    // Two clones, each going on from the snapshot's count.
    let clone = host.vm(&["clone", dir_text, &c1, &c2]);
    assert_eq!(clone.status, 0, "{clone:?}\n{}", host.serve_log());
    assert_eq!(clone.stdout.lines().count(), 2, "{clone:?}");
    for name in [&c1, &c2] {
        let seen = wait_for_count_past(&host, name, before + 1);
        assert!(
            seen[0] > before,
            "{name} restarted its count instead of going on from the snapshot's (> {before}): {seen:?}"
        );
        assert_eq!(host.show(name)["cloned_from"], dir_text);
    }
    let list = host.vm(&["list", "--json"]);
    assert_eq!(list.status, 0, "{list:?}");
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let mut pids = Vec::new();
    let mut uids = Vec::new();
    for name in [&orig, &c1, &c2] {
        let entry = guest_in(&list, name);
        assert_eq!(entry["state"], "running", "{list}");
        let pid = pid_of(entry);
        assert!(is_running(pid));
        pids.push(pid);
        uids.push(host.show(name)["uid"].as_u64().unwrap());
    }
    pids.sort();
    pids.dedup();
    uids.sort();
    uids.dedup();
    assert_eq!((pids.len(), uids.len()), (3, 3), "{pids:?} {uids:?}");

    // The memory file is shared, not copied: each clone maps the one in
    // the snapshot's directory, and its state and jail hold no more than
    // the original's (whose jail has its copy of the VMM's binary).
    let booted = disk_usage(&host.guest_dir(&orig)) + disk_usage(&host.jail_dir(&orig));
    for name in [&c1, &c2] {
        let pid = pid_of(&host.show(name));
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        // The inode (fifth field) is the snapshot directory's file's.
        let mapped = maps.lines().any(|l| {
            l.ends_with("/memory") && l.split_whitespace().nth(4) == Some(&memory.ino().to_string())
        });
        assert!(mapped, "{name} does not map the snapshot's memory:\n{maps}");
        let used = disk_usage(&host.guest_dir(name)) + disk_usage(&host.jail_dir(name));
        assert!(
            used < booted + (4 << 20),
            "{name} holds {used} bytes of files, the booted guest {booted}"
        );
    }

    // A restarted daemon adopts the clones as clones, and counts them.
    host.kill_daemon();
    host.start_daemon();
    for name in [&c1, &c2] {
        let shown = host.show(name);
        assert_eq!(shown["state"], "running", "{shown}");
        assert_eq!(shown["cloned_from"], dir_text);
    }

    // A fourth guest would go past the capacity: refused, nothing left.
    let refused = host.vm(&["clone", dir_text, &c3]);
    assert_eq!(refused.status, EXIT_BAD_INPUT, "{refused:?}");
    assert!(
        refused.stderr.contains("memory: 64 MiB asked"),
        "{refused:?}"
    );
    assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");
    assert!(!host.guest_dir(&c3).exists());
    assert!(!host.jail_dir(&c3).exists());
    assert!(cgroup_dirs(&c3).iter().all(|d| !d.exists()));

    // A directory holding a snapshot is refused, as are unknown and
    // stopped guests.
    let again = host.vm(&["snapshot", &c1, dir_text]);
    assert_eq!(again.status, EXIT_BAD_INPUT, "{again:?}");
    assert!(
        again.stderr.contains("holds a snapshot already"),
        "{again:?}"
    );
    assert_eq!(host.show(&c1)["state"], "running", "refused before pausing");
    // A clone is snapshotted as any guest; its group is the first
    // snapshot's.
    let of_clone = host.dir.path().join("snaps/of-clone");
    let snap = host.vm(&["snapshot", &c1, of_clone.to_str().unwrap()]);
    assert_eq!(snap.status, 0, "{snap:?}\n{}", host.serve_log());
    let meta = std::fs::metadata(of_clone.join("memory")).unwrap();
    assert_eq!(meta.gid(), 46000);
    let c1_count = *counts(&host.logs(&c1)).last().unwrap();
    wait_for_count_past(&host, &c1, c1_count);
    let unknown = host.vm(&["snapshot", &unique("nobody"), dir_text]);
    assert_eq!(unknown.status, EXIT_BAD_INPUT, "{unknown:?}");
    assert!(unknown.stderr.contains("no guest named"), "{unknown:?}");
    assert_eq!(host.vm(&["kill", &c2]).status, 0);
    let other = host.dir.path().join("snaps/two");
    let stopped = host.vm(&["snapshot", &c2, other.to_str().unwrap()]);
    assert_eq!(stopped.status, EXIT_BAD_INPUT, "{stopped:?}");
    assert!(stopped.stderr.contains("is not running"), "{stopped:?}");
    assert!(!other.exists(), "a refused snapshot made its directory");

    for name in [&orig, &c1, &c2] {
        host.vm(&["kill", name]);
        assert_eq!(host.vm(&["rm", name]).status, 0);
    }
}

#[test]
fn each_clone_gets_its_own_copy_of_a_writable_disk_and_vsock_socket_and_shares_a_read_only_disk() {
    let host = Host::start("mgr-snapdisk", "46010-46019", &[]);
    let (orig, c1, c2) = (unique("diskorig"), unique("diskc1"), unique("diskc2"));
    let image: Vec<u8> = (0..1u32 << 20).map(|i| (i % 253) as u8).collect();
    let data = host.dir.file("data.raw", &image);
    let shared = host.dir.file("shared.raw", &image);
    for (path, mode) in [(&data, 0o600), (&shared, 0o640)] {
        std::os::unix::fs::chown(path, Some(46010), Some(46010)).unwrap();
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let data_spec = format!("path={}", data.display());
    let vsock_spec = format!("cid=3,socket={}", host.dir.path().join("v.sock").display());
    let shared_spec = format!("path={},readonly=on", shared.display());
    let run = host.create(
        &orig,
        &[
            "--memory",
            "32M",
            "--disk",
            &data_spec,
            "--disk",
            &shared_spec,
            "--vsock",
            &vsock_spec,
        ],
    );
    assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    wait_for_count_past(&host, &orig, 2);

    let dir = host.dir.path().join("snap");
    let dir_text = dir.to_str().unwrap();
    // A paused guest is snapshotted and stays paused.
    assert_eq!(host.vm(&["pause", &orig]).status, 0);
    let snap = host.vm(&["snapshot", &orig, dir_text]);
    assert_eq!(snap.status, 0, "{snap:?}\n{}", host.serve_log());
    assert_eq!(host.show(&orig)["state"], "paused");
    assert_eq!(host.vm(&["resume", &orig]).status, 0);
    // The writable disk as it was while paused; the read-only one is not
    // copied.
    assert_eq!(std::fs::read(dir.join("disks/data.raw")).unwrap(), image);
    assert!(!dir.join("disks/shared.raw").exists());

    let clone = host.vm(&["clone", dir_text, &c1, &c2]);
    assert_eq!(clone.status, 0, "{clone:?}\n{}", host.serve_log());
    let mut inodes = vec![std::fs::metadata(&data).unwrap().ino()];
    inodes.push(std::fs::metadata(dir.join("disks/data.raw")).unwrap().ino());
    for name in [&c1, &c2] {
        wait_for_count_past(&host, name, 2);
        let copy = host.guest_dir(name).join("disks/data.raw");
        let meta = std::fs::metadata(&copy).unwrap();
        let uid = host.show(name)["uid"].as_u64().unwrap();
        assert_eq!(u64::from(meta.uid()), uid, "{name}'s copy is its VMM's");
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&copy).unwrap(), image);
        inodes.push(meta.ino());
        // Its vsock socket is its own, in its jail's root.
        let socket = host.jail_dir(name).join("root/v.sock");
        let kind = std::fs::symlink_metadata(&socket).unwrap().file_type();
        assert!(
            std::os::unix::fs::FileTypeExt::is_socket(&kind),
            "{}",
            socket.display()
        );
        let disks = host.show(name)["config"]["disk"].clone();
        assert_eq!(
            disks,
            serde_json::json!([format!("path={}", copy.display()), shared_spec]),
            "{name}"
        );
    }
    let all = inodes.len();
    inodes.sort();
    inodes.dedup();
    assert_eq!(inodes.len(), all, "every disk copy is a file of its own");

    for name in [&orig, &c1, &c2] {
        host.vm(&["kill", name]);
        assert_eq!(host.vm(&["rm", name]).status, 0);
    }
    assert!(!host.guest_dir(&c1).exists(), "rm removes the clone's disk");
}

/// Removes the TAPs a test's jails made (they persist, as `ip tuntap`'s).
struct Taps(Vec<String>);

impl Drop for Taps {
    fn drop(&mut self) {
        for tap in &self.0 {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", tap])
                .status();
        }
    }
}

fn tap_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

#[test]
fn clones_of_a_guest_with_a_nic_need_taps_of_their_own() {
    let host = Host::start("mgr-snapnet", "46020-46029", &[]);
    let (orig, c1, c2) = (unique("netorig"), unique("netc1"), unique("netc2"));
    let tag = std::process::id() % 100_000;
    let tap = format!("psn{tag}");
    let clone_taps: Vec<String> = (0..2).map(|i| format!("psn{tag}c{i}")).collect();
    let _taps = Taps(
        std::iter::once(tap.clone())
            .chain(clone_taps.clone())
            .collect(),
    );
    let net = format!("id=eth0,tap={tap}");
    let run = host.create(&orig, &["--memory", "32M", "--net", &net]);
    assert_eq!(run.status, 0, "{run:?}\n{}", host.serve_log());
    wait_for_count_past(&host, &orig, 2);
    let dir = host.dir.path().join("snap");
    let dir_text = dir.to_str().unwrap();
    let snap = host.vm(&["snapshot", &orig, dir_text]);
    assert_eq!(snap.status, 0, "{snap:?}\n{}", host.serve_log());

    // Without TAPs of their own: refused with one line, nothing made.
    let refused = host.vm(&["clone", dir_text, &c1, &c2]);
    assert_eq!(refused.status, EXIT_BAD_INPUT, "{refused:?}");
    assert!(
        refused.stderr.contains("--net id=ID,tap=TAP"),
        "{refused:?}"
    );
    assert_eq!(refused.stderr.lines().count(), 1, "{refused:?}");
    assert!(!host.guest_dir(&c1).exists());

    // {index} gives each its own.
    let spec = format!("id=eth0,tap=psn{tag}c{{index}}");
    let clone = host.vm(&["clone", dir_text, &c1, &c2, "--net", &spec]);
    assert_eq!(clone.status, 0, "{clone:?}\n{}", host.serve_log());
    for (name, tap) in [&c1, &c2].into_iter().zip(&clone_taps) {
        wait_for_count_past(&host, name, 2);
        assert!(tap_exists(tap), "{name}'s TAP {tap} was not made");
        let shown = host.show(name);
        assert_eq!(
            shown["config"]["clone_of"]["net"],
            serde_json::json!([format!("id=eth0,tap={tap}")])
        );
    }
    for name in [&orig, &c1, &c2] {
        host.vm(&["kill", name]);
        assert_eq!(host.vm(&["rm", name]).status, 0);
    }
}
