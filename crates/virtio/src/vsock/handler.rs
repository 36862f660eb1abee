//! What the device's worker does when it wakes: guest packets from the
//! transmit queue go to the muxer, the muxer's packets go into the
//! guest's receive buffers.

use std::io::{Read, Write};
use std::sync::Arc;

use metrics::VsockMetrics;
use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vmm_sys_util::eventfd::EventFd;

use super::muxer::{Muxer, Watch};
use super::packet::{Header, Op, HEADER_SIZE};
use crate::{GuestMemoryMmap, SavedQueue, VirtioInterrupt, Wake};

/// Queue indexes (virtio 1.2, section 5.10.2).
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
pub const EVENT_QUEUE: usize = 2;

/// Most chains taken from each queue per wake-up. A guest can keep a
/// queue full forever (rings can even refill themselves through
/// overlapping used rings); past this the worker kicks itself and
/// returns, so its other sources and its stop signal get their turn.
pub const CHAINS_PER_WAKE: u32 = 256;

/// `virtio_vsock_event.id` of a transport reset (virtio 1.2, 5.10.6.6):
/// the driver drops its connections, reads the CID again and keeps its
/// listening sockets.
pub const EVENT_TRANSPORT_RESET: u32 = 0;
/// Bytes of `struct virtio_vsock_event { le32 id; }`.
const EVENT_SIZE: u32 = 4;

/// A queue and an eventfd that wakes the worker for it.
pub struct DeviceQueue {
    pub queue: Queue,
    pub kick: EventFd,
}

/// The queues and the muxer, as the worker owns them. Public for the fuzz
/// targets: everything in the queues is guest input.
pub struct QueueHandler {
    mem: GuestMemoryMmap,
    irq: Arc<dyn VirtioInterrupt>,
    rx: DeviceQueue,
    tx: DeviceQueue,
    /// The event queue, once the device gave it (a handler without one
    /// never sends events).
    event: Option<Queue>,
    /// The driver's connections are gone (the device was restored in a
    /// new process): a transport reset waits for an event buffer.
    reset_pending: bool,
    muxer: Muxer,
    guest_cid: u64,
    /// One packet's payload on its way from guest memory to the muxer.
    payload: Vec<u8>,
    /// The muxer's metrics, counted in here too.
    metrics: Arc<VsockMetrics>,
}

impl QueueHandler {
    pub fn new(
        muxer: Muxer,
        guest_cid: u64,
        mem: GuestMemoryMmap,
        irq: Arc<dyn VirtioInterrupt>,
        rx: DeviceQueue,
        tx: DeviceQueue,
    ) -> QueueHandler {
        QueueHandler {
            metrics: muxer.metrics().clone(),
            mem,
            irq,
            rx,
            tx,
            event: None,
            reset_pending: false,
            muxer,
            guest_cid,
            payload: Vec::new(),
        }
    }

    /// Serves the event queue too; with `reset_pending`, tells the driver
    /// of a transport reset as soon as it has an event buffer posted.
    pub fn with_event_queue(mut self, queue: Queue, reset_pending: bool) -> QueueHandler {
        self.event = Some(queue);
        self.reset_pending = reset_pending;
        self
    }

    /// Where the queues stand (rx, tx and the event queue if served), for
    /// a snapshot of the paused machine. Every chain taken is answered
    /// within its wake, so the positions are exact; the connections are
    /// not saved (their host sockets end with the process).
    pub fn save(&self) -> Vec<SavedQueue> {
        let mut queues = vec![
            SavedQueue::from(&self.rx.queue),
            SavedQueue::from(&self.tx.queue),
        ];
        queues.extend(self.event.as_ref().map(SavedQueue::from));
        queues
    }

    /// True while a transport reset waits for an event buffer.
    pub fn reset_pending(&self) -> bool {
        self.reset_pending
    }

    /// Sends the pending transport reset in the first event buffer that
    /// can hold it; buffers too small for it are returned empty. With no
    /// buffer posted, the driver's next one kicks the queue.
    fn send_pending_reset(&mut self) {
        if !self.reset_pending {
            return;
        }
        let Some(queue) = self.event.as_mut() else {
            return;
        };
        if !queue.ready() {
            return;
        }
        // One pass over the ring at most, whatever its indexes claim.
        for _ in 0..queue.size() {
            let Some(chain) = queue.pop_descriptor_chain(&self.mem) else {
                // Asks for a kick when a buffer comes (event index).
                let _ = queue.enable_notification(&self.mem);
                return;
            };
            let head = chain.head_index();
            let sent = match chain.writer(&self.mem) {
                Ok(mut writer) if writer.available_bytes() >= EVENT_SIZE as usize => writer
                    .write_all(&EVENT_TRANSPORT_RESET.to_le_bytes())
                    .is_ok(),
                _ => false,
            };
            let len = if sent { EVENT_SIZE } else { 0 };
            if queue.add_used(&self.mem, head, len).is_err() {
                crate::log_limit::warn_limited!("virtio-vsock: cannot add to the event used ring");
                return;
            }
            if queue.needs_notification(&self.mem).unwrap_or(true) {
                self.irq.signal_used_queue(EVENT_QUEUE);
            }
            if sent {
                tracing::debug!("virtio-vsock: transport reset sent");
                self.reset_pending = false;
                return;
            }
        }
    }

    pub fn muxer(&self) -> &Muxer {
        &self.muxer
    }

    /// Serves whatever woke the worker, then both queues until neither
    /// can move or their budgets for this wake-up are spent.
    pub fn on_wake(&mut self, wake: Wake, w: &dyn Watch) {
        // First, so the driver drops its old connections before it hears
        // of new ones.
        self.send_pending_reset();
        match wake {
            Wake::Source(index) => self.muxer.on_source(index, w),
            Wake::Queue(RX_QUEUE) => self.metrics.rx_queue_event_count.inc(),
            Wake::Queue(TX_QUEUE) => self.metrics.tx_queue_event_count.inc(),
            _ => {}
        }
        // Kicks on any queue come down to the same work; the event queue
        // carries only the transport reset of a restore.
        let mut tx_budget = CHAINS_PER_WAKE;
        let mut rx_budget = CHAINS_PER_WAKE;
        loop {
            let stalled = self.process_tx(w, &mut tx_budget);
            self.process_rx(w, &mut rx_budget);
            // A stalled transmit queue waits for room that delivering
            // RSTs makes.
            if !(stalled && self.muxer.can_take_tx() && tx_budget > 0) {
                break;
            }
        }
    }

    /// Hands guest packets to the muxer; true if it stopped because
    /// answers have no room yet.
    fn process_tx(&mut self, w: &dyn Watch, budget: &mut u32) -> bool {
        let mut used = false;
        let mut stalled = false;
        let mut idle_passes = 0;
        'passes: loop {
            if self.tx.queue.disable_notification(&self.mem).is_err() {
                break;
            }
            let mut popped = false;
            while self.muxer.can_take_tx() {
                if *budget == 0 {
                    // Notifications stay off: the kick brings us back.
                    let _ = self.tx.kick.write(1);
                    break 'passes;
                }
                let Some(chain) = self.tx.queue.pop_descriptor_chain(&self.mem) else {
                    break;
                };
                *budget -= 1;
                popped = true;
                let head = chain.head_index();
                handle_tx(
                    &mut self.muxer,
                    &self.metrics,
                    &mut self.payload,
                    self.guest_cid,
                    chain,
                    &self.mem,
                    w,
                );
                used = true;
                if self.tx.queue.add_used(&self.mem, head, 0).is_err() {
                    crate::log_limit::warn_limited!(
                        "virtio-vsock: cannot add to the transmit used ring"
                    );
                    break 'passes;
                }
            }
            if !self.muxer.can_take_tx() {
                stalled = true;
                // Kicks meanwhile change nothing; delivering RSTs resumes us.
                let _ = self.tx.queue.enable_notification(&self.mem);
                break;
            }
            idle_passes = if popped { 0 } else { idle_passes + 1 };
            if !more_after_enabling(&mut self.tx.queue, &self.mem, idle_passes) {
                break;
            }
        }
        if used && self.tx.queue.needs_notification(&self.mem).unwrap_or(true) {
            self.irq.signal_used_queue(TX_QUEUE);
        }
        stalled
    }

    /// Fills receive buffers while the muxer has packets.
    fn process_rx(&mut self, w: &dyn Watch, budget: &mut u32) {
        let mut used = false;
        let mut idle_passes = 0;
        while self.muxer.has_rx() {
            if *budget == 0 {
                let _ = self.rx.kick.write(1);
                break;
            }
            let Some(chain) = self.rx.queue.pop_descriptor_chain(&self.mem) else {
                // Out of buffers: ask for a kick when the guest adds some.
                idle_passes += 1;
                if more_after_enabling(&mut self.rx.queue, &self.mem, idle_passes) {
                    continue;
                }
                break;
            };
            *budget -= 1;
            idle_passes = 0;
            let head = chain.head_index();
            let len = match chain.writer(&self.mem) {
                Ok(mut writer) if writer.available_bytes() >= HEADER_SIZE => {
                    let room = writer.available_bytes() - HEADER_SIZE;
                    let Some((header, payload)) = self.muxer.next_rx(room, w) else {
                        if room == 0 && self.muxer.has_rx() {
                            // Data waits and a header-only buffer has no
                            // room for it: returned empty, so the buffers
                            // behind it get the data.
                            used = true;
                            if self.rx.queue.add_used(&self.mem, head, 0).is_err() {
                                crate::log_limit::warn_limited!(
                                    "virtio-vsock: cannot add to the receive used ring"
                                );
                                break;
                            }
                            continue;
                        }
                        // Nothing after all: the buffer stays the guest's.
                        self.rx.queue.go_to_previous_position();
                        break;
                    };
                    let ok = writer.write_all(&header.to_bytes()).is_ok()
                        && writer.write_all(payload).is_ok();
                    if ok {
                        self.metrics.rx_packets_count.inc();
                        self.metrics.rx_bytes_count.add(payload.len() as u64);
                        u32::try_from(writer.bytes_written()).unwrap_or(0)
                    } else {
                        0
                    }
                }
                // Unusable (read-only, outside memory, too small): it is
                // returned empty, as the guest's own fault.
                _ => 0,
            };
            used = true;
            if self.rx.queue.add_used(&self.mem, head, len).is_err() {
                crate::log_limit::warn_limited!(
                    "virtio-vsock: cannot add to the receive used ring"
                );
                break;
            }
        }
        if used && self.rx.queue.needs_notification(&self.mem).unwrap_or(true) {
            self.irq.signal_used_queue(RX_QUEUE);
        }
    }
}

/// Turns the queue's notifications back on after draining it; true if
/// the driver added buffers meanwhile (the event-index protocol's race).
/// A ring that claims more but gave nothing twice in a row has a corrupt
/// index: it is left until the next kick rather than spun on.
fn more_after_enabling(queue: &mut Queue, mem: &GuestMemoryMmap, idle_passes: u32) -> bool {
    matches!(queue.enable_notification(mem), Ok(true)) && idle_passes < 2
}

/// Reads one guest packet and hands it to the muxer, or drops it (with a
/// RST when its sender can be told).
fn handle_tx(
    muxer: &mut Muxer,
    metrics: &VsockMetrics,
    payload: &mut Vec<u8>,
    guest_cid: u64,
    chain: DescriptorChain<&GuestMemoryMmap>,
    mem: &GuestMemoryMmap,
    w: &dyn Watch,
) {
    let Ok(mut reader) = chain.reader(mem) else {
        tracing::debug!("virtio-vsock: dropped a packet: unreadable chain");
        return;
    };
    let mut bytes = [0u8; HEADER_SIZE];
    if reader.read_exact(&mut bytes).is_err() {
        tracing::debug!("virtio-vsock: dropped a packet shorter than its header");
        return;
    }
    let header = Header::from_bytes(&bytes);
    let op = match header.check_from_guest(guest_cid, reader.available_bytes()) {
        Ok(op) => op,
        Err(e) => {
            tracing::debug!("virtio-vsock: refused a packet: {e}");
            if e.deserves_rst() {
                muxer.reset_peer(&header);
            }
            return;
        }
    };
    let len = if op == Op::Rw {
        usize::try_from(header.len).unwrap_or(usize::MAX)
    } else {
        0
    };
    // Checked against the chain and MAX_PAYLOAD above.
    payload.resize(len, 0);
    if reader.read_exact(payload).is_err() {
        tracing::debug!("virtio-vsock: dropped a packet whose payload cannot be read");
        return;
    }
    metrics.tx_packets_count.inc();
    metrics.tx_bytes_count.add(payload.len() as u64);
    muxer.on_guest_packet(&header, op, payload, w);
}

#[cfg(test)]
mod tests;
