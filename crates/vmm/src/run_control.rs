//! The running parts of a machine that requests act on, and its pause
//! and resume.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tracing::info;

use crate::console::InputSwitch;
use crate::device_manager::Devices;
use crate::lifecycle::VmState;
use crate::request::ActionError;
use crate::vcpu_gate::{VcpuGate, PAUSE_DEADLINE};

/// The running parts of one machine that requests act on.
pub(crate) struct RunControl {
    pub threads: Vec<JoinHandle<()>>,
    pub gate: Arc<VcpuGate>,
    pub input: Arc<InputSwitch>,
    pub state: VmState,
}

impl RunControl {
    /// Parks the vCPUs (out of `KVM_RUN`), then every device worker, then
    /// holds the console's input back: nothing in the guest changes until
    /// [`RunControl::resume`]. A part that does not park in time undoes
    /// the pause and fails it.
    pub(crate) fn pause(&mut self, devices: &Devices) -> Result<(), ActionError> {
        let started = Instant::now();
        if !self.gate.close(&self.threads, PAUSE_DEADLINE) {
            self.gate.open();
            return Err(ActionError::new(format!(
                "the vCPUs did not pause within {} s",
                PAUSE_DEADLINE.as_secs()
            )));
        }
        for (i, transport) in devices.virtio.iter().enumerate() {
            let transport = devices::bus::lock(transport);
            if !transport.pause(virtio::PAUSE_DEADLINE) {
                let kind = transport.device_type();
                drop(transport);
                for paused in &devices.virtio[..=i] {
                    devices::bus::lock(paused).resume();
                }
                self.gate.open();
                return Err(ActionError::new(format!(
                    "a virtio device (type {kind}) did not pause within {} ms",
                    virtio::PAUSE_DEADLINE.as_millis()
                )));
            }
        }
        self.input.set(false);
        metrics::VMM.pauses.inc();
        metrics::LATENCIES.pause_vm.set(micros_since(started));
        info!("guest paused");
        Ok(())
    }

    /// Undoes [`RunControl::pause`], in the reverse order.
    pub(crate) fn resume(&mut self, devices: &Devices) {
        let started = Instant::now();
        self.input.set(true);
        for transport in &devices.virtio {
            devices::bus::lock(transport).resume();
        }
        self.gate.open();
        metrics::VMM.resumes.inc();
        metrics::LATENCIES.resume_vm.set(micros_since(started));
        info!("guest resumed");
    }
}

/// Microseconds since `started`, for `latencies_us`.
fn micros_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}
