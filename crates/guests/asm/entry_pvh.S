/*
 * PVH entry: 32-bit protected mode, paging off, flat segments, %ebx =
 * physical address of hvm_start_info. The body runs right here in 32-bit
 * mode: a switch to long mode would only cost emulated instructions.
 * Assembled with BITS=32.
 */
#include "mode.h"
#include "layout.h"

/* The ELF note that tells the VMM where the 32-bit PVH entry point is. */
	.section .note.pvh, "a", @note
	.balign	4
	.long	2f - 1f			/* name size */
	.long	4f - 3f			/* descriptor size */
	.long	18			/* XEN_ELFNOTE_PHYS32_ENTRY */
1:	.asciz	"Xen"
2:	.balign	4
3:	.long	pvh_start
4:	.balign	4

	.text
	.globl	pvh_start
pvh_start:
	cli
	cld
	mov	$stack_top, %esp
	cmpl	$PVH_MAGIC, PVH_START_MAGIC(%ebx)
	jne	3f
	mov	PVH_START_CMDLINE(%ebx), %eax
	mov	%eax, boot_cmdline
	mov	PVH_START_RSDP(%ebx), %eax
	mov	%eax, boot_rsdp
	movl	$PVH_MEMMAP_STRIDE, boot_mmap_stride
	xor	%eax, %eax		/* no memory map, no initrd, unless said */
	mov	%eax, boot_mmap_count
	mov	%eax, boot_initrd_size
	mov	%eax, boot_initrd_size_hi
	cmpl	$1, PVH_START_VERSION(%ebx)	/* the memory map came with version 1 */
	jb	1f
	mov	PVH_START_MEMMAP(%ebx), %eax
	mov	%eax, boot_mmap
	mov	PVH_START_MEMMAP_COUNT(%ebx), %eax
	mov	%eax, boot_mmap_count
1:	cmpl	$0, PVH_START_NR_MODULES(%ebx)	/* the first module is the initrd */
	je	2f
	mov	PVH_START_MODLIST(%ebx), %esi
	mov	PVH_MOD_PADDR(%esi), %eax
	mov	%eax, boot_initrd_addr
	mov	(PVH_MOD_PADDR + 4)(%esi), %eax
	mov	%eax, boot_initrd_addr_hi
	mov	PVH_MOD_SIZE(%esi), %eax
	mov	%eax, boot_initrd_size
	mov	(PVH_MOD_SIZE + 4)(%esi), %eax
	mov	%eax, boot_initrd_size_hi
2:	jmp	main
3:	PRINT	"pvh: bad hvm_start_info magic\n"
	jmp	halt
