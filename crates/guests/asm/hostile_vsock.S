/*
 * The vsock case of issue 25: a receive buffer with room for a packet
 * header and none for the data the host has waiting.
 */
#include "mode.h"
#include "layout.h"
#include "virtio.h"

	.text

/*
 * hostile_vsock: connect to the host's port VSOCK_HOST_PORT, send a line,
 * then offer a receive buffer with room for a packet header and no data
 * while the host's reply waits; once the test sends a byte on COM1, reset
 * the machine if it is 'R', reset the vsock device and then power off if
 * it is 'D', wait for an event (a restored device's transport reset) in
 * the event buffer it posted first and then power off if it is 'E', else
 * power off.
 */
	.globl	cmd_hostile_vsock
cmd_hostile_vsock:
	call	vsock_up
	jc	8f
	movl	$-1, VS_EVENT
	DESC	VSOCK_EVENT_QUEUE, 0, VS_EVENT, VSOCK_EVENT_SIZE, DESC_F_WRITE
	OFFER	VSOCK_EVENT_QUEUE, 0
	DESC	0, 0, VS_RX, VS_RX_LEN, DESC_F_WRITE
	OFFER	0, 0
	mov	$(VSOCK_OP_REQUEST << 16), %eax
	mov	$VSOCK_HOST_PORT, %edx
	xor	%ecx, %ecx
	mov	$VS_TX, %edi
	call	vs_header
	DESC	1, 0, VS_TX, VSOCK_HEADER
	SUBMIT	1, 0
	mov	$0, %ebx
	call	vq_wait_long
	jc	9f
	cmpw	$VSOCK_OP_RESPONSE, (VS_RX + VS_OP)
	jne	9f
	PRINT	"vsock connected\n"
	mov	$(VSOCK_OP_RW << 16), %eax
	mov	$VSOCK_HOST_PORT, %edx
	mov	$6, %ecx
	mov	$VS_TX, %edi
	call	vs_header
	movl	$0x6c6c6568, (VS_TX + VSOCK_HEADER)	/* "hell" */
	movw	$0x0a6f, (VS_TX + VSOCK_HEADER + 4)	/* "o\n" */
	DESC	1, 0, VS_TX, VSOCK_HEADER+6
	SUBMIT	1, 0
	DESC	0, 0, VS_RX, VSOCK_HEADER, DESC_F_WRITE	/* no room for data */
	OFFER	0, 0
	PRINT	"vsock waiting\n"
	call	getc
	cmp	$'R', %al
	je	1f
	cmp	$'D', %al
	je	2f
	cmp	$'E', %al
	je	3f
	PRINT	"vsock powering off\n"
	jmp	poweroff
1:	PRINT	"vsock resetting\n"
	jmp	reset_i8042
2:	xor	%eax, %eax			/* reset the device alone, then power off */
	call	vt_set_status
	PRINT	"vsock device reset\n"
	jmp	poweroff
3:	mov	$VSOCK_EVENT_QUEUE, %ebx
	call	vq_wait_long
	jc	4f
	cmp	$VSOCK_EVENT_SIZE, %eax
	jne	4f
	cmpl	$VSOCK_TRANSPORT_RESET, VS_EVENT
	jne	4f
	PRINT	"vsock transport reset\n"
	jmp	poweroff
4:	PRINT	"vsock event FAILED\n"
	jmp	poweroff
8:	PRINT	"hostile_vsock: no vsock device\n"
	jmp	poweroff
9:	PRINT	"hostile_vsock: not connected\n"
	jmp	poweroff
