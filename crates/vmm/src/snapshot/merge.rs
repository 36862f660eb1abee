//! `pointsman snapshot merge`: Diff snapshots' memory files laid over a
//! Full one, in order, so that the result is the memory of the last Diff
//! (as Firecracker's `snapshot-editor edit-memory rebase`). A Diff's
//! memory file holds data only in the pages that changed, holes
//! elsewhere; the data regions are found with SEEK_DATA and SEEK_HOLE.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Pages are what a Diff holds: data regions are widened to whole ones
/// (a file system reports data in blocks, which may be smaller).
const PAGE: u64 = 4096;
/// How much is copied at a time.
const CHUNK: usize = 1 << 20;

/// Why memory files could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "{} has {diff} bytes and {} {base}: a Diff's memory file is of the same guest as the one it is laid over",
        diff_path.display(),
        base_path.display()
    )]
    SizeMismatch {
        base_path: PathBuf,
        base: u64,
        diff_path: PathBuf,
        diff: u64,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

impl MergeError {
    /// Whether the user named files that cannot be merged (rather than
    /// the host failing to read or write them).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            MergeError::Open { .. } | MergeError::SizeMismatch { .. }
        )
    }
}

/// Lays each of `diffs` (Diff snapshots' memory files, oldest first) over
/// `base` (the memory file of the snapshot before the first of them), in
/// place. Every file is checked before anything is written: a file of
/// another size than `base` changes nothing. Returns the bytes copied.
pub fn merge_memory_files(base: &Path, diffs: &[PathBuf]) -> Result<u64, MergeError> {
    let open_error = |path: &Path| {
        let path = path.to_owned();
        move |source| MergeError::Open { path, source }
    };
    let target = OpenOptions::new()
        .read(true)
        .write(true)
        .open(base)
        .map_err(open_error(base))?;
    let base_len = target.metadata().map_err(open_error(base))?.len();
    let mut sources = Vec::with_capacity(diffs.len());
    for path in diffs {
        let file = File::open(path).map_err(open_error(path))?;
        let len = file.metadata().map_err(open_error(path))?.len();
        if len != base_len {
            return Err(MergeError::SizeMismatch {
                base_path: base.to_owned(),
                base: base_len,
                diff_path: path.clone(),
                diff: len,
            });
        }
        sources.push((path, file));
    }
    let mut copied = 0;
    let mut buffer = vec![0u8; CHUNK];
    for (path, diff) in sources {
        let read_error = |source| MergeError::Read {
            path: path.clone(),
            source,
        };
        for (start, end) in data_regions(&diff, base_len).map_err(read_error)? {
            copied += copy_range(&diff, &target, start..end, &mut buffer).map_err(|e| match e {
                Copy::Read(source) => read_error(source),
                Copy::Write(source) => MergeError::Write {
                    path: base.to_owned(),
                    source,
                },
            })?;
        }
    }
    target.sync_all().map_err(|source| MergeError::Write {
        path: base.to_owned(),
        source,
    })?;
    Ok(copied)
}

/// The data regions of `file` (of `len` bytes), widened to whole pages
/// and merged where they then touch: [start, end) byte ranges in order.
fn data_regions(file: &File, len: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut regions: Vec<(u64, u64)> = Vec::new();
    let mut at = 0;
    while at < len {
        let Some(data) = seek(file, at, libc::SEEK_DATA)? else {
            break;
        };
        // Past the last data there is always the hole at the end of file.
        let hole = seek(file, data, libc::SEEK_HOLE)?.unwrap_or(len);
        let start = data / PAGE * PAGE;
        let end = hole.div_ceil(PAGE).saturating_mul(PAGE).min(len);
        match regions.last_mut() {
            Some(last) if last.1 >= start => last.1 = last.1.max(end),
            _ => regions.push((start, end)),
        }
        at = hole.max(data + 1);
    }
    Ok(regions)
}

/// `lseek(file, at, whence)`; `None` where no data (or hole) lies at or
/// after `at` (ENXIO).
fn seek(file: &File, at: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let at =
        libc::off_t::try_from(at).map_err(|_| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
    // SAFETY: lseek on a descriptor `file` owns; it touches no memory.
    let found = unsafe { libc::lseek(file.as_raw_fd(), at, whence) };
    if found < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            _ => Err(error),
        };
    }
    Ok(u64::try_from(found).ok())
}

/// Which side of a copy failed.
enum Copy {
    Read(io::Error),
    Write(io::Error),
}

/// Copies `range` of `from` to the same place in `to`; the bytes copied.
fn copy_range(
    from: &File,
    to: &File,
    range: std::ops::Range<u64>,
    buffer: &mut [u8],
) -> Result<u64, Copy> {
    let mut at = range.start;
    while at < range.end {
        let n = usize::try_from(range.end - at).map_or(buffer.len(), |left| left.min(buffer.len()));
        let chunk = &mut buffer[..n];
        from.read_exact_at(chunk, at).map_err(Copy::Read)?;
        to.write_all_at(chunk, at).map_err(Copy::Write)?;
        at += n as u64;
    }
    Ok(range.end - range.start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::cast_possible_truncation)] // 4096
    const PAGE_BYTES: usize = PAGE as usize;

    /// A scratch directory removed when dropped.
    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let path =
                std::env::temp_dir().join(format!("pointsman-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        /// A sparse file of `len` bytes with `pages` (page number, fill
        /// byte) written, holes elsewhere.
        fn sparse(&self, name: &str, len: u64, pages: &[(u64, u8)]) -> PathBuf {
            let path = self.0.join(name);
            let file = File::create(&path).unwrap();
            file.set_len(len).unwrap();
            for &(page, byte) in pages {
                file.write_all_at(&[byte; PAGE_BYTES], page * PAGE).unwrap();
            }
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn page_of(path: &Path, page: u64) -> Vec<u8> {
        let bytes = std::fs::read(path).unwrap();
        let start = usize::try_from(page * PAGE).unwrap();
        bytes[start..start + PAGE_BYTES].to_vec()
    }

    #[test]
    fn diffs_are_laid_over_the_base_in_order_zero_pages_included() {
        let dir = Dir::new("merge");
        let len = 64 * PAGE;
        let base = dir.sparse("base", len, &[(0, 1), (1, 1), (2, 1), (40, 1)]);
        // Page 1 cleared (written as zeros), page 5 new, page 63 last.
        let first = dir.sparse("d1", len, &[(1, 0), (5, 2), (63, 2)]);
        // Page 5 again: the later Diff wins.
        let second = dir.sparse("d2", len, &[(5, 3), (6, 3)]);
        let copied = merge_memory_files(&base, &[first, second]).unwrap();
        assert_eq!(copied, 5 * PAGE);
        assert_eq!(std::fs::metadata(&base).unwrap().len(), len);
        for (page, byte) in [
            (0, 1),
            (1, 0),
            (2, 1),
            (5, 3),
            (6, 3),
            (40, 1),
            (63, 2),
            (7, 0),
        ] {
            assert_eq!(page_of(&base, page), [byte; PAGE_BYTES], "page {page}");
        }
    }

    #[test]
    fn a_diff_of_another_size_is_refused_and_nothing_changes() {
        let dir = Dir::new("merge-size");
        let base = dir.sparse("base", 16 * PAGE, &[(0, 1)]);
        let good = dir.sparse("good", 16 * PAGE, &[(0, 2)]);
        let short = dir.sparse("short", 8 * PAGE, &[(1, 2)]);
        let before = std::fs::read(&base).unwrap();
        let err = merge_memory_files(&base, &[good, short.clone()]).unwrap_err();
        assert!(err.is_user_error());
        let text = err.to_string();
        assert!(
            text.contains("32768 bytes") && text.contains("65536"),
            "{text}"
        );
        assert!(text.contains(&*short.to_string_lossy()), "{text}");
        assert_eq!(std::fs::read(&base).unwrap(), before, "the base changed");
        let missing = dir.0.join("missing");
        let err = merge_memory_files(&base, &[missing]).unwrap_err();
        assert!(err.is_user_error() && err.to_string().contains("missing"));
    }

    #[test]
    fn data_regions_are_whole_pages_and_holes_are_skipped() {
        let dir = Dir::new("merge-regions");
        let path = dir.sparse("f", 32 * PAGE, &[(3, 9), (4, 9), (20, 0)]);
        let file = File::open(&path).unwrap();
        assert_eq!(
            data_regions(&file, 32 * PAGE).unwrap(),
            [(3 * PAGE, 5 * PAGE), (20 * PAGE, 21 * PAGE)]
        );
        let empty = dir.sparse("empty", 32 * PAGE, &[]);
        let file = File::open(&empty).unwrap();
        assert!(data_regions(&file, 32 * PAGE).unwrap().is_empty());
    }
}
