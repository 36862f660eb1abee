/*
 * Leaving the machine: ACPI power off and reset through the registers the
 * FADT names, the i8042 reset line, a triple fault, or halting for good.
 * None of them returns.
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
