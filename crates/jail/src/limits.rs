//! `--resource-limit fsize=N,no-file=N`: the VMM's rlimits.

use nix::sys::resource::{setrlimit, Resource};

use crate::JailError;

/// The limits set before the VMM starts (as Firecracker's jailer: open
/// files 2048 unless told otherwise, file size unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResourceLimits {
    /// The largest file the VMM may write, in bytes.
    pub file_size: Option<u64>,
    pub open_files: u64,
}

impl Default for ResourceLimits {
    fn default() -> Self {
        ResourceLimits {
            file_size: None,
            open_files: 2048,
        }
    }
}

impl ResourceLimits {
    /// Parses `fsize=N,no-file=N` (either or both) over the defaults.
    pub fn parse(text: &str) -> Result<ResourceLimits, JailError> {
        let mut limits = ResourceLimits::default();
        for pair in text.split(',') {
            let bad = |why| JailError::BadLimit(text.to_owned(), why);
            let (key, value) = pair.split_once('=').ok_or(bad("not KEY=VALUE"))?;
            let value: u64 = value.parse().map_err(|_| bad("not a number"))?;
            match key {
                "fsize" => limits.file_size = Some(value),
                "no-file" if value > 0 => limits.open_files = value,
                "no-file" => return Err(bad("no-file must be at least 1")),
                _ => return Err(bad("the limits are fsize and no-file")),
            }
        }
        Ok(limits)
    }

    pub(crate) fn apply(&self) -> Result<(), JailError> {
        let set = |resource, value| {
            setrlimit(resource, value, value).map_err(JailError::system("set a resource limit"))
        };
        set(Resource::RLIMIT_NOFILE, self.open_files)?;
        if let Some(size) = self.file_size {
            set(Resource::RLIMIT_FSIZE, size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_over_the_defaults() {
        let l = ResourceLimits::parse("fsize=1048576").unwrap();
        assert_eq!((l.file_size, l.open_files), (Some(1 << 20), 2048));
        let l = ResourceLimits::parse("no-file=64,fsize=10").unwrap();
        assert_eq!((l.file_size, l.open_files), (Some(10), 64));
        for bad in ["fsize", "fsize=x", "no-file=0", "cpu=1", ""] {
            assert!(ResourceLimits::parse(bad).is_err(), "{bad}");
        }
    }
}
