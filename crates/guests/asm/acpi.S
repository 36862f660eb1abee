/*
 * Finding the firmware tables: the ACPI RSDP, XSDT/RSDT, MADT and FADT, and
 * the MP table. Everything the VMM puts there sits below 4 GiB, so only the
 * low half of 64-bit table addresses is used.
 */
#include "mode.h"
#include "layout.h"

	.text

/*
 * scan_sig: look for the dword %eax on 16-byte boundaries in [%esi, %edi).
 * Returns the address in %eax, 0 if absent.
 */
	.globl	scan_sig
scan_sig:
	SAVE	si
1:	cmp	%edi, %esi
	jae	2f
	cmp	%eax, (%esi)
	je	3f
	add	$16, %esi
	jmp	1b
2:	xor	%esi, %esi
3:	mov	%esi, %eax
	RESTORE	si
	ret

/* scan_rsdp: "RSD PTR " in [%esi, %edi); %eax = address or 0. Moves %esi. */
scan_rsdp:
1:	mov	$SIG_RSD, %eax
	call	scan_sig
	test	%eax, %eax
	jz	2f
	cmpl	$SIG_PTR, 4(%eax)
	je	2f
	lea	16(%eax), %esi		/* only half the signature: go on after it */
	jmp	1b
2:	ret

/*
 * find_rsdp: the RSDP the boot protocol handed over or, failing that, the
 * one in the EBDA or the BIOS area, where the ACPI spec says to look.
 * Returns its address in %eax, 0 if there is none.
 */
	.globl	find_rsdp
find_rsdp:
	mov	boot_rsdp, %eax
	test	%eax, %eax
	jnz	2f
	SAVE	si, di
	mov	$EBDA_START, %esi
	mov	$EBDA_END, %edi
	call	scan_rsdp
	test	%eax, %eax
	jnz	1f
	mov	$BIOS_START, %esi
	mov	$BIOS_END, %edi
	call	scan_rsdp
1:	mov	%eax, boot_rsdp		/* remember it: poweroff looks again */
	RESTORE	si, di
2:	ret

/*
 * find_table: the ACPI table whose signature is the dword %eax, through the
 * XSDT (ACPI 2.0+) or else the RSDT. Returns its address in %eax, 0 if absent.
 */
	.globl	find_table
find_table:
	SAVE	bx, cx, dx, si
	mov	%eax, %edx
	call	find_rsdp
	test	%eax, %eax
	jz	.Lft_none
	mov	$8, %ebx		/* XSDT: 64-bit table addresses */
	mov	RSDP_XSDT(%eax), %esi
	cmpb	$2, RSDP_REVISION(%eax)
	jb	1f
	test	%esi, %esi
	jnz	2f
1:	mov	$4, %ebx		/* RSDT: 32-bit table addresses */
	mov	RSDP_RSDT(%eax), %esi
	test	%esi, %esi
	jz	.Lft_none
2:	mov	SDT_LENGTH(%esi), %ecx
	add	%esi, %ecx		/* end of the XSDT/RSDT */
	add	$SDT_HEADER_SIZE, %esi
3:	lea	(%esi,%ebx), %eax
	cmp	%ecx, %eax
	ja	.Lft_none
	mov	(%esi), %eax
	test	%eax, %eax
	jz	4f
	cmp	%edx, (%eax)
	je	.Lft_done
4:	add	%ebx, %esi
	jmp	3b
.Lft_none:
	xor	%eax, %eax
.Lft_done:
	RESTORE	bx, cx, dx, si
	ret

/* madt_bounds: the MADT's first entry in %esi and its end in %edi (0, 0 if none). */
	.globl	madt_bounds
madt_bounds:
	SAVE	ax
	mov	$SIG_APIC, %eax
	call	find_table
	mov	%eax, %esi
	mov	%eax, %edi
	test	%eax, %eax
	jz	1f
	add	SDT_LENGTH(%eax), %edi
	add	$MADT_ENTRIES, %esi
1:	RESTORE	ax
	ret

/*
 * madt_next_cpu: from the MADT entry at %esi (entries end at %edi), find the
 * next enabled processor local APIC. Returns its APIC ID in %eax with %esi
 * moved past it, or carry set when there is none left.
 */
	.globl	madt_next_cpu
madt_next_cpu:
	SAVE	cx
1:	lea	2(%esi), %eax
	cmp	%edi, %eax
	ja	3f
	movzbl	1(%esi), %ecx		/* entry length */
	cmp	$2, %ecx
	jb	3f			/* malformed: stop rather than loop */
	cmpb	$MADT_LOCAL_APIC, (%esi)
	jne	2f
	testb	$1, MADT_LAPIC_FLAGS(%esi)
	jz	2f
	movzbl	MADT_LAPIC_ID(%esi), %eax
	add	%ecx, %esi
	clc
	RESTORE	cx
	ret
2:	add	%ecx, %esi
	jmp	1b
3:	stc
	RESTORE	cx
	ret

/* madt_cpus: the number of enabled processors in the MADT, in %eax. */
	.globl	madt_cpus
madt_cpus:
	SAVE	cx, si, di
	call	madt_bounds
	xor	%ecx, %ecx
1:	call	madt_next_cpu
	jc	2f
	inc	%ecx
	jmp	1b
2:	mov	%ecx, %eax
	RESTORE	cx, si, di
	ret

/*
 * mp_cpus: the number of enabled processor entries in the MP table, in %eax
 * (0 without one). The floating pointer is in the EBDA or the BIOS area.
 */
	.globl	mp_cpus
mp_cpus:
	SAVE	cx, dx, si, di
	xor	%edx, %edx
	mov	$SIG_MP, %eax
	mov	$EBDA_START, %esi
	mov	$EBDA_END, %edi
	call	scan_sig
	test	%eax, %eax
	jnz	1f
	mov	$SIG_MP, %eax
	mov	$MP_BIOS_START, %esi
	mov	$BIOS_END, %edi
	call	scan_sig
	test	%eax, %eax
	jz	5f
1:	mov	MPF_CONFIG(%eax), %esi
	test	%esi, %esi
	jz	5f
	cmpl	$SIG_PCMP, (%esi)
	jne	5f
	movzwl	MPC_COUNT(%esi), %ecx
	add	$MPC_ENTRIES, %esi
2:	test	%ecx, %ecx
	jz	5f
	movzbl	(%esi), %eax
	cmp	$MPC_PROCESSOR, %eax
	jne	3f
	testb	$1, MPC_PROCESSOR_FLAGS(%esi)
	jz	4f
	inc	%edx
4:	add	$MPC_PROCESSOR_SIZE, %esi
	dec	%ecx
	jmp	2b
3:	cmp	$MPC_LAST_TYPE, %eax
	ja	5f			/* unknown entry type: its size is unknown */
	add	$MPC_OTHER_SIZE, %esi
	dec	%ecx
	jmp	2b
5:	mov	%edx, %eax
	RESTORE	cx, dx, si, di
	ret
