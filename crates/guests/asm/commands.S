/*
 * The commands: main picks one from the kernel command line and runs it.
 * None of them returns. smp lives in smp.S.
 */
#include "mode.h"
#include "layout.h"
#include "virtio.h"

/* COMMAND name: a command-table entry for the word "name", run by cmd_name. */
	.macro COMMAND name
	.long	.Lname_\name, cmd_\name
	.pushsection .rodata.names, "a"
.Lname_\name:
	.asciz	"\name"
	.popsection
	.endm

	.section .rodata
	.balign	4
commands:
	COMMAND	demo
	COMMAND	hostile_zero		/* hostile.S */
	COMMAND	hostile_loop
	COMMAND	hostile_outside
	COMMAND	hostile_blkwrap
	COMMAND	hostile_index
	COMMAND	hostile_overlap
	COMMAND	hostile_flood
	COMMAND	hostile_reset
	COMMAND	hostile_kick
	COMMAND	hostile_config
	COMMAND	hostile_msix
	COMMAND	hostile_vsock
	COMMAND	memmap
	COMMAND	smp
	COMMAND	echo
	COMMAND	reset
	COMMAND	acpireset
	COMMAND	biosreset
	COMMAND	triplefault
	COMMAND	wildjump
	COMMAND	poke
	COMMAND	piobench
	COMMAND	initrd
	COMMAND	idle
	COMMAND	count
	COMMAND	stamp
	COMMAND	checks
	COMMAND	vio		/* vio.S */
	COMMAND	exit
	.long	0, 0

	.text

/* main: run the command the command line names. */
	.globl	main
main:
	call	find_command
	JMPR	ax

/*
 * find_command: the handler of the first whitespace-separated word of the
 * command line that names a command; cmd_demo if none does.
 */
find_command:
	SAVE	bx, si, di
	mov	boot_cmdline, %esi
	test	%esi, %esi
	jz	.Lfc_default
1:	movb	(%esi), %al		/* at a word start, or whitespace */
	test	%al, %al
	jz	.Lfc_default
	cmp	$' ', %al		/* space, tab, newline...: all below '!' */
	ja	2f
	inc	%esi
	jmp	1b
2:	mov	$commands, %ebx
3:	mov	(%ebx), %edi
	test	%edi, %edi
	jz	4f
	call	word_is
	je	.Lfc_found
	add	$8, %ebx
	jmp	3b
4:	inc	%esi			/* no command: skip the word */
	cmpb	$' ', (%esi)
	ja	4b
	jmp	1b
.Lfc_found:
	mov	4(%ebx), %eax
	jmp	5f
.Lfc_default:
	mov	$cmd_demo, %eax
5:	RESTORE	bx, si, di
	ret

/* word_is: ZF set if the word at %esi is the NUL-terminated string at %edi. */
word_is:
	SAVE	ax, si, di
1:	movb	(%edi), %al
	test	%al, %al
	jz	2f
	cmp	(%esi), %al
	jne	3f
	inc	%esi
	inc	%edi
	jmp	1b
2:	cmpb	$' ', (%esi)		/* the word must end here too */
	ja	3f			/* ZF clear: longer word */
	cmp	%al, %al		/* ZF set */
3:	RESTORE	ax, si, di
	ret

/* demo: say hello, count CPUs and memory, power off. */
cmd_demo:
	PRINT	"Pointsman demo guest\nvcpus: "
	call	madt_cpus
	call	print_dec
	PRINT	"\nmemory: "
	call	ram_mib
	call	print_dec
	PRINT	" MiB\n"
	jmp	poweroff

/* ram_mib: total size of the RAM entries of the memory map, in MiB. */
ram_mib:
	SAVE	cx, dx, si
	mov	boot_mmap, %esi
	mov	boot_mmap_count, %ecx
	xor	%eax, %eax		/* %edx:%eax: bytes */
	xor	%edx, %edx
	test	%ecx, %ecx
	jz	3f
1:	cmpl	$MMAP_TYPE_RAM, MMAP_TYPE(%esi)
	jne	2f
	add	MMAP_SIZE(%esi), %eax
	adc	(MMAP_SIZE + 4)(%esi), %edx
2:	add	boot_mmap_stride, %esi
	dec	%ecx
	jnz	1b
3:	shrd	$20, %edx, %eax
	RESTORE	cx, dx, si
	ret

/* memmap: the memory map, one entry a line. */
cmd_memmap:
	PRINT	"memmap "
	mov	boot_mmap_count, %ebx
	mov	%ebx, %eax
	call	print_dec
	call	put_newline
	mov	boot_mmap, %esi
	mov	$16, %ecx		/* BASE and SIZE in full */
	test	%ebx, %ebx
	jz	2f
1:	PRINT	"mem "
	mov	MMAP_ADDR(%esi), %eax
	mov	(MMAP_ADDR + 4)(%esi), %edx
	call	print_hex64
	call	put_space
	mov	MMAP_SIZE(%esi), %eax
	mov	(MMAP_SIZE + 4)(%esi), %edx
	call	print_hex64
	call	put_space
	mov	MMAP_TYPE(%esi), %eax
	call	print_dec
	call	put_newline
	add	boot_mmap_stride, %esi
	dec	%ebx
	jnz	1b
2:	jmp	poweroff

/* echo: a serial console to drive the VMM's exits from the host. */
cmd_echo:
	PRINT	"ready\n"
1:	call	getc
	cmp	$'P', %al
	je	poweroff
	cmp	$'R', %al
	je	reset_i8042
	cmp	$'A', %al
	je	reset_acpi
	cmp	$'B', %al
	je	reset_bios
	cmp	$'T', %al
	je	triple_fault
	call	putc
	jmp	1b

cmd_reset:
	PRINT	"resetting\n"
	jmp	reset_i8042

cmd_acpireset:
	PRINT	"resetting\n"
	jmp	reset_acpi

cmd_biosreset:
	PRINT	"resetting\n"
	jmp	reset_bios

cmd_triplefault:
	PRINT	"triple fault\n"
	jmp	triple_fault

/*
 * wildjump: run code from the device hole, where no memory is. KVM cannot
 * fetch instructions from MMIO, so this is an emulation failure (an
 * internal error), which the VMM must report, not hang on.
 */
cmd_wildjump:
	PRINT	"wild jump\n"
	mov	$HOLE_MMIO, %eax
	JMPR	ax

/* poke: port and MMIO accesses nothing answers, or that hit plain RAM. */
cmd_poke:
	mov	$0x5a, %al
	mov	$UNUSED_PORT, %dx
	out	%al, %dx
	mov	$UNUSED_PORT2, %dx
	out	%al, %dx
	mov	$UNUSED_PORT, %dx
	in	%dx, %al
	PRINT	"pio-read "
	movzbl	%al, %eax
	mov	$2, %ecx
	call	print_hex
	call	put_newline
	mov	$HOLE_MMIO, %esi
	call	poke_mmio
	mov	$HIGH_MMIO, %esi
	call	poke_mmio
	PRINT	"poke ok\n"
	jmp	poweroff

/* poke_mmio: write a dword at %esi, read it back, print what came back. */
poke_mmio:
	SAVE	ax, cx
	movl	$0x12345678, (%esi)
	mov	(%esi), %eax
	PRINT	"mmio-read "
	mov	$8, %ecx
	call	print_hex
	call	put_newline
	RESTORE	ax, cx
	ret

/* piobench: 100000 port writes, as fast as they go (10 per loop turn). */
cmd_piobench:
	mov	$UNUSED_PORT, %dx
	xor	%al, %al
	mov	$10000, %ecx
1:	.rept	10
	out	%al, %dx
	.endr
	dec	%ecx
	jnz	1b
	PRINT	"pio done\n"
	jmp	poweroff

/* initrd: where the initrd is, its size, and the sum of its bytes. */
cmd_initrd:
	mov	boot_initrd_size, %eax
	or	boot_initrd_size_hi, %eax
	jnz	1f
	PRINT	"initrd none\n"
	jmp	poweroff
1:	xor	%ebp, %ebp		/* sum: 0 if the initrd is out of reach */
	mov	boot_initrd_addr_hi, %eax
	or	boot_initrd_size_hi, %eax
	jnz	2f
	mov	boot_initrd_addr, %esi
	mov	boot_initrd_size, %ecx
	call	byte_sum
	mov	%eax, %ebp
2:	PRINT	"initrd "
	mov	$1, %ecx
	mov	boot_initrd_addr, %eax
	mov	boot_initrd_addr_hi, %edx
	call	print_hex64
	call	put_space
	mov	boot_initrd_size, %eax
	mov	boot_initrd_size_hi, %edx
	call	print_hex64
	call	put_space
	mov	%ebp, %eax
	call	print_hex
	call	put_newline
	jmp	poweroff

/* byte_sum: 32-bit wrapping sum of the %ecx bytes at %esi, in %eax. */
byte_sum:
	SAVE	bx, cx, dx, si
	xor	%edx, %edx
	mov	%ecx, %ebx
	shr	$2, %ebx		/* four bytes a turn: fewer emulated jumps */
	jz	2f
1:	movzbl	(%esi), %eax
	add	%eax, %edx
	movzbl	1(%esi), %eax
	add	%eax, %edx
	movzbl	2(%esi), %eax
	add	%eax, %edx
	movzbl	3(%esi), %eax
	add	%eax, %edx
	add	$4, %esi
	dec	%ebx
	jnz	1b
2:	and	$3, %ecx
	jz	4f
3:	movzbl	(%esi), %eax
	add	%eax, %edx
	inc	%esi
	dec	%ecx
	jnz	3b
4:	mov	%edx, %eax
	RESTORE	bx, cx, dx, si
	ret

/*
 * count: count for ever, printing "count N" every COUNT_STEP turns of an
 * empty loop, so that the host sees whether the guest makes progress (a
 * paused one must not); a 'P' on the console powers off.
 */
cmd_count:
	xor	%ebx, %ebx		/* lines printed */
1:	mov	$COUNT_STEP, %ecx
2:	dec	%ecx
	jnz	2b
	inc	%ebx
	PRINT	"count "
	mov	%ebx, %eax
	call	print_dec
	call	put_newline
	mov	$COM1_LSR, %dx
	in	%dx, %al
	test	$LSR_DATA_READY, %al
	jz	1b
	mov	$COM1, %dx
	in	%dx, %al
	cmp	$'P', %al
	jne	1b
	jmp	poweroff

/*
 * stamp: write a word of its own (its address, inverted) into each 4 KiB
 * page of [STAMP_START, STAMP_END), then count as count does, checking
 * every stamped word before each line: "stamp N ok", or "stamp N bad
 * ADDR" at the first page that lost its word. A guest restored from a
 * snapshot goes on from N with its RAM as it was. N lives in RAM
 * (stamp_lines), not in a register: a guest restored over an older
 * memory file than its state's counts on from the older N. 'P' powers
 * off.
 */
	.data
	.balign	4
stamp_lines:	.long 0
	.text
cmd_stamp:
	mov	$STAMP_START, %esi
1:	mov	%esi, %eax
	not	%eax
	mov	%eax, (%esi)
	add	$STAMP_PAGE, %esi
	cmp	$STAMP_END, %esi
	jb	1b
	movl	$0, stamp_lines
2:	mov	$COUNT_STEP, %ecx
3:	dec	%ecx
	jnz	3b
	incl	stamp_lines
	PRINT	"stamp "
	mov	stamp_lines, %eax
	call	print_dec
	mov	$STAMP_START, %esi
4:	mov	%esi, %eax
	not	%eax
	cmp	%eax, (%esi)
	jne	5f
	add	$STAMP_PAGE, %esi
	cmp	$STAMP_END, %esi
	jb	4b
	PRINT	" ok\n"
	jmp	6f
5:	PRINT	" bad "
	mov	%esi, %eax
	xor	%ecx, %ecx
	call	print_hex
	call	put_newline
6:	mov	$COM1_LSR, %dx
	in	%dx, %al
	test	$LSR_DATA_READY, %al
	jz	2b
	mov	$COM1, %dx
	in	%dx, %al
	cmp	$'P', %al
	jne	2b
	jmp	poweroff

/*
 * checks: one good request each to the rng and the disk, if there are
 * such devices (checks.S prints "rng ok" and "blk ok"), then count: what
 * the devices did shows in the VMM's metrics.
 */
cmd_checks:
	UP	VIRTIO_ID_RNG, 1
	jc	1f
	call	rng_check
1:	UP	VIRTIO_ID_BLOCK, 1
	jc	cmd_count
	call	blk_check
	jmp	cmd_count

cmd_idle:
	PRINT	"idle\n"
	jmp	halt

/* exit: power off straight away, for start-up time measurements. */
cmd_exit:
	jmp	poweroff
