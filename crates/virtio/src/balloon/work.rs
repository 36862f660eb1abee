//! What the balloon's thread does with each queue.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use metrics::BalloonMetrics;

use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use super::discard::{discard, host_page_size};
use super::handle::{BalloonHandle, Shared};
use super::pages::{BalloonPages, GuestRange};
use super::request::{read_pfns, read_stats, reported_ranges, Chain};
use crate::{GuestMemoryMmap, VirtioInterrupt};

/// Most buffers served per wake-up. A driver never has more than a queue's
/// worth in flight; one whose used ring overlaps its avail ring makes every
/// used entry look like a new buffer, and would keep the thread (and a
/// reset waiting for it) busy forever.
const MAX_CHAINS_PER_WAKE: usize = 16 * 256;

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
    irq: Arc<dyn VirtioInterrupt>,
    /// The queues in the order the driver set them up: a role's position
    /// is the queue index its interrupts name.
    roles: Vec<QueueRole>,
    held_stats: Option<u16>,
    discard_warned: bool,
    metrics: Arc<BalloonMetrics>,
}

impl BalloonWork {
    pub fn new(
        mem: GuestMemoryMmap,
        handle: &BalloonHandle,
        irq: Arc<dyn VirtioInterrupt>,
        roles: Vec<QueueRole>,
    ) -> Self {
        let regions = mem.iter().map(|r| (r.start_addr().0, r.len()));
        let pages = BalloonPages::new(regions, host_page_size());
        BalloonWork {
            mem,
            pages,
            shared: handle.shared.clone(),
            irq,
            roles,
            held_stats: None,
            discard_warned: false,
            metrics: handle.metrics.clone(),
        }
    }

    /// What the balloon counted.
    pub fn metrics(&self) -> &BalloonMetrics {
        &self.metrics
    }

    /// Guest pages in the balloon as the device counts them.
    pub fn pages_in_balloon(&self) -> u64 {
        self.pages.count()
    }

    /// Serves the pending buffers of a `role` queue (at most
    /// [`MAX_CHAINS_PER_WAKE`]), then interrupts the guest if it asked.
    pub fn serve(&mut self, role: QueueRole, queue: &mut Queue) {
        if !queue.ready() {
            return;
        }
        let mem = self.mem.clone();
        let mut used_any = false;
        let mut budget = MAX_CHAINS_PER_WAKE;
        loop {
            // Notifications off while draining; back on, then look again
            // for buffers that slipped in between (event-index protocol).
            if queue.disable_notification(&mem).is_err() {
                return;
            }
            let mut popped = false;
            while let Some(chain) = queue.pop_descriptor_chain(&mem) {
                popped = true;
                budget -= 1;
                if let Some(head) = self.handle(role, chain, &mem) {
                    if queue.add_used(&mem, head, 0).is_err() {
                        crate::log_limit::warn_limited!(
                            "virtio-balloon: cannot add to the used ring"
                        );
                        return;
                    }
                    used_any = true;
                }
                if budget == 0 {
                    tracing::debug!(?role, "virtio-balloon: budget spent, waiting for a kick");
                    break;
                }
            }
            // Go round again only for new buffers after some progress: a
            // ring whose index runs ahead of its size pops nothing yet never
            // looks drained.
            match queue.enable_notification(&mem) {
                Ok(true) if popped && budget > 0 => continue,
                _ => break,
            }
        }
        if used_any && queue.needs_notification(&mem).unwrap_or(true) {
            self.signal(role);
        }
        if role == QueueRole::Inflate || role == QueueRole::Deflate {
            tracing::trace!(
                pages = self.pages.count(),
                actual = self.shared.actual.load(Ordering::SeqCst),
                "virtio-balloon: pages in the balloon"
            );
        }
    }

    /// Acts on one buffer; returns its head when it goes to the used ring
    /// now.
    fn handle(&mut self, role: QueueRole, chain: Chain<'_>, mem: &GuestMemoryMmap) -> Option<u16> {
        let head = chain.head_index();
        match role {
            QueueRole::Inflate => {
                self.metrics.inflate_count.inc();
                for range in self.pages.inflate(&read_pfns(chain, mem)) {
                    give_back(mem, range, &mut self.discard_warned);
                }
            }
            // Deflated pages need nothing from the host: they fault back
            // in when the guest touches them.
            QueueRole::Deflate => {
                self.metrics.deflate_count.inc();
                self.pages.deflate(&read_pfns(chain, mem));
            }
            QueueRole::Reporting => {
                self.metrics.free_page_report_count.inc();
                for (addr, len) in reported_ranges(chain) {
                    if let Some(range) = self.pages.host_pages_within(addr, len) {
                        self.metrics.free_page_report_freed.add(range.len);
                        give_back(mem, range, &mut self.discard_warned);
                    }
                }
            }
            QueueRole::Stats => {
                let stats = read_stats(chain, mem);
                tracing::debug!("virtio-balloon: guest statistics: {stats}");
                self.metrics.stats_updates_count.inc();
                *self
                    .shared
                    .stats
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(stats);
                // The device keeps the stats buffer to hand back when it
                // wants new figures; a second one sends the first back.
                return self.held_stats.replace(head);
            }
        }
        Some(head)
    }

    /// The head of the stats buffer the device holds, if any: the driver
    /// waits for it back before its next report.
    pub fn held_stats(&self) -> Option<u16> {
        self.held_stats
    }

    /// Holds the stats buffer `head` as a saved device did; the caller
    /// checked it against the stats queue's size.
    pub fn hold_stats(&mut self, head: Option<u16>) {
        self.held_stats = head;
    }

    /// Hands the held stats buffer back, which asks the guest to refill
    /// it with fresh statistics.
    pub fn request_stats(&mut self, queue: &mut Queue) {
        let Some(head) = self.held_stats.take() else {
            return;
        };
        if queue.add_used(&self.mem, head, 0).is_err() {
            crate::log_limit::warn_limited!("virtio-balloon: cannot add to the stats used ring");
            return;
        }
        if queue.needs_notification(&self.mem).unwrap_or(true) {
            self.signal(QueueRole::Stats);
        }
    }

    fn signal(&self, role: QueueRole) {
        if let Some(index) = self.roles.iter().position(|&r| r == role) {
            self.irq.signal_used_queue(index);
        }
    }
}

/// Gives `range` back to the host; a failure is logged once (the guest
/// keeps working, the host just keeps the memory).
fn give_back(mem: &GuestMemoryMmap, range: GuestRange, warned: &mut bool) {
    if let Err(e) = discard(mem, range) {
        if !*warned {
            crate::log_limit::warn_limited!(
                "virtio-balloon: cannot give guest memory back to the host: {e}"
            );
            *warned = true;
        }
    }
}

#[cfg(test)]
#[path = "work_tests.rs"]
mod tests;
