//! The thread a device serves its queues on.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, RawFd};
use std::thread::JoinHandle;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Why the worker woke the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The guest kicked queue `i` (its eventfd is already cleared).
    Queue(usize),
    /// Extra source `i` (a TAP, a socket, a timer) is readable; the device
    /// clears it, or pauses it with [`Sources::pause`].
    Source(usize),
}

/// The extra sources of a worker, which the device may stop and start
/// watching (a TAP it has no buffers for stays readable, and would spin),
/// and add or remove while it runs (a socket per connection).
pub struct Sources {
    epoll: Epoll,
    /// Indexed by source; `None` once removed, until `add` reuses it.
    fds: RefCell<Vec<Option<RawFd>>>,
    base: u64,
}

impl Sources {
    fn fd(&self, index: usize) -> Option<RawFd> {
        self.fds.borrow().get(index).copied().flatten()
    }

    /// Wakes the device for source `index` when it is readable and/or
    /// writable; with neither, stops watching it (hang-ups included).
    pub fn watch(&self, index: usize, readable: bool, writable: bool) {
        let Some(fd) = self.fd(index) else {
            return;
        };
        let token = self.base + index as u64;
        if !readable && !writable {
            // Removing an unwatched fd fails harmlessly.
            let _ = self
                .epoll
                .ctl(ControlOperation::Delete, fd, EpollEvent::default());
            return;
        }
        let mut events = EventSet::empty();
        if readable {
            events |= EventSet::IN;
        }
        if writable {
            events |= EventSet::OUT;
        }
        let event = EpollEvent::new(events, token);
        if self.epoll.ctl(ControlOperation::Modify, fd, event).is_err() {
            let _ = self.epoll.ctl(ControlOperation::Add, fd, event);
        }
    }

    /// Stops waking the device for source `index`.
    pub fn pause(&self, index: usize) {
        self.watch(index, false, false);
    }

    /// Wakes the device for source `index` again when it is readable.
    pub fn resume(&self, index: usize) {
        self.watch(index, true, false);
    }

    /// Watches `fd` (which the device owns and keeps open until it calls
    /// [`Sources::remove`]) for reading too; returns its source index.
    pub fn add(&self, fd: RawFd) -> std::io::Result<usize> {
        let index = {
            let mut fds = self.fds.borrow_mut();
            match fds.iter().position(Option::is_none) {
                Some(free) => {
                    fds[free] = Some(fd);
                    free
                }
                None => {
                    fds.push(Some(fd));
                    fds.len() - 1
                }
            }
        };
        let token = self.base + index as u64;
        let event = EpollEvent::new(EventSet::IN, token);
        if let Err(e) = self.epoll.ctl(ControlOperation::Add, fd, event) {
            self.fds.borrow_mut()[index] = None;
            return Err(e);
        }
        Ok(index)
    }

    /// Stops watching source `index` for good (before its fd is closed);
    /// a later `add` may reuse the index.
    pub fn remove(&self, index: usize) {
        self.pause(index);
        if let Some(slot) = self.fds.borrow_mut().get_mut(index) {
            *slot = None;
        }
    }
}

/// A device worker: a thread that waits on the queues' eventfds and on
/// extra sources and calls the device's handler for each. It stops when
/// dropped.
pub struct Worker {
    kill: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts a thread named `name` that calls `on_wake` each time one of
    /// `queue_evts` or `sources` (raw fds the handler owns) is readable.
    pub fn spawn<F>(
        name: String,
        queue_evts: Vec<EventFd>,
        sources: Vec<RawFd>,
        mut on_wake: F,
    ) -> std::io::Result<Worker>
    where
        F: FnMut(Wake, &Sources) + Send + 'static,
    {
        let kill = EventFd::new(EFD_NONBLOCK)?;
        let epoll = Epoll::new()?;
        let queues = queue_evts.len() as u64;
        let kill_token = u64::MAX;
        for (i, evt) in queue_evts.iter().enumerate() {
            epoll.ctl(
                ControlOperation::Add,
                evt.as_raw_fd(),
                EpollEvent::new(EventSet::IN, i as u64),
            )?;
        }
        epoll.ctl(
            ControlOperation::Add,
            kill.as_raw_fd(),
            EpollEvent::new(EventSet::IN, kill_token),
        )?;
        let count = sources.len();
        let sources = Sources {
            epoll,
            fds: RefCell::new(sources.into_iter().map(Some).collect()),
            base: queues,
        };
        for i in 0..count {
            sources.resume(i);
        }
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            // Sources added later share these slots: events beyond them
            // wait for the next round (epoll is level-triggered).
            let mut events = vec![EpollEvent::default(); queue_evts.len() + count.max(32) + 1];
            loop {
                let n = match sources.epoll.wait(-1, &mut events) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::error!("device worker cannot wait for events: {e}");
                        return;
                    }
                };
                for event in &events[..n] {
                    let token = event.data();
                    if token == kill_token {
                        return;
                    }
                    let Ok(index) = usize::try_from(token) else {
                        continue;
                    };
                    if let Some(evt) = queue_evts.get(index) {
                        // Reading clears the count: one pass serves all kicks.
                        let _ = evt.read();
                        on_wake(Wake::Queue(index), &sources);
                    } else {
                        // A source removed earlier in this round is skipped.
                        let source = index - queue_evts.len();
                        if sources.fd(source).is_some() {
                            on_wake(Wake::Source(source), &sources);
                        }
                    }
                }
            }
        })?;
        Ok(Worker {
            kill,
            thread: Some(thread),
        })
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // If the kill write fails the thread is already gone or stuck;
        // joining would hang, so only join after a successful signal.
        if self.kill.write(1).is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn kicks_reach_the_handler_and_drop_stops_the_thread() {
        let evts = vec![
            EventFd::new(EFD_NONBLOCK).unwrap(),
            EventFd::new(EFD_NONBLOCK).unwrap(),
        ];
        let second = evts[1].try_clone().unwrap();
        let (tx, rx) = channel();
        let worker = Worker::spawn("test-worker".into(), evts, vec![], move |wake, _| {
            let _ = tx.send(wake);
        })
        .unwrap();
        second.write(1).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Wake::Queue(1)
        );
        drop(worker);
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    }

    #[test]
    fn sources_wake_the_handler_until_paused() {
        let source = EventFd::new(EFD_NONBLOCK).unwrap();
        let fd = source.as_raw_fd();
        let (tx, rx) = channel();
        let _worker = Worker::spawn(
            "test-sources".into(),
            vec![],
            vec![fd],
            move |wake, sources| {
                // Leave it readable but stop watching it: no spinning.
                sources.pause(0);
                let _ = tx.send(wake);
            },
        )
        .unwrap();
        source.write(1).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Wake::Source(0)
        );
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "paused"
        );
    }

    #[test]
    fn sources_added_at_run_time_wake_the_handler_until_removed() {
        let first = EventFd::new(EFD_NONBLOCK).unwrap();
        let added = EventFd::new(EFD_NONBLOCK).unwrap();
        let (first_fd, added_fd) = (first.as_raw_fd(), added.as_raw_fd());
        let (poke_first, poke_added) = (first.try_clone().unwrap(), added.try_clone().unwrap());
        let (tx, rx) = channel();
        let _worker = Worker::spawn(
            "test-add".into(),
            vec![],
            vec![first_fd],
            move |wake, sources| match wake {
                Wake::Source(0) => {
                    let _ = first.read();
                    let index = sources.add(added_fd).unwrap();
                    let _ = tx.send(("added", index));
                }
                Wake::Source(i) => {
                    // Still readable, and writable: only removal stops it.
                    sources.watch(i, true, true);
                    sources.remove(i);
                    let _ = tx.send(("woken", i));
                }
                Wake::Queue(_) => {}
            },
        )
        .unwrap();
        poke_first.write(1).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            ("added", 1)
        );
        poke_added.write(1).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            ("woken", 1)
        );
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "removed"
        );
        drop(added);
    }
}
