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
    }
}
