//! The `pointsman` command line, and Firecracker's when the binary is
//! started as `firecracker`.

mod cli;
mod config_file;
mod detach_key;
mod exit_code;
mod firecracker;
mod jail_command;
mod landlock_rules;
mod launch;
mod logging;
mod raw_terminal;
mod restore_overrides;
mod serve_command;
mod snapshot_cmd;
mod top_command;
mod vm_command;
mod vm_console;
mod vm_set_command;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    if firecracker::started_as_firecracker(args.first()) {
        return firecracker::main(args);
    }
    // A VMM parses `run`'s options alone: building every subcommand's
    // options would fault their code and text into each VMM's memory.
    if args.get(1).is_some_and(|a| a == "run") {
        return match cli::RunOnly::try_parse_from(&args[1..]) {
            Ok(only) => cli::run(&only.run),
            Err(e) => usage_error(&e),
        };
    }
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
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
        cli::Command::Top(args) => top_command::run(&args),
        cli::Command::Vm(args) => {
            die_quietly_on_a_closed_pipe();
            vm_command::run(&args)
        }
    }
}

/// Help and version go to stdout with status 0; usage errors print
/// clap's message and exit with the bad-input status.
fn usage_error(e: &clap::Error) -> ExitCode {
    let _ = e.print();
    if e.use_stderr() {
        ExitCode::from(exit_code::BAD_INPUT)
    } else {
        ExitCode::SUCCESS
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
