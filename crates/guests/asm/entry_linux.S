/*
 * 64-bit Linux boot protocol entry, for the ELF64 image (at e_entry) and the
 * bzImage (at its load address + 0x200): long mode, the first 4 GiB identity
 * mapped, %rsi = boot_params. Assembled with BITS=64.
 */
#include "mode.h"
#include "layout.h"

	.text
	.globl	linux_entry64
linux_entry64:
	cli
	cld
	mov	$stack_top, %esp	/* zero-extends into %rsp */
	mov	BP_CMD_LINE_PTR(%rsi), %eax
	mov	%eax, boot_cmdline
	mov	BP_ACPI_RSDP(%rsi), %eax
	mov	%eax, boot_rsdp
	lea	BP_E820_TABLE(%rsi), %eax
	mov	%eax, boot_mmap
	movzbl	BP_E820_ENTRIES(%rsi), %eax
	mov	%eax, boot_mmap_count
	movl	$E820_STRIDE, boot_mmap_stride
	mov	BP_RAMDISK_IMAGE(%rsi), %eax
	mov	%eax, boot_initrd_addr
	mov	BP_EXT_RAMDISK_IMAGE(%rsi), %eax
	mov	%eax, boot_initrd_addr_hi
	mov	BP_RAMDISK_SIZE(%rsi), %eax
	mov	%eax, boot_initrd_size
	mov	BP_EXT_RAMDISK_SIZE(%rsi), %eax
	mov	%eax, boot_initrd_size_hi
	jmp	main
