/*
 * Serial console (COM1) and number printing.
 *
 * Every routine keeps every register except the documented outputs.
 */
#include "mode.h"
#include "layout.h"

	.text

/* putc: write %al, once the transmitter holding register is empty. */
	.globl	putc
putc:
	SAVE	ax, dx
	mov	%al, %ah
	mov	$COM1_LSR, %dx
1:	in	%dx, %al
	test	$LSR_THR_EMPTY, %al
	jz	1b
	mov	%ah, %al
	mov	$COM1, %dx
	out	%al, %dx
	RESTORE	ax, dx
	ret

/* getc: wait for a byte from the serial port; returns it in %al. */
	.globl	getc
getc:
	SAVE	dx
	mov	$COM1_LSR, %dx
1:	in	%dx, %al
	test	$LSR_DATA_READY, %al
	jnz	2f
	pause
	jmp	1b
2:	mov	$COM1, %dx
	in	%dx, %al
	RESTORE	dx
	ret

/* puts: write the NUL-terminated string at %esi. */
	.globl	puts
puts:
	SAVE	ax, si
1:	movb	(%esi), %al
	test	%al, %al
	jz	2f
	call	putc
	inc	%esi
	jmp	1b
2:	RESTORE	ax, si
	ret

/* put_newline, put_space: the two separators every line uses. */
	.globl	put_newline
put_newline:
	SAVE	ax
	mov	$'\n', %al
	call	putc
	RESTORE	ax
	ret

	.globl	put_space
put_space:
	SAVE	ax
	mov	$' ', %al
	call	putc
	RESTORE	ax
	ret

/* print_dec: %eax as an unsigned decimal number. */
	.globl	print_dec
print_dec:
	SAVE	ax, bx, cx, dx
	mov	$10, %ebx
	xor	%ecx, %ecx
1:	xor	%edx, %edx		/* digits come out last first: stack them */
	div	%ebx
	add	$'0', %edx
	SAVE	dx
	inc	%ecx
	test	%eax, %eax
	jnz	1b
2:	RESTORE	ax
	call	putc
	dec	%ecx
	jnz	2b
	RESTORE	ax, bx, cx, dx
	ret

/*
 * print_hex: %eax in lowercase hex, at least %ecx digits (1 to 8):
 * leading zero digits beyond that minimum are left out.
 */
	.globl	print_hex
print_hex:
	SAVE	ax, bx, dx
	mov	%eax, %ebx
	mov	$8, %edx		/* digits still to print */
1:	cmp	%ecx, %edx
	jbe	2f
	test	$0xf0000000, %ebx
	jnz	2f
	shl	$4, %ebx
	dec	%edx
	jmp	1b
2:	rol	$4, %ebx		/* next digit into the low nibble */
	mov	%ebx, %eax
	and	$0xf, %eax
	movb	hex_digits(%eax), %al
	call	putc
	dec	%edx
	jnz	2b
	RESTORE	ax, bx, dx
	ret

/* print_hex64: %edx:%eax in hex, at least %ecx digits (1 to 16). */
	.globl	print_hex64
print_hex64:
	SAVE	ax, cx
	cmp	$8, %ecx
	ja	1f
	test	%edx, %edx
	jz	2f			/* fits in the low half */
	mov	$9, %ecx		/* high half: as many digits as it needs */
1:	sub	$8, %ecx
	SAVE	ax
	mov	%edx, %eax
	call	print_hex
	RESTORE	ax
	mov	$8, %ecx		/* then the low half in full */
2:	call	print_hex
	RESTORE	ax, cx
	ret

	.section .rodata
hex_digits:
	.ascii	"0123456789abcdef"
