//! Each entry path boots: PVH, the 64-bit ELF entry and the bzImage.

mod common;
use common::*;

fn demo_banner_then_power_off(image: &[u8], name: &str) {
    require_kvm();
    let dir = Scratch::new(name);
    let kernel = dir.file(name, image);
    let run = boot(&kernel, "demo", &["--memory", "64M", "--cpus", "2"]);
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert_eq!(
        run.lines(),
        vec!["Pointsman demo guest", "vcpus: 2", "memory: 63 MiB"],
        "{run:?}"
    );
}

#[test]
fn pvh_entry_boots() {
    demo_banner_then_power_off(guests::PVH, "pvh.elf");
}

#[test]
fn elf64_entry_boots() {
    demo_banner_then_power_off(guests::ELF64, "elf64.elf");
}

#[test]
fn bzimage_entry_boots() {
    demo_banner_then_power_off(guests::BZIMAGE, "bzImage");
}

#[test]
fn run_without_kernel_boots_the_demo() {
    require_kvm();
    let run = run(&["run"], b"");
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    assert_eq!(
        run.lines(),
        vec!["Pointsman demo guest", "vcpus: 1", "memory: 127 MiB"]
    );
    assert!(run.stderr.is_empty(), "the VMM printed: {}", run.stderr);
}

#[test]
fn initrd_is_loaded_for_each_protocol() {
    require_kvm();
    let dir = Scratch::new("initrd");
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3).to_le_bytes()[0]).collect();
    let sum = data.iter().fold(0u32, |s, b| s.wrapping_add(u32::from(*b)));
    let initrd = dir.file("initrd.img", &data);
    for (name, image) in [
        ("pvh", guests::PVH),
        ("elf64", guests::ELF64),
        ("bz", guests::BZIMAGE),
    ] {
        let kernel = dir.file(name, image);
        let run = boot(&kernel, "initrd", &["--initrd", initrd.to_str().unwrap()]);
        assert_eq!(run.status, EXIT_OK, "{name}: {run:?}");
        let line = run
            .lines()
            .into_iter()
            .find(|l| l.starts_with("initrd "))
            .unwrap_or_default()
            .to_owned();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 4, "{name}: {line:?}");
        let addr = u64::from_str_radix(fields[1], 16).unwrap();
        assert_eq!(addr % 4096, 0, "{name}: initrd page aligned");
        assert!(addr >= 0x100000, "{name}: initrd above the kernel");
        assert_eq!(u64::from_str_radix(fields[2], 16).unwrap(), 3000, "{name}");
        assert_eq!(u32::from_str_radix(fields[3], 16).unwrap(), sum, "{name}");
    }
}

#[test]
fn no_initrd_is_reported_as_none() {
    require_kvm();
    let dir = Scratch::new("noinitrd");
    let kernel = dir.file("pvh", guests::PVH);
    let run = boot(&kernel, "initrd", &[]);
    assert_eq!(run.status, EXIT_OK);
    assert!(run.lines().contains(&"initrd none"), "{run:?}");
}
