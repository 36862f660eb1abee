/// A device state from a snapshot that the device cannot take: one the
/// guest could never have brought it to.
#[derive(Debug, thiserror::Error)]
#[error("the {device} state in the snapshot is invalid: {why}")]
pub struct StateError {
    device: &'static str,
    why: String,
}

impl StateError {
    pub fn new(device: &'static str, why: impl Into<String>) -> Self {
        StateError {
            device,
            why: why.into(),
        }
    }
}
