//! `entropy` (`PUT /entropy`): the guest's virtio-rng device.

use serde::{Deserialize, Serialize};

use super::{RateLimiter, ResourceError};

/// The entropy device. Its `rate_limiter` is checked, then ignored:
/// Pointsman's virtio-rng has no limiter (each request is served from
/// the host's getrandom, at most a page at a time).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entropy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiter: Option<RateLimiter>,
}

impl Entropy {
    pub fn validate(&self) -> Result<(), ResourceError> {
        match &self.rate_limiter {
            Some(limiter) => limiter.validate("rate_limiter"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_or_with_a_limiter() {
        let e: Entropy = serde_json::from_str("{}").unwrap();
        assert_eq!(e, Entropy::default());
        assert_eq!(serde_json::to_string(&e).unwrap(), "{}");
        let e: Entropy = serde_json::from_str(
            r#"{"rate_limiter": {"bandwidth": {"size": 1000, "refill_time": 100}}}"#,
        )
        .unwrap();
        e.validate().unwrap();
        assert!(serde_json::from_str::<Entropy>(r#"{"rate": 1}"#).is_err());
    }
}
