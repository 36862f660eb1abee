//! A NIC's rate limits shared between the device, its worker and the
//! VMM, which changes them while the guest runs (Firecracker's
//! `PATCH /network-interfaces/{id}`).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::rate_limiter::{LimiterUpdate, Limits};
use crate::update::{Mailbox, UpdateError};
use crate::{Doorbell, STOP_DEADLINE};

/// New limits for either direction of a running NIC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetUpdate {
    /// What the guest receives.
    pub rx: LimiterUpdate,
    /// What the guest sends.
    pub tx: LimiterUpdate,
}

/// The device's link to its worker while a driver runs it.
pub(crate) struct Active {
    pub mailbox: Arc<Mailbox<NetUpdate>>,
    pub doorbell: Doorbell,
}

/// The limits the next activation starts from, and the running worker.
pub(crate) struct Stored {
    pub rx: Limits,
    pub tx: Limits,
    pub active: Option<Active>,
}

/// What the VMM holds to change a NIC's limits while the guest runs
/// (cheap to clone).
#[derive(Clone)]
pub struct NetHandle {
    stored: Arc<Mutex<Stored>>,
}

impl NetHandle {
    pub(crate) fn new(rx: Limits, tx: Limits) -> Self {
        NetHandle {
            stored: Arc::new(Mutex::new(Stored {
                rx,
                tx,
                active: None,
            })),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Stored> {
        // Nothing under the lock can panic halfway through a change.
        self.stored.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The limits now: (receive, transmit).
    pub fn limits(&self) -> (Limits, Limits) {
        let stored = self.lock();
        (stored.rx.clone(), stored.tx.clone())
    }

    /// Applies `update`, all of it or none of it: while a driver runs the
    /// device its worker takes it between two frames, and a direction
    /// blocked under the old limits tries again at once; before, it is
    /// kept for activation.
    pub fn update(&self, update: NetUpdate) -> Result<(), UpdateError> {
        // Held until the end: a reset or an activation waits for it.
        let mut stored = self.lock();
        if let Some(active) = &stored.active {
            if active
                .mailbox
                .send(update.clone(), &active.doorbell, STOP_DEADLINE)
                .is_err()
            {
                return Err(UpdateError::NoAnswer(STOP_DEADLINE));
            }
        }
        stored.rx.apply(&update.rx);
        stored.tx.apply(&update.tx);
        Ok(())
    }
}
