/*
 * vio: a guest that keeps using its virtio devices, to show that a
 * restored one goes on with the same queues. It starts the rng and the
 * disk, if there are such devices, then loops: one 16-byte entropy
 * request and one read of sector 0 per line, "vio N ok" when each device
 * there answered in full, "vio N FAILED" otherwise. A 'P' on the console
 * powers off.
 *
 * The two devices are current in turn (virtio.S keeps one current
 * device), each with its own ring area: the rng's queue lies at VQ(4).
 */
#include "mode.h"
#include "layout.h"
#include "virtio.h"

#define RNG_AREA	VQ(4)

	.data
	.balign	4
rng_base:	.long 0		/* the rng's virtio-mmio page, 0 if none */
blk_base:	.long 0		/* the disk's, 0 if none */
vio_lines:	.long 0		/* lines printed */
vio_failed:	.long 0		/* requests that failed on this line */

	.text

/* vio_rng: one entropy request on the rng (checks.S); carry set if it
 * failed. */
vio_rng:
	mov	rng_base, %eax
	mov	%eax, vt_base
	movl	$RNG_AREA, vq_area
	jmp	rng_request

/* vio_blk: one read of sector 0 on the disk (checks.S); carry set if it
 * failed. */
vio_blk:
	mov	blk_base, %eax
	mov	%eax, vt_base
	movl	$VQ_AREA, vq_area
	jmp	blk_read

/*
 * vio_msix_up: on virtio-pci, start the current device (the rng) again
 * with its queue on MSI-X vector 1 (masked, to 0xfee00000 with data 0x41:
 * the guest keeps interrupts disabled, so a delivery only lands in the
 * local APIC) and MSI-X enabled. Carry set if the device refuses.
 */
vio_msix_up:
	SAVE	ax, bx, cx, si
	call	vt_init
	jc	2f
	xor	%ebx, %ebx
	call	vt_queue
	mov	vt_base, %esi
	movw	$1, PCI_QUEUE_MSIX_VECTOR(%esi)	/* queue 0, still selected */
	call	vt_driver_ok
	movl	$0xfee00000, (PCI_MSIX_TABLE + 16)(%esi)
	movl	$0, (PCI_MSIX_TABLE + 16 + 4)(%esi)
	movl	$0x41, (PCI_MSIX_TABLE + 16 + 8)(%esi)
	movl	$1, (PCI_MSIX_TABLE + 16 + 12)(%esi)
	mov	$PCI_CAP_POINTER, %ecx		/* find the MSI-X capability */
	call	pci_read8
1:	movzbl	%al, %ecx
	and	$0xfc, %ecx
	stc
	jz	2f
	call	pci_read8
	cmp	$PCI_CAP_ID_MSIX, %al
	je	3f
	inc	%ecx
	call	pci_read8
	jmp	1b
3:	call	pci_read
	or	$MSIX_CONTROL_ENABLE, %eax
	call	pci_write
	PRINT	"vio msix on\n"
	clc
2:	RESTORE	ax, bx, cx, si
	ret

/*
 * vio_msix_check: after an entropy request on virtio-pci, its interrupt
 * must be pending on masked vector 1 (soon: the device signals after it
 * fills the used ring), and go once the vector is unmasked; the vector
 * is masked again. Carry set if not.
 */
vio_msix_check:
	SAVE	cx, si
	mov	rng_base, %esi
	mov	$100000, %ecx
1:	testl	$2, PCI_MSIX_PBA(%esi)
	jnz	2f
	dec	%ecx
	jnz	1b
	stc
	jmp	3f
2:	movl	$0, (PCI_MSIX_TABLE + 16 + 12)(%esi)	/* unmask: delivered */
	testl	$2, PCI_MSIX_PBA(%esi)
	movl	$1, (PCI_MSIX_TABLE + 16 + 12)(%esi)	/* (keeps the flags) */
	jz	3f
	stc
3:	RESTORE	cx, si
	ret

	.globl	cmd_vio
cmd_vio:
	movl	$RNG_AREA, vq_area
	UP	VIRTIO_ID_RNG, 1
	jc	1f
	cmpl	$0, vt_pci
	je	0f
	call	vio_msix_up
	jc	1f
0:	mov	vt_base, %eax
	mov	%eax, rng_base
1:	movl	$VQ_AREA, vq_area
	UP	VIRTIO_ID_BLOCK, 1
	jc	2f
	mov	vt_base, %eax
	mov	%eax, blk_base
2:	movl	$0, vio_lines
3:	movl	$0, vio_failed
	cmpl	$0, rng_base
	je	4f
	call	vio_rng
	jc	8f
	cmpl	$0, vt_pci
	je	4f
	call	vio_msix_check
	jnc	4f
8:	incl	vio_failed
4:	cmpl	$0, blk_base
	je	5f
	call	vio_blk
	jnc	5f
	incl	vio_failed
5:	incl	vio_lines
	PRINT	"vio "
	mov	vio_lines, %eax
	call	print_dec
	cmpl	$0, vio_failed
	jne	6f
	PRINT	" ok\n"
	jmp	7f
6:	PRINT	" FAILED\n"
7:	mov	$COM1_LSR, %dx
	in	%dx, %al
	test	$LSR_DATA_READY, %al
	jz	3b
	mov	$COM1, %dx
	in	%dx, %al
	cmp	$'P', %al
	jne	3b
	jmp	poweroff
