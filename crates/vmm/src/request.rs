//! Requests from outside the VMM thread (the API server, on a thread of
//! its own) and their answers. The VMM thread alone touches the machine:
//! a request reaches it through a [`RequestSource`], whose eventfd wakes
//! the VMM's event loop, and its answer goes back through the request's
//! `reply`.

use vmm_sys_util::eventfd::EventFd;

use crate::lifecycle::VmState;

/// What a request asks the VMM to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmmAction {
    /// Where the guest is in its life.
    GetState,
    /// Boot the configured guest (Firecracker's `InstanceStart`).
    Start,
    /// Park every vCPU and device worker.
    Pause,
    /// Let them go on.
    Resume,
    /// Press Ctrl-Alt-Del on the guest's keyboard.
    SendCtrlAltDel,
    /// Write the metrics now.
    FlushMetrics,
    /// Give a running guest's disk a new image and/or new rate limits
    /// (Firecracker's `PATCH /drives/{id}` after boot). `id` is the
    /// disk's `DiskConfig::id`, or `driveN` for the Nth disk without one.
    UpdateDrive {
        id: String,
        update: virtio::block::BlockUpdate,
    },
    /// Give a running guest's NIC new rate limits (Firecracker's
    /// `PATCH /network-interfaces/{id}` after boot). `id` is the NIC's
    /// `NetConfig::id`, or `ethN` for the Nth NIC without one.
    UpdateNetworkInterface {
        id: String,
        update: virtio::net::NetUpdate,
    },
}

/// What a request answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VmmData {
    /// Done; nothing to say.
    Empty,
    /// The guest's state.
    State(VmState),
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
