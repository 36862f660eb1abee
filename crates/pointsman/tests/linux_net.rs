//! virtio-net over TAP with Debian's cloud kernel, inside the test host
//! (see the testhost crate): the TAPs live in the test host, on
//! 10.200.0.0/24, so no traffic leaves it.

mod common;
mod net_shell;

use std::time::Duration;

use common::linux::{guest_initrd, test_host, value, CMDLINE};
use common::Scratch;
use net_shell::{COMMON_HELPERS, GUEST_HELPERS, HOST_HELPERS};
use testhost::{HostRun, TestHost};

const GUEST_MODULES: &[&str] = &["virtio_mmio", "virtio_pci", "virtio_net"];
const MAC: &str = "52:54:00:12:34:56";

fn host() -> TestHost {
    test_host()
        .with_host_modules(&["tun"])
        .timeout(Duration::from_secs(400))
}

/// Runs `script` in the test host with the guest kernel at /guest/vmlinuz
/// and an initrd running `guest` at /guest/initrd.cpio.
fn run(guest: &str, script: &str) -> HostRun {
    let host = host();
    let dir = Scratch::new("net");
    let initrd = guest_initrd(
        &host,
        &dir,
        "guest.cpio",
        GUEST_MODULES,
        &format!("{COMMON_HELPERS}{GUEST_HELPERS}{guest}"),
    );
    let kernel = host.assets().cloud.vmlinuz.clone();
    let script = format!(
        "{COMMON_HELPERS}{HOST_HELPERS}start_guest() {{ start_vm --kernel /guest/vmlinuz --initrd /guest/initrd.cpio \
         --cmdline '{CMDLINE}' --memory 512M \"$@\"; }}\n{script}"
    );
    let run = host
        .run(
            &[("guest/vmlinuz", &kernel), ("guest/initrd.cpio", &initrd)],
            &script,
        )
        .expect("run the test host");
    assert_eq!(run.script_status, Some(0), "{}", run.console);
    run
}

fn expect<'a>(run: &'a HostRun, key: &str) -> &'a str {
    value(&run.console, key).unwrap_or_else(|| panic!("no @@{key} in:\n{}", run.console))
}

/// MiB/s from `@@KEY MiB start end` (uptime seconds).
fn rate(run: &HostRun, key: &str) -> f64 {
    let v: Vec<f64> = expect(run, key)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    v[0] / (v[2] - v[1]).max(0.01)
}

/// Ping both ways, then TCP host to guest and guest to host, through a TAP
/// the test host created beforehand with busybox `tunctl`.
#[test]
fn ping_and_tcp_both_ways_over_an_existing_tap() {
    let mib = 16;
    let guest = r#"
nic 52:54:00:12:34:56 10.200.0.2/24
reach 10.200.0.1
echo "@@guest-ping $(ping -c 3 -W 2 10.200.0.1 | grep -c 'bytes from')"
receive 5002 /tmp/in
echo "@@listening"
wait $NC
echo "@@rx-md5 $(md5 /tmp/in)"
read go
nc 10.200.0.1 5001 < /tmp/out
echo "@@tx-done $?"
poweroff -f
"#;
    let guest = guest.replace(
        "read go",
        &format!("dd if=/dev/urandom of=/tmp/out bs=1M count={mib} 2>/dev/null\necho \"@@tx-md5 $(md5 /tmp/out)\"\nread go"),
    );
    let script = format!(
        r#"
tunctl -t tap0 >/dev/null || echo "@@tunctl failed"
ip addr add 10.200.0.1/24 dev tap0 && ip link set tap0 up
dd if=/dev/urandom of=/tmp/h2g bs=1M count={mib} 2>/dev/null
echo "@@h2g-md5 $(md5 /tmp/h2g)"
start_guest --net tap=tap0,mac={MAC}
if wait_for @@listening 1 120; then
    echo "@@host-ping $(ping -c 3 -W 2 10.200.0.2 | grep -c 'bytes from')"
    t0=$(uptime_s)
    nc 10.200.0.2 5002 < /tmp/h2g
    echo "@@h2g-rate {mib} $t0 $(uptime_s)"
    if wait_for @@tx-md5 1 120; then
        receive 5001 /tmp/g2h
        t0=$(uptime_s)
        send go
        wait $NC
        echo "@@g2h-rate {mib} $t0 $(uptime_s)"
        echo "@@g2h-md5 $(md5 /tmp/g2h)"
    else
        fail tx-md5
    fi
else
    fail listening
fi
finish_vm
tunctl -d tap0 >/dev/null
"#
    );
    let run = run(&guest, &script);
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    assert_eq!(vms[0].1, 0, "pointsman status\n{}", run.console);
    let nic = expect(&run, "nic");
    assert!(nic.starts_with(MAC), "{nic}");
    assert_eq!(expect(&run, "guest-ping"), "3");
    assert_eq!(expect(&run, "host-ping"), "3");
    assert_eq!(expect(&run, "rx-md5"), expect(&run, "h2g-md5"));
    assert_eq!(expect(&run, "tx-done"), "0");
    assert_eq!(expect(&run, "g2h-md5"), expect(&run, "tx-md5"));
    eprintln!(
        "host->guest {:.1} MiB/s, guest->host {:.1} MiB/s; features {}",
        rate(&run, "h2g-rate"),
        rate(&run, "g2h-rate"),
        nic
    );
}

/// Seconds between the two uptimes of `@@KEY N start end`.
fn elapsed(run: &HostRun, key: &str) -> f64 {
    let v: Vec<f64> = expect(run, key)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    v[2] - v[1]
}

/// Two NICs: one on a TAP the test host made, with interrupt moderation
/// off, one on a TAP Pointsman creates and the host configures once it
/// appears, with a random MAC and rate limited to 256 KiB/s each way.
/// Both work, the limit holds, both survive a reboot of the guest in place
/// (the random MAC too), and Pointsman's TAP goes away when it exits.
#[test]
fn two_nics_rate_limit_and_reboot() {
    two_nics_rate_limit_and_reboot_with("");
}

/// The same on virtio-pci: two functions with MSI-X each, through a
/// reboot in place.
#[test]
fn two_nics_rate_limit_and_reboot_on_pci() {
    two_nics_rate_limit_and_reboot_with("--pci");
}

fn two_nics_rate_limit_and_reboot_with(transport: &str) {
    let guest = r#"
echo "@@boot"
read mode
nic 52:54:00:12:34:56 10.200.0.2/25
# The second NIC has no MAC option: configure whichever is not the first.
for d in /sys/class/net/eth*; do
    mac=$(cat $d/address)
    if [ "$mac" != 52:54:00:12:34:56 ]; then
        echo "@@mac2-$mode $mac"
        nic $mac 10.200.0.130/25
    fi
done
reach 10.200.0.1 && reach 10.200.0.129 && echo "@@reached-$mode"
echo "@@msi-$mode $(grep -c 'PCI-MSI.*virtio' /proc/interrupts)"
[ "$mode" = second ] && poweroff -f
echo "@@ping1 $(ping -c 2 -W 2 10.200.0.1 | grep -c 'bytes from')"
echo "@@ping2 $(ping -c 2 -W 2 10.200.0.129 | grep -c 'bytes from')"
receive 5003 /tmp/in
echo "@@listening"
wait $NC
echo "@@rx-md5 $(md5 /tmp/in)"
dd if=/dev/urandom of=/tmp/out bs=64k count=16 2>/dev/null
echo "@@tx-md5 $(md5 /tmp/out)"
read go
nc 10.200.0.129 5004 < /tmp/out
echo "@@tx-done $?"
reboot -f
"#;
    let script = format!(
        r#"
tunctl -t tap0 >/dev/null || echo "@@tunctl failed"
ip addr add 10.200.0.1/25 dev tap0 && ip link set tap0 up
dd if=/dev/urandom of=/tmp/h2g bs=64k count=32 2>/dev/null
echo "@@h2g-md5 $(md5 /tmp/h2g)"
start_guest {transport} --net tap=tap0,mac={MAC},moderation=off --net tap=ptsm1,bandwidth=256K
tap_up ptsm1 10.200.0.129/25 || fail tap
wait_for @@boot 1 120 && send first
if wait_for @@listening 1 120; then
    echo "@@host-ping1 $(ping -c 2 -W 2 10.200.0.2 | grep -c 'bytes from')"
    echo "@@host-ping2 $(ping -c 2 -W 2 10.200.0.130 | grep -c 'bytes from')"
    t0=$(uptime_s)
    nc 10.200.0.130 5003 < /tmp/h2g
    echo "@@h2g-time 2 $t0 $(uptime_s)"
    wait_for @@tx-md5 1 120 || fail tx-md5
    receive 5004 /tmp/g2h
    t0=$(uptime_s)
    send go
    wait $NC
    echo "@@g2h-time 1 $t0 $(uptime_s)"
    echo "@@g2h-md5 $(md5 /tmp/g2h)"
    wait_for @@boot 2 120 && send second
    wait_for @@reached-second 1 120 || fail reboot
else
    fail listening
fi
finish_vm
ip link show ptsm1 >/dev/null 2>&1 && echo "@@tap-left yes" || echo "@@tap-left no"
tunctl -d tap0 >/dev/null
"#
    );
    let run = run(guest, &script);
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    assert_eq!(vms[0].1, 0, "pointsman status\n{}", run.console);
    for key in ["ping1", "ping2", "host-ping1", "host-ping2"] {
        assert_eq!(expect(&run, key), "2", "{key}\n{}", run.console);
    }
    assert_eq!(expect(&run, "rx-md5"), expect(&run, "h2g-md5"));
    assert_eq!(expect(&run, "tx-done"), "0");
    assert_eq!(expect(&run, "g2h-md5"), expect(&run, "tx-md5"));
    // 2 MiB and 1 MiB at 256 KiB/s, less the full bucket at the start.
    let (h2g, g2h) = (elapsed(&run, "h2g-time"), elapsed(&run, "g2h-time"));
    assert!(h2g >= 5.0, "host->guest took {h2g} s\n{}", run.console);
    assert!(g2h >= 2.0, "guest->host took {g2h} s\n{}", run.console);
    assert!(
        run.console.contains("@@reached-second"),
        "after the reboot\n{}",
        run.console
    );
    assert_eq!(expect(&run, "tap-left"), "no");
    // On PCI each NIC has three MSI-X vectors (receive, transmit, config).
    let msi = if transport.is_empty() { "0" } else { "6" };
    assert_eq!(expect(&run, "msi-first"), msi, "{}", run.console);
    assert_eq!(expect(&run, "msi-second"), msi, "{}", run.console);
    let mac = expect(&run, "mac2-first");
    assert_eq!(
        mac,
        expect(&run, "mac2-second"),
        "same MAC after the reboot"
    );
    let first = u8::from_str_radix(&mac[..2], 16).unwrap();
    assert_eq!(first & 3, 2, "locally administered unicast: {mac}");
    eprintln!("rate limited: host->guest 2 MiB in {h2g:.1} s, guest->host 1 MiB in {g2h:.1} s");
}
