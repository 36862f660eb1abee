//! What the device's worker does when it wakes: guest packets from the
//! transmit queue go to the muxer, the muxer's packets go into the
//! guest's receive buffers.

use std::io::{Read, Write};
use std::sync::Arc;

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};

use super::muxer::{Muxer, Watch};
use super::packet::{Header, Op, HEADER_SIZE};
use crate::{GuestMemoryMmap, IrqTrigger, Wake};

/// Queue indexes (virtio 1.2, section 5.10.2).
pub const RX_QUEUE: usize = 0;
pub const TX_QUEUE: usize = 1;
pub const EVENT_QUEUE: usize = 2;

/// The queues and the muxer, as the worker owns them. Public for the fuzz
/// targets: everything in the queues is guest input.
pub struct QueueHandler {
    mem: GuestMemoryMmap,
    irq: Arc<IrqTrigger>,
    rx: Queue,
    tx: Queue,
    muxer: Muxer,
    guest_cid: u64,
    /// One packet's payload on its way from guest memory to the muxer.
    payload: Vec<u8>,
}

impl QueueHandler {
    pub fn new(
        muxer: Muxer,
        guest_cid: u64,
        mem: GuestMemoryMmap,
        irq: Arc<IrqTrigger>,
        rx: Queue,
        tx: Queue,
    ) -> QueueHandler {
        QueueHandler {
            mem,
            irq,
            rx,
            tx,
            muxer,
            guest_cid,
            payload: Vec::new(),
        }
    }

    pub fn muxer(&self) -> &Muxer {
        &self.muxer
    }

    /// Serves whatever woke the worker, then both queues until neither
    /// can move.
    pub fn on_wake(&mut self, wake: Wake, w: &dyn Watch) {
        if let Wake::Source(index) = wake {
            self.muxer.on_source(index, w);
        }
        // Kicks on any queue come down to the same work; the event queue
        // is never used (no transport resets happen).
        loop {
            let stalled = self.process_tx(w);
            let delivered = self.process_rx(w);
            // A stalled transmit queue waited for room that delivering
            // RSTs made.
            if !(stalled && delivered) {
                break;
            }
        }
    }

    /// Hands every guest packet to the muxer; true if it stopped because
    /// answers have no room yet.
    fn process_tx(&mut self, w: &dyn Watch) -> bool {
        let mut used = false;
        let mut stalled = false;
        loop {
            if self.tx.disable_notification(&self.mem).is_err() {
                break;
            }
            while self.muxer.can_take_tx() {
                let Some(chain) = self.tx.pop_descriptor_chain(&self.mem) else {
                    break;
                };
                let head = chain.head_index();
                handle_tx(
                    &mut self.muxer,
                    &mut self.payload,
                    self.guest_cid,
                    chain,
                    &self.mem,
                    w,
                );
                used = true;
                if self.tx.add_used(&self.mem, head, 0).is_err() {
                    tracing::warn!("virtio-vsock: cannot add to the transmit used ring");
                    return true;
                }
            }
            if !self.muxer.can_take_tx() {
                stalled = true;
                break;
            }
            match self.tx.enable_notification(&self.mem) {
                Ok(true) => continue,
                _ => break,
            }
        }
        if stalled {
            // Kicks meanwhile change nothing; delivering RSTs resumes us.
            let _ = self.tx.enable_notification(&self.mem);
        }
        if used && self.tx.needs_notification(&self.mem).unwrap_or(true) {
            self.irq.signal_used_queue();
        }
        stalled
    }

    /// Fills receive buffers while the muxer has packets; true if any was
    /// delivered.
    fn process_rx(&mut self, w: &dyn Watch) -> bool {
        let mut used = false;
        while self.muxer.has_rx() {
            let Some(chain) = self.rx.pop_descriptor_chain(&self.mem) else {
                // Out of buffers: ask for a kick when the guest adds some.
                match self.rx.enable_notification(&self.mem) {
                    Ok(true) => continue,
                    _ => break,
                }
            };
            let head = chain.head_index();
            let len = match chain.writer(&self.mem) {
                Ok(mut writer) if writer.available_bytes() >= HEADER_SIZE => {
                    let room = writer.available_bytes() - HEADER_SIZE;
                    let Some((header, payload)) = self.muxer.next_rx(room, w) else {
                        // Nothing after all: the buffer stays the guest's.
                        self.rx.go_to_previous_position();
                        break;
                    };
                    let ok = writer.write_all(&header.to_bytes()).is_ok()
                        && writer.write_all(payload).is_ok();
                    if ok {
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
            if self.rx.add_used(&self.mem, head, len).is_err() {
                tracing::warn!("virtio-vsock: cannot add to the receive used ring");
                break;
            }
        }
        if used && self.rx.needs_notification(&self.mem).unwrap_or(true) {
            self.irq.signal_used_queue();
        }
        used
    }
}

/// Reads one guest packet and hands it to the muxer, or drops it (with a
/// RST when its sender can be told).
fn handle_tx(
    muxer: &mut Muxer,
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
    muxer.on_guest_packet(&header, op, payload, w);
}

#[cfg(test)]
mod tests;
