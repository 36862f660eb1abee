//! Pointsman's seccomp filters: one per kind of VMM thread
//! ([`ThreadKind`]), each allowing only the system calls (and ioctl
//! requests) that thread makes. A forbidden call ends the process with
//! one line on stderr and [`FORBIDDEN_CALL_STATUS`] (or, in
//! [`Mode::Log`], is logged by the kernel and allowed).
//!
//! The binary picks the [`Mode`] once at start; until it does, nothing
//! is filtered (library users and unit tests run unfiltered). Each
//! thread installs its own filter when it starts ([`install_in_thread`]),
//! the main thread once the machine is built ([`install`]). A thread
//! also runs under the filters of the thread that started it, which is
//! why each parent's filter allows what its children do.

mod allow_list;
mod filters;
pub mod ioctls;
mod sigsys;
mod syscall_names;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

pub use allow_list::AllowList;
pub use filters::ThreadKind;
pub use sigsys::FORBIDDEN_CALL_STATUS;
pub use syscall_names::syscall_name;

/// The environment variable that, in debug builds only, makes threads of
/// the kind it names make a forbidden call right after their filter is
/// on (the integration tests' check of the report).
pub const TEST_FORBIDDEN_CALL_ENV: &str = "POINTSMAN_TEST_SECCOMP_FORBIDDEN_CALL";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the {kind} thread's seccomp filter: {message}")]
    Build { kind: &'static str, message: String },
    #[error(
        "cannot install the {kind} thread's seccomp filter: {message} (--seccomp off runs without)"
    )]
    Install { kind: &'static str, message: String },
    #[error("cannot install the SIGSYS handler: {0}")]
    Handler(std::io::Error),
}

/// What the filters do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A forbidden call ends the process (the default of the binary).
    On,
    /// No filters.
    Off,
    /// Forbidden calls are allowed and logged by the kernel (audit log,
    /// `dmesg`): for finding what a filter lacks.
    Log,
}

impl Mode {
    /// Parses `on`, `off` or `log`.
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "on" => Some(Mode::On),
            "off" => Some(Mode::Off),
            "log" => Some(Mode::Log),
            _ => None,
        }
    }
}

static MODE: AtomicU8 = AtomicU8::new(MODE_OFF);
const MODE_OFF: u8 = 0;
const MODE_ON: u8 = 1;
const MODE_LOG: u8 = 2;

/// Sets the mode for every filter installed from now on; call it once,
/// before any VMM thread starts.
pub fn set_mode(mode: Mode) {
    let value = match mode {
        Mode::On => MODE_ON,
        Mode::Off => MODE_OFF,
        Mode::Log => MODE_LOG,
    };
    MODE.store(value, Ordering::SeqCst);
}

/// The mode set by [`set_mode`] ([`Mode::Off`] until then).
pub fn mode() -> Mode {
    match MODE.load(Ordering::SeqCst) {
        MODE_ON => Mode::On,
        MODE_LOG => Mode::Log,
        _ => Mode::Off,
    }
}

/// The compiled filter of `kind` in `mode` (On or Log), built once.
fn program(kind: ThreadKind, mode: Mode) -> Result<&'static BpfProgram, Error> {
    type Programs = BTreeMap<(ThreadKind, bool), Result<BpfProgram, String>>;
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    let programs = PROGRAMS.get_or_init(|| {
        let mut programs = BTreeMap::new();
        for kind in ThreadKind::ALL {
            for log in [false, true] {
                programs.insert((kind, log), compile(kind, log));
            }
        }
        programs
    });
    match programs.get(&(kind, mode == Mode::Log)) {
        Some(Ok(program)) => Ok(program),
        Some(Err(message)) => Err(Error::Build {
            kind: kind.name(),
            message: message.clone(),
        }),
        None => Err(Error::Build {
            kind: kind.name(),
            message: "no such filter".to_owned(),
        }),
    }
}

/// The filter stacked under each thread's own, which fails calls with
/// ENOSYS instead of ending the process: `clone3` everywhere (so that glibc
/// falls back to `clone`, whose flags a filter can check), and `openat`
/// everywhere but in the main thread (glibc's malloc opens
/// /proc/sys/vm/overcommit_memory from whichever thread first shrinks a
/// heap, and copes with the open failing). A thread's own filter passes
/// these calls: the kernel then takes the stricter answer, this one.
fn refusals(kind: ThreadKind) -> Result<&'static BpfProgram, Error> {
    static MAIN: OnceLock<Result<BpfProgram, String>> = OnceLock::new();
    static OTHERS: OnceLock<Result<BpfProgram, String>> = OnceLock::new();
    let compile = |refuse_open: bool| {
        let mut rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
        if refuse_open {
            rules.insert(libc::SYS_openat, Vec::new());
            rules.insert(libc::SYS_open, Vec::new());
        }
        let errno = u32::try_from(libc::ENOSYS).map_err(|e| e.to_string())?;
        let filter = SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno),
            TargetArch::x86_64,
        )
        .map_err(|e| e.to_string())?;
        BpfProgram::try_from(filter).map_err(|e| e.to_string())
    };
    let compiled = match kind {
        ThreadKind::Main => MAIN.get_or_init(|| compile(false)),
        _ => OTHERS.get_or_init(|| compile(true)),
    };
    compiled.as_ref().map_err(|message| Error::Build {
        kind: kind.name(),
        message: message.clone(),
    })
}

fn compile(kind: ThreadKind, log: bool) -> Result<BpfProgram, String> {
    let rules = kind.allowed().into_rules().map_err(|e| e.to_string())?;
    let mismatch = if log {
        SeccompAction::Log
    } else {
        SeccompAction::Trap
    };
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, TargetArch::x86_64)
        .map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter).map_err(|e| e.to_string())
}

/// Puts the filter of `kind` on the calling thread, under the mode set
/// by [`set_mode`] (nothing under [`Mode::Off`]).
pub fn install(kind: ThreadKind) -> Result<(), Error> {
    let mode = mode();
    if mode == Mode::Off {
        return Ok(());
    }
    let program = program(kind, mode)?;
    let thread = std::thread::current();
    sigsys::set_thread_name(thread.name().unwrap_or(kind.name()));
    sigsys::install_handler()?;
    let apply = |program: &BpfProgram| {
        seccompiler::apply_filter(program).map_err(|e| Error::Install {
            kind: kind.name(),
            message: e.to_string(),
        })
    };
    // First: a worker's or the API's own filter forbids seccomp() itself.
    apply(refusals(kind)?)?;
    apply(program)?;
    test_hook::forbidden_call_if_asked(kind);
    Ok(())
}

/// [`install`] for a thread that has no one to return an error to: a
/// thread that cannot be filtered must not run, so the process ends with
/// the reason on stderr and [`FORBIDDEN_CALL_STATUS`].
pub fn install_in_thread(kind: ThreadKind) {
    if let Err(e) = install(kind) {
        eprintln!("pointsman: seccomp: {e}");
        std::process::exit(FORBIDDEN_CALL_STATUS);
    }
}

/// Only in debug builds (what `cargo test` builds the binary as): a
/// release binary ignores the variable. A cargo feature would be the other
/// way, but one enabled for the integration tests alone would need a second
/// build of the binary.
mod test_hook {
    use super::*;

    #[cfg(debug_assertions)]
    pub(super) fn forbidden_call_if_asked(kind: ThreadKind) {
        if std::env::var(TEST_FORBIDDEN_CALL_ENV).is_ok_and(|asked| asked == kind.name()) {
            // SAFETY: ptrace with an invalid request touches no memory;
            // no filter allows it, so it never runs.
            unsafe { libc::syscall(libc::SYS_ptrace, -1, 0, 0, 0) };
        }
    }

    #[cfg(not(debug_assertions))]
    pub(super) fn forbidden_call_if_asked(_: ThreadKind) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_compiles_in_both_modes() {
        for kind in ThreadKind::ALL {
            for mode in [Mode::On, Mode::Log] {
                let program = program(kind, mode).unwrap();
                assert!(program.len() > 10, "{kind:?}");
            }
        }
    }

    #[test]
    fn the_refusing_filters_compile() {
        for kind in ThreadKind::ALL {
            assert!(!refusals(kind).unwrap().is_empty());
        }
    }

    /// A real filter on a thread of this test: the calls the refusing
    /// filter answers fail with ENOSYS instead of ending the process.
    #[test]
    fn a_filtered_vcpu_thread_is_refused_open_and_clone3() {
        set_mode(Mode::On);
        let outcome = std::thread::spawn(|| {
            install(ThreadKind::Vcpu).unwrap();
            let open = std::fs::File::open("/proc/self/status").map_err(|e| e.raw_os_error());
            // SAFETY: clone3 with no arguments creates nothing; without
            // the filter the kernel answers EINVAL.
            let clone3 = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) };
            let clone3_errno = std::io::Error::last_os_error().raw_os_error();
            (open.err(), clone3, clone3_errno)
        })
        .join()
        .unwrap();
        set_mode(Mode::Off);
        assert_eq!(outcome, (Some(Some(libc::ENOSYS)), -1, Some(libc::ENOSYS)));
    }

    /// A sleep or timed wait that a stop and continue (SIGSTOP/SIGCONT, a
    /// debugger, a cgroup freezer) interrupts goes on through
    /// restart_syscall: a filtered thread may make it (with nothing to
    /// restart the kernel answers EINTR; were it forbidden, the SIGSYS
    /// report would end this test's process).
    #[test]
    fn a_filtered_worker_may_restart_an_interrupted_sleep() {
        set_mode(Mode::On);
        let errno = std::thread::spawn(|| {
            install(ThreadKind::DeviceWorker).unwrap();
            // SAFETY: restart_syscall takes no arguments and, with no
            // interrupted call to go on with, only returns EINTR.
            let ret = unsafe { libc::syscall(libc::SYS_restart_syscall) };
            (ret, std::io::Error::last_os_error().raw_os_error())
        })
        .join()
        .unwrap();
        set_mode(Mode::Off);
        assert_eq!(errno, (-1, Some(libc::EINTR)));
    }

    #[test]
    fn modes_parse() {
        assert_eq!(Mode::parse("on"), Some(Mode::On));
        assert_eq!(Mode::parse("log"), Some(Mode::Log));
        assert_eq!(Mode::parse("off"), Some(Mode::Off));
        assert_eq!(Mode::parse("yes"), None);
    }

    #[test]
    fn calls_are_named() {
        assert_eq!(syscall_name(0), Some("read"));
        assert_eq!(syscall_name(libc::SYS_ptrace), Some("ptrace"));
        assert_eq!(syscall_name(-1), None);
        assert_eq!(syscall_name(100_000), None);
    }
}
