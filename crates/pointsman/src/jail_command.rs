//! `pointsman jail [OPTIONS] -- <pointsman run arguments>`: the VMM run
//! in a jail (the `jail` crate) built from the files its arguments name,
//! each given to the jailed VMM at `/<name>` in its root.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser};
use jail::{CgroupSetting, CgroupVersion, JailSpec, Outcome, ResourceLimits, VmFile};

use crate::cli::RunOnly;
use crate::{exit_code, launch};

#[derive(Args, Debug)]
pub struct JailArgs {
    /// The VM's id: its jail is CHROOT_BASE/pointsman/ID/root, its cgroup
    /// PARENT_CGROUP/ID (1 to 64 letters, digits, '-' or '_').
    #[arg(long)]
    pub id: String,
    /// The user the VMM runs as (0 only with --allow-root).
    #[arg(long)]
    pub uid: u32,
    /// The group the VMM runs as (0 only with --allow-root).
    #[arg(long)]
    pub gid: u32,
    /// Let --uid or --gid be 0 (root keeps no capabilities in the jail).
    #[arg(long)]
    pub allow_root: bool,
    /// Where jails are made (an existing directory).
    #[arg(long, value_name = "DIR", default_value = "/srv/pointsman")]
    pub chroot_base: PathBuf,
    /// A network namespace for the VMM to join (e.g. /var/run/netns/NAME).
    #[arg(long, value_name = "PATH")]
    pub netns: Option<PathBuf>,
    /// A cgroup setting for the VMM (repeatable): FILE=VALUE, e.g.
    /// cpu.shares=512 (v1) or cpu.weight=200 (v2).
    #[arg(long, value_name = "FILE=VALUE")]
    pub cgroup: Vec<String>,
    /// Which cgroup hierarchy --cgroup settings are for.
    #[arg(long, value_name = "1|2", default_value = "1", value_parser = ["1", "2"])]
    pub cgroup_version: String,
    /// The cgroup under which the VMM's own is made.
    #[arg(long, value_name = "PATH", default_value = "pointsman")]
    pub parent_cgroup: String,
    /// Resource limits (repeatable): fsize=BYTES (largest file the VMM
    /// writes), no-file=N (open files; 2048 if not given).
    #[arg(long, value_name = "LIMITS")]
    pub resource_limit: Vec<String>,
    /// Run the VMM in the background, detached from the terminal; its pid
    /// is printed.
    #[arg(long)]
    pub daemonize: bool,
    /// Run the VMM as the first process of a new PID namespace.
    #[arg(long)]
    pub new_pid_ns: bool,
    /// A file to place in the root beyond those the run arguments name
    /// (repeatable): `path=PATH[,readonly=on]`, at `/<its name>`, writable
    /// unless readonly=on. A guest restored with --restore opens its disks
    /// by the paths its snapshot saved, which no run argument names.
    #[arg(long, value_name = "path=PATH[,readonly=on]")]
    pub file: Vec<String>,
    /// The arguments of `pointsman run`, after `--`. Paths they name are
    /// placed in the jail; sockets (--api-sock, --vsock socket=) appear
    /// in its root.
    #[arg(last = true, required = true, value_name = "RUN ARGUMENTS")]
    pub run: Vec<OsString>,
}

pub fn run(args: &JailArgs) -> ExitCode {
    match jail(args) {
        Ok(Outcome::ChildExited(code)) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Ok(Outcome::Detached(pid)) => {
            println!("{pid}");
            ExitCode::SUCCESS
        }
        Err(Failure::BadInput(e)) => launch::bad_input(format!("jail: {e}")),
        Err(Failure::Host(e)) => {
            eprintln!("pointsman: jail: {e}");
            ExitCode::from(exit_code::VMM_FAILURE)
        }
    }
}

enum Failure {
    BadInput(String),
    Host(String),
}

fn jail(args: &JailArgs) -> Result<Outcome, Failure> {
    let bad = |e: &dyn std::fmt::Display| Failure::BadInput(e.to_string());
    // `-- run ARGS` and `-- ARGS` alike.
    let given = match args.run.split_first() {
        Some((first, rest)) if first == "run" => rest,
        _ => &args.run[..],
    };
    let run_args = std::iter::once(OsString::from("run")).chain(given.iter().cloned());
    let parsed = RunOnly::try_parse_from(run_args).map_err(|e| {
        // clap's message is several lines: its first says what is wrong.
        let text = e.to_string();
        Failure::BadInput(format!(
            "the run arguments: {}",
            text.lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ")
        ))
    })?;
    if parsed.run.config_file.is_some() {
        return Err(Failure::BadInput(
            "the run arguments: a jailed VMM takes its guest as options (--kernel, --disk, ...), not --config-file".into(),
        ));
    }
    let mut limits = ResourceLimits::default();
    for text in &args.resource_limit {
        let more = ResourceLimits::parse(text).map_err(|e| bad(&e))?;
        limits.file_size = more.file_size.or(limits.file_size);
        if text.contains("no-file") {
            limits.open_files = more.open_files;
        }
    }
    let spec = JailSpec {
        id: args.id.clone(),
        uid: args.uid,
        gid: args.gid,
        allow_root: args.allow_root,
        chroot_base: args.chroot_base.clone(),
        netns: args.netns.clone(),
        cgroups: args
            .cgroup
            .iter()
            .map(|c| CgroupSetting::parse(c))
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?,
        cgroup_version: if args.cgroup_version == "2" {
            CgroupVersion::V2
        } else {
            CgroupVersion::V1
        },
        parent_cgroup: args.parent_cgroup.clone(),
        limits,
        daemonize: args.daemonize,
        new_pid_ns: args.new_pid_ns,
        taps: parsed
            .run
            .net
            .iter()
            .filter_map(|spec| {
                spec.split(',')
                    .find_map(|part| part.strip_prefix("tap="))
                    .map(str::to_owned)
            })
            .collect(),
    };
    let (files, rewritten) = jailed_arguments(&args.file, given)?;
    let mut vmm_args = vec![OsString::from("run")];
    vmm_args.extend(rewritten);
    // Everything in the root is the VM's own: Landlock keeps the VMM to
    // it, should it get out of its mount namespace's view.
    vmm_args.extend(["--landlock", "--landlock-rule", "/"].map(OsString::from));
    jail::run(&spec, &files, &vmm_args).map_err(|e| {
        if e.is_bad_input() {
            Failure::BadInput(e.to_string())
        } else {
            Failure::Host(e.to_string())
        }
    })
}

/// How an option's value names a file.
#[derive(Clone, Copy)]
enum PathIn {
    /// The whole value is a file the VMM reads.
    Input,
    /// The whole value is a file the VMM creates.
    Output,
    /// `path=` of a `--disk` spec: read, and written unless readonly=on.
    DiskSpec,
    /// `socket=` of a `--vsock` spec: created.
    VsockSpec,
}

/// The options of `pointsman run` that name files.
const PATH_OPTIONS: [(&str, PathIn); 7] = [
    ("--kernel", PathIn::Input),
    ("--initrd", PathIn::Input),
    ("--restore", PathIn::Input),
    ("--mem-file", PathIn::Input),
    ("--api-sock", PathIn::Output),
    ("--disk", PathIn::DiskSpec),
    ("--vsock", PathIn::VsockSpec),
];

/// The `--file` files and those `args` name, each at a name of its own
/// in the root (the `--file` ones first: they keep their names), and
/// `args` with each path replaced by its place in the jail.
fn jailed_arguments(
    extra: &[String],
    args: &[OsString],
) -> Result<(Vec<VmFile>, Vec<OsString>), Failure> {
    let mut files = Vec::new();
    for spec in extra {
        if !spec.split(',').any(|part| part.starts_with("path=")) {
            return Err(Failure::BadInput(format!(
                "--file {spec}: expected path=PATH[,readonly=on]"
            )));
        }
        jail_value("--file", PathIn::DiskSpec, OsStr::new(spec), &mut files);
    }
    let mut out = Vec::with_capacity(args.len());
    let mut pending: Option<(&str, PathIn)> = None;
    for arg in args {
        if let Some((option, kind)) = pending.take() {
            out.push(jail_value(option, kind, arg, &mut files));
            continue;
        }
        let text = arg.to_string_lossy();
        let matched = PATH_OPTIONS.iter().find_map(|&(option, kind)| {
            if text == option {
                Some((option, kind, None))
            } else {
                text.strip_prefix(option)
                    .and_then(|rest| rest.strip_prefix('='))
                    .map(|value| (option, kind, Some(OsString::from(value))))
            }
        });
        match matched {
            Some((option, kind, None)) => {
                out.push(arg.clone());
                pending = Some((option, kind));
            }
            Some((option, kind, Some(value))) => {
                let value = jail_value(option, kind, &value, &mut files);
                let mut joined = OsString::from(format!("{option}="));
                joined.push(value);
                out.push(joined);
            }
            None => out.push(arg.clone()),
        }
    }
    Ok((files, out))
}

/// `value` of `option` with its path replaced by the jail's, the file
/// added to `files`.
fn jail_value(option: &str, kind: PathIn, value: &OsStr, files: &mut Vec<VmFile>) -> OsString {
    match kind {
        PathIn::Input | PathIn::Output => {
            let host = PathBuf::from(value);
            let name = unique_name(&host, files);
            files.push(match kind {
                PathIn::Input => VmFile::Input {
                    what: option.to_owned(),
                    host,
                    name: name.clone(),
                    writable: false,
                },
                _ => VmFile::Output {
                    what: option.to_owned(),
                    name: name.clone(),
                },
            });
            OsString::from(format!("/{name}"))
        }
        PathIn::DiskSpec | PathIn::VsockSpec => {
            let spec = value.to_string_lossy();
            let key = if matches!(kind, PathIn::DiskSpec) {
                "path="
            } else {
                "socket="
            };
            let writable = !spec
                .split(',')
                .any(|p| p == "readonly=on" || p == "readonly=true");
            let parts: Vec<String> = spec
                .split(',')
                .map(|part| match part.strip_prefix(key) {
                    Some(path) => {
                        let host = PathBuf::from(path);
                        let name = unique_name(&host, files);
                        files.push(if matches!(kind, PathIn::DiskSpec) {
                            VmFile::Input {
                                what: option.to_owned(),
                                host,
                                name: name.clone(),
                                writable,
                            }
                        } else {
                            VmFile::Output {
                                what: option.to_owned(),
                                name: name.clone(),
                            }
                        });
                        format!("{key}/{name}")
                    }
                    None => part.to_owned(),
                })
                .collect();
            OsString::from(parts.join(","))
        }
    }
}

/// `path`'s file name, made unique among `files` by a number.
fn unique_name(path: &Path, files: &[VmFile]) -> String {
    let base = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty() && n != jail::EXEC_NAME && n != "dev")
        .unwrap_or_else(|| "file".to_owned());
    let taken = |name: &str| files.iter().any(|f| f.name() == name);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|name| !taken(name))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each input file's name in the jail and whether it is writable.
    fn inputs(files: &[VmFile]) -> Vec<(&str, bool)> {
        files
            .iter()
            .filter_map(|f| match f {
                VmFile::Input { name, writable, .. } => Some((name.as_str(), *writable)),
                VmFile::Output { .. } => None,
            })
            .collect()
    }

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn paths_move_into_the_jail() {
        let args: Vec<OsString> = [
            "--kernel",
            "/boot/vmlinux",
            "--disk=path=/img/a.raw,readonly=on,id=root",
            "--disk",
            "path=/other/a.raw",
            "--vsock",
            "cid=3,socket=/run/v.sock",
            "--api-sock",
            "/run/api.sock",
            "--cmdline",
            "console=ttyS0 path=/x",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let Ok((files, out)) = jailed_arguments(&[], &args) else {
            panic!("refused");
        };
        assert_eq!(
            strings(&out),
            [
                "--kernel",
                "/vmlinux",
                "--disk=path=/a.raw,readonly=on,id=root",
                "--disk",
                "path=/a.raw-2",
                "--vsock",
                "cid=3,socket=/v.sock",
                "--api-sock",
                "/api.sock",
                "--cmdline",
                "console=ttyS0 path=/x",
            ]
        );
        let writable = inputs(&files);
        assert_eq!(
            writable,
            [("vmlinux", false), ("a.raw", false), ("a.raw-2", true)]
        );
        let outputs = files
            .iter()
            .filter(|f| matches!(f, VmFile::Output { .. }))
            .count();
        assert_eq!(outputs, 2);
    }

    #[test]
    fn extra_files_keep_their_names_before_the_run_arguments() {
        let extra = [
            "path=/clones/c1/snapshot,readonly=on".to_owned(),
            "path=/disks/data.raw".to_owned(),
        ];
        let args: Vec<OsString> = ["--restore", "/snaps/a/snapshot"]
            .iter()
            .map(OsString::from)
            .collect();
        let Ok((files, out)) = jailed_arguments(&extra, &args) else {
            panic!("refused");
        };
        assert_eq!(strings(&out), ["--restore", "/snapshot-2"]);
        let names = inputs(&files);
        assert_eq!(
            names,
            [
                ("snapshot", false),
                ("data.raw", true),
                ("snapshot-2", false)
            ]
        );
        assert!(jailed_arguments(&["readonly=on".to_owned()], &[]).is_err());
    }

    #[test]
    fn names_that_are_the_jails_own_are_renamed() {
        let files = Vec::new();
        assert_eq!(unique_name(Path::new("/bin/pointsman"), &files), "file");
        assert_eq!(unique_name(Path::new("/"), &files), "file");
        assert_eq!(unique_name(Path::new("/x/dev"), &files), "file");
    }
}
