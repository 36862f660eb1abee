//! A Linux guest snapshotted and restored inside the test host: the
//! cloud kernel with 2 vCPUs, configured through the API with its
//! distribution's usual boot options, paused and snapshotted while it
//! ticks; its VMM is killed, and a new one restores it, where the same
//! kernel goes on (its tick count and uptime carry on) and answers its
//! console.

mod common;

use std::path::Path;

use common::linux::{guest_initrd, test_host, value};
use common::Scratch;
use testhost::{build_tool, HostRun};

const TOOL: &str = "api-test-tool";

/// Shell functions the host scripts share: the API, a guest booted
/// through it, and a snapshot after which the VMM is killed.
const HELPERS: &str = r#"
chmod 755 /bin/api-test-tool
api() { /bin/api-test-tool /tmp/api.sock "$@" || echo "@@api-failed $1 $2"; }
# boot_via_api VCPUS MIB [DRIVE]: Pointsman with the API boots /guest's
# kernel and initrd with the distribution's options (and the drive).
boot_via_api() {
    start_vm --api-sock /tmp/api.sock --no-reboot
    for i in $(seq 1 100); do [ -S /tmp/api.sock ] && break; sleep 0.1; done
    api PUT /boot-source '{"kernel_image_path":"/guest/vmlinuz","initrd_path":"/guest/initrd.cpio","boot_args":"console=ttyS0 panic=-1"}'
    api PUT /machine-config "{\"vcpu_count\":$1,\"mem_size_mib\":$2}"
    [ -z "$3" ] || api PUT /drives/data "$3"
    api PUT /actions '{"action_type":"InstanceStart"}'
}
# snapshot_and_kill: pauses the guest, snapshots it to /tmp/vm.snap and
# /tmp/vm.mem, and kills its VMM (nothing of it helps the restore).
snapshot_and_kill() {
    api PATCH /vm '{"state":"Paused"}'
    api PUT /snapshot/create '{"snapshot_path":"/tmp/vm.snap","mem_file_path":"/tmp/vm.mem"}'
    kill -9 $VM_PID; wait $VM_PID
}
"#;

/// Runs `script` (after [`HELPERS`]) in the test host with `kernel` and
/// an initrd loading `modules` and running `init`.
fn run(kernel: Option<&Path>, modules: &[&str], init: &str, script: &str) -> HostRun {
    let pointsman = Path::new(env!("CARGO_BIN_EXE_pointsman"));
    let tool = build_tool(TOOL, pointsman).expect("build the API test tool");
    let host = test_host();
    let dir = Scratch::new("linux-snapshot");
    let initrd = guest_initrd(&host, &dir, "initrd.cpio", modules, init);
    let cloud = host.assets().cloud.vmlinuz.clone();
    let kernel = kernel.unwrap_or(&cloud);
    let run = host
        .run(
            &[
                ("guest/vmlinuz", kernel),
                ("guest/initrd.cpio", &initrd),
                (&format!("bin/{TOOL}"), &tool),
            ],
            &format!("{HELPERS}{script}"),
        )
        .expect("run the test host");
    assert!(
        !run.console.contains("@@api-failed"),
        "{}",
        run.console_tail(80)
    );
    run
}

/// The guest's init: a tick with its count and uptime every second in the
/// background, and an echo of each console line; `off` powers off.
const INIT: &str = r#"
i=0
( while true; do i=$((i + 1)); echo "@@tick $i $(cut -d' ' -f1 /proc/uptime)"; sleep 1; done ) &
echo @@ready
while read line; do
    echo "@@got $line"
    [ "$line" = off ] && poweroff -f
done
"#;

/// The host's side: boot, snapshot, kill, restore.
const SCRIPT: &str = r#"
boot_via_api 2 256
wait_for @@ready 1 300 && wait_for @@tick 3 120
send hello
wait_for "@@got hello" 1 60
snapshot_and_kill
echo "@@snapshot-bytes $(wc -c < /tmp/vm.snap) $(wc -c < /tmp/vm.mem) $(du -k /tmp/vm.mem | cut -f1)"
echo "@@first-begin"; cat /tmp/vm.out; echo "@@first-end"
start_vm --restore /tmp/vm.snap --mem-file /tmp/vm.mem --resume --no-reboot
wait_for @@tick 3 120
send again
wait_for "@@got again" 1 60
send off
finish_vm_within 120
"#;

/// `(count, uptime)` of each `@@tick` line in `text`.
fn ticks(text: &str) -> Vec<(u64, f64)> {
    text.lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("@@tick "))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace();
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_linux_guest_goes_on_after_its_vmm_is_killed_and_restored() {
    let run = run(None, &[], INIT, SCRIPT);
    let console = &run.console;
    let tail = || run.console_tail(80);
    eprintln!(
        "snapshot, memory file, its disk KiB: {:?}",
        value(console, "snapshot-bytes")
    );
    let first = console
        .split("@@first-begin")
        .nth(1)
        .and_then(|rest| rest.split("@@first-end").next())
        .unwrap_or_else(|| panic!("no first run:\n{}", tail()));
    assert!(first.contains("@@got hello"), "{first}");
    let before = ticks(first);
    let &(last_count, last_uptime) = before.last().expect("no tick before the snapshot");

    let vms = run.vm_runs();
    let (restored, status) = vms
        .last()
        .unwrap_or_else(|| panic!("no restored run:\n{}", tail()));
    assert!(restored.contains("@@got again"), "{restored}");
    assert_eq!(*status, 0, "the restored guest's power-off:\n{restored}");
    let after = ticks(restored);
    let &(first_count, first_uptime) = after.first().expect("no tick after the restore");
    assert!(
        first_count == last_count + 1 || first_count == last_count,
        "the tick count went from {last_count} to {first_count}:\n{restored}"
    );
    // The same kernel goes on: its clock too (no reboot to 0).
    assert!(
        first_uptime >= last_uptime,
        "uptime went back from {last_uptime} to {first_uptime}:\n{restored}"
    );
    assert!(
        !restored.contains("Linux version"),
        "the guest booted again:\n{restored}"
    );
}

/// The clones' guest: on `rand`, 32 bytes of /dev/urandom as an md5, and
/// how many times the kernel said it reseeded for a new VM generation
/// (Linux's `vmgenid` driver, on the VMM's notice).
const RANDOM_INIT: &str = r#"
echo @@ready
while read line; do
    if [ "$line" = rand ]; then
        forks=$(dmesg | grep -c 'virtual machine fork')
        echo "@@rand $(head -c 32 /dev/urandom | md5sum | cut -c1-32) $forks"
    fi
    [ "$line" = off ] && poweroff -f
done
"#;

/// Boots the guest through the API, reads random bytes, snapshots it,
/// then restores four clones of it at once, each with its own console,
/// and has each read random bytes again.
const CLONES_SCRIPT: &str = r#"
# A clone that ended early must not end the script (SIGPIPE) before its
# output is shown.
trap '' PIPE
boot_via_api 1 192
wait_for @@ready 1 300
send rand
wait_for @@rand 1 60
snapshot_and_kill
echo "@@original $(grep @@rand /tmp/vm.out)"
for i in 4 5 6 7; do
    rm -f /tmp/c$i.in; mkfifo /tmp/c$i.in
    pointsman run --restore /tmp/vm.snap --mem-file /tmp/vm.mem --resume --no-reboot \
        < /tmp/c$i.in > /tmp/c$i.out 2>&1 &
    eval "exec $i> /tmp/c$i.in"
done
# Each guest hears of its new generation at once; give them a moment.
sleep 3
for i in 4 5 6 7; do echo rand >&$i; done
for i in 4 5 6 7; do
    n=0
    until grep -q @@rand /tmp/c$i.out || [ $n -ge 300 ]; do sleep 0.2; n=$((n + 1)); done
    echo off >&$i
done
wait
for i in 4 5 6 7; do
    echo "@@clone $i $(grep @@rand /tmp/c$i.out)"
    # A clone that said nothing: what its VMM printed.
    grep -q @@rand /tmp/c$i.out || sed "s/^/@@clone-$i-out /" /tmp/c$i.out | tail -n 20
done
"#;

/// Four clones of one snapshot, restored at once, read different bytes
/// from /dev/urandom: each restore gives the guest a new VM generation ID
/// and tells it through the ACPI generic event device, and Linux's
/// `vmgenid` driver (built into Debian's generic kernel) reseeds its
/// random number generator. Without that, the clones, restored from the
/// same memory, would read the same bytes.
#[test]
fn clones_of_one_snapshot_read_different_random_bytes() {
    let generic = test_host()
        .assets()
        .generic_kernel()
        .expect("fetch linux-image-amd64");
    let run = run(Some(&generic.vmlinuz), &[], RANDOM_INIT, CLONES_SCRIPT);
    let console = &run.console;
    let tail = || run.console_tail(80);
    // "MD5 FORKS" of a `@@rand` line.
    let rand = |line: &str| -> (String, String) {
        let rest = line.split("@@rand ").nth(1).unwrap_or("");
        let mut words = rest.split_whitespace();
        let md5 = words.next().unwrap_or("").to_owned();
        (md5, words.next().unwrap_or("").to_owned())
    };
    let (original, forks) = rand(value(console, "original").unwrap_or(""));
    assert_eq!(
        original.len(),
        32,
        "nothing read before the snapshot:\n{}",
        tail()
    );
    // A booted guest was told of no new generation.
    assert_eq!(forks, "0", "{}", tail());
    let clone_lines: Vec<&str> = console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("@@clone "))
        .collect();
    assert_eq!(clone_lines.len(), 4, "{}", tail());
    let mut clones = Vec::new();
    for line in &clone_lines {
        let (md5, forks) = rand(line);
        assert_eq!(
            forks,
            "1",
            "clone {line}: not told of its new generation:\n{}",
            tail()
        );
        clones.push(md5);
    }
    for (i, bytes) in clones.iter().enumerate() {
        assert_eq!(bytes.len(), 32, "clone {i} read nothing:\n{}", tail());
        assert_ne!(*bytes, original, "clone {i} repeats the original");
        for other in &clones[i + 1..] {
            assert_ne!(bytes, other, "two clones read the same bytes:\n{}", tail());
        }
    }
}

/// The disk guest: writes block after block of its disk (each holding its
/// own number), until told to stop; then checks every block it wrote.
const DISK_INIT: &str = r#"
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
(
    i=0
    while [ ! -e /tmp/stop ]; do
        printf 'block %08d\n' $i | dd of=/dev/vda bs=4096 seek=$i count=1 conv=sync oflag=direct 2>/dev/null \
            || echo "@@write-failed $i"
        i=$((i + 1))
        [ $((i % 10)) = 0 ] && echo "@@wrote $i"
    done
    echo "@@written $i"
) &
echo @@ready
while read line; do
    case "$line" in
    stop) touch /tmp/stop ;;
    check*)
        n=${line#check }
        bad=none
        b=0
        while [ $b -lt $n ]; do
            got=$(dd if=/dev/vda bs=4096 skip=$b count=1 iflag=direct 2>/dev/null | head -c 14)
            [ "$got" = "$(printf 'block %08d' $b)" ] || { bad=$b; break; }
            b=$((b + 1))
        done
        echo "@@check $n $bad"
        ;;
    diag)
        echo "@@diag inflight $(cat /sys/block/vda/inflight) stat $(cat /sys/block/vda/stat)"
        grep -i virtio /proc/interrupts | sed 's/^/@@diag /'
        ;;
    off) poweroff -f ;;
    esac
done
"#;

const DISK_SCRIPT: &str = r#"
truncate -s 64M /tmp/disk.img
boot_via_api 2 256 '{"drive_id":"data","path_on_host":"/tmp/disk.img","is_root_device":false,"is_read_only":false}'
wait_for @@ready 1 300 && wait_for "@@wrote 30" 1 120
snapshot_and_kill
echo "@@before $(grep -c @@wrote /tmp/vm.out)"
start_vm --restore /tmp/vm.snap --mem-file /tmp/vm.mem --resume --no-reboot
wait_for @@wrote 3 120 || { send diag; sleep 2; }
send stop
wait_for @@written 1 60
n=$(sed -n 's/.*@@written \([0-9]*\).*/\1/p' /tmp/vm.out | head -1)
send "check $n"
wait_for @@check 1 300
send off
finish_vm_within 120
"#;

/// A Linux guest writing its virtio-blk disk block after block is
/// snapshotted mid-stream, its VMM killed, and restored over the same
/// image: the disk queue goes on where it stood, and every block the
/// guest wrote, before and after, reads back as written.
#[test]
fn a_linux_guest_writing_its_disk_goes_on_after_restore() {
    let run = run(None, &["virtio_mmio", "virtio_blk"], DISK_INIT, DISK_SCRIPT);
    let console = &run.console;
    let tail = || run.console_tail(80);
    assert!(!console.contains("@@write-failed"), "{}", tail());
    let vms = run.vm_runs();
    let (restored, status) = vms.last().unwrap_or_else(|| panic!("{}", tail()));
    assert_eq!(*status, 0, "{restored}");
    let written: u64 = value(restored, "written")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no @@written:\n{restored}"));
    assert!(written >= 50, "only {written} blocks:\n{restored}");
    assert_eq!(
        value(restored, "check"),
        Some(format!("{written} none").as_str()),
        "a block lost or torn:\n{restored}"
    );
}
