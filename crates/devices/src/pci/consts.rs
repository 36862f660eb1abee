//! Numbers from the PCI Local Bus Specification that devices and the
//! transports built on this bus need.

/// Size of a conventional (non-extended) configuration space.
pub const PCI_CONFIG_SPACE_SIZE: usize = 256;
/// Base address registers in a type-0 header.
pub const PCI_NUM_BARS: usize = 6;

/// Command register: the device answers I/O space accesses.
pub const PCI_COMMAND_IO: u16 = 1 << 0;
/// Command register: the device answers memory space accesses.
pub const PCI_COMMAND_MEMORY: u16 = 1 << 1;
/// Command register: the device may master the bus (DMA, MSI writes).
pub const PCI_COMMAND_MASTER: u16 = 1 << 2;
/// Command register: the device must not assert INTx.
pub const PCI_COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// Status register: a capability list starts at the capabilities pointer.
pub const PCI_STATUS_CAP_LIST: u16 = 1 << 4;

/// Vendor-specific capability (virtio-pci puts its structures there).
pub const PCI_CAP_ID_VENDOR: u8 = 0x09;
/// MSI-X capability.
pub const PCI_CAP_ID_MSIX: u8 = 0x11;

/// Class: mass storage controller.
pub const PCI_CLASS_MASS_STORAGE: u8 = 0x01;
/// Mass storage subclass: SCSI (what virtio-blk reports).
pub const PCI_SUBCLASS_STORAGE_SCSI: u8 = 0x00;
/// Class: network controller.
pub const PCI_CLASS_NETWORK: u8 = 0x02;
/// Network subclass: Ethernet.
pub const PCI_SUBCLASS_NETWORK_ETHERNET: u8 = 0x00;
/// Class: bridge device.
pub const PCI_CLASS_BRIDGE: u8 = 0x06;
/// Bridge subclass: host bridge.
pub const PCI_SUBCLASS_BRIDGE_HOST: u8 = 0x00;
/// Class: device that fits no other class.
pub const PCI_CLASS_OTHER: u8 = 0xff;
