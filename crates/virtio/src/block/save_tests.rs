//! The queue's state for a snapshot: nothing held back, nothing half done.
#![allow(clippy::cast_possible_truncation)] // small fixed test values

use vm_memory::{Bytes, GuestAddress};

use super::request::types;
use super::tests::{
    moderated, ones_without_fallocate, open, range, request, unlimited, with_kick, Image, Rig, DATA,
};
use crate::interrupt::INT_VRING;

#[test]
fn saving_sends_the_interrupt_moderation_holds_back() {
    let image = Image::new(1 << 20);
    let mut avail_idx = 0;
    let rig = Rig::new(open(&image, ""), unlimited(), |mem, mock| {
        for i in 0..2u16 {
            let data = (DATA + u64::from(i) * 0x1000, 512);
            request(mem, mock, i * 3, types::IN, u64::from(i), data);
        }
        avail_idx = mock.avail_addr().0 + 2;
    });
    let mut rig = moderated(rig);
    for n in 1..=2u16 {
        rig.mem.write_obj(n, GuestAddress(avail_idx)).unwrap();
        rig.queue.process();
    }
    assert_eq!(rig.irq.take_status(), INT_VRING, "the first at once");
    rig.queue.process();
    assert_eq!(rig.irq.take_status(), 0, "the second held back");
    let saved = rig.queue.save();
    assert_eq!(rig.irq.take_status(), INT_VRING, "sent on the save");
    assert_eq!((saved.next_avail, saved.next_used), (2, 2));
}

#[test]
fn a_request_in_progress_is_saved_as_not_yet_taken() {
    let size = 16 << 20;
    let (_image, disk) = ones_without_fallocate(size);
    let rig = Rig::new(disk, unlimited(), |mem, mock| {
        range(mem, 0, (size / 512) as u32, 0);
        request(mem, mock, 0, types::WRITE_ZEROES, 0, (DATA, 16));
        request(mem, mock, 3, types::IN, 0, (DATA + 0x1000, 512));
    });
    let (mut rig, _kick) = with_kick(rig);
    rig.queue.process();
    assert_eq!(rig.used_count(), 0, "the zeros take more than one wake");
    let saved = rig.queue.save();
    assert_eq!(
        (saved.next_avail, saved.next_used),
        (0, 0),
        "served again from its start after a restore"
    );
    // The saved machine goes on as if nothing happened.
    for _ in 0..64 {
        rig.queue.process();
    }
    assert_eq!(rig.used_count(), 2);
    assert_eq!(rig.queue.save().next_avail, 2);
}
