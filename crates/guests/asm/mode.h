/*
 * Width-neutral assembly.
 *
 * The shared body (serial, ACPI, SMP, commands) is assembled twice: with
 * BITS=32 for the PVH image, which runs it in 32-bit protected mode, and
 * with BITS=64 for the ELF64 and bzImage images, which run it in long mode.
 * It only uses 32-bit registers and 32-bit addresses, valid in both modes;
 * the few instructions whose operand size follows the mode go through the
 * macros below.
 *
 * In long mode a 32-bit absolute displacement is sign-extended, so MMIO
 * above 2 GiB (the LAPIC, the device hole) must be reached through a
 * register: a 32-bit register base is zero-extended.
 */
#ifndef GUESTS_MODE_H
#define GUESTS_MODE_H

#if BITS == 64
#define MODE_CODE .code64
#elif BITS == 32
#define MODE_CODE .code32
#else
#error "BITS must be 32 or 64"
#endif

	MODE_CODE

/* SAVE ax, bx, ...: push the named registers at the stack width. */
	.macro SAVE regs:vararg
	.irp reg, \regs
#if BITS == 64
	push	%r\reg
#else
	push	%e\reg
#endif
	.endr
	.endm

/* RESTORE ax, bx, ...: pop what the same SAVE pushed, in reverse order. */
	.macro RESTORE first, rest:vararg
	.ifnb \rest
	RESTORE \rest
	.endif
#if BITS == 64
	pop	%r\first
#else
	pop	%e\first
#endif
	.endm

/* JMPR ax: jump to the address in a register (zero-extended in long mode). */
	.macro JMPR reg
#if BITS == 64
	jmp	*%r\reg
#else
	jmp	*%e\reg
#endif
	.endm

/* PRINT "text": write a string literal to the serial port. Keeps all registers. */
	.macro PRINT str
	.pushsection .rodata
.Lprint_str\@:
	.asciz	"\str"
	.popsection
	SAVE	si
	mov	$.Lprint_str\@, %esi
	call	puts
	RESTORE	si
	.endm

#endif
