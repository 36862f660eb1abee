//! What the VMM thread does to a running machine on request: report its
//! state, pause it, resume it and press Ctrl-Alt-Del on its keyboard.

use std::sync::Arc;
use std::thread::JoinHandle;

use tracing::info;

use crate::console::InputSwitch;
use crate::device_manager::Devices;
use crate::lifecycle::VmState;
use crate::request::{ActionError, VmmAction, VmmData};
use crate::vcpu_gate::{VcpuGate, PAUSE_DEADLINE};

/// The running parts of one machine that requests act on.
pub(crate) struct RunControl {
    pub threads: Vec<JoinHandle<()>>,
    pub gate: Arc<VcpuGate>,
    pub input: Arc<InputSwitch>,
    pub state: VmState,
}

impl RunControl {
    /// Carries out `action` on the machine whose `devices` these are.
    pub(crate) fn serve(
        &mut self,
        action: &VmmAction,
        devices: &Devices,
    ) -> Result<VmmData, ActionError> {
        let next = self.state.after(action)?;
        match action {
            VmmAction::GetState => return Ok(VmmData::State(self.state)),
            VmmAction::Pause if self.state == VmState::Running => self.pause(devices)?,
            VmmAction::Resume if self.state == VmState::Paused => self.resume(devices),
            VmmAction::SendCtrlAltDel => devices::bus::lock(&devices.i8042)
                .send_ctrl_alt_del()
                .map_err(|e| ActionError::new(format!("cannot send Ctrl-Alt-Del: {e}")))?,
            VmmAction::UpdateDrive { id, update } => devices
                .update_drive(id, update.clone())
                .map_err(ActionError)?,
            VmmAction::UpdateNetworkInterface { id, update } => devices
                .update_net(id, update.clone())
                .map_err(ActionError)?,
            _ => {}
        }
        self.state = next;
        Ok(VmmData::Empty)
    }

    /// Parks the vCPUs (out of `KVM_RUN`), then every device worker, then
    /// holds the console's input back: nothing in the guest changes until
    /// [`RunControl::resume`]. A part that does not park in time undoes
    /// the pause and fails it.
    fn pause(&mut self, devices: &Devices) -> Result<(), ActionError> {
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
        info!("guest paused");
        Ok(())
    }

    /// Undoes [`RunControl::pause`], in the reverse order.
    fn resume(&mut self, devices: &Devices) {
        self.input.set(true);
        for transport in &devices.virtio {
            devices::bus::lock(transport).resume();
        }
        self.gate.open();
        info!("guest resumed");
    }
}
