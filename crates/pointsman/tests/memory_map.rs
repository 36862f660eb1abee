//! The memory map a guest receives matches --memory, above 4 GiB too.

mod common;
use common::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn memmap(image: &[u8], name: &str, memory: &str) -> Vec<(u64, u64, u32)> {
    require_kvm();
    let dir = Scratch::new(name);
    let kernel = dir.file(name, image);
    let run = boot(&kernel, "memmap", &["--memory", memory]);
    assert_eq!(run.status, EXIT_OK, "{run:?}");
    let lines = run.lines();
    let entries: Vec<(u64, u64, u32)> = lines
        .iter()
        .filter(|l| l.starts_with("mem "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                u64::from_str_radix(f[1], 16).unwrap(),
                u64::from_str_radix(f[2], 16).unwrap(),
                f[3].parse().unwrap(),
            )
        })
        .collect();
    assert!(
        lines.contains(&format!("memmap {}", entries.len()).as_str()),
        "{run:?}"
    );
    entries
}

fn ram_total(entries: &[(u64, u64, u32)]) -> u64 {
    entries.iter().filter(|e| e.2 == 1).map(|e| e.1).sum()
}

/// The BIOS area between the EBDA and 1 MiB is not RAM.
const BIOS_HOLE: u64 = 0x10_0000 - 0x9_fc00;

#[test]
fn pvh_memmap_matches_small_memory() {
    let e = memmap(guests::PVH, "pvh", "256M");
    assert_eq!(e, vec![(0, 0x9_fc00, 1), (MIB, 255 * MIB, 1)]);
}

#[test]
fn pvh_memmap_goes_above_4g() {
    let e = memmap(guests::PVH, "pvh", "5G");
    assert_eq!(ram_total(&e), 5 * GIB - BIOS_HOLE);
    assert_eq!(e.last().copied(), Some((4 * GIB, 2 * GIB, 1)));
    assert!(
        e.iter().all(|&(a, s, _)| a + s <= 3 * GIB || a >= 4 * GIB),
        "nothing in the hole: {e:x?}"
    );
}

#[test]
fn e820_from_elf64_goes_above_4g() {
    let e = memmap(guests::ELF64, "elf64", "6G");
    assert_eq!(ram_total(&e), 6 * GIB - BIOS_HOLE);
    assert_eq!(e.last().copied(), Some((4 * GIB, 3 * GIB, 1)));
}

#[test]
fn e820_from_bzimage_matches_memory() {
    let e = memmap(guests::BZIMAGE, "bz", "3G");
    assert_eq!(ram_total(&e), 3 * GIB - BIOS_HOLE);
    assert_eq!(e.len(), 2);
}

#[test]
fn huge_page_backed_memory_has_the_same_map() {
    let e = memmap(guests::PVH, "pvh-thp", "5G,thp=on");
    assert_eq!(ram_total(&e), 5 * GIB - BIOS_HOLE);
    assert_eq!(e.last().copied(), Some((4 * GIB, 2 * GIB, 1)));
}
