/*
 * What the hostile commands check afterwards: one request per device
 * that must succeed (printing "<device> ok" or "<device> FAILED"), and
 * the requests they build on. Each works on the current device (virtio.S),
 * started with its queues.
 *
 * The macros (virtio.h) clobber %eax, %ebx, %ecx, %edx, %esi and %edi.
 */
#include "mode.h"
#include "layout.h"
#include "virtio.h"

	.data
	.balign	4
	.globl	vs_cid
vs_cid:		.long 0		/* the guest's vsock CID (low half) */

	.text

/* rng_request: a 16-byte request on queue 0; carry set unless it came
 * back full. */
	.globl	rng_request
rng_request:
	DESC	0, 0, BUF, 16, DESC_F_WRITE
	mov	$0, %ebx
	mov	$0, %ecx
	call	vq_push
	call	vt_kick
	call	vq_wait_long
	jc	1f
	cmp	$16, %eax
	je	1f
	stc
1:	ret

/* rng_check: rng_request must succeed. */
	.globl	rng_check
rng_check:
	call	rng_request
	jc	1f
	PRINT	"rng ok\n"
	ret
1:	PRINT	"rng FAILED\n"
	ret

/* blk_header: an IN request for sector 0 at BLK_HEADER, status 0xff. */
	.globl	blk_header
blk_header:
	movl	$BLK_T_IN, BLK_HEADER
	movl	$0, (BLK_HEADER + 4)
	movl	$0, (BLK_HEADER + 8)
	movl	$0, (BLK_HEADER + 12)
	movb	$0xff, BLK_STATUS
	ret

/* blk_read: one read of sector 0; carry set if it failed. */
	.globl	blk_read
blk_read:
	call	blk_header
	DESC	0, 0, BLK_HEADER, 16, DESC_F_NEXT, 1
	DESC	0, 1, BLK_DATA, 512, DESC_F_WRITE|DESC_F_NEXT, 2
	DESC	0, 2, BLK_STATUS, 1, DESC_F_WRITE
	mov	$0, %ebx
	mov	$0, %ecx
	call	vq_push
	call	vt_kick
	call	vq_wait_long
	jc	1f
	cmpb	$0, BLK_STATUS
	je	1f
	stc
1:	ret

/* blk_check: blk_read must succeed. */
	.globl	blk_check
blk_check:
	call	blk_read
	jc	1f
	PRINT	"blk ok\n"
	ret
1:	PRINT	"blk FAILED\n"
	ret

/* vsock_up: UP the vsock device (three queues) and read its CID. */
	.globl	vsock_up
vsock_up:
	UP	VIRTIO_ID_VSOCK, 3
	jc	1f
	call	vt_config
	mov	(%esi), %eax
	mov	%eax, vs_cid
	clc
1:	ret

/*
 * vs_header: a packet header at %edi from the guest's port to host port
 * %edx, operation %eax (shifted left 16: it shares a dword with the
 * type), payload length %ecx.
 */
	.globl	vs_header
vs_header:
	movl	$0, (VS_SRC_CID + 4)(%edi)
	movl	$0, (VS_DST_CID + 4)(%edi)
	movl	$0, 32(%edi)			/* flags */
	movl	$0, 40(%edi)			/* fwd_cnt */
	mov	%eax, VS_TYPE(%edi)		/* the op, then the type below */
	movw	$VSOCK_TYPE_STREAM, VS_TYPE(%edi)
	SAVE	ax
	mov	vs_cid, %eax
	mov	%eax, VS_SRC_CID(%edi)
	RESTORE	ax
	movl	$VSOCK_HOST_CID, VS_DST_CID(%edi)
	movl	$VSOCK_GUEST_PORT, VS_SRC_PORT(%edi)
	mov	%edx, VS_DST_PORT(%edi)
	mov	%ecx, VS_LEN(%edi)
	movl	$0x10000, VS_BUF_ALLOC(%edi)
	ret

/* vs_request_dead: a REQUEST to a port nothing listens on: a RST comes back. */
	.globl	vs_request_dead
vs_request_dead:
	mov	$(VSOCK_OP_REQUEST << 16), %eax
	mov	$VSOCK_DEAD_PORT, %edx
	xor	%ecx, %ecx
	mov	$VS_TX, %edi
	jmp	vs_header

/* vsock_check: a REQUEST to a dead port must be answered with a RST. */
	.globl	vsock_check
vsock_check:
	DESC	0, 0, VS_RX, VS_RX_LEN, DESC_F_WRITE
	OFFER	0, 0
	call	vs_request_dead
	DESC	1, 0, VS_TX, VSOCK_HEADER
	SUBMIT	1, 0
	mov	$0, %ebx
	call	vq_wait_long
	jc	1f
	cmp	$VSOCK_HEADER, %eax
	jne	1f
	cmpw	$VSOCK_OP_RST, (VS_RX + VS_OP)
	jne	1f
	PRINT	"vsock ok\n"
	ret
1:	PRINT	"vsock FAILED\n"
	ret

/* net_frame: a broadcast frame of an unused EtherType at NET_TX. */
	.globl	net_frame
net_frame:
	movl	$0, NET_TX			/* the header: no offloads */
	movl	$0, (NET_TX + 4)
	movl	$0, (NET_TX + 8)
	movl	$0xffffffff, (NET_TX + NET_HEADER)	/* to everyone */
	movw	$0xffff, (NET_TX + NET_HEADER + 4)
	movl	$0x12005452, (NET_TX + NET_HEADER + 6)	/* from 52:54:00:12:34:56 */
	movw	$0x5634, (NET_TX + NET_HEADER + 10)
	movw	$0xb588, (NET_TX + NET_HEADER + 12)	/* 0x88b5: local experimental */
	ret

/* net_check: a frame sent on the transmit queue must come back. */
	.globl	net_check
net_check:
	call	net_frame
	DESC	1, 0, NET_TX, NET_TX_LEN
	mov	$1, %ebx
	xor	%ecx, %ecx
	call	vq_push
	call	vt_kick
	call	vq_wait_long
	jc	1f
	PRINT	"net ok\n"
	ret
1:	PRINT	"net FAILED\n"
	ret

/* balloon_pfn: an inflate (or deflate) request for BALLOON_PAGE. */
	.globl	balloon_pfn
balloon_pfn:
	movl	$(BALLOON_PAGE >> 12), BALLOON_PFNS
	ret

/* balloon_check: giving up one page must be acknowledged. */
	.globl	balloon_check
balloon_check:
	call	balloon_pfn
	DESC	0, 0, BALLOON_PFNS, 4
	xor	%ebx, %ebx
	xor	%ecx, %ecx
	call	vq_push
	call	vt_kick
	call	vq_wait_long
	jc	1f
	PRINT	"balloon ok\n"
	ret
1:	PRINT	"balloon FAILED\n"
	ret

/* balloon_bad_pfns: inflate and deflate pages that are not RAM. */
	.globl	balloon_bad_pfns
balloon_bad_pfns:
	movl	$0xffffffff, BALLOON_PFNS
	movl	$(ADDR_HOLE >> 12), (BALLOON_PFNS + 4)
	movl	$0x100000, (BALLOON_PFNS + 8)	/* 4 GiB */
	movl	$0x8000, (BALLOON_PFNS + 12)	/* 128 MiB: just past RAM */
	DESC	0, 0, BALLOON_PFNS, 16
	SUBMIT	0, 0
	DESC	1, 0, BALLOON_PFNS, 16
	SUBMIT	1, 0
	ret
