//! Power-off, reset (in place, and under --no-reboot) and triple fault.

mod common;
use common::*;

fn kernel(dir: &Scratch, image: &[u8]) -> String {
    dir.file("kernel", image).to_str().unwrap().to_owned()
}

#[test]
fn acpi_power_off_exits_zero() {
    require_kvm();
    let dir = Scratch::new("poweroff");
    let run = boot(
        std::path::Path::new(&kernel(&dir, guests::PVH)),
        "exit",
        &[],
    );
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert!(run.stdout.is_empty());
}

#[test]
fn i8042_reset_restarts_the_guest_in_place() {
    require_kvm();
    let dir = Scratch::new("reset");
    let k = kernel(&dir, guests::ELF64);
    let mut session = Session::start(&["run", "--kernel", &k, "--cmdline", "echo"]);
    session.wait_for("ready");
    session.type_text("R");
    session.wait_for("ready");
    session.type_text("A");
    session.wait_for("ready");
    session.type_text("P");
    let run = session.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert_eq!(run.stdout.matches("ready").count(), 3, "{run:?}");
}

#[test]
fn i8042_reset_ends_the_run_under_no_reboot() {
    require_kvm();
    let dir = Scratch::new("noreboot");
    let k = kernel(&dir, guests::PVH);
    let run = run(
        &["run", "--kernel", &k, "--cmdline", "reset", "--no-reboot"],
        b"",
    );
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert_eq!(run.lines(), vec!["resetting"]);
}

#[test]
fn acpi_reset_ends_the_run_under_no_reboot() {
    require_kvm();
    let dir = Scratch::new("acpireset");
    let k = kernel(&dir, guests::BZIMAGE);
    let run = run(
        &[
            "run",
            "--kernel",
            &k,
            "--cmdline",
            "acpireset",
            "--no-reboot",
        ],
        b"",
    );
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert_eq!(run.lines(), vec!["resetting"]);
}

/// A jump to the reset vector from real mode, as Linux's BIOS reboot
/// makes: the code there resets the machine (before it, the vCPU ran
/// zeros for ever).
#[test]
fn reset_vector_ends_the_run_under_no_reboot() {
    require_kvm();
    let dir = Scratch::new("biosreset");
    let k = kernel(&dir, guests::PVH);
    let run = run(
        &[
            "run",
            "--kernel",
            &k,
            "--cmdline",
            "biosreset",
            "--no-reboot",
        ],
        b"",
    );
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert_eq!(run.lines(), vec!["resetting"]);
}

#[test]
fn reset_vector_restarts_the_guest_in_place() {
    require_kvm();
    let dir = Scratch::new("biosreset-again");
    let k = kernel(&dir, guests::PVH);
    let mut session = Session::start(&["run", "--kernel", &k, "--cmdline", "echo"]);
    session.wait_for("ready");
    session.type_text("B");
    session.wait_for("ready");
    session.type_text("B");
    session.wait_for("ready");
    session.type_text("P");
    let run = session.finish();
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert_eq!(run.stdout.matches("ready").count(), 3, "{run:?}");
}

#[test]
fn triple_fault_is_an_error_with_its_own_status() {
    require_kvm();
    let dir = Scratch::new("triple");
    for image in [guests::PVH, guests::ELF64] {
        let k = kernel(&dir, image);
        let run = run(&["run", "--kernel", &k, "--cmdline", "triplefault"], b"");
        assert_eq!(run.status, EXIT_TRIPLE_FAULT, "{run:?}");
        assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
        assert!(run.stderr.contains("triple-fault"), "{}", run.stderr);
    }
}

#[test]
fn triple_fault_under_verbose_prints_registers() {
    require_kvm();
    let dir = Scratch::new("triple-v");
    let k = kernel(&dir, guests::PVH);
    let run = run(
        &[
            "run",
            "--kernel",
            &k,
            "--cmdline",
            "triplefault",
            "--verbose",
        ],
        b"",
    );
    assert_eq!(run.status, EXIT_TRIPLE_FAULT, "{run:?}");
    assert!(run.stderr.contains("rip="), "{}", run.stderr);
}

#[test]
fn emulation_failure_is_an_error_with_its_own_status_and_registers() {
    require_kvm();
    let dir = Scratch::new("wildjump");
    for image in [guests::PVH, guests::ELF64] {
        let k = kernel(&dir, image);
        let run = run(
            &["run", "--kernel", &k, "--cmdline", "wildjump", "--verbose"],
            b"",
        );
        assert_eq!(run.status, EXIT_EMULATION_FAILURE, "{run:?}");
        assert!(run.stderr.contains("could not emulate"), "{}", run.stderr);
        assert!(
            run.stderr.contains("rip=0x00000000d0000000"),
            "{}",
            run.stderr
        );
        let quiet = common::run(&["run", "--kernel", &k, "--cmdline", "wildjump"], b"");
        assert_eq!(quiet.status, EXIT_EMULATION_FAILURE, "{quiet:?}");
        assert_eq!(quiet.stderr.lines().count(), 1, "{}", quiet.stderr);
    }
}
