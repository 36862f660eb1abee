//! Every vCPU comes up, through ACPI/MP tables and INIT/SIPI.

mod common;
use common::*;

fn check_cpus(image: &[u8], name: &str, cpus: u32) {
    require_kvm();
    let dir = Scratch::new(name);
    let kernel = dir.file(name, image);
    let n = cpus.to_string();
    let run = boot(&kernel, "smp", &["--cpus", &n]);
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    let lines = run.lines();
    assert!(
        lines.contains(&format!("madt cpus {cpus}").as_str()),
        "{run:?}"
    );
    assert!(
        lines.contains(&format!("mptable cpus {cpus}").as_str()),
        "{run:?}"
    );
    let mut ids: Vec<(u32, u32)> = lines
        .iter()
        .filter(|l| l.starts_with("cpu ") && l.ends_with(" up"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                u32::from_str_radix(f[1], 16).unwrap(),
                u32::from_str_radix(f[2], 16).unwrap(),
            )
        })
        .collect();
    ids.sort();
    let expected: Vec<(u32, u32)> = (0..cpus).map(|i| (i, i)).collect();
    assert_eq!(
        ids, expected,
        "each vCPU reports its own APIC ID once: {run:?}"
    );
    assert!(
        lines.contains(&format!("smp ok {cpus}").as_str()),
        "{run:?}"
    );
}

#[test]
fn four_vcpus_each_report_their_apic_id() {
    check_cpus(guests::PVH, "pvh", 4);
}

#[test]
fn smp_from_long_mode() {
    check_cpus(guests::ELF64, "elf64", 3);
}

#[test]
fn single_vcpu() {
    check_cpus(guests::BZIMAGE, "bz", 1);
}
