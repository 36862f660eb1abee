//! What the Linux-guest tests share: the test host, the guest initramfs,
//! and reading the `@@key value` lines guests print.

use std::path::{Path, PathBuf};
use std::time::Duration;

use testhost::{build_tool, linux_guest_initramfs, HostRun, TestHost};

use super::Scratch;

/// The guest command line: serial console, reboot through the keyboard
/// controller, reboot (and so pvpanic) at once on a panic, no boot chatter
/// (each console byte is expensive in the nested test host).
pub const CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 quiet";

/// A test host for the `pointsman` binary under test.
pub fn test_host() -> TestHost {
    TestHost::new(Path::new(env!("CARGO_BIN_EXE_pointsman"))).expect("set up the test host")
}

/// Writes `name` in `dir`: a guest initramfs loading `modules` (and what
/// they depend on) whose init runs `body`.
pub fn guest_initrd(
    host: &TestHost,
    dir: &Scratch,
    name: &str,
    modules: &[&str],
    body: &str,
) -> PathBuf {
    let assets = host.assets();
    let path = dir.path().join(name);
    linux_guest_initramfs(&assets.busybox, &assets.cloud, modules, body)
        .and_then(|i| i.write(&path))
        .expect("build the guest initramfs");
    path
}

/// The value of the first `@@key value` line in `console`.
pub fn value<'a>(console: &'a str, key: &str) -> Option<&'a str> {
    let tag = format!("@@{key} ");
    console
        .lines()
        .find_map(|l| l.trim_end_matches('\r').strip_prefix(tag.as_str()))
        .map(str::trim)
}

/// The drivers a guest with a virtio-mmio disk, NIC and vsock loads.
pub const DISK_NIC_VSOCK: &[&str] = &[
    "virtio_mmio",
    "virtio_blk",
    "virtio_net",
    "vmw_vsock_virtio_transport",
];

/// Runs `script` in a test host with the `tun` module and `tools` (test
/// tools, at `/bin/NAME`), whose guest initramfs loads `modules`, has
/// `tools` too and runs `init`; the cloud kernel at `/guest/vmlinuz`,
/// the initramfs at `/guest/initrd.cpio`.
pub fn run_with_tools(
    name: &str,
    modules: &[&str],
    tools: &[&str],
    init: &str,
    script: &str,
    timeout: Duration,
) -> HostRun {
    let pointsman = Path::new(env!("CARGO_BIN_EXE_pointsman"));
    let built: Vec<(String, PathBuf)> = tools
        .iter()
        .map(|tool| {
            let path = build_tool(tool, pointsman).unwrap_or_else(|e| panic!("build {tool}: {e}"));
            (format!("bin/{tool}"), path)
        })
        .collect();
    let host = test_host().with_host_modules(&["tun"]).timeout(timeout);
    let dir = Scratch::new(name);
    let initrd = dir.path().join("initrd.cpio");
    let assets = host.assets();
    linux_guest_initramfs(&assets.busybox, &assets.cloud, modules, init)
        .and_then(|mut image| {
            for (at, path) in &built {
                image.program(at, path)?;
            }
            image.write(&initrd)
        })
        .expect("build the guest initramfs");
    let kernel = assets.cloud.vmlinuz.clone();
    let mut files: Vec<(&str, &Path)> =
        vec![("guest/vmlinuz", &kernel), ("guest/initrd.cpio", &initrd)];
    files.extend(built.iter().map(|(at, path)| (at.as_str(), path.as_path())));
    host.run(&files, script).expect("run the test host")
}
