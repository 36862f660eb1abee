//! A Linux guest with a disk, a NIC and vsock run by a jailed VMM inside
//! the test host (`pointsman jail`, with Landlock and its seccomp filters
//! on): the guest writes its disk, reaches the host over its NIC and
//! echoes a vsock connection; from the host, the VMM's root is the jail,
//! its user is not root, it has no capabilities, and it cannot see the
//! host's files.

mod common;
mod net_shell;

use std::time::Duration;

use common::linux::{run_with_tools, value, DISK_NIC_VSOCK};
use net_shell::{COMMON_HELPERS, GUEST_HELPERS};

const VSOCK_TOOL: &str = "vsock-test-tool";

/// The guest: writes a marker to its disk, pings the host, echoes one
/// vsock connection, powers off when told.
const INIT: &str = r#"
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
nic 52:54:00:12:34:56 10.200.0.2/24
printf 'jailed\n' | dd of=/dev/vda bs=4096 count=1 conv=sync oflag=direct 2>/dev/null && echo "@@disk-written"
reach 10.200.0.1 && echo "@@reached"
vsock-test-tool echo-vsock 6000 1 &
echo @@ready
while read line; do [ "$line" = off ] && poweroff -f; done
"#;

/// The test host: a TAP and a disk image for the jail's user, the VMM
/// jailed, then what the host sees of it.
const SCRIPT: &str = r#"
chmod 755 /bin/vsock-test-tool
J=40123
mkdir -p /srv/jails
truncate -s 64M /tmp/disk.img && chown $J:$J /tmp/disk.img
rm -f /tmp/vm.in /tmp/vm.out /tmp/vm.err; mkfifo /tmp/vm.in; : > /tmp/vm.out
pointsman jail --id linux1 --uid $J --gid $J --chroot-base /srv/jails -- \
    --kernel /guest/vmlinuz --initrd /guest/initrd.cpio --cmdline "console=ttyS0 panic=-1" \
    --memory 256M --no-reboot --disk path=/tmp/disk.img \
    --net tap=tap0,mac=52:54:00:12:34:56 --vsock cid=3,socket=/tmp/v.sock \
    < /tmp/vm.in > /tmp/vm.out 2> /tmp/vm.err &
VM_PID=$!
exec 3> /tmp/vm.in
ROOT=/srv/jails/pointsman/linux1/root
# The jailer made tap0 for the jail's user.
for i in $(seq 1 100); do ip link show tap0 >/dev/null 2>&1 && break; sleep 0.1; done
ip addr add 10.200.0.1/24 dev tap0 && ip link set tap0 up || echo "@@failed tap"
wait_for @@ready 1 300 || { echo "@@failed boot"; cat /tmp/vm.err; }
field() { awk -v k="$1:" '$1 == k { $1 = ""; print substr($0, 2) }' /proc/$VM_PID/status; }
echo "@@uid $(field Uid)"
echo "@@capeff $(field CapEff)"
echo "@@nonewprivs $(field NoNewPrivs)"
echo "@@seccomp $(field Seccomp)"
echo "@@root $(ls /proc/$VM_PID/root | tr '\n' ' ')"
echo "@@host-etc $(ls /proc/$VM_PID/root/etc 2>&1 | head -1)"
echo "@@disk $(head -c 6 /tmp/disk.img)"
echo "@@tap-owner $(cat /sys/class/net/tap0/owner)"
/bin/vsock-test-tool send-unix $ROOT/v.sock 6000 65536
send off
finish_vm_within 120
tunctl -d tap0 >/dev/null
"#;

#[test]
fn a_jailed_vmm_runs_a_linux_guest_with_disk_nic_and_vsock() {
    let run = run_with_tools(
        "linux-jail",
        DISK_NIC_VSOCK,
        &[VSOCK_TOOL],
        &format!("{COMMON_HELPERS}{GUEST_HELPERS}{INIT}"),
        &format!("{COMMON_HELPERS}{SCRIPT}"),
        Duration::from_secs(600),
    );
    let console = &run.console;
    let tail = || run.console_tail(80);
    assert!(!console.contains("@@failed"), "{}", tail());
    let vms = run.vm_runs();
    let (vm, status) = vms.last().unwrap_or_else(|| panic!("{}", tail()));
    assert_eq!(*status, 0, "{vm}");
    assert!(vm.contains("@@disk-written"), "{vm}");
    assert!(vm.contains("@@reached"), "{vm}");
    assert_eq!(value(console, "tap-owner"), Some("40123"), "{}", tail());
    assert!(vm.contains("@@echo-vsock echoed 65536"), "{vm}");
    assert_eq!(value(console, "disk"), Some("jailed"), "{}", tail());
    assert!(
        console
            .lines()
            .any(|l| l.starts_with("@@send-unix ok sent=65536 received=65536 ")),
        "{}",
        tail()
    );
    // What the host sees of the jailed VMM.
    assert_eq!(
        value(console, "uid"),
        Some("40123 40123 40123 40123"),
        "{}",
        tail()
    );
    assert_eq!(value(console, "capeff"), Some("0000000000000000"));
    assert_eq!(value(console, "nonewprivs"), Some("1"));
    let root: Vec<&str> = value(console, "root")
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        root,
        [
            "dev",
            "disk.img",
            "initrd.cpio",
            "pointsman",
            "v.sock",
            "vmlinuz"
        ],
        "{}",
        tail()
    );
    assert!(
        value(console, "host-etc").is_some_and(|l| l.contains("No such file")),
        "{}",
        tail()
    );
    eprintln!("seccomp mode: {:?}", value(console, "seccomp"));
}
