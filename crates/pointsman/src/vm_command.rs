//! `pointsman vm ...`: the host manager's client. It finds the daemon
//! through `--socket` or `POINTSMAN_SOCKET`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use manager::client::Client;
use manager::clone::{expand, CloneRequest};
use manager::guest::GuestConfig;
use manager::restart::RestartPolicy;
use manager::serve::DEFAULT_SOCKET;
use serde_json::Value;

use crate::detach_key::{DetachKey, DEFAULT_DETACH_KEY};
use crate::exit_code;
use crate::vm_console::{self, VmError};

#[derive(Args, Debug)]
pub struct VmArgs {
    /// The daemon's socket.
    #[arg(long, value_name = "PATH", env = "POINTSMAN_SOCKET", default_value = DEFAULT_SOCKET, global = true)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub command: VmCommand,
}

#[derive(Subcommand, Debug)]
pub enum VmCommand {
    /// Admit and start a guest (refused, with status 2, if the host has
    /// no room for it).
    Create(Box<CreateArgs>),
    /// Every guest: name, state, pid, vCPUs, memory.
    List {
        /// An array of objects (name, state, pid, cpus, memory_mib).
        #[arg(long)]
        json: bool,
    },
    /// One guest: its state, limits, exit status and console's end.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// The guest's console output so far.
    Logs {
        name: String,
        /// Go on printing new output until the guest ends (or Ctrl-C).
        #[arg(long, short)]
        follow: bool,
    },
    /// Attach to the guest's serial console: keys go to the guest, its
    /// output comes back; the detach key leaves the guest running.
    Console {
        name: String,
        /// ^X or ctrl-X for Ctrl with X, or one character.
        #[arg(long, value_name = "KEY", default_value = DEFAULT_DETACH_KEY)]
        detach_key: DetachKey,
    },
    /// Pause the guest's vCPUs.
    Pause { name: String },
    /// Resume a paused guest.
    Resume { name: String },
    /// Press Ctrl-Alt-Del (a guest that resets on it ends), then kill the
    /// VMM after the grace period.
    Stop {
        name: String,
        /// Seconds to wait before the kill.
        #[arg(long, value_name = "SECONDS", default_value_t = 10)]
        grace: u64,
    },
    /// New limits for a guest (written to its cgroup and kept).
    Set(crate::vm_set_command::SetArgs),
    /// Kill the guest's VMM at once.
    Kill { name: String },
    /// Remove a guest that is not running: its state, jail and cgroup.
    Rm { name: String },
    /// Write a running or paused guest's snapshot into DIR (made if
    /// missing; refused if it holds one): paused for it, then resumed.
    Snapshot {
        name: String,
        /// Where the snapshot goes: `snapshot`, `memory`, `guest.json`
        /// and `disks/` (each writable disk as it was).
        dir: PathBuf,
    },
    /// Start guests restored from the snapshot in DIR, each admitted as
    /// `create` admits, with a uid, jail, cgroup and console of its own.
    Clone {
        /// A directory `vm snapshot` wrote.
        dir: PathBuf,
        /// The clones' names, started in turn (a refused one stops it).
        #[arg(required = true)]
        names: Vec<String>,
        /// id=ID,tap=TAP: the clone's own TAP for the snapshot's NIC ID
        /// (repeatable; {name} and {index} are replaced per clone). Needed
        /// when the snapshot's guest has NICs.
        #[arg(long, value_name = "id=ID,tap=TAP")]
        net: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    pub name: String,
    /// Kernel to boot (as `pointsman run --kernel`), readable by the
    /// guest's uid or gid.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    #[arg(long, value_name = "TEXT")]
    pub cmdline: Option<String>,
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub cpus: u32,
    #[arg(long, value_name = "SIZE[,thp=on|off]", default_value = "128M")]
    pub memory: String,
    /// As `pointsman run --disk` (repeatable); the image must be readable
    /// (and writable unless readonly=on) by the guest's uid or gid.
    #[arg(long, value_name = "OPTIONS")]
    pub disk: Vec<String>,
    /// As `pointsman run --net` (repeatable).
    #[arg(long, value_name = "SPEC")]
    pub net: Vec<String>,
    /// As `pointsman run --vsock`.
    #[arg(long, value_name = "cid=N,socket=PATH")]
    pub vsock: Option<String>,
    #[arg(long)]
    pub rng: bool,
    #[arg(long)]
    pub pci: bool,
    /// Relative share of contended CPU time, 1-10000.
    #[arg(long, value_name = "W", default_value_t = 100)]
    pub cpu_weight: u32,
    /// Hard CPU cap, in percent of one host CPU.
    #[arg(long, value_name = "PERCENT")]
    pub cpu_max: Option<u32>,
    /// Limit on the VMM's memory [default: the guest's plus 64 MiB].
    #[arg(long, value_name = "SIZE")]
    pub memory_max: Option<String>,
    /// Host CPUs dedicated to the guest (1, 0-1, 2,4-5); guests without
    /// one are kept off them.
    #[arg(long, value_name = "CPUS")]
    pub cpuset: Option<String>,
    /// Relative share of contended disk time, 1-10000 (refused where the
    /// host has no weight file for it).
    #[arg(long, value_name = "W")]
    pub io_weight: Option<u32>,
    /// Start the guest again when its VMM ends unasked.
    #[arg(long, value_name = "POLICY", value_parser = ["no", "on-failure", "always"])]
    pub restart: Option<String>,
}

impl CreateArgs {
    fn config(&self) -> GuestConfig {
        // The daemon has its own working directory: paths go absolute.
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
        GuestConfig {
            kernel: self.kernel.as_deref().map(absolute),
            initrd: self.initrd.as_deref().map(absolute),
            cmdline: self.cmdline.clone(),
            cpus: self.cpus,
            memory: self.memory.clone(),
            disk: self
                .disk
                .iter()
                .map(|spec| absolute_disk_path(spec))
                .collect(),
            net: self.net.clone(),
            vsock: self.vsock.clone(),
            rng: self.rng,
            pci: self.pci,
            cpu_weight: Some(self.cpu_weight),
            cpu_max: self.cpu_max,
            memory_max: self.memory_max.clone(),
            clone_of: None,
            cpuset: self.cpuset.clone(),
            io_weight: self.io_weight,
            restart: self.restart.as_deref().and_then(RestartPolicy::parse),
        }
    }
}

/// A `--disk` spec with its `path=` made absolute.
fn absolute_disk_path(spec: &str) -> String {
    spec.split(',')
        .map(|part| match part.strip_prefix("path=") {
            Some(path) => match std::path::absolute(path) {
                Ok(path) => format!("path={}", path.display()),
                Err(_) => part.to_owned(),
            },
            None => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub fn run(args: &VmArgs) -> ExitCode {
    let client = Client::new(args.socket.clone());
    match command(&client, &args.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pointsman: {e}");
            ExitCode::from(if e.is_bad_input() {
                exit_code::BAD_INPUT
            } else {
                exit_code::VMM_FAILURE
            })
        }
    }
}

fn command(client: &Client, command: &VmCommand) -> Result<(), VmError> {
    match command {
        VmCommand::Create(args) => {
            let shown = client.create(&args.name, &args.config())?;
            println!(
                "{} {} (pid {})",
                args.name,
                text(&shown["state"]),
                text(&shown["pid"])
            );
        }
        VmCommand::List { json: true } => println!("{}", client.list()?),
        VmCommand::List { json: false } => print_table(&client.list()?),
        VmCommand::Show { name, json: true } => println!("{}", client.show(name)?),
        VmCommand::Show { name, json: false } => print_guest(&client.show(name)?),
        VmCommand::Logs {
            name,
            follow: false,
        } => print!("{}", client.logs(name)?),
        VmCommand::Logs { name, follow: true } => vm_console::follow_logs(client, name)?,
        VmCommand::Console { name, detach_key } => vm_console::console(client, name, *detach_key)?,
        VmCommand::Pause { name } => client.set_paused(name, true)?,
        VmCommand::Resume { name } => client.set_paused(name, false)?,
        VmCommand::Stop { name, grace } => {
            let shown = client.stop(name, Duration::from_secs(*grace))?;
            println!(
                "{name} {}: {}",
                text(&shown["state"]),
                text(&shown["exit"]["reason"])
            );
        }
        VmCommand::Kill { name } => {
            let shown = client.kill(name)?;
            println!("{name} {}", text(&shown["state"]));
        }
        VmCommand::Rm { name } => client.remove(name)?,
        VmCommand::Snapshot { name, dir } => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            let written = client.snapshot(name, &dir)?;
            for file in written["files"].as_array().into_iter().flatten() {
                println!("{}", text(file));
            }
        }
        VmCommand::Clone { dir, names, net } => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            for (index, name) in names.iter().enumerate() {
                let request = CloneRequest {
                    dir: dir.clone(),
                    net: net.iter().map(|spec| expand(spec, name, index)).collect(),
                };
                let shown = client.clone_guest(name, &request)?;
                println!(
                    "{name} {} (pid {})",
                    text(&shown["state"]),
                    text(&shown["pid"])
                );
            }
        }
        VmCommand::Set(args) => crate::vm_set_command::set(client, args)?,
    }
    Ok(())
}

/// A JSON value as plain text: strings unquoted, null as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn print_table(list: &Value) {
    println!(
        "{:<24} {:<9} {:>8} {:>4} {:>8}",
        "NAME", "STATE", "PID", "CPUS", "MEMORY"
    );
    for guest in list.as_array().into_iter().flatten() {
        println!(
            "{:<24} {:<9} {:>8} {:>4} {:>5} MiB",
            text(&guest["name"]),
            text(&guest["state"]),
            text(&guest["pid"]),
            text(&guest["cpus"]),
            text(&guest["memory_mib"]),
        );
    }
}

fn print_guest(guest: &Value) {
    for key in [
        "name",
        "state",
        "pid",
        "uid",
        "cpus",
        "memory_mib",
        "cpu_weight",
        "cpu_max",
        "memory_max_mib",
        "cpuset",
        "io_weight",
        "restart",
        "restarts",
        "console_log",
        "cloned_from",
    ] {
        println!("{key:<15} {}", text(&guest[key]));
    }
    if !guest["exit"].is_null() {
        println!("{:<15} {}", "exit_status", text(&guest["exit"]["status"]));
        println!("{:<15} {}", "exit_reason", text(&guest["exit"]["reason"]));
    }
    if guest["exit"].is_null() && !guest["last_exit"].is_null() {
        println!(
            "{:<15} {}",
            "last_exit",
            text(&guest["last_exit"]["reason"])
        );
    }
    println!("console:");
    for line in guest["console_tail"].as_array().into_iter().flatten() {
        println!("  {}", text(line));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_paths_go_absolute_and_the_rest_stays() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            absolute_disk_path("path=img/a.raw,readonly=on"),
            format!("path={}/img/a.raw,readonly=on", cwd.display())
        );
        assert_eq!(absolute_disk_path("id=x,path=/a.raw"), "id=x,path=/a.raw");
    }
}
