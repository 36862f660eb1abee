//! Unmodified Debian kernels boot under Pointsman, inside the test host
//! (QEMU TCG with nested SVM: see the testhost crate).

mod common;

use std::path::Path;

use common::linux::{guest_initrd, test_host as host, value, CMDLINE};
use common::Scratch;
use testhost::{qemu_microvm_args, HostRun, KernelPackage, TestHost};

fn run(host: &TestHost, files: &[(&str, &Path)], script: &str) -> HostRun {
    let run = host.run(files, script).expect("run the test host");
    assert_eq!(
        run.script_status,
        Some(0),
        "test script failed:\n{}",
        run.console
    );
    run
}

/// `@@key value` lines a guest printed.
fn number(console: &str, key: &str) -> u64 {
    value(console, key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no number for @@{key} in:\n{console}"))
}

const REPORT: &str = r#"
echo "@@init"
echo "@@cpus $(grep -c ^processor /proc/cpuinfo)"
echo "@@online $(cat /sys/devices/system/cpu/online)"
echo "@@memtotal $(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
echo "@@clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
echo "@@tsc-deadline $(grep -c 'flags.* tsc_deadline_timer' /proc/cpuinfo)"
echo "@@model $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2-)"
echo "@@epoch $(date +%s)"
t0=$(date +%s); sleep 2; t1=$(date +%s)
echo "@@slept $((t1 - t0))"
echo "@@serial-line $(grep ttyS0 /proc/interrupts)"
echo "@@serial-irqs $(awk '/ttyS0/ {n = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) n += $i; print n}' /proc/interrupts)"
poweroff -f
"#;

#[test]
fn cloud_kernel_boots_with_1_2_4_cpus_and_memory_across_4g() {
    let host = host();
    let dir = Scratch::new("linux-report");
    let initrd = guest_initrd(&host, &dir, "report.cpio", &[], REPORT);
    let kernel = host.assets().cloud.vmlinuz.clone();
    let shapes = [(1u64, 128u64), (2, 3072), (4, 6144)];
    let mut script =
        "echo \"@@host-model $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2-)\"\n".to_owned();
    for (cpus, mib) in shapes {
        script.push_str(&format!(
            "echo \"@@host-epoch $(date +%s)\"\n\
             run_vm --kernel /guest/vmlinuz --initrd /guest/report.cpio --cmdline '{CMDLINE}' --cpus {cpus} --memory {mib}M\n"
        ));
    }
    let run = run(
        &host,
        &[("guest/vmlinuz", &kernel), ("guest/report.cpio", &initrd)],
        &script,
    );
    let vms = run.vm_runs();
    assert_eq!(vms.len(), shapes.len(), "{}", run.console);
    let host_epochs: Vec<u64> = run
        .console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("@@host-epoch "))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let host_model = value(&run.console, "host-model")
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| panic!("no CPU model name in the test host:\n{}", run.console));
    for (((cpus, mib), (console, status)), host_epoch) in shapes.iter().zip(&vms).zip(&host_epochs)
    {
        assert_eq!(
            *status, 0,
            "power-off ends the VM with status 0:\n{console}"
        );
        assert!(console.contains("@@init"), "{console}");
        assert_eq!(number(console, "cpus"), *cpus, "{console}");
        let online = if *cpus == 1 {
            "0".to_owned()
        } else {
            format!("0-{}", cpus - 1)
        };
        assert_eq!(value(console, "online"), Some(online.as_str()), "{console}");
        // MemTotal is RAM less what the kernel keeps for itself.
        let memtotal_mib = number(console, "memtotal") / 1024;
        assert!(
            memtotal_mib <= *mib,
            "{memtotal_mib} MiB of {mib}:\n{console}"
        );
        assert!(
            memtotal_mib + 48 + mib / 20 >= *mib,
            "{memtotal_mib} MiB of {mib}:\n{console}"
        );
        assert_eq!(
            value(console, "clocksource"),
            Some("kvm-clock"),
            "{console}"
        );
        // KVM leaves the brand string out; Pointsman passes the host's on.
        assert_eq!(
            value(console, "model"),
            Some(host_model),
            "the guest's CPU has the host's name:\n{console}"
        );
        assert_eq!(
            number(console, "tsc-deadline"),
            *cpus,
            "every vCPU's LAPIC timer has TSC-deadline mode:\n{console}"
        );
        let slept = number(console, "slept");
        assert!(
            (2..=3).contains(&slept),
            "sleep 2 took {slept} s:\n{console}"
        );
        let epoch = number(console, "epoch");
        assert!(
            epoch.abs_diff(*host_epoch) < 120,
            "guest clock {epoch} vs host {host_epoch}"
        );
        assert!(
            number(console, "serial-irqs") > 0,
            "ttyS0 runs on interrupts:\n{console}"
        );
    }
}

#[test]
fn interactive_shell_through_stdin() {
    let host = host();
    let dir = Scratch::new("linux-shell");
    let initrd = guest_initrd(
        &host,
        &dir,
        "shell.cpio",
        &[],
        "echo @@shell-ready\nexec sh",
    );
    let kernel = host.assets().cloud.vmlinuz.clone();
    let script = format!(
        "start_vm --kernel /guest/vmlinuz --initrd /guest/shell.cpio --cmdline '{CMDLINE}'\n\
         wait_for @@shell-ready\n\
         send 'echo answer-$((6 * 7))'\n\
         wait_for answer-42\n\
         send 'poweroff -f'\n\
         finish_vm\n"
    );
    let run = run(
        &host,
        &[("guest/vmlinuz", &kernel), ("guest/shell.cpio", &initrd)],
        &script,
    );
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    let (console, status) = &vms[0];
    assert_eq!(*status, 0, "{console}");
    assert!(
        console.contains("answer-42"),
        "the shell ran the command:\n{console}"
    );
}

/// An init that waits (at most 20 s) for the keyboard to be probed, then
/// reports what Linux found of the i8042 and powers off.
const KEYBOARD: &str = r#"
n=0
while ! grep -q keyboard /proc/bus/input/devices && [ $n -lt 20 ]; do
  sleep 1; n=$((n + 1))
done
echo "@@irq1 $(grep -m1 i8042 /proc/interrupts | tr -s ' ')"
dmesg | grep -i -e i8042 -e serio -e atkbd -e 'input:' | sed 's/^/@@kbd /'
poweroff -f
"#;

/// Linux finds the i8042 through ACPI (`PNP0303`), takes IRQ 1 for it,
/// probes the AT keyboard behind it (which runs on that interrupt: each
/// ACK arrives through it) and still powers off as before.
#[test]
fn cloud_kernel_finds_and_probes_the_i8042_keyboard() {
    let host = host();
    let dir = Scratch::new("linux-keyboard");
    let initrd = guest_initrd(&host, &dir, "keyboard.cpio", &[], KEYBOARD);
    let kernel = host.assets().cloud.vmlinuz.clone();
    let script = format!(
        "run_vm --kernel /guest/vmlinuz --initrd /guest/keyboard.cpio --cmdline '{CMDLINE}'\n"
    );
    let run = run(
        &host,
        &[("guest/vmlinuz", &kernel), ("guest/keyboard.cpio", &initrd)],
        &script,
    );
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    let (console, status) = &vms[0];
    assert_eq!(
        *status, 0,
        "power-off ends the VM with status 0:\n{console}"
    );

    // "<irq>: <count> IO-APIC 1-edge i8042": IOAPIC pin 1, under the
    // number Linux gives it (no legacy PIC in hardware-reduced ACPI, so
    // not necessarily 1).
    let irq1: Vec<&str> = value(console, "irq1")
        .unwrap_or_else(|| panic!("no @@irq1 line:\n{console}"))
        .split_whitespace()
        .collect();
    assert_eq!(irq1.last(), Some(&"i8042"), "{console}");
    assert!(irq1.contains(&"1-edge"), "on IOAPIC pin 1:\n{console}");
    let linux_irq = irq1
        .first()
        .and_then(|n| n.strip_suffix(':'))
        .unwrap_or("?");
    let count: u64 = irq1.get(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    assert!(
        count > 0,
        "the keyboard's replies came through IRQ 1:\n{console}"
    );

    let dmesg: Vec<&str> = console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("@@kbd "))
        .collect();
    let has = |text: &str| dmesg.iter().any(|l| l.contains(text));
    let ports = format!("at 0x60,0x64 irq {linux_irq}");
    assert!(
        has(&format!("PNP: PS/2 Controller [PNP0303:PS2K] {ports}")),
        "{console}"
    );
    assert!(has(&format!("serio: i8042 KBD port {ports}")), "{console}");
    assert!(has("input: AT Translated Set 2 keyboard"), "{console}");
    for complaint in ["Keylock", "timeout", "Can't", "Unable", "failed", "Failed"] {
        assert!(!has(complaint), "{complaint}:\n{console}");
    }
}

/// An init that says which kernel it runs on and powers off.
const HELLO: &str = "echo \"@@hello $(uname -r)\"\npoweroff -f";

fn boots_to_init(kernel: &KernelPackage, name: &str) {
    let host = host();
    let dir = Scratch::new(name);
    let initrd = guest_initrd(&host, &dir, "hello.cpio", &[], HELLO);
    let script = format!(
        "run_vm --kernel /guest/vmlinuz --initrd /guest/hello.cpio --cmdline '{CMDLINE}'\n"
    );
    let run = run(
        &host,
        &[
            ("guest/vmlinuz", &kernel.vmlinuz),
            ("guest/hello.cpio", &initrd),
        ],
        &script,
    );
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    assert_eq!(vms[0].1, 0, "{}", vms[0].0);
    assert_eq!(
        value(&vms[0].0, "hello"),
        Some(kernel.version.as_str()),
        "{}",
        vms[0].0
    );
}

#[test]
fn debian_generic_kernel_boots() {
    let host = host();
    let generic = host
        .assets()
        .generic_kernel()
        .expect("fetch linux-image-amd64");
    drop(host);
    boots_to_init(&generic, "linux-generic");
}

/// QEMU's microvm, run inside the test host, boots the guest the other
/// tests give Pointsman: the contrast the benchmarks measure against.
#[test]
fn qemu_boots_the_same_guest() {
    let host = host().with_qemu();
    let dir = Scratch::new("linux-qemu");
    let initrd = guest_initrd(&host, &dir, "hello.cpio", &[], HELLO);
    let kernel = host.assets().cloud.clone();
    let args = qemu_microvm_args("/guest/vmlinuz", "/guest/hello.cpio", CMDLINE, 256);
    let run = run(
        &host,
        &[
            ("guest/vmlinuz", &kernel.vmlinuz),
            ("guest/hello.cpio", &initrd),
        ],
        &format!("run_qemu {args}\n"),
    );
    let vms = run.vm_runs();
    assert_eq!(vms.len(), 1, "{}", run.console);
    assert_eq!(vms[0].1, 0, "{}", run.console);
    assert_eq!(
        value(&vms[0].0, "hello"),
        Some(kernel.version.as_str()),
        "{}",
        run.console
    );
}
