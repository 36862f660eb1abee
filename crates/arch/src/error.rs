/// What went wrong while setting up the machine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A boot structure could not be written to guest memory.
    #[error("cannot write the {what} to guest memory at {addr:#x}")]
    GuestWrite { what: &'static str, addr: u64 },
    /// More vCPUs than the boot tables can describe.
    #[error("{0} vCPUs do not fit in the boot tables (at most 254)")]
    TooManyVcpus(u32),
    /// The ACPI tables grew past the space reserved for them.
    #[error("the ACPI tables need {needed} bytes but only {available} are reserved")]
    AcpiTooLarge { needed: u64, available: u64 },
}

pub type Result<T> = std::result::Result<T, Error>;
