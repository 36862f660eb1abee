//! `--restart`: a guest whose VMM ended unasked waits (backing off) and
//! is started again with its uid, cgroup and configuration; `vm stop` or
//! `vm kill` while it waits ends it for good.

use std::time::Instant;

use super::Daemon;
use crate::guest_record::{Guest, Phase, Request};
use crate::kvm_pit;
use crate::restart::{RestartPolicy, RESTART_FILE};
use crate::state_dir::{ExitRecord, StateDir, EXIT_FILE};
use crate::ManagerError;

/// Decides, once guest `name`'s VMM has ended (its exit record made),
/// whether its policy starts it again; records that. Returns whether it
/// waits for a restart.
pub(super) fn after_end(state: &StateDir, name: &str, guest: &mut Guest) -> bool {
    let policy = guest.config.restart.unwrap_or_default();
    let status = guest.exit.as_ref().and_then(|exit| exit.status);
    let again = guest.asked == Request::None && policy.restarts_after(status);
    guest.restart.record.last_exit = guest.exit.clone();
    guest.restart.record.waiting = again;
    if again {
        let now = Instant::now();
        let delay = guest.restart.next_delay(now);
        guest.phase = Phase::Restarting { at: now + delay };
        tracing::info!(
            "guest {name}: restarted in {} ms (--restart {})",
            delay.as_millis(),
            policy.name()
        );
    }
    if policy != RestartPolicy::No {
        if let Err(e) = state.write_json(name, RESTART_FILE, &guest.restart.record) {
            tracing::warn!("guest {name}: {e}");
        }
    }
    again
}

impl Daemon {
    /// After a start or a restart: KVM's PIT thread into the guest's
    /// cgroup, the shared guests off any CPUs it has for its own, and a
    /// VMM that ended already (a guest that powered off at once) seen.
    pub(super) fn after_start(&mut self, name: &str) {
        if let Some(guest) = self.guests.get(name) {
            let files = self
                .settings
                .cgroups
                .task_files(&self.settings.parent_cgroup, name);
            kvm_pit::move_when_it_appears(name.to_owned(), guest.process.pid, files);
        }
        self.rebalance_cpusets();
        self.poll(name);
    }

    /// Restarts the guests whose wait is over.
    pub(super) fn restart_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .guests
            .iter()
            .filter(|(_, g)| matches!(g.phase, Phase::Restarting { at } if at <= now))
            .map(|(name, _)| name.clone())
            .collect();
        for name in due {
            self.restart(&name);
        }
    }

    fn restart(&mut self, name: &str) {
        let Some(guest) = self.guests.get(name) else {
            return;
        };
        let config = guest.config.clone();
        let uid = guest.process.uid;
        // The jail makes the guest's root afresh, and refuses one that is
        // there: the old one goes (its VMM is gone).
        let jail = self.state.jail_dir(name);
        if let Err(e) = std::fs::remove_dir_all(&jail) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("guest {name}: cannot clear {}: {e}", jail.display());
            }
        }
        let started = self
            .jail_plan(name, &config, uid)
            .and_then(|plan| self.start(name, &config, &plan));
        let Some(guest) = self.guests.get_mut(name) else {
            return;
        };
        guest.restart.record.count = guest.restart.record.count.saturating_add(1);
        let count = guest.restart.record.count;
        match started {
            Ok(new) => {
                // exit.json first: a daemon that dies between the two
                // still sees the running VMM as running.
                let exit = self.state.guest_dir(name).join(EXIT_FILE);
                if let Err(e) = std::fs::remove_file(&exit) {
                    tracing::warn!("guest {name}: cannot remove {}: {e}", exit.display());
                }
                let mut restart = guest.restart.clone();
                restart.record.waiting = false;
                restart.started = Instant::now();
                tracing::info!(
                    "guest {name}: restarted (restart {count}), pid {}",
                    new.process.pid
                );
                *guest = Guest { restart, ..new };
                if let Err(e) = self
                    .state
                    .write_json(name, RESTART_FILE, &guest.restart.record)
                {
                    tracing::warn!("guest {name}: {e}");
                }
                self.after_start(name);
            }
            Err(e) => {
                tracing::warn!("guest {name}: restart {count} failed: {e}");
                guest.phase = Phase::Ended;
                guest.child = None;
                guest.asked = Request::None;
                guest.exit = Some(ExitRecord {
                    status: None,
                    reason: format!("its restart failed: {e}"),
                });
                if let Err(e) = self.state.write_json(name, EXIT_FILE, &guest.exit) {
                    tracing::warn!("guest {name}: {e}");
                }
                // Counted as a quick end: the next wait is longer.
                guest.restart.started = Instant::now();
                if !after_end(&self.state, name, guest) {
                    self.rebalance_cpusets();
                }
            }
        }
    }

    /// `vm stop` or `vm kill` of a guest waiting to restart: it stays
    /// ended. Returns whether the guest was waiting.
    pub(super) fn cancel_restart(
        &mut self,
        name: &str,
        asked: Request,
    ) -> Result<bool, ManagerError> {
        let guest = self.guest_mut(name)?;
        if !matches!(guest.phase, Phase::Restarting { .. }) {
            return Ok(false);
        }
        let how = if asked == Request::Kill {
            "killed by `vm kill`"
        } else {
            "stopped"
        };
        let last = guest.restart.record.last_exit.clone();
        guest.phase = Phase::Ended;
        guest.asked = asked;
        guest.restart.record.waiting = false;
        guest.exit = Some(ExitRecord {
            status: last.as_ref().and_then(|exit| exit.status),
            reason: format!(
                "{how} while waiting to restart; it had ended: {}",
                last.map_or_else(|| "-".to_owned(), |exit| exit.reason)
            ),
        });
        let record = guest.restart.record.clone();
        let exit = guest.exit.clone();
        tracing::info!("guest {name}: {how} while waiting to restart");
        self.state.write_json(name, EXIT_FILE, &exit)?;
        self.state.write_json(name, RESTART_FILE, &record)?;
        self.rebalance_cpusets();
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::GuestConfig;
    use crate::restart::RestartRecord;

    /// A daemon over `root` whose VMMs all exit at once with status 0,
    /// as a guest that powers off at once.
    fn open(root: &std::path::Path) -> Daemon {
        crate::test_daemon::open(root, "/bin/true")
    }

    /// A daemon in a fresh state directory.
    fn daemon(tag: &str) -> (Daemon, std::path::PathBuf) {
        let root = crate::test_daemon::fresh_dir("restarts", tag);
        (open(&root), root)
    }

    fn config(restart: RestartPolicy) -> GuestConfig {
        let mut config = GuestConfig::from_json(br#"{"kernel": "/k"}"#).unwrap();
        config.restart = Some(restart);
        config
    }

    #[test]
    fn a_guest_that_powers_off_before_its_api_answers_was_started() {
        let (mut d, root) = daemon("off");
        let shown = d.create("off", config(RestartPolicy::No)).unwrap();
        assert_eq!(shown["state"], "stopped", "{shown}");
        assert_eq!(shown["exit"]["status"], 0, "{shown}");
        assert_eq!(shown["exit"]["reason"], "the guest powered off or reset");
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn always_waits_to_restart_keeps_its_admission_and_a_stop_ends_it() {
        let (mut d, root) = daemon("always");
        let shown = d.create("up", config(RestartPolicy::Always)).unwrap();
        assert_eq!(shown["state"], "restarting", "{shown}");
        assert_eq!(shown["pid"], serde_json::Value::Null);
        assert_eq!(shown["last_exit"]["status"], 0, "{shown}");
        assert_eq!(d.info()["used"]["memory_mib"], 128);
        let record: RestartRecord = d.state.read_json("up", RESTART_FILE).unwrap().unwrap();
        assert!(record.waiting);
        // Due at once: it is started again (and ends again).
        if let Some(guest) = d.guests.get_mut("up") {
            guest.phase = Phase::Restarting { at: Instant::now() };
        }
        d.restart_due();
        let shown = d.show("up").unwrap();
        assert_eq!(
            (&shown["state"], &shown["restarts"]),
            (&"restarting".into(), &1.into())
        );
        d.stop("up", std::time::Duration::from_secs(1)).unwrap();
        let shown = d.show("up").unwrap();
        assert_eq!(shown["state"], "stopped", "{shown}");
        assert!(shown["exit"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("stopped while waiting to restart"));
        assert_eq!(d.info()["used"]["memory_mib"], 0);
        let record: RestartRecord = d.state.read_json("up", RESTART_FILE).unwrap().unwrap();
        assert_eq!((record.count, record.waiting), (1, false));
        // A new daemon sees it so.
        drop(d);
        let d = open(&root);
        assert_eq!(d.show("up").unwrap()["state"], "stopped");
        std::fs::remove_dir_all(root).unwrap();
    }
}
