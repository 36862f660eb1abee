//! A set of allowed system calls, some only with given ioctl requests or
//! first arguments, that merges with others and compiles to a filter.

use std::collections::BTreeMap;

use seccompiler::{BackendError, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

/// What one system call may be called with.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Allowed {
    /// Any arguments.
    Always,
    /// Only with argument `index` equal to one of `values`.
    ArgIn { index: u8, values: Vec<u64> },
}

/// The system calls a kind of thread may make.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    calls: BTreeMap<i64, Allowed>,
}

impl AllowList {
    /// Allows each of `syscalls` with any arguments.
    pub fn calls(mut self, syscalls: &[libc::c_long]) -> AllowList {
        for &nr in syscalls {
            self.calls.insert(nr, Allowed::Always);
        }
        self
    }

    /// Allows `ioctl` with each of `requests` (besides those allowed
    /// already).
    pub fn ioctls(self, requests: &[u64]) -> AllowList {
        self.arg_in(libc::SYS_ioctl, 1, requests)
    }

    /// Allows `syscall` when its argument `index` is one of `values`.
    pub fn arg_in(mut self, syscall: libc::c_long, index: u8, values: &[u64]) -> AllowList {
        match self.calls.entry(syscall).or_insert(Allowed::ArgIn {
            index,
            values: Vec::new(),
        }) {
            Allowed::Always => {}
            Allowed::ArgIn {
                index: existing,
                values: allowed,
            } => {
                debug_assert_eq!(*existing, index, "one argument checked per call");
                for &value in values {
                    if !allowed.contains(&value) {
                        allowed.push(value);
                    }
                }
            }
        }
        self
    }

    /// Everything `self` or `other` allows.
    pub fn and(mut self, other: &AllowList) -> AllowList {
        for (&nr, allowed) in &other.calls {
            self = match allowed {
                Allowed::Always => self.calls(&[nr]),
                Allowed::ArgIn { index, values } => self.arg_in(nr, *index, values),
            };
        }
        self
    }

    /// Whether `syscall` is allowed with some arguments.
    pub fn allows(&self, syscall: libc::c_long) -> bool {
        self.calls.contains_key(&syscall)
    }

    /// Whether `ioctl` is allowed with `request`.
    pub fn allows_ioctl(&self, request: u64) -> bool {
        match self.calls.get(&libc::SYS_ioctl) {
            Some(Allowed::Always) => true,
            Some(Allowed::ArgIn { values, .. }) => values.contains(&request),
            None => false,
        }
    }

    /// The rules seccompiler takes: an empty list allows any arguments.
    pub(crate) fn into_rules(self) -> Result<BTreeMap<i64, Vec<SeccompRule>>, BackendError> {
        let mut rules = BTreeMap::new();
        for (nr, allowed) in self.calls {
            let chain = match allowed {
                Allowed::Always => Vec::new(),
                Allowed::ArgIn { index, values } => values
                    .into_iter()
                    .map(|value| {
                        // Requests and flags are 32-bit values: comparing
                        // the low half ignores what a caller leaves above.
                        let condition = SeccompCondition::new(
                            index,
                            SeccompCmpArgLen::Dword,
                            SeccompCmpOp::Eq,
                            value,
                        )?;
                        SeccompRule::new(vec![condition])
                    })
                    .collect::<Result<_, _>>()?,
            };
            rules.insert(nr, chain);
        }
        Ok(rules)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unconditional_call_stays_unconditional_when_merged() {
        let ioctls = AllowList::default().ioctls(&[1, 2]);
        let any = AllowList::default().calls(&[libc::SYS_ioctl]);
        assert!(any.clone().and(&ioctls).allows_ioctl(7));
        assert!(ioctls.clone().and(&any).allows_ioctl(7));
        let merged = ioctls.and(&AllowList::default().ioctls(&[2, 3]));
        assert!(merged.allows_ioctl(1) && merged.allows_ioctl(3));
        assert!(!merged.allows_ioctl(4));
        assert!(!merged.allows(libc::SYS_read));
    }
}
