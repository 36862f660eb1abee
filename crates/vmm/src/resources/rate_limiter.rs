//! `rate_limiter`: Firecracker's two token buckets, bytes and operations.
//!
//! A bucket of `size` tokens refills every `refill_time` milliseconds,
//! which is Pointsman's `bandwidth=SIZE/TIMEms` (or `ops=`);
//! `one_time_burst` tokens are granted once on top of it. As in
//! Firecracker, a bucket whose `size` or `refill_time` is 0 does not
//! limit.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use virtio::rate_limiter::TokenBucketConfig;

use super::ResourceError;

/// One token bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBucket {
    /// Tokens (bytes or operations) the bucket holds.
    pub size: u64,
    /// Extra tokens granted once, spent before the bucket's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_burst: Option<u64>,
    /// Milliseconds to refill the whole bucket.
    pub refill_time: u64,
}

impl TokenBucket {
    /// Checks that the refill time fits a timer. `field` names the bucket
    /// in errors.
    pub fn validate(&self, field: &str) -> Result<(), ResourceError> {
        // Past this a Duration in ms still fits, but a timer of more
        // than a year is a typo, not a limit.
        const MAX_REFILL_MS: u64 = 365 * 24 * 3600 * 1000;
        if self.refill_time > MAX_REFILL_MS {
            return Err(ResourceError::RateLimiter {
                field: format!("{field}.refill_time"),
                reason: format!(
                    "{} ms is more than a year (at most {MAX_REFILL_MS})",
                    self.refill_time
                ),
            });
        }
        Ok(())
    }

    /// The bucket Pointsman's devices use, or None for "no limit".
    pub fn to_config(&self) -> Option<TokenBucketConfig> {
        (self.size > 0 && self.refill_time > 0).then(|| TokenBucketConfig {
            size: self.size,
            refill: Duration::from_millis(self.refill_time),
            one_time_burst: self.one_time_burst.unwrap_or(0),
        })
    }

    /// The bucket that shows a device's limit (refill times under a
    /// millisecond, which the command line cannot give, round up).
    pub fn from_config(config: &TokenBucketConfig) -> TokenBucket {
        let ms = config.refill.as_nanos().div_ceil(1_000_000);
        TokenBucket {
            size: config.size,
            one_time_burst: (config.one_time_burst > 0).then_some(config.one_time_burst),
            refill_time: u64::try_from(ms).unwrap_or(u64::MAX),
        }
    }
}

/// The limits of one device (or one direction of a NIC).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimiter {
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<TokenBucket>,
    /// Operations (requests, frames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<TokenBucket>,
}

impl RateLimiter {
    /// Checks that each bucket either limits or is plainly off, and that
    /// its refill time fits a timer. `field` names the limiter in errors.
    pub fn validate(&self, field: &str) -> Result<(), ResourceError> {
        for (name, bucket) in [("bandwidth", &self.bandwidth), ("ops", &self.ops)] {
            if let Some(bucket) = bucket {
                bucket.validate(&format!("{field}.{name}"))?;
            }
        }
        Ok(())
    }

    /// The byte bucket for Pointsman's devices.
    /// This limiter given in a PATCH, over `base`: as in Firecracker, a
    /// bucket the PATCH leaves out stays as it was, and one with no size
    /// or refill time removes that limit.
    pub fn merged_onto(&self, base: Option<&RateLimiter>) -> RateLimiter {
        RateLimiter {
            bandwidth: self
                .bandwidth
                .clone()
                .or_else(|| base.and_then(|b| b.bandwidth.clone())),
            ops: self
                .ops
                .clone()
                .or_else(|| base.and_then(|b| b.ops.clone())),
        }
    }

    pub fn bandwidth_config(&self) -> Option<TokenBucketConfig> {
        self.bandwidth.as_ref().and_then(TokenBucket::to_config)
    }

    /// The operation bucket for Pointsman's devices.
    pub fn ops_config(&self) -> Option<TokenBucketConfig> {
        self.ops.as_ref().and_then(TokenBucket::to_config)
    }

    /// The limiter that shows a device's limits; None when it has none.
    pub fn from_configs(
        bandwidth: Option<&TokenBucketConfig>,
        ops: Option<&TokenBucketConfig>,
    ) -> Option<RateLimiter> {
        if bandwidth.is_none() && ops.is_none() {
            return None;
        }
        Some(RateLimiter {
            bandwidth: bandwidth.map(TokenBucket::from_config),
            ops: ops.map(TokenBucket::from_config),
        })
    }

    /// True when neither bucket limits anything.
    pub fn is_unlimited(&self) -> bool {
        self.bandwidth_config().is_none() && self.ops_config().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_map_onto_size_per_refill_time() {
        let limiter: RateLimiter = serde_json::from_str(
            r#"{"bandwidth": {"size": 1048576, "refill_time": 100},
                "ops": {"size": 10, "one_time_burst": 5, "refill_time": 1000}}"#,
        )
        .unwrap();
        limiter.validate("rate_limiter").unwrap();
        assert_eq!(
            limiter.bandwidth_config(),
            Some(TokenBucketConfig {
                size: 1 << 20,
                refill: Duration::from_millis(100),
                one_time_burst: 0,
            })
        );
        assert_eq!(
            limiter.ops_config(),
            Some(TokenBucketConfig {
                size: 10,
                refill: Duration::from_secs(1),
                one_time_burst: 5,
            })
        );
        let back = RateLimiter::from_configs(
            limiter.bandwidth_config().as_ref(),
            limiter.ops_config().as_ref(),
        )
        .unwrap();
        assert_eq!(back, limiter, "the burst too");
        assert_eq!(
            back.bandwidth,
            Some(TokenBucket {
                size: 1 << 20,
                one_time_burst: None,
                refill_time: 100
            })
        );
        assert_eq!(RateLimiter::from_configs(None, None), None);
    }

    #[test]
    fn a_zero_size_or_refill_time_does_not_limit() {
        for text in [
            r#"{"bandwidth": {"size": 0, "refill_time": 100}}"#,
            r#"{"ops": {"size": 10, "refill_time": 0}}"#,
            "{}",
        ] {
            let limiter: RateLimiter = serde_json::from_str(text).unwrap();
            assert!(limiter.is_unlimited(), "{text}");
        }
    }

    #[test]
    fn refusals() {
        for bad in [
            r#"{"bandwidth": {"size": 10}}"#,
            r#"{"bandwidth": {"refill_time": 10}}"#,
            r#"{"bandwidth": {"size": -1, "refill_time": 10}}"#,
            r#"{"bandwidth": {"size": 1, "refill_time": 10, "burst": 1}}"#,
            r#"{"bytes": {"size": 1, "refill_time": 10}}"#,
        ] {
            assert!(serde_json::from_str::<RateLimiter>(bad).is_err(), "{bad}");
        }
        let limiter: RateLimiter =
            serde_json::from_str(r#"{"ops": {"size": 1, "refill_time": 99999999999999}}"#).unwrap();
        let e = limiter.validate("rx_rate_limiter").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid rx_rate_limiter.ops.refill_time"),
            "{e}"
        );
    }

    #[test]
    fn a_patch_keeps_the_buckets_it_leaves_out() {
        let bucket = |size| TokenBucket {
            size,
            one_time_burst: None,
            refill_time: 1000,
        };
        let base = RateLimiter {
            bandwidth: Some(bucket(100)),
            ops: Some(bucket(10)),
        };
        let patch = RateLimiter {
            bandwidth: None,
            ops: Some(bucket(0)),
        };
        let merged = patch.merged_onto(Some(&base));
        assert_eq!(merged.bandwidth, Some(bucket(100)), "left out: kept");
        assert_eq!(merged.ops, Some(bucket(0)), "size 0: given");
        assert_eq!(merged.ops_config(), None, "and it limits nothing");
        assert_eq!(patch.merged_onto(None).bandwidth, None);
    }
}
