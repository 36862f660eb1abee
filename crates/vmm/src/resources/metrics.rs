//! `metrics` (`PUT /metrics`, `--metrics-path`): where the VMM's counters
//! are written.

use serde::{Deserialize, Serialize};

use super::{validate_path, ResourceError};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// A file or FIFO that gets one JSON object per line.
    pub metrics_path: String,
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
