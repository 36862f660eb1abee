//! Helper programs of this crate (`src/bin`) that tests copy into the
//! test host or a guest, built on demand next to the binary under test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::assets::run;
use crate::{Error, Result};

/// Builds the testhost binary `name` with the same profile as `next_to`
/// (a binary in `target/<profile>/`) and returns its path there. Cargo
/// does not build other packages' binaries for a test on its own.
pub fn build_tool(name: &str, next_to: &Path) -> Result<PathBuf> {
    let dir = next_to.parent().ok_or_else(|| Error::Command {
        command: format!("build {name}"),
        detail: format!("{} has no directory", next_to.display()),
    })?;
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let target_dir = dir.parent().unwrap_or(dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "-p", "testhost", "--bin", name])
        .args(["--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    run(&mut command)?;
    Ok(dir.join(name))
}
