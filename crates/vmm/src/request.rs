//! Requests from outside the VMM thread (the API server, on a thread of
//! its own) and their answers. The VMM thread alone touches the machine:
//! a request reaches it through a [`RequestSource`], whose eventfd wakes
//! the VMM's event loop, and its answer goes back through the request's
//! `reply`.

use vmm_sys_util::eventfd::EventFd;

use crate::lifecycle::VmState;
use crate::resources::{
    Balloon, BalloonStats, BalloonStatsUpdate, BalloonUpdate, BootSource, Drive, Entropy, Logger,
    MachineConfig, MachineConfigUpdate, Metrics, NetworkInterface, PartialDrive,
    PartialNetworkInterface, Serial, SnapshotCreateParams, SnapshotLoadParams, VmResources, Vsock,
};

/// What a request asks the VMM to do: Firecracker's API requests, one
/// variant each, carrying the resource types of [`crate::resources`].
#[derive(Clone, Debug, PartialEq)]
pub enum VmmAction {
    /// `GET /`: where the guest is in its life.
    GetState,
    /// `GET /vm/config`: the whole configuration, in the config file's form.
    GetVmConfig,
    /// `GET /machine-config`.
    GetMachineConfig,
    /// `GET /balloon`.
    GetBalloon,
    /// `GET /balloon/statistics`.
    GetBalloonStats,
    /// `PUT /boot-source`.
    PutBootSource(BootSource),
    /// `PUT /machine-config`.
    PutMachineConfig(MachineConfig),
    /// `PATCH /machine-config`.
    PatchMachineConfig(MachineConfigUpdate),
    /// `PUT /drives/{id}`.
    PutDrive(Drive),
    /// `PATCH /drives/{id}` after boot: a new image and/or new limits.
    PatchDrive(PartialDrive),
    /// `PUT /network-interfaces/{id}`.
    PutNetworkInterface(NetworkInterface),
    /// `PATCH /network-interfaces/{id}` after boot: new limits.
    PatchNetworkInterface(PartialNetworkInterface),
    /// `PUT /vsock`.
    PutVsock(Vsock),
    /// `PUT /entropy`.
    PutEntropy(Entropy),
    /// `PUT /balloon`.
    PutBalloon(Balloon),
    /// `PATCH /balloon` after boot: a new target.
    PatchBalloon(BalloonUpdate),
    /// `PATCH /balloon/statistics` after boot.
    PatchBalloonStats(BalloonStatsUpdate),
    /// `PUT /logger`.
    PutLogger(Logger),
    /// `PUT /metrics`.
    PutMetrics(Metrics),
    /// `PUT /serial`.
    PutSerial(Serial),
    /// `InstanceStart`: boot the configured guest.
    Start,
    /// `PATCH /vm` `Paused`: park every vCPU and device worker.
    Pause,
    /// `PATCH /vm` `Resumed`: let them go on.
    Resume,
    /// `SendCtrlAltDel`: press Ctrl-Alt-Del on the guest's keyboard.
    SendCtrlAltDel,
    /// `FlushMetrics`: write the metrics now.
    FlushMetrics,
    /// `PUT /snapshot/create` on a paused guest.
    CreateSnapshot(SnapshotCreateParams),
    /// `PUT /snapshot/load`: the guest comes back from a snapshot instead
    /// of booting.
    LoadSnapshot(SnapshotLoadParams),
}

/// When an action may come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Any time.
    Any,
    /// Only before the guest starts (configuration).
    BeforeStart,
    /// Only once it started (it acts on the running machine).
    AfterStart,
    /// The start itself.
    Start,
}

impl VmmAction {
    /// When this action may come, as Firecracker allows it.
    pub fn phase(&self) -> Phase {
        use VmmAction::*;
        match self {
            GetState | GetVmConfig | GetMachineConfig | GetBalloon | FlushMetrics => Phase::Any,
            PutBootSource(_)
            | PutMachineConfig(_)
            | PatchMachineConfig(_)
            | PutDrive(_)
            | PutNetworkInterface(_)
            | PutVsock(_)
            | PutEntropy(_)
            | PutBalloon(_)
            | PutLogger(_)
            | PutMetrics(_)
            | PutSerial(_) => Phase::BeforeStart,
            GetBalloonStats
            | PatchDrive(_)
            | PatchNetworkInterface(_)
            | PatchBalloon(_)
            | PatchBalloonStats(_)
            | Pause
            | Resume
            | SendCtrlAltDel
            | CreateSnapshot(_) => Phase::AfterStart,
            Start | LoadSnapshot(_) => Phase::Start,
        }
    }
}

/// What a request answers.
#[derive(Clone, Debug, PartialEq)]
pub enum VmmData {
    /// Done; nothing to say.
    Empty,
    /// The guest's state.
    State(VmState),
    /// The whole configuration.
    VmConfig(Box<VmResources>),
    MachineConfig(MachineConfig),
    Balloon(Balloon),
    BalloonStats(Box<BalloonStats>),
}

/// Why a request was refused: one line for the client (Firecracker's
/// `fault_message`). Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ActionError(pub String);

impl ActionError {
    pub fn new(message: impl Into<String>) -> ActionError {
        ActionError(message.into())
    }
}

/// Where a request's answer goes.
pub type Reply = Box<dyn FnOnce(Result<VmmData, ActionError>) + Send>;

/// A request and where its answer goes.
pub struct Request {
    pub action: VmmAction,
    pub reply: Reply,
}

/// The requests waiting for the VMM thread.
pub trait RequestSource {
    /// Readable while requests may be waiting; the VMM thread clears it
    /// before it takes them, so one that comes meanwhile wakes it again.
    fn eventfd(&self) -> &EventFd;
    /// The next waiting request, if any.
    fn next_request(&mut self) -> Option<Request>;
}
