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
use testhost::build_tool;

const TOOL: &str = "api-test-tool";

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
chmod 755 /bin/api-test-tool
api() { /bin/api-test-tool /tmp/api.sock "$@" || echo "@@api-failed $1 $2"; }
start_vm --api-sock /tmp/api.sock --no-reboot
for i in $(seq 1 100); do [ -S /tmp/api.sock ] && break; sleep 0.1; done
api PUT /boot-source '{"kernel_image_path":"/guest/vmlinuz","initrd_path":"/guest/initrd.cpio","boot_args":"console=ttyS0 panic=-1"}'
api PUT /machine-config '{"vcpu_count":2,"mem_size_mib":256}'
api PUT /actions '{"action_type":"InstanceStart"}'
wait_for @@ready 1 300 && wait_for @@tick 3 120
send hello
wait_for "@@got hello" 1 60
api PATCH /vm '{"state":"Paused"}'
api PUT /snapshot/create '{"snapshot_path":"/tmp/vm.snap","mem_file_path":"/tmp/vm.mem"}'
echo "@@snapshot-bytes $(wc -c < /tmp/vm.snap) $(wc -c < /tmp/vm.mem) $(du -k /tmp/vm.mem | cut -f1)"
kill -9 $VM_PID; wait $VM_PID
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
    let pointsman = Path::new(env!("CARGO_BIN_EXE_pointsman"));
    let tool = build_tool(TOOL, pointsman).expect("build the API test tool");
    let host = test_host();
    let dir = Scratch::new("linux-snapshot");
    let initrd = guest_initrd(&host, &dir, "initrd.cpio", &[], INIT);
    let kernel = host.assets().cloud.vmlinuz.clone();
    let run = host
        .run(
            &[
                ("guest/vmlinuz", &kernel),
                ("guest/initrd.cpio", &initrd),
                (&format!("bin/{TOOL}"), &tool),
            ],
            SCRIPT,
        )
        .expect("run the test host");
    let console = &run.console;
    let tail = || run.console_tail(80);
    assert!(!console.contains("@@api-failed"), "{}", tail());
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
