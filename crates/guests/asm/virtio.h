/*
 * Constants and macros of the small virtio driver (virtio.S) and the
 * hostile commands (hostile.S): both transports' registers, the split
 * virtqueue layout, and where the driver keeps its rings and buffers.
 */
#ifndef GUESTS_VIRTIO_H
#define GUESTS_VIRTIO_H

/* virtio-mmio (version 2): a page per device from the start of the hole. */
#define MMIO_FIRST		0xc0000000
#define MMIO_STRIDE		0x1000
#define MMIO_SLOTS		17		/* VIRTIO_GSIS in layout.rs */
#define MMIO_MAGIC_VALUE	0x74726976	/* "virt" */
#define MMIO_MAGIC		0x000
#define MMIO_DEVICE_ID		0x008
#define MMIO_DRIVER_FEATURES	0x020
#define MMIO_DRIVER_FEATURES_SEL 0x024
#define MMIO_QUEUE_SEL		0x030
#define MMIO_QUEUE_NUM		0x038
#define MMIO_QUEUE_READY	0x044
#define MMIO_QUEUE_NOTIFY	0x050
#define MMIO_STATUS		0x070
#define MMIO_QUEUE_DESC		0x080
#define MMIO_QUEUE_DRIVER	0x090
#define MMIO_QUEUE_DEVICE	0x0a0
#define MMIO_REGISTERS_LEN	0x100
#define MMIO_CONFIG		0x100

/* PCI configuration mechanism #1 and the virtio-pci function. */
#define PCI_CONFIG_ADDRESS	0xcf8
#define PCI_CONFIG_DATA		0xcfc
#define PCI_ENABLE		0x80000000
#define PCI_SLOTS		32
#define PCI_VENDOR_VIRTIO	0x1af4
#define PCI_DEVICE_MODERN	0x1040		/* plus the virtio device type */
#define PCI_COMMAND		0x04
#define PCI_COMMAND_ENABLE	0x06		/* memory space, bus master */
#define PCI_BAR0		0x10
#define PCI_CAP_POINTER		0x34
#define PCI_CONFIG_LEN		0x100
#define PCI_CAP_ID_MSIX		0x11
#define PCI_CAP_ID_VENDOR	0x09
#define VIRTIO_PCI_CAP_PCI_CFG	5		/* cfg_type at +3 of a vendor capability */
#define CFG_CAP_BAR		4		/* the window: bar, offset, length, data */
#define CFG_CAP_OFFSET		8
#define CFG_CAP_LENGTH		12
#define CFG_CAP_DATA		16
#define MSIX_CONTROL_ENABLE	0x80000000	/* in the capability's first dword */
#define MSIX_CONTROL_MASK	0x40000000

/* virtio-pci BAR 0 (crates/virtio/src/transport/pci/layout.rs). */
#define PCI_COMMON		0x0000
#define PCI_DRIVER_FEATURE_SELECT 0x08
#define PCI_DRIVER_FEATURE	0x0c
#define PCI_CONFIG_MSIX_VECTOR	0x10
#define PCI_DEVICE_STATUS	0x14
#define PCI_QUEUE_SELECT	0x16
#define PCI_QUEUE_SIZE		0x18
#define PCI_QUEUE_MSIX_VECTOR	0x1a
#define PCI_QUEUE_ENABLE	0x1c
#define PCI_QUEUE_DESC		0x20
#define PCI_QUEUE_DRIVER	0x28
#define PCI_QUEUE_DEVICE	0x30
#define PCI_DEVICE_CONFIG	0x2000
#define PCI_ISR			0x1000
#define PCI_NOTIFY		0x3000
#define PCI_NOTIFY_QUEUES	0x400		/* notification addresses in the page */
#define PCI_MSIX_TABLE		0x4000
#define PCI_MSIX_TABLE_LEN	0x2000
#define PCI_MSIX_PBA		0x6000

/*
 * Bytes swept at the start of each register block and configuration
 * space: past the end of every structure here (the largest, virtio-blk's
 * configuration, is 60 bytes; the common configuration 56), and few
 * enough that the sweeps stay quick with every access a VM exit.
 */
#define SWEEP_LEN		0x100

/* Device status bits. */
#define STATUS_ACKNOWLEDGE	1
#define STATUS_DRIVER		2
#define STATUS_DRIVER_OK	4
#define STATUS_FEATURES_OK	8

/* Device types. */
#define VIRTIO_ID_NET		1
#define VIRTIO_ID_BLOCK		2
#define VIRTIO_ID_RNG		4
#define VIRTIO_ID_BALLOON	5
#define VIRTIO_ID_VSOCK		19

/* Split virtqueue descriptors. */
#define DESC_F_NEXT		1
#define DESC_F_WRITE		2
#define DESC_ADDR		0
#define DESC_LEN		8
#define DESC_FLAGS		12
#define DESC_SIZE		16

/*
 * Queue q of the current device: descriptor table, avail ring and used
 * ring a page apart, in free RAM above the command line (0x20000-0x2ffff)
 * and below the EBDA. Every queue has QSIZE entries.
 */
#define VQ_AREA			0x40000
#define VQ_STRIDE		0x4000
#define VQ_AVAIL		0x1000
#define VQ_USED			0x2000
#define QSIZE			32
#define VQ(q)			(VQ_AREA + (q) * VQ_STRIDE)
#define AVAIL_IDX(q)		(VQ(q) + VQ_AVAIL + 2)
#define AVAIL_RING(q, slot)	(VQ(q) + VQ_AVAIL + 4 + 2 * (slot))

/* Buffers the requests point at. */
#define BUF			0x60000		/* 32 KiB of anything */
#define BUF_LEN			0x8000
#define BLK_HEADER		0x70000		/* 16 bytes: type, reserved, sector */
#define BLK_DATA		0x70200		/* one sector */
#define BLK_STATUS		0x70400
#define VS_TX			0x71000		/* a packet header and its payload */
#define VS_RX			0x72000
#define VS_RX_LEN		0x200
#define VS_EVENT		0x72800		/* one event (le32 id) */
#define NET_TX			0x73000		/* a header and a 60-byte frame */
#define NET_TX_LEN		(NET_HEADER + 60)
#define NET_RX			0x74000		/* up to 4 receive buffers */
#define NET_RX_LEN		0x800
#define BALLOON_PFNS		0x78000		/* an inflate or deflate request */
#define BALLOON_PAGE		0x79000		/* the page the check gives up */

/* virtio-net: the header in front of every packet (virtio_net_hdr_v1). */
#define NET_HEADER		12

/* virtio-blk request types. */
#define BLK_T_IN		0
#define BLK_T_OUT		1
#define BLK_T_FLUSH		4

/* virtio-vsock packet header fields. */
#define VSOCK_HEADER		44
#define VS_SRC_CID		0
#define VS_DST_CID		8
#define VS_SRC_PORT		16
#define VS_DST_PORT		20
#define VS_LEN			24
#define VS_TYPE			28
#define VS_OP			30
#define VS_BUF_ALLOC		36
#define VSOCK_HOST_CID		2
#define VSOCK_TYPE_STREAM	1
#define VSOCK_OP_REQUEST	1
#define VSOCK_OP_RESPONSE	2
#define VSOCK_OP_RST		3
#define VSOCK_OP_RW		5
#define VSOCK_GUEST_PORT	1234
#define VSOCK_DEAD_PORT		9		/* nothing listens: the device answers RST */
#define VSOCK_HOST_PORT		5000		/* the test's listener */
#define VSOCK_EVENT_QUEUE	2
#define VSOCK_EVENT_SIZE	4
#define VSOCK_TRANSPORT_RESET	0		/* event id */

/*
 * About 0.1 s of TSC ticks (1 to 5 GHz: 0.05 to 0.27 s): how long a
 * request may take before the driver stops waiting for it.
 */
#define WAIT_TICKS		0x10000000
#define LONG_WAITS		16		/* waits for a request that must succeed */
#define FLOOD_DELAY		0x200000	/* about a millisecond between floods */

/* Addresses near the top of the 64-bit space, and ones with no RAM. */
#define ADDR_NO_RAM		0xbff00000	/* below the hole, past 128 MiB of RAM */
#define ADDR_HOLE		0xd0000000

#ifdef __ASSEMBLER__

/* DESC q, i, addr, len, flags, next: fill descriptor i of queue q (high half 0). */
	.macro DESC q, i, addr, len, flags=0, next=0
	mov	$\q, %ebx
	mov	$\i, %ecx
	mov	$\addr, %eax
	mov	$\len, %edx
	mov	$((\flags) | ((\next) << 16)), %esi
	call	vq_set
	.endm

/* DESC_HI q, i, value: the high half of descriptor i's address. */
	.macro DESC_HI q, i, value
	movl	$\value, (VQ(\q) + (\i) * DESC_SIZE + DESC_ADDR + 4)
	.endm

/* SUBMIT q, head: make chain head available, notify, wait a little. */
	.macro SUBMIT q, head
	mov	$\q, %ebx
	mov	$\head, %ecx
	call	vq_submit
	.endm

/* OFFER q, head: make chain head available and notify; do not wait. */
	.macro OFFER q, head
	mov	$\q, %ebx
	mov	$\head, %ecx
	call	vq_push
	call	vt_kick
	.endm

/* UP type, queues: find, reset and start the device; jc to skip it if absent. */
	.macro UP type, queues
	mov	$\type, %eax
	mov	$\queues, %ecx
	call	dev_up
	.endm

#endif

#endif
