//! Linux guests driven through Firecracker's API inside the test host
//! (the `api-test-tool` there sends the requests).

mod common;

use std::path::Path;

use common::linux::{guest_initrd, test_host, value, CMDLINE};
use common::Scratch;
use testhost::build_tool;

const TOOL: &str = "api-test-tool";

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
