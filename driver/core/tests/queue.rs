//! TX queues: priority, packet ids, requeue, stale generations.

use bes2600_core::queue::{
    Ac, PacketIdError, Slot, SlotStore, TxQueues, TxShared, QUEUE_DEPTH, SLOTS,
};

#[test]
fn highest_priority_first_fifo_within() {
    let mut q = TxQueues::new();
    q.put(Ac::Bk, 0, 0, "bk").unwrap();
    q.put(Ac::Be, 0, 0, "be1").unwrap();
    q.put(Ac::Vo, 2, 1, "vo").unwrap();
    q.put(Ac::Be, 0, 0, "be2").unwrap();
    let mut order = Vec::new();
    while let Some((p, f)) = q.peek() {
        let f = *f;
        order.push(f);
        q.mark_pending(p.packet_id).unwrap();
        if f == "vo" {
            assert_eq!((p.ac, p.link_id, p.if_id), (Ac::Vo, 2, 1));
        }
    }
    assert_eq!(order, ["vo", "be1", "be2", "bk"]);
    assert_eq!((q.queued(), q.pending()), (0, 4));
}

#[test]
fn a_full_queue_gives_the_frame_back() {
    let mut q = TxQueues::new();
    for i in 0..QUEUE_DEPTH {
        q.put(Ac::Be, 0, 0, i).unwrap();
    }
    assert_eq!(q.put(Ac::Be, 0, 0, 999), Err(999));
    assert!(
        q.put(Ac::Vi, 0, 0, 1000).is_ok(),
        "other ACs have their own depth"
    );
}

/// `free_in` counts what a put would still take: queued and pending
/// frames both hold a slot until their confirm (the driver stops the
/// mac80211 queue at 0 and wakes it again from this count).
#[test]
fn free_slots_are_neither_queued_nor_pending() {
    let mut q = TxQueues::new();
    assert_eq!(q.free_in(Ac::Be), QUEUE_DEPTH);
    q.put(Ac::Be, 0, 0, 1).unwrap();
    q.put(Ac::Be, 0, 0, 2).unwrap();
    let (p, _) = q.peek().unwrap();
    q.mark_pending(p.packet_id).unwrap();
    assert_eq!(
        q.free_in(Ac::Be),
        QUEUE_DEPTH - 2,
        "one queued, one pending"
    );
    assert_eq!(q.free_in(Ac::Vo), QUEUE_DEPTH);
    q.confirm(p.packet_id).unwrap();
    assert_eq!(q.free_in(Ac::Be), QUEUE_DEPTH - 1);
    while q.put(Ac::Be, 0, 0, 3).is_ok() {}
    assert_eq!(q.free_in(Ac::Be), 0);
}

#[test]
fn confirm_takes_the_frame_once() {
    let mut q = TxQueues::new();
    q.put(Ac::Be, 0, 0, "a").unwrap();
    let (p, _) = q.peek().unwrap();
    assert_eq!(
        q.confirm(p.packet_id),
        Err(PacketIdError::NotPending(p.packet_id))
    );
    q.mark_pending(p.packet_id).unwrap();
    assert_eq!(q.confirm(p.packet_id).unwrap().frame, "a");
    assert!(matches!(
        q.confirm(p.packet_id),
        Err(PacketIdError::NotPending(_))
    ));
}

#[test]
fn requeue_makes_the_old_id_stale() {
    let mut q = TxQueues::new();
    q.put(Ac::Be, 0, 0, "a").unwrap();
    q.put(Ac::Be, 0, 0, "b").unwrap();
    let (p, _) = q.peek().unwrap();
    q.mark_pending(p.packet_id).unwrap();
    q.requeue(p.packet_id).unwrap();
    // back at the head, under a new id
    let (p2, f) = q.peek().unwrap();
    assert_eq!(*f, "a");
    assert_ne!(p2.packet_id, p.packet_id);
    assert_eq!(
        q.confirm(p.packet_id),
        Err(PacketIdError::Stale(p.packet_id))
    );
}

#[test]
fn reset_requeues_everything_pending_and_stales_old_ids() {
    let mut q = TxQueues::new();
    let mut ids = Vec::new();
    for f in ["a", "b", "c"] {
        q.put(Ac::Vi, 0, 0, f).unwrap();
        let (p, _) = q.peek().unwrap();
        q.mark_pending(p.packet_id).unwrap();
        ids.push(p.packet_id);
    }
    assert_eq!(q.requeue_all_pending(), 3);
    assert_eq!((q.queued(), q.pending()), (3, 0));
    for id in ids {
        assert_eq!(q.confirm(id), Err(PacketIdError::Stale(id)));
    }
    assert!(matches!(
        q.confirm(0x00ff_0000),
        Err(PacketIdError::Malformed(_))
    ));
}

/// Drives a `TxShared` through puts, sends, confirms and a command.
fn exercise<S: SlotStore<Box<u8>>>(s: &mut TxShared<Box<u8>, S>) -> Vec<u32> {
    let mut ids = Vec::new();
    for i in 0..5u8 {
        s.queues
            .put(
                Ac::from_index(usize::from(i % 4)).unwrap(),
                0,
                0,
                Box::new(i),
            )
            .unwrap();
    }
    while let Some((p, _)) = s.queues.peek() {
        ids.push(p.packet_id);
        s.queues.mark_pending(p.packet_id).unwrap();
    }
    for &id in &ids {
        s.queues.confirm(id).unwrap();
    }
    s.cmd
        .put(&bes2600_core::wsm::Request::ReadMib { mib_id: 1 }, 0)
        .unwrap();
    ids
}

#[test]
fn tx_shared_over_heap_slots_behaves_as_the_inline_one() {
    // The module fills a heap vector slot by slot instead of building the
    // 9 KiB of slots on its stack (queue.rs, "Initialisation in place").
    let slots: Vec<Slot<Box<u8>>> = (0..SLOTS).map(|_| Slot::default()).collect();
    let mut heap = TxShared::with_slots(slots).unwrap();
    let mut inline: Box<TxShared<Box<u8>>> = Box::default();
    assert_eq!(exercise(&mut heap), exercise(&mut inline));
    heap.clear();
    assert_eq!((heap.queues.queued(), heap.queues.pending()), (0, 0));
    assert!(heap.cmd.is_empty());
    // One slot short is refused and handed back.
    let short: Vec<Slot<Box<u8>>> = (0..SLOTS - 1).map(|_| Slot::default()).collect();
    assert_eq!(TxShared::with_slots(short).unwrap_err().len(), SLOTS - 1);
}
