//! The boot GDT and the segment registers that go with it.

use kvm_bindings::kvm_segment;

/// Selector of the flat 32-bit code segment (PVH entry).
pub const CODE32_SELECTOR: u16 = 0x08;
/// Selector of the 64-bit code segment; Linux's 64-bit boot protocol
/// names it `__BOOT_CS`.
pub const CODE64_SELECTOR: u16 = 0x10;
/// Selector of the flat data segment (`__BOOT_DS`).
pub const DATA_SELECTOR: u16 = 0x18;
/// Selector of the task state segment.
pub const TSS_SELECTOR: u16 = 0x20;

/// The boot GDT: null, 32-bit code, 64-bit code, data, TSS.
pub const BOOT_GDT: [u64; 5] = [
    0,
    gdt_entry(0xc09b, 0, 0xfffff),
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x008b, 0, 0x67),
];

/// Packs a segment descriptor from its flags (type, S, DPL, P in bits 0-7;
/// AVL, L, D/B, G in bits 12-15), base and 20-bit limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

/// The KVM view of the descriptor at `index` of `table`.
#[allow(clippy::cast_possible_truncation)] // every field is masked to its width first
pub fn segment(table: &[u64], index: u16) -> kvm_segment {
    let entry = table.get(usize::from(index)).copied().unwrap_or(0);
    let bits = |shift: u64, mask: u64| ((entry >> shift) & mask) as u8;
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    let limit = (entry & 0xffff) | ((entry >> 32) & 0x000f_0000);
    let granularity = bits(55, 1);
    kvm_segment {
        base,
        // With 4 KiB granularity the limit counts pages.
        limit: if granularity == 1 {
            ((limit << 12) | 0xfff) as u32
        } else {
            limit as u32
        },
        selector: index * 8,
        type_: bits(40, 0xf),
        present: bits(47, 1),
        dpl: bits(45, 0x3),
        db: bits(54, 1),
        s: bits(44, 1),
        l: bits(53, 1),
        g: granularity,
        avl: bits(52, 1),
        unusable: u8::from(bits(47, 1) == 0),
        padding: 0,
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;

    #[test]
    fn code64_segment_is_long_mode() {
        let cs = segment(&BOOT_GDT, CODE64_SELECTOR / 8);
        assert_eq!(cs.l, 1);
        assert_eq!(cs.db, 0);
        assert_eq!(cs.type_, 0xb);
        assert_eq!(cs.selector, CODE64_SELECTOR);
        assert_eq!(cs.limit, 0xffff_ffff);
    }

    #[test]
    fn code32_and_data_are_flat_4g() {
        let cs = segment(&BOOT_GDT, CODE32_SELECTOR / 8);
        assert_eq!((cs.l, cs.db, cs.base, cs.limit), (0, 1, 0, 0xffff_ffff));
        let ds = segment(&BOOT_GDT, DATA_SELECTOR / 8);
        assert_eq!((ds.type_, ds.s, ds.present), (3, 1, 1));
        let tr = segment(&BOOT_GDT, TSS_SELECTOR / 8);
        assert_eq!((tr.type_, tr.s, tr.limit), (0xb, 0, 0x67));
    }

    #[test]
    fn descriptor_round_trips_base() {
        let e = gdt_entry(0x0093, 0x1234_5678, 0xabcde);
        let s = segment(&[e], 0);
        assert_eq!(s.base, 0x1234_5678);
        assert_eq!(s.limit, 0xabcde);
        assert_eq!(s.unusable, 0);
    }
}
