//! Linux guests driven through Firecracker's API inside the test host
//! (the `api-test-tool` there sends the requests).

mod common;
mod net_shell;

use std::path::Path;
use std::time::Duration;

use common::linux::{guest_initrd, test_host, value, CMDLINE};
use common::Scratch;
use net_shell::{COMMON_HELPERS, GUEST_HELPERS, HOST_HELPERS};
use testhost::build_tool;

const TOOL: &str = "api-test-tool";

/// The boot arguments of Firecracker's getting-started guide, which its
/// users copy: no `quiet`, PCI off (the devices are on virtio-mmio).
const FIRECRACKER_BOOT_ARGS: &str = "console=ttyS0 reboot=k panic=1 pci=off";

/// An init that hands Ctrl-Alt-Del to itself (as a distribution's init
/// does, instead of the kernel's immediate restart), prints a tick every
/// second, and reboots when the keys come.
const INIT: &str = "echo 0 > /proc/sys/kernel/ctrl-alt-del\n\
trap 'echo @@ctrl-alt-del; reboot -f' INT\n\
echo @@ready\n\
while true; do echo @@tick; sleep 1; done";

#[test]
fn pause_resume_and_ctrl_alt_del_through_the_api() {
    let pointsman = Path::new(env!("CARGO_BIN_EXE_pointsman"));
    let tool = build_tool(TOOL, pointsman).expect("build the API test tool");
    let host = test_host();
    let dir = Scratch::new("linux-api");
    let initrd = guest_initrd(&host, &dir, "api.cpio", &[], INIT);
    let kernel = host.assets().cloud.vmlinuz.clone();
    let api = format!("/bin/{TOOL} /tmp/api.sock");
    let ticks = "$(grep -c @@tick /tmp/vm.out)";
    let script = format!(
        "chmod 755 /bin/{TOOL}\n\
         start_vm --kernel /guest/vmlinuz --initrd /guest/api.cpio --cmdline '{CMDLINE}' \
           --api-sock /tmp/api.sock --no-reboot\n\
         wait_for @@ready 1 240\n\
         wait_for @@tick 2 60\n\
         {api} PATCH /vm '{{\"state\":\"Paused\"}}'\n\
         {api} GET /\n\
         before={ticks}; sleep 3; echo \"@@paused-ticks $(( {ticks} - before ))\"\n\
         {api} PATCH /vm '{{\"state\":\"Resumed\"}}'\n\
         before={ticks}; sleep 4; echo \"@@resumed-ticks $(( {ticks} - before ))\"\n\
         {api} PUT /actions '{{\"action_type\":\"SendCtrlAltDel\"}}'\n\
         wait_for @@ctrl-alt-del 1 120\n\
         finish_vm_within 120\n"
    );
    let run = host
        .run(
            &[
                ("guest/vmlinuz", &kernel),
                ("guest/api.cpio", &initrd),
                (&format!("bin/{TOOL}"), &tool),
            ],
            &script,
        )
        .expect("run the test host");
    let console = &run.console;
    assert!(
        console.contains(r#"@@api 200 {"id":"anonymous-instance","state":"Paused""#),
        "GET / while paused:\n{}",
        run.console_tail(60)
    );
    assert_eq!(
        value(console, "paused-ticks"),
        Some("0"),
        "the guest made progress while paused:\n{}",
        run.console_tail(60)
    );
    let resumed: u32 = value(console, "resumed-ticks")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        resumed >= 1,
        "no progress after the resume:\n{}",
        run.console_tail(60)
    );
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console_tail(60));
    let (vm_console, status) = &vms[0];
    assert!(
        vm_console.contains("@@ctrl-alt-del"),
        "the guest's init got Ctrl-Alt-Del:\n{vm_console}"
    );
    assert_eq!(
        *status, 0,
        "its reboot ends the run under --no-reboot:\n{vm_console}"
    );
}

/// The guest of the traffic test: a NIC and a disk found through the
/// modules, and `took CMD...` printing how long CMD took in seconds.
const TRAFFIC_GUEST: &str = r#"
for i in $(seq 1 100); do [ -b /dev/vda ] && break; sleep 0.1; done
took() {
    s=$(cut -d' ' -f1 /proc/uptime)
    "$@" >/dev/null 2>&1 || echo "@@failed $*"
    awk -v s=$s '{print $1 - s}' /proc/uptime
}
nic 52:54:00:12:34:56 10.200.0.2/24
reach 10.200.0.1 && echo "@@reached"
dd if=/dev/urandom of=/tmp/out bs=1M count=MIB 2>/dev/null
echo "@@tx-md5 $(md5 /tmp/out)"
receive 5002 /tmp/in
echo "@@listening"
read go
dd if=/tmp/out of=/dev/vda bs=256k oflag=direct 2>/dev/null &
DD=$!
nc 10.200.0.1 5001 < /tmp/out
echo "@@tx-done $?"
wait $DD; echo "@@disk-written $?"
wait $NC
echo "@@rx-md5 $(md5 /tmp/in)"
echo "@@disk-md5 $(dd if=/dev/vda bs=1M count=MIB iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
echo "@@traffic-done"
read go
echo "@@disk-limited $(took dd if=/dev/vda of=/dev/null bs=64k count=32 skip=64 iflag=direct)"
read go
echo "@@disk-unlimited $(took dd if=/dev/vda of=/dev/null bs=64k count=32 skip=128 iflag=direct)"
receive 5003 /tmp/limited
echo "@@listening-limited"
s=$(cut -d' ' -f1 /proc/uptime); wait $NC
echo "@@net-limited $(awk -v s=$s '{print $1 - s}' /proc/uptime) $(wc -c < /tmp/limited)"
read go
for i in $(seq 1 300); do [ "$(cat /sys/block/vda/size)" != 131072 ] && break; sleep 0.1; done
echo "@@new-size $(cat /sys/block/vda/size)"
echo "@@new-md5 $(dd if=/dev/vda bs=1M count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)"
poweroff -f
"#;

/// The test host's side: configures the guest through the API (a disk, a
/// NIC on a TAP, metrics), then drives the guest's phases.
const TRAFFIC_HOST: &str = r#"
api() { /bin/api-test-tool /tmp/api.sock "$@" || echo "@@api-failed $1 $2"; }
quiet_api() { /bin/api-test-tool /tmp/api.sock "$@" >/dev/null || echo "@@api-failed $1 $2"; }
tunctl -t tap0 >/dev/null || echo "@@tunctl failed"
ip addr add 10.200.0.1/24 dev tap0 && ip link set tap0 up
truncate -s 64M /tmp/disk.img
dd if=/dev/urandom of=/tmp/disk2.img bs=1M count=48 2>/dev/null
echo "@@disk2-md5 $(dd if=/tmp/disk2.img bs=1M count=1 2>/dev/null | md5sum | cut -d' ' -f1)"
dd if=/dev/urandom of=/tmp/h2g bs=1M count=MIB 2>/dev/null
echo "@@h2g-md5 $(md5 /tmp/h2g)"
dd if=/dev/urandom of=/tmp/limited bs=64k count=16 2>/dev/null
start_vm --api-sock /tmp/api.sock --no-reboot
for i in $(seq 1 100); do [ -S /tmp/api.sock ] && break; sleep 0.1; done
api PUT /boot-source '{"kernel_image_path":"/guest/vmlinuz","initrd_path":"/guest/initrd.cpio","boot_args":"CMDLINE"}'
api PUT /machine-config '{"vcpu_count":2,"mem_size_mib":512}'
api PUT /drives/data '{"drive_id":"data","path_on_host":"/tmp/disk.img","is_root_device":false,"is_read_only":false}'
api PUT /network-interfaces/eth0 '{"iface_id":"eth0","host_dev_name":"tap0","guest_mac":"52:54:00:12:34:56"}'
api PUT /metrics '{"metrics_path":"/tmp/metrics.json"}'
api PUT /actions '{"action_type":"InstanceStart"}'
if wait_for @@listening 1 240; then
    receive 5001 /tmp/g2h
    quiet_api PUT /actions '{"action_type":"FlushMetrics"}'
    nc 10.200.0.2 5002 < /tmp/h2g &
    send go
    # Pause and resume the guest while both transfers and the disk
    # write run, until the guest has checked what it got.
    pauses=0
    while ! grep -q @@traffic-done /tmp/vm.out && [ $pauses -lt 100 ]; do
        kill -0 $VM_PID 2>/dev/null || break
        quiet_api PATCH /vm '{"state":"Paused"}'
        pauses=$((pauses + 1))
        [ $pauses = 1 ] && api GET /
        sleep 0.3
        quiet_api PATCH /vm '{"state":"Resumed"}'
        sleep 0.3
    done
    echo "@@pauses $pauses"
    wait $NC
    echo "@@g2h-md5 $(md5 /tmp/g2h)"
    echo "@@host-disk-md5 $(dd if=/tmp/disk.img bs=1M count=MIB 2>/dev/null | md5sum | cut -d' ' -f1)"
    quiet_api PUT /actions '{"action_type":"FlushMetrics"}'
    echo "@@metrics-traffic $(tail -n 1 /tmp/metrics.json)"
    # A disk limit of 512 KiB/s, then none.
    api PATCH /drives/data '{"drive_id":"data","rate_limiter":{"bandwidth":{"size":524288,"refill_time":1000}}}'
    send go
    wait_for @@disk-limited 1 120
    api PATCH /drives/data '{"drive_id":"data","rate_limiter":{"bandwidth":{"size":0,"refill_time":0}}}'
    send go
    # What the guest receives limited to 256 KiB/s.
    api PATCH /network-interfaces/eth0 '{"iface_id":"eth0","rx_rate_limiter":{"bandwidth":{"size":262144,"refill_time":1000}}}'
    wait_for @@listening-limited 1 120
    nc 10.200.0.2 5003 < /tmp/limited
    wait_for @@net-limited 1 120
    # A new backing file: the guest sees a media change.
    api PATCH /drives/data '{"drive_id":"data","path_on_host":"/tmp/disk2.img"}'
    api GET /vm/config
    send go
else
    echo "@@failed listening"
fi
finish_vm_within 300
tunctl -d tap0 >/dev/null
"#;

/// A Linux guest configured through the API with a disk and a NIC:
/// paused and resumed over and over while data flows both ways on the NIC
/// and onto the disk, nothing is lost; rate limits and the disk's backing
/// file changed after boot take effect in the guest; the metrics count
/// the traffic and the pauses.
#[test]
fn disk_and_nic_through_the_api_paused_under_traffic() {
    let mib = 24;
    let pointsman = Path::new(env!("CARGO_BIN_EXE_pointsman"));
    let tool = build_tool(TOOL, pointsman).expect("build the API test tool");
    let host = test_host()
        .with_host_modules(&["tun"])
        .timeout(Duration::from_secs(600));
    let dir = Scratch::new("linux-api-traffic");
    let guest = TRAFFIC_GUEST.replace("MIB", &mib.to_string());
    let initrd = guest_initrd(
        &host,
        &dir,
        "initrd.cpio",
        &["virtio_mmio", "virtio_blk", "virtio_net"],
        &format!("{COMMON_HELPERS}{GUEST_HELPERS}{guest}"),
    );
    let kernel = host.assets().cloud.vmlinuz.clone();
    let script = format!(
        "chmod 755 /bin/{TOOL}\n{COMMON_HELPERS}{HOST_HELPERS}{}",
        TRAFFIC_HOST
            .replace("MIB", &mib.to_string())
            .replace("CMDLINE", FIRECRACKER_BOOT_ARGS)
    );
    let run = host
        .run(
            &[
                ("guest/vmlinuz", &kernel),
                ("guest/initrd.cpio", &initrd),
                (&format!("bin/{TOOL}"), &tool),
            ],
            &script,
        )
        .expect("run the test host");
    let console = &run.console;
    let tail = || run.console_tail(80);
    assert!(!console.contains("@@api-failed"), "{}", tail());
    assert!(!console.contains("@@failed"), "{}", tail());
    let expect =
        |key: &str| value(console, key).unwrap_or_else(|| panic!("no @@{key}:\n{}", tail()));
    let pauses: u64 = expect("pauses").parse().unwrap();
    assert!(pauses >= 3, "only {pauses} pauses during the traffic");
    assert!(
        console.contains(r#"@@api 200 {"id":"anonymous-instance","state":"Paused""#),
        "{}",
        tail()
    );
    assert_eq!(expect("rx-md5"), expect("h2g-md5"), "host to guest");
    assert_eq!(expect("g2h-md5"), expect("tx-md5"), "guest to host");
    assert_eq!(expect("tx-done"), "0");
    assert_eq!(expect("disk-written"), "0");
    assert_eq!(
        expect("disk-md5"),
        expect("tx-md5"),
        "the disk as the guest reads it"
    );
    assert_eq!(expect("host-disk-md5"), expect("tx-md5"), "the disk image");

    // The line flushed after the traffic counts what moved since the one
    // flushed before it: at least the data each way, on the NIC's and the
    // disk's own groups and their sums, and every pause.
    let metrics: serde_json::Value = serde_json::from_str(expect("metrics-traffic")).unwrap();
    let count = |group: &str, field: &str| {
        metrics[group][field]
            .as_u64()
            .unwrap_or_else(|| panic!("no {group}.{field} in {metrics}"))
    };
    let data = mib << 20;
    assert_eq!(count("vmm", "pauses"), pauses, "{metrics}");
    assert_eq!(count("vmm", "resumes"), pauses, "{metrics}");
    assert!(count("latencies_us", "pause_vm") > 0, "{metrics}");
    for group in ["net", "net_eth0"] {
        assert!(
            count(group, "rx_bytes_count") >= data,
            "{group} rx: {metrics}"
        );
        assert!(
            count(group, "tx_bytes_count") >= data,
            "{group} tx: {metrics}"
        );
    }
    for group in ["block", "block_data"] {
        assert!(
            count(group, "write_bytes") >= data,
            "{group} writes: {metrics}"
        );
        assert!(
            count(group, "read_bytes") >= data,
            "{group} reads: {metrics}"
        );
    }

    let seconds = |key: &str| -> f64 {
        let v = expect(key);
        v.split_whitespace().next().unwrap().parse().unwrap()
    };
    let limited = seconds("disk-limited");
    let unlimited = seconds("disk-unlimited");
    eprintln!("{pauses} pauses; 2 MiB read: {limited} s at 512 KiB/s, {unlimited} s unlimited");
    // Lower bounds only: a full bucket, then the rest at the refill rate.
    assert!(
        limited >= 2.5,
        "1.5 MiB past the bucket at 512 KiB/s: {limited} s"
    );
    assert!(unlimited < limited, "the limit was not removed");
    let net = expect("net-limited");
    assert!(
        net.ends_with(" 1048576"),
        "the limited transfer arrived whole: {net}"
    );
    let net_seconds = seconds("net-limited");
    assert!(
        net_seconds >= 2.5,
        "768 KiB past the bucket at 256 KiB/s: {net_seconds} s"
    );

    assert_eq!(
        expect("new-size"),
        "98304",
        "48 MiB in sectors after the media change"
    );
    assert_eq!(
        expect("new-md5"),
        expect("disk2-md5"),
        "the guest reads the new file"
    );
    assert!(
        console.contains(r#""path_on_host":"/tmp/disk2.img""#),
        "{}",
        tail()
    );
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", tail());
    assert_eq!(vms[0].1, 0, "{}", vms[0].0);
}
