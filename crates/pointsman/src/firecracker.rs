//! The `firecracker` name: Firecracker's own command line, for tools that
//! start `firecracker` (a symlink to this binary, as busybox does, or
//! `pointsman firecracker ...`). Under it a guest reset ends the VMM
//! with status 0, as in Firecracker, and the console is on stdin/stdout.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser};

use vmm::resources::{LogLevel, Logger, DEFAULT_INSTANCE_ID, FIRECRACKER_VERSION};

use crate::{config_file, exit_code, launch, logging};

/// Firecracker's default API socket.
pub const DEFAULT_API_SOCK: &str = "/run/firecracker.socket";
/// Firecracker's default limit on an API request's body, in bytes.
pub const DEFAULT_MAX_PAYLOAD: usize = 51200;

/// The program name that selects Firecracker's command line.
const NAME: &str = "firecracker";

/// `firecracker ...` started under that name.
#[derive(Parser, Debug)]
#[command(
    name = NAME,
    about = "Pointsman under Firecracker's name: Firecracker's command line, API and config file",
    disable_version_flag = true
)]
pub struct FirecrackerCli {
    #[command(flatten)]
    pub args: FirecrackerArgs,
}

/// Firecracker's flags. The ones marked "accepted and unused" are parsed
/// (and their values checked) so that tools passing them work, but change
/// nothing.
#[derive(Args, Debug, Clone)]
pub struct FirecrackerArgs {
    /// Unix socket the API listens on.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_API_SOCK)]
    pub api_sock: PathBuf,
    /// Boot the guest this JSON configuration describes at once.
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// No API: the guest comes from --config-file alone.
    #[arg(long, requires = "config_file")]
    pub no_api: bool,
    /// The microVM's id (letters, digits and '-', 1 to 64 characters).
    #[arg(long, value_name = "ID", default_value = DEFAULT_INSTANCE_ID, value_parser = parse_instance_id)]
    pub id: String,
    /// File or FIFO the log is appended to (stderr when left out).
    #[arg(long, value_name = "PATH")]
    pub log_path: Option<PathBuf>,
    /// Log level: Off, Error, Warning, Info, Debug or Trace.
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub level: Option<String>,
    /// Log only this module's messages (a Rust path such as virtio::net).
    #[arg(long, value_name = "MODULE")]
    pub module: Option<String>,
    /// Show each message's level in the log.
    #[arg(long)]
    pub show_level: bool,
    /// Show each message's file and line in the log.
    #[arg(long)]
    pub show_log_origin: bool,
    /// File or FIFO the metrics are written to.
    #[arg(long, value_name = "PATH")]
    pub metrics_path: Option<PathBuf>,
    /// Accepted and unused: Pointsman has no boot timer device.
    #[arg(long)]
    pub boot_timer: bool,
    /// Largest API request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_PAYLOAD)]
    pub http_api_max_payload_size: usize,
    /// Accepted and unused: Pointsman has no metadata service (MMDS).
    #[arg(long, value_name = "BYTES")]
    pub mmds_size_limit: Option<usize>,
    /// Refused: Pointsman has no metadata service (MMDS) to fill.
    #[arg(long, value_name = "FILE")]
    pub metadata: Option<PathBuf>,
    /// Refused: Pointsman builds its own seccomp filters and loads no
    /// compiled BPF file.
    #[arg(long, value_name = "FILE", conflicts_with = "no_seccomp")]
    pub seccomp_filter: Option<PathBuf>,
    /// Print the format version of this snapshot file (`vN.0.0`) and exit.
    #[arg(long, value_name = "SNAPSHOT")]
    pub describe_snapshot: Option<PathBuf>,
    /// Run without seccomp filters (Pointsman's `--seccomp off`).
    #[arg(long)]
    pub no_seccomp: bool,
    /// Accepted and unused (the jailer's start time, in µs).
    #[arg(long, value_name = "US")]
    pub start_time_us: Option<u64>,
    /// Accepted and unused (the jailer's start CPU time, in µs).
    #[arg(long, value_name = "US")]
    pub start_time_cpu_us: Option<u64>,
    /// Accepted and unused (the parent's CPU time, in µs).
    #[arg(long, value_name = "US")]
    pub parent_cpu_time_us: Option<u64>,
    /// Put the virtio devices on PCI with MSI-X (Pointsman's --pci).
    #[arg(long)]
    pub enable_pci: bool,
    /// Print the version and exit.
    #[arg(long)]
    pub version: bool,
}

/// Firecracker's instance ids: 1 to 64 letters, digits or '-'.
fn parse_instance_id(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(text.to_owned())
    } else {
        Err("an id is 1 to 64 characters, each a letter, a digit or '-'".to_owned())
    }
}

fn parse_level(text: &str) -> Result<String, String> {
    LogLevel::parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

/// True when the program was started under the name `firecracker`, or
/// a release's name such as `firecracker-v1.16.0-x86_64`.
pub fn started_as_firecracker(argv0: Option<&OsString>) -> bool {
    argv0
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .is_some_and(|name| name == NAME || name.starts_with("firecracker-"))
}

/// Parses Firecracker's command line (`args` with the program name
/// first) and runs it. Help goes to stdout with status 0; a usage error
/// prints clap's message with status 2.
pub fn main(args: Vec<OsString>) -> ExitCode {
    match FirecrackerCli::try_parse_from(args) {
        Ok(cli) => run(&cli.args),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                ExitCode::from(exit_code::BAD_INPUT)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

/// The version, as Firecracker prints it, then what this really is.
pub fn version_text() -> String {
    format!(
        "Firecracker v{FIRECRACKER_VERSION}\n\nPointsman {}: Firecracker's API and command line on the Pointsman VMM\n",
        env!("CARGO_PKG_VERSION")
    )
}

impl FirecrackerArgs {
    /// The logger the flags ask for. With neither `--log-path` nor
    /// `--level` only warnings are logged (to stderr: stdout is the
    /// console); with either, the level is Firecracker's default, `Info`.
    pub fn logger(&self) -> Logger {
        let quiet = self.log_path.is_none() && self.level.is_none();
        Logger {
            log_path: self
                .log_path
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
            level: if quiet {
                Some("Warning".to_owned())
            } else {
                self.level.clone()
            },
            show_level: Some(self.show_level),
            show_log_origin: Some(self.show_log_origin),
            module: self.module.clone(),
        }
    }
}

/// Runs Firecracker's command line: the API on `--api-sock` (unless
/// `--no-api`), and the config file's guest at once if one is given. As
/// in Firecracker, a guest's reset ends the VMM.
pub fn run(args: &FirecrackerArgs) -> ExitCode {
    if args.version {
        print!("{}", version_text());
        return ExitCode::SUCCESS;
    }
    if let Some(path) = &args.describe_snapshot {
        return match crate::snapshot_cmd::describe(path) {
            Ok(info) => {
                use std::io::Write;
                let _ = writeln!(std::io::stdout(), "v{}.0.0", info.format_version);
                ExitCode::SUCCESS
            }
            Err(e) => launch::bad_input(e),
        };
    }
    if args.seccomp_filter.is_some() {
        return launch::bad_input(
            "--seccomp-filter: Pointsman builds its own seccomp filters and cannot load a compiled BPF file (--no-seccomp turns them off)",
        );
    }
    seccomp::set_mode(if args.no_seccomp {
        seccomp::Mode::Off
    } else {
        seccomp::Mode::On
    });
    if args.metadata.is_some() {
        return launch::bad_input("--metadata: Pointsman has no metadata service (MMDS) to fill");
    }
    let loaded = match &args.config_file {
        Some(path) => match config_file::load(path) {
            Ok(loaded) => Some(loaded),
            Err(e) => return launch::bad_input(e),
        },
        None => None,
    };
    // As in Firecracker, the flags set the log up, then the config
    // file's logger and each PUT /logger change it.
    let mut log = match logging::init_from(&args.logger()) {
        Ok(log) => log,
        Err(e) => return launch::bad_input(e),
    };
    if let Some(logger) = loaded.as_ref().and_then(|(r, _)| r.logger.as_ref()) {
        if let Err(e) = log.update(logger) {
            return launch::bad_input(e);
        }
    }
    let metrics = args.metrics_path.clone().or_else(|| {
        loaded
            .as_ref()
            .and_then(|(r, _)| r.metrics.as_ref())
            .map(|m| PathBuf::from(&m.metrics_path))
    });
    let options = vmm::StartOptions {
        no_reboot: true,
        pci: args.enable_pci,
    };
    let (resources, boot) = match loaded {
        Some((resources, mut config)) => {
            config.no_reboot = options.no_reboot;
            config.pci = options.pci;
            (resources, Some(vmm::Boot::Config(config)))
        }
        None => (vmm::VmResources::default(), None),
    };
    if args.no_api {
        let Some(boot) = boot else {
            unreachable!("clap makes --no-api require --config-file");
        };
        return launch::boot(boot, options, false);
    }
    launch::serve_api(launch::ApiLaunch {
        socket: args.api_sock.clone(),
        max_payload: args.http_api_max_payload_size,
        id: args.id.clone(),
        boot,
        resources,
        options,
        metrics,
        logger: Some(log.into_hook()),
        verbose: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<FirecrackerArgs, clap::Error> {
        FirecrackerCli::try_parse_from(std::iter::once("firecracker").chain(args.iter().copied()))
            .map(|cli| cli.args)
    }

    #[test]
    fn defaults_are_firecrackers() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.api_sock, Path::new(DEFAULT_API_SOCK));
        assert_eq!(args.id, DEFAULT_INSTANCE_ID);
        assert_eq!(args.http_api_max_payload_size, 51200);
        assert!(!args.no_api && !args.enable_pci && args.config_file.is_none());
    }

    #[test]
    fn every_flag_parses() {
        let args = parse(&[
            "--api-sock",
            "/tmp/fc.sock",
            "--config-file",
            "/tmp/vm.json",
            "--no-api",
            "--id",
            "vm-1",
            "--log-path",
            "/tmp/log",
            "--level",
            "Debug",
            "--module",
            "virtio",
            "--show-level",
            "--show-log-origin",
            "--metrics-path",
            "/tmp/m",
            "--boot-timer",
            "--http-api-max-payload-size",
            "1000",
            "--mmds-size-limit",
            "100",
            "--seccomp-filter",
            "/tmp/f.bpf",
            "--start-time-us",
            "1",
            "--start-time-cpu-us",
            "2",
            "--parent-cpu-time-us",
            "3",
            "--enable-pci",
        ])
        .unwrap();
        assert_eq!(args.api_sock, Path::new("/tmp/fc.sock"));
        assert!(args.no_api && args.enable_pci && args.boot_timer);
        assert_eq!(args.id, "vm-1");
        let logger = args.logger();
        assert_eq!(logger.log_path.as_deref(), Some("/tmp/log"));
        assert_eq!(logger.filter_directive().unwrap(), "off,virtio=debug");
        assert_eq!(
            (logger.show_level, logger.show_log_origin),
            (Some(true), Some(true))
        );
        assert!(parse(&["--no-seccomp"]).unwrap().no_seccomp);
        let quiet = parse(&[]).unwrap().logger();
        assert_eq!(quiet.filter_directive().unwrap(), "warn");
        let to_file = parse(&["--log-path", "/tmp/log"]).unwrap().logger();
        assert_eq!(to_file.filter_directive().unwrap(), "info");
    }

    #[test]
    fn refusals() {
        for bad in [
            &["--no-api"][..],
            &["--id", "a_b"],
            &["--id", ""],
            &["--level", "Loud"],
            &["--no-seccomp", "--seccomp-filter", "/f"],
            &["--http-api-max-payload-size", "-1"],
            &["--kernel", "/k"],
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.use_stderr(), "{bad:?}");
        }
    }

    #[test]
    fn the_name_is_the_file_name_of_argv0() {
        let name = |s: &str| started_as_firecracker(Some(&OsString::from(s)));
        assert!(name("firecracker"));
        assert!(name("/usr/local/bin/firecracker"));
        assert!(!name("pointsman"));
        assert!(!name("/opt/firecracker/pointsman"));
        assert!(name("firecracker-v1.16.0-x86_64"));
        assert!(!name("firecrackers"));
        assert!(!started_as_firecracker(None));
    }

    #[test]
    fn version_starts_as_firecrackers() {
        let text = version_text();
        assert!(text.starts_with(&format!("Firecracker v{FIRECRACKER_VERSION}\n")));
        assert!(text.contains("Pointsman"));
    }
}
