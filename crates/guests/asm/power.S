/*
 * Leaving the machine: ACPI power off and reset through the registers the
 * FADT names, the i8042 reset line, a jump to the BIOS reset vector, a
 * triple fault, or halting for good. None of them returns.
 */
#include "mode.h"
#include "layout.h"

	.text

/* halt: stop this CPU for good. */
	.globl	halt
halt:
	cli
	hlt
	jmp	halt

/*
 * poweroff: enter S5 by writing SLP_TYP and SLP_EN to the FADT's sleep
 * control register (hardware-reduced ACPI), in I/O space (Pointsman) or
 * system memory (QEMU microvm's GED), or else to the PM1a control block.
 */
	.globl	poweroff
poweroff:
	mov	$SIG_FACP, %eax
	call	find_table
	test	%eax, %eax
	jz	3f
	mov	%eax, %esi
	cmpl	$(FADT_SLEEP_CONTROL + 12), SDT_LENGTH(%esi)
	jb	2f
	mov	(FADT_SLEEP_CONTROL + GAS_ADDRESS)(%esi), %edx
	test	%edx, %edx
	jz	2f
	mov	$SLEEP_CONTROL_S5, %al
	cmpb	$GAS_SPACE_IO, (FADT_SLEEP_CONTROL + GAS_SPACE)(%esi)
	jne	1f
	out	%al, %dx
	jmp	halt
1:	cmpb	$GAS_SPACE_MEMORY, (FADT_SLEEP_CONTROL + GAS_SPACE)(%esi)
	jne	2f
	movb	%al, (%edx)
	jmp	halt
2:	mov	FADT_PM1A_CNT(%esi), %edx
	test	%edx, %edx
	jz	3f
	mov	$PM1_CNT_S5, %ax
	out	%ax, %dx
	jmp	halt
3:	PRINT	"poweroff: no ACPI sleep register\n"
	jmp	halt

/* reset_acpi: write the FADT's reset value to its reset register. */
	.globl	reset_acpi
reset_acpi:
	mov	$SIG_FACP, %eax
	call	find_table
	test	%eax, %eax
	jz	2f
	mov	%eax, %esi
	cmpl	$(FADT_RESET_VALUE + 1), SDT_LENGTH(%esi)
	jb	2f
	mov	(FADT_RESET_REG + GAS_ADDRESS)(%esi), %edx
	test	%edx, %edx
	jz	2f
	movb	FADT_RESET_VALUE(%esi), %al
	cmpb	$GAS_SPACE_IO, (FADT_RESET_REG + GAS_SPACE)(%esi)
	jne	1f
	out	%al, %dx
	jmp	halt
1:	cmpb	$GAS_SPACE_MEMORY, (FADT_RESET_REG + GAS_SPACE)(%esi)
	jne	2f
	movb	%al, (%edx)
	jmp	halt
2:	PRINT	"reset: no ACPI reset register\n"
	jmp	halt

/* reset_i8042: pulse the reset line through the keyboard controller. */
	.globl	reset_i8042
reset_i8042:
	mov	$I8042_RESET, %al
	out	%al, $I8042_COMMAND
	jmp	halt

/*
 * reset_bios: what Linux's reboot=b (and its default reboot on a machine
 * with hardware-reduced ACPI and no EFI) does: leave protected mode and
 * jump to the reset vector, f000:fff0, where a PC's BIOS would start over.
 * The real-mode step runs from a copy at TRAMPOLINE, reached through a
 * 16-bit code segment based there. Only the 32-bit body can: long mode
 * would have to be left first.
 */
	.globl	reset_bios
reset_bios:
#if BITS == 32
	cli
	cld
	mov	$bios_tramp, %esi
	mov	$TRAMPOLINE, %edi
	mov	$(bios_tramp_end - bios_tramp), %ecx
	rep movsb
	lgdt	real_gdt_ptr
	ljmp	$REAL_CODE16, $0

	.code16
bios_tramp:
	mov	$REAL_DATA16, %ax	/* real-mode limits (64 KiB) in every segment */
	mov	%ax, %ds
	mov	%ax, %es
	mov	%ax, %ss
	mov	%ax, %fs
	mov	%ax, %gs
	mov	%cr0, %eax
	and	$~1, %eax		/* PE off: real mode */
	mov	%eax, %cr0
	ljmp	$0xf000, $0xfff0
bios_tramp_end:
	MODE_CODE

	.section .rodata
	.balign	8
/* null, then 16-bit code and data segments based at TRAMPOLINE, 64 KiB. */
real_gdt:
	.quad	0
	.quad	0x00009a000000ffff | (TRAMPOLINE << 16)
	.quad	0x000092000000ffff | (TRAMPOLINE << 16)
real_gdt_ptr:
	.word	real_gdt_ptr - real_gdt - 1
	.long	real_gdt
	.text
#else
	PRINT	"biosreset: the 64-bit guests cannot leave long mode\n"
	jmp	poweroff
#endif

/*
 * triple_fault: with an empty IDT, the #UD cannot be delivered, nor the
 * #GP that follows, nor the double fault: the CPU shuts down.
 */
	.globl	triple_fault
triple_fault:
	lidt	null_idt
	ud2
	jmp	halt

	.section .rodata
	.balign	8
null_idt:
	.word	0		/* limit 0 */
	.quad	0		/* base: 4 bytes in 32-bit mode, 8 in long mode */
