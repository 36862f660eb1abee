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

	.globl	cmd_vio
cmd_vio:
	movl	$RNG_AREA, vq_area
	UP	VIRTIO_ID_RNG, 1
	jc	1f
	mov	vt_base, %eax
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
	jnc	4f
	incl	vio_failed
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
