//! What the Linux-guest tests share: the test host, the guest initramfs,
//! and reading the `@@key value` lines guests print.

use std::path::{Path, PathBuf};

use testhost::{linux_guest_initramfs, TestHost};

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
