/*
 * The smp command: count the CPUs in the MADT and the MP table, start the
 * application processors with INIT-SIPI-SIPI, and have every CPU report
 * itself once, one at a time under a spinlock.
 *
 * The APs run the trampoline below, copied to TRAMPOLINE, straight from real
 * mode: it is short, since every instruction of it is emulated. The spinlock
 * and the count of CPUs that have reported live in the copied trampoline, so
 * the APs reach them from their code segment and the BSP at a flat address.
 */
#include "mode.h"
#include "layout.h"

/* Offset of a trampoline symbol from the AP's segment base. */
#define TOFF(sym)	((sym) - trampoline)
/* Flat address of a trampoline symbol once copied. */
#define TADDR(sym)	(TRAMPOLINE + TOFF(sym))

	.text

/* ---------------- AP side: 16-bit real mode, CS = TRAMPOLINE_SEGMENT, IP = 0. */
	.code16
	.balign	16
trampoline:
	cli
	cld
	mov	%cs, %ax
	mov	%ax, %ds
	mov	%ax, %ss
	mov	$TRAMPOLINE_STACK, %sp	/* shared: only the lock holder calls;
					   far above the ~0xc2 bytes copied */
1:	lock btsl $0, TOFF(tramp_lock)
	jnc	2f
	pause
	jmp	1b
2:	mov	$TOFF(tramp_cpu_str), %si
	call	tramp_puts
	mov	$1, %eax		/* CPUID.1:EBX[31:24]: initial APIC ID */
	cpuid
	shr	$24, %ebx
	mov	%ebx, %eax
	call	tramp_hex
	mov	$' ', %al
	call	tramp_putc
	mov	$0xb, %eax		/* CPUID.0xB:EDX: x2APIC ID */
	xor	%ecx, %ecx
	cpuid
	mov	%edx, %eax
	call	tramp_hex
	mov	$TOFF(tramp_up_str), %si
	call	tramp_puts
	lock incl TOFF(tramp_count)
	lock btrl $0, TOFF(tramp_lock)
3:	cli
	hlt
	jmp	3b

/* tramp_puts: the string at %ds:%si. Clobbers %ax, %dx, %si. */
tramp_puts:
	lodsb
	test	%al, %al
	jz	1f
	call	tramp_putc
	jmp	tramp_puts
1:	ret

/* tramp_hex: %eax in hex, at least two digits. Clobbers %eax, %ebx, %cx, %dx. */
tramp_hex:
	mov	%eax, %ebx
	mov	$8, %cx
1:	cmp	$2, %cx			/* drop leading zeros beyond two digits */
	jbe	2f
	test	$0xf0000000, %ebx
	jnz	2f
	shl	$4, %ebx
	dec	%cx
	jmp	1b
2:	rol	$4, %ebx
	mov	%bl, %al
	and	$0xf, %al
	add	$'0', %al
	cmp	$'9', %al
	jbe	3f
	add	$('a' - '9' - 1), %al
3:	call	tramp_putc
	dec	%cx
	jnz	2b
	ret

/* tramp_putc: %al to COM1. Clobbers %ah, %dx. */
tramp_putc:
	mov	%al, %ah
	mov	$COM1_LSR, %dx
1:	in	%dx, %al
	test	$LSR_THR_EMPTY, %al
	jz	1b
	mov	%ah, %al
	mov	$COM1, %dx
	out	%al, %dx
	ret

	.balign	4
tramp_lock:
	.long	0		/* bit 0: a CPU is printing */
tramp_count:
	.long	0		/* CPUs that have reported */
tramp_cpu_str:
	.asciz	"cpu "
tramp_up_str:
	.asciz	" up\n"
trampoline_end:

	MODE_CODE

/* ---------------- BSP side. */

/* cmd_smp: see the top of the file. Does not return. */
	.globl	cmd_smp
cmd_smp:
	PRINT	"madt cpus "
	call	madt_cpus
	call	print_dec
	call	put_newline
	mov	%eax, %ebp		/* how many CPUs must report */
	PRINT	"mptable cpus "
	call	mp_cpus
	call	print_dec
	call	put_newline

	/* A fresh trampoline (lock free, count 0) where the SIPI vector points. */
	mov	$trampoline, %esi
	mov	$TRAMPOLINE, %edi
	mov	$(trampoline_end - trampoline), %ecx
	cld
	rep movsb

	mov	$LAPIC_BASE, %ebx
	movl	$SVR_ENABLE, LAPIC_SVR(%ebx)	/* a disabled LAPIC sends no IPIs */
	mov	LAPIC_ID(%ebx), %edx
	shr	$24, %edx		/* our own APIC ID: not to be woken */

	call	madt_bounds
1:	call	madt_next_cpu
	jc	2f
	cmp	%edx, %eax
	je	1b
	call	wake_cpu
	jmp	1b

2:	call	report_cpu
3:	mov	TADDR(tramp_count), %eax
	cmp	%ebp, %eax
	jae	4f
	pause
	jmp	3b
4:	PRINT	"smp ok "
	call	print_dec
	call	put_newline
	jmp	poweroff

/* wake_cpu: INIT, SIPI, SIPI to APIC ID %eax; %ebx = LAPIC base. */
wake_cpu:
	SAVE	ax, cx
	shl	$24, %eax		/* destination field of ICR high */
	mov	$ICR_INIT, %ecx
	call	send_ipi
	mov	$(ICR_STARTUP | SIPI_VECTOR), %ecx
	call	send_ipi
	call	send_ipi		/* the second SIPI of the MP spec */
	RESTORE	ax, cx
	ret

/* send_ipi: ICR high %eax, ICR low %ecx, then wait until it is sent. */
send_ipi:
	mov	%eax, LAPIC_ICR_HIGH(%ebx)
	mov	%ecx, LAPIC_ICR_LOW(%ebx)
1:	testl	$ICR_BUSY, LAPIC_ICR_LOW(%ebx)
	jz	2f
	pause
	jmp	1b
2:	ret

/* report_cpu: the BSP's own "cpu A B up" line, under the APs' lock. */
report_cpu:
	SAVE	ax, bx, cx, dx
1:	lock btsl $0, TADDR(tramp_lock)
	jnc	2f
	pause
	jmp	1b
2:	PRINT	"cpu "
	mov	$1, %eax
	cpuid
	shr	$24, %ebx
	mov	%ebx, %eax
	mov	$2, %ecx
	call	print_hex
	call	put_space
	mov	$0xb, %eax
	xor	%ecx, %ecx
	cpuid
	mov	%edx, %eax
	mov	$2, %ecx
	call	print_hex
	PRINT	" up\n"
	lock incl TADDR(tramp_count)
	lock btrl $0, TADDR(tramp_lock)
	RESTORE	ax, bx, cx, dx
	ret
