//! The daemon's side of `--cpuset`, `--io-weight` and `vm set`: which
//! CPUs each guest gets, the cgroup settings beyond cpu and memory, and
//! new limits written to a running guest's cgroup.

use serde_json::{json, Value};

use super::{Daemon, Settings};
use crate::cgroup::CgroupLayout;
use crate::cpuset::{self, CpuList, Placement};
use crate::guest::GuestConfig;
use crate::guest_record::Guest;
use crate::io_weight::{host_schedulers, IoWeightFile};
use crate::limits_update::LimitsChange;
use crate::state_dir::CONFIG_FILE;
use crate::ManagerError;

/// What the host's cgroups offer beyond cpu and memory.
#[derive(Debug)]
pub(super) struct HostLimits {
    /// The CPUs guests may run on; `None` without a cpuset controller.
    usable_cpus: Option<CpuList>,
    io: IoWeightFile,
}

impl HostLimits {
    pub(super) fn of(settings: &Settings) -> HostLimits {
        let layout = &settings.cgroups;
        let usable_cpus = layout
            .mount_of("cpuset")
            .and_then(|mount| cpuset::usable_cpus(&mount, &settings.parent_cgroup));
        let io = match layout {
            CgroupLayout::V1 { .. } => {
                IoWeightFile::of_v1(layout.mount_of("blkio").as_deref(), &host_schedulers())
            }
            CgroupLayout::V2 { mount } => IoWeightFile::of_v2(
                &std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default(),
            ),
        };
        tracing::info!(
            "CPUs for guests: {}; I/O weight: {}",
            usable_cpus
                .as_ref()
                .map_or("any (no cpuset controller)".to_owned(), |c| c.to_string()),
            io.describe()
        );
        HostLimits { usable_cpus, io }
    }
}

/// Threads a VMM may have beyond its vCPUs: its main thread, the API
/// server's, one worker per virtio device (17 at most) and room to spare.
/// A VMM taken over by its guest, creating threads without end (seccomp
/// lets it make threads), is stopped there instead of taking the host's
/// pids.
const VMM_THREADS_BEYOND_VCPUS: u32 = 64;

/// `pids.max` for a guest with `vcpus`.
pub(super) fn tasks_max(vcpus: u32) -> u32 {
    vcpus.saturating_add(VMM_THREADS_BEYOND_VCPUS)
}

impl Daemon {
    /// The dedicated CPUs of the live guests other than `except`, and
    /// how many others share the rest.
    fn placement<'a>(&'a self, usable: &'a CpuList, except: &str) -> Placement<'a> {
        let mut placement = Placement {
            usable,
            dedicated: Vec::new(),
            shared_guests: 0,
        };
        let others = self
            .guests
            .iter()
            .filter(|(name, guest)| name.as_str() != except && guest.is_live());
        for (name, guest) in others {
            match guest.config.cpuset.as_deref().map(CpuList::parse) {
                Some(Ok(cpus)) => placement.dedicated.push((name.as_str(), cpus)),
                Some(Err(_)) => {}
                None => placement.shared_guests += 1,
            }
        }
        placement
    }

    /// Refuses a cpuset this host cannot give and an I/O weight it has
    /// no file for.
    pub(super) fn check_placement(
        &self,
        name: &str,
        config: &GuestConfig,
    ) -> Result<(), ManagerError> {
        let wanted = config.cpuset.as_deref().map(CpuList::parse).transpose()?;
        match &self.host.usable_cpus {
            Some(usable) => self.placement(usable, name).check(wanted.as_ref())?,
            None if wanted.is_some() => {
                return Err(ManagerError::BadGuest(
                    "cpuset: this host has no cpuset cgroup controller".to_owned(),
                ))
            }
            None => {}
        }
        if let Some(weight) = config.io_weight {
            self.host.io.setting(weight)?;
        }
        Ok(())
    }

    /// The CPUs guest `name` runs on: its own, or those no live guest
    /// has for its own.
    fn cpus_of(&self, name: &str, config: &GuestConfig) -> Option<CpuList> {
        let usable = self.host.usable_cpus.as_ref()?;
        match &config.cpuset {
            Some(text) => CpuList::parse(text).ok(),
            None => Some(self.placement(usable, name).shared()),
        }
    }

    /// The settings beyond cpu and memory: `cpuset.cpus` (every guest,
    /// where the host has the controller), the I/O weight (only if asked
    /// for) and `pids.max` (where the host has the controller).
    pub(super) fn more_settings(
        &self,
        name: &str,
        config: &GuestConfig,
    ) -> Result<Vec<String>, ManagerError> {
        let mut settings = Vec::new();
        if let Some(cpus) = self.cpus_of(name, config) {
            settings.push(format!("cpuset.cpus={cpus}"));
        }
        if let Some(weight) = config.io_weight {
            settings.push(self.host.io.setting(weight)?);
        }
        if self.settings.cgroups.mount_of("pids").is_some() {
            settings.push(format!("pids.max={}", tasks_max(config.cpus)));
        }
        Ok(settings)
    }

    /// Gives every live guest without a cpuset the CPUs no live guest
    /// has for its own: after a dedicated guest is made or ends.
    pub(super) fn rebalance_cpusets(&self) {
        let Some(usable) = &self.host.usable_cpus else {
            return;
        };
        let shared = self.placement(usable, "").shared();
        if shared.is_empty() {
            return;
        }
        let layout = &self.settings.cgroups;
        let parent = &self.settings.parent_cgroup;
        for (name, guest) in &self.guests {
            if !guest.is_live() || guest.config.cpuset.is_some() {
                continue;
            }
            let Some(file) = layout.file_of(parent, name, "cpuset.cpus") else {
                continue;
            };
            let current = std::fs::read_to_string(&file).unwrap_or_default();
            if current.trim() == shared.to_string() || !file.exists() {
                continue;
            }
            match std::fs::write(&file, shared.to_string()) {
                Ok(()) => tracing::info!("guest {name}: now on CPUs {shared}"),
                Err(e) => tracing::warn!("guest {name}: cannot move it to CPUs {shared}: {e}"),
            }
        }
    }

    /// What `show` gives beyond cpu and memory.
    pub(super) fn show_limits(&self, name: &str, guest: &Guest, value: &mut Value) {
        value["cpuset"] = json!(guest.config.cpuset);
        value["io_weight"] = json!(guest.config.io_weight);
        value["restart"] = json!(guest.config.restart.unwrap_or_default().name());
        value["restarts"] = json!(guest.restart.record.count);
        value["last_exit"] = json!(guest.restart.record.last_exit);
        if let (Ok(more), Some(cgroup)) = (
            self.more_settings(name, &guest.config),
            value["cgroup"].as_array_mut(),
        ) {
            cgroup.extend(more.into_iter().map(Value::from));
        }
    }

    /// `vm set`: new limits, checked as a create checks them, written to
    /// the guest's cgroup and kept in its config.json (so `show` and a
    /// restarted daemon see them). Refused for a guest that has ended:
    /// nothing would use them. A guest waiting to restart gets them now
    /// (its cgroup is kept) and keeps them.
    pub fn set_limits(&mut self, name: &str, change: LimitsChange) -> Result<Value, ManagerError> {
        self.poll(name);
        let guest = self.guest(name)?;
        if change.is_empty() {
            return Err(ManagerError::BadGuest(
                "nothing to set: give cpu_weight, cpu_max, memory_max or io_weight".to_owned(),
            ));
        }
        if !guest.is_live() {
            return Err(ManagerError::NotRunning(name.to_owned()));
        }
        let config = change.applied_to(&guest.config)?;
        let demands = config.demands()?;
        let layout = &self.settings.cgroups;
        let parent = &self.settings.parent_cgroup;
        for write in change.writes(layout, &demands.limits, &self.host.io)? {
            let (file, value) = write.split_once('=').unwrap_or((&write, ""));
            let path = layout
                .file_of(parent, name, file)
                .filter(|path| path.exists())
                .ok_or_else(|| {
                    ManagerError::BadGuest(format!(
                        "{file}: guest {name:?}'s cgroup has no such file (an I/O weight must be given at create)"
                    ))
                })?;
            std::fs::write(&path, value).map_err(|e| {
                let hint = if file.starts_with("memory.") {
                    " (below what the VMM uses?)"
                } else {
                    ""
                };
                ManagerError::BadGuest(format!("{file}={value}: the kernel refused it{hint}: {e}"))
            })?;
        }
        self.state.write_json(name, CONFIG_FILE, &config)?;
        let guest = self.guest_mut(name)?;
        tracing::info!("guest {name}: limits set: {}", json!(change));
        guest.config = config;
        guest.demands = demands;
        self.show(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capacity::{Capacity, Overcommit};
    use crate::guest_record::{Phase, Request};
    use crate::restart::{RestartRecord, RestartState};
    use crate::size::MIB;
    use crate::state_dir::{ProcessRecord, StateDir};
    use std::path::Path;
    use std::time::Instant;

    /// A daemon over a cgroup v2 hierarchy laid out in `root/cgroup`:
    /// cpuset and io offered, CPUs 0-3.
    fn v2_daemon(root: &Path) -> Daemon {
        let mount = root.join("cgroup");
        std::fs::create_dir_all(&mount).unwrap();
        std::fs::write(mount.join("cgroup.controllers"), "cpuset cpu io memory\n").unwrap();
        std::fs::write(mount.join("cpuset.cpus.effective"), "0-3\n").unwrap();
        let settings = Settings {
            capacity: Capacity {
                cpus: 4,
                memory: 1024 * MIB,
            },
            overcommit: Overcommit::default(),
            uid_range: (40000, 40009),
            parent_cgroup: "p".into(),
            exe: "/bin/false".into(),
            cgroups: CgroupLayout::V2 { mount },
            console_log_max: crate::console_log::DEFAULT_MAX_BYTES,
        };
        Daemon::new(settings, StateDir::open(&root.join("state")).unwrap()).unwrap()
    }

    /// A running guest, as the daemon would hold it, with its cgroup's
    /// cpuset.cpus file.
    fn add_guest(daemon: &mut Daemon, root: &Path, name: &str, cpuset: Option<&str>) {
        let mut config = GuestConfig::from_json(br#"{"kernel": "/k"}"#).unwrap();
        config.cpuset = cpuset.map(str::to_owned);
        let dir = root.join("cgroup/p").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let cpus = daemon.more_settings(name, &config).unwrap();
        let cpus = cpus[0].strip_prefix("cpuset.cpus=").unwrap();
        std::fs::write(dir.join("cpuset.cpus"), cpus).unwrap();
        let guest = Guest {
            demands: config.demands().unwrap(),
            config,
            process: ProcessRecord {
                pid: 1,
                start_time: 0,
                uid: 40000,
            },
            child: None,
            phase: Phase::Running,
            exit: None,
            asked: Request::None,
            restart: RestartState::new(RestartRecord::default(), Instant::now()),
        };
        daemon.guests.insert(name.to_owned(), guest);
    }

    fn cpus(root: &Path, name: &str) -> String {
        std::fs::read_to_string(root.join("cgroup/p").join(name).join("cpuset.cpus")).unwrap()
    }

    #[test]
    fn shared_guests_get_what_no_guest_has_for_its_own() {
        let root = std::env::temp_dir().join(format!("manager-limits-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut d = v2_daemon(&root);
        add_guest(&mut d, &root, "web", None);
        assert_eq!(cpus(&root, "web"), "0-3");
        let io = GuestConfig {
            io_weight: Some(300),
            ..d.guests["web"].config.clone()
        };
        assert_eq!(
            d.more_settings("web", &io).unwrap(),
            ["cpuset.cpus=0-3", "io.weight=default 300"]
        );

        let db = GuestConfig {
            cpuset: Some("2-3".into()),
            ..d.guests["web"].config.clone()
        };
        d.check_placement("db", &db).unwrap();
        add_guest(&mut d, &root, "db", Some("2-3"));
        d.rebalance_cpusets();
        assert_eq!(
            (cpus(&root, "web"), cpus(&root, "db")),
            ("0-1".into(), "2-3".into())
        );
        // A new shared guest starts on the shared CPUs.
        add_guest(&mut d, &root, "api", None);
        assert_eq!(cpus(&root, "api"), "0-1");
        let greedy = GuestConfig {
            cpuset: Some("0-1".into()),
            ..db.clone()
        };
        let refused = d.check_placement("greedy", &greedy).unwrap_err();
        assert!(
            refused.to_string().contains("no CPU for the 2 guest(s)"),
            "{refused}"
        );
        let show = d.show("db").unwrap();
        assert_eq!(show["cpuset"], "2-3");

        // db ends: its CPUs are the shared guests' again.
        if let Some(guest) = d.guests.get_mut("db") {
            guest.phase = Phase::Ended;
        }
        d.rebalance_cpusets();
        assert_eq!(
            (cpus(&root, "web"), cpus(&root, "api")),
            ("0-3".into(), "0-3".into())
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
