//! Helper programs of this crate (`src/bin`) that tests copy into the
//! test host or a guest, built on demand next to the binary under test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::assets::run;
use crate::{Error, Result};

/// Builds the testhost binary `name` with the same profile as `next_to`
/// (a binary in `target/[<triple>/]<profile>/`), in the same target
/// directory, and returns the path Cargo reports for it. Cargo does not
/// build other packages' binaries for a test on its own.
pub fn build_tool(name: &str, next_to: &Path) -> Result<PathBuf> {
    let shown = format!("build {name}");
    let dir = next_to.parent().ok_or_else(|| Error::Command {
        command: shown.clone(),
        detail: format!("{} has no directory", next_to.display()),
    })?;
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    // Cargo tags the target directory, and also the directory of each
    // target triple inside it: the outermost tag is the target directory.
    let target_dir = dir
        .ancestors()
        .skip(1)
        .filter(|d| d.join("CACHEDIR.TAG").is_file())
        .last()
        .unwrap_or_else(|| dir.parent().unwrap_or(dir));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--quiet",
            "--message-format=json",
            "-p",
            "testhost",
        ])
        .args(["--bin", name, "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let messages = run(&mut command)?;
    executable(&messages, name).ok_or_else(|| Error::Command {
        command: shown,
        detail: "cargo named no executable for it".into(),
    })
}

/// The `executable` Cargo's JSON messages give for the binary `name`.
fn executable(messages: &str, name: &str) -> Option<PathBuf> {
    const KEY: &str = "\"executable\":\"";
    let target = format!("\"name\":\"{name}\"");
    messages
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\"") && l.contains(&target))
        .find_map(|l| {
            let rest = &l[l.find(KEY)? + KEY.len()..];
            let path = &rest[..rest.find('"')?];
            // A path JSON had to escape is not one this reads right.
            (!path.contains('\\')).then(|| PathBuf::from(path))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executable_is_read_from_the_artifact_message() {
        let messages = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"cpio"},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"tool"},"#,
            r#""executable":"/t/x86_64-unknown-linux-gnu/debug/tool","fresh":true}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            executable(messages, "tool"),
            Some(PathBuf::from("/t/x86_64-unknown-linux-gnu/debug/tool"))
        );
        assert_eq!(executable(messages, "other"), None);
    }
}
