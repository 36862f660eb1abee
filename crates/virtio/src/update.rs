//! Run-time updates of a device's settings (a new disk image, new rate
//! limits): the VMM thread hands one to the device's worker through a
//! [`Mailbox`] and rings its [`Doorbell`]; the worker takes it between
//! two handler calls, applies it and answers; the VMM thread waits for
//! that answer, up to a deadline.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::Doorbell;

/// Why a run-time update was refused. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("{0}")]
    Block(#[from] crate::block::BlockError),
    #[error(
        "the device did not take the update within {} ms (its worker is stuck in a slow system call?); nothing changed",
        .0.as_millis()
    )]
    NoAnswer(Duration),
}

enum Slot<U> {
    Empty,
    /// Waiting for the worker.
    Posted(U),
    /// The worker is applying it.
    Taken,
    /// The worker applied it.
    Applied,
}

/// One update at a time between the VMM thread and a worker.
pub(crate) struct Mailbox<U> {
    slot: Mutex<Slot<U>>,
    changed: Condvar,
}

/// The update the worker took; dropping it (after applying it, or on a
/// panic halfway) tells the VMM thread that the worker is done.
pub(crate) struct Taken<'a, U> {
    mailbox: &'a Mailbox<U>,
    pub update: U,
}

impl<U> Drop for Taken<'_, U> {
    fn drop(&mut self) {
        *self.mailbox.lock() = Slot::Applied;
        self.mailbox.changed.notify_all();
    }
}

impl<U> Mailbox<U> {
    pub fn new() -> Self {
        Mailbox {
            slot: Mutex::new(Slot::Empty),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot<U>> {
        // Nothing under the lock can panic halfway through a change.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// On the VMM thread: hands `update` to the worker behind `doorbell`
    /// and waits for it to be applied. If the worker has not taken it
    /// within `deadline` (stuck in a long system call), the update is
    /// taken back and returned: nothing changed. Once taken, it is
    /// applied without blocking, so this waits for the end of that.
    pub fn send(&self, update: U, doorbell: &Doorbell, deadline: Duration) -> Result<(), U> {
        *self.lock() = Slot::Posted(update);
        doorbell.ring();
        let until = Instant::now() + deadline;
        let mut slot = self.lock();
        loop {
            match &*slot {
                Slot::Applied => {
                    *slot = Slot::Empty;
                    return Ok(());
                }
                Slot::Posted(_) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return match std::mem::replace(&mut *slot, Slot::Empty) {
                            Slot::Posted(update) => Err(update),
                            _ => Ok(()),
                        };
                    }
                    slot = self
                        .changed
                        .wait_timeout(slot, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                Slot::Taken | Slot::Empty => {
                    slot = self
                        .changed
                        .wait(slot)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// On the worker: the update waiting, if any.
    pub fn take(&self) -> Option<Taken<'_, U>> {
        let mut slot = self.lock();
        if !matches!(*slot, Slot::Posted(_)) {
            return None;
        }
        match std::mem::replace(&mut *slot, Slot::Taken) {
            Slot::Posted(update) => Some(Taken {
                mailbox: self,
                update,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Wake, Worker};
    use std::sync::Arc;

    /// A worker that adds each update it takes to a total.
    fn adder(name: &str) -> (Worker, Arc<Mailbox<u32>>, Arc<Mutex<u32>>) {
        let mailbox = Arc::new(Mailbox::<u32>::new());
        let total = Arc::new(Mutex::new(0));
        let (m, t) = (mailbox.clone(), total.clone());
        let worker = Worker::spawn(name.into(), vec![], vec![], move |wake, _| {
            if wake == Wake::Update {
                if let Some(taken) = m.take() {
                    *t.lock().unwrap() += taken.update;
                }
            }
        })
        .unwrap();
        (worker, mailbox, total)
    }

    #[test]
    fn an_update_is_applied_before_send_returns() {
        let (worker, mailbox, total) = adder("test-mailbox");
        let bell = worker.doorbell();
        for n in 1..=3 {
            assert!(mailbox.send(n, &bell, Duration::from_secs(5)).is_ok());
        }
        assert_eq!(*total.lock().unwrap(), 6);
        // While paused too.
        assert!(worker.pause(Duration::from_secs(5)));
        assert!(mailbox.send(10, &bell, Duration::from_secs(5)).is_ok());
        assert_eq!(*total.lock().unwrap(), 16);
    }

    #[test]
    fn an_update_not_taken_in_time_comes_back_unapplied() {
        let mailbox = Mailbox::<u32>::new();
        // A worker stuck in its handler never looks at the mailbox.
        let evt = vmm_sys_util::eventfd::EventFd::new(0).unwrap();
        let poke = evt.try_clone().unwrap();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (entered_tx, entered) = std::sync::mpsc::channel();
        let worker = Worker::spawn(
            "test-mailbox-stuck".into(),
            vec![evt],
            vec![],
            move |_, _| {
                let _ = entered_tx.send(());
                let _ = wait.recv();
            },
        )
        .unwrap();
        poke.write(1).unwrap();
        entered.recv_timeout(Duration::from_secs(5)).unwrap();
        let start = Instant::now();
        assert_eq!(
            mailbox.send(7, &worker.doorbell(), Duration::from_millis(100)),
            Err(7)
        );
        assert!(start.elapsed() < Duration::from_secs(1));
        assert!(mailbox.take().is_none(), "taken back: nothing to apply");
        drop(release);
    }
}
