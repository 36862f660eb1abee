//! `metrics` (`PUT /metrics`, `--metrics-path`): where the VMM's counters
//! are written.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{validate_path, ResourceError};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// A file or FIFO that gets one JSON object per line.
    pub metrics_path: String,
    /// Put the instance id in each line as `"id"`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub emit_id: bool,
    /// The operator's key-value pairs, put in each line as `"properties"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
}

impl Metrics {
    pub fn validate(&self) -> Result<(), ResourceError> {
        validate_path("metrics_path", &self.metrics_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_required_and_not_empty() {
        let m: Metrics = serde_json::from_str(r#"{"metrics_path": "/tmp/m"}"#).unwrap();
        m.validate().unwrap();
        assert!(!m.emit_id && m.properties.is_empty());
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"metrics_path":"/tmp/m"}"#
        );
        let full = r#"{"metrics_path":"/tmp/m","emit_id":true,"properties":{"host":"h1"}}"#;
        let m: Metrics = serde_json::from_str(full).unwrap();
        assert_eq!(m.properties.get("host").map(String::as_str), Some("h1"));
        assert_eq!(serde_json::to_string(&m).unwrap(), full);
        assert!(serde_json::from_str::<Metrics>(
            r#"{"metrics_path": "/m", "properties": {"n": 1}}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Metrics>("{}").is_err());
        let empty = Metrics::default();
        assert_eq!(
            empty.validate(),
            Err(ResourceError::EmptyPath {
                field: "metrics_path"
            })
        );
    }
}
