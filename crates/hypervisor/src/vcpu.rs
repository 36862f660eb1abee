use std::sync::{Mutex, PoisonError};

use kvm_bindings::{
    kvm_cpuid_entry2, kvm_fpu, kvm_lapic_state, kvm_regs, kvm_sregs, CpuId, Msrs,
    KVM_SYSTEM_EVENT_CRASH, KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN,
};
use kvm_ioctls::{VcpuExit as KvmExit, VcpuFd};

use crate::error::{Error, Result};

/// Why `KVM_RUN` returned, in the terms the VMM acts on.
#[derive(Debug)]
pub enum VcpuExit<'a> {
    /// The guest read an I/O port; fill `data`.
    IoIn { port: u16, data: &'a mut [u8] },
    /// The guest wrote an I/O port.
    IoOut { port: u16, data: &'a [u8] },
    /// The guest read an address no memory slot backs; fill `data`.
    MmioRead { addr: u64, data: &'a mut [u8] },
    /// The guest wrote an address no memory slot backs.
    MmioWrite { addr: u64, data: &'a [u8] },
    /// The guest triple-faulted.
    Shutdown,
    /// The guest asked to power off through a paravirtual channel.
    SystemShutdown,
    /// The guest asked to reset through a paravirtual channel.
    SystemReset,
    /// The guest crashed and said so through a paravirtual channel.
    SystemCrash,
    /// KVM could not run the guest's instruction (an emulation failure);
    /// [`Vcpu::internal_error_suberror`] says which kind.
    InternalError,
    /// The hardware refused to enter the guest.
    FailEntry { reason: u64 },
    /// A signal interrupted `KVM_RUN`: nothing happened in the guest.
    Interrupted,
    /// The guest halted (only without an in-kernel LAPIC).
    Halt,
    /// Something the VMM does not handle.
    Unexpected(String),
}

/// One virtual CPU.
pub struct Vcpu {
    fd: VcpuFd,
    id: u32,
    /// The CPUID last given with [`Vcpu::set_cpuid`], for snapshots.
    cpuid: Mutex<Option<Vec<kvm_cpuid_entry2>>>,
}

impl Vcpu {
    pub(crate) fn new(fd: VcpuFd, id: u32) -> Self {
        Vcpu {
            fd,
            id,
            cpuid: Mutex::new(None),
        }
    }

    /// The CPUID last given with [`Vcpu::set_cpuid`], if any.
    pub(crate) fn cpuid_given(&self) -> Option<Vec<kvm_cpuid_entry2>> {
        self.cpuid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn fd(&self) -> &VcpuFd {
        &self.fd
    }

    pub(crate) fn fd_mut(&mut self) -> &mut VcpuFd {
        &mut self.fd
    }

    /// The vCPU's index, which is also its APIC ID.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sets the CPUID leaves the guest sees.
    pub fn set_cpuid(&self, cpuid: &CpuId) -> Result<()> {
        self.fd
            .set_cpuid2(cpuid)
            .map_err(Error::ioctl("KVM_SET_CPUID2"))?;
        *self.cpuid.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(cpuid.as_slice().to_vec());
        Ok(())
    }

    /// Writes MSRs; fails unless KVM accepted every one of them.
    pub fn set_msrs(&self, msrs: &Msrs) -> Result<()> {
        let written = self
            .fd
            .set_msrs(msrs)
            .map_err(Error::ioctl("KVM_SET_MSRS"))?;
        if written != msrs.as_slice().len() {
            let index = msrs.as_slice().get(written).map_or(0, |m| m.index);
            return Err(Error::MsrRejected { index });
        }
        Ok(())
    }

    /// General-purpose registers.
    pub fn regs(&self) -> Result<kvm_regs> {
        self.fd.get_regs().map_err(Error::ioctl("KVM_GET_REGS"))
    }

    /// Sets the general-purpose registers.
    pub fn set_regs(&self, regs: &kvm_regs) -> Result<()> {
        self.fd.set_regs(regs).map_err(Error::ioctl("KVM_SET_REGS"))
    }

    /// Segment and control registers.
    pub fn sregs(&self) -> Result<kvm_sregs> {
        self.fd.get_sregs().map_err(Error::ioctl("KVM_GET_SREGS"))
    }

    /// Sets the segment and control registers.
    pub fn set_sregs(&self, sregs: &kvm_sregs) -> Result<()> {
        self.fd
            .set_sregs(sregs)
            .map_err(Error::ioctl("KVM_SET_SREGS"))
    }

    /// Sets the x87/SSE state.
    pub fn set_fpu(&self, fpu: &kvm_fpu) -> Result<()> {
        self.fd.set_fpu(fpu).map_err(Error::ioctl("KVM_SET_FPU"))
    }

    /// The in-kernel local APIC's registers.
    pub fn lapic(&self) -> Result<kvm_lapic_state> {
        self.fd.get_lapic().map_err(Error::ioctl("KVM_GET_LAPIC"))
    }

    /// Sets the in-kernel local APIC's registers.
    pub fn set_lapic(&self, lapic: &kvm_lapic_state) -> Result<()> {
        self.fd
            .set_lapic(lapic)
            .map_err(Error::ioctl("KVM_SET_LAPIC"))
    }

    /// After a [`VcpuExit::InternalError`], KVM's reason for it
    /// (`KVM_INTERNAL_ERROR_*`; 1 is an emulation failure).
    pub fn internal_error_suberror(&mut self) -> u32 {
        let run = self.fd.get_kvm_run();
        if run.exit_reason != kvm_bindings::KVM_EXIT_INTERNAL_ERROR {
            return 0;
        }
        // SAFETY: the exit reason says KVM filled the `internal` member of
        // the run structure's exit union.
        unsafe { run.__bindgen_anon_1.internal.suberror }
    }

    /// Runs the guest until it needs the VMM.
    pub fn run(&mut self) -> Result<VcpuExit<'_>> {
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                return Ok(VcpuExit::Interrupted)
            }
            Err(source) => {
                return Err(Error::Ioctl {
                    op: "KVM_RUN",
                    source,
                })
            }
        };
        Ok(match exit {
            KvmExit::IoIn(port, data) => VcpuExit::IoIn { port, data },
            KvmExit::IoOut(port, data) => VcpuExit::IoOut { port, data },
            KvmExit::MmioRead(addr, data) => VcpuExit::MmioRead { addr, data },
            KvmExit::MmioWrite(addr, data) => VcpuExit::MmioWrite { addr, data },
            KvmExit::Shutdown => VcpuExit::Shutdown,
            KvmExit::Hlt => VcpuExit::Halt,
            KvmExit::Intr => VcpuExit::Interrupted,
            KvmExit::FailEntry(reason, _) => VcpuExit::FailEntry { reason },
            KvmExit::SystemEvent(kind, _) => match kind {
                KVM_SYSTEM_EVENT_SHUTDOWN => VcpuExit::SystemShutdown,
                KVM_SYSTEM_EVENT_RESET => VcpuExit::SystemReset,
                KVM_SYSTEM_EVENT_CRASH => VcpuExit::SystemCrash,
                other => VcpuExit::Unexpected(format!("system event {other}")),
            },
            KvmExit::InternalError => VcpuExit::InternalError,
            other => VcpuExit::Unexpected(format!("{other:?}")),
        })
    }
}
