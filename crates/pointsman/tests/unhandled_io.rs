//! Accesses where no device lives do not stop the VMM.

mod common;
use common::*;

#[test]
fn pokes_at_nothing_read_all_ones_and_the_guest_goes_on() {
    require_kvm();
    let dir = Scratch::new("poke");
    for (name, image) in [("pvh", guests::PVH), ("elf64", guests::ELF64)] {
        let k = dir.file(name, image);
        let run = boot(&k, "poke", &[]);
        assert_eq!(run.status, EXIT_OK, "{name}: {run:?}");
        let lines = run.lines();
        assert!(lines.contains(&"pio-read ff"), "{name}: {run:?}");
        assert_eq!(
            lines.iter().filter(|l| **l == "mmio-read ffffffff").count(),
            2,
            "{name}: {run:?}"
        );
        assert_eq!(lines.last(), Some(&"poke ok"), "{name}: {run:?}");
    }
}
