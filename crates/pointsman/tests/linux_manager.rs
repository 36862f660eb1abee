//! The host manager on cgroup v2, inside the test host (this machine has
//! cgroup v1 only): the test host mounts the unified hierarchy with its
//! controllers, `pointsman serve` finds it and gives each guest's jailed
//! VMM a v2 cgroup; the guests' shares and limits are the v2 files (as
//! created and as `vm set` changes them, `--cpuset`, `--io-weight`), the
//! VMM with all its threads is in the guest's cgroup, and a guest
//! restarted under `--restart` is in it again.

mod common;

use std::path::Path;
use std::time::Duration;

use common::linux::{test_host, value};
use common::Scratch;

/// The test host: cgroup2 with cpu, memory, io, cpuset and pids; a daemon;
/// guests made, changed and removed; what the cgroup files say.
const SCRIPT: &str = r#"
mkdir -p /sys/fs/cgroup
mount -t cgroup2 none /sys/fs/cgroup || echo "@@failed mount"
echo "@@controllers $(cat /sys/fs/cgroup/cgroup.controllers)"
chmod 644 /guest/pvh.elf
S=/run/pointsman.sock
pointsman serve --socket $S --state-dir /var/lib/pointsman --capacity cpus=2,memory=512M \
    > /tmp/serve.log 2>&1 &
for i in $(seq 1 100); do [ -S $S ] && break; sleep 0.1; done
export POINTSMAN_SOCKET=$S
G=/sys/fs/cgroup/pointsman
pointsman vm create a --kernel /guest/pvh.elf --cmdline count --memory 32M \
    --cpu-weight 300 --cpu-max 50 --memory-max 100M || echo "@@failed create a"
echo "@@a-weight $(cat $G/a/cpu.weight)"
echo "@@a-max $(cat $G/a/cpu.max)"
echo "@@a-memory-max $(cat $G/a/memory.max)"
echo "@@a-pids-max $(cat $G/a/pids.max)"
PID=$(pointsman vm show a --json | sed 's/.*"pid":\([0-9]*\).*/\1/')
echo "@@a-pid-in-cgroup $(grep -qx "$PID" $G/a/cgroup.procs && echo yes || echo no)"
echo "@@a-tasks $(ls /proc/$PID/task | tr '\n' ' ')"
echo "@@a-cgroup-threads $(tr '\n' ' ' < $G/a/cgroup.threads)"
echo "@@a-threads-outside $(for t in $(ls /proc/$PID/task); do grep -qx $t $G/a/cgroup.threads || echo $t; done | wc -l)"
sleep 3
echo "@@a-count $(pointsman vm logs a | grep -c '^count')"
echo "@@a-cpu-usec $(awk '$1 == "usage_usec" { print $2 }' $G/a/cpu.stat)"
echo "@@a-memory-current $(cat $G/a/memory.current)"
pointsman vm set a --cpu-weight 50 --cpu-max max --memory-max 80M || echo "@@failed set a"
echo "@@a-set $(cat $G/a/cpu.weight) $(cat $G/a/cpu.max) $(cat $G/a/memory.max)"
ls $G/a/io.weight >/dev/null 2>&1; echo "@@io-weight-file $?"
pointsman vm create b --kernel /guest/pvh.elf --cmdline count --memory 32M \
    --cpuset 1 --io-weight 200 --restart on-failure || echo "@@failed create b"
echo "@@b-cpuset $(cat $G/b/cpuset.cpus)"
echo "@@a-cpuset $(cat $G/a/cpuset.cpus)"
echo "@@b-io-weight $(cat $G/b/io.weight | head -1)"
BPID=$(pointsman vm show b --json | sed 's/.*"pid":\([0-9]*\).*/\1/')
kill -9 $BPID
for i in $(seq 1 100); do
    pointsman vm show b --json | grep -q '"restarts":1' && pointsman vm show b --json | grep -q '"state":"running"' && break
    sleep 0.2
done
NEWPID=$(pointsman vm show b --json | sed 's/.*"pid":\([0-9]*\).*/\1/')
echo "@@b-restarted $(pointsman vm show b --json | grep -o '"restarts":[0-9]*') $([ "$NEWPID" != "$BPID" ] && echo new-pid)"
echo "@@b-new-pid-in-cgroup $(grep -qx "$NEWPID" $G/b/cgroup.procs && echo yes || echo no)"
pointsman vm kill b >/dev/null && pointsman vm rm b || echo "@@failed rm b"
echo "@@a-cpuset-after $(cat $G/a/cpuset.cpus)"
pointsman vm list
pointsman vm kill a >/dev/null && pointsman vm rm a || echo "@@failed rm a"
echo "@@a-cgroup-after-rm $(ls -d $G/a 2>&1 | grep -c 'No such file')"
echo "@@serve-log-errors $(grep -ci error /tmp/serve.log)"
cat /tmp/serve.log
echo "@@done"
"#;

#[test]
fn the_manager_runs_guests_in_cgroup_v2() {
    let dir = Scratch::new("linux-manager");
    let pvh = dir.file("pvh.elf", guests::PVH);
    let host = test_host().timeout(Duration::from_secs(600));
    let files: Vec<(&str, &Path)> = vec![("guest/pvh.elf", &pvh)];
    let run = host.run(&files, SCRIPT).expect("run the test host");
    let console = &run.console;
    let tail = || run.console_tail(60);
    assert!(console.contains("@@done"), "{}", tail());
    assert!(!console.contains("@@failed"), "{}", tail());
    let controllers = value(console, "controllers").unwrap_or_default();
    for wanted in ["cpu", "memory"] {
        assert!(
            controllers.split_whitespace().any(|c| c == wanted),
            "{controllers}"
        );
    }
    assert_eq!(value(console, "a-weight"), Some("300"), "{}", tail());
    assert_eq!(value(console, "a-max"), Some("50000 100000"), "{}", tail());
    assert_eq!(
        value(console, "a-memory-max"),
        Some("104857600"),
        "{}",
        tail()
    );
    assert_eq!(value(console, "a-pids-max"), Some("65"), "{}", tail());
    assert_eq!(value(console, "a-pid-in-cgroup"), Some("yes"), "{}", tail());
    // Every thread of the VMM (main, vCPU, workers, API) is in it.
    assert_eq!(value(console, "a-threads-outside"), Some("0"), "{}", tail());
    let count: u32 = value(console, "a-count")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(count > 0, "the guest never counted: {}", tail());
    let cpu: u64 = value(console, "a-cpu-usec")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(cpu > 0, "{}", tail());
    let memory: u64 = value(console, "a-memory-current")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    assert!(memory > 0 && memory < 100 << 20, "{memory}: {}", tail());
    assert_eq!(value(console, "a-cgroup-after-rm"), Some("1"), "{}", tail());
    // `vm set` on the running guest.
    assert_eq!(
        value(console, "a-set"),
        Some("50 max 100000 83886080"),
        "{}",
        tail()
    );
    // A guest with a CPU of its own; the other guest kept off it, and
    // given it back once the first has gone.
    assert_eq!(value(console, "b-cpuset"), Some("1"), "{}", tail());
    assert_eq!(value(console, "a-cpuset"), Some("0"), "{}", tail());
    assert_eq!(value(console, "a-cpuset-after"), Some("0-1"), "{}", tail());
    if value(console, "io-weight-file") == Some("0") {
        assert_eq!(
            value(console, "b-io-weight"),
            Some("default 200"),
            "{}",
            tail()
        );
    }
    // Killed from outside, restarted under `--restart on-failure`, in its
    // cgroup again.
    assert_eq!(
        value(console, "b-restarted"),
        Some("\"restarts\":1 new-pid"),
        "{}",
        tail()
    );
    assert_eq!(
        value(console, "b-new-pid-in-cgroup"),
        Some("yes"),
        "{}",
        tail()
    );
}
