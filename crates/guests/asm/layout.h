/*
 * Addresses, ports and structure offsets the guests rely on. The machine
 * side lives in crates/arch/src/layout.rs; the structure offsets come from
 * the PVH, Linux boot, ACPI and MP specifications.
 */
#ifndef GUESTS_LAYOUT_H
#define GUESTS_LAYOUT_H

/* Where the kernels are loaded (HIMEM_START). */
#define KERNEL_START		0x100000

/* COM1, a 16550. */
#define COM1			0x3f8
#define COM1_LSR		(COM1 + 5)
#define LSR_DATA_READY		0x01
#define LSR_THR_EMPTY		0x20

/* i8042: writing 0xfe to the command port pulses the reset line. */
#define I8042_COMMAND		0x64
#define I8042_RESET		0xfe

/* Turns of count's empty loop between two lines (about 0.1 s on PVM). */
#define COUNT_STEP		50000

/* The RAM stamp stamps, a word per 4 KiB page (the guest has 64 MiB). */
#define STAMP_START		0x00800000
#define STAMP_END		0x02000000
#define STAMP_PAGE		0x1000

/* Ports nothing is attached to (used by poke and piobench). */
#define UNUSED_PORT		0x9f0
#define UNUSED_PORT2		0x2e8

/* MMIO addresses poke touches: the device hole, and just below 1 GiB. */
#define HOLE_MMIO		0xd0000000
#define HIGH_MMIO		0x3ff00000

/* Local APIC. */
#define LAPIC_BASE		0xfee00000
#define LAPIC_ID		0x20
#define LAPIC_SVR		0xf0
#define LAPIC_ICR_LOW		0x300
#define LAPIC_ICR_HIGH		0x310
#define SVR_ENABLE		0x1ff		/* APIC enabled, spurious vector 0xff */
#define ICR_INIT		0x00004500	/* INIT, level assert */
#define ICR_STARTUP		0x00004600	/* start-up IPI, vector in bits 7:0 */
#define ICR_BUSY		(1 << 12)	/* delivery status: send pending */

/* The AP trampoline: scratch memory below the command line at 0x20000. */
#define TRAMPOLINE		0x10000
#define TRAMPOLINE_SEGMENT	(TRAMPOLINE >> 4)
#define SIPI_VECTOR		(TRAMPOLINE >> 12)
#define TRAMPOLINE_STACK	0x1000		/* offset in the segment: top of the page */

/* Selectors of reset_bios's GDT: 16-bit code and data based at TRAMPOLINE. */
#define REAL_CODE16		0x08
#define REAL_DATA16		0x10

/* PVH hvm_start_info. */
#define PVH_MAGIC		0x336ec578
#define PVH_START_MAGIC		0
#define PVH_START_VERSION	4
#define PVH_START_NR_MODULES	12
#define PVH_START_MODLIST	16
#define PVH_START_CMDLINE	24
#define PVH_START_RSDP		32
#define PVH_START_MEMMAP	40
#define PVH_START_MEMMAP_COUNT	48
#define PVH_MEMMAP_STRIDE	24	/* hvm_memmap_table_entry */
#define PVH_MOD_PADDR		0	/* hvm_modlist_entry */
#define PVH_MOD_SIZE		8

/* Linux boot_params (the zero page). */
#define BP_ACPI_RSDP		0x070
#define BP_EXT_RAMDISK_IMAGE	0x0c0
#define BP_EXT_RAMDISK_SIZE	0x0c4
#define BP_E820_ENTRIES		0x1e8
#define BP_RAMDISK_IMAGE	0x218
#define BP_RAMDISK_SIZE		0x21c
#define BP_CMD_LINE_PTR		0x228
#define BP_E820_TABLE		0x2d0
#define E820_STRIDE		20

/* Memory map entries, both flavours: {u64 addr, u64 size, u32 type}. */
#define MMAP_ADDR		0
#define MMAP_SIZE		8
#define MMAP_TYPE		16
#define MMAP_TYPE_RAM		1

/* Where the RSDP may be when nobody says: the BIOS area. */
#define BIOS_START		0xe0000
#define BIOS_END		0x100000
#define EBDA_START		0x9fc00
#define EBDA_END		0xa0000
#define MP_BIOS_START		0xf0000

/* Signatures, as little-endian dwords. */
#define SIG_RSD			0x20445352	/* "RSD " */
#define SIG_PTR			0x20525450	/* "PTR " */
#define SIG_FACP		0x50434146	/* "FACP" */
#define SIG_APIC		0x43495041	/* "APIC" */
#define SIG_MP			0x5f504d5f	/* "_MP_" */
#define SIG_PCMP		0x504d4350	/* "PCMP" */

/* ACPI RSDP. */
#define RSDP_REVISION		15
#define RSDP_RSDT		16
#define RSDP_XSDT		24

/* Any ACPI table header. */
#define SDT_LENGTH		4
#define SDT_HEADER_SIZE		36

/* FADT. */
#define FADT_PM1A_CNT		64
#define FADT_RESET_REG		116	/* GAS: space id at +0, address at +4 */
#define FADT_RESET_VALUE	128
#define FADT_SLEEP_CONTROL	244	/* GAS */
#define GAS_SPACE		0
#define GAS_ADDRESS		4
#define GAS_SPACE_MEMORY	0
#define GAS_SPACE_IO		1
#define SLP_TYP_S5		5
#define SLEEP_CONTROL_S5	((SLP_TYP_S5 << 2) | 0x20)		/* SLP_EN is bit 5 */
#define PM1_CNT_S5		((SLP_TYP_S5 << 10) | (1 << 13))	/* SLP_EN is bit 13 */

/* MADT. */
#define MADT_ENTRIES		44
#define MADT_LOCAL_APIC		0
#define MADT_LAPIC_ID		3
#define MADT_LAPIC_FLAGS	4

/* MP table. */
#define MPF_CONFIG		4
#define MPC_COUNT		34
#define MPC_ENTRIES		44
#define MPC_PROCESSOR		0
#define MPC_PROCESSOR_SIZE	20
#define MPC_PROCESSOR_FLAGS	3
#define MPC_OTHER_SIZE		8
#define MPC_LAST_TYPE		4

#endif
