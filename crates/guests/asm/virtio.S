/*
 * A small virtio driver for the hostile commands: finds a device on
 * virtio-mmio or virtio-pci, resets it, negotiates VERSION_1 alone, sets
 * up split queues in fixed guest RAM (virtio.h), adds chains, notifies,
 * and polls the used ring for a bounded time. One device at a time: the
 * current one is in vt_*. Only the register accesses know the transport.
 *
 * Every routine keeps every register except the documented outputs.
 */
#include "mode.h"
#include "layout.h"
#include "virtio.h"

	.data
	.balign	4
	.globl	vt_pci, vt_base, vt_slot, vq_desc_hi
vt_pci:		.long 0		/* 1: the current device is virtio-pci */
vt_base:	.long 0		/* its virtio-mmio page, or its BAR 0 */
vt_slot:	.long 0		/* its PCI device number */
vq_desc_hi:	.long 0		/* high half of the next queue's descriptor table */
	.globl	vq_used_off
vq_used_off:	.long VQ_USED	/* where the next queue's used ring is, from its table */
	.globl	vq_area
vq_area:	.long VQ_AREA	/* where queue 0 of the current device lies */

	.text

/* pci_select: CONFIG_ADDRESS for register %ecx of device vt_slot. */
pci_select:
	SAVE	ax, dx
	mov	vt_slot, %eax
	shl	$11, %eax
	or	%ecx, %eax
	and	$0xfffffffc, %eax
	or	$PCI_ENABLE, %eax
	mov	$PCI_CONFIG_ADDRESS, %dx
	out	%eax, %dx
	RESTORE	ax, dx
	ret

/* pci_read: dword register %ecx of device vt_slot, in %eax. */
	.globl	pci_read
pci_read:
	SAVE	dx
	call	pci_select
	mov	$PCI_CONFIG_DATA, %dx
	in	%dx, %eax
	RESTORE	dx
	ret

/* pci_write: %eax to dword register %ecx of device vt_slot. */
	.globl	pci_write
pci_write:
	SAVE	dx
	call	pci_select
	mov	$PCI_CONFIG_DATA, %dx
	out	%eax, %dx
	RESTORE	dx
	ret

/* pci_write8, pci_read8: byte %ecx of configuration space, from/to %al. */
	.globl	pci_write8, pci_read8
pci_write8:
	SAVE	dx
	call	pci_select
	mov	%ecx, %edx
	and	$3, %edx
	add	$PCI_CONFIG_DATA, %edx
	out	%al, %dx
	RESTORE	dx
	ret

pci_read8:
	SAVE	dx
	call	pci_select
	mov	%ecx, %edx
	and	$3, %edx
	add	$PCI_CONFIG_DATA, %edx
	in	%dx, %al
	RESTORE	dx
	ret

/*
 * vt_find: make the device of type %eax current: the first virtio-mmio
 * page that holds one, else the first PCI function. Carry set if none.
 */
	.globl	vt_find
vt_find:
	SAVE	ax, bx, cx, dx, si
	mov	%eax, %edx
	mov	$MMIO_FIRST, %esi
	mov	$MMIO_SLOTS, %ecx
1:	cmpl	$MMIO_MAGIC_VALUE, MMIO_MAGIC(%esi)
	jne	2f
	cmp	%edx, MMIO_DEVICE_ID(%esi)
	jne	2f
	movl	$0, vt_pci
	mov	%esi, vt_base
	jmp	5f
2:	add	$MMIO_STRIDE, %esi
	dec	%ecx
	jnz	1b
	lea	PCI_DEVICE_MODERN(%edx), %ebx
	shl	$16, %ebx
	or	$PCI_VENDOR_VIRTIO, %ebx	/* the ID dword: device << 16 | vendor */
	movl	$1, vt_slot
	xor	%ecx, %ecx
3:	call	pci_read
	cmp	%ebx, %eax
	je	4f
	incl	vt_slot
	cmpl	$PCI_SLOTS, vt_slot
	jb	3b
	stc
	jmp	6f
4:	mov	$PCI_BAR0, %ecx
	call	pci_read
	and	$0xfffffff0, %eax
	mov	%eax, vt_base
	movl	$1, vt_pci
	mov	$PCI_COMMAND, %ecx
	call	pci_read
	or	$PCI_COMMAND_ENABLE, %eax
	call	pci_write
5:	clc
6:	RESTORE	ax, bx, cx, dx, si
	ret

/* vt_set_status: write %eax to the device status. */
	.globl	vt_set_status
vt_set_status:
	SAVE	si
	mov	vt_base, %esi
	cmpl	$0, vt_pci
	jne	1f
	mov	%eax, MMIO_STATUS(%esi)
	jmp	2f
1:	movb	%al, PCI_DEVICE_STATUS(%esi)
2:	RESTORE	si
	ret

/* vt_status: the device status, in %eax. */
	.globl	vt_status
vt_status:
	SAVE	si
	mov	vt_base, %esi
	cmpl	$0, vt_pci
	jne	1f
	mov	MMIO_STATUS(%esi), %eax
	jmp	2f
1:	movzbl	PCI_DEVICE_STATUS(%esi), %eax
2:	RESTORE	si
	ret

/*
 * vt_init: reset the current device and negotiate VERSION_1 (feature 32)
 * alone, up to FEATURES_OK. Carry set if the device refuses.
 */
	.globl	vt_init
vt_init:
	SAVE	ax, si
	xor	%eax, %eax
	call	vt_set_status
	mov	$STATUS_ACKNOWLEDGE, %eax
	call	vt_set_status
	mov	$(STATUS_ACKNOWLEDGE | STATUS_DRIVER), %eax
	call	vt_set_status
	mov	vt_base, %esi
	cmpl	$0, vt_pci
	jne	1f
	movl	$0, MMIO_DRIVER_FEATURES_SEL(%esi)
	movl	$0, MMIO_DRIVER_FEATURES(%esi)
	movl	$1, MMIO_DRIVER_FEATURES_SEL(%esi)
	movl	$1, MMIO_DRIVER_FEATURES(%esi)
	jmp	2f
1:	movl	$0, PCI_DRIVER_FEATURE_SELECT(%esi)
	movl	$0, PCI_DRIVER_FEATURE(%esi)
	movl	$1, PCI_DRIVER_FEATURE_SELECT(%esi)
	movl	$1, PCI_DRIVER_FEATURE(%esi)
2:	mov	$(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK), %eax
	call	vt_set_status
	call	vt_status
	test	$STATUS_FEATURES_OK, %eax
	jnz	3f
	stc
	jmp	4f
3:	clc
4:	RESTORE	ax, si
	ret

/* vt_driver_ok: tell the device the driver is ready: it starts. */
	.globl	vt_driver_ok
vt_driver_ok:
	SAVE	ax
	mov	$(STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK), %eax
	call	vt_set_status
	RESTORE	ax
	ret

/* vq_addr: the descriptor table of queue %ebx, in %edi (rings follow). */
	.globl	vq_addr
vq_addr:
	mov	%ebx, %edi
	shl	$14, %edi			/* VQ_STRIDE */
	add	vq_area, %edi
	ret

/*
 * vt_queue: set up queue %ebx with QSIZE entries, empty rings, and make it
 * ready. The descriptor table's high half is vq_desc_hi (0 but for tests
 * of rings outside RAM) and the used ring is vq_used_off past the table
 * (VQ_USED but for tests of a used ring laid over the avail ring).
 */
	.globl	vt_queue
vt_queue:
	SAVE	ax, si, di
	call	vq_addr
	movl	$0, VQ_AVAIL(%edi)		/* flags and idx */
	movl	$0, VQ_USED(%edi)
	mov	vt_base, %esi
	cmpl	$0, vt_pci
	jne	1f
	mov	%ebx, MMIO_QUEUE_SEL(%esi)
	movl	$QSIZE, MMIO_QUEUE_NUM(%esi)
	mov	%edi, MMIO_QUEUE_DESC(%esi)
	mov	vq_desc_hi, %eax
	mov	%eax, (MMIO_QUEUE_DESC + 4)(%esi)
	lea	VQ_AVAIL(%edi), %eax
	mov	%eax, MMIO_QUEUE_DRIVER(%esi)
	movl	$0, (MMIO_QUEUE_DRIVER + 4)(%esi)
	mov	vq_used_off, %eax
	add	%edi, %eax
	mov	%eax, MMIO_QUEUE_DEVICE(%esi)
	movl	$0, (MMIO_QUEUE_DEVICE + 4)(%esi)
	movl	$1, MMIO_QUEUE_READY(%esi)
	jmp	2f
1:	movw	%bx, PCI_QUEUE_SELECT(%esi)
	movw	$QSIZE, PCI_QUEUE_SIZE(%esi)
	mov	%edi, PCI_QUEUE_DESC(%esi)
	mov	vq_desc_hi, %eax
	mov	%eax, (PCI_QUEUE_DESC + 4)(%esi)
	lea	VQ_AVAIL(%edi), %eax
	mov	%eax, PCI_QUEUE_DRIVER(%esi)
	movl	$0, (PCI_QUEUE_DRIVER + 4)(%esi)
	mov	vq_used_off, %eax
	add	%edi, %eax
	mov	%eax, PCI_QUEUE_DEVICE(%esi)
	movl	$0, (PCI_QUEUE_DEVICE + 4)(%esi)
	movw	$1, PCI_QUEUE_ENABLE(%esi)
2:	RESTORE	ax, si, di
	ret

/*
 * vt_kick: notify queue %ebx. On virtio-pci the address is the queue's
 * (any number folded into the notification page) and the value its number.
 */
	.globl	vt_kick
vt_kick:
	SAVE	ax, si
	mov	vt_base, %esi
	cmpl	$0, vt_pci
	jne	1f
	mov	%ebx, MMIO_QUEUE_NOTIFY(%esi)
	jmp	2f
1:	mov	%ebx, %eax
	and	$(PCI_NOTIFY_QUEUES - 1), %eax
	lea	PCI_NOTIFY(%esi,%eax,4), %esi
	movw	%bx, (%esi)
2:	RESTORE	ax, si
	ret

/* vt_config: the device configuration space, in %esi. */
	.globl	vt_config
vt_config:
	mov	vt_base, %esi
	cmpl	$0, vt_pci
	jne	1f
	add	$MMIO_CONFIG, %esi
	ret
1:	add	$PCI_DEVICE_CONFIG, %esi
	ret

/*
 * vq_set: descriptor %ecx (mod 256) of queue %ebx: address %eax (high
 * half 0), length %edx, flags and next in %esi (flags | next << 16).
 * Returns the descriptor's address in %edi.
 */
	.globl	vq_set
vq_set:
	SAVE	cx
	call	vq_addr
	and	$0xff, %ecx
	shl	$4, %ecx			/* DESC_SIZE */
	add	%ecx, %edi
	mov	%eax, DESC_ADDR(%edi)
	movl	$0, (DESC_ADDR + 4)(%edi)
	mov	%edx, DESC_LEN(%edi)
	mov	%esi, DESC_FLAGS(%edi)
	RESTORE	cx
	ret

/* vq_push: make the chain with head %ecx available on queue %ebx. */
	.globl	vq_push
vq_push:
	SAVE	ax, dx, di
	call	vq_addr
	movzwl	(VQ_AVAIL + 2)(%edi), %eax
	mov	%eax, %edx
	and	$(QSIZE - 1), %edx
	movw	%cx, (VQ_AVAIL + 4)(%edi,%edx,2)
	inc	%eax
	movw	%ax, (VQ_AVAIL + 2)(%edi)	/* x86 keeps stores in order */
	RESTORE	ax, dx, di
	ret

/*
 * vq_wait: wait up to WAIT_TICKS for the device to use every chain made
 * available on queue %ebx. Returns the length of the last used element
 * in %eax, or carry set if it did not.
 */
	.globl	vq_wait
vq_wait:
	SAVE	cx, dx, si, di
	call	vq_addr
	rdtsc
	mov	%eax, %esi
1:	movzwl	(VQ_USED + 2)(%edi), %eax
	cmpw	(VQ_AVAIL + 2)(%edi), %ax
	je	2f
	pause
	rdtsc
	sub	%esi, %eax
	cmp	$WAIT_TICKS, %eax
	jb	1b
	stc
	jmp	3f
2:	dec	%eax
	and	$(QSIZE - 1), %eax
	mov	(VQ_USED + 4 + 4)(%edi,%eax,8), %eax
	clc
3:	RESTORE	cx, dx, si, di
	ret

/* delay: spin for %eax TSC ticks. */
	.globl	delay
delay:
	SAVE	ax, cx, dx, si
	mov	%eax, %ecx
	rdtsc
	mov	%eax, %esi
1:	pause
	rdtsc
	sub	%esi, %eax
	cmp	%ecx, %eax
	jb	1b
	RESTORE	ax, cx, dx, si
	ret

/* vq_wait_long: vq_wait up to LONG_WAITS times, for requests that must succeed. */
	.globl	vq_wait_long
vq_wait_long:
	SAVE	cx
	mov	$LONG_WAITS, %ecx
1:	call	vq_wait
	jnc	2f
	dec	%ecx
	jnz	1b
	stc
2:	RESTORE	cx
	ret

/*
 * vq_submit: vq_push, vt_kick and vq_wait: chain %ecx on queue %ebx.
 * Keeps every register: only carry says whether the chain came back.
 */
	.globl	vq_submit
vq_submit:
	SAVE	ax
	call	vq_push
	call	vt_kick
	call	vq_wait
	RESTORE	ax
	ret

/*
 * dev_up: make the device of type %eax current, reset it, set up queues
 * 0 to %ecx - 1 and start it. Carry set if it is absent or refuses.
 */
	.globl	dev_up
dev_up:
	SAVE	bx
	call	vt_find
	jc	2f
	call	vt_init
	jc	2f
	xor	%ebx, %ebx
1:	call	vt_queue
	inc	%ebx
	cmp	%ecx, %ebx
	jb	1b
	call	vt_driver_ok
	clc
2:	RESTORE	bx
	ret
