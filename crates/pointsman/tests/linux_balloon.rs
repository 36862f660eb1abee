//! virtio-balloon with Debian's cloud kernel inside the test host: the
//! VMM's RSS (measured from the test host) falls when the guest inflates
//! the balloon and rises again when it deflates under memory pressure;
//! free page reporting returns freed guest memory without a target.
//! Bad `--balloon` values are refused without a test host.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::linux::{self, test_host, CMDLINE};
use common::{require_kvm, run, Scratch, EXIT_BAD_INPUT};
use testhost::{linux_guest_initramfs, TestHost};

const MIB: i64 = 1024;

/// A run takes 20-40 s on an idle machine and up to ~140 s on a very loaded
/// one (measured); the limit leaves room for one three times slower still.
fn host() -> TestHost {
    test_host().timeout(Duration::from_secs(450))
}

/// A guest initramfs running `body` after loading virtio-mmio; the balloon
/// driver is in `/balloon/virtio_balloon.ko`, loaded at boot only when
/// `load_balloon` (otherwise the guest loads it when it wants).
fn guest_initrd(host: &TestHost, dir: &Scratch, load_balloon: bool, body: &str) -> PathBuf {
    let assets = host.assets();
    let modules: &[&str] = if load_balloon {
        &["virtio_mmio", "virtio_balloon"]
    } else {
        &["virtio_mmio"]
    };
    let ko = assets
        .cloud
        .modules
        .join("drivers/virtio/virtio_balloon.ko");
    let path = dir.path().join("guest.cpio");
    linux_guest_initramfs(&assets.busybox, &assets.cloud, modules, body)
        .and_then(|mut i| i.file("balloon/virtio_balloon.ko", &ko, 0o644).write(&path))
        .expect("build the guest initramfs");
    path
}

/// Runs `steps` (test-host shell, with `rss` the VMM's VmRSS in KiB) and
/// returns the test host's console. Fails with the VM's console and status
/// when the VM stopped early. The VM's console is also copied live to the
/// test host's (lines `vm| ...`), so that the tail a test-host timeout
/// shows says where the guest was.
fn run_in_host(load_balloon: bool, guest: &str, vm_args: &str, steps: &str) -> String {
    let host = host();
    let dir = Scratch::new("balloon");
    let initrd = guest_initrd(&host, &dir, load_balloon, guest);
    let kernel = host.assets().cloud.vmlinuz.clone();
    let script = format!(
        "rss() {{ awk '/^VmRSS/ {{print $2}}' /proc/$VM_PID/status; }}\n\
         start_vm --kernel /guest/vmlinuz --initrd /guest/initrd.cpio --cmdline '{CMDLINE}' --no-reboot {vm_args}\n\
         tail -f /tmp/vm.out | awk '{{print \"vm| \" $0; fflush()}}' & STREAM=$!\n\
         {steps}\n\
         kill $STREAM\n\
         finish_vm\n"
    );
    let run = host
        .run(
            &[("guest/vmlinuz", &kernel), ("guest/initrd.cpio", &initrd)],
            &script,
        )
        .expect("run the test host");
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    let (vm_console, status) = &vms[0];
    // Shown with --nocapture, and with the failure of any check below.
    eprintln!("VM console (status {status}):\n{vm_console}");
    let stopped = run
        .console
        .lines()
        .find(|l| l.contains("@@vm exited") || l.contains("@@timeout"));
    assert!(
        stopped.is_none() && *status == 0,
        "{}; pointsman's status {status}\n{}",
        stopped.unwrap_or("the VM failed"),
        run.console
    );
    run.console
}

fn value(console: &str, key: &str) -> i64 {
    linux::value(console, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number for @@{key}\n{console}"))
}

/// Guest shell: a /proc/vmstat counter, free memory in MiB, and a tmpfs
/// on /mnt as large as RAM (filled with `dd`: no swap, so its pages stay).
const GUEST_PRELUDE: &str = "\
vmstat() { awk -v k=$1 '$1 == k {print $2}' /proc/vmstat; }
memfree() { awk '/^MemFree/ {print int($2 / 1024)}' /proc/meminfo; }
mkdir -p /mnt && mount -t tmpfs -o size=100% tmpfs /mnt
fill() { dd if=/dev/zero of=/mnt/fill bs=1M count=$1 2>/dev/null; }";

/// Test-host shell: the VM's console line `@@KEY N` as N.
const HOST_PRELUDE: &str =
    "vm_value() { awk -v k=\"@@$1\" '$1 == k {print $2}' /tmp/vm.out | tr -d '\\r'; }";

/// Balloon pages (4 KiB) in a MiB.
const PAGES_PER_MIB: i64 = 256;

#[test]
fn inflating_returns_memory_and_deflating_on_oom_takes_it_back() {
    // 256 MiB guest, balloon target 128 MiB. The guest first touches all
    // but 24 MiB of its free memory (a tmpfs file, then deleted), so that
    // the balloon's pages are mostly ones the host backs; then it loads
    // the driver, which inflates. Then it writes 48 MiB more than it has
    // free: the driver deflates on OOM (1 MiB per OOM call), the other
    // ~70 MiB stay in the balloon so nothing is killed (`oom_kill` stays 0;
    // init, PID 1, is never the OOM killer's choice anyway, and an
    // oom_score_adj of -1000 there would pass to dd and turn a kill into a
    // panic). An 8 MiB file of random bytes written before inflating must
    // read back the same (the device dropped no page the guest still used).
    let guest = format!(
        r#"{GUEST_PRELUDE}
n=$(( $(memfree) - 24 )); fill $n; rm /mnt/fill
dd if=/dev/urandom of=/mnt/keep bs=1M count=8 2>/dev/null; md5sum /mnt/keep > /keep.md5
echo "@@touched-mib $n"
echo @@touched
read go
insmod /balloon/virtio_balloon.ko
i=0
while [ "$(vmstat balloon_inflate)" -lt 32768 ] && [ $i -lt 400 ]; do sleep 0.5; i=$((i + 1)); done
echo "@@inflated-pages $(vmstat balloon_inflate)"
echo @@inflated
read go
n=$(( $(memfree) + 48 )); echo "@@fill-mib $n"; fill $n
echo "@@filled-mib $(du -m /mnt/fill | cut -f1)"
echo "@@deflated-pages $(vmstat balloon_deflate)"
echo "@@oom-kills $(vmstat oom_kill)"
md5sum -c -s /keep.md5; echo "@@keep-changed $?"
echo @@deflated
read go
poweroff -f
"#
    );
    // The guest asks for its statistics every 5 s: wait for two.
    let steps = format!(
        "{HOST_PRELUDE}\n\
         wait_for @@touched 1 240\n\
         sleep 1; echo \"@@rss-touched $(rss)\"\n\
         send go\n\
         wait_for @@inflated 1 240\n\
         sleep 1; echo \"@@rss-inflated $(rss)\"\n\
         send go\n\
         wait_for @@deflated 1 240\n\
         echo \"@@rss-deflated $(rss)\"\n\
         i=0; while [ $(grep -c 'guest statistics' /tmp/vm.err) -lt 2 ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done\n\
         send go"
    );
    let console = run_in_host(
        false,
        &guest,
        "--memory 256M --balloon size=128M,deflate-on-oom=on,stats=on --verbose",
        &steps,
    );
    let touched_mib = value(&console, "touched-mib");
    let touched = value(&console, "rss-touched");
    let inflated = value(&console, "rss-inflated");
    let deflated = value(&console, "rss-deflated");
    let deflated_pages = value(&console, "deflated-pages");
    eprintln!(
        "guest touched {touched_mib} MiB; VmRSS KiB: touched {touched}, inflated {inflated}, \
         deflated {deflated}; deflated on OOM: {deflated_pages} pages"
    );
    assert!(
        touched_mib >= 100 && touched > touched_mib * MIB,
        "the guest touched most of its memory\n{console}"
    );
    assert_eq!(
        value(&console, "inflated-pages"),
        128 * PAGES_PER_MIB,
        "{console}"
    );
    assert!(
        touched - inflated > 96 * MIB,
        "RSS falls by most of the balloon (128 MiB): {touched} -> {inflated} KiB\n{console}"
    );
    assert_eq!(value(&console, "keep-changed"), 0, "{console}");
    assert_eq!(
        value(&console, "oom-kills"),
        0,
        "the balloon deflates instead\n{console}"
    );
    assert_eq!(
        value(&console, "filled-mib"),
        value(&console, "fill-mib"),
        "the whole file was written\n{console}"
    );
    assert!(
        deflated_pages >= 32 * PAGES_PER_MIB,
        "at least 32 MiB deflated on OOM: {deflated_pages} pages\n{console}"
    );
    assert!(
        deflated - inflated > 32 * MIB,
        "RSS rises as the guest uses deflated pages: {inflated} -> {deflated} KiB\n{console}"
    );
    let reports: Vec<&str> = console
        .lines()
        .filter(|l| l.contains("virtio-balloon: guest statistics:"))
        .collect();
    eprintln!(
        "{} statistics reports, the last: {:?}",
        reports.len(),
        reports.last()
    );
    assert!(
        reports.len() >= 2 && reports.iter().all(|r| r.contains("free-memory=")),
        "--verbose logs the guest's statistics, at start and every 5 s\n{console}"
    );
}

#[test]
fn free_page_reporting_returns_freed_memory() {
    // No target: the driver loads at boot with free page reporting. The
    // guest fills all but 24 MiB of its free memory and frees it; the
    // host's RSS must fall back by most of it without any inflation.
    let guest = format!(
        r#"{GUEST_PRELUDE}
n=$(( $(memfree) - 24 )); fill $n
echo "@@fill-mib $n"
echo @@filled
read go
rm /mnt/fill
echo @@freed
read go
echo "@@inflated-pages $(vmstat balloon_inflate)"
poweroff -f
"#
    );
    // Reporting waits ~2 s after pages free up, then works through them in
    // batches: poll the RSS until two thirds of the fill went back, for up
    // to a minute.
    let steps = format!(
        "{HOST_PRELUDE}\n\
         wait_for @@filled 1 240\n\
         sleep 1; full=$(rss); echo \"@@rss-filled $full\"\n\
         send go\n\
         wait_for @@freed 1 240\n\
         back=$(( $(vm_value fill-mib) * 1024 * 2 / 3 )); i=0\n\
         while [ $(rss) -gt $((full - back)) ] && [ $i -lt 120 ]; do sleep 0.5; i=$((i + 1)); done\n\
         sleep 1; echo \"@@rss-freed $(rss)\"\n\
         send go"
    );
    let console = run_in_host(
        true,
        &guest,
        "--memory 256M --balloon free-page-reporting=on",
        &steps,
    );
    let fill_mib = value(&console, "fill-mib");
    let filled = value(&console, "rss-filled");
    let freed = value(&console, "rss-freed");
    eprintln!("guest filled {fill_mib} MiB; VmRSS KiB: filled {filled}, freed {freed}");
    assert!(
        fill_mib >= 100 && filled > fill_mib * MIB,
        "the guest filled most of its memory\n{console}"
    );
    assert!(
        filled - freed > fill_mib * MIB / 2,
        "freed guest memory goes back to the host: {filled} -> {freed} KiB\n{console}"
    );
    assert_eq!(value(&console, "inflated-pages"), 0, "{console}");
}

#[test]
fn bad_balloon_options_are_refused() {
    require_kvm();
    for (args, expect) in [
        (
            &["--balloon", "size=12Q"][..],
            "invalid --balloon: invalid size",
        ),
        (&["--balloon", "stats=yes"], "expected on or off"),
        (&["--balloon", "colour=red"], "unknown key"),
        (&["--balloon", "size=1M,size=2M"], "given twice"),
        (
            &["--memory", "128M", "--balloon", "size=1G"],
            "more than the guest's",
        ),
    ] {
        let mut all = vec!["run"];
        all.extend_from_slice(args);
        let r = run(&all, b"");
        assert_eq!(r.status, EXIT_BAD_INPUT, "{args:?}: {r:?}");
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {}", r.stderr);
        assert!(
            lines[0].starts_with("pointsman: ") && lines[0].contains(expect),
            "{args:?}: {}",
            lines[0]
        );
        assert!(r.stdout.is_empty(), "the guest must not start");
    }
}
