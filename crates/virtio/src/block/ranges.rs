//! Discard and write-zeroes requests, done a range at a time.
//!
//! Punching a hole or zeroing a range in place costs the host little, but
//! a file system that can do neither (tmpfs, NFS) needs the zeros written:
//! up to [`MAX_RANGES`] ranges of 2 GiB in one request. Those writes go a
//! step of at most [`ZERO_STEP`] bytes at a time, each charged to the
//! rate limiter's bandwidth like any write, and the worker goes back to
//! its events between steps, so a device reset waits for one step at most
//! and drops the rest of the request.
//!
//! [`MAX_RANGES`]: super::MAX_RANGES

use std::collections::VecDeque;

use super::disk::Disk;
use super::handler::{on_disk, status};
use super::request::{Range, Request, RequestType, RANGE_UNMAP, SECTOR_SIZE};
use super::MAX_RANGE_SECTORS;

/// Most bytes of zeros written in one step: a few milliseconds of I/O.
pub const ZERO_STEP: u64 = 4 << 20;

/// One range, checked, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    offset: u64,
    len: u64,
    unmap: bool,
}

/// What is left of a discard or write-zeroes request.
#[derive(Debug)]
pub struct RangeWork {
    zeroes: bool,
    spans: VecDeque<Span>,
    /// Bytes of the first span already written as zeros, once the file
    /// system said it cannot zero that span itself.
    written: Option<u64>,
}

/// Where a request stands after [`RangeWork::run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Done, with this status byte.
    Finished(u8),
    /// More zeros to write: call `run` again (after the rate limiter's
    /// timer if the charge was refused).
    Pending,
}

impl RangeWork {
    /// Checks every range of `request` (a discard or write-zeroes) before
    /// any is carried out; on a bad one, the status byte to answer with.
    pub fn new(disk: &Disk, request: &Request) -> Result<RangeWork, u8> {
        let zeroes = request.kind == RequestType::WriteZeroes;
        let allowed = if zeroes { RANGE_UNMAP } else { 0 };
        let spans = request
            .ranges
            .iter()
            .map(|range| span(disk, range, allowed))
            .collect::<Result<VecDeque<_>, u8>>()?;
        Ok(RangeWork {
            zeroes,
            spans,
            written: None,
        })
    }

    /// Carries out ranges until the request is done or a step of written
    /// zeros has been made: each step asks `charge` for its bytes (at most
    /// `step` of them) first, and stops when refused.
    pub fn run(&mut self, disk: &Disk, step: u64, charge: impl FnOnce(u64) -> bool) -> Step {
        while let Some(&span) = self.spans.front() {
            let Some(written) = self.written else {
                let result = if self.zeroes {
                    disk.zero_in_place(span.offset, span.len, span.unmap)
                } else {
                    disk.discard(span.offset, span.len).map(|()| true)
                };
                match result {
                    Ok(true) => {
                        self.spans.pop_front();
                    }
                    Ok(false) => self.written = Some(0),
                    Err(e) => return failed(&e),
                }
                continue;
            };
            let n = (span.len - written).min(step.max(1));
            if !charge(n) {
                return Step::Pending;
            }
            // `written < span.len`, and the span is on the disk.
            if let Err(e) = disk.write_zeros(span.offset + written, n) {
                return failed(&e);
            }
            if written + n == span.len {
                self.spans.pop_front();
                self.written = None;
            } else {
                self.written = Some(written + n);
            }
            // One step per call: the worker looks at its events between.
            return if self.spans.is_empty() {
                Step::Finished(status::OK)
            } else {
                Step::Pending
            };
        }
        Step::Finished(status::OK)
    }
}

fn failed(e: &std::io::Error) -> Step {
    tracing::debug!("virtio-blk: discard or write-zeroes failed: {e}");
    Step::Finished(status::IOERR)
}

fn span(disk: &Disk, range: &Range, allowed_flags: u32) -> Result<Span, u8> {
    if range.flags & !allowed_flags != 0 {
        return Err(status::UNSUPP);
    }
    if range.sectors > MAX_RANGE_SECTORS {
        return Err(status::IOERR);
    }
    let len = u64::from(range.sectors) * SECTOR_SIZE;
    let offset = on_disk(disk, range.sector, len).ok_or(status::IOERR)?;
    Ok(Span {
        offset,
        len,
        unmap: range.flags & RANGE_UNMAP != 0,
    })
}
