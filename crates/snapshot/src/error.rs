/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a Pointsman snapshot (its first bytes are not {magic:?})", magic = String::from_utf8_lossy(&crate::file::MAGIC))]
    NotASnapshot,
    #[error("snapshot format version {found}: this Pointsman reads version {supported}")]
    Version { found: u32, supported: u32 },
    #[error("the snapshot is truncated: {missing} bytes are missing")]
    Truncated { missing: u64 },
    #[error("the snapshot has {extra} bytes past its end")]
    TrailingBytes { extra: u64 },
    #[error("the snapshot is corrupted: its checksum is {found:#018x}, its contents give {computed:#018x}")]
    Checksum { found: u64, computed: u64 },
    #[error("the snapshot's state does not decode: {0}")]
    Decode(postcard::Error),
    #[error("cannot encode the machine's state: {0}")]
    Encode(postcard::Error),
}

pub type Result<T> = std::result::Result<T, Error>;
