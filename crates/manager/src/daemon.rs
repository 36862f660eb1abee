//! The daemon's guests: admitting, starting, adopting, controlling and
//! removing them. Everything here runs on the daemon's one thread; the
//! truth is on disk (the state directory) and in /proc, so a restarted
//! daemon rebuilds this view from them.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::capacity::{self, Capacity, Overcommit, Usage};
use crate::cgroup::CgroupLayout;
use crate::guest::GuestConfig;
use crate::guest_record::{exit_reason, Guest, Phase, Request};
use crate::http_client;
use crate::name::check_name;
use crate::proc_stat;
use crate::restart::{RestartRecord, RestartState, RESTART_FILE};
use crate::size::mib;
use crate::spawn::JailPlan;
use crate::state_dir::{
    ExitRecord, ProcessRecord, StateDir, API_SOCK_IN_JAIL, CONFIG_FILE, EXIT_FILE, PROCESS_FILE,
};
use crate::ManagerError;

mod limits;
mod restarts;

use limits::HostLimits;
use restarts::after_end;
mod observe;

/// How long a new guest's VMM has to open its API socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a request to a VMM's API may take.
const VMM_TIMEOUT: Duration = Duration::from_secs(3);
/// How many console lines `show` gives.
const CONSOLE_TAIL_LINES: usize = 10;
/// Most console bytes `logs` returns (its end).
const MAX_LOG_BYTES: u64 = 1 << 20;

/// How the daemon is set up.
#[derive(Clone, Debug)]
pub struct Settings {
    pub capacity: Capacity,
    pub overcommit: Overcommit,
    /// Guests' uids (and gids) are taken from here, one each.
    pub uid_range: (u32, u32),
    /// The cgroup under which each guest's is made.
    pub parent_cgroup: String,
    /// The pointsman binary that `jail` is run from.
    pub exe: PathBuf,
    pub cgroups: CgroupLayout,
    /// A guest's console log is rotated past this many bytes.
    pub console_log_max: u64,
}

pub struct Daemon {
    pub(crate) settings: Settings,
    pub(crate) state: StateDir,
    pub(crate) guests: BTreeMap<String, Guest>,
    /// What this host's cgroups offer beyond cpu and memory.
    host: HostLimits,
    /// Each guest's last sample, for `GET /stats`' rates.
    history: crate::rates::History,
}

impl Daemon {
    /// Takes over `state` and adopts the guests it records.
    pub fn new(settings: Settings, state: StateDir) -> Result<Daemon, ManagerError> {
        let mut daemon = Daemon {
            host: HostLimits::of(&settings),
            settings,
            state,
            guests: BTreeMap::new(),
            history: Default::default(),
        };
        for name in daemon.state.guest_names()? {
            match daemon.adopt(&name) {
                Ok(Some(guest)) => {
                    tracing::info!(
                        "guest {name}: {} (pid {})",
                        guest.phase.name(),
                        guest.process.pid
                    );
                    daemon.guests.insert(name, guest);
                }
                Ok(None) => {
                    // A create the daemon died in before its VMM started.
                    tracing::warn!("guest {name}: half made (no process record), removed");
                    daemon.clean_up(&name);
                }
                Err(e) => tracing::warn!("guest {name}: cannot adopt it: {e}"),
            }
        }
        daemon.rebalance_cpusets();
        Ok(daemon)
    }

    /// The guest the state directory records as `name`: running if its
    /// pid is still the process that started then, ended otherwise.
    fn adopt(&self, name: &str) -> Result<Option<Guest>, ManagerError> {
        let config: Option<GuestConfig> = self.state.read_json(name, CONFIG_FILE)?;
        let process: Option<ProcessRecord> = self.state.read_json(name, PROCESS_FILE)?;
        let (Some(config), Some(process)) = (config, process) else {
            return Ok(None);
        };
        let demands = config.demands()?;
        let mut exit: Option<ExitRecord> = self.state.read_json(name, EXIT_FILE)?;
        let alive = exit.is_none() && proc_stat::is_same_process(process.pid, process.start_time);
        let found_dead = !alive && exit.is_none();
        let phase = if alive {
            self.vmm_phase(name)
        } else {
            if exit.is_none() {
                let record = ExitRecord {
                    status: None,
                    reason: exit_reason(None, Request::None),
                };
                self.state.write_json(name, EXIT_FILE, &record)?;
                exit = Some(record);
            }
            Phase::Ended
        };
        let restart: RestartRecord = self
            .state
            .read_json(name, RESTART_FILE)?
            .unwrap_or_default();
        let waiting = restart.waiting;
        let mut guest = Guest {
            config,
            demands,
            process,
            child: None,
            phase,
            exit,
            asked: Request::None,
            restart: RestartState::new(restart, Instant::now()),
        };
        if found_dead {
            after_end(&self.state, name, &mut guest);
        } else if waiting && phase == Phase::Ended {
            guest.phase = Phase::Restarting { at: Instant::now() };
        }
        Ok(Some(guest))
    }

    /// Running or paused, as the VMM's `GET /` says.
    fn vmm_phase(&self, name: &str) -> Phase {
        let socket = self.state.api_socket(name);
        let answer = http_client::request(&socket, "GET", "/", None, VMM_TIMEOUT);
        let paused = answer.ok().is_some_and(|r| r.body.contains("\"Paused\""));
        if paused {
            Phase::Paused
        } else {
            Phase::Running
        }
    }

    pub(crate) fn guest(&self, name: &str) -> Result<&Guest, ManagerError> {
        check_name(name)?;
        self.guests
            .get(name)
            .ok_or_else(|| ManagerError::UnknownGuest(name.to_owned()))
    }

    pub(crate) fn guest_mut(&mut self, name: &str) -> Result<&mut Guest, ManagerError> {
        check_name(name)?;
        self.guests
            .get_mut(name)
            .ok_or_else(|| ManagerError::UnknownGuest(name.to_owned()))
    }

    /// What running guests hold.
    fn used(&self) -> Usage {
        let mut used = Usage::default();
        for guest in self.guests.values().filter(|g| g.is_live()) {
            used += guest.demands.usage;
        }
        used
    }

    /// The lowest uid of the range no guest has, as its uid or as its
    /// group (clones share their snapshot's).
    fn free_uid(&self) -> Result<u32, ManagerError> {
        let (first, last) = self.settings.uid_range;
        let taken = |g: &Guest, id: u32| {
            g.process.uid == id || g.config.clone_of.as_ref().is_some_and(|o| o.gid == id)
        };
        (first..=last)
            .find(|uid| self.guests.values().all(|g| !taken(g, *uid)))
            .ok_or(ManagerError::NoFreeUid { first, last })
    }

    /// Admits and starts guest `name`. Whatever fails leaves nothing:
    /// no process, no cgroup, no files.
    pub fn create(&mut self, name: &str, config: GuestConfig) -> Result<Value, ManagerError> {
        let uid = self.admit(name, &config)?;
        self.state.create_guest_dir(name)?;
        self.launch(name, config, uid)
    }

    /// Whether guest `name` may be made with `config` and fits on the
    /// host; the uid it is given.
    pub(crate) fn admit(&self, name: &str, config: &GuestConfig) -> Result<u32, ManagerError> {
        check_name(name)?;
        if self.guests.contains_key(name) || self.state.guest_dir(name).exists() {
            return Err(ManagerError::Duplicate(name.to_owned()));
        }
        let demands = config.demands()?;
        self.check_placement(name, config)?;
        let limits = capacity::limits(self.settings.capacity, self.settings.overcommit);
        capacity::admit(limits, self.used(), demands.usage)?;
        self.free_uid()
    }

    /// Starts admitted guest `name`, whose directory exists, as `uid`.
    /// A failure leaves nothing of it.
    pub(crate) fn launch(
        &mut self,
        name: &str,
        config: GuestConfig,
        uid: u32,
    ) -> Result<Value, ManagerError> {
        let started = self
            .jail_plan(name, &config, uid)
            .and_then(|plan| self.start(name, &config, &plan));
        match started {
            Ok(guest) => {
                tracing::info!("guest {name}: started, pid {}", guest.process.pid);
                self.guests.insert(name.to_owned(), guest);
                self.after_start(name);
                self.show(name)
            }
            Err(e) => {
                self.clean_up(name);
                Err(e)
            }
        }
    }

    /// How the jail starts guest `name` as `uid`: its cgroup settings
    /// (cpu, memory, and its CPUs and I/O weight) and `run`'s arguments.
    fn jail_plan(
        &self,
        name: &str,
        config: &GuestConfig,
        uid: u32,
    ) -> Result<JailPlan, ManagerError> {
        let demands = config.demands()?;
        let mut cgroups = self.settings.cgroups.settings(&demands.limits);
        cgroups.extend(self.more_settings(name, config)?);
        // A clone runs with its snapshot's group, which may read the
        // snapshot's files, and is given them in its jail.
        let origin = config.clone_of.as_ref();
        Ok(JailPlan {
            exe: self.settings.exe.clone(),
            name: name.to_owned(),
            uid,
            gid: origin.map_or(uid, |o| o.gid),
            files: origin.map(|o| o.files.clone()).unwrap_or_default(),
            chroot_base: self.state.jails_dir(),
            parent_cgroup: self.settings.parent_cgroup.clone(),
            cgroup_version: self.settings.cgroups.version(),
            cgroups,
            run_args: config.run_args(API_SOCK_IN_JAIL),
        })
    }

    fn start(
        &self,
        name: &str,
        config: &GuestConfig,
        plan: &JailPlan,
    ) -> Result<Guest, ManagerError> {
        self.state.write_json(name, CONFIG_FILE, config)?;
        let console = self.state.open_console(name)?;
        let input = self.state.console_input(name);
        crate::console::make_input_fifo(&input)?;
        let mut child = plan.spawn(console, crate::console::open_input_for_vmm(&input)?)?;
        let pid = child.id();
        let process = ProcessRecord {
            pid,
            // Gone already: the wait below reports how it ended.
            start_time: proc_stat::start_time(pid).unwrap_or(0),
            uid: plan.uid,
        };
        // Recorded before the wait: a daemon that dies now still finds it.
        self.state.write_json(name, PROCESS_FILE, &process)?;
        if let Err(e) = self.wait_ready(name, &mut child) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        Ok(Guest {
            config: config.clone(),
            demands: config.demands()?,
            process,
            child: Some(child),
            phase: Phase::Running,
            exit: None,
            asked: Request::None,
            restart: RestartState::new(RestartRecord::default(), Instant::now()),
        })
    }

    /// Waits until the VMM answers on its API socket; a VMM that ends
    /// first is reported with its console's last line, unless it ended
    /// with status 0: its guest ran and powered off (as the demo guest
    /// does at once), which is a start, and an end that [`Self::poll`]
    /// reports.
    fn wait_ready(&self, name: &str, child: &mut std::process::Child) -> Result<(), ManagerError> {
        let socket = self.state.api_socket(name);
        let failed = |reason: String| ManagerError::StartFailed {
            name: name.to_owned(),
            reason,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(ManagerError::io("wait for", "the VMM"))?
            {
                if status.success() {
                    return Ok(());
                }
                let last = self.console_tail(name, 3).join(" / ");
                return Err(failed(format!(
                    "its VMM exited at once with status {}: {last}",
                    status_code(status)
                )));
            }
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                return Err(failed(format!(
                    "its VMM opened no API socket in {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Takes away everything a guest that is not running had.
    pub(crate) fn clean_up(&self, name: &str) {
        if let Err(e) = self
            .settings
            .cgroups
            .remove(&self.settings.parent_cgroup, name)
        {
            tracing::warn!("guest {name}: cannot remove its cgroup: {e}");
        }
        if let Err(e) = self.state.remove_guest(name) {
            tracing::warn!("guest {name}: {e}");
        }
    }

    pub fn list(&self) -> Value {
        Value::Array(
            self.guests
                .iter()
                .map(|(name, g)| g.summary(name))
                .collect(),
        )
    }

    pub fn show(&self, name: &str) -> Result<Value, ManagerError> {
        let guest = self.guest(name)?;
        let mut value = guest.summary(name);
        let limits = guest.demands.limits;
        value["uid"] = json!(guest.process.uid);
        value["cpu_weight"] = json!(limits.cpu_weight);
        value["cpu_max"] = json!(limits.cpu_max_percent);
        value["memory_max_mib"] = json!(mib(limits.memory_max));
        value["cgroup"] = json!(self.settings.cgroups.settings(&limits));
        value["api_socket"] = json!(self.state.api_socket(name));
        value["console_log"] = json!(self.state.console(name));
        value["exit"] = json!(guest.exit);
        value["console_tail"] = json!(self.console_tail(name, CONSOLE_TAIL_LINES));
        value["config"] = json!(guest.config);
        value["cloned_from"] = json!(guest.config.clone_of.as_ref().map(|o| &o.snapshot_dir));
        self.show_limits(name, guest, &mut value);
        Ok(value)
    }

    /// The end of the guest's console log.
    pub fn logs(&self, name: &str) -> Result<Value, ManagerError> {
        self.guest(name)?;
        let path = self.state.console(name);
        let text = crate::console_log::read_end(&path, MAX_LOG_BYTES)
            .map_err(ManagerError::io("read", &path))?;
        Ok(json!({ "log": text }))
    }

    /// Guest `name`'s console files, and whether its VMM runs, checked
    /// now: a log read after a `false` here is whole.
    pub fn console_files(
        &mut self,
        name: &str,
    ) -> Result<crate::console::ConsoleFiles, ManagerError> {
        self.poll(name);
        let live = self.guest(name)?.is_live();
        Ok(crate::console::ConsoleFiles {
            log: self.state.console(name),
            input: self.state.console_input(name),
            live,
        })
    }

    fn console_tail(&self, name: &str, lines: usize) -> Vec<String> {
        let text =
            crate::console_log::read_end(&self.state.console(name), 64 * 1024).unwrap_or_default();
        let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| l.trim_end_matches('\r').to_owned())
            .collect()
    }

    /// Pauses or resumes the guest through its VMM's API.
    pub fn set_paused(&mut self, name: &str, paused: bool) -> Result<(), ManagerError> {
        self.poll(name);
        let guest = self.guest(name)?;
        if !matches!(guest.phase, Phase::Running | Phase::Paused) {
            return Err(ManagerError::NotRunning(name.to_owned()));
        }
        let body = if paused {
            r#"{"state": "Paused"}"#
        } else {
            r#"{"state": "Resumed"}"#
        };
        self.vmm_request(
            name,
            "PATCH",
            "/vm",
            body,
            if paused { "pause" } else { "resume" },
        )?;
        self.guest_mut(name)?.phase = if paused {
            Phase::Paused
        } else {
            Phase::Running
        };
        Ok(())
    }

    pub(crate) fn vmm_request(
        &self,
        name: &str,
        method: &str,
        path: &str,
        body: &str,
        what: &'static str,
    ) -> Result<(), ManagerError> {
        let socket = self.state.api_socket(name);
        let refused = |message: String| ManagerError::Vmm {
            name: name.to_owned(),
            what,
            message,
        };
        let answer = http_client::request(&socket, method, path, Some(body), VMM_TIMEOUT)
            .map_err(|e| refused(e.to_string()))?;
        if answer.is_success() {
            Ok(())
        } else {
            Err(refused(answer.fault_message()))
        }
    }

    /// Presses Ctrl-Alt-Del (the VMM runs with `--no-reboot`, so a guest
    /// that resets on it ends) and kills the VMM after `grace` if it has
    /// not. Returns at once: [`Daemon::tick`] does the rest.
    pub fn stop(&mut self, name: &str, grace: Duration) -> Result<(), ManagerError> {
        self.poll(name);
        if self.cancel_restart(name, Request::Stop)? {
            return Ok(());
        }
        let phase = self.guest(name)?.phase;
        if phase == Phase::Ended {
            return Err(ManagerError::NotRunning(name.to_owned()));
        }
        if phase == Phase::Paused {
            // A paused guest cannot see the key press.
            let _ = self.vmm_request(name, "PATCH", "/vm", r#"{"state": "Resumed"}"#, "resume");
        }
        let action = r#"{"action_type": "SendCtrlAltDel"}"#;
        if let Err(e) = self.vmm_request(name, "PUT", "/actions", action, "Ctrl-Alt-Del") {
            tracing::info!("{e}: it is killed after the grace period");
        }
        let guest = self.guest_mut(name)?;
        guest.asked = Request::Stop;
        guest.phase = Phase::Stopping {
            deadline: Instant::now() + grace,
        };
        Ok(())
    }

    /// Kills the VMM at once (if it is still the process that was started).
    pub fn kill(&mut self, name: &str) -> Result<(), ManagerError> {
        self.poll(name);
        if self.cancel_restart(name, Request::Kill)? {
            return Ok(());
        }
        let guest = self.guest_mut(name)?;
        if guest.phase == Phase::Ended {
            return Err(ManagerError::NotRunning(name.to_owned()));
        }
        guest.asked = Request::Kill;
        sigkill(&guest.process);
        // SIGKILL takes effect at once; give it a moment so that the
        // answer already shows the guest stopped.
        let until = Instant::now() + Duration::from_secs(2);
        while self.guest(name)?.is_live() && Instant::now() < until {
            self.poll(name);
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Removes a guest that is not running: its state, jail and cgroup.
    pub fn remove(&mut self, name: &str) -> Result<(), ManagerError> {
        self.poll(name);
        if self.guest(name)?.is_live() {
            return Err(ManagerError::StillRunning(name.to_owned()));
        }
        self.settings
            .cgroups
            .remove(&self.settings.parent_cgroup, name)
            .map_err(ManagerError::io("remove the cgroup of", name))?;
        self.state.remove_guest(name)?;
        self.guests.remove(name);
        tracing::info!("guest {name}: removed");
        Ok(())
    }

    /// What the daemon offers and what is taken.
    pub fn info(&self) -> Value {
        let limits = capacity::limits(self.settings.capacity, self.settings.overcommit);
        let used = self.used();
        json!({
            "capacity": {"cpus": self.settings.capacity.cpus, "memory_mib": mib(self.settings.capacity.memory)},
            "overcommit": {"cpu": self.settings.overcommit.cpu, "memory": self.settings.overcommit.memory},
            "limits": {"cpus": limits.cpus, "memory_mib": mib(limits.memory)},
            "used": {"cpus": used.cpus, "memory_mib": mib(used.memory)},
            "guests": self.guests.len(),
            "state_dir": self.state.root(),
        })
    }

    /// Notices guests that ended and kills those past their stop's grace.
    pub fn tick(&mut self) {
        let names: Vec<String> = self.guests.keys().cloned().collect();
        for name in names {
            self.poll(&name);
            if let Some(guest) = self.guests.get_mut(&name) {
                if let Phase::Stopping { deadline } = guest.phase {
                    if Instant::now() >= deadline && guest.asked == Request::Stop {
                        tracing::info!(
                            "guest {name}: still running after its grace period, killed"
                        );
                        guest.asked = Request::StopTimedOut;
                        sigkill(&guest.process);
                    }
                }
            }
        }
        self.restart_due();
        self.rotate_console_logs();
    }

    /// Keeps each live guest's console log under its limit (see
    /// [`crate::console_log`]).
    fn rotate_console_logs(&self) {
        for (name, guest) in &self.guests {
            if !guest.has_process() {
                continue;
            }
            let log = self.state.console(name);
            match crate::console_log::rotate_if_over(&log, self.settings.console_log_max) {
                Ok(true) => tracing::info!(
                    "guest {name}: console log past {} MiB, kept as {}",
                    mib(self.settings.console_log_max),
                    crate::console_log::previous(&log).display()
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!("guest {name}: cannot rotate {}: {e}", log.display()),
            }
        }
    }

    /// Marks guest `name` ended if its VMM has: reaped if it is the
    /// daemon's child, else seen gone (or its pid reused) in /proc.
    pub(crate) fn poll(&mut self, name: &str) {
        let Some(guest) = self.guests.get_mut(name) else {
            return;
        };
        if !guest.has_process() {
            return;
        }
        let status = match guest.child.as_mut() {
            Some(child) => match child.try_wait() {
                Ok(Some(status)) => Some(Some(status_code(status))),
                Ok(None) => None,
                Err(_) => Some(None),
            },
            None => (!proc_stat::is_same_process(guest.process.pid, guest.process.start_time))
                .then_some(None),
        };
        let Some(status) = status else {
            return;
        };
        let record = ExitRecord {
            status,
            reason: exit_reason(status, guest.asked),
        };
        tracing::info!("guest {name}: {}", record.reason);
        guest.phase = Phase::Ended;
        guest.child = None;
        guest.exit = Some(record.clone());
        if let Err(e) = self.state.write_json(name, EXIT_FILE, &record) {
            tracing::warn!("guest {name}: {e}");
        }
        if !after_end(&self.state, name, guest) {
            // Its dedicated CPUs go back to the shared guests.
            self.rebalance_cpusets();
        }
    }
}

/// SIGKILL to `process`, unless its pid now belongs to another process.
fn sigkill(process: &ProcessRecord) {
    if !proc_stat::is_same_process(process.pid, process.start_time) {
        return;
    }
    let Ok(pid) = libc::pid_t::try_from(process.pid) else {
        return;
    };
    // SAFETY: kill with a pid just checked to be the guest's VMM.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// An exit status as a shell shows it: the code, or 128 + the signal.
fn status_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
