//! The VMM thread's answer to every request: the configuration until the
//! guest starts, then what the running machine does on request. The
//! lifecycle table (`lifecycle.rs`) decides first whether a request may
//! come now; this carries it out, all or nothing.

use std::path::PathBuf;

use crate::config::VmConfig;
use crate::device_manager::Devices;
use crate::lifecycle::VmState;
use crate::metrics_sink::MetricsSink;
use crate::request::{ActionError, VmmAction, VmmData};
use crate::resources::{
    BalloonStats, Logger, RateLimiter, ResourceError, TokenBucket, VmResources,
};
use crate::run_control::RunControl;
use crate::serial_output::SerialOutput;
use crate::snapshot::LoadedSnapshot;
use crate::{DriveUpdate, LimiterUpdate, NetUpdate};

/// What the command line adds to a guest configured through the API.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartOptions {
    /// End the run when the guest resets (the `firecracker` name).
    pub no_reboot: bool,
    /// Put the devices on PCI (`--pci`, Firecracker's `--enable-pci`).
    pub pci: bool,
}

/// Changes Pointsman's log as a `PUT /logger` asks, over what it was
/// (as Firecracker does, any number of times before the start); the
/// binary owns the log, so it gives this. An error is the request's
/// `fault_message`, and changed nothing.
pub type LoggerHook = Box<dyn FnMut(&Logger) -> Result<(), String>>;

/// Everything the requests act on besides the machine.
pub struct Controller {
    /// The configuration in Firecracker's form: what `GET /vm/config`
    /// shows, and before the start what the requests build up.
    resources: VmResources,
    options: StartOptions,
    logger: Option<LoggerHook>,
    metrics: MetricsSink,
    /// Where the guest's console goes, as `PUT /serial` set it: kept
    /// here, not in `resources`, since Firecracker's configuration (its
    /// config file, `GET /vm/config`) has no serial section.
    serial: SerialOutput,
}

fn refused(e: ResourceError) -> ActionError {
    ActionError::new(e.to_string())
}

/// Applies `change` to `resources` if the result is a valid whole: all or
/// nothing.
fn checked(
    resources: &mut VmResources,
    change: impl FnOnce(&mut VmResources),
) -> Result<(), ActionError> {
    let mut updated = resources.clone();
    change(&mut updated);
    updated.validate().map_err(refused)?;
    *resources = updated;
    Ok(())
}

/// A PATCH's rate limiter as a change to a device's limits, as in
/// Firecracker: a bucket left out keeps its limit, a bucket with no size
/// or refill time removes it, any other sets it.
fn limiter_update(limiter: Option<&RateLimiter>) -> LimiterUpdate {
    LimiterUpdate {
        bandwidth: limiter
            .and_then(|l| l.bandwidth.as_ref())
            .map(TokenBucket::to_config),
        ops: limiter
            .and_then(|l| l.ops.as_ref())
            .map(TokenBucket::to_config),
    }
}

impl Controller {
    /// A controller showing `resources`, starting guests with `options`.
    pub fn new(resources: VmResources, options: StartOptions, logger: Option<LoggerHook>) -> Self {
        Controller {
            resources,
            options,
            logger,
            metrics: MetricsSink::default(),
            serial: SerialOutput::default(),
        }
    }

    pub(crate) fn metrics(&mut self) -> &mut MetricsSink {
        &mut self.metrics
    }

    /// Writes metrics to `path` from the start (`--metrics-path`, a
    /// config file's `metrics`).
    pub fn open_metrics(&mut self, path: PathBuf) -> Result<(), String> {
        self.metrics.open(path)
    }

    /// The guest the configuration so far describes, checked down to its
    /// files, for a start.
    pub(crate) fn start_config(&self) -> Result<VmConfig, ActionError> {
        let resources = &self.resources;
        resources.check_files().map_err(refused)?;
        let mut config = resources.to_vm_config().map_err(refused)?;
        config.no_reboot = self.options.no_reboot;
        config.pci = self.options.pci;
        config.serial = self.serial.clone();
        Ok(config)
    }

    /// The configuration so far, as `GET /vm/config` shows it.
    pub(crate) fn resources(&self) -> &VmResources {
        &self.resources
    }

    /// The guest a snapshot load brings back, with this VMM's own options
    /// (`--no-reboot`, `PUT /serial`). Refused once a guest was configured
    /// here, as Firecracker refuses it: the snapshot brings its own.
    pub(crate) fn restore_config(&self, loaded: &LoadedSnapshot) -> Result<VmConfig, ActionError> {
        let r = &self.resources;
        let configured = r.boot_source.is_some()
            || r.machine_config.is_some()
            || !r.drives.is_empty()
            || !r.network_interfaces.is_empty()
            || r.vsock.is_some()
            || r.balloon.is_some()
            || r.entropy.is_some();
        if configured {
            return Err(ActionError::new(
                "a snapshot is loaded into a VMM with no guest configured: it brings its own configuration",
            ));
        }
        let mut config = loaded
            .config()
            .map_err(|e| ActionError::new(e.to_string()))?;
        config.no_reboot = self.options.no_reboot;
        config.serial = self.serial.clone();
        Ok(config)
    }

    /// Once the snapshot's guest is restored: its configuration is this
    /// VMM's from now on (`GET /vm/config`), with this VMM's logger and
    /// metrics, and the load's `track_dirty_pages`.
    pub(crate) fn adopt_snapshot(&mut self, loaded: &LoadedSnapshot, track_dirty_pages: bool) {
        let mut resources = loaded.resources.clone();
        if track_dirty_pages || resources.machine_config.is_some() {
            let machine = resources
                .machine_config
                .get_or_insert_with(Default::default);
            machine.track_dirty_pages = track_dirty_pages;
        }
        resources.logger = self.resources.logger.take();
        resources.metrics = self.resources.metrics.take();
        self.resources = resources;
    }

    /// Carries out a request that needs no machine (every request but a
    /// start before the guest runs; reads and metrics after).
    pub(crate) fn serve_config(&mut self, action: VmmAction) -> Result<VmmData, ActionError> {
        let r = &mut self.resources;
        match action {
            VmmAction::GetVmConfig => return Ok(VmmData::VmConfig(Box::new(r.clone()))),
            VmmAction::GetMachineConfig => {
                return Ok(VmmData::MachineConfig(
                    r.machine_config.clone().unwrap_or_default(),
                ))
            }
            VmmAction::GetBalloon => {
                return r
                    .balloon
                    .clone()
                    .map(VmmData::Balloon)
                    .ok_or_else(|| ActionError::new("no balloon device is configured"))
            }
            VmmAction::FlushMetrics => self.metrics.flush().map_err(ActionError::new)?,
            VmmAction::PutBootSource(boot) => {
                boot.validate().map_err(refused)?;
                r.boot_source = Some(boot);
            }
            VmmAction::PutMachineConfig(machine) => {
                checked(r, |u| u.machine_config = Some(machine))?
            }
            VmmAction::PatchMachineConfig(update) => {
                let base = r.machine_config.clone().unwrap_or_default();
                let machine = update.apply(&base).map_err(refused)?;
                checked(r, |u| u.machine_config = Some(machine))?;
            }
            VmmAction::PutDrive(drive) => {
                drive.check_files().map_err(refused)?;
                r.put_drive(drive).map_err(refused)?;
            }
            VmmAction::PutNetworkInterface(iface) => {
                r.put_network_interface(iface).map_err(refused)?
            }
            VmmAction::PutVsock(vsock) => checked(r, |u| u.vsock = Some(vsock))?,
            VmmAction::PutEntropy(entropy) => checked(r, |u| u.entropy = Some(entropy))?,
            VmmAction::PutBalloon(balloon) => checked(r, |u| u.balloon = Some(balloon))?,
            VmmAction::PutLogger(logger) => {
                logger.validate().map_err(refused)?;
                let hook = self.logger.as_mut().ok_or_else(|| {
                    ActionError::new("this VMM's log cannot be configured through the API")
                })?;
                hook(&logger).map_err(ActionError::new)?;
                r.logger = Some(r.logger.take().unwrap_or_default().updated_by(&logger));
            }
            VmmAction::PutMetrics(metrics) => {
                metrics.validate().map_err(refused)?;
                self.metrics
                    .open(PathBuf::from(&metrics.metrics_path))
                    .map_err(ActionError::new)?;
                r.metrics = Some(metrics);
            }
            VmmAction::PutSerial(serial) => self.serial = serial.open().map_err(refused)?,
            other => {
                return Err(ActionError::new(format!(
                    "{other:?} needs a running microVM"
                )))
            }
        }
        Ok(VmmData::Empty)
    }

    /// Carries out a request on the running machine whose `devices` and
    /// running parts these are.
    pub(crate) fn serve_running(
        &mut self,
        action: VmmAction,
        run: &mut RunControl,
        devices: &Devices,
    ) -> Result<VmmData, ActionError> {
        let next = run.state.after(&action)?;
        match action {
            VmmAction::GetState => return Ok(VmmData::State(run.state)),
            VmmAction::Pause if run.state == VmState::Running => run.pause(devices)?,
            VmmAction::Resume if run.state == VmState::Paused => run.resume(devices),
            VmmAction::Pause | VmmAction::Resume => {}
            VmmAction::SendCtrlAltDel => devices::bus::lock(&devices.i8042)
                .send_ctrl_alt_del()
                .map_err(|e| ActionError::new(format!("cannot send Ctrl-Alt-Del: {e}")))?,
            VmmAction::PatchDrive(patch) => {
                let id = patch.drive_id.clone();
                let current = self
                    .resources
                    .drive(&id)
                    .cloned()
                    .ok_or_else(|| ActionError::new(format!("no drive with id {id}")))?;
                let updated = patch.apply(&current).map_err(refused)?;
                let update = DriveUpdate {
                    path: patch.path_on_host.as_ref().map(PathBuf::from),
                    limits: limiter_update(patch.rate_limiter.as_ref()),
                };
                devices.update_drive(&id, update).map_err(ActionError)?;
                if let Some(slot) = self.resources.drives.iter_mut().find(|d| d.drive_id == id) {
                    *slot = updated;
                }
            }
            VmmAction::PatchNetworkInterface(patch) => {
                let id = patch.iface_id.clone();
                let current = self
                    .resources
                    .network_interfaces
                    .iter()
                    .find(|n| n.iface_id == id)
                    .cloned()
                    .ok_or_else(|| {
                        ActionError::new(format!("no network interface with id {id}"))
                    })?;
                let updated = patch.apply(&current).map_err(refused)?;
                let update = NetUpdate {
                    rx: limiter_update(patch.rx_rate_limiter.as_ref()),
                    tx: limiter_update(patch.tx_rate_limiter.as_ref()),
                };
                devices.update_net(&id, update).map_err(ActionError)?;
                if let Some(slot) = self
                    .resources
                    .network_interfaces
                    .iter_mut()
                    .find(|n| n.iface_id == id)
                {
                    *slot = updated;
                }
            }
            VmmAction::PatchBalloon(update) => {
                let handle = devices
                    .balloon
                    .as_ref()
                    .ok_or_else(|| ActionError::new("no balloon device is configured"))?;
                handle
                    .set_target(u64::from(update.amount_mib) << 20)
                    .map_err(|e| ActionError::new(e.to_string()))?;
                if let Some(balloon) = self.resources.balloon.as_mut() {
                    balloon.amount_mib = update.amount_mib;
                }
            }
            VmmAction::GetBalloonStats => return self.balloon_stats(devices),
            VmmAction::PatchBalloonStats(update) => {
                let balloon = self
                    .resources
                    .balloon
                    .as_mut()
                    .ok_or_else(|| ActionError::new("no balloon device is configured"))?;
                if balloon.stats_polling_interval_s == 0 || update.stats_polling_interval_s == 0 {
                    return Err(ActionError::new(
                        "balloon statistics can only be turned on or off before the microVM starts",
                    ));
                }
                balloon.stats_polling_interval_s = update.stats_polling_interval_s;
            }
            other => return self.serve_config(other),
        }
        run.state = next;
        Ok(VmmData::Empty)
    }

    fn balloon_stats(&self, devices: &Devices) -> Result<VmmData, ActionError> {
        let handle = devices
            .balloon
            .as_ref()
            .ok_or_else(|| ActionError::new("no balloon device is configured"))?;
        let stats = handle
            .stats()
            .ok_or_else(|| ActionError::new("balloon statistics are not enabled"))?;
        let pages =
            |bytes: u64| u32::try_from(bytes / virtio::balloon::BALLOON_PAGE).unwrap_or(u32::MAX);
        Ok(VmmData::BalloonStats(Box::new(BalloonStats::new(
            pages(handle.target()),
            pages(handle.actual()),
            &stats,
        ))))
    }
}
