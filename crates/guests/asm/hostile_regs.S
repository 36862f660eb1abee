/*
 * Hostile commands on registers: configuration spaces and transport
 * registers swept byte by byte (hostile_config), and MSI-X tables and
 * PBAs full of garbage (hostile_msix, virtio-pci only); then each device
 * must still work (checks.S).
 *
 * The macros (virtio.h) clobber %eax, %ebx, %ecx, %edx, %esi and %edi.
 */
#include "mode.h"
#include "layout.h"
#include "virtio.h"

/* CALLR bp: call the address in a register (zero-extended in long mode). */
	.macro CALLR reg
#if BITS == 64
	call	*%r\reg
#else
	call	*%e\reg
#endif
	.endm

	.data
	.balign	4
msix_cap:	.long 0		/* the current PCI function's MSI-X capability */

	.text

/*
 * sweep: %ecx bytes of MMIO at %esi, written with all ones and read back
 * at every offset: a byte, a word and a dword at a time (no access
 * crosses the end).
 */
sweep:
	SAVE	ax, cx, dx
	xor	%edx, %edx
1:	movb	$0xff, (%esi,%edx)
	movb	(%esi,%edx), %al
	inc	%edx
	cmp	%ecx, %edx
	jb	1b
	dec	%ecx
	xor	%edx, %edx
2:	movw	$0xffff, (%esi,%edx)
	movw	(%esi,%edx), %ax
	inc	%edx
	cmp	%ecx, %edx
	jb	2b
	sub	$2, %ecx
	xor	%edx, %edx
3:	movl	$0xffffffff, (%esi,%edx)
	movl	(%esi,%edx), %eax
	inc	%edx
	cmp	%ecx, %edx
	jb	3b
	RESTORE	ax, cx, dx
	ret

/*
 * transport_sweep: the transport's own registers, swept the same way:
 * virtio-mmio's register block, or virtio-pci's common configuration,
 * ISR and MSI-X pages and every byte of the function's configuration
 * space (then BAR 0 and the command register are put back).
 */
transport_sweep:
	SAVE	ax, cx, si
	mov	vt_base, %esi
	cmpl	$0, vt_pci
	jne	1f
	mov	$MMIO_REGISTERS_LEN, %ecx
	call	sweep
	jmp	3f
1:	mov	$SWEEP_LEN, %ecx
	call	sweep				/* common configuration */
	add	$PCI_ISR, %esi
	call	sweep
	mov	vt_base, %esi
	add	$PCI_MSIX_TABLE, %esi
	call	sweep
	mov	vt_base, %esi
	add	$PCI_MSIX_PBA, %esi
	call	sweep
	xor	%ecx, %ecx
	mov	$0xff, %al
2:	call	pci_write8
	call	pci_read8
	mov	$0xff, %al
	inc	%ecx
	cmp	$PCI_CONFIG_LEN, %ecx
	jb	2b
	call	cfg_windows
	mov	$PCI_BAR0, %ecx			/* as after sizing the BAR */
	mov	vt_base, %eax
	call	pci_write
	mov	$(PCI_BAR0 + 4), %ecx
	xor	%eax, %eax
	call	pci_write
	mov	$PCI_COMMAND, %ecx
	mov	$PCI_COMMAND_ENABLE, %eax
	call	pci_write
3:	RESTORE	ax, cx, si
	ret

/*
 * cfg_windows: through the virtio-pci configuration-access capability,
 * write all ones to, and read, each window of cfg_window_table: in the
 * BAR, at its end, past it, wrapping past 2^32, in another BAR, of odd
 * lengths.
 */
cfg_windows:
	SAVE	ax, bx, cx, dx
	mov	$PCI_CAP_POINTER, %ecx		/* find the capability */
	call	pci_read8
1:	movzbl	%al, %ecx
	and	$0xfc, %ecx
	jz	6f
	call	pci_read8
	cmp	$PCI_CAP_ID_VENDOR, %al
	jne	2f
	add	$3, %ecx
	call	pci_read8
	sub	$3, %ecx
	cmp	$VIRTIO_PCI_CAP_PCI_CFG, %al
	je	3f
2:	inc	%ecx
	call	pci_read8
	jmp	1b
3:	mov	%ecx, %edx
	mov	$cfg_window_table, %ebx
5:	mov	(%ebx), %eax
	cmp	$0xffffffff, %eax		/* the end of the table */
	je	4f
	lea	CFG_CAP_BAR(%edx), %ecx
	call	pci_write
	mov	4(%ebx), %eax
	lea	CFG_CAP_OFFSET(%edx), %ecx
	call	pci_write
	mov	8(%ebx), %eax
	lea	CFG_CAP_LENGTH(%edx), %ecx
	call	pci_write
	mov	$0xffffffff, %eax
	lea	CFG_CAP_DATA(%edx), %ecx
	call	pci_write
	call	pci_read
	add	$12, %ebx
	jmp	5b
6:	PRINT	"pci_cfg window FAILED: no capability\n"
4:	RESTORE	ax, bx, cx, dx
	ret

	.section .rodata
	.balign	4
cfg_window_table:			/* bar, offset, length */
	.long	0, PCI_DEVICE_STATUS, 1		/* status all ones */
	.long	0, PCI_NOTIFY, 2		/* a kick */
	.long	0, PCI_ISR, 1			/* read to clear */
	.long	0, PCI_DEVICE_CONFIG, 3		/* an odd length */
	.long	0, PCI_MSIX_TABLE, 4
	.long	0, PCI_MSIX_PBA, 4
	.long	0, 0x7ffc, 4			/* the BAR's last dword */
	.long	0, 0x7ffe, 4			/* across its end */
	.long	0, 0x8000, 1			/* past it */
	.long	0, 0xfffffffe, 4		/* wrapping past 2^32 */
	.long	0, 0xffffffff, 0xffffffff
	.long	0, 0, 0				/* no length */
	.long	5, 0, 4				/* a BAR that does not exist */
	.long	0xff, 0x3000, 2
	.long	0xffffffff
	.text

/*
 * config_device: sweep the configuration space of the device of type
 * %eax before and after it starts, then its transport's registers.
 * Carry set if the device is absent.
 */
config_device:
	SAVE	ax, cx
	call	vt_find
	jc	1f
	call	vt_init
	call	vt_config
	mov	$SWEEP_LEN, %ecx
	call	sweep
	mov	$1, %ecx
	call	dev_up
	call	vt_config
	mov	$SWEEP_LEN, %ecx
	call	sweep
	call	transport_sweep
	clc
1:	RESTORE	ax, cx
	ret

/* hostile_config: configuration spaces and registers written byte by byte. */
	.globl	cmd_hostile_config
cmd_hostile_config:
	mov	$VIRTIO_ID_RNG, %eax
	call	config_device
	jc	1f
	UP	VIRTIO_ID_RNG, 1
	call	rng_check
1:	mov	$VIRTIO_ID_BLOCK, %eax
	call	config_device
	jc	2f
	UP	VIRTIO_ID_BLOCK, 1
	call	blk_check
2:	mov	$VIRTIO_ID_VSOCK, %eax
	call	config_device
	jc	3f
	call	vsock_up
	call	vsock_check
3:	mov	$VIRTIO_ID_BALLOON, %eax
	call	config_device
	jc	4f
	UP	VIRTIO_ID_BALLOON, 2
	call	balloon_check
4:	mov	$VIRTIO_ID_NET, %eax
	call	config_device
	jc	5f
	UP	VIRTIO_ID_NET, 2
	call	net_check
5:	PRINT	"hostile_config done\n"
	jmp	poweroff

/* ---------------------------------------------------------------- MSI-X */

/* find_msix: the MSI-X capability of the current function, in msix_cap. */
find_msix:
	SAVE	ax, cx
	mov	$PCI_CAP_POINTER, %ecx
	call	pci_read8
1:	movzbl	%al, %ecx
	and	$0xfc, %ecx
	jz	2f
	call	pci_read8
	cmp	$PCI_CAP_ID_MSIX, %al
	je	2f
	inc	%ecx
	call	pci_read8
	jmp	1b
2:	mov	%ecx, msix_cap
	RESTORE	ax, cx
	ret

/* msix_control: MSI-X enable and function mask as %eax gives them. */
msix_control:
	SAVE	ax, cx, dx
	mov	%eax, %edx
	mov	msix_cap, %ecx
	call	pci_read
	and	$0x3fffffff, %eax		/* enable and mask cleared */
	or	%edx, %eax
	call	pci_write
	RESTORE	ax, cx, dx
	ret

/*
 * msix_table: every entry the MSI-X table's pages have room for set to
 * address %edx:%eax, data %esi and vector control %edi.
 */
msix_table:
	SAVE	bx, cx
	mov	vt_base, %ebx
	add	$PCI_MSIX_TABLE, %ebx
	mov	$(PCI_MSIX_TABLE_LEN / 16), %ecx
1:	mov	%eax, (%ebx)
	mov	%edx, 4(%ebx)
	mov	%esi, 8(%ebx)
	mov	%edi, 12(%ebx)
	add	$16, %ebx
	dec	%ecx
	jnz	1b
	RESTORE	bx, cx
	ret

/*
 * msix_device: on the current function (queues %ecx, check routine
 * %ebp): vectors out of range, then the table filled with garbage, with
 * all ones, and with a real destination, a request after each; the PBA
 * written; MSI-X toggled on and off.
 */
msix_device:
	SAVE	ax, bx, cx, dx, si, di
	call	find_msix
	call	vt_init
	xor	%ebx, %ebx
1:	call	vt_queue
	inc	%ebx
	cmp	%ecx, %ebx
	jb	1b
	mov	vt_base, %esi
	movw	$0x7ff, PCI_CONFIG_MSIX_VECTOR(%esi)	/* past the table */
	xor	%ebx, %ebx
2:	movw	%bx, PCI_QUEUE_SELECT(%esi)
	movw	$0xfffe, PCI_QUEUE_MSIX_VECTOR(%esi)
	movw	%bx, PCI_QUEUE_MSIX_VECTOR(%esi)	/* vector n for queue n */
	inc	%ebx
	cmp	%ecx, %ebx
	jb	2b
	call	vt_driver_ok
	mov	$MSIX_CONTROL_ENABLE, %eax
	call	msix_control
	mov	$0xdeadbeef, %eax		/* garbage, unmasked */
	mov	$0xffffffff, %edx
	mov	$0xffffffff, %esi
	xor	%edi, %edi
	call	msix_table
	CALLR	bp
	mov	$0xffffffff, %eax		/* all ones: masked */
	mov	%eax, %edx
	mov	%eax, %esi
	mov	%eax, %edi
	call	msix_table
	CALLR	bp
	mov	$LAPIC_BASE, %eax		/* CPU 0, vector 0x30 (IF is clear) */
	xor	%edx, %edx
	mov	$0x30, %esi
	xor	%edi, %edi
	call	msix_table
	CALLR	bp
	mov	vt_base, %esi
	add	$PCI_MSIX_PBA, %esi
	mov	$SWEEP_LEN, %ecx
	call	sweep
	mov	$64, %ebx
3:	mov	$(MSIX_CONTROL_ENABLE | MSIX_CONTROL_MASK), %eax
	call	msix_control
	xor	%eax, %eax
	call	msix_control
	dec	%ebx
	jnz	3b
	mov	$(MSIX_CONTROL_ENABLE | MSIX_CONTROL_MASK), %eax
	call	msix_control
	CALLR	bp				/* held pending by the mask */
	mov	$MSIX_CONTROL_ENABLE, %eax
	call	msix_control
	RESTORE	ax, bx, cx, dx, si, di
	ret

/* hostile_msix: MSI-X tables and PBAs full of garbage (virtio-pci only). */
	.globl	cmd_hostile_msix
cmd_hostile_msix:
	mov	$VIRTIO_ID_RNG, %eax
	call	vt_find
	jc	1f
	cmpl	$0, vt_pci
	je	9f
	mov	$1, %ecx
	mov	$rng_check, %ebp
	call	msix_device
	UP	VIRTIO_ID_RNG, 1
	call	rng_check
1:	mov	$VIRTIO_ID_BLOCK, %eax
	call	vt_find
	jc	2f
	cmpl	$0, vt_pci
	je	9f
	mov	$1, %ecx
	mov	$blk_check, %ebp
	call	msix_device
	UP	VIRTIO_ID_BLOCK, 1
	call	blk_check
2:	mov	$VIRTIO_ID_VSOCK, %eax
	call	vt_find
	jc	3f
	cmpl	$0, vt_pci
	je	9f
	call	vt_config
	mov	(%esi), %eax
	mov	%eax, vs_cid
	mov	$3, %ecx
	mov	$vsock_check, %ebp
	call	msix_device
	call	vsock_up
	call	vsock_check
3:	mov	$VIRTIO_ID_NET, %eax
	call	vt_find
	jc	4f
	cmpl	$0, vt_pci
	je	9f
	mov	$2, %ecx
	mov	$net_check, %ebp
	call	msix_device
	UP	VIRTIO_ID_NET, 2
	call	net_check
4:	mov	$VIRTIO_ID_BALLOON, %eax
	call	vt_find
	jc	5f
	cmpl	$0, vt_pci
	je	9f
	mov	$2, %ecx
	mov	$balloon_check, %ebp
	call	msix_device
	UP	VIRTIO_ID_BALLOON, 2
	call	balloon_check
5:	PRINT	"hostile_msix done\n"
	jmp	poweroff
9:	PRINT	"hostile_msix: no virtio-pci device\n"
	jmp	poweroff
