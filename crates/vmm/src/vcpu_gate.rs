//! Pausing the vCPUs: each vCPU thread passes the gate before it enters
//! the guest, and parks there while the machine is paused, out of
//! `KVM_RUN` (so it burns no CPU and its registers can be read).

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::vcpu::kick;

/// How long a pause waits for every vCPU to park: a vCPU in the middle of
/// a device access finishes it first, and a device reset may take up to
/// [`virtio::STOP_DEADLINE`].
pub(crate) const PAUSE_DEADLINE: Duration = Duration::from_secs(3);

/// Where the vCPU threads of one machine park while it is paused.
pub(crate) struct VcpuGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    /// vCPU threads waiting at the gate.
    parked: usize,
}

impl VcpuGate {
    pub(crate) fn new() -> VcpuGate {
        VcpuGate {
            state: Mutex::new(GateState::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        // Nothing under the lock can panic halfway through a change.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// On a vCPU thread, before each entry into the guest: waits while
    /// the gate is closed.
    pub(crate) fn pass(&self) {
        let mut state = self.lock();
        if !state.closed {
            return;
        }
        state.parked += 1;
        self.changed.notify_all();
        while state.closed {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.parked -= 1;
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
        gate: &Arc<VcpuGate>,
        count: &Arc<AtomicU64>,
        stop: &Arc<AtomicU64>,
    ) -> JoinHandle<()> {
        let (gate, count, stop) = (gate.clone(), count.clone(), stop.clone());
        std::thread::spawn(move || {
            while stop.load(Ordering::SeqCst) == 0 {
                gate.pass();
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
        let gate = VcpuGate::new();
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
}
