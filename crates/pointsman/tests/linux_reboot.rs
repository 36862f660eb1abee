//! A Linux guest's reboot or panic restarts it in place, or ends the run
//! under `--no-reboot`, whichever reboot method its command line picks and
//! when it picks none, as a distribution's command line does. Debian's
//! kernels boot inside the test host (see the testhost crate).
//!
//! With no `reboot=` option Linux reboots through EFI on a machine with
//! hardware-reduced ACPI, finds no EFI, and falls back to the BIOS: it
//! drops to real mode and jumps to the reset vector. `reboot=t` is a
//! deliberate triple fault, which ends the run with its own status.

mod common;

use std::path::Path;

use common::linux::{guest_initrd, test_host as host};
use common::Scratch;
use testhost::{HostRun, KernelPackage, TestHost};

const EXIT_TRIPLE_FAULT: i32 = 3;
const EXIT_GUEST_CRASH: i32 = 5;

/// What a distribution passes: no `reboot=`, no `quiet`. `panic=-1`
/// restarts the guest at once on a panic.
const DISTRO_CMDLINE: &str = "console=ttyS0 panic=-1";

/// An init that says it booted and runs whatever line it is sent.
const OBEY: &str = "echo @@booted\nread -r command\neval \"$command\"";

const REBOOT: &str = "reboot -f";
const PANIC: &str = "echo c > /proc/sysrq-trigger";

/// Longest a guest may take to end its run once told to reboot or panic.
const END_SECONDS: u32 = 120;

/// One `pointsman run` of the OBEY guest: `commands` are sent one per
/// boot, each after the guest says it booted once more.
struct VmCase {
    cmdline: String,
    no_reboot: bool,
    commands: Vec<&'static str>,
}

impl VmCase {
    fn script(&self) -> String {
        let mut script = format!(
            "start_vm --kernel /guest/vmlinuz --initrd /guest/obey.cpio --cmdline '{}' --memory 256M{}\n",
            self.cmdline,
            if self.no_reboot { " --no-reboot" } else { "" }
        );
        for (boot, command) in self.commands.iter().enumerate() {
            script.push_str(&format!(
                "wait_for @@booted {} 240 && send '{command}'\n",
                boot + 1
            ));
        }
        script.push_str(&format!("finish_vm_within {END_SECONDS}\n"));
        script
    }

    fn describe(&self) -> String {
        format!(
            "{:?}{} after {:?}",
            self.cmdline,
            if self.no_reboot { " --no-reboot" } else { "" },
            self.commands
        )
    }
}

/// For `cmdline`: a reboot and then a panic restart the guest in place
/// (and a power-off ends it), and under `--no-reboot` either ends the run.
fn restart_cases(cmdline: &str) -> Vec<VmCase> {
    let case = |no_reboot, commands: &[&'static str]| VmCase {
        cmdline: cmdline.to_owned(),
        no_reboot,
        commands: commands.to_vec(),
    };
    vec![
        case(false, &[REBOOT, PANIC, "poweroff -f"]),
        case(true, &[REBOOT]),
        case(true, &[PANIC]),
    ]
}

/// Runs `cases` in one test host; returns each case's console and status.
fn run_cases(
    host: &TestHost,
    kernel: &KernelPackage,
    modules: &[&str],
    cases: &[VmCase],
) -> (HostRun, Vec<(String, i32)>) {
    let dir = Scratch::new("linux-reboot");
    let initrd = guest_initrd(host, &dir, "obey.cpio", modules, OBEY);
    let script: String = cases.iter().map(VmCase::script).collect();
    let run = host
        .run(
            &[
                ("guest/vmlinuz", &kernel.vmlinuz),
                ("guest/obey.cpio", Path::new(&initrd)),
            ],
            &script,
        )
        .expect("run the test host");
    let vms = run.vm_runs();
    assert_eq!(vms.len(), cases.len(), "{}", run.console_tail(60));
    (run, vms)
}

/// Checks that each case ended with `status` after booting as often as it
/// was told to restart, and never hung.
fn check_restarts(cases: &[VmCase], vms: &[(String, i32)], run: &HostRun) {
    assert!(
        !run.console.contains("@@vm-hung"),
        "a VMM hung: {}",
        run.console_tail(60)
    );
    for (case, (console, status)) in cases.iter().zip(vms) {
        let boots = if case.no_reboot {
            1
        } else {
            case.commands.len()
        };
        assert_eq!(*status, 0, "{}:\n{console}", case.describe());
        assert_eq!(
            console.matches("@@booted").count(),
            boots,
            "{}:\n{console}",
            case.describe()
        );
    }
}

#[test]
fn reboot_and_panic_restart_or_end_with_every_reboot_method() {
    let host = host();
    let kernel = host.assets().cloud.clone();
    // The distribution's line as it is; the others quiet, to save the
    // test host's time (each console byte costs a nested exit).
    let mut cases = restart_cases(DISTRO_CMDLINE);
    for method in ["reboot=k", "reboot=a", "reboot=b"] {
        cases.extend(restart_cases(&format!("{DISTRO_CMDLINE} quiet {method}")));
    }
    let (run, vms) = run_cases(&host, &kernel, &[], &cases);
    check_restarts(&cases, &vms, &run);
}

#[test]
fn generic_kernel_reboot_and_panic_restart_or_end() {
    let host = host();
    let kernel = host
        .assets()
        .generic_kernel()
        .expect("fetch linux-image-amd64");
    let cases = restart_cases(DISTRO_CMDLINE);
    let (run, vms) = run_cases(&host, &kernel, &[], &cases);
    check_restarts(&cases, &vms, &run);
}

#[test]
fn reboot_t_ends_the_run_with_the_triple_fault_status() {
    let host = host().triple_faults_expected();
    let kernel = host.assets().cloud.clone();
    let cmdline = format!("{DISTRO_CMDLINE} quiet reboot=t");
    let cases: Vec<VmCase> = [
        (false, REBOOT),
        (true, REBOOT),
        (false, PANIC),
        (true, PANIC),
    ]
    .into_iter()
    .map(|(no_reboot, command)| VmCase {
        cmdline: cmdline.clone(),
        no_reboot,
        commands: vec![command],
    })
    .collect();
    let (run, vms) = run_cases(&host, &kernel, &[], &cases);
    assert!(
        !run.console.contains("@@vm-hung"),
        "{}",
        run.console_tail(60)
    );
    for (case, (console, status)) in cases.iter().zip(&vms) {
        assert_eq!(
            *status,
            EXIT_TRIPLE_FAULT,
            "{}:\n{console}",
            case.describe()
        );
        assert_eq!(console.matches("@@booted").count(), 1, "{console}");
    }
}

/// With the guest's pvpanic driver, a panic is reported as a crash, with
/// its own status, whether or not the guest would restart.
#[test]
fn pvpanic_reports_a_panic_under_the_distribution_command_line() {
    let host = host();
    let kernel = host.assets().cloud.clone();
    let cases: Vec<VmCase> = [false, true]
        .into_iter()
        .map(|no_reboot| VmCase {
            cmdline: DISTRO_CMDLINE.to_owned(),
            no_reboot,
            commands: vec![PANIC],
        })
        .collect();
    let (run, vms) = run_cases(&host, &kernel, &["pvpanic-mmio"], &cases);
    assert!(
        !run.console.contains("@@vm-hung"),
        "{}",
        run.console_tail(60)
    );
    for (case, (console, status)) in cases.iter().zip(&vms) {
        assert_eq!(*status, EXIT_GUEST_CRASH, "{}:\n{console}", case.describe());
        assert_eq!(console.matches("@@booted").count(), 1, "{console}");
    }
}
