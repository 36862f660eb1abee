//! What the balloon's thread does with each queue.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use super::discard::{discard, host_page_size};
use super::handle::{BalloonHandle, Shared};
use super::pages::{BalloonPages, GuestRange};
use super::request::{read_pfns, read_stats, reported_ranges};
use crate::{GuestMemoryMmap, IrqTrigger};

/// What a queue is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueRole {
    Inflate,
    Deflate,
    Stats,
    Reporting,
}

/// The worker's state: guest memory, the pages in the balloon, and the
/// stats buffer the device holds until it wants fresh statistics.
/// Public for the fuzz targets: everything in the queues is guest input.
pub struct BalloonWork {
    mem: GuestMemoryMmap,
    pages: BalloonPages,
    shared: Arc<Shared>,
    irq: Arc<IrqTrigger>,
    held_stats: Option<u16>,
    discard_warned: bool,
}

impl BalloonWork {
    pub fn new(mem: GuestMemoryMmap, handle: &BalloonHandle, irq: Arc<IrqTrigger>) -> Self {
        let regions = mem.iter().map(|r| (r.start_addr().0, r.len()));
        let pages = BalloonPages::new(regions, host_page_size());
        BalloonWork {
            mem,
            pages,
            shared: handle.shared.clone(),
            irq,
            held_stats: None,
            discard_warned: false,
        }
    }

    /// Guest pages in the balloon as the device counts them.
    pub fn pages_in_balloon(&self) -> u64 {
        self.pages.count()
    }

    /// Serves every pending buffer of a `role` queue, then interrupts the
    /// guest if it asked.
    pub fn serve(&mut self, role: QueueRole, queue: &mut Queue) {
        if !queue.ready() {
            return;
        }
        let mem = &self.mem;
        let mut used_any = false;
        loop {
            // Notifications off while draining; back on, then look again
            // for buffers that slipped in between (event-index protocol).
            if queue.disable_notification(mem).is_err() {
                return;
            }
            while let Some(chain) = queue.pop_descriptor_chain(mem) {
                let head = chain.head_index();
                let hold = match role {
                    QueueRole::Inflate => {
                        let ranges = self.pages.inflate(&read_pfns(chain, mem));
                        for range in ranges {
                            give_back(mem, range, &mut self.discard_warned);
                        }
                        false
                    }
                    QueueRole::Deflate => {
                        // Deflated pages need nothing from the host: they
                        // fault back in when the guest touches them.
                        self.pages.deflate(&read_pfns(chain, mem));
                        false
                    }
                    QueueRole::Reporting => {
                        for (addr, len) in reported_ranges(chain) {
                            if let Some(range) = self.pages.host_pages_within(addr, len) {
                                give_back(mem, range, &mut self.discard_warned);
                            }
                        }
                        false
                    }
                    QueueRole::Stats => {
                        let stats = read_stats(chain, mem);
                        tracing::debug!("virtio-balloon: guest statistics: {stats}");
                        *self
                            .shared
                            .stats
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner) = Some(stats);
                        true
                    }
                };
                // The device keeps the stats buffer to hand back when it
                // wants new figures; a second one sends the first back.
                let done = if hold {
                    self.held_stats.replace(head)
                } else {
                    Some(head)
                };
                if let Some(head) = done {
                    if queue.add_used(mem, head, 0).is_err() {
                        tracing::warn!("virtio-balloon: cannot add to the used ring");
                        return;
                    }
                    used_any = true;
                }
            }
            match queue.enable_notification(mem) {
                Ok(true) => continue,
                _ => break,
            }
        }
        if used_any && queue.needs_notification(mem).unwrap_or(true) {
            self.irq.signal_used_queue();
        }
        if role == QueueRole::Inflate || role == QueueRole::Deflate {
            tracing::trace!(
                pages = self.pages.count(),
                actual = self.shared.actual.load(Ordering::SeqCst),
                "virtio-balloon: pages in the balloon"
            );
        }
    }

    /// Hands the held stats buffer back, which asks the guest to refill
    /// it with fresh statistics.
    pub fn request_stats(&mut self, queue: &mut Queue) {
        let Some(head) = self.held_stats.take() else {
            return;
        };
        if queue.add_used(&self.mem, head, 0).is_err() {
            tracing::warn!("virtio-balloon: cannot add to the stats used ring");
            return;
        }
        if queue.needs_notification(&self.mem).unwrap_or(true) {
            self.irq.signal_used_queue();
        }
    }
}

/// Gives `range` back to the host; a failure is logged once (the guest
/// keeps working, the host just keeps the memory).
fn give_back(mem: &GuestMemoryMmap, range: GuestRange, warned: &mut bool) {
    if let Err(e) = discard(mem, range) {
        if !*warned {
            tracing::warn!("virtio-balloon: cannot give guest memory back to the host: {e}");
            *warned = true;
        }
    }
}

#[cfg(test)]
#[path = "work_tests.rs"]
mod tests;
