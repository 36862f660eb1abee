/*
 * Hostile commands on the queues: a guest that feeds the virtio devices
 * (rng, blk, vsock, net and balloon) what no honest driver would, on
 * either transport, then checks (checks.S) that each still works after a
 * reset, and powers off. A device that is absent is skipped. The VMM must
 * neither hang, nor spin, nor die, whatever happens here.
 * hostile_regs.S has the commands on registers and configuration spaces,
 * hostile_vsock.S the vsock room-0 case.
 *
 * The macros (virtio.h) clobber %eax, %ebx, %ecx, %edx, %esi and %edi:
 * loop counters live in %ebp.
 */
#include "mode.h"
#include "layout.h"
#include "virtio.h"

	.text

/* ------------------------------------------------------ shared mischief */

/*
 * rings_outside: start the current device with every descriptor table at
 * 0xffffffff_000xxxxx, where no RAM is, and kick it; %ecx queues.
 */
rings_outside:
	SAVE	bx
	movl	$0xffffffff, vq_desc_hi
	call	vt_init
	xor	%ebx, %ebx
1:	call	vt_queue
	inc	%ebx
	cmp	%ecx, %ebx
	jb	1b
	call	vt_driver_ok
	xor	%ebx, %ebx
2:	call	vt_kick
	inc	%ebx
	cmp	%ecx, %ebx
	jb	2b
	movl	$0, vq_desc_hi
	RESTORE	bx
	ret

/*
 * loops: chains on queue %ebx that never end, each descriptor %eax, %edx
 * bytes, flags %ebp (NEXT added): two descriptors pointing at each other,
 * one pointing at itself, one whose next is out of range, a ring of QSIZE,
 * and heads out of range.
 */
loops:
	SAVE	ax, cx, dx, si, di
	mov	%ebp, %esi
	or	$(DESC_F_NEXT | (1 << 16)), %esi
	xor	%ecx, %ecx
	call	vq_set				/* 0 -> 1 */
	mov	%ebp, %esi
	or	$DESC_F_NEXT, %esi
	inc	%ecx
	call	vq_set				/* 1 -> 0 */
	xor	%ecx, %ecx
	call	vq_submit
	call	vq_set				/* 0 -> 0 */
	call	vq_submit
	mov	%ebp, %esi
	or	$(DESC_F_NEXT | (0xffff << 16)), %esi
	call	vq_set				/* 0 -> 0xffff */
	call	vq_submit
	mov	$1, %ecx			/* i -> i + 1, the last -> 0 */
1:	mov	%ecx, %esi
	and	$(QSIZE - 1), %esi
	shl	$16, %esi
	or	%ebp, %esi
	or	$DESC_F_NEXT, %esi
	SAVE	cx
	dec	%ecx
	call	vq_set
	RESTORE	cx
	inc	%ecx
	cmp	$QSIZE, %ecx
	jbe	1b
	xor	%ecx, %ecx
	call	vq_submit
	mov	$0xffff, %ecx
	call	vq_submit
	mov	$QSIZE, %ecx
	call	vq_submit
	RESTORE	ax, cx, dx, si, di
	ret

/*
 * outside: single-descriptor chains on queue %ebx with flags %ebp, of
 * %edx bytes at addresses with no RAM: below the hole, in the hole, at
 * 4 GiB, near 2^64 (wrapping past it), and one running from RAM off its end.
 */
outside:
	SAVE	ax, cx, dx, si, di
	mov	%ebp, %esi
	xor	%ecx, %ecx
	mov	$ADDR_NO_RAM, %eax
	call	vq_set
	call	vq_submit
	mov	$ADDR_HOLE, %eax
	call	vq_set
	call	vq_submit
	xor	%eax, %eax
	call	vq_set
	movl	$1, (DESC_ADDR + 4)(%edi)	/* 4 GiB */
	call	vq_submit
	mov	$0xfffffff0, %eax
	call	vq_set
	movl	$0xffffffff, (DESC_ADDR + 4)(%edi)
	call	vq_submit
	mov	$0xffffffff, %eax
	call	vq_set
	movl	$0xffffffff, (DESC_ADDR + 4)(%edi)
	call	vq_submit
	mov	$BUF, %eax
	mov	$0xffffffff, %edx
	call	vq_set
	call	vq_submit
	RESTORE	ax, cx, dx, si, di
	ret

/*
 * indexes: on queue %ebx, whose descriptor 0 the caller filled, avail
 * indexes that jump past the queue size (by 0x8000, to 0xffff, by
 * QSIZE + 1) and ring entries out of range.
 */
indexes:
	SAVE	ax, cx, di
	call	vq_addr
	xor	%ecx, %ecx
	call	vq_push
	addw	$0x8000, (VQ_AVAIL + 2)(%edi)
	call	vt_kick
	call	vq_wait
	movw	$0xffff, (VQ_AVAIL + 2)(%edi)
	call	vt_kick
	call	vq_wait
	addw	$(QSIZE + 1), (VQ_AVAIL + 2)(%edi)
	call	vt_kick
	call	vq_wait
	mov	$0xffff, %ecx
	call	vq_push
	mov	$0x8000, %ecx
	call	vq_push
	mov	$QSIZE, %ecx
	call	vq_submit
	RESTORE	ax, cx, di
	ret

/* kick_storm: notify queues 0 to 3, 0xffff and 0xffffffff %ebp times each. */
kick_storm:
	SAVE	bx, cx
	mov	%ebp, %ecx
1:	xor	%ebx, %ebx
2:	call	vt_kick
	inc	%ebx
	cmp	$3, %ebx
	jbe	2b
	mov	$0xffff, %ebx
	call	vt_kick
	mov	$0xffffffff, %ebx
	call	vt_kick
	dec	%ecx
	jnz	1b
	RESTORE	bx, cx
	ret

/* ------------------------------------------------------------- commands */

/* hostile_zero: zero-length and header-only buffers. */
	.globl	cmd_hostile_zero
cmd_hostile_zero:
	UP	VIRTIO_ID_RNG, 1
	jc	1f
	DESC	0, 0, BUF, 0, DESC_F_WRITE
	SUBMIT	0, 0
	DESC	0, 0, BUF, 0, DESC_F_WRITE|DESC_F_NEXT, 1
	DESC	0, 1, BUF, 0, DESC_F_WRITE
	SUBMIT	0, 0
	DESC	0, 0, BUF, 16			/* nothing writable */
	SUBMIT	0, 0
	UP	VIRTIO_ID_RNG, 1
	call	rng_check
1:	UP	VIRTIO_ID_BLOCK, 1
	jc	2f
	call	blk_header
	DESC	0, 0, BLK_HEADER, 16		/* a header, no status */
	SUBMIT	0, 0
	DESC	0, 0, BLK_HEADER, 0		/* nothing at all */
	SUBMIT	0, 0
	DESC	0, 0, BLK_HEADER, 16, DESC_F_NEXT, 1
	DESC	0, 1, BLK_STATUS, 0, DESC_F_WRITE	/* a status of no bytes */
	SUBMIT	0, 0
	DESC	0, 0, BLK_HEADER, 0, DESC_F_NEXT, 1	/* an empty header */
	DESC	0, 1, BLK_STATUS, 1, DESC_F_WRITE
	SUBMIT	0, 0
	DESC	0, 0, BLK_HEADER, 16, DESC_F_NEXT, 1
	DESC	0, 1, BLK_DATA, 0, DESC_F_WRITE|DESC_F_NEXT, 2	/* no data */
	DESC	0, 2, BLK_STATUS, 1, DESC_F_WRITE
	SUBMIT	0, 0
	movl	$BLK_T_OUT, BLK_HEADER		/* a write of no data */
	DESC	0, 0, BLK_HEADER, 16, DESC_F_NEXT, 1
	DESC	0, 1, BLK_DATA, 0, DESC_F_NEXT, 2
	DESC	0, 2, BLK_STATUS, 1, DESC_F_WRITE
	SUBMIT	0, 0
	UP	VIRTIO_ID_BLOCK, 1
	call	blk_check
2:	call	vsock_up
	jc	3f
	DESC	1, 0, VS_TX, 0			/* no header */
	SUBMIT	1, 0
	call	vs_request_dead
	DESC	1, 0, VS_TX, VSOCK_HEADER-1	/* a header one byte short */
	SUBMIT	1, 0
	DESC	0, 0, VS_RX, 0, DESC_F_WRITE	/* receive buffers too small for the RST */
	DESC	0, 1, VS_RX, VSOCK_HEADER-1, DESC_F_WRITE
	OFFER	0, 0
	OFFER	0, 1
	DESC	1, 0, VS_TX, VSOCK_HEADER	/* a RST is owed */
	SUBMIT	1, 0
	mov	$0, %ebx
	call	vq_wait
	DESC	0, 0, VS_RX, VSOCK_HEADER, DESC_F_WRITE	/* exactly a header */
	OFFER	0, 0
	call	vq_wait
	call	vsock_up
	call	vsock_check
3:	UP	VIRTIO_ID_NET, 2
	jc	4f
	DESC	1, 0, NET_TX, 0			/* nothing */
	SUBMIT	1, 0
	DESC	1, 0, NET_TX, NET_HEADER-1	/* a short header */
	SUBMIT	1, 0
	DESC	1, 0, NET_TX, NET_HEADER	/* a header, no frame */
	SUBMIT	1, 0
	DESC	1, 0, NET_TX, NET_HEADER, DESC_F_NEXT, 1	/* and an empty one */
	DESC	1, 1, NET_TX+NET_HEADER, 0
	SUBMIT	1, 0
	DESC	0, 0, NET_RX, 0, DESC_F_WRITE	/* receive buffers with no room */
	DESC	0, 1, NET_RX, NET_HEADER, DESC_F_WRITE
	OFFER	0, 0
	OFFER	0, 1
	UP	VIRTIO_ID_NET, 2
	call	net_check
4:	UP	VIRTIO_ID_BALLOON, 2
	jc	5f
	DESC	0, 0, BALLOON_PFNS, 0		/* no PFN */
	SUBMIT	0, 0
	DESC	0, 0, BALLOON_PFNS, 3		/* most of one */
	SUBMIT	0, 0
	DESC	1, 0, BALLOON_PFNS, 0
	SUBMIT	1, 0
	UP	VIRTIO_ID_BALLOON, 2
	call	balloon_check
5:	PRINT	"hostile_zero done\n"
	jmp	poweroff

/* hostile_loop: descriptor chains that loop, and heads out of range. */
	.globl	cmd_hostile_loop
cmd_hostile_loop:
	UP	VIRTIO_ID_RNG, 1
	jc	1f
	xor	%ebx, %ebx
	mov	$BUF, %eax
	mov	$16, %edx
	mov	$DESC_F_WRITE, %ebp
	call	loops
	UP	VIRTIO_ID_RNG, 1
	call	rng_check
1:	UP	VIRTIO_ID_BLOCK, 1
	jc	2f
	call	blk_header
	xor	%ebx, %ebx
	mov	$BLK_HEADER, %eax
	mov	$16, %edx
	xor	%ebp, %ebp
	call	loops
	mov	$BLK_STATUS, %eax		/* all writable: a status, no header */
	mov	$1, %edx
	mov	$DESC_F_WRITE, %ebp
	call	loops
	UP	VIRTIO_ID_BLOCK, 1
	call	blk_check
2:	call	vsock_up
	jc	3f
	call	vs_request_dead
	mov	$1, %ebx
	mov	$VS_TX, %eax
	mov	$VSOCK_HEADER, %edx
	xor	%ebp, %ebp
	call	loops
	DESC	1, 0, VS_TX, VSOCK_HEADER	/* a RST for the receive loops */
	SUBMIT	1, 0
	xor	%ebx, %ebx
	mov	$VS_RX, %eax
	mov	$VS_RX_LEN, %edx
	mov	$DESC_F_WRITE, %ebp
	call	loops
	call	vsock_up
	call	vsock_check
3:	UP	VIRTIO_ID_NET, 2
	jc	4f
	call	net_frame
	mov	$1, %ebx
	mov	$NET_TX, %eax
	mov	$NET_TX_LEN, %edx
	xor	%ebp, %ebp
	call	loops
	xor	%ebx, %ebx
	mov	$NET_RX, %eax
	mov	$NET_RX_LEN, %edx
	mov	$DESC_F_WRITE, %ebp
	call	loops
	UP	VIRTIO_ID_NET, 2
	call	net_check
4:	UP	VIRTIO_ID_BALLOON, 2
	jc	5f
	call	balloon_pfn
	xor	%ebx, %ebx
	mov	$BALLOON_PFNS, %eax
	mov	$4, %edx
	xor	%ebp, %ebp
	call	loops
	UP	VIRTIO_ID_BALLOON, 2
	call	balloon_check
5:	PRINT	"hostile_loop done\n"
	jmp	poweroff

/* hostile_outside: rings and buffers where no RAM is, lengths that wrap. */
	.globl	cmd_hostile_outside
cmd_hostile_outside:
	mov	$VIRTIO_ID_RNG, %eax
	call	vt_find
	jc	1f
	mov	$1, %ecx
	call	rings_outside
	UP	VIRTIO_ID_RNG, 1
	xor	%ebx, %ebx
	mov	$16, %edx
	mov	$DESC_F_WRITE, %ebp
	call	outside
	UP	VIRTIO_ID_RNG, 1
	call	rng_check
1:	mov	$VIRTIO_ID_BLOCK, %eax
	call	vt_find
	jc	2f
	mov	$1, %ecx
	call	rings_outside
	UP	VIRTIO_ID_BLOCK, 1
	xor	%ebx, %ebx
	mov	$16, %edx
	xor	%ebp, %ebp
	call	outside				/* headers outside, no status */
	call	blk_outside
	UP	VIRTIO_ID_BLOCK, 1
	call	blk_check
2:	mov	$VIRTIO_ID_VSOCK, %eax
	call	vt_find
	jc	3f
	mov	$3, %ecx
	call	rings_outside
	call	vsock_up
	mov	$1, %ebx
	mov	$VSOCK_HEADER, %edx
	xor	%ebp, %ebp
	call	outside				/* packet headers outside */
	call	vs_request_dead			/* a RST for the receive buffers */
	DESC	1, 0, VS_TX, VSOCK_HEADER
	SUBMIT	1, 0
	xor	%ebx, %ebx
	mov	$VS_RX_LEN, %edx
	mov	$DESC_F_WRITE, %ebp
	call	outside
	call	vsock_up
	call	vsock_check
3:	mov	$VIRTIO_ID_NET, %eax
	call	vt_find
	jc	4f
	mov	$2, %ecx
	call	rings_outside
	UP	VIRTIO_ID_NET, 2
	mov	$1, %ebx
	mov	$NET_TX_LEN, %edx
	xor	%ebp, %ebp
	call	outside
	xor	%ebx, %ebx
	mov	$NET_RX_LEN, %edx
	mov	$DESC_F_WRITE, %ebp
	call	outside
	UP	VIRTIO_ID_NET, 2
	call	net_check
4:	mov	$VIRTIO_ID_BALLOON, %eax
	call	vt_find
	jc	5f
	mov	$2, %ecx
	call	rings_outside
	UP	VIRTIO_ID_BALLOON, 2
	xor	%ebx, %ebx
	mov	$4, %edx
	xor	%ebp, %ebp
	call	outside
	call	balloon_bad_pfns
	UP	VIRTIO_ID_BALLOON, 2
	call	balloon_check
5:	PRINT	"hostile_outside done\n"
	jmp	poweroff

/*
 * blk_outside: well-formed block requests whose header, data or status
 * lie outside RAM or wrap past 2^64.
 */
blk_outside:
	call	blk_header
	DESC	0, 0, BLK_HEADER, 16, DESC_F_NEXT, 1
	DESC	0, 1, ADDR_NO_RAM, 512, DESC_F_WRITE|DESC_F_NEXT, 2	/* data */
	DESC	0, 2, BLK_STATUS, 1, DESC_F_WRITE
	SUBMIT	0, 0
	DESC	0, 1, 0xffffff00, 0x200, DESC_F_WRITE|DESC_F_NEXT, 2	/* data wrapping */
	DESC_HI	0, 1, 0xffffffff
	SUBMIT	0, 0
	DESC	0, 1, 0xffffff00, 0x201, DESC_F_WRITE	/* status past 2^64 */
	DESC_HI	0, 1, 0xffffffff
	SUBMIT	0, 0
	DESC	0, 1, 0xffffffff, 1, DESC_F_WRITE	/* status at 2^64 - 1 */
	DESC_HI	0, 1, 0xffffffff
	SUBMIT	0, 0
	movl	$BLK_T_OUT, BLK_HEADER		/* a write from the hole */
	DESC	0, 1, ADDR_HOLE, 512, DESC_F_NEXT, 2
	DESC	0, 2, BLK_STATUS, 1, DESC_F_WRITE
	SUBMIT	0, 0
	ret

/*
 * hostile_blkwrap: a block request whose header descriptor runs from
 * 2^64 - 8 past 2^64 (kept apart from hostile_outside: it panics the
 * virtio-blk worker of a build with overflow checks).
 */
	.globl	cmd_hostile_blkwrap
cmd_hostile_blkwrap:
	UP	VIRTIO_ID_BLOCK, 1
	jc	1f
	call	blk_header
	DESC	0, 0, 0xfffffff8, 0x20, DESC_F_NEXT, 1
	DESC_HI	0, 0, 0xffffffff
	DESC	0, 1, BLK_STATUS, 1, DESC_F_WRITE
	SUBMIT	0, 0
	UP	VIRTIO_ID_BLOCK, 1
	call	blk_check
1:	PRINT	"hostile_blkwrap done\n"
	jmp	poweroff

/*
 * overlap: start the device of type %eax with %ecx queues, queue %ebx's
 * used ring laid over its avail ring, so that the device's every used
 * entry and index rewrites the ring it reads; make descriptor 0 (filled
 * by the caller) available, kick, and let it run for one wait.
 */
overlap:
	SAVE	ax, cx
	movl	$VQ_AVAIL, vq_used_off
	call	dev_up
	movl	$VQ_USED, vq_used_off
	jc	1f
	xor	%ecx, %ecx
	call	vq_push
	call	vt_kick
	call	vq_wait
1:	RESTORE	ax, cx
	ret

/* hostile_overlap: used rings laid over avail rings. */
	.globl	cmd_hostile_overlap
cmd_hostile_overlap:
	DESC	0, 0, BUF, 16, DESC_F_WRITE
	mov	$VIRTIO_ID_RNG, %eax
	mov	$1, %ecx
	call	overlap
	UP	VIRTIO_ID_RNG, 1
	jc	1f
	call	rng_check
1:	call	blk_header
	DESC	0, 0, BLK_HEADER, 16, DESC_F_NEXT, 1
	DESC	0, 1, BLK_DATA, 512, DESC_F_WRITE|DESC_F_NEXT, 2
	DESC	0, 2, BLK_STATUS, 1, DESC_F_WRITE
	mov	$VIRTIO_ID_BLOCK, %eax
	mov	$1, %ecx
	call	overlap
	UP	VIRTIO_ID_BLOCK, 1
	jc	2f
	call	blk_check
2:	mov	$VIRTIO_ID_VSOCK, %eax
	call	vt_find
	jc	3f
	call	vt_config
	mov	(%esi), %eax
	mov	%eax, vs_cid
	call	vs_request_dead
	DESC	1, 0, VS_TX, VSOCK_HEADER	/* RSTs without end */
	mov	$VIRTIO_ID_VSOCK, %eax
	mov	$3, %ecx
	call	overlap
	DESC	0, 0, VS_RX, VS_RX_LEN, DESC_F_WRITE
	mov	$VIRTIO_ID_VSOCK, %eax		/* the RST answers on the receive side */
	xor	%ebx, %ebx
	call	overlap
	call	vs_request_dead
	DESC	1, 0, VS_TX, VSOCK_HEADER
	SUBMIT	1, 0
	call	vq_wait
	call	vsock_up
	call	vsock_check
3:	call	net_frame
	DESC	1, 0, NET_TX, NET_TX_LEN
	mov	$VIRTIO_ID_NET, %eax
	mov	$2, %ecx
	call	overlap
	UP	VIRTIO_ID_NET, 2
	jc	4f
	call	net_check
4:	call	balloon_pfn
	DESC	0, 0, BALLOON_PFNS, 4
	mov	$VIRTIO_ID_BALLOON, %eax
	mov	$2, %ecx
	call	overlap
	UP	VIRTIO_ID_BALLOON, 2
	jc	5f
	call	balloon_check
5:	PRINT	"hostile_overlap done\n"
	jmp	poweroff

/*
 * flood: 64 times over, start the device of type %eax with %ecx queues,
 * fill queue %ebx's avail ring with heads out of range, all made
 * available by one index update, and kick: QSIZE malformed requests the
 * device must refuse, without a log line for each.
 */
flood:
	SAVE	ax, dx, di, bp
	mov	$64, %ebp
1:	call	dev_up
	call	vq_addr
	xor	%edx, %edx
2:	movw	$0xffff, (VQ_AVAIL + 4)(%edi,%edx,2)
	inc	%edx
	cmp	$QSIZE, %edx
	jb	2b
	movw	$QSIZE, (VQ_AVAIL + 2)(%edi)
	call	vt_kick
	SAVE	ax
	mov	$FLOOD_DELAY, %eax
	call	delay
	RESTORE	ax
	dec	%ebp
	jnz	1b
	RESTORE	ax, dx, di, bp
	ret

/* hostile_flood: thousands of malformed avail entries, on every device. */
	.globl	cmd_hostile_flood
cmd_hostile_flood:
	UP	VIRTIO_ID_RNG, 1
	jc	1f
	xor	%ebx, %ebx
	call	flood
	UP	VIRTIO_ID_RNG, 1
	call	rng_check
1:	UP	VIRTIO_ID_BLOCK, 1
	jc	2f
	xor	%ebx, %ebx
	call	flood
	UP	VIRTIO_ID_BLOCK, 1
	call	blk_check
2:	call	vsock_up
	jc	3f
	mov	$VIRTIO_ID_VSOCK, %eax
	mov	$3, %ecx
	mov	$1, %ebx
	call	flood
	call	vsock_up
	call	vsock_check
3:	UP	VIRTIO_ID_NET, 2
	jc	4f
	mov	$1, %ebx
	call	flood
	UP	VIRTIO_ID_NET, 2
	call	net_check
4:	UP	VIRTIO_ID_BALLOON, 2
	jc	5f
	xor	%ebx, %ebx
	call	flood
	UP	VIRTIO_ID_BALLOON, 2
	call	balloon_check
5:	PRINT	"hostile_flood done\n"
	jmp	poweroff

/* hostile_index: avail indexes past the queue size, ring entries out of range. */
	.globl	cmd_hostile_index
cmd_hostile_index:
	UP	VIRTIO_ID_RNG, 1
	jc	1f
	DESC	0, 0, BUF, 16, DESC_F_WRITE
	call	indexes
	UP	VIRTIO_ID_RNG, 1
	call	rng_check
1:	UP	VIRTIO_ID_BLOCK, 1
	jc	2f
	call	blk_header
	DESC	0, 0, BLK_HEADER, 16, DESC_F_NEXT, 1
	DESC	0, 1, BLK_STATUS, 1, DESC_F_WRITE
	call	indexes
	UP	VIRTIO_ID_BLOCK, 1
	call	blk_check
2:	call	vsock_up
	jc	3f
	call	vs_request_dead
	DESC	1, 0, VS_TX, VSOCK_HEADER
	call	indexes
	DESC	0, 0, VS_RX, VS_RX_LEN, DESC_F_WRITE
	xor	%ebx, %ebx
	call	indexes
	call	vsock_up
	call	vsock_check
3:	UP	VIRTIO_ID_NET, 2
	jc	4f
	call	net_frame
	DESC	1, 0, NET_TX, NET_TX_LEN
	call	indexes
	DESC	0, 0, NET_RX, NET_RX_LEN, DESC_F_WRITE
	call	indexes
	UP	VIRTIO_ID_NET, 2
	call	net_check
4:	UP	VIRTIO_ID_BALLOON, 2
	jc	5f
	call	balloon_pfn
	DESC	0, 0, BALLOON_PFNS, 4
	call	indexes
	UP	VIRTIO_ID_BALLOON, 2
	call	balloon_check
5:	PRINT	"hostile_index done\n"
	jmp	poweroff

/*
 * hostile_reset: a device reset with requests in flight, 16 times over,
 * then a fresh start that must work.
 */
	.globl	cmd_hostile_reset
cmd_hostile_reset:
	mov	$16, %ebp
1:	UP	VIRTIO_ID_RNG, 1
	jc	2f
	xor	%ecx, %ecx			/* 8 requests of 4 KiB */
	xor	%ebx, %ebx
	mov	$DESC_F_WRITE, %esi
	mov	$0x1000, %edx
	mov	$BUF, %eax
9:	call	vq_set
	call	vq_push
	add	$0x1000, %eax
	inc	%ecx
	cmp	$8, %ecx
	jb	9b
	call	vt_kick
	dec	%ebp
	jnz	1b
	UP	VIRTIO_ID_RNG, 1
	call	rng_check
2:	mov	$16, %ebp
3:	UP	VIRTIO_ID_BLOCK, 1
	jc	4f
	call	blk_inflight
	dec	%ebp
	jnz	3b
	UP	VIRTIO_ID_BLOCK, 1
	call	blk_check
4:	mov	$16, %ebp
5:	call	vsock_up
	jc	6f
	xor	%ecx, %ecx			/* 4 receive buffers */
	xor	%ebx, %ebx
	mov	$DESC_F_WRITE, %esi
	mov	$0x100, %edx
	mov	$VS_RX, %eax
9:	call	vq_set
	call	vq_push
	add	$0x100, %eax
	inc	%ecx
	cmp	$4, %ecx
	jb	9b
	call	vt_kick
	call	vs_request_dead			/* 4 RSTs owed, and a connection */
	DESC	1, 0, VS_TX, VSOCK_HEADER
	mov	$1, %ebx
	xor	%ecx, %ecx
	call	vq_push
	call	vq_push
	call	vq_push
	call	vq_push
	mov	$(VSOCK_OP_REQUEST << 16), %eax
	mov	$VSOCK_HOST_PORT, %edx
	xor	%ecx, %ecx
	mov	$(VS_TX + 0x100), %edi
	call	vs_header
	DESC	1, 1, VS_TX+0x100, VSOCK_HEADER
	mov	$1, %ebx
	mov	$1, %ecx
	call	vq_push
	call	vt_kick
	dec	%ebp
	jnz	5b
	call	vsock_up
	call	vsock_check
6:	mov	$16, %ebp
10:	UP	VIRTIO_ID_NET, 2
	jc	12f
	call	net_frame
	DESC	1, 0, NET_TX, NET_TX_LEN	/* 4 frames */
	call	vq_push
	call	vq_push
	call	vq_push
	call	vq_push
	call	vt_kick
	xor	%ecx, %ecx			/* 4 receive buffers */
	xor	%ebx, %ebx
	mov	$DESC_F_WRITE, %esi
	mov	$NET_RX_LEN, %edx
	mov	$NET_RX, %eax
11:	call	vq_set
	call	vq_push
	add	$NET_RX_LEN, %eax
	inc	%ecx
	cmp	$4, %ecx
	jb	11b
	call	vt_kick
	dec	%ebp
	jnz	10b
	UP	VIRTIO_ID_NET, 2
	call	net_check
12:	mov	$16, %ebp
13:	UP	VIRTIO_ID_BALLOON, 2
	jc	14f
	call	balloon_pfn
	DESC	0, 0, BALLOON_PFNS, 4
	call	vq_push
	call	vq_push
	call	vq_push
	call	vq_push
	call	vt_kick
	dec	%ebp
	jnz	13b
	UP	VIRTIO_ID_BALLOON, 2
	call	balloon_check
14:	PRINT	"hostile_reset done\n"
	jmp	poweroff

/*
 * blk_inflight: 4 reads and 4 writes of 4 KiB at sector 0, each its own
 * chain, made available and notified at once (no wait).
 */
blk_inflight:
	call	blk_header
	movl	$BLK_T_OUT, (BLK_HEADER + 16)
	movl	$0, (BLK_HEADER + 20)
	movl	$0, (BLK_HEADER + 24)
	movl	$0, (BLK_HEADER + 28)
	SAVE	bp
	xor	%ebp, %ebp			/* request number */
1:	xor	%ebx, %ebx
	lea	(%ebp,%ebp,2), %ecx		/* descriptors 3n to 3n + 2 */
	mov	%ebp, %eax
	and	$1, %eax
	shl	$4, %eax
	add	$BLK_HEADER, %eax		/* even: read, odd: write */
	mov	$16, %edx
	lea	1(%ecx), %esi
	shl	$16, %esi
	or	$DESC_F_NEXT, %esi
	call	vq_set
	inc	%ecx
	mov	%ebp, %eax
	shl	$12, %eax
	add	$BUF, %eax
	mov	$0x1000, %edx
	lea	1(%ecx), %esi
	shl	$16, %esi
	or	$DESC_F_NEXT, %esi
	test	$1, %ebp
	jnz	2f
	or	$DESC_F_WRITE, %esi
2:	call	vq_set
	inc	%ecx
	lea	BLK_STATUS(%ebp), %eax
	mov	$1, %edx
	mov	$DESC_F_WRITE, %esi
	call	vq_set
	sub	$2, %ecx
	call	vq_push
	inc	%ebp
	cmp	$8, %ebp
	jb	1b
	call	vt_kick
	RESTORE	bp
	ret

/* hostile_kick: notifications without buffers, before and after the start. */
	.globl	cmd_hostile_kick
cmd_hostile_kick:
	mov	$VIRTIO_ID_RNG, %eax
	call	vt_find
	jc	1f
	call	vt_init
	mov	$64, %ebp
	call	kick_storm
	UP	VIRTIO_ID_RNG, 1
	mov	$1000, %ebp
	call	kick_storm
	call	rng_check			/* in place: nothing was ever queued */
1:	mov	$VIRTIO_ID_BLOCK, %eax
	call	vt_find
	jc	2f
	call	vt_init
	mov	$64, %ebp
	call	kick_storm
	UP	VIRTIO_ID_BLOCK, 1
	mov	$1000, %ebp
	call	kick_storm
	call	blk_check
2:	mov	$VIRTIO_ID_VSOCK, %eax
	call	vt_find
	jc	3f
	call	vt_init
	mov	$64, %ebp
	call	kick_storm
	call	vsock_up
	mov	$1000, %ebp
	call	kick_storm
	call	vsock_check
3:	mov	$VIRTIO_ID_NET, %eax
	call	vt_find
	jc	4f
	call	vt_init
	mov	$64, %ebp
	call	kick_storm
	UP	VIRTIO_ID_NET, 2
	mov	$1000, %ebp
	call	kick_storm
	call	net_check
4:	mov	$VIRTIO_ID_BALLOON, %eax
	call	vt_find
	jc	5f
	call	vt_init
	mov	$64, %ebp
	call	kick_storm
	UP	VIRTIO_ID_BALLOON, 2
	mov	$1000, %ebp
	call	kick_storm
	call	balloon_check
5:	PRINT	"hostile_kick done\n"
	jmp	poweroff
