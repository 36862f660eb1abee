//! `PUT /serial`: where the guest's serial console output goes.

use serde::{Deserialize, Serialize};

use super::{validate_path, ResourceError, TokenBucket};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serial {
    /// A file the console output is appended to, instead of stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_out_path: Option<String>,
    /// Bytes per refill time the guest may write; the rest is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limiter: Option<TokenBucket>,
}

impl Serial {
    pub fn validate(&self) -> Result<(), ResourceError> {
        match &self.serial_out_path {
            Some(path) => validate_path("serial_out_path", path),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_optional_path() {
        let s: Serial = serde_json::from_str(r#"{"serial_out_path": "/tmp/out"}"#).unwrap();
        s.validate().unwrap();
        let limited: Serial = serde_json::from_str(
            r#"{"serial_out_path": "/tmp/out", "rate_limiter": {"size": 4096, "refill_time": 100}}"#,
        )
        .unwrap();
        assert_eq!(
            limited
                .rate_limiter
                .and_then(|b| b.to_config())
                .map(|c| c.size),
            Some(4096)
        );
        assert_eq!(
            serde_json::from_str::<Serial>("{}").unwrap(),
            Serial::default()
        );
        let empty: Serial = serde_json::from_str(r#"{"serial_out_path": ""}"#).unwrap();
        assert!(empty.validate().is_err());
        assert!(serde_json::from_str::<Serial>(r#"{"path": "/x"}"#).is_err());
    }
}
