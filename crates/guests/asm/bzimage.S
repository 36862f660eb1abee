/*
 * The bzImage wrapper: a boot sector and one setup sector carrying the Linux
 * boot protocol header (Documentation/arch/x86/boot.rst), then the start of
 * the protected-mode payload, which the VMM loads at code32_start and enters
 * at +0x200 in long mode. The real-mode parts only halt: a BIOS boot is not
 * supported. Assembled with BITS=64; the linker script provides _syssize
 * and _init_size.
 */
#include "mode.h"
#include "layout.h"

#define SETUP_SECTS	1	/* setup sectors after the boot sector */

	.section .setup, "a"
	.code16
bootsect:
	cli
	hlt
	jmp	bootsect

	.org	0x1f1
setup_sects:		.byte	SETUP_SECTS
root_flags:		.word	0
syssize:		.long	_syssize	/* payload size in 16-byte units */
ram_size:		.word	0
vid_mode:		.word	0xffff		/* "normal" */
root_dev:		.word	0
boot_flag:		.word	0xaa55
	/* 0x200: the second sector, where real-mode setup code would start. */
jump:			.byte	0xeb, setup_code - header
header:			.ascii	"HdrS"
version:		.word	0x020f
realmode_swtch:		.long	0
start_sys_seg:		.word	0x1000
kernel_version:		.word	version_string - 0x200
type_of_loader:		.byte	0
loadflags:		.byte	0x01		/* LOADED_HIGH */
setup_move_size:	.word	0x8000
code32_start:		.long	KERNEL_START
ramdisk_image:		.long	0
ramdisk_size:		.long	0
bootsect_kludge:	.long	0
heap_end_ptr:		.word	0
ext_loader_ver:		.byte	0
ext_loader_type:	.byte	0
cmd_line_ptr:		.long	0
initrd_addr_max:	.long	0x7fffffff
kernel_alignment:	.long	0x200000
relocatable_kernel:	.byte	0
min_alignment:		.byte	12
xloadflags:		.word	0x0001		/* XLF_KERNEL_64: entry at +0x200 */
cmdline_size:		.long	0xffff
hardware_subarch:	.long	0
hardware_subarch_data:	.quad	0
payload_offset:		.long	0
payload_length:		.long	0
setup_data:		.quad	0
pref_address:		.quad	KERNEL_START
init_size:		.long	_init_size	/* memory the payload needs, .bss included */
handover_offset:	.long	0
kernel_info_offset:	.long	0

setup_code:
	cli
	hlt
	jmp	setup_code
version_string:
	.asciz	"Pointsman test guest"
	.org	(SETUP_SECTS + 1) * 512

/* Start of the payload: the 32-bit entry at +0 is not supported; +0x200 is 64-bit. */
	.section .payload_head, "ax"
	.code32
startup_32:
	cli
	hlt
	jmp	startup_32
	.org	0x200
	.code64
startup_64:
	jmp	linux_entry64
