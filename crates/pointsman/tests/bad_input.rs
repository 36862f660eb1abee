//! Bad input gets one clear line on stderr and exit status 2, never a
//! panic.

mod common;
use common::*;

fn assert_refused(run: &Run, expect: &str) {
    assert_eq!(run.status, EXIT_BAD_INPUT, "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got: {}", run.stderr);
    assert!(lines[0].starts_with("pointsman: "), "{}", lines[0]);
    assert!(
        lines[0].to_lowercase().contains(&expect.to_lowercase()),
        "expected {expect:?} in {:?}",
        lines[0]
    );
    assert!(
        run.stdout.is_empty(),
        "the guest must not start: {}",
        run.stdout
    );
}

fn run_kernel(path: &str, extra: &[&str]) -> Run {
    let mut args = vec!["run", "--kernel", path];
    args.extend_from_slice(extra);
    run(&args, b"")
}

#[test]
fn missing_kernel() {
    require_kvm();
    assert_refused(
        &run_kernel("/nonexistent/vmlinux", &[]),
        "cannot open the kernel",
    );
}

#[test]
fn unreadable_kernel() {
    require_kvm();
    let dir = Scratch::new("unreadable");
    // A directory opens but cannot be read, even by root.
    assert_refused(
        &run_kernel(dir.path().to_str().unwrap(), &[]),
        "cannot read the kernel",
    );
}

#[test]
fn missing_initrd() {
    require_kvm();
    let dir = Scratch::new("noinitrd");
    let k = dir.file("k", guests::PVH);
    let run = run_kernel(k.to_str().unwrap(), &["--initrd", "/nonexistent/initrd"]);
    assert_refused(&run, "cannot open the initrd");
}

#[test]
fn unreadable_initrd() {
    require_kvm();
    let dir = Scratch::new("unreadable-initrd");
    let k = dir.file("k", guests::PVH);
    let run = run_kernel(
        k.to_str().unwrap(),
        &["--initrd", dir.path().to_str().unwrap()],
    );
    assert_refused(&run, "cannot read the initrd");
}

#[test]
fn neither_elf_nor_bzimage() {
    require_kvm();
    let dir = Scratch::new("garbage");
    for (name, bytes) in [
        ("empty", vec![]),
        ("text", b"#!/bin/sh\necho hi\n".repeat(100)),
    ] {
        let k = dir.file(name, &bytes);
        assert_refused(&run_kernel(k.to_str().unwrap(), &[]), "neither an ELF");
    }
}

#[test]
fn elf_for_32_bit_or_another_machine() {
    require_kvm();
    let dir = Scratch::new("elfclass");
    let mut elf32 = guests::ELF64.to_vec();
    elf32[4] = 1; // ELFCLASS32
    let k = dir.file("elf32", &elf32);
    assert_refused(&run_kernel(k.to_str().unwrap(), &[]), "32-bit");
    let mut arm = guests::ELF64.to_vec();
    arm[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    let k = dir.file("arm", &arm);
    assert_refused(&run_kernel(k.to_str().unwrap(), &[]), "machine type 183");
}

#[test]
fn kernel_that_does_not_fit() {
    require_kvm();
    let dir = Scratch::new("bigkernel");
    // A bzImage that asks for 256 MiB to decompress into.
    let mut bz = guests::BZIMAGE.to_vec();
    bz[0x260..0x264].copy_from_slice(&(256u32 << 20).to_le_bytes());
    let k = dir.file("bz", &bz);
    assert_refused(
        &run_kernel(k.to_str().unwrap(), &["--memory", "64M"]),
        "does not fit in guest memory",
    );
}

#[test]
fn initrd_that_does_not_fit() {
    require_kvm();
    let dir = Scratch::new("biginitrd");
    let k = dir.file("k", guests::PVH);
    let initrd = dir.file("initrd", &vec![0u8; 40 << 20]);
    let run = run_kernel(
        k.to_str().unwrap(),
        &["--memory", "32M", "--initrd", initrd.to_str().unwrap()],
    );
    assert_refused(&run, "initrd");
}

#[test]
fn bad_memory_sizes() {
    require_kvm();
    assert_refused(&run(&["run", "--memory", "0"], b""), "too small");
    assert_refused(
        &run(&["run", "--memory", "12Q"], b""),
        "invalid memory size",
    );
    assert_refused(
        &run(&["run", "--memory", "1000T"], b""),
        "more than this host can map",
    );
    assert_refused(
        &run(&["run", "--memory", "1G,thp=maybe"], b""),
        "invalid --memory",
    );
    assert_refused(
        &run(&["run", "--memory", "1G,hugetlb=on"], b""),
        "invalid --memory",
    );
}

#[test]
fn bad_cpu_counts() {
    require_kvm();
    assert_refused(
        &run(&["run", "--cpus", "0"], b""),
        "0 vCPUs is out of range",
    );
    assert_refused(
        &run(&["run", "--cpus", "100000"], b""),
        "100000 vCPUs is out of range",
    );
}

#[test]
fn unknown_option_is_a_usage_error() {
    let run = run(&["run", "--frobnicate"], b"");
    assert_eq!(run.status, EXIT_BAD_INPUT, "{run:?}");
    assert!(!run.stderr.contains("panicked"));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn no_kvm_device() {
    if !is_root() {
        eprintln!("needs root for a private mount namespace; CI runs it as root");
        return;
    }
    // A private /dev without kvm in it.
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount -t tmpfs none /dev && exec {} run",
            env!("CARGO_BIN_EXE_pointsman")
        ))
        .output()
        .expect("run unshare");
    let run = Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_refused(&run, "/dev/kvm does not exist");
}

#[test]
fn no_permission_on_kvm() {
    if !is_root() {
        eprintln!("needs root to drop to another user; CI runs it as root");
        return;
    }
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_pointsman"))
        .arg("run")
        .output()
        .expect("run setpriv");
    let run = Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_refused(&run, "no permission to open /dev/kvm");
}

/// `--disk` options for `n` disks over one image in `dir`.
fn disks(dir: &Scratch, n: usize) -> Vec<String> {
    let image = dir.file("disk.img", &[0u8; 4096]);
    (0..n)
        .flat_map(|_| {
            [
                "--disk".to_owned(),
                format!("path={},readonly=on", image.display()),
            ]
        })
        .collect()
}

fn run_demo(extra: &[String]) -> Run {
    let mut args = vec!["run"];
    args.extend(extra.iter().map(String::as_str));
    run(&args, b"")
}

#[test]
fn more_devices_than_a_transport_has_room_for() {
    require_kvm();
    let dir = Scratch::new("manydisks");
    // virtio-mmio has 17 interrupt lines for devices; PCI bus 0 has 31
    // slots, so 18 disks fit there.
    let eighteen = disks(&dir, 18);
    assert_refused(&run_demo(&eighteen), "room for 17 virtio devices");
    let mut on_pci = eighteen.clone();
    on_pci.push("--pci".into());
    let run = run_demo(&on_pci);
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    let mut too_many = disks(&dir, 32);
    too_many.push("--pci".into());
    assert_refused(&run_demo(&too_many), "room for 31 virtio devices");
}

#[test]
fn two_disks_with_one_id_are_refused() {
    require_kvm();
    let dir = Scratch::new("diskids");
    let image = dir.file("disk.img", &[0u8; 4096]);
    let disk = |extra: &str| format!("path={},readonly=on{extra}", image.display());
    let (root, same, second) = (disk(",id=root"), disk(",id=root"), disk(",id=drive0"));
    let args = ["--disk".to_owned(), root, "--disk".to_owned(), same];
    assert_refused(&run_demo(&args), "--disk: two devices have the id root");
    // The first disk without an id is drive0.
    let args = ["--disk".to_owned(), disk(""), "--disk".to_owned(), second];
    assert_refused(&run_demo(&args), "two devices have the id drive0");
}
