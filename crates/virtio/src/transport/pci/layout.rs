//! Where each virtio-pci structure lives in the device's one memory BAR,
//! and the capabilities that tell the driver so (virtio 1.2, 4.1.4).
//!
//! ```text
//! BAR 0 + 0x0000  common configuration
//!       + 0x1000  ISR status (one byte)
//!       + 0x2000  device-specific configuration
//!       + 0x3000  notifications: queue i at 0x3000 + 4 * i
//!       + 0x4000  MSI-X table
//!       + 0x6000  MSI-X pending bit array
//! ```
//! Each structure gets a page of its own so a driver could map them apart.

/// The BAR that holds every structure.
pub const BAR_INDEX: u8 = 0;
/// Size of that BAR (a power of two, as BARs must be).
pub const BAR_SIZE: u64 = 0x8000;

pub const COMMON_OFFSET: u64 = 0x0000;
/// The common configuration as far as `queue_device` (without the
/// optional notify-data and reset fields, whose features are not offered).
pub const COMMON_LEN: u64 = 0x38;
pub const ISR_OFFSET: u64 = 0x1000;
pub const ISR_LEN: u64 = 1;
pub const DEVICE_CONFIG_OFFSET: u64 = 0x2000;
pub const DEVICE_CONFIG_LEN: u64 = 0x1000;
pub const NOTIFY_OFFSET: u64 = 0x3000;
/// Bytes between two queues' notification addresses: each queue has its
/// own address, so each gets an ioeventfd of its own.
pub const NOTIFY_MULTIPLIER: u32 = 4;
pub const NOTIFY_LEN: u64 = 0x1000;
pub const MSIX_TABLE_OFFSET: u64 = 0x4000;
pub const MSIX_TABLE_LEN: u64 = 0x2000;
pub const MSIX_PBA_OFFSET: u64 = 0x6000;
pub const MSIX_PBA_LEN: u64 = 0x1000;

// Small constants: nothing to truncate.
#[allow(clippy::cast_possible_truncation)]
/// Most queues a device may have: their notification addresses must fit.
pub const MAX_QUEUES: usize = (NOTIFY_LEN / NOTIFY_MULTIPLIER as u64) as usize;
#[allow(clippy::cast_possible_truncation)]
/// Most MSI-X vectors this BAR's table has room for (16 bytes an entry;
/// PCI itself allows 2048).
pub const TABLE_VECTORS: usize = (MSIX_TABLE_LEN / 16) as usize;

/// Where a guest write of 2 bytes kicks queue `index` (offset in the BAR).
pub fn notify_offset(index: u16) -> u64 {
    NOTIFY_OFFSET + u64::from(index) * u64::from(NOTIFY_MULTIPLIER)
}

/// `cfg_type` of the virtio vendor-specific capabilities.
pub mod cfg_type {
    pub const COMMON: u8 = 1;
    pub const NOTIFY: u8 = 2;
    pub const ISR: u8 = 3;
    pub const DEVICE: u8 = 4;
    pub const PCI_CFG: u8 = 5;
}

/// Capability ID of vendor-specific capabilities (what virtio uses).
pub const CAP_ID_VENDOR: u8 = 0x09;
/// Capability ID of MSI-X.
pub const CAP_ID_MSIX: u8 = 0x11;

/// The body (everything after ID and next pointer) of a `virtio_pci_cap`
/// pointing at `offset..offset + len` of the BAR, with `extra` after it.
pub fn virtio_cap_body(cfg_type: u8, offset: u64, len: u64, extra: &[u8]) -> Vec<u8> {
    let cap_len = 16 + extra.len();
    let mut body = vec![
        u8::try_from(cap_len).unwrap_or(u8::MAX),
        cfg_type,
        BAR_INDEX,
        0, // id: one structure of each type
        0,
        0,
    ];
    body.extend_from_slice(&u32::try_from(offset).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(&u32::try_from(len).unwrap_or(0).to_le_bytes());
    body.extend_from_slice(extra);
    body
}

/// The body of the MSI-X capability for `vectors` vectors, table and PBA
/// in BAR 0.
pub fn msix_cap_body(vectors: u16) -> Vec<u8> {
    let table_size = vectors.saturating_sub(1) & 0x7ff;
    let mut body = table_size.to_le_bytes().to_vec();
    // The offsets are 4 KiB aligned: the low 3 bits name the BAR.
    for offset in [MSIX_TABLE_OFFSET, MSIX_PBA_OFFSET] {
        let offset = u32::try_from(offset).unwrap_or(0);
        body.extend_from_slice(&(offset | u32::from(BAR_INDEX)).to_le_bytes());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_fit_the_bar_and_do_not_overlap() {
        let mut regions = [
            (COMMON_OFFSET, COMMON_LEN),
            (ISR_OFFSET, ISR_LEN),
            (DEVICE_CONFIG_OFFSET, DEVICE_CONFIG_LEN),
            (NOTIFY_OFFSET, NOTIFY_LEN),
            (MSIX_TABLE_OFFSET, MSIX_TABLE_LEN),
            (MSIX_PBA_OFFSET, MSIX_PBA_LEN),
        ];
        regions.sort();
        for pair in regions.windows(2) {
            assert!(pair[0].0 + pair[0].1 <= pair[1].0);
        }
        let last = regions[regions.len() - 1];
        assert!(last.0 + last.1 <= BAR_SIZE);
        assert!(BAR_SIZE.is_power_of_two());
        // The PBA holds a bit for every vector the table can.
        assert!(MSIX_PBA_LEN * 8 >= TABLE_VECTORS as u64);
    }

    #[test]
    fn capability_bodies() {
        let body = virtio_cap_body(
            cfg_type::NOTIFY,
            NOTIFY_OFFSET,
            NOTIFY_LEN,
            &4u32.to_le_bytes(),
        );
        assert_eq!(body.len() + 2, 20);
        assert_eq!(body[0], 20, "cap_len counts the whole capability");
        assert_eq!(body[1], cfg_type::NOTIFY);
        assert_eq!(&body[6..10], &0x3000u32.to_le_bytes());
        assert_eq!(&body[14..18], &4u32.to_le_bytes());
        let msix = msix_cap_body(3);
        assert_eq!(msix.len() + 2, 12);
        assert_eq!(
            u16::from_le_bytes([msix[0], msix[1]]),
            2,
            "table size is N - 1"
        );
        assert_eq!(notify_offset(2), 0x3008);
    }
}
