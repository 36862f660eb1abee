//! `balloon` (`PUT|PATCH /balloon`, `GET|PATCH /balloon/statistics`).

use serde::{Deserialize, Serialize};
use virtio::balloon::{stats, BalloonConfig, BALLOON_PAGE, STATS_INTERVAL};

use super::ResourceError;

const MIB: u64 = 1 << 20;

/// The balloon device. Pointsman's guest reports statistics every
/// [`STATS_INTERVAL`] whatever non-zero `stats_polling_interval_s` asks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Balloon {
    /// The target the guest inflates to.
    pub amount_mib: u32,
    pub deflate_on_oom: bool,
    /// 0 turns statistics off.
    #[serde(default)]
    pub stats_polling_interval_s: u16,
    /// Refused when true: Pointsman has no free page hinting.
    #[serde(default)]
    pub free_page_hinting: bool,
    #[serde(default)]
    pub free_page_reporting: bool,
}

impl Balloon {
    pub fn validate(&self) -> Result<(), ResourceError> {
        if self.free_page_hinting {
            return Err(ResourceError::BalloonFeature("free_page_hinting"));
        }
        Ok(())
    }

    pub fn to_balloon_config(&self) -> Result<BalloonConfig, ResourceError> {
        self.validate()?;
        Ok(BalloonConfig {
            size: u64::from(self.amount_mib) * MIB,
            stats: self.stats_polling_interval_s > 0,
            free_page_reporting: self.free_page_reporting,
            deflate_on_oom: self.deflate_on_oom,
        })
    }

    pub fn from_balloon_config(config: &BalloonConfig) -> Balloon {
        let interval = u16::try_from(STATS_INTERVAL.as_secs()).unwrap_or(u16::MAX);
        Balloon {
            amount_mib: u32::try_from(config.size / MIB).unwrap_or(u32::MAX),
            deflate_on_oom: config.deflate_on_oom,
            stats_polling_interval_s: if config.stats { interval } else { 0 },
            free_page_hinting: false,
            free_page_reporting: config.free_page_reporting,
        }
    }
}

/// `PATCH /balloon`: a new target.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalloonUpdate {
    pub amount_mib: u32,
}

/// `PATCH /balloon/statistics`: a new polling interval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalloonStatsUpdate {
    pub stats_polling_interval_s: u16,
}

/// `GET /balloon/statistics`: the target, where the guest is, and the
/// figures it last reported (memory in bytes), each left out until the
/// guest sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BalloonStats {
    pub target_pages: u32,
    pub actual_pages: u32,
    pub target_mib: u32,
    pub actual_mib: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swap_out: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major_faults: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor_faults: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_caches: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugetlb_allocations: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hugetlb_failures: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kill: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_stall: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_scan: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_scan: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub async_reclaim: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_reclaim: Option<u64>,
}

impl BalloonStats {
    /// The answer for a balloon whose target and current size are
    /// `target_pages` and `actual_pages` (4 KiB pages), with the guest's
    /// last report `reported`.
    pub fn new(target_pages: u32, actual_pages: u32, reported: &stats::BalloonStats) -> Self {
        let mib =
            |pages: u32| u32::try_from(u64::from(pages) * BALLOON_PAGE / MIB).unwrap_or(u32::MAX);
        // The virtio tags, in order (virtio 1.2, 5.5.6.3).
        let tag = |n: u16| reported.get(n);
        BalloonStats {
            target_pages,
            actual_pages,
            target_mib: mib(target_pages),
            actual_mib: mib(actual_pages),
            swap_in: tag(stats::tag::SWAP_IN),
            swap_out: tag(stats::tag::SWAP_OUT),
            major_faults: tag(stats::tag::MAJOR_FAULTS),
            minor_faults: tag(stats::tag::MINOR_FAULTS),
            free_memory: tag(stats::tag::FREE_MEMORY),
            total_memory: tag(stats::tag::TOTAL_MEMORY),
            available_memory: tag(stats::tag::AVAILABLE_MEMORY),
            disk_caches: tag(stats::tag::DISK_CACHES),
            hugetlb_allocations: tag(8),
            hugetlb_failures: tag(9),
            oom_kill: tag(10),
            alloc_stall: tag(11),
            async_scan: tag(12),
            direct_scan: tag(13),
            async_reclaim: tag(14),
            direct_reclaim: tag(15),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_round_trip() {
        let b: Balloon =
            serde_json::from_str(r#"{"amount_mib": 64, "deflate_on_oom": true}"#).unwrap();
        assert_eq!(b.stats_polling_interval_s, 0);
        let config = b.to_balloon_config().unwrap();
        assert_eq!(
            config,
            BalloonConfig {
                size: 64 << 20,
                stats: false,
                free_page_reporting: false,
                deflate_on_oom: true
            }
        );
        assert_eq!(Balloon::from_balloon_config(&config), b);
        let with_stats: Balloon = serde_json::from_str(
            r#"{"amount_mib": 0, "deflate_on_oom": false, "stats_polling_interval_s": 5,
                "free_page_reporting": true}"#,
        )
        .unwrap();
        let config = with_stats.to_balloon_config().unwrap();
        assert!(config.stats && config.free_page_reporting);
        assert_eq!(Balloon::from_balloon_config(&config), with_stats);
    }

    #[test]
    fn refusals() {
        for bad in [
            r#"{"amount_mib": 64}"#,
            r#"{"deflate_on_oom": true}"#,
            r#"{"amount_mib": -1, "deflate_on_oom": true}"#,
            r#"{"amount_mib": 1, "deflate_on_oom": true, "stats": true}"#,
        ] {
            assert!(serde_json::from_str::<Balloon>(bad).is_err(), "{bad}");
        }
        let hinting: Balloon = serde_json::from_str(
            r#"{"amount_mib": 1, "deflate_on_oom": true, "free_page_hinting": true}"#,
        )
        .unwrap();
        assert_eq!(
            hinting.validate(),
            Err(ResourceError::BalloonFeature("free_page_hinting"))
        );
        assert!(serde_json::from_str::<BalloonUpdate>("{}").is_err());
        assert!(
            serde_json::from_str::<BalloonStatsUpdate>(r#"{"stats_polling_interval_s": -1}"#)
                .is_err()
        );
    }

    #[test]
    fn statistics_show_what_the_guest_reported() {
        let mut buffer = Vec::new();
        for (tag, value) in [(stats::tag::FREE_MEMORY, 1000u64), (10, 2)] {
            buffer.extend_from_slice(&tag.to_le_bytes());
            buffer.extend_from_slice(&value.to_le_bytes());
        }
        let s = BalloonStats::new(512, 256, &stats::BalloonStats::parse(&buffer));
        assert_eq!((s.target_mib, s.actual_mib), (2, 1));
        assert_eq!(
            (s.free_memory, s.oom_kill, s.swap_in),
            (Some(1000), Some(2), None)
        );
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"target_pages":512,"actual_pages":256,"target_mib":2,"actual_mib":1,"free_memory":1000,"oom_kill":2}"#
        );
    }
}
