//! Exit statuses of `pointsman run`, one per way a run can end.

use vmm::{Error, GuestExit};

/// The guest powered off, or reset under `--no-reboot`.
pub const OK: u8 = 0;
/// The host or KVM failed while the guest ran.
pub const VMM_FAILURE: u8 = 1;
/// Bad input: a missing file, a bad size or count, no usable /dev/kvm.
pub const BAD_INPUT: u8 = 2;
/// The guest triple-faulted.
pub const TRIPLE_FAULT: u8 = 3;
/// KVM could not emulate a guest instruction.
pub const EMULATION_FAILURE: u8 = 4;
/// The guest reported a crash (panic) through a paravirtual channel.
pub const GUEST_CRASH: u8 = 5;
/// A VMM thread made a system call its seccomp filter forbids: 128 plus
/// SIGSYS (31), as a shell reports a process SIGSYS killed. One line on
/// stderr names the thread and the call.
pub const SECCOMP_FORBIDDEN_CALL: u8 = 159;
const _: () = assert!(SECCOMP_FORBIDDEN_CALL as i32 == seccomp::FORBIDDEN_CALL_STATUS);
/// Stopped by a signal: 128 plus its number, as a shell reports a
/// process a signal ended (143 for SIGTERM, 130 for SIGINT).
pub const SIGNALED_BASE: u8 = 128;

/// The status for a run that ended with `outcome`.
pub fn for_outcome(outcome: &Result<GuestExit, Error>) -> u8 {
    match outcome {
        Ok(_) => OK,
        Err(e) if e.is_user_error() => BAD_INPUT,
        Err(Error::TripleFault { .. }) => TRIPLE_FAULT,
        Err(Error::EmulationFailure { .. }) => EMULATION_FAILURE,
        Err(Error::GuestCrash) => GUEST_CRASH,
        Err(Error::Stopped { signal }) => u8::try_from(*signal)
            .ok()
            .and_then(|n| SIGNALED_BASE.checked_add(n))
            .unwrap_or(VMM_FAILURE),
        Err(_) => VMM_FAILURE,
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small fixed test values
mod tests {
    use super::*;

    #[test]
    fn each_ending_has_its_own_status() {
        let statuses = [
            for_outcome(&Ok(GuestExit::PowerOff)),
            for_outcome(&Err(Error::InvalidCpus {
                requested: 0,
                max: 4,
            })),
            for_outcome(&Err(Error::TripleFault {
                vcpu: 0,
                registers: String::new(),
            })),
            for_outcome(&Err(Error::EmulationFailure {
                vcpu: 0,
                suberror: 1,
                registers: String::new(),
            })),
            for_outcome(&Err(Error::GuestCrash)),
            for_outcome(&Err(Error::VcpuFailed {
                vcpu: 0,
                reason: String::new(),
            })),
            for_outcome(&Err(Error::Stopped { signal: 15 })),
            for_outcome(&Err(Error::Stopped { signal: 2 })),
        ];
        assert_eq!(
            statuses,
            [
                OK,
                BAD_INPUT,
                TRIPLE_FAULT,
                EMULATION_FAILURE,
                GUEST_CRASH,
                VMM_FAILURE,
                143,
                130
            ]
        );
    }
}
