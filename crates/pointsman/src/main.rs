//! The `pointsman` command line, and Firecracker's when the binary is
//! started as `firecracker`.

mod cli;
mod config_file;
mod exit_code;
mod firecracker;
mod jail_command;
mod landlock_rules;
mod launch;
mod logging;
mod restore_overrides;
mod serve_command;
mod snapshot_cmd;
mod vm_command;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    if firecracker::started_as_firecracker(args.first()) {
        return firecracker::main(args);
    }
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with status 0; usage errors
            // print clap's message and exit with the bad-input status.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(exit_code::BAD_INPUT)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        // Each sets up its logging from its flags and config file.
        cli::Command::Run(args) => cli::run(&args),
        cli::Command::Firecracker(args) => firecracker::run(&args),
        cli::Command::Jail(args) => jail_command::run(&args),
        cli::Command::Snapshot(command) => {
            die_quietly_on_a_closed_pipe();
            snapshot_cmd::run(&command)
        }
        cli::Command::Serve(args) => serve_command::run(&args),
        cli::Command::Vm(args) => {
            die_quietly_on_a_closed_pipe();
            vm_command::run(&args)
        }
    }
}

/// For commands that only print: a reader that goes away (`| head`) ends
/// the process as it ends any command-line tool, where Rust's default
/// (SIGPIPE ignored) would make the next print panic. Not for the VMM
/// and the daemon, whose sockets must not kill them.
fn die_quietly_on_a_closed_pipe() {
    // SAFETY: restores the default disposition of one signal before any
    // thread starts; no handler is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
