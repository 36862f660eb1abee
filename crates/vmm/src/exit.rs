//! How a guest's run ends, and the signal that carries it from the vCPU
//! or device that saw it to the thread that stops the machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vm_superio::Trigger;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::{Error, Result};

/// A clean end of a guest's run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// The guest powered off.
    PowerOff,
    /// The guest reset the machine.
    Reset,
}

/// Set once, by whoever first sees the machine must stop.
pub(crate) struct ExitSignal {
    stopping: AtomicBool,
    outcome: Mutex<Option<Result<GuestExit>>>,
    evt: EventFd,
}

impl ExitSignal {
    pub(crate) fn new() -> Result<Self> {
        Ok(ExitSignal {
            stopping: AtomicBool::new(false),
            outcome: Mutex::new(None),
            evt: EventFd::new(EFD_NONBLOCK).map_err(|source| Error::Host {
                what: "create the exit eventfd",
                source,
            })?,
        })
    }

    /// Records why the machine stops; the first outcome wins.
    pub(crate) fn stop(&self, outcome: Result<GuestExit>) {
        let mut slot = devices::bus::lock(&self.outcome);
        if slot.is_none() {
            *slot = Some(outcome);
        }
        self.stopping.store(true, Ordering::SeqCst);
        // The event loop also polls `is_stopping`, so a failed wake-up only
        // delays the stop until its next turn.
        let _ = self.evt.write(1);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The eventfd that becomes readable once [`ExitSignal::stop`] ran.
    pub(crate) fn eventfd(&self) -> &EventFd {
        &self.evt
    }

    /// The recorded outcome (a power-off if none was recorded).
    pub(crate) fn take(&self) -> Result<GuestExit> {
        devices::bus::lock(&self.outcome)
            .take()
            .unwrap_or(Ok(GuestExit::PowerOff))
    }
}

/// How a device ends the run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DeviceExit {
    PowerOff,
    Reset,
    /// The guest reported a panic.
    Crash,
}

/// The trigger a device fires to end the run.
#[derive(Clone)]
pub(crate) struct ExitTrigger {
    signal: Arc<ExitSignal>,
    exit: DeviceExit,
}

impl ExitTrigger {
    pub(crate) fn new(signal: &Arc<ExitSignal>, exit: DeviceExit) -> Self {
        ExitTrigger {
            signal: signal.clone(),
            exit,
        }
    }
}

impl Trigger for ExitTrigger {
    type E = std::convert::Infallible;

    fn trigger(&self) -> std::result::Result<(), Self::E> {
        self.signal.stop(match self.exit {
            DeviceExit::PowerOff => Ok(GuestExit::PowerOff),
            DeviceExit::Reset => Ok(GuestExit::Reset),
            DeviceExit::Crash => Err(Error::GuestCrash),
        });
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;

    #[test]
    fn first_outcome_wins_and_wakes_the_loop() {
        let signal = Arc::new(ExitSignal::new().unwrap());
        assert!(!signal.is_stopping());
        ExitTrigger::new(&signal, DeviceExit::Reset)
            .trigger()
            .unwrap();
        signal.stop(Ok(GuestExit::PowerOff));
        assert!(signal.is_stopping());
        assert_eq!(signal.eventfd().read().unwrap(), 2);
        assert_eq!(signal.take().unwrap(), GuestExit::Reset);
    }
}
