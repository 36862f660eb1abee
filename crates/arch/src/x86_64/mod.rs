//! x86_64 machine setup.

pub mod acpi;
pub mod cpu_features;
pub mod cpuid;
pub mod gdt;
pub mod lapic;
pub mod memory;
pub mod mptable;
pub mod msr;
pub mod paging;
pub mod regs;
pub mod reset_vector;
pub mod vmgenid;
