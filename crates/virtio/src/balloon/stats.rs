//! Memory statistics the guest reports on the stats queue (virtio 1.2,
//! 5.5.6.3): a packed array of `{ le16 tag; le64 val; }`.

use std::fmt;

/// Bytes of one statistic in the guest's buffer.
pub const STAT_SIZE: usize = 10;
/// Most statistics read from one buffer (Linux sends 10; newer ones 16).
pub const MAX_STATS: usize = 64;

/// The tags this device knows, in tag order.
const NAMES: [&str; 16] = [
    "swap-in",
    "swap-out",
    "major-faults",
    "minor-faults",
    "free-memory",
    "total-memory",
    "available-memory",
    "disk-caches",
    "hugetlb-allocations",
    "hugetlb-failures",
    "oom-kills",
    "alloc-stalls",
    "async-scans",
    "direct-scans",
    "async-reclaims",
    "direct-reclaims",
];

/// Tags of the statistics most callers want.
pub mod tag {
    pub const SWAP_IN: u16 = 0;
    pub const SWAP_OUT: u16 = 1;
    pub const MAJOR_FAULTS: u16 = 2;
    pub const MINOR_FAULTS: u16 = 3;
    pub const FREE_MEMORY: u16 = 4;
    pub const TOTAL_MEMORY: u16 = 5;
    pub const AVAILABLE_MEMORY: u16 = 6;
    pub const DISK_CACHES: u16 = 7;
}

/// The latest statistics: each known tag's value, if the guest sent it
/// (memory figures in bytes, the others as counts).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BalloonStats {
    values: [Option<u64>; NAMES.len()],
}

impl BalloonStats {
    /// Parses a stats buffer; unknown tags and a trailing partial entry
    /// are ignored, and at most [`MAX_STATS`] entries are read.
    pub fn parse(bytes: &[u8]) -> Self {
        let mut stats = BalloonStats::default();
        for entry in bytes.chunks_exact(STAT_SIZE).take(MAX_STATS) {
            let tag = u16::from_le_bytes([entry[0], entry[1]]);
            let mut value = [0u8; 8];
            value.copy_from_slice(&entry[2..]);
            if let Some(slot) = stats.values.get_mut(usize::from(tag)) {
                *slot = Some(u64::from_le_bytes(value));
            }
        }
        stats
    }

    /// The value of statistic `tag` ([`tag`]), if the guest reported it.
    pub fn get(&self, tag: u16) -> Option<u64> {
        self.values.get(usize::from(tag)).copied().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }
}

impl fmt::Display for BalloonStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, value) in NAMES.iter().zip(&self.values) {
            if let Some(v) = value {
                write!(f, "{}{name}={v}", if first { "" } else { " " })?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tag: u16, value: u64) -> Vec<u8> {
        let mut e = tag.to_le_bytes().to_vec();
        e.extend_from_slice(&value.to_le_bytes());
        e
    }

    #[test]
    fn known_tags_are_kept_and_others_ignored() {
        let mut bytes = entry(tag::FREE_MEMORY, 1 << 20);
        bytes.extend(entry(tag::TOTAL_MEMORY, 512 << 20));
        bytes.extend(entry(999, 5));
        bytes.extend([1, 2, 3]); // a partial entry
        let stats = BalloonStats::parse(&bytes);
        assert_eq!(stats.get(tag::FREE_MEMORY), Some(1 << 20));
        assert_eq!(stats.get(tag::TOTAL_MEMORY), Some(512 << 20));
        assert_eq!(stats.get(tag::SWAP_IN), None);
        assert_eq!(stats.get(999), None);
        assert_eq!(
            stats.to_string(),
            "free-memory=1048576 total-memory=536870912"
        );
    }

    #[test]
    fn empty_and_garbage_buffers() {
        assert!(BalloonStats::parse(&[]).is_empty());
        assert!(BalloonStats::parse(&[0xff; 9]).is_empty());
        let mut bytes = entry(tag::SWAP_OUT, 1).repeat(MAX_STATS);
        bytes.extend(entry(tag::SWAP_IN, 1));
        assert_eq!(BalloonStats::parse(&bytes).get(tag::SWAP_IN), None);
    }
}
