//! A guest's serial console as the daemon serves it. Input goes through a
//! FIFO, `STATE/guests/NAME/console.in`, that the VMM has as its stdin:
//! the VMM holds it open for reading and writing, so it never sees an end
//! of input while nobody writes, and a daemon started later writes into
//! the same FIFO. Output is the console log the VMM writes itself; the
//! daemon only reads it, from any offset, so that clients can follow it.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use api::StatusCode;

use crate::daemon::Daemon;
use crate::ManagerError;

/// Most log bytes one offset read returns: a client reads on from
/// `next_offset`. Small enough that its JSON (control characters escaped)
/// stays well under what the client reads of an answer.
pub const MAX_LOG_CHUNK: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("guest {name:?}'s console input is full: the guest is not reading its serial port (paused, or busy); try again")]
    InputFull { name: String },
    #[error("guest {name:?} has no console input: its VMM was started by a pointsman without one; restart the guest")]
    NoInput { name: String },
    #[error("guest {name:?}'s VMM no longer reads its console input: it is ending")]
    NotReading { name: String },
    #[error("query {0:?}: expected offset=N (a byte offset into the console log)")]
    BadQuery(String),
    #[error("cannot {what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ConsoleError {
    /// The HTTP status the daemon answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            // A passing state: the same request may work a moment later.
            ConsoleError::InputFull { .. } => StatusCode::ServiceUnavailable,
            ConsoleError::Io { .. } => StatusCode::InternalServerError,
            _ => StatusCode::BadRequest,
        }
    }

    fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| ConsoleError::Io { what, path, source }
    }
}

/// A guest's console files, and whether its VMM runs.
#[derive(Clone, Debug)]
pub struct ConsoleFiles {
    pub log: PathBuf,
    pub input: PathBuf,
    /// Checked before the log is read: a log read while this is false is
    /// whole.
    pub live: bool,
}

/// Makes the input FIFO (owner-only); one left by an earlier run of the
/// guest is kept.
pub fn make_input_fifo(path: &Path) -> Result<(), ConsoleError> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| ConsoleError::io("make the FIFO", path)(e.into()))?;
    // SAFETY: mkfifo reads the NUL-terminated path, which outlives the call.
    if unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) } == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    let is_fifo = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_fifo());
    if error.kind() == ErrorKind::AlreadyExists && is_fifo {
        return Ok(());
    }
    Err(ConsoleError::io("make the FIFO", path)(error))
}

/// The FIFO as the VMM's stdin: read and write, so that the VMM is always
/// one of its writers and never reads an end of input, and so that the
/// open does not wait for a writer.
pub fn open_input_for_vmm(path: &Path) -> Result<File, ConsoleError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(ConsoleError::io("open", path))
}

/// Writes what fits of `bytes` into guest `name`'s input FIFO without
/// waiting; how many bytes it took. Nothing fitting is
/// [`ConsoleError::InputFull`].
pub fn write_input(name: &str, path: &Path, bytes: &[u8]) -> Result<usize, ConsoleError> {
    // Non-blocking: the open fails (ENXIO) rather than waits if no VMM
    // reads, and a full FIFO fails a write rather than holds the daemon.
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match (e.kind(), e.raw_os_error()) {
            (ErrorKind::NotFound, _) => ConsoleError::NoInput {
                name: name.to_owned(),
            },
            (_, Some(libc::ENXIO)) => ConsoleError::NotReading {
                name: name.to_owned(),
            },
            _ => ConsoleError::io("open", path)(e),
        })?;
    let mut written = 0;
    while written < bytes.len() {
        match (&file).write(&bytes[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::BrokenPipe => {
                return Err(ConsoleError::NotReading {
                    name: name.to_owned(),
                })
            }
            Err(e) => return Err(ConsoleError::io("write to", path)(e)),
        }
    }
    if written == 0 && !bytes.is_empty() {
        return Err(ConsoleError::InputFull {
            name: name.to_owned(),
        });
    }
    Ok(written)
}

/// A piece of the console log, as `GET /vms/{name}/logs?offset=N` gives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogChunk {
    /// The bytes from `offset` to `next_offset` as text (invalid UTF-8
    /// replaced). A character is never split between two chunks.
    pub data: String,
    /// Where `data` starts: the asked offset, 0 if past the log's end
    /// (the log was emptied since: it passed its size limit), or past the
    /// rest of a character it fell in.
    pub offset: u64,
    /// Where to read on.
    pub next_offset: u64,
    /// The log's length when it was read.
    pub size: u64,
    /// Whether the guest's VMM ran just before the read: once it does not
    /// and `next_offset` is `size`, everything has been read.
    pub running: bool,
    /// Which part of the output the log holds (see
    /// [`crate::console_log::generation`]): a follower gives it back with
    /// its next offset, so that a log emptied in between is noticed.
    #[serde(default)]
    pub generation: u64,
}

impl LogChunk {
    /// True once the guest has ended and this chunk reaches its log's end.
    pub fn is_last(&self) -> bool {
        !self.running && self.next_offset >= self.size
    }
}

/// The log at `path` from `from`, at most [`MAX_LOG_CHUNK`] bytes.
/// `running`: the guest may still write, so a character cut at the end is
/// held back for the next read (once it has ended, it is given as is).
pub fn read_log(path: &Path, from: u64, running: bool) -> Result<LogChunk, ConsoleError> {
    let mut file = File::open(path).map_err(ConsoleError::io("open", path))?;
    let size = file
        .metadata()
        .map_err(ConsoleError::io("read", path))?
        .len();
    // Past the end: the daemon has emptied the log since (it passed
    // --console-log-max; see console_log.rs), so all of it is new.
    let start = if from > size { 0 } else { from };
    file.seek(SeekFrom::Start(start))
        .map_err(ConsoleError::io("read", path))?;
    let mut bytes = Vec::new();
    file.take(MAX_LOG_CHUNK)
        .read_to_end(&mut bytes)
        .map_err(ConsoleError::io("read", path))?;
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    // The VMM may have written more since the length was taken.
    let size = size.max(start.saturating_add(len));
    let reaches_end = start.saturating_add(len) >= size;
    let skip = if start > 0 {
        continuation_bytes(&bytes)
    } else {
        0
    };
    let end = if running || !reaches_end {
        complete_end(&bytes)
    } else {
        bytes.len()
    };
    let skip = skip.min(end);
    let to_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok(LogChunk {
        data: String::from_utf8_lossy(&bytes[skip..end]).into_owned(),
        offset: start.saturating_add(to_u64(skip)),
        next_offset: start.saturating_add(to_u64(end)),
        size,
        running,
        generation: 0,
    })
}

/// How many bytes at the start of `bytes` are the rest of a character
/// that began before them (at most 3, as UTF-8 has).
fn continuation_bytes(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take(3)
        .take_while(|&&b| b & 0xC0 == 0x80)
        .count()
}

/// The length of `bytes` without a character cut at its end.
fn complete_end(bytes: &[u8]) -> usize {
    let len = bytes.len();
    for back in 1..=len.min(4) {
        let byte = bytes[len - back];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        // Its lead byte: how long the character is.
        let width = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if width > back { len - back } else { len };
    }
    len
}

/// Where a `GET /vms/{name}/logs` query asks to read from: `offset=N`,
/// and the generation the client read last (`&generation=G`), if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogQuery {
    pub offset: u64,
    pub generation: Option<u64>,
}

/// The query of a `GET /vms/{name}/logs`; `None` without one (the plain
/// request: the log's end).
pub fn offset_query(query: Option<&str>) -> Result<Option<LogQuery>, ConsoleError> {
    let Some(query) = query else {
        return Ok(None);
    };
    let bad = || ConsoleError::BadQuery(query.to_owned());
    let (offset, generation) = match query.split_once('&') {
        Some((offset, generation)) => (offset, Some(generation)),
        None => (query, None),
    };
    let number = |text: &str, key: &str| -> Result<u64, ConsoleError> {
        text.strip_prefix(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(bad)
    };
    Ok(Some(LogQuery {
        offset: number(offset, "offset=")?,
        generation: generation.map(|g| number(g, "generation=")).transpose()?,
    }))
}

/// `GET /vms/{name}/logs?offset=N[&generation=G]`. A client that read
/// another generation than the log's now (the daemon emptied the log
/// since) first gets the rest of the part kept as `console.log.1`, from
/// its offset there, and is sent on to the start of the emptied log.
pub fn read_from(daemon: &mut Daemon, name: &str, query: LogQuery) -> Result<Value, ManagerError> {
    let files = daemon.console_files(name)?;
    Ok(json!(read_across(&files.log, query, files.live)?))
}

/// [`read_from`] on the log at `log`, whose guest is `live` or not.
fn read_across(log: &Path, query: LogQuery, live: bool) -> Result<LogChunk, ConsoleError> {
    let generation = crate::console_log::generation(log);
    let size = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len());
    if query.generation.is_some_and(|g| g != generation) {
        let kept = crate::console_log::previous(log);
        let mut rest = if query.offset < size(&kept) {
            read_log(&kept, query.offset, false)?
        } else {
            LogChunk {
                data: String::new(),
                offset: query.offset,
                next_offset: query.offset,
                size: 0,
                running: false,
                generation: 0,
            }
        };
        rest.next_offset = 0;
        rest.size = size(log);
        rest.running = live;
        rest.generation = generation;
        return Ok(rest);
    }
    let mut chunk = read_log(log, query.offset, live)?;
    chunk.generation = generation;
    Ok(chunk)
}

/// `PUT /vms/{name}/console`: the body, as is, to the guest's serial port.
pub fn send(daemon: &mut Daemon, name: &str, bytes: &[u8]) -> Result<Value, ManagerError> {
    let files = daemon.console_files(name)?;
    if !files.live {
        return Err(ManagerError::NotRunning(name.to_owned()));
    }
    let written = write_input(name, &files.input, bytes)?;
    Ok(json!({ "written": written }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_reads_go_on_where_the_last_one_ended() {
        let dir = crate::test_daemon::made_dir("console", "offsets");
        let log = dir.join("console.log");
        std::fs::write(&log, "one\ntwo\n").unwrap();
        let first = read_log(&log, 0, true).unwrap();
        assert_eq!(first.data, "one\ntwo\n");
        assert_eq!((first.offset, first.next_offset, first.size), (0, 8, 8));
        assert!(!first.is_last());
        let mut file = OpenOptions::new().append(true).open(&log).unwrap();
        file.write_all(b"three\n").unwrap();
        let second = read_log(&log, first.next_offset, true).unwrap();
        assert_eq!((second.data.as_str(), second.next_offset), ("three\n", 14));
        // At the end: nothing yet.
        let end = read_log(&log, 14, true).unwrap();
        assert_eq!(
            (end.data.as_str(), end.offset, end.next_offset),
            ("", 14, 14)
        );
        // Past the end: the log was emptied since, so it is all new.
        let past = read_log(&log, u64::MAX, true).unwrap();
        assert_eq!(
            (past.data.as_str(), past.offset, past.next_offset),
            (
                "one
two
three
",
                0,
                14
            )
        );
        // Ended and read to the end: the last chunk.
        let last = read_log(&log, 14, false).unwrap();
        assert!(last.is_last());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_character_is_never_split_between_chunks() {
        let dir = crate::test_daemon::made_dir("console", "utf8");
        let log = dir.join("console.log");
        // "é" is C3 A9: the guest has written only its first byte.
        std::fs::write(&log, b"caf\xC3").unwrap();
        let held = read_log(&log, 0, true).unwrap();
        assert_eq!((held.data.as_str(), held.next_offset), ("caf", 3));
        let mut file = OpenOptions::new().append(true).open(&log).unwrap();
        file.write_all(b"\xA9!").unwrap();
        let rest = read_log(&log, held.next_offset, true).unwrap();
        assert_eq!((rest.data.as_str(), rest.next_offset), ("é!", 6));
        // Starting inside a character skips its rest.
        let inside = read_log(&log, 4, true).unwrap();
        assert_eq!((inside.data.as_str(), inside.offset), ("!", 5));
        // A guest that ended on a cut character: given as is, and done.
        std::fs::write(&log, b"x\xE2\x82").unwrap();
        let ended = read_log(&log, 0, false).unwrap();
        assert_eq!(ended.data, "x\u{FFFD}");
        assert!(ended.is_last());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_big_log_comes_in_chunks() {
        let dir = crate::test_daemon::made_dir("console", "chunks");
        let log = dir.join("console.log");
        // Two bytes each: twice a chunk.
        let big = "é".repeat(usize::try_from(MAX_LOG_CHUNK).unwrap());
        std::fs::write(&log, &big).unwrap();
        let mut offset = 0;
        let mut text = String::new();
        let mut reads = 0;
        loop {
            let chunk = read_log(&log, offset, false).unwrap();
            text.push_str(&chunk.data);
            offset = chunk.next_offset;
            reads += 1;
            if chunk.is_last() {
                break;
            }
        }
        assert_eq!(reads, 2);
        assert_eq!(text, big);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cut_characters_are_found() {
        assert_eq!(complete_end(b"ab"), 2);
        assert_eq!(complete_end(b"a\xC3"), 1);
        assert_eq!(complete_end(b"a\xC3\xA9"), 3);
        assert_eq!(complete_end(b"a\xF0\x9F\x98"), 1);
        assert_eq!(complete_end(b"a\xF0\x9F\x98\x80"), 5);
        assert_eq!(complete_end(b""), 0);
        // Stray continuation bytes are not a cut character.
        assert_eq!(complete_end(b"\x80\x80\x80\x80\x80"), 5);
        assert_eq!(continuation_bytes(b"\xA9\xA9\xA9\xA9x"), 3);
        assert_eq!(continuation_bytes(b"x\xA9"), 0);
    }

    #[test]
    fn a_follower_of_an_older_generation_gets_the_kept_rest_then_the_new_log() {
        let dir = crate::test_daemon::made_dir("console", "generations");
        let log = dir.join("console.log");
        let mut vmm = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        vmm.write_all(b"one\ntwo\n").unwrap();
        let at = |offset, generation| LogQuery { offset, generation };
        let first = read_across(&log, at(0, None), true).unwrap();
        assert_eq!((first.data.as_str(), first.generation), ("one\ntwo\n", 0));
        // The follower read "one\n"; then "three" came and the log was
        // emptied (kept as console.log.1), then "four" came.
        vmm.write_all(b"three\n").unwrap();
        assert!(crate::console_log::rotate_if_over(&log, 4).unwrap());
        vmm.write_all(b"four\n").unwrap();
        let rest = read_across(&log, at(4, Some(0)), true).unwrap();
        assert_eq!(rest.data, "two\nthree\n");
        assert_eq!((rest.next_offset, rest.size), (0, 5));
        let generation = rest.generation;
        assert_ne!(generation, 0);
        let new = read_across(&log, at(0, Some(generation)), true).unwrap();
        assert_eq!((new.data.as_str(), new.next_offset), ("four\n", 5));
        // One that had read all of the kept part goes straight on.
        let none = read_across(&log, at(14, Some(0)), false).unwrap();
        assert_eq!((none.data.as_str(), none.next_offset), ("", 0));
        assert!(!none.is_last(), "the new log is still to be read");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn queries_name_an_offset() {
        assert_eq!(offset_query(None).unwrap(), None);
        assert_eq!(
            offset_query(Some("offset=42")).unwrap(),
            Some(LogQuery {
                offset: 42,
                generation: None
            })
        );
        assert_eq!(
            offset_query(Some("offset=42&generation=7")).unwrap(),
            Some(LogQuery {
                offset: 42,
                generation: Some(7)
            })
        );
        for bad in [
            "",
            "offset=",
            "offset=-1",
            "from=3",
            "offset=1&x=2",
            "generation=1&offset=2",
            "offset=1&generation=",
        ] {
            assert!(offset_query(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn input_goes_through_the_fifo_without_blocking() {
        let dir = crate::test_daemon::made_dir("console", "fifo");
        let fifo = dir.join("console.in");
        assert!(matches!(
            write_input("g", &fifo, b"x"),
            Err(ConsoleError::NoInput { .. })
        ));
        make_input_fifo(&fifo).unwrap();
        // Made again (a restarted guest): kept.
        make_input_fifo(&fifo).unwrap();
        let mode = std::fs::metadata(&fifo).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        // No VMM holds it: refused at once, not waited on.
        assert!(matches!(
            write_input("g", &fifo, b"x"),
            Err(ConsoleError::NotReading { .. })
        ));
        let mut vmm = open_input_for_vmm(&fifo).unwrap();
        assert_eq!(write_input("g", &fifo, b"hi\x03\x1d\xff").unwrap(), 5);
        let mut got = [0u8; 5];
        vmm.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi\x03\x1d\xff");
        // Filled up: what fits is taken, then it is full, and nothing hangs.
        let big = vec![b'a'; 1 << 20];
        let taken = write_input("g", &fifo, &big).unwrap();
        assert!(taken > 0 && taken < big.len(), "{taken}");
        let full = write_input("g", &fifo, b"more").unwrap_err();
        assert!(matches!(full, ConsoleError::InputFull { .. }), "{full}");
        assert_eq!(full.status(), StatusCode::ServiceUnavailable);
        drop(vmm);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_non_fifo_in_the_way_is_an_error() {
        let dir = crate::test_daemon::made_dir("console", "notfifo");
        let path = dir.join("console.in");
        std::fs::write(&path, "").unwrap();
        assert!(make_input_fifo(&path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
