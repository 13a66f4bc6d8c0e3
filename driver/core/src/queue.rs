//! TX queues per access category, packet ids and pending records.
//!
//! # Lock class (lesson 3, the `pending_record_lock` splat)
//! [`TxShared`] is the one structure shared between the mac80211 TX path
//! (softirq: `wake_tx_queue` runs from a tasklet), process context (flush,
//! join work, reset) and the bh thread. In the kernel it sits behind **one**
//! spinlock taken with `spin_lock_bh` at every site, and the pending records
//! live *inside* the queues it protects: there is no second lock to nest, so
//! no SOFTIRQ-safe -> SOFTIRQ-unsafe inversion can be written. The bh reaches
//! it only through [`TxAccess::with`], i.e. one short critical section per
//! operation, never across a bus transfer.
//!
//! Packet ids follow cw1200's layout: `queue generation << 24 | queue << 16 |
//! item generation << 8 | slot`. A confirm whose generations do not match
//! the current record is stale (it predates a reset or a reuse of the slot)
//! and is rejected, never applied to the wrong frame.

#![forbid(unsafe_code)]

/// Access categories, in priority order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ac {
    Vo = 0,
    Vi = 1,
    Be = 2,
    Bk = 3,
}

impl Ac {
    pub const ALL: [Ac; 4] = [Ac::Vo, Ac::Vi, Ac::Be, Ac::Bk];
    pub fn from_index(i: usize) -> Option<Ac> {
        Ac::ALL.get(i).copied()
    }
}

/// Frames per access-category queue (queued + pending).
pub const QUEUE_DEPTH: usize = 64;
/// Largest WSM command the host queues (bytes): any message the chip
/// accepts (a 48-channel start-scan is 788 bytes, a configuration request
/// with its DPD data longer still).
pub const CMD_LEN_MAX: usize = super::wsm::MSG_LEN_MAX;

/// What the TX request (`0x0004`) carries besides the frame, decided by the
/// mac80211-facing layer from the frame's `ieee80211_tx_info` (cw1200
/// `txrx.c` `cw1200_tx_h_rate_policy`, `_ht`, `_align`; `struct wsm_tx`,
/// `wsm.h` 801-840).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxMeta {
    /// Link id stamped into the message id (bits 6-9).
    pub link_id: u8,
    /// Interface (vif) the frame belongs to.
    pub if_id: u8,
    /// Highest rate index the firmware may use (`max_tx_rate`).
    pub max_tx_rate: u8,
    /// Rate policy (a cached `WSM_MIB_ID_SET_TX_RATE_RETRY_POLICY` entry).
    pub rate_policy_index: u8,
    /// Other `flags` bits (bits 0-3).
    pub flags: u8,
    /// `expire_time` in ms (0: the queue's default lifetime).
    pub expire_time: u32,
    /// `ht_tx_parameters` (`WSM_HT_TX_MIXED` / `_GREENFIELD`, STBC).
    pub ht_tx_parameters: u32,
}

impl TxMeta {
    /// The `flags` byte of the request: rate policy index in bits 4-7
    /// (cw1200 `txrx.c`: `wsm->flags |= t->txpriv.rate_id << 4`).
    pub fn wsm_flags(&self) -> u8 {
        (self.flags & 0x0F) | (self.rate_policy_index << 4)
    }
}

/// `repr(u8)` with `Free = 0`: an all-zero slot is a free one (see
/// [`TxShared`]'s zeroed initialisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum SlotState {
    Free,
    Queued,
    Pending,
}

/// One TX slot: a frame and what it was queued with. The slots live in a
/// [`SlotStore`] the caller provides, so the queues themselves stay small.
#[derive(Debug)]
pub struct Slot<F> {
    state: SlotState,
    generation: u8,
    meta: TxMeta,
    frame: Option<F>,
}

impl<F> Default for Slot<F> {
    fn default() -> Self {
        Slot {
            state: SlotState::Free,
            generation: 0,
            meta: TxMeta::default(),
            frame: None,
        }
    }
}

/// Slots [`TxQueues`] needs: [`QUEUE_DEPTH`] per access category.
pub const SLOTS: usize = 4 * QUEUE_DEPTH;

/// Where [`TxQueues`] keeps its [`SLOTS`] slots: [`InlineSlots`] on the
/// host, a heap vector in the kernel (filled slot by slot, so the
/// 9 KiB of slots is never built on a 16 KiB kernel stack).
pub trait SlotStore<F>: core::ops::DerefMut<Target = [Slot<F>]> {}
impl<F, T: core::ops::DerefMut<Target = [Slot<F>]>> SlotStore<F> for T {}

/// [`SLOTS`] slots held inline.
#[derive(Debug)]
pub struct InlineSlots<F>([Slot<F>; SLOTS]);

impl<F> Default for InlineSlots<F> {
    fn default() -> Self {
        InlineSlots(core::array::from_fn(|_| Slot::default()))
    }
}

impl<F> core::ops::Deref for InlineSlots<F> {
    type Target = [Slot<F>];
    fn deref(&self) -> &[Slot<F>] {
        &self.0
    }
}

impl<F> core::ops::DerefMut for InlineSlots<F> {
    fn deref_mut(&mut self) -> &mut [Slot<F>] {
        &mut self.0
    }
}

/// Why a packet id was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PacketIdError {
    /// Queue index or slot out of range: not an id we made.
    Malformed(u32),
    /// Generations do not match: a confirm from before a reset or reuse.
    Stale(u32),
    /// The slot is not waiting for a confirm.
    NotPending(u32),
}

/// A frame taken out of the queues with the metadata it was queued with.
#[derive(Debug, PartialEq, Eq)]
pub struct Done<F> {
    pub frame: F,
    pub ac: Ac,
    pub link_id: u8,
    pub if_id: u8,
}

/// A frame chosen for transmission (still owned by the queue, `Pending`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Picked {
    pub packet_id: u32,
    pub ac: Ac,
    pub link_id: u8,
    pub if_id: u8,
    pub meta: TxMeta,
}

/// One access-category queue: a FIFO ring of queued slot indexes (its
/// slots are `TxQueues::slots[ac * QUEUE_DEPTH..][..QUEUE_DEPTH]`).
#[derive(Debug)]
struct AcQueue {
    fifo: [u8; QUEUE_DEPTH],
    head: usize,
    len: usize,
    pending: usize,
}

impl AcQueue {
    const fn new() -> Self {
        AcQueue {
            fifo: [0; QUEUE_DEPTH],
            head: 0,
            len: 0,
            pending: 0,
        }
    }
    fn push_back(&mut self, slot: usize) {
        self.fifo[(self.head + self.len) % QUEUE_DEPTH] = slot as u8;
        self.len += 1;
    }
    fn push_front(&mut self, slot: usize) {
        self.head = (self.head + QUEUE_DEPTH - 1) % QUEUE_DEPTH;
        self.fifo[self.head] = slot as u8;
        self.len += 1;
    }
    fn front(&self) -> Option<usize> {
        (self.len > 0).then(|| usize::from(self.fifo[self.head]))
    }
    fn pop_front(&mut self) -> Option<usize> {
        let s = self.front()?;
        self.head = (self.head + 1) % QUEUE_DEPTH;
        self.len -= 1;
        Some(s)
    }
}

/// The per-AC TX queues. See the module docs for the lock class.
#[derive(Debug)]
pub struct TxQueues<F, S = InlineSlots<F>> {
    queues: [AcQueue; 4],
    slots: S,
    generation: u8,
    _frames: core::marker::PhantomData<F>,
}

impl<F> Default for TxQueues<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F> TxQueues<F> {
    pub fn new() -> Self {
        TxQueues::with_slots(InlineSlots::default()).unwrap_or_else(|_| unreachable!())
    }
}

impl<F, S: SlotStore<F>> TxQueues<F, S> {
    /// Queues over `slots`, which must hold exactly [`SLOTS`] free slots
    /// (else they are given back).
    pub fn with_slots(slots: S) -> Result<Self, S> {
        if slots.len() != SLOTS
            || slots
                .iter()
                .any(|s| s.state != SlotState::Free || s.frame.is_some())
        {
            return Err(slots);
        }
        Ok(TxQueues {
            queues: [
                AcQueue::new(),
                AcQueue::new(),
                AcQueue::new(),
                AcQueue::new(),
            ],
            slots,
            generation: 0,
            _frames: core::marker::PhantomData,
        })
    }

    fn ac_slots(&mut self, ai: usize) -> (&mut AcQueue, &mut [Slot<F>]) {
        (
            &mut self.queues[ai],
            &mut self.slots[ai * QUEUE_DEPTH..(ai + 1) * QUEUE_DEPTH],
        )
    }

    /// Queues a frame; gives it back when the queue is full (the caller
    /// stops the mac80211 queue).
    pub fn put(&mut self, ac: Ac, link_id: u8, if_id: u8, frame: F) -> Result<(), F> {
        self.put_with(
            ac,
            TxMeta {
                link_id,
                if_id,
                ..TxMeta::default()
            },
            frame,
        )
    }

    /// Queues a frame with its TX request metadata.
    pub fn put_with(&mut self, ac: Ac, meta: TxMeta, frame: F) -> Result<(), F> {
        let (q, sl) = self.ac_slots(ac as usize);
        let Some(i) = sl.iter().position(|s| s.state == SlotState::Free) else {
            return Err(frame);
        };
        let s = &mut sl[i];
        s.state = SlotState::Queued;
        s.generation = s.generation.wrapping_add(1);
        s.meta = meta;
        s.frame = Some(frame);
        q.push_back(i);
        Ok(())
    }

    /// Frames waiting to be sent.
    pub fn queued(&self) -> usize {
        self.queues.iter().map(|q| q.len).sum()
    }
    /// Frames sent and waiting for a confirm.
    pub fn pending(&self) -> usize {
        self.queues.iter().map(|q| q.pending).sum()
    }
    pub fn queued_in(&self, ac: Ac) -> usize {
        self.queues[ac as usize].len
    }
    /// Slots of `ac` that take a frame now (neither queued nor pending).
    pub fn free_in(&self, ac: Ac) -> usize {
        let a = ac as usize;
        self.slots[a * QUEUE_DEPTH..(a + 1) * QUEUE_DEPTH]
            .iter()
            .filter(|s| s.state == SlotState::Free)
            .count()
    }

    fn packet_id(&self, ac: usize, slot: usize) -> u32 {
        (u32::from(self.generation) << 24)
            | ((ac as u32) << 16)
            | (u32::from(self.slots[ac * QUEUE_DEPTH + slot].generation) << 8)
            | slot as u32
    }

    /// The next frame to send (highest-priority AC first, FIFO within it),
    /// without taking it.
    pub fn peek(&self) -> Option<(Picked, &F)> {
        for (ai, q) in self.queues.iter().enumerate() {
            if let Some(slot) = q.front() {
                let s = &self.slots[ai * QUEUE_DEPTH + slot];
                let frame = s.frame.as_ref()?;
                let picked = Picked {
                    packet_id: self.packet_id(ai, slot),
                    ac: Ac::from_index(ai)?,
                    link_id: s.meta.link_id,
                    if_id: s.meta.if_id,
                    meta: s.meta,
                };
                return Some((picked, frame));
            }
        }
        None
    }

    /// Marks the frame returned by [`TxQueues::peek`] as sent (pending).
    pub fn mark_pending(&mut self, packet_id: u32) -> Result<(), PacketIdError> {
        let (ai, slot) = self.locate(packet_id)?;
        let (q, sl) = self.ac_slots(ai);
        if q.front() != Some(slot) || sl[slot].state != SlotState::Queued {
            return Err(PacketIdError::NotPending(packet_id));
        }
        q.pop_front();
        sl[slot].state = SlotState::Pending;
        q.pending += 1;
        Ok(())
    }

    fn locate(&self, packet_id: u32) -> Result<(usize, usize), PacketIdError> {
        let qgen = (packet_id >> 24) as u8;
        let ai = ((packet_id >> 16) & 0xff) as usize;
        let igen = ((packet_id >> 8) & 0xff) as u8;
        let slot = (packet_id & 0xff) as usize;
        if ai >= 4 || slot >= QUEUE_DEPTH {
            return Err(PacketIdError::Malformed(packet_id));
        }
        if qgen != self.generation || self.slots[ai * QUEUE_DEPTH + slot].generation != igen {
            return Err(PacketIdError::Stale(packet_id));
        }
        Ok((ai, slot))
    }

    /// A confirm for `packet_id`: the frame leaves the queue.
    pub fn confirm(&mut self, packet_id: u32) -> Result<Done<F>, PacketIdError> {
        let (ai, slot) = self.locate(packet_id)?;
        let (q, sl) = self.ac_slots(ai);
        let s = &mut sl[slot];
        if s.state != SlotState::Pending {
            return Err(PacketIdError::NotPending(packet_id));
        }
        let frame = s.frame.take().ok_or(PacketIdError::NotPending(packet_id))?;
        s.state = SlotState::Free;
        q.pending -= 1;
        Ok(Done {
            frame,
            ac: Ac::from_index(ai).unwrap_or(Ac::Be),
            link_id: s.meta.link_id,
            if_id: s.meta.if_id,
        })
    }

    /// Looks a pending record up without changing it (interface of a confirm).
    pub fn pending_if(&self, packet_id: u32) -> Result<u8, PacketIdError> {
        let (ai, slot) = self.locate(packet_id)?;
        let s = &self.slots[ai * QUEUE_DEPTH + slot];
        if s.state != SlotState::Pending {
            return Err(PacketIdError::NotPending(packet_id));
        }
        Ok(s.meta.if_id)
    }

    /// Puts a pending frame back at the head of its queue (a `REQUEUE`
    /// status, or a failed write). Its item generation advances, so a late
    /// confirm for the old id is stale.
    pub fn requeue(&mut self, packet_id: u32) -> Result<(), PacketIdError> {
        let (ai, slot) = self.locate(packet_id)?;
        let (q, sl) = self.ac_slots(ai);
        if sl[slot].state != SlotState::Pending {
            return Err(PacketIdError::NotPending(packet_id));
        }
        sl[slot].state = SlotState::Queued;
        sl[slot].generation = sl[slot].generation.wrapping_add(1);
        q.pending -= 1;
        q.push_front(slot);
        Ok(())
    }

    /// Reset path: every pending frame goes back to its queue and the queue
    /// generation advances, so confirms from the old firmware run are stale.
    /// Returns how many frames were requeued.
    pub fn requeue_all_pending(&mut self) -> usize {
        let mut n = 0;
        for ai in 0..4 {
            let (q, sl) = self.ac_slots(ai);
            for slot in (0..QUEUE_DEPTH).rev() {
                if sl[slot].state == SlotState::Pending {
                    sl[slot].state = SlotState::Queued;
                    q.pending -= 1;
                    q.push_front(slot);
                    n += 1;
                }
            }
        }
        self.generation = self.generation.wrapping_add(1);
        n
    }

    /// Takes every frame out (interface down). Calls `f` for each.
    pub fn drain(&mut self, mut f: impl FnMut(Done<F>)) {
        for ai in 0..4 {
            let (q, sl) = self.ac_slots(ai);
            for s in sl.iter_mut() {
                if let Some(frame) = s.frame.take() {
                    f(Done {
                        frame,
                        ac: Ac::from_index(ai).unwrap_or(Ac::Be),
                        link_id: s.meta.link_id,
                        if_id: s.meta.if_id,
                    });
                }
                s.state = SlotState::Free;
            }
            q.head = 0;
            q.len = 0;
            q.pending = 0;
        }
        self.generation = self.generation.wrapping_add(1);
    }
}

/// A WSM command waiting for the bh to send it (cw1200 `wsm_cmd`): one at a
/// time, written by process context, taken by the bh. Same lock as the queues.
#[derive(Debug)]
pub struct CmdSlot {
    buf: [u8; CMD_LEN_MAX],
    len: usize,
    if_id: u8,
}

impl Default for CmdSlot {
    fn default() -> Self {
        CmdSlot {
            buf: [0; CMD_LEN_MAX],
            len: 0,
            if_id: 0,
        }
    }
}

/// Why a command could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdError {
    /// A command is already waiting or in flight.
    Busy,
    Encode(super::wsm::WsmError),
}

impl CmdSlot {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn put(&mut self, req: &super::wsm::Request<'_>, if_id: u8) -> Result<(), CmdError> {
        if self.len != 0 {
            return Err(CmdError::Busy);
        }
        let n = req.encode(&mut self.buf).map_err(CmdError::Encode)?;
        self.len = n;
        self.if_id = if_id;
        Ok(())
    }
    /// Queues an already encoded request (trace replay). Its header must
    /// be valid and its length within [`CMD_LEN_MAX`].
    pub fn put_raw(&mut self, msg: &[u8], if_id: u8) -> Result<(), CmdError> {
        if self.len != 0 {
            return Err(CmdError::Busy);
        }
        let (len, _) = super::wsm::parse_header(msg).map_err(CmdError::Encode)?;
        if len > CMD_LEN_MAX {
            return Err(CmdError::Encode(super::wsm::WsmError::NoRoom {
                need: len,
                have: CMD_LEN_MAX,
            }));
        }
        self.buf[..len].copy_from_slice(&msg[..len]);
        self.len = len;
        self.if_id = if_id;
        Ok(())
    }
    /// The waiting command's bytes and interface.
    pub fn peek(&self) -> Option<(&[u8], u8)> {
        (self.len != 0).then(|| (&self.buf[..self.len], self.if_id))
    }
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// What process context, softirq and the bh share (one `_bh` spinlock in
/// the kernel).
///
/// # Initialisation in place
/// The slots (9 KiB: [`SLOTS`] of them) are the caller's [`SlotStore`]:
/// the kernel module fills a heap vector slot by slot and hands it to
/// [`TxShared::with_slots`], so what is built by value is the small rest
/// (the queues' rings and the [`CMD_LEN_MAX`] command buffer, about 2 KiB),
/// with no `unsafe` on either side. [`TxShared::clear`] empties it in place.
#[derive(Debug)]
pub struct TxShared<F, S = InlineSlots<F>> {
    pub queues: TxQueues<F, S>,
    pub cmd: CmdSlot,
}

impl<F> Default for TxShared<F> {
    fn default() -> Self {
        TxShared {
            queues: TxQueues::new(),
            cmd: CmdSlot::default(),
        }
    }
}

impl<F, S: SlotStore<F>> TxShared<F, S> {
    /// Shared TX state over `slots` ([`SLOTS`] free slots, else given back).
    pub fn with_slots(slots: S) -> Result<Self, S> {
        Ok(TxShared {
            queues: TxQueues::with_slots(slots)?,
            cmd: CmdSlot::default(),
        })
    }

    /// Empties everything in place (interface down): frames are dropped,
    /// the command cleared, generations advanced so old ids are stale.
    pub fn clear(&mut self) {
        self.queues.drain(drop);
        self.cmd.clear();
    }
}

/// How the bh reaches [`TxShared`]: one short critical section per call.
/// The kernel implements it with `spin_lock_bh`; the host with `&mut`.
pub trait TxAccess<F, S: SlotStore<F> = InlineSlots<F>> {
    fn with<R>(&mut self, f: impl FnOnce(&mut TxShared<F, S>) -> R) -> R;
}

impl<F, S: SlotStore<F>> TxAccess<F, S> for TxShared<F, S> {
    fn with<R>(&mut self, f: impl FnOnce(&mut TxShared<F, S>) -> R) -> R {
        f(self)
    }
}
