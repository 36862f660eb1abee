//! The thread a device serves its queues on.

use std::os::fd::AsRawFd;
use std::thread::JoinHandle;

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// A device worker: a thread that waits on the queues' eventfds and calls
/// the device's handler with the index of each queue the guest kicked. It
/// stops when dropped.
pub struct Worker {
    kill: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts a thread named `name` that calls `on_queue(i)` each time
    /// `queue_evts[i]` fires.
    pub fn spawn<F>(
        name: String,
        queue_evts: Vec<EventFd>,
        mut on_queue: F,
    ) -> std::io::Result<Worker>
    where
        F: FnMut(usize) + Send + 'static,
    {
        let kill = EventFd::new(EFD_NONBLOCK)?;
        let epoll = Epoll::new()?;
        let kill_token = queue_evts.len() as u64;
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
        let thread = std::thread::Builder::new().name(name).spawn(move || {
            let mut events = vec![EpollEvent::default(); queue_evts.len() + 1];
            loop {
                let n = match epoll.wait(-1, &mut events) {
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
                    let Some(index) = usize::try_from(token).ok() else {
                        continue;
                    };
                    let Some(evt) = queue_evts.get(index) else {
                        continue;
                    };
                    // Reading clears the count: one pass serves all kicks.
                    let _ = evt.read();
                    on_queue(index);
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
        let worker = Worker::spawn("test-worker".into(), evts, move |q| {
            let _ = tx.send(q);
        })
        .unwrap();
        second.write(1).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
        drop(worker);
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    }
}
