//! `pointsman serve`: the host manager's daemon (the `manager` crate).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use manager::capacity::{Capacity, Overcommit};
use manager::cgroup::CgroupLayout;
use manager::daemon::Settings;
use manager::serve::{ServeOptions, DEFAULT_SOCKET, DEFAULT_STATE_DIR};
use manager::ManagerError;

use crate::{exit_code, logging};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The API's Unix socket (owner-only).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Where guests' configurations, console logs, process records and
    /// jails are kept; one daemon per directory.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// What guests may be given: cpus=N,memory=SIZE [default: the host's
    /// CPUs, and its memory less the larger of 512 MiB and a tenth].
    #[arg(long, value_name = "cpus=N,memory=SIZE")]
    pub capacity: Option<String>,
    /// How many times over CPU and memory may be promised.
    #[arg(long, value_name = "cpu=R,memory=R", default_value = "cpu=4,memory=1")]
    pub overcommit: String,
    /// The uids (and gids) guests' VMMs run as, one each.
    #[arg(long, value_name = "FIRST-LAST", default_value = "40000-49999")]
    pub uid_range: String,
    /// The cgroup under which each guest's own is made.
    #[arg(long, value_name = "PATH", default_value = "pointsman")]
    pub parent_cgroup: String,
    /// A guest's console log past this size is kept as console.log.1 and
    /// started again, so a guest printing for ever cannot fill the disk.
    #[arg(long, value_name = "SIZE", default_value = "16M")]
    pub console_log_max: String,
}

pub fn run(args: &ServeArgs) -> ExitCode {
    let _log = logging::init_at(tracing::Level::INFO);
    let options = match options(args) {
        Ok(options) => options,
        Err(e) => return bad_input(&e),
    };
    match manager::serve::serve(options) {
        Ok(()) => ExitCode::SUCCESS,
        // Another daemon holds the state directory or the socket.
        Err(
            e @ (ManagerError::Locked { .. }
            | ManagerError::Api(
                api::ApiError::SocketInUse { .. } | api::ApiError::NotASocket { .. },
            )),
        ) => bad_input(&e),
        Err(e) => {
            eprintln!("pointsman serve: {e}");
            ExitCode::from(exit_code::VMM_FAILURE)
        }
    }
}

fn bad_input(e: &ManagerError) -> ExitCode {
    eprintln!("pointsman serve: {e}");
    ExitCode::from(exit_code::BAD_INPUT)
}

/// `--console-log-max`: at least 4 KiB, so that a rotation keeps whole
/// lines of any guest worth reading.
fn console_log_max(text: &str) -> Result<u64, ManagerError> {
    let bad = || ManagerError::BadConsoleLogMax(text.to_owned());
    let bytes = manager::size::parse_size(text).map_err(|_| bad())?;
    if bytes < 4096 {
        return Err(bad());
    }
    Ok(bytes)
}

fn options(args: &ServeArgs) -> Result<ServeOptions, ManagerError> {
    let host = Capacity::of_host();
    let capacity = match &args.capacity {
        Some(text) => Capacity::parse(text, host)?,
        None => host,
    };
    let exe = std::env::current_exe().map_err(|source| ManagerError::Io {
        what: "find",
        path: "/proc/self/exe".into(),
        source,
    })?;
    Ok(ServeOptions {
        socket: args.socket.clone(),
        state_dir: args.state_dir.clone(),
        settings: Settings {
            capacity,
            overcommit: Overcommit::parse(&args.overcommit)?,
            uid_range: manager::parse_uid_range(&args.uid_range)?,
            parent_cgroup: args.parent_cgroup.clone(),
            exe,
            cgroups: CgroupLayout::of_host(),
            console_log_max: console_log_max(&args.console_log_max)?,
        },
    })
}
