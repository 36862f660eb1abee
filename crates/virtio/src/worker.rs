//! The thread a device serves its queues on.

use std::cell::RefCell;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

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
    /// The owner rang the worker's [`Doorbell`]: a run-time update of
    /// the device's settings waits for it. Delivered between handler
    /// calls, and while the worker is paused too.
    Update,
    /// The paused machine is being saved ([`Worker::save`]): the device
    /// reports where its queues stand (and sends any interrupt it holds
    /// back, so that no completion is lost). Delivered only while paused.
    Save,
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

/// How long stopping a worker waits for its thread. A device reset runs on
/// a vCPU thread that holds the transport's bus lock, so the wait must be
/// short; a healthy worker ends within one handler call, which the
/// per-wake budgets keep far below this.
pub const STOP_DEADLINE: Duration = Duration::from_secs(1);

/// Workers abandoned since the process started (see [`abandoned_workers`]).
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// How many worker threads overran [`STOP_DEADLINE`] and were left running
/// detached. Such a thread still holds its device's clone of guest memory:
/// whoever owns that memory must not unmap it while any are left.
pub fn abandoned_workers() -> usize {
    ABANDONED.load(Ordering::SeqCst)
}

/// What the owner asks of a worker thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ask {
    Run,
    /// Park between handler calls until asked to run or stop.
    Pause,
    Stop,
}

/// The owner's request and the thread's answer, shared between them.
struct Control {
    state: Mutex<ControlState>,
    changed: Condvar,
}

struct ControlState {
    ask: Ask,
    /// The thread is parked: no handler runs until it is asked to go on,
    /// but for [`Wake::Update`].
    parked: bool,
    /// The doorbell rang and the thread has not answered it yet.
    rung: bool,
    /// The owner asked the parked thread for a [`Wake::Save`], which it
    /// has not answered yet.
    save_asked: bool,
}

impl Control {
    fn new() -> Control {
        Control {
            state: Mutex::new(ControlState {
                ask: Ask::Run,
                parked: false,
                rung: false,
                save_asked: false,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ControlState> {
        // Nothing under the lock can panic halfway through a change.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn ask(&self) -> Ask {
        self.lock().ask
    }

    fn set(&self, ask: Ask) {
        self.lock().ask = ask;
        self.changed.notify_all();
    }

    /// On the worker thread: takes a ring of the doorbell, if any.
    fn take_rung(&self) -> bool {
        std::mem::take(&mut self.lock().rung)
    }

    /// On the worker thread: parks while asked to pause, calling `wake`
    /// (without the lock) with [`Wake::Update`] for each ring of the
    /// doorbell and with [`Wake::Save`] for each save asked meanwhile;
    /// false once asked to stop.
    fn park_while_paused(&self, mut wake: impl FnMut(Wake)) -> bool {
        let mut state = self.lock();
        if state.ask == Ask::Pause {
            state.parked = true;
            self.changed.notify_all();
            while state.ask == Ask::Pause {
                if std::mem::take(&mut state.rung) {
                    drop(state);
                    wake(Wake::Update);
                    state = self.lock();
                    continue;
                }
                if state.save_asked {
                    drop(state);
                    wake(Wake::Save);
                    state = self.lock();
                    state.save_asked = false;
                    self.changed.notify_all();
                    continue;
                }
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            state.parked = false;
        }
        state.ask != Ask::Stop
    }

    /// On the owner's thread: waits up to `deadline` for the thread to
    /// park; true if it did.
    fn wait_parked(&self, deadline: Duration) -> bool {
        let state = self.lock();
        let (state, _) = self
            .changed
            .wait_timeout_while(state, deadline, |s| !s.parked && s.ask == Ask::Pause)
            .unwrap_or_else(PoisonError::into_inner);
        state.parked
    }

    /// On the owner's thread: asks the parked thread for a [`Wake::Save`]
    /// and waits up to `deadline` for it to answer; true if it did.
    fn save(&self, deadline: Duration) -> bool {
        let mut state = self.lock();
        if !state.parked || state.ask != Ask::Pause {
            return false;
        }
        state.save_asked = true;
        self.changed.notify_all();
        let (mut state, _) = self
            .changed
            .wait_timeout_while(state, deadline, |s| s.save_asked && s.parked)
            .unwrap_or_else(PoisonError::into_inner);
        let answered = !state.save_asked;
        // One not answered in time is not left for the thread to find later.
        state.save_asked = false;
        answered
    }
}

/// Rings a worker from another thread (the VMM's), so that its device
/// takes a run-time update of its settings: the worker calls the handler
/// with [`Wake::Update`] between two other calls, or at once while paused
/// (an update changes settings, not the queues or guest memory, so a
/// paused machine's state stays as it was saved). Cheap to clone.
#[derive(Clone)]
pub struct Doorbell {
    control: Arc<Control>,
    kill: Arc<EventFd>,
}

impl Doorbell {
    pub fn ring(&self) {
        self.control.lock().rung = true;
        self.control.changed.notify_all();
        // A failed write (a full counter) leaves a wake-up pending anyway.
        let _ = self.kill.write(1);
    }
}

/// How long pausing a worker waits for its thread to park: as long as a
/// stop may take.
pub const PAUSE_DEADLINE: Duration = STOP_DEADLINE;

/// A device worker: a thread that waits on the queues' eventfds and on
/// extra sources and calls the device's handler for each. It can be
/// paused between handler calls (for a paused guest, whose state must not
/// change) and stops when dropped, waiting at most [`STOP_DEADLINE`] for
/// the thread.
pub struct Worker {
    name: String,
    /// Wakes the thread to look at `control`.
    kill: Arc<EventFd>,
    /// Checked before every handler call: no call starts once the owner
    /// asked for a pause or a stop, even for events already returned.
    control: Arc<Control>,
    /// Disconnected once the thread has ended (its sender is dropped on
    /// return and on panic alike): a join with a deadline.
    ended: Receiver<()>,
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
        let kill = Arc::new(EventFd::new(EFD_NONBLOCK)?);
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
        let control = Arc::new(Control::new());
        let asked = control.clone();
        let kill_evt = kill.try_clone()?;
        let (ended_tx, ended) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                seccomp::install_in_thread(seccomp::ThreadKind::DeviceWorker);
                let _ended = ended_tx;
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
                            let _ = kill_evt.read();
                        }
                        match asked.ask() {
                            Ask::Run => {}
                            Ask::Stop => return,
                            Ask::Pause => {
                                let parked_wake = |wake| on_wake(wake, &sources);
                                if !asked.park_while_paused(parked_wake) {
                                    return;
                                }
                                // The rest of this round may be stale:
                                // wait for events afresh.
                                break;
                            }
                        }
                        if token == kill_token {
                            if asked.take_rung() {
                                on_wake(Wake::Update, &sources);
                            }
                            continue;
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
            name,
            kill,
            control,
            ended,
            thread: Some(thread),
        })
    }

    /// Tells the thread to stop and waits up to `deadline` for it; true if
    /// it ended. A thread that overruns (a handler stuck in a loop or a
    /// slow system call) is left running detached, with an error line: it
    /// stops by itself once its handler returns, and cannot keep the
    /// process alive.
    pub fn stop(&mut self, deadline: Duration) -> bool {
        let Some(thread) = self.thread.take() else {
            return true;
        };
        self.control.set(Ask::Stop);
        // A failed write (a full counter) still leaves the request, which
        // the thread sees at its next event.
        let _ = self.kill.write(1);
        match self.ended.recv_timeout(deadline) {
            Err(RecvTimeoutError::Disconnected) => {
                // Ended: the join returns at once.
                let _ = thread.join();
                true
            }
            Ok(()) | Err(RecvTimeoutError::Timeout) => {
                ABANDONED.fetch_add(1, Ordering::SeqCst);
                tracing::error!(
                    "device worker {} did not stop within {} ms: left running detached",
                    self.name,
                    deadline.as_millis()
                );
                drop(thread);
                false
            }
        }
    }
}

impl Worker {
    /// The doorbell that brings the handler a [`Wake::Update`].
    pub fn doorbell(&self) -> Doorbell {
        Doorbell {
            control: self.control.clone(),
            kill: self.kill.clone(),
        }
    }

    /// Parks the thread between handler calls, waiting up to `deadline`
    /// for it; true once it is parked. A thread still in a handler at the
    /// deadline parks when that call returns (false here).
    pub fn pause(&self, deadline: Duration) -> bool {
        if self.thread.is_none() {
            return true;
        }
        self.control.set(Ask::Pause);
        let _ = self.kill.write(1);
        self.control.wait_parked(deadline)
    }

    /// Has the parked thread's handler take a [`Wake::Save`], on the
    /// thread itself, which owns the queues; waits up to `deadline` for
    /// it. False if the thread is not parked (pause it first) or did not
    /// answer in time.
    pub fn save(&self, deadline: Duration) -> bool {
        self.thread.is_some() && self.control.save(deadline)
    }

    /// Lets a paused thread go on where it stopped.
    pub fn resume(&self) {
        if self.control.ask() == Ask::Pause {
            self.control.set(Ask::Run);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop(STOP_DEADLINE);
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
                Wake::Queue(_) | Wake::Update | Wake::Save => {}
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

    /// A worker whose handler blocks until `release` is dropped or sent
    /// to, woken once so that it is inside the handler.
    fn stuck_worker(name: &str) -> (Worker, std::sync::mpsc::Sender<()>) {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        let poke = evt.try_clone().unwrap();
        let (release, wait) = channel::<()>();
        let (entered_tx, entered) = channel();
        let worker = Worker::spawn(name.into(), vec![evt], vec![], move |_, _| {
            let _ = entered_tx.send(());
            // Stuck, as in a loop without progress or a slow system call.
            let _ = wait.recv();
        })
        .unwrap();
        poke.write(1).unwrap();
        entered.recv_timeout(Duration::from_secs(5)).unwrap();
        (worker, release)
    }

    #[test]
    fn a_stuck_handler_does_not_keep_drop_from_returning() {
        let (worker, release) = stuck_worker("test-stuck-drop");
        let before = abandoned_workers();
        let (done, dropped) = channel();
        std::thread::spawn(move || {
            drop(worker);
            let _ = done.send(());
        });
        dropped
            .recv_timeout(STOP_DEADLINE + Duration::from_secs(2))
            .expect("dropping a stuck worker waited past its deadline");
        assert!(abandoned_workers() > before);
        drop(release);
    }

    #[test]
    fn stop_gives_up_on_a_stuck_handler_at_its_deadline() {
        let (mut worker, release) = stuck_worker("test-stuck-stop");
        let start = std::time::Instant::now();
        assert!(!worker.stop(Duration::from_millis(100)), "abandoned");
        assert!(start.elapsed() < Duration::from_secs(1));
        // Once its handler returns the detached thread ends by itself.
        release.send(()).unwrap();
        // Stopping again has nothing left to wait for.
        assert!(worker.stop(Duration::from_millis(100)));
    }

    #[test]
    fn an_idle_worker_stops_at_once() {
        let mut worker = Worker::spawn("test-idle".into(), vec![], vec![], |_, _| {}).unwrap();
        let start = std::time::Instant::now();
        assert!(worker.stop(STOP_DEADLINE));
        assert!(start.elapsed() < STOP_DEADLINE);
    }

    /// A worker on one queue whose handler reports each wake.
    fn queue_worker(name: &str) -> (Worker, EventFd, std::sync::mpsc::Receiver<Wake>) {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        let kick = evt.try_clone().unwrap();
        let (tx, rx) = channel();
        let worker = Worker::spawn(name.into(), vec![evt], vec![], move |wake, _| {
            let _ = tx.send(wake);
        })
        .unwrap();
        (worker, kick, rx)
    }

    #[test]
    fn a_paused_worker_serves_nothing_until_resumed() {
        let (worker, kick, rx) = queue_worker("test-pause");
        assert!(worker.pause(Duration::from_secs(5)));
        kick.write(1).unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "a kick reached a paused worker"
        );
        // Pausing a paused worker is not an error.
        assert!(worker.pause(Duration::from_secs(5)));
        worker.resume();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Wake::Queue(0),
            "the kick made while paused is served after the resume"
        );
        worker.resume();
        kick.write(1).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Wake::Queue(0)
        );
    }

    #[test]
    fn a_pause_waits_for_the_handler_call_in_progress() {
        let evt = EventFd::new(EFD_NONBLOCK).unwrap();
        let kick = evt.try_clone().unwrap();
        let (release, released) = channel::<()>();
        let (tx, rx) = channel();
        let worker = Worker::spawn(
            "test-pause-busy".into(),
            vec![evt],
            vec![],
            move |wake, _| {
                let _ = tx.send(wake);
                // The first call holds on until the test lets it go.
                let _ = released.recv_timeout(Duration::from_secs(10));
            },
        )
        .unwrap();
        kick.write(1).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Wake::Queue(0)
        );
        assert!(
            !worker.pause(Duration::from_millis(100)),
            "parked while its handler still ran"
        );
        release.send(()).unwrap();
        assert!(
            worker.pause(Duration::from_secs(5)),
            "parks once the call returns"
        );
        kick.write(1).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        worker.resume();
        release.send(()).unwrap();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Wake::Queue(0)
        );
    }

    #[test]
    fn a_save_runs_on_the_parked_thread_only() {
        let (worker, kick, rx) = queue_worker("test-save");
        assert!(
            !worker.save(Duration::from_millis(200)),
            "a running worker saved"
        );
        assert!(worker.pause(Duration::from_secs(5)));
        assert!(worker.save(Duration::from_secs(5)));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), Wake::Save);
        // Still parked: a kick waits for the resume.
        kick.write(1).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        worker.resume();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Wake::Queue(0)
        );
    }

    #[test]
    fn the_doorbell_brings_an_update_while_running_and_while_paused() {
        let (worker, kick, rx) = queue_worker("test-doorbell");
        let bell = worker.doorbell();
        bell.ring();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Wake::Update
        );
        assert!(worker.pause(Duration::from_secs(5)));
        kick.write(1).unwrap();
        bell.ring();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Wake::Update,
            "a paused worker still takes an update"
        );
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "but serves no queue"
        );
        assert!(worker.pause(Duration::from_secs(5)), "and is still parked");
        worker.resume();
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).unwrap(),
            Wake::Queue(0)
        );
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "one update per ring"
        );
    }

    #[test]
    fn a_paused_worker_stops_at_once() {
        let (mut worker, _kick, _rx) = queue_worker("test-pause-stop");
        assert!(worker.pause(Duration::from_secs(5)));
        let start = std::time::Instant::now();
        assert!(worker.stop(Duration::from_secs(5)));
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
