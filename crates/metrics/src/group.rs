//! A metrics group: a struct of named counters, written as one JSON
//! object of a metrics line.

use crate::Counter;

/// A group's counters by name, in the order they are written.
pub trait Group {
    fn counters(&self) -> Vec<(&'static str, &Counter)>;

    /// Every counter's count since the last line, reset to 0.
    fn take(&self) -> Vec<(&'static str, u64)> {
        self.counters()
            .into_iter()
            .map(|(name, counter)| (name, counter.take()))
            .collect()
    }
}

/// Declares a group: a struct whose fields are counters, a `const`
/// constructor (for process-wide statics) and its [`Group`] impl, which
/// names each counter after its field (Firecracker's names).
macro_rules! group {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* $field:ident,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $crate::Counter,)*
        }

        impl $name {
            pub const fn new() -> Self {
                Self { $($field: $crate::Counter::new(),)* }
            }
        }

        impl $crate::Group for $name {
            fn counters(&self) -> Vec<(&'static str, &$crate::Counter)> {
                vec![$((stringify!($field), &self.$field),)*]
            }
        }
    };
}

pub(crate) use group;
