//! vCPU set-up and the thread that runs each vCPU.

use std::sync::{Arc, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arch::x86_64::{cpuid, lapic, msr, regs};
use devices::Bus;
use hypervisor::kvm_bindings::CpuId;
use hypervisor::{Vcpu, VcpuExit};
use tracing::{debug, error, warn};
use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use crate::exit::{ExitSignal, GuestExit};
use crate::vcpu_gate::VcpuGate;
use crate::{Error, Result};

/// What every vCPU of a machine is configured from.
pub(crate) struct VcpuSetup<'a> {
    pub supported_cpuid: &'a CpuId,
    pub supported_msrs: &'a [u32],
    pub cpus: u32,
}

/// Gives a vCPU its CPUID, MSRs and LAPIC wiring; the boot vCPU also gets
/// the registers of its entry protocol. The others wait for INIT/SIPI in
/// the in-kernel LAPIC.
pub(crate) fn configure(
    vcpu: &Vcpu,
    setup: &VcpuSetup,
    boot: Option<regs::EntryMode>,
) -> Result<()> {
    vcpu.set_cpuid(&cpuid::vcpu_cpuid(
        setup.supported_cpuid,
        vcpu.id(),
        setup.cpus,
    ))?;
    vcpu.set_msrs(&msr::boot_msrs(setup.supported_msrs))?;
    let mut lapic_state = vcpu.lapic()?;
    lapic::set_lint(&mut lapic_state);
    vcpu.set_lapic(&lapic_state)?;
    if let Some(mode) = boot {
        vcpu.set_fpu(&regs::boot_fpu())?;
        vcpu.set_regs(&regs::boot_regs(mode))?;
        let sregs = regs::boot_sregs(mode, vcpu.sregs()?);
        vcpu.set_sregs(&sregs)?;
    }
    Ok(())
}

/// The buses a vCPU routes its guest's port and MMIO accesses to.
pub(crate) struct Buses {
    pub pio: Bus,
    pub mmio: Bus,
}

/// The signal that kicks a vCPU thread out of `KVM_RUN`.
fn kick_signal() -> i32 {
    SIGRTMIN()
}

extern "C" fn ignore_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// Installs the (empty) kick handler once per process: its only job is to
/// make `KVM_RUN` return `EINTR`.
pub(crate) fn install_kick_handler() -> Result<()> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        result = register_signal_handler(kick_signal(), ignore_kick).map_err(|e| Error::Host {
            what: "install the vCPU kick signal handler",
            source: std::io::Error::from_raw_os_error(e.errno()),
        });
    });
    result
}

/// Kicks a vCPU thread out of `KVM_RUN` (a thread already gone is no
/// error: the caller checks what it waits for).
pub(crate) fn kick(thread: &JoinHandle<()>) {
    if !thread.is_finished() {
        if let Err(e) = thread.kill(kick_signal()) {
            warn!("cannot signal a vCPU thread: {e}");
        }
    }
}

/// Starts a thread running `vcpu` until `exit` says stop.
pub(crate) fn spawn(
    mut vcpu: Vcpu,
    buses: Arc<Buses>,
    exit: Arc<ExitSignal>,
    gate: Arc<VcpuGate>,
) -> Result<JoinHandle<()>> {
    install_kick_handler()?;
    std::thread::Builder::new()
        .name(format!("vcpu{}", vcpu.id()))
        .spawn(move || {
            seccomp::install_in_thread(seccomp::ThreadKind::Vcpu);
            run_loop(&mut vcpu, &buses, &exit, &gate)
        })
        .map_err(|source| Error::Host {
            what: "start a vCPU thread",
            source,
        })
}

fn run_loop(vcpu: &mut Vcpu, buses: &Buses, exit: &ExitSignal, gate: &VcpuGate) {
    let id = vcpu.id();
    while !exit.is_stopping() {
        // A pause parks the thread here, between a completed exit and the
        // next entry; the stop that ends a pause opens the gate first.
        gate.pass(id, vcpu);
        if exit.is_stopping() {
            break;
        }
        let outcome = match vcpu.run() {
            Ok(VcpuExit::IoIn { port, data }) => {
                metrics::VCPU.exit_io_in.inc();
                if !buses.pio.read(u64::from(port), data) {
                    data.fill(0xff);
                }
                continue;
            }
            Ok(VcpuExit::IoOut { port, data }) => {
                metrics::VCPU.exit_io_out.inc();
                buses.pio.write(u64::from(port), data);
                continue;
            }
            Ok(VcpuExit::MmioRead { addr, data }) => {
                metrics::VCPU.exit_mmio_read.inc();
                if !buses.mmio.read(addr, data) {
                    data.fill(0xff);
                }
                continue;
            }
            Ok(VcpuExit::MmioWrite { addr, data }) => {
                metrics::VCPU.exit_mmio_write.inc();
                buses.mmio.write(addr, data);
                continue;
            }
            Ok(VcpuExit::Interrupted) => continue,
            Ok(VcpuExit::SystemShutdown) => Ok(GuestExit::PowerOff),
            Ok(VcpuExit::SystemReset) => Ok(GuestExit::Reset),
            Ok(VcpuExit::SystemCrash) => Err(Error::GuestCrash),
            Ok(VcpuExit::Shutdown) => Err(Error::TripleFault {
                vcpu: id,
                registers: describe_registers(vcpu),
            }),
            Ok(VcpuExit::InternalError) => {
                let suberror = vcpu.internal_error_suberror();
                Err(Error::EmulationFailure {
                    vcpu: id,
                    suberror,
                    registers: describe_registers(vcpu),
                })
            }
            Ok(VcpuExit::FailEntry { reason }) => Err(Error::VcpuFailed {
                vcpu: id,
                reason: format!("the hardware refused to enter the guest (reason {reason:#x})"),
            }),
            Ok(VcpuExit::Halt) => Err(Error::VcpuFailed {
                vcpu: id,
                reason: "halted without an in-kernel LAPIC".into(),
            }),
            Ok(VcpuExit::Unexpected(what)) => Err(Error::VcpuFailed {
                vcpu: id,
                reason: format!("unexpected exit {what}"),
            }),
            Err(e) => Err(Error::Hypervisor(e)),
        };
        if outcome.is_err() {
            metrics::VCPU.failures.inc();
        }
        debug!(vcpu = id, ?outcome, "vCPU stops the machine");
        exit.stop(outcome);
        break;
    }
}

/// The vCPU's registers, for the report of a guest failure.
fn describe_registers(vcpu: &Vcpu) -> String {
    let (regs, sregs) = match (vcpu.regs(), vcpu.sregs()) {
        (Ok(r), Ok(s)) => (r, s),
        _ => return "registers unavailable".into(),
    };
    format!(
        "rip={:#018x} rsp={:#018x} rflags={:#x}\n\
         rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n\
         rsi={:#018x} rdi={:#018x} rbp={:#018x}\n\
         r8={:#018x} r9={:#018x} r10={:#018x} r11={:#018x}\n\
         r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n\
         cs={:#06x} ds={:#06x} ss={:#06x} cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x}",
        regs.rip,
        regs.rsp,
        regs.rflags,
        regs.rax,
        regs.rbx,
        regs.rcx,
        regs.rdx,
        regs.rsi,
        regs.rdi,
        regs.rbp,
        regs.r8,
        regs.r9,
        regs.r10,
        regs.r11,
        regs.r12,
        regs.r13,
        regs.r14,
        regs.r15,
        sregs.cs.selector,
        sregs.ds.selector,
        sregs.ss.selector,
        sregs.cr0,
        sregs.cr2,
        sregs.cr3,
        sregs.cr4,
        sregs.efer,
    )
}

/// How long stopping the vCPUs waits for their threads: longer than a
/// device reset a vCPU may be in the middle of, which waits up to
/// [`virtio::STOP_DEADLINE`] for the device's worker.
pub(crate) const STOP_DEADLINE: Duration = Duration::from_secs(3);

/// Stops every vCPU thread: they see the exit signal as soon as `KVM_RUN`
/// returns, and the kick signal makes it return. A kick that lands just
/// before a thread enters `KVM_RUN` is lost, so kick until each is gone.
/// A thread still running at [`STOP_DEADLINE`] (stuck in a device) is left
/// detached with an error line; false if any was.
pub(crate) fn stop_all(threads: Vec<JoinHandle<()>>, gate: &VcpuGate) -> bool {
    // Parked threads go on, see the exit signal and end.
    gate.open();
    let deadline = Instant::now() + STOP_DEADLINE;
    let mut all_stopped = true;
    for thread in threads {
        let mut kick = true;
        while !thread.is_finished() && Instant::now() < deadline {
            if kick {
                if let Err(e) = thread.kill(kick_signal()) {
                    warn!("cannot signal a vCPU thread: {e}");
                    kick = false;
                }
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        if thread.is_finished() {
            // A vCPU thread that panicked has already recorded nothing
            // more useful than what the exit signal holds.
            let _ = thread.join();
        } else {
            let name = thread.thread().name().unwrap_or("vcpu").to_owned();
            error!(
                "{name} did not stop within {} s: left running detached",
                STOP_DEADLINE.as_secs()
            );
            all_stopped = false;
        }
    }
    all_stopped
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn stop_all_gives_up_on_a_stuck_thread_at_its_deadline() {
        install_kick_handler().unwrap();
        // Stuck as a vCPU inside a device would be: kicks do not end it.
        let (release, wait) = channel::<()>();
        let stuck = std::thread::spawn(move || {
            let _ = wait.recv();
        });
        let quick = std::thread::spawn(|| {});
        let (done, stopped) = channel();
        std::thread::spawn(move || {
            let _ = done.send(stop_all(vec![quick, stuck], &VcpuGate::new()));
        });
        let all_stopped = stopped
            .recv_timeout(Duration::from_secs(10))
            .expect("stop_all waited past its deadline");
        assert!(!all_stopped);
        drop(release);
    }

    #[test]
    fn stop_all_joins_threads_that_end() {
        install_kick_handler().unwrap();
        let threads = (0..2).map(|_| std::thread::spawn(|| {})).collect();
        assert!(stop_all(threads, &VcpuGate::new()));
    }
}
