/*
 * What the entry stubs hand to the shared body: each stub reads its boot
 * protocol's structure (PVH hvm_start_info or Linux boot_params) into these
 * variables, sets up the stack below, and jumps to main.
 */
#include "mode.h"

	.data
	.balign	4
	.globl	boot_cmdline, boot_rsdp
	.globl	boot_mmap, boot_mmap_count, boot_mmap_stride
	.globl	boot_initrd_addr, boot_initrd_addr_hi
	.globl	boot_initrd_size, boot_initrd_size_hi
boot_cmdline:		.long 0		/* NUL-terminated command line, 0 if none */
boot_rsdp:		.long 0		/* ACPI RSDP, 0 if the guest must look for it */
boot_mmap:		.long 0		/* memory map: {u64 addr, u64 size, u32 type} entries */
boot_mmap_count:	.long 0
boot_mmap_stride:	.long 0		/* 24 for PVH, 20 for e820 */
boot_initrd_addr:	.long 0
boot_initrd_addr_hi:	.long 0
boot_initrd_size:	.long 0		/* 0: no initrd */
boot_initrd_size_hi:	.long 0

	.bss
	.balign	16
	.globl	stack_top
	.skip	4096
stack_top:
