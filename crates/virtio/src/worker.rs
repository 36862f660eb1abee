//! The thread a device serves its queues on.

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
/// watching (a TAP it has no buffers for stays readable, and would spin).
pub struct Sources {
    epoll: Epoll,
    fds: Vec<RawFd>,
    base: u64,
}

impl Sources {
    fn ctl(&self, op: ControlOperation, index: usize) {
        if let Some(&fd) = self.fds.get(index) {
            let token = self.base + index as u64;
            // Adding a watched fd or removing an unwatched one fails
            // harmlessly: the state the device asked for holds either way.
            let _ = self.epoll.ctl(op, fd, EpollEvent::new(EventSet::IN, token));
        }
    }

    /// Stops waking the device for source `index`.
    pub fn pause(&self, index: usize) {
        self.ctl(ControlOperation::Delete, index);
    }

    /// Wakes the device for source `index` again.
    pub fn resume(&self, index: usize) {
        self.ctl(ControlOperation::Add, index);
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
        let sources = Sources {
            epoll,
            fds: sources,
            base: queues,
        };
        for i in 0..sources.fds.len() {
            sources.resume(i);
        }
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut events = vec![EpollEvent::default(); queue_evts.len() + sources.fds.len() + 1];
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
                    } else if index - queue_evts.len() < sources.fds.len() {
                        on_wake(Wake::Source(index - queue_evts.len()), &sources);
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
}
