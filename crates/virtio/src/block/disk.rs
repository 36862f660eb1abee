//! The disk image: positional, vectored reads and writes between a raw
//! file and guest memory, flushes, and hole punching.
//!
//! Guest buffers go straight to `preadv`/`pwritev`, with no copy. Under
//! `direct=on` the file is opened with O_DIRECT, which needs aligned
//! memory, offsets and lengths: requests whose guest buffers are not
//! aligned go through an aligned bounce buffer, and requests whose offset
//! or length is not aligned go through a second, buffered descriptor of
//! the same file (the kernel keeps the two coherent).

use std::alloc::{self, Layout};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Mutex;

use vm_memory::bitmap::Bitmap;

use super::config::{DiskConfig, ID_BYTES};
use super::GuestSlice;

/// Size of the O_DIRECT bounce buffer: a multiple of every alignment a
/// file system asks for.
const BOUNCE_BYTES: usize = 1 << 20;
/// Alignment assumed when the kernel does not say (`statx` DIOALIGN is
/// Linux 6.1+ and per file system): a page satisfies every disk.
const DEFAULT_DIRECT_ALIGN: u32 = 4096;
/// Most iovecs one `preadv`/`pwritev` takes (`IOV_MAX`).
const IOV_MAX: usize = 1024;
/// Zeros written when a file system cannot zero a range itself.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Why a disk image could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("cannot open the disk image {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the disk image {0} is neither a regular file nor a block device")]
    NotADisk(PathBuf),
    #[error("cannot find the size of the disk image {path}: {source}")]
    Size {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the file system of the disk image {0} does not support O_DIRECT (direct=on)")]
    NoDirect(PathBuf),
    #[error("cannot allocate the O_DIRECT bounce buffer")]
    Bounce,
}

/// What O_DIRECT needs of buffers and file offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectAlign {
    pub memory: usize,
    pub offset: usize,
}

/// A heap buffer aligned for O_DIRECT.
struct AlignedBuffer {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer is plain owned memory; `Disk` only touches it under a
// mutex.
unsafe impl Send for AlignedBuffer {}

impl AlignedBuffer {
    fn new(len: usize, align: usize) -> Option<AlignedBuffer> {
        let layout = Layout::from_size_align(len, align).ok()?;
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: the layout has a non-zero size, checked above.
        let ptr = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })?;
        Some(AlignedBuffer { ptr, layout })
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live, initialized (zeroed) allocation of
        // `layout.size()` bytes that only this value owns, borrowed
        // mutably through `self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.layout.size()) }
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `alloc_zeroed` with this same layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// The O_DIRECT state of a disk: alignments, the buffered descriptor for
/// misaligned requests and the bounce buffer for misaligned guest memory.
struct Direct {
    align: DirectAlign,
    buffered: File,
    bounce: Mutex<AlignedBuffer>,
}

/// A raw disk image.
pub struct Disk {
    file: File,
    direct: Option<Direct>,
    size: u64,
    readonly: bool,
    id: [u8; ID_BYTES],
    /// False only in tests that force the written-zeros path.
    fallocate_zeroing: bool,
}

fn is_errno(e: &std::io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

/// The id a disk gets without `id=`: from the file's device and inode,
/// stable across boots and different for different files.
fn default_id(file: &File) -> [u8; ID_BYTES] {
    let text = file
        .metadata()
        .map(|m| format!("ptsm-{:x}-{:x}", m.dev(), m.ino()))
        .unwrap_or_else(|_| "ptsm-disk".to_owned());
    id_bytes(&text)
}

fn id_bytes(text: &str) -> [u8; ID_BYTES] {
    let mut id = [0u8; ID_BYTES];
    let n = text.len().min(ID_BYTES);
    id[..n].copy_from_slice(&text.as_bytes()[..n]);
    id
}

/// O_DIRECT alignment of `file` from `statx`, or a safe default.
fn direct_align(file: &File) -> DirectAlign {
    // SAFETY: statx is plain old data; all zeros is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // The system call, not glibc's wrapper: std declares `statx` as a weak
    // symbol, and in the statically linked, LTO-built binary that
    // declaration is the one left, unresolved, so the wrapper is null.
    // SAFETY: the path is a NUL-terminated empty string, AT_EMPTY_PATH makes
    // statx look at `file` itself, and `stx` is a valid statx buffer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_statx,
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_DIOALIGN,
            &mut stx as *mut libc::statx,
        )
    };
    let known = rc == 0 && stx.stx_mask & libc::STATX_DIOALIGN != 0;
    let pick = |v: u32| {
        let v = if known && v.is_power_of_two() {
            v
        } else {
            DEFAULT_DIRECT_ALIGN
        };
        usize::try_from(v.max(512)).unwrap_or(4096)
    };
    DirectAlign {
        memory: pick(stx.stx_dio_mem_align),
        offset: pick(stx.stx_dio_offset_align),
    }
}

fn open(path: &Path, readonly: bool, direct: bool) -> Result<File, DiskError> {
    let mut options = OpenOptions::new();
    options.read(true).write(!readonly);
    if direct {
        options.custom_flags(libc::O_DIRECT);
    }
    options.open(path).map_err(|source| {
        if direct && is_errno(&source, libc::EINVAL) {
            DiskError::NoDirect(path.to_owned())
        } else {
            DiskError::Open {
                path: path.to_owned(),
                source,
            }
        }
    })
}

impl Disk {
    /// Opens the image `config` names.
    pub fn open(config: &DiskConfig) -> Result<Disk, DiskError> {
        let path = &config.path;
        let mut file = open(path, config.readonly, config.direct)?;
        let meta = file.metadata().map_err(|source| DiskError::Size {
            path: path.clone(),
            source,
        })?;
        if !meta.is_file() && !meta.file_type().is_block_device() {
            return Err(DiskError::NotADisk(path.clone()));
        }
        // Seeking also sizes block devices, whose metadata says 0.
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|source| DiskError::Size {
                path: path.clone(),
                source,
            })?;
        let direct = if config.direct {
            let align = direct_align(&file);
            Some(Direct {
                align,
                buffered: open(path, config.readonly, false)?,
                bounce: Mutex::new(
                    AlignedBuffer::new(BOUNCE_BYTES, align.memory).ok_or(DiskError::Bounce)?,
                ),
            })
        } else {
            None
        };
        let id = match &config.id {
            Some(id) => id_bytes(id),
            None => default_id(&file),
        };
        Ok(Disk {
            file,
            direct,
            size,
            readonly: config.readonly,
            id,
            fallocate_zeroing: true,
        })
    }

    /// Opens `path` to take this disk's place (a new medium in the same
    /// drive): read-only and O_DIRECT as this one is, with its serial
    /// number.
    pub fn successor(&self, path: &Path) -> Result<Disk, DiskError> {
        let config = DiskConfig {
            path: path.to_owned(),
            readonly: self.readonly,
            id: None,
            direct: self.direct.is_some(),
            bandwidth: None,
            ops: None,
            moderation: false,
        };
        let mut disk = Disk::open(&config)?;
        disk.id = self.id;
        disk.fallocate_zeroing = self.fallocate_zeroing;
        Ok(disk)
    }

    /// A buffered disk over an open file (tests and fuzzing).
    pub fn from_file(mut file: File, readonly: bool) -> std::io::Result<Disk> {
        let size = file.seek(SeekFrom::End(0))?;
        Ok(Disk {
            id: default_id(&file),
            file,
            direct: None,
            size,
            readonly,
            fallocate_zeroing: true,
        })
    }

    /// Size in bytes, as opened.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// The serial number, NUL-padded.
    pub fn id(&self) -> &[u8; ID_BYTES] {
        &self.id
    }

    /// O_DIRECT alignment, when the disk is direct.
    pub fn direct_align(&self) -> Option<DirectAlign> {
        self.direct.as_ref().map(|d| d.align)
    }

    /// Pretends the file system asks for `align` (tests of the three
    /// O_DIRECT paths on any file system).
    #[cfg(test)]
    pub(crate) fn force_direct_align(&mut self, align: DirectAlign) {
        if let Some(direct) = self.direct.as_mut() {
            direct.align = align;
        }
    }

    /// The descriptor for I/O that need not be aligned.
    fn buffered(&self) -> &File {
        self.direct.as_ref().map_or(&self.file, |d| &d.buffered)
    }

    /// Reads `bufs.len()` segments' worth of bytes at `offset`.
    pub fn read(&self, offset: u64, bufs: &[GuestSlice]) -> std::io::Result<()> {
        self.transfer(offset, bufs, Op::Read)
    }

    /// Writes the segments at `offset`.
    pub fn write(&self, offset: u64, bufs: &[GuestSlice]) -> std::io::Result<()> {
        self.transfer(offset, bufs, Op::Write)
    }

    fn transfer(&self, offset: u64, bufs: &[GuestSlice], op: Op) -> std::io::Result<()> {
        let Some(direct) = &self.direct else {
            return vectored(&self.file, offset, bufs, op);
        };
        let a = direct.align;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let offset_aligned = usize::try_from(offset).is_ok_and(|o| o.is_multiple_of(a.offset));
        if !offset_aligned || !total.is_multiple_of(a.offset) {
            return vectored(&direct.buffered, offset, bufs, op);
        }
        let memory_aligned = bufs.iter().all(|b| {
            (b.ptr_guard().as_ptr() as usize).is_multiple_of(a.memory)
                && b.len().is_multiple_of(a.offset)
        });
        let result = if memory_aligned {
            vectored(&self.file, offset, bufs, op)
        } else {
            self.bounced(direct, offset, bufs, op)
        };
        match result {
            // The file system wants more alignment than it said: the
            // buffered descriptor takes anything.
            Err(e) if is_errno(&e, libc::EINVAL) => vectored(&direct.buffered, offset, bufs, op),
            other => other,
        }
    }

    /// O_DIRECT through the aligned bounce buffer, a chunk at a time.
    fn bounced(
        &self,
        direct: &Direct,
        offset: u64,
        bufs: &[GuestSlice],
        op: Op,
    ) -> std::io::Result<()> {
        let mut bounce = direct.bounce.lock().unwrap_or_else(|p| p.into_inner());
        let bounce = bounce.as_mut_slice();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut done = 0;
        while done < total {
            let n = bounce.len().min(total - done);
            let at = offset + done as u64;
            let chunk = &mut bounce[..n];
            match op {
                Op::Read => {
                    self.file.read_exact_at(chunk, at)?;
                    scatter(bufs, done, chunk)?;
                }
                Op::Write => {
                    gather(bufs, done, chunk)?;
                    self.file.write_all_at(chunk, at)?;
                }
            }
            done += n;
        }
        Ok(())
    }

    /// Makes every completed write durable (fdatasync).
    pub fn flush(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    /// Deallocates a range. A file system that cannot punch holes keeps
    /// the data: discarding is only a hint.
    pub fn discard(&self, offset: u64, len: u64) -> std::io::Result<()> {
        match fallocate(&self.file, PUNCH_HOLE, offset, len) {
            Err(e) if is_errno(&e, libc::EOPNOTSUPP) => Ok(()),
            other => other,
        }
    }

    /// Zeroes a range without writing data: by punching a hole when
    /// `unmap` allows it, by zeroing it in place otherwise. False when the
    /// file system can do neither (tmpfs, NFS): the caller then writes
    /// zeros with [`Disk::write_zeros`], a step at a time, since that is
    /// as much I/O as a write of the whole range.
    pub fn zero_in_place(&self, offset: u64, len: u64, unmap: bool) -> std::io::Result<bool> {
        if !self.fallocate_zeroing {
            return Ok(false);
        }
        let modes: &[i32] = if unmap {
            &[PUNCH_HOLE, ZERO_RANGE]
        } else {
            &[ZERO_RANGE]
        };
        for &mode in modes {
            match fallocate(&self.file, mode, offset, len) {
                Err(e) if is_errno(&e, libc::EOPNOTSUPP) => continue,
                other => return other.map(|()| true),
            }
        }
        Ok(false)
    }

    /// Writes `len` bytes of zeros at `offset`.
    pub fn write_zeros(&self, offset: u64, len: u64) -> std::io::Result<()> {
        let file = self.buffered();
        let mut done = 0u64;
        while done < len {
            let n = usize::try_from(len - done)
                .unwrap_or(usize::MAX)
                .min(ZEROS.len());
            let at = offset
                .checked_add(done)
                .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EFBIG))?;
            file.write_all_at(&ZEROS[..n], at)?;
            done += n as u64;
        }
        Ok(())
    }

    /// Pretends the file system can neither punch holes nor zero ranges
    /// (tests of the written-zeros path on any file system).
    #[cfg(test)]
    pub(crate) fn forbid_fallocate_zeroing(&mut self) {
        self.fallocate_zeroing = false;
    }
}

const PUNCH_HOLE: i32 = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
const ZERO_RANGE: i32 = libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE;

fn fallocate(file: &File, mode: i32, offset: u64, len: u64) -> std::io::Result<()> {
    let too_big = || std::io::Error::from_raw_os_error(libc::EFBIG);
    let offset = i64::try_from(offset).map_err(|_| too_big())?;
    let len = i64::try_from(len).map_err(|_| too_big())?;
    loop {
        // SAFETY: fallocate only acts on the descriptor, which `file` keeps
        // open; no memory is passed.
        if unsafe { libc::fallocate64(file.as_raw_fd(), mode, offset, len) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
}

/// Copies `src` into the guest segments, starting `skip` bytes in.
fn scatter(bufs: &[GuestSlice], mut skip: usize, mut src: &[u8]) -> std::io::Result<()> {
    for b in bufs {
        if src.is_empty() {
            break;
        }
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        let n = (b.len() - skip).min(src.len());
        b.subslice(skip, n)
            .map_err(std::io::Error::other)?
            .copy_from(&src[..n]);
        src = &src[n..];
        skip = 0;
    }
    Ok(())
}

/// Fills `dst` from the guest segments, starting `skip` bytes in.
fn gather(bufs: &[GuestSlice], mut skip: usize, mut dst: &mut [u8]) -> std::io::Result<()> {
    for b in bufs {
        if dst.is_empty() {
            break;
        }
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        let n = (b.len() - skip).min(dst.len());
        let copied = b
            .subslice(skip, n)
            .map_err(std::io::Error::other)?
            .copy_to(&mut dst[..n]);
        dst = &mut dst[copied..];
        skip = 0;
    }
    Ok(())
}

/// One `preadv`/`pwritev` after another until every byte moved.
fn vectored(file: &File, offset: u64, bufs: &[GuestSlice], op: Op) -> std::io::Result<()> {
    // The guards keep the pointers valid until the I/O is done. They mark
    // no page dirty: a read into guest memory marks its buffers itself.
    if op == Op::Read {
        for b in bufs {
            b.bitmap().mark_dirty(0, b.len());
        }
    }
    let guards: Vec<_> = bufs
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| (b.ptr_guard_mut(), b.len()))
        .collect();
    let mut iovs: Vec<libc::iovec> = guards
        .iter()
        .map(|(g, len)| libc::iovec {
            iov_base: g.as_ptr().cast(),
            iov_len: *len,
        })
        .collect();
    let mut first = 0;
    let mut at = offset;
    while first < iovs.len() {
        let batch = &iovs[first..iovs.len().min(first + IOV_MAX)];
        let count = i32::try_from(batch.len()).unwrap_or(i32::MAX);
        let pos = i64::try_from(at).map_err(|_| std::io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: every iovec points into guest memory that `bufs` borrows
        // (mapped for as long as the borrow lives) and stays within its
        // slice; the kernel reads or writes at most those bytes.
        let n = unsafe {
            match op {
                Op::Read => libc::preadv64(file.as_raw_fd(), batch.as_ptr(), count, pos),
                Op::Write => libc::pwritev64(file.as_raw_fd(), batch.as_ptr(), count, pos),
            }
        };
        let mut n = match usize::try_from(n) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the disk image ended early",
                ))
            }
            Ok(n) => n,
            Err(_) => {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
        };
        at += n as u64;
        // Step over what moved; a short transfer resumes mid-iovec.
        while n > 0 {
            let iov = &mut iovs[first];
            if n >= iov.iov_len {
                n -= iov.iov_len;
                first += 1;
            } else {
                iov.iov_base = iov.iov_base.cast::<u8>().wrapping_add(n).cast();
                iov.iov_len -= n;
                n = 0;
            }
        }
    }
    drop(guards);
    Ok(())
}
