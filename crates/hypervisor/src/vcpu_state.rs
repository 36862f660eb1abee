//! What KVM holds of one vCPU that its guest can observe, saved and put
//! back as a whole: for snapshots, which bring a guest back in a new
//! process (or a new VM) exactly where it stopped.
//!
//! The state is KVM's own structures (serialised by `kvm-bindings`), so a
//! field KVM adds in a later kernel cannot be dropped on the way. The
//! order of [`Vcpu::restore_state`] follows KVM's dependencies: CPUID
//! before anything it gates (XSAVE size, MSRs), the MP state before the
//! registers, the LAPIC before the events that may be pending on it.

use kvm_bindings::{
    kvm_cpuid_entry2, kvm_debugregs, kvm_lapic_state, kvm_mp_state, kvm_msr_entry, kvm_regs,
    kvm_sregs, kvm_vcpu_events, kvm_xcrs, kvm_xsave, CpuId, Msrs, KVM_MAX_CPUID_ENTRIES,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::vcpu::Vcpu;

/// How many MSRs one `KVM_GET_MSRS` / `KVM_SET_MSRS` carries (KVM's own
/// limit per call is larger; a small batch keeps a refused MSR cheap).
const MSR_BATCH: usize = 64;

/// One vCPU's architectural state, as KVM keeps it.
#[derive(Debug, Serialize, Deserialize)]
pub struct VcpuState {
    /// The CPUID leaves the VMM gave the vCPU (the guest may rely on any).
    pub cpuid: Vec<kvm_cpuid_entry2>,
    /// Every MSR KVM let the VMM read, with its value.
    pub msrs: Vec<kvm_msr_entry>,
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    /// x87, SSE, AVX and the other XSAVE components (the legacy 4 KiB area).
    pub xsave: kvm_xsave,
    pub xcrs: kvm_xcrs,
    pub debug_regs: kvm_debugregs,
    pub lapic: kvm_lapic_state,
    pub mp_state: kvm_mp_state,
    /// Pending exceptions, interrupts and NMIs, and the interrupt shadow.
    pub vcpu_events: kvm_vcpu_events,
    /// The guest's TSC frequency, where KVM tells it.
    pub tsc_khz: Option<u32>,
}

impl Vcpu {
    /// Lets KVM finish the instruction of the last I/O exit without
    /// running the guest any further (`KVM_RUN` with `immediate_exit`).
    /// KVM applies an I/O read's result (and moves past the instruction)
    /// only on the next `KVM_RUN`: a state read before that is of a vCPU
    /// still at the instruction, which a restore would run again, after
    /// the device already acted on it once (a status register read, and
    /// so cleared, whose value the guest never gets). Call it on a
    /// stopped vCPU before [`Vcpu::save_state`].
    pub fn complete_pending_io(&mut self) -> Result<()> {
        let fd = self.fd_mut();
        fd.set_kvm_immediate_exit(1);
        let result = fd.run().map(|_| ());
        fd.set_kvm_immediate_exit(0);
        match result {
            Err(e) if e.errno() == libc::EINTR => Ok(()),
            // Another exit: the instruction needs the VMM again (an access
            // split across pages), which a stopped vCPU cannot serve.
            Ok(()) => Err(Error::PendingIo),
            Err(source) => Err(Error::Ioctl {
                op: "KVM_RUN",
                source,
            }),
        }
    }

    /// Reads the whole state. `msr_indices` are the MSRs to save (the
    /// host's `KVM_GET_MSR_INDEX_LIST`); those KVM will not read for this
    /// vCPU are left out rather than failing the save. The vCPU must not be
    /// running (its thread is out of `KVM_RUN`).
    pub fn save_state(&self, msr_indices: &[u32]) -> Result<VcpuState> {
        let fd = self.fd();
        // What the VMM gave the vCPU, not what KVM_GET_CPUID2 reads back:
        // under some KVMs (PVM) the latter also holds host bits that KVM
        // does not offer, which a restore could not give again.
        let cpuid = match self.cpuid_given() {
            Some(given) => given,
            None => fd
                .get_cpuid2(KVM_MAX_CPUID_ENTRIES)
                .map_err(Error::ioctl("KVM_GET_CPUID2"))?
                .as_slice()
                .to_vec(),
        };
        // The MP state first: reading it makes KVM settle pending APIC
        // events (an INIT or SIPI) into the state read after it.
        let mp_state = fd
            .get_mp_state()
            .map_err(Error::ioctl("KVM_GET_MP_STATE"))?;
        Ok(VcpuState {
            cpuid,
            msrs: self.read_msrs(msr_indices)?,
            regs: self.regs()?,
            sregs: self.sregs()?,
            xsave: fd.get_xsave().map_err(Error::ioctl("KVM_GET_XSAVE"))?,
            xcrs: fd.get_xcrs().map_err(Error::ioctl("KVM_GET_XCRS"))?,
            debug_regs: fd
                .get_debug_regs()
                .map_err(Error::ioctl("KVM_GET_DEBUGREGS"))?,
            lapic: self.lapic()?,
            mp_state,
            vcpu_events: fd
                .get_vcpu_events()
                .map_err(Error::ioctl("KVM_GET_VCPU_EVENTS"))?,
            tsc_khz: fd.get_tsc_khz().ok(),
        })
    }

    /// Puts `state` back, on a vCPU that has not run since it was created
    /// (or is stopped). A TSC frequency KVM cannot give this vCPU is
    /// refused, since the guest's clock would run at the wrong speed.
    pub fn restore_state(&self, state: &VcpuState) -> Result<()> {
        let fd = self.fd();
        if let Some(khz) = state.tsc_khz {
            if fd.get_tsc_khz().ok() != Some(khz) {
                fd.set_tsc_khz(khz)
                    .map_err(Error::ioctl("KVM_SET_TSC_KHZ"))?;
            }
        }
        let cpuid = CpuId::from_entries(&state.cpuid).map_err(|_| Error::StateTooLarge {
            what: "CPUID leaves",
            count: state.cpuid.len(),
        })?;
        self.set_cpuid(&cpuid)?;
        fd.set_mp_state(state.mp_state)
            .map_err(Error::ioctl("KVM_SET_MP_STATE"))?;
        self.set_regs(&state.regs)?;
        self.set_sregs(&state.sregs)?;
        // SAFETY: `kvm_xsave` is the legacy 4 KiB area, which is exactly
        // what KVM_SET_XSAVE reads; no larger (XSAVE2) buffer is involved.
        unsafe { fd.set_xsave(&state.xsave) }.map_err(Error::ioctl("KVM_SET_XSAVE"))?;
        fd.set_xcrs(&state.xcrs)
            .map_err(Error::ioctl("KVM_SET_XCRS"))?;
        fd.set_debug_regs(&state.debug_regs)
            .map_err(Error::ioctl("KVM_SET_DEBUGREGS"))?;
        self.set_lapic(&state.lapic)?;
        for batch in state.msrs.chunks(MSR_BATCH) {
            let msrs = Msrs::from_entries(batch).map_err(|_| Error::StateTooLarge {
                what: "MSRs",
                count: batch.len(),
            })?;
            self.set_msrs(&msrs)?;
        }
        fd.set_vcpu_events(&state.vcpu_events)
            .map_err(Error::ioctl("KVM_SET_VCPU_EVENTS"))
    }

    /// The values of `indices`, skipping any KVM refuses to read (it stops
    /// a batch at the first one it refuses).
    fn read_msrs(&self, indices: &[u32]) -> Result<Vec<kvm_msr_entry>> {
        let mut saved = Vec::with_capacity(indices.len());
        let mut rest = indices;
        while !rest.is_empty() {
            let batch = &rest[..rest.len().min(MSR_BATCH)];
            let entries: Vec<kvm_msr_entry> = batch
                .iter()
                .map(|&index| kvm_msr_entry {
                    index,
                    ..Default::default()
                })
                .collect();
            let mut msrs = Msrs::from_entries(&entries).map_err(|_| Error::StateTooLarge {
                what: "MSRs",
                count: entries.len(),
            })?;
            let read = self
                .fd()
                .get_msrs(&mut msrs)
                .map_err(Error::ioctl("KVM_GET_MSRS"))?;
            saved.extend_from_slice(&msrs.as_slice()[..read.min(batch.len())]);
            // Skip the MSR that stopped the batch, if one did.
            let consumed = if read < batch.len() { read + 1 } else { read };
            rest = &rest[consumed..];
        }
        Ok(saved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_utils::{hypervisor, map_code, start_at_code, vm_with_irqchip};
    use crate::{VcpuExit, Vm};

    /// Real-mode code: counts in AL, writing each value to port 0x80.
    /// `mov al, 0x41; l: inc al; out 0x80, al; jmp l`
    const COUNTER: [u8; 6] = [0xb0, 0x41, 0xfe, 0xc0, 0xe6, 0x80];
    const COUNTER_LOOP: [u8; 2] = [0xeb, 0xfa];

    fn counter_vm() -> (Vm, Vcpu) {
        let vm = vm_with_irqchip();
        map_code(&vm, &[&COUNTER[..], &COUNTER_LOOP[..]].concat());
        let vcpu = vm.create_vcpu(0).unwrap();
        vcpu.set_cpuid(hypervisor().supported_cpuid().unwrap())
            .unwrap();
        (vm, vcpu)
    }

    /// Runs to the next write to port 0x80 and returns the byte written.
    fn next_count(vcpu: &mut Vcpu) -> u8 {
        loop {
            match vcpu.run().unwrap() {
                VcpuExit::IoOut { port: 0x80, data } => return data[0],
                VcpuExit::Interrupted => continue,
                other => panic!("unexpected exit {other:?}"),
            }
        }
    }

    fn bytes(state: &VcpuState) -> Vec<u8> {
        serde_json::to_vec(state).unwrap()
    }

    #[test]
    fn a_restored_vcpu_goes_on_where_the_saved_one_stopped() {
        let hv = hypervisor();
        let msrs = hv.msr_index_list().unwrap();
        let (_vm, mut vcpu) = counter_vm();
        start_at_code(&vcpu);
        assert_eq!(next_count(&mut vcpu), 0x42);
        assert_eq!(next_count(&mut vcpu), 0x43);
        let saved = vcpu.save_state(msrs).unwrap();
        assert_eq!(saved.regs.rax & 0xff, 0x43);
        assert!(!saved.msrs.is_empty(), "no MSR was saved");

        let (_vm2, mut restored) = counter_vm();
        restored.restore_state(&saved).unwrap();
        assert_eq!(
            next_count(&mut restored),
            0x44,
            "the restored vCPU went on counting"
        );
        // The original is untouched by its copy.
        assert_eq!(next_count(&mut vcpu), 0x44);
    }

    #[test]
    fn save_restore_save_gives_the_same_bytes() {
        let msrs = hypervisor().msr_index_list().unwrap().to_vec();
        let (_vm, mut vcpu) = counter_vm();
        start_at_code(&vcpu);
        next_count(&mut vcpu);
        let saved = vcpu.save_state(&msrs).unwrap();
        let text = bytes(&saved);
        let reread: VcpuState = serde_json::from_slice(&text).unwrap();

        let (_vm2, restored) = counter_vm();
        restored.restore_state(&reread).unwrap();
        let again = restored.save_state(&msrs).unwrap();
        assert_eq!(again.regs, saved.regs);
        assert_eq!(again.sregs, saved.sregs);
        assert_eq!(again.lapic, saved.lapic);
        assert_eq!(again.vcpu_events, saved.vcpu_events);
        assert_eq!(again.cpuid, saved.cpuid);
        assert_eq!(again.xsave.region, saved.xsave.region);
        // MSRs such as the TSC move on between two reads; the same set of
        // MSRs comes back.
        let indices = |s: &VcpuState| s.msrs.iter().map(|m| m.index).collect::<Vec<_>>();
        assert_eq!(indices(&again), indices(&saved));
    }

    /// A vCPU stopped right after the VMM answered a port read: the value
    /// reaches the guest's register, and the instruction is done, only
    /// once KVM_RUN comes back, which the saved state must not miss.
    #[test]
    fn a_pending_port_read_is_completed_before_the_state_is_read() {
        let hv = hypervisor();
        let vm = vm_with_irqchip();
        // mov al, 0; in al, 0x80; out 0x81, al; jmp $
        map_code(&vm, &[0xb0, 0x00, 0xe4, 0x80, 0xe6, 0x81, 0xeb, 0xfe]);
        let mut vcpu = vm.create_vcpu(0).unwrap();
        vcpu.set_cpuid(hv.supported_cpuid().unwrap()).unwrap();
        start_at_code(&vcpu);
        loop {
            match vcpu.run().unwrap() {
                VcpuExit::IoIn { port: 0x80, data } => {
                    data[0] = 0x42;
                    break;
                }
                VcpuExit::Interrupted => continue,
                other => panic!("unexpected exit {other:?}"),
            }
        }
        vcpu.complete_pending_io().unwrap();
        let state = vcpu.save_state(&[]).unwrap();
        assert_eq!(state.regs.rax & 0xff, 0x42, "the read's value is in AL");
        assert_eq!(state.regs.rip, 0x1004, "past the IN instruction");
        // And the guest goes on from there, not repeating the read.
        assert_eq!(next_out_81(&mut vcpu), 0x42);
    }

    /// Runs to the next write to port 0x81 and returns the byte written.
    fn next_out_81(vcpu: &mut Vcpu) -> u8 {
        loop {
            match vcpu.run().unwrap() {
                VcpuExit::IoOut { port: 0x81, data } => return data[0],
                VcpuExit::Interrupted => continue,
                other => panic!("unexpected exit {other:?}"),
            }
        }
    }

    #[test]
    fn an_msr_kvm_will_not_read_is_left_out() {
        let (_vm, vcpu) = counter_vm();
        // 0xdead_beef is no MSR at all; the ones around it are still saved.
        let hv = hypervisor();
        let list = hv.msr_index_list().unwrap();
        let mut indices = vec![list[0], 0xdead_beef];
        indices.extend_from_slice(&list[1..3]);
        let saved = vcpu.save_state(&indices).unwrap();
        let got: Vec<u32> = saved.msrs.iter().map(|m| m.index).collect();
        assert_eq!(got, [list[0], list[1], list[2]]);
    }
}
