/// What went wrong while loading the guest's boot files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel could not be read.
    #[error("cannot read the kernel: {0}")]
    ReadKernel(#[source] std::io::Error),
    /// Neither an ELF file nor a bzImage.
    #[error("the kernel is neither an ELF vmlinux nor a bzImage")]
    UnknownKernelFormat,
    /// An ELF file for 32-bit x86 or another 32-bit machine.
    #[error("the kernel is a 32-bit ELF file; Pointsman boots 64-bit x86 kernels")]
    Elf32,
    /// An ELF file for another machine.
    #[error("the kernel is an ELF file for machine type {0}, not x86-64 (62)")]
    ElfMachine(u16),
    /// The ELF file's headers are inconsistent.
    #[error("the kernel's ELF headers are invalid: {0}")]
    ElfInvalid(&'static str),
    /// A bzImage without a 64-bit entry point.
    #[error("the bzImage has no 64-bit entry point (needs boot protocol 2.12 or later with XLF_KERNEL_64)")]
    BzImageNot64Bit,
    /// Part of the kernel would land outside guest RAM.
    #[error("the kernel does not fit in guest memory: it needs {start:#x}..{end:#x}, RAM below 4 GiB ends at {ram_end:#x}")]
    KernelTooLarge { start: u64, end: u64, ram_end: u64 },
    /// linux-loader refused the image.
    #[error("cannot load the kernel: {0}")]
    Loader(#[from] linux_loader::loader::Error),
    /// The initrd could not be read.
    #[error("cannot read the initrd: {0}")]
    ReadInitrd(#[source] std::io::Error),
    /// The initrd does not fit between the kernel and the end of low RAM.
    #[error("the initrd ({size} bytes) does not fit in guest memory between the kernel's end ({kernel_end:#x}) and {limit:#x}")]
    InitrdTooLarge {
        size: u64,
        kernel_end: u64,
        limit: u64,
    },
    /// The command line is too long or has a NUL byte.
    #[error("invalid kernel command line: {0}")]
    Cmdline(String),
    /// Boot information could not be written.
    #[error("cannot write the {0} to guest memory")]
    GuestWrite(&'static str),
    /// The memory map has more entries than the boot protocol can carry.
    #[error("the memory map has {0} entries, more than the boot protocol carries")]
    TooManyMemoryMapEntries(usize),
}

pub type Result<T> = std::result::Result<T, Error>;
