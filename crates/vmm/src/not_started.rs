//! Before the guest boots: the VMM serves requests (the API's) until one
//! starts the guest, as `firecracker --api-sock` does.

use std::os::fd::AsRawFd;
use std::path::PathBuf;

use hypervisor::Hypervisor;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};

use crate::config::VmConfig;
use crate::controller::Controller;
use crate::lifecycle::VmState;
use crate::machine::Machine;
use crate::net::Taps;
use crate::request::{ActionError, RequestSource, VmmAction, VmmData};
use crate::request_metrics::RequestCounters;
use crate::resources::SnapshotOverrides;
use crate::snapshot::LoadedSnapshot;
use crate::{signals, Error, Result};

/// A booted (or restored), not yet running guest, and what it needs to
/// restart.
pub(crate) struct Started {
    pub config: VmConfig,
    pub taps: Taps,
    pub machine: Machine,
    /// Restored from a snapshot without `resume_vm`: it starts paused.
    pub paused: bool,
}

/// Where a snapshot to restore is, and whether the guest goes on at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreFrom {
    pub snapshot: PathBuf,
    pub memory: PathBuf,
    pub resume: bool,
    /// New host ends for its NICs and vsock device.
    pub overrides: SnapshotOverrides,
    /// KVM logs the restored guest's writes, for Diff snapshots of it.
    pub track_dirty_pages: bool,
}

/// Checks `config` against this host and builds its first machine.
pub(crate) fn prepare(config: VmConfig, hypervisor: &Hypervisor) -> Result<Started> {
    config.validate(hypervisor)?;
    let taps = Taps::open(&config)?;
    let machine = Machine::build(&config, hypervisor, &taps)?;
    Ok(Started {
        config,
        taps,
        machine,
        paused: false,
    })
}

/// Brings back the guest `from` names, as `controller` would (its
/// options), and makes the snapshot's configuration the controller's.
pub(crate) fn restore(
    from: &RestoreFrom,
    hypervisor: &Hypervisor,
    controller: &mut Controller,
) -> Result<Started> {
    let mut loaded = LoadedSnapshot::open(&from.snapshot, &from.memory)?;
    from.overrides
        .apply(&mut loaded.resources)
        .map_err(|e| Error::SnapshotMismatch(e.to_string()))?;
    let mut config = controller
        .restore_config(&loaded)
        .map_err(|e| Error::SnapshotMismatch(e.0))?;
    // The load's choice, not the saved guest's (as Firecracker does).
    config.track_dirty_pages = from.track_dirty_pages;
    config.validate(hypervisor)?;
    let taps = Taps::open(&config)?;
    let machine = Machine::restore(&loaded, &config, hypervisor, &taps)?;
    controller.adopt_snapshot(&loaded, from.track_dirty_pages);
    Ok(Started {
        config,
        taps,
        machine,
        paused: !from.resume,
    })
}

/// Serves `requests` until one starts the guest (answered once its machine
/// is built: a guest that cannot be built is refused and the wait goes
/// on), or a stop signal comes.
pub(crate) fn wait_for_start(
    requests: &mut dyn RequestSource,
    hypervisor: &Hypervisor,
    controller: &mut Controller,
) -> Result<Started> {
    let host = |what| move |source| Error::Host { what, source };
    let epoll = Epoll::new().map_err(host("create the request loop"))?;
    let mut watched = vec![requests.eventfd().as_raw_fd()];
    watched.extend(signals::wake_fd());
    for fd in &watched {
        epoll
            .ctl(ControlOperation::Add, *fd, EpollEvent::new(EventSet::IN, 0))
            .map_err(host("watch for requests"))?;
    }
    let mut events = [EpollEvent::default(); 2];
    loop {
        if let Some(signal) = signals::received() {
            return Err(Error::Stopped { signal });
        }
        match epoll.wait(-1, &mut events) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(host("wait for requests")(e)),
        }
        signals::clear_wake();
        let _ = requests.eventfd().read();
        while let Some(request) = requests.next_request() {
            let counters = RequestCounters::of(&request.action);
            let answer = match VmState::NotStarted.after(&request.action) {
                Err(refused) => Err(refused),
                Ok(_) => match request.action {
                    VmmAction::Start => {
                        let started = controller.start_config().and_then(|config| {
                            prepare(config, hypervisor).map_err(|e| ActionError::new(e.to_string()))
                        });
                        match started {
                            Ok(started) => {
                                counters.count(&Ok::<(), ()>(()));
                                (request.reply)(Ok(VmmData::Empty));
                                return Ok(started);
                            }
                            Err(e) => Err(e),
                        }
                    }
                    VmmAction::LoadSnapshot(load) => {
                        let restored = load
                            .memory_file()
                            .map_err(|e| ActionError::new(e.to_string()))
                            .and_then(|memory| {
                                let from = RestoreFrom {
                                    snapshot: PathBuf::from(&load.snapshot_path),
                                    memory: PathBuf::from(memory),
                                    resume: load.resume(),
                                    overrides: load.overrides(),
                                    track_dirty_pages: load.track_dirty_pages(),
                                };
                                restore(&from, hypervisor, controller)
                                    .map_err(|e| ActionError::new(e.to_string()))
                            });
                        match restored {
                            Ok(started) => {
                                counters.count(&Ok::<(), ()>(()));
                                (request.reply)(Ok(VmmData::Empty));
                                return Ok(started);
                            }
                            Err(e) => Err(e),
                        }
                    }
                    VmmAction::GetState => Ok(VmmData::State(VmState::NotStarted)),
                    other => controller.serve_config(other),
                },
            };
            counters.count(&answer);
            (request.reply)(answer);
        }
    }
}
