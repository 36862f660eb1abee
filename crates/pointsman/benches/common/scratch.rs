//! A bench's scratch directory: guest images, config files, sockets and
//! snapshots live there for one run, and go with it.

use std::path::{Path, PathBuf};

/// A directory of its own under the temporary directory, removed on drop.
pub struct ScratchDir {
    dir: PathBuf,
}

impl ScratchDir {
    /// `pointsman-BENCH-bench-PID` under the temporary directory.
    pub fn new(bench: &str) -> Result<ScratchDir, String> {
        let name = format!("pointsman-{bench}-bench-{}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(ScratchDir { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The path of `name` in the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `bytes` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, String> {
        let path = self.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
