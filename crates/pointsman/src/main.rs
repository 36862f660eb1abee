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
        cli::Command::Snapshot(command) => snapshot_cmd::run(&command),
        cli::Command::Serve(args) => serve_command::run(&args),
        cli::Command::Vm(args) => vm_command::run(&args),
    }
}
