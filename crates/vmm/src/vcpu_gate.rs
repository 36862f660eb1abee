//! Pausing the vCPUs: each vCPU thread passes the gate before it enters
//! the guest, and parks there while the machine is paused, out of
//! `KVM_RUN` (so it burns no CPU and its registers can be read). A parked
//! thread also runs the work handed to it on its own vCPU (saving its
//! state for a snapshot): KVM's state of a vCPU is read where the vCPU
//! lives, and the thread owns it.

use std::sync::mpsc;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hypervisor::Vcpu;

use crate::vcpu::kick;

/// How long a pause waits for every vCPU to park: a vCPU in the middle of
/// a device access finishes it first, and a device reset may take up to
/// [`virtio::STOP_DEADLINE`].
pub(crate) const PAUSE_DEADLINE: Duration = Duration::from_secs(3);

/// Work for the parked thread of one vCPU.
type Task<T> = Box<dyn FnOnce(&mut T) + Send>;

/// Where the vCPU threads of one machine park while it is paused; `T` is
/// what each thread runs (a [`Vcpu`]; the tests use plain values).
pub(crate) struct VcpuGate<T = Vcpu> {
    state: Mutex<GateState<T>>,
    changed: Condvar,
}

struct GateState<T> {
    closed: bool,
    /// vCPU threads waiting at the gate.
    parked: usize,
    /// Work waiting for the parked thread of the vCPU with that index.
    tasks: Vec<(u32, Task<T>)>,
}

impl<T> VcpuGate<T> {
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::with_closed(false)
    }

    /// A gate that is already closed: the vCPU threads park before they
    /// first enter the guest (a machine restored paused).
    pub(crate) fn with_closed(closed: bool) -> Self {
        VcpuGate {
            state: Mutex::new(GateState {
                closed,
                parked: 0,
                tasks: Vec::new(),
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState<T>> {
        // Nothing under the lock can panic halfway through a change.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// On the thread of vCPU `id`, before each entry into the guest: waits
    /// while the gate is closed, running the work handed to `id` on
    /// `target` meanwhile.
    pub(crate) fn pass(&self, id: u32, target: &mut T) {
        let mut state = self.lock();
        if !state.closed {
            return;
        }
        state.parked += 1;
        self.changed.notify_all();
        loop {
            if let Some(at) = state.tasks.iter().position(|(task_id, _)| *task_id == id) {
                let (_, task) = state.tasks.swap_remove(at);
                drop(state);
                task(target);
                state = self.lock();
                continue;
            }
            if !state.closed {
                break;
            }
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.parked -= 1;
    }

    /// Runs `work` on each of `ids`' parked threads, on its own vCPU, and
    /// returns the results in the order of `ids`; `None` if any did not
    /// answer within `deadline` (its thread has ended, or the gate is
    /// open). Call only while the gate is closed.
    pub(crate) fn on_each_parked<R, F>(
        &self,
        ids: &[u32],
        work: F,
        deadline: Duration,
    ) -> Option<Vec<R>>
    where
        R: Send + 'static,
        F: Fn(&mut T) -> R + Clone + Send + 'static,
    {
        let (done, results) = mpsc::channel();
        {
            let mut state = self.lock();
            for (order, &id) in ids.iter().enumerate() {
                let (work, done) = (work.clone(), done.clone());
                state.tasks.push((
                    id,
                    Box::new(move |target| {
                        let _ = done.send((order, work(target)));
                    }),
                ));
            }
        }
        self.changed.notify_all();
        let give_up = Instant::now() + deadline;
        let mut answers: Vec<Option<R>> = ids.iter().map(|_| None).collect();
        for _ in ids {
            let left = give_up.saturating_duration_since(Instant::now());
            match results.recv_timeout(left) {
                Ok((order, result)) => answers[order] = Some(result),
                Err(_) => {
                    // Work nobody took must not run later, out of turn.
                    self.lock().tasks.clear();
                    return None;
                }
            }
        }
        answers.into_iter().collect()
    }

    /// Closes the gate and kicks `threads` out of the guest until every
    /// one is parked, or `deadline` passes; true if all parked. A kick can
    /// land just before a thread enters `KVM_RUN` and be lost, so threads
    /// are kicked until they park.
    pub(crate) fn close(&self, threads: &[JoinHandle<()>], deadline: Duration) -> bool {
        self.lock().closed = true;
        let give_up = Instant::now() + deadline;
        loop {
            let state = self.lock();
            let running = threads.iter().filter(|t| !t.is_finished()).count();
            if state.parked >= running {
                return true;
            }
            if Instant::now() >= give_up {
                return false;
            }
            drop(state);
            for thread in threads {
                kick(thread);
            }
            let state = self.lock();
            let _ = self
                .changed
                .wait_timeout(state, Duration::from_micros(500))
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Opens the gate: parked threads go on into the guest.
    pub(crate) fn open(&self) {
        self.lock().closed = false;
        self.changed.notify_all();
    }

    #[cfg(test)]
    fn parked(&self) -> usize {
        self.lock().parked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// A stand-in for a vCPU thread: passes the gate, then counts.
    fn counting_thread(
        gate: &Arc<VcpuGate<u64>>,
        count: &Arc<AtomicU64>,
        stop: &Arc<AtomicU64>,
    ) -> JoinHandle<()> {
        let (gate, count, stop) = (gate.clone(), count.clone(), stop.clone());
        std::thread::spawn(move || {
            while stop.load(Ordering::SeqCst) == 0 {
                gate.pass(0, &mut 0);
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    }

    #[test]
    fn closed_gate_parks_every_thread_until_opened() {
        crate::vcpu::install_kick_handler().unwrap();
        let gate = Arc::new(VcpuGate::new());
        let count = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..3)
            .map(|_| counting_thread(&gate, &count, &stop))
            .collect();
        assert!(gate.close(&threads, Duration::from_secs(5)));
        assert_eq!(gate.parked(), 3);
        let frozen = count.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            count.load(Ordering::SeqCst),
            frozen,
            "progress while paused"
        );
        gate.open();
        let deadline = Instant::now() + Duration::from_secs(5);
        while count.load(Ordering::SeqCst) == frozen && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            count.load(Ordering::SeqCst) > frozen,
            "no progress after the resume"
        );
        stop.store(1, Ordering::SeqCst);
        for thread in threads {
            thread.join().unwrap();
        }
    }

    #[test]
    fn close_gives_up_on_a_thread_that_never_comes_back() {
        crate::vcpu::install_kick_handler().unwrap();
        let gate = VcpuGate::<u64>::new();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let stuck = std::thread::spawn(move || {
            let _ = wait.recv();
        });
        let start = Instant::now();
        assert!(!gate.close(std::slice::from_ref(&stuck), Duration::from_millis(100)));
        assert!(start.elapsed() < Duration::from_secs(2));
        drop(release);
        stuck.join().unwrap();
    }

    /// Three stand-in vCPUs, each with its own number, parked: work
    /// handed to each runs on its own value, and the results come back in
    /// the order asked.
    #[test]
    fn parked_threads_run_work_on_their_own_vcpu() {
        crate::vcpu::install_kick_handler().unwrap();
        let gate = Arc::new(VcpuGate::<u64>::new());
        let stop = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..3u32)
            .map(|id| {
                let (gate, stop) = (gate.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut value = u64::from(id) * 10;
                    while stop.load(Ordering::SeqCst) == 0 {
                        gate.pass(id, &mut value);
                        std::thread::sleep(Duration::from_micros(100));
                    }
                })
            })
            .collect();
        assert!(gate.close(&threads, Duration::from_secs(5)));
        let got = gate.on_each_parked(
            &[2, 0, 1],
            |value: &mut u64| {
                *value += 1;
                *value
            },
            Duration::from_secs(5),
        );
        assert_eq!(got, Some(vec![21, 1, 11]));
        // No thread with index 7: nobody answers, and nothing is left over.
        let none = gate.on_each_parked(&[7], |v: &mut u64| *v, Duration::from_millis(50));
        assert_eq!(none, None);
        assert!(gate.lock().tasks.is_empty());
        stop.store(1, Ordering::SeqCst);
        gate.open();
        for thread in threads {
            thread.join().unwrap();
        }
    }
}
