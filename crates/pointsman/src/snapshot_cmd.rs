//! `pointsman snapshot`: tools for snapshot files, without a guest.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use crate::{exit_code, launch};

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Lay Diff snapshots' memory files over the memory file of the
    /// snapshot taken before the first of them, in place: BASE then holds
    /// the memory of the last DIFF, to restore with that Diff's state
    /// file (`--restore DIFF_STATE --mem-file BASE`).
    Merge(MergeArgs),
    /// Say what a snapshot file holds (format version, vCPUs, RAM, the
    /// guest's configuration), checked as a restore would check it.
    Describe(DescribeArgs),
}

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// The snapshot (state) file.
    #[arg(value_name = "SNAPSHOT")]
    pub snapshot: PathBuf,
    /// Print it as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The memory file the Diffs are laid over (changed in place).
    #[arg(value_name = "BASE")]
    pub base: PathBuf,
    /// Diff snapshots' memory files, oldest first.
    #[arg(value_name = "DIFF", required = true)]
    pub diffs: Vec<PathBuf>,
}

/// Runs a `pointsman snapshot` command: a file that cannot be merged
/// (missing, of another size) is refused with one line and status 2,
/// before anything is written; a failed read or write gives status 1.
pub fn run(command: &SnapshotCommand) -> ExitCode {
    match command {
        SnapshotCommand::Merge(args) => match vmm::merge_memory_files(&args.base, &args.diffs) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) if e.is_user_error() => launch::bad_input(e),
            Err(e) => {
                eprintln!("pointsman: {e}");
                ExitCode::from(exit_code::VMM_FAILURE)
            }
        },
        SnapshotCommand::Describe(args) => match describe(&args.snapshot) {
            Ok(info) if args.json => {
                let json = serde_json::json!({
                    "format_version": info.format_version,
                    "vcpus": info.vcpus,
                    "memory_bytes": info.memory_bytes,
                    "config": info.resources,
                });
                print_lines(&[json.to_string()])
            }
            Ok(info) => {
                let config = serde_json::to_string_pretty(&info.resources)
                    .unwrap_or_else(|e| format!("cannot be shown: {e}"));
                print_lines(&[
                    format!("format version: {}", info.format_version),
                    format!("vCPUs: {}", info.vcpus),
                    format!("memory: {} MiB", info.memory_bytes >> 20),
                    format!("configuration: {config}"),
                ])
            }
            Err(e) => launch::bad_input(e),
        },
    }
}

/// Prints `lines`; a reader that went away (`| head`) ends the output
/// quietly, as for any command-line tool.
fn print_lines(lines: &[String]) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for line in lines {
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    ExitCode::SUCCESS
}

/// The most of a file read as a snapshot: more than any state takes, so
/// that a path to something endless (`/dev/zero`) is refused.
const MAX_SNAPSHOT_BYTES: u64 = 64 << 20;

/// What the snapshot at `path` holds, or why it cannot be restored.
pub fn describe(path: &std::path::Path) -> Result<vmm::SnapshotInfo, String> {
    use std::io::Read;
    let shown = path.display();
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open the snapshot {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_SNAPSHOT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the snapshot {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_SNAPSHOT_BYTES {
        return Err(format!(
            "the snapshot {shown} is larger than a snapshot can be"
        ));
    }
    vmm::describe_snapshot(&bytes).map_err(|e| format!("cannot load the snapshot {shown}: {e}"))
}
