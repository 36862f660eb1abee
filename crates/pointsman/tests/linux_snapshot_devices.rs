//! A Linux guest with a disk, a NIC and vsock snapshotted in two layers
//! inside the test host: a Full snapshot, some work, a Diff snapshot; its
//! VMM killed, the layers merged, and the guest restored with a new TAP
//! and a new vsock socket (`--net id=...,tap=...`, `--vsock socket=...`,
//! as each clone of a snapshot needs). What it wrote before the Diff is
//! there, on its disk and in its RAM, and its disk, network and vsock
//! listener work.

mod common;
mod net_shell;

use std::time::Duration;

use common::linux::{run_with_tools, value, DISK_NIC_VSOCK};
use net_shell::{COMMON_HELPERS, GUEST_HELPERS};

const API_TOOL: &str = "api-test-tool";
const VSOCK_TOOL: &str = "vsock-test-tool";

/// The guest: a disk (a line per 4 KiB block), a NIC, a vsock echo
/// server for two connections, a note in RAM (`/tmp/memo`), and commands
/// on its console.
const INIT: &str = r#"
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
block() { printf '%s\n' "$2" | dd of=/dev/vda bs=4096 seek=$1 count=1 conv=sync oflag=direct 2>/dev/null; }
readblock() { dd if=/dev/vda bs=4096 skip=$1 count=1 iflag=direct 2>/dev/null | head -n 1; }
nic 52:54:00:12:34:56 10.200.0.2/24
block 0 before
echo before > /tmp/memo
vsock-test-tool echo-vsock 6000 2 &
echo @@ready
while read line; do
    case "$line" in
    ping) reach 10.200.0.1 && echo "@@reached" ;;
    work) block 1 between; echo between > /tmp/memo; echo "@@worked" ;;
    check)
        echo "@@blocks $(readblock 0) $(readblock 1)"
        echo "@@memo $(cat /tmp/memo)"
        block 2 after
        echo "@@after $(readblock 2)"
        ;;
    recv) receive 5002 /tmp/in; echo "@@listening" ;;
    sum) wait $NC; echo "@@rx-md5 $(md5 /tmp/in)" ;;
    off) poweroff -f ;;
    esac
done
"#;

/// The test host: boots the guest through the API with dirty page
/// tracking, snapshots it Full then Diff around some work, kills it,
/// merges the layers and restores the guest on new host ends.
const SCRIPT: &str = r#"
chmod 755 /bin/api-test-tool /bin/vsock-test-tool
api() { /bin/api-test-tool /tmp/api.sock "$@" || echo "@@api-failed $1 $2"; }
tap() { tunctl -t $1 >/dev/null && ip addr add 10.200.0.1/24 dev $1 && ip link set $1 up || echo "@@failed tap $1"; }
tap tap0
truncate -s 64M /tmp/disk.img
dd if=/dev/urandom of=/tmp/h2g bs=1M count=4 2>/dev/null
echo "@@h2g-md5 $(md5 /tmp/h2g)"
start_vm --api-sock /tmp/api.sock --no-reboot
for i in $(seq 1 100); do [ -S /tmp/api.sock ] && break; sleep 0.1; done
api PUT /boot-source '{"kernel_image_path":"/guest/vmlinuz","initrd_path":"/guest/initrd.cpio","boot_args":"console=ttyS0 panic=-1"}'
api PUT /machine-config '{"vcpu_count":2,"mem_size_mib":256,"track_dirty_pages":true}'
api PUT /drives/data '{"drive_id":"data","path_on_host":"/tmp/disk.img","is_root_device":false,"is_read_only":false}'
api PUT /network-interfaces/eth0 '{"iface_id":"eth0","host_dev_name":"tap0","guest_mac":"52:54:00:12:34:56"}'
api PUT /vsock '{"guest_cid":3,"uds_path":"/tmp/v.sock"}'
api PUT /actions '{"action_type":"InstanceStart"}'
wait_for @@ready 1 300 || echo "@@failed boot"
send ping
wait_for @@reached 1 90 || echo "@@failed ping before"
/bin/vsock-test-tool send-unix /tmp/v.sock 6000 65536
api PATCH /vm '{"state":"Paused"}'
api PUT /snapshot/create '{"snapshot_path":"/tmp/full.snap","mem_file_path":"/tmp/full.mem","snapshot_type":"Full"}'
api PATCH /vm '{"state":"Resumed"}'
send work
wait_for @@worked 1 60 || echo "@@failed work"
api PATCH /vm '{"state":"Paused"}'
api PUT /snapshot/create '{"snapshot_path":"/tmp/diff.snap","mem_file_path":"/tmp/diff.mem","snapshot_type":"Diff"}'
kill -9 $VM_PID; wait $VM_PID
echo "@@first-begin"; cat /tmp/vm.out; echo "@@first-end"
echo "@@on-disk-kib $(du -k /tmp/full.mem | cut -f1) $(du -k /tmp/diff.mem | cut -f1)"
pointsman snapshot merge /tmp/full.mem /tmp/diff.mem || echo "@@failed merge"
tunctl -d tap0 >/dev/null
tap tap1
start_vm --restore /tmp/diff.snap --mem-file /tmp/full.mem --resume --no-reboot \
    --net id=eth0,tap=tap1 --vsock socket=/tmp/v2.sock
send check
wait_for @@after 1 60 || echo "@@failed check"
send ping
wait_for @@reached 1 90 || echo "@@failed ping after"
send recv
wait_for @@listening 1 60 || echo "@@failed listen"
nc 10.200.0.2 5002 < /tmp/h2g
send sum
wait_for @@rx-md5 1 60 || echo "@@failed sum"
/bin/vsock-test-tool send-unix /tmp/v2.sock 6000 65536
send off
finish_vm_within 120
tunctl -d tap1 >/dev/null
"#;

#[test]
fn full_then_diff_snapshot_of_a_guest_with_disk_nic_and_vsock_restored_on_new_host_ends() {
    let run = run_with_tools(
        "linux-snapshot-devices",
        DISK_NIC_VSOCK,
        &[API_TOOL, VSOCK_TOOL],
        &format!("{COMMON_HELPERS}{GUEST_HELPERS}{INIT}"),
        &format!("{COMMON_HELPERS}{SCRIPT}"),
        Duration::from_secs(900),
    );
    let console = &run.console;
    let tail = || run.console_tail(80);
    assert!(!console.contains("@@api-failed"), "{}", tail());
    assert!(!console.contains("@@failed"), "{}", tail());
    let first = console
        .split("@@first-begin")
        .nth(1)
        .and_then(|rest| rest.split("@@first-end").next())
        .unwrap_or_else(|| panic!("no first run:\n{}", tail()));
    assert!(first.contains("@@echo-vsock echoed 65536"), "{first}");

    // The Diff holds only what changed after the Full.
    let sizes: Vec<u64> = value(console, "on-disk-kib")
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|n| n.parse().ok())
        .collect();
    eprintln!("memory files on disk, KiB (Full, Diff): {sizes:?}");
    let [full, diff] = sizes[..] else {
        panic!("no sizes:\n{}", tail())
    };
    assert!(diff * 2 < full, "Diff {diff} KiB, Full {full} KiB");

    let vms = run.vm_runs();
    let (restored, status) = vms
        .last()
        .unwrap_or_else(|| panic!("no restored run:\n{}", tail()));
    assert_eq!(*status, 0, "{restored}");
    assert!(
        !restored.contains("Linux version"),
        "the guest booted again:\n{restored}"
    );
    // The disk and RAM as the Diff left them, and the disk still works.
    assert_eq!(
        value(restored, "blocks"),
        Some("before between"),
        "{restored}"
    );
    assert_eq!(value(restored, "memo"), Some("between"), "{restored}");
    assert_eq!(value(restored, "after"), Some("after"), "{restored}");
    // The network on the new TAP, both ways.
    assert!(restored.contains("@@reached"), "{restored}");
    assert_eq!(
        value(restored, "rx-md5"),
        value(console, "h2g-md5"),
        "{restored}"
    );
    // The listener from before the snapshot takes a new connection on the
    // new socket.
    assert!(restored.contains("@@echo-vsock echoed 65536"), "{restored}");
    let echoed = console
        .lines()
        .filter(|l| l.starts_with("@@send-unix ok sent=65536 received=65536 "))
        .count();
    assert_eq!(echoed, 2, "{}", tail());
}
