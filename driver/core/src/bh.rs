//! The bottom half: cw1200's shape, as Patch C v3 restored it.
//!
//! - IRQ context owns nothing but an [`IrqLine`] (one atomic word). It
//!   raises a bit and tells its caller whether the bh must be woken. It
//!   never reads the bus and never touches credit or sequence state.
//! - The bh context ([`BhContext`]) alone reads the bus, extracts the batch,
//!   dispatches every message and writes TX batches. It is the single writer
//!   of the credit ledger (`hw_bufs_used`, per-interface and per-space
//!   counts), the sequence counters and the toggles: they are private fields
//!   reachable only through `&mut BhContext`, and `BhContext` is `!Sync`, so
//!   a second writer in another context does not compile (`tests/ui/`).
//! - All frames of one SDIO read reach the upper layer in one
//!   [`Upper::rx_batch`] call (later `ieee80211_rx_list` inside one
//!   bh-disabled section); there is no other RX delivery API (lesson 2).
//!
//! Time is an input (`now_ms`); the bus is the [`SdioBus`] seam.

use core::cell::Cell;
use core::marker::PhantomData;

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU32, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, Ordering};

use crate::credits::{CreditError, CreditLedger, CreditSnapshot};
use crate::queue::{PacketIdError, TxAccess};
use crate::sdio::{self, CtrlError, FrameError, TxBatch, RX_BATCH_MAX};
use crate::wsm::{self, Incoming, Kind, MsgId, RxMeta, SeqSpace, TxConfirm, MSG_LEN_MAX};

/// Bytes of the bh's RX buffer: a full batch of maximal messages.
pub const RX_BUF_LEN: usize = sdio::RX_BATCH_LEN_MAX;
/// Bytes of the bh's TX buffer (one SDIO write).
pub const TX_BUF_LEN: usize = sdio::TRANSFER_LEN_MAX;
/// Control-word reads per batch before giving up on CRC errors.
pub const CTRL_CRC_RETRY_MAX: u32 = 5;
/// Control-word reads that may show the stale toggle before the bh yields.
pub const CTRL_STALE_RETRY_MAX: u32 = 5;
/// Data reads retried after a bus CRC error (bes2600 retries 10 times).
pub const DATA_CRC_RETRY_MAX: u32 = 10;
/// RX batches handled per wake before TX gets its turn.
pub const RX_BATCHES_PER_ROUND_MAX: u32 = 4;
/// RX/TX rounds per wake (cw1200's `BH_RX_CONT_LIMIT` idea).
pub const BH_ROUNDS_MAX: u32 = 64;
/// A command without its confirm for this long means the firmware is gone
/// (cw1200 `WSM_CMD_LAST_CHANCE_TIMEOUT`, bes2600 uses 10 s).
pub const CMD_TIMEOUT_MS: u64 = 10_000;

const WAKE_RX: u32 = 1;
const WAKE_TX: u32 = 2;

/// The only state IRQ context and the TX submit path touch: pending-work
/// bits. `raise`/`kick` return `true` exactly when the caller must wake the
/// bh (the bits were clear), so wake-ups are coalesced.
#[derive(Debug)]
pub struct IrqLine {
    bits: AtomicU32,
}

impl Default for IrqLine {
    fn default() -> Self {
        Self::new()
    }
}

impl IrqLine {
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        IrqLine {
            bits: AtomicU32::new(0),
        }
    }
    #[cfg(loom)]
    pub fn new() -> Self {
        IrqLine {
            bits: AtomicU32::new(0),
        }
    }
    /// IRQ context: the chip signalled pending data.
    pub fn irq(&self) -> bool {
        self.bits.fetch_or(WAKE_RX, Ordering::Release) == 0
    }
    /// TX submit path (softirq/process): a frame or command was queued.
    pub fn kick_tx(&self) -> bool {
        self.bits.fetch_or(WAKE_TX, Ordering::Release) == 0
    }
    /// bh context: take the pending bits (clearing them).
    pub fn take(&self) -> Wake {
        let b = self.bits.swap(0, Ordering::Acquire);
        Wake {
            rx: b & WAKE_RX != 0,
            tx: b & WAKE_TX != 0,
        }
    }
}

/// Why the bh was woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Wake {
    pub rx: bool,
    pub tx: bool,
}

impl Wake {
    pub const RX: Wake = Wake {
        rx: true,
        tx: false,
    };
    pub const TX: Wake = Wake {
        rx: false,
        tx: true,
    };
    pub fn any(self) -> bool {
        self.rx || self.tx
    }
}

/// A bus transfer failure, as the SDIO layer reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// Data CRC error on the bus (`-EILSEQ`, -84): the transfer may be retried.
    Crc,
    Timeout,
    Other,
}

/// The seam to the SDIO bus (smoltcp's `phy::Device` idea).
pub trait SdioBus {
    /// Reads the 4-byte length word (with its toggle and CRC8).
    fn read_ctrl(&mut self) -> Result<[u8; 4], BusError>;
    /// Reads `buf.len()` bytes of pending batch data (one CMD53).
    fn read_data(&mut self, buf: &mut [u8]) -> Result<(), BusError>;
    /// Writes one TX batch (one CMD53), tagged with the TX toggle.
    fn write_data(&mut self, data: &[u8], toggle: bool) -> Result<(), BusError>;
}

/// The frames of one SDIO read, handed over in one call.
pub struct RxDelivery<'a> {
    buf: &'a [u8],
    frames: [(RxMeta, u16, u16); RX_BATCH_MAX],
    count: usize,
}

impl<'a> RxDelivery<'a> {
    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = (RxMeta, &'a [u8])> + '_ {
        self.frames[..self.count].iter().map(|&(meta, start, len)| {
            let s = usize::from(start);
            (meta, &self.buf[s..s + usize::from(len)])
        })
    }
}

/// Indications the upper layer acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indication<'a> {
    Started {
        input_buffers: u16,
    },
    Event {
        event_id: u32,
        data: u32,
    },
    ScanComplete {
        status: u32,
        num_channels: u8,
    },
    SetPmComplete {
        psm: u8,
    },
    JoinComplete {
        status: u32,
    },
    Mcu {
        cmd: u8,
        cmd_type: u32,
        body: &'a [u8],
    },
    FirmwareException {
        dump: &'a [u8],
    },
}

/// The mac80211-facing side of the bh (the other seam).
pub trait Upper<F> {
    /// All RX frames of one SDIO read.
    fn rx_batch(&mut self, batch: &RxDelivery<'_>);
    /// A sent frame came back with its confirm.
    fn tx_done(&mut self, frame: F, confirm: &TxConfirm);
    /// The confirm of a command (`status` [`STATUS_TIMEOUT`] if none came).
    fn cmd_done(&mut self, req: u16, status: u32, body: &[u8]);
    fn indication(&mut self, ind: Indication<'_>);
}

/// `cmd_done` status when the firmware never confirmed.
pub const STATUS_TIMEOUT: u32 = u32::MAX;

/// Lifecycle of the bh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BhState {
    /// After power-on or reset: waiting for the startup indication.
    AwaitStartup,
    Running,
    /// Stopped until [`BhContext::reset`]: the firmware or bus is gone.
    Halted(HaltReason),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaltReason {
    FirmwareException,
    CommandTimeout {
        req: u16,
    },
    RxSequence {
        space: SeqSpace,
        expected: u8,
        got: u8,
    },
    Bus(BusError),
    Framing(FrameError),
}

/// Errors of one bh run. The bh keeps going after counted protocol errors
/// and halts only on the fatal ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BhError {
    Halted(HaltReason),
}

/// Counters of everything untrusted input did (never a panic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BhStats {
    pub runs: u64,
    pub rx_batches: u64,
    pub rx_msgs: u64,
    pub rx_frames: u64,
    pub tx_batches: u64,
    pub tx_msgs: u64,
    pub ctrl_crc_errors: u64,
    pub ctrl_stale: u64,
    pub ctrl_out_of_range: u64,
    pub data_crc_retries: u64,
    pub decode_errors: u64,
    pub credit_errors: u64,
    pub stale_confirms: u64,
    pub unexpected_confirms: u64,
    pub requeued: u64,
    pub resets: u64,
    /// Control words whose toggle restarted (accepted, toggle resynced).
    pub toggle_resyncs: u64,
    /// Startup indications while running (the firmware rebooted itself).
    pub unexpected_restarts: u64,
}

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    pub rx_batches: u32,
    pub tx_batches: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct OutCmd {
    req: u16,
    if_id: u8,
    deadline_ms: u64,
}

/// Everything the bh owns except its buffers.
#[derive(Debug)]
struct Core {
    state: BhState,
    ledger: CreditLedger,
    rx_toggle: bool,
    tx_toggle: bool,
    out_cmd: [Option<OutCmd>; SeqSpace::COUNT],
    rx_resync: [bool; SeqSpace::COUNT],
    /// The control word of the last batch read (stale-length detection).
    last_ctrl: [u8; 4],
    stats: BhStats,
}

/// The bh context. Owned by the bh thread; `!Sync` (a `&BhContext` cannot
/// be shared with another thread), and every mutation needs `&mut self`.
pub struct BhContext {
    core: Core,
    rx_buf: [u8; RX_BUF_LEN],
    tx_buf: [u8; TX_BUF_LEN],
    _single_context: PhantomData<Cell<()>>,
}

impl Default for BhContext {
    fn default() -> Self {
        Self::new()
    }
}

impl BhContext {
    pub fn new() -> Self {
        BhContext {
            core: Core {
                state: BhState::AwaitStartup,
                ledger: CreditLedger::new(),
                rx_toggle: false,
                tx_toggle: false,
                out_cmd: [None; SeqSpace::COUNT],
                rx_resync: [true; SeqSpace::COUNT],
                last_ctrl: [0; 4],
                stats: BhStats::default(),
            },
            rx_buf: [0; RX_BUF_LEN],
            tx_buf: [0; TX_BUF_LEN],
            _single_context: PhantomData,
        }
    }

    pub fn state(&self) -> BhState {
        self.core.state
    }
    pub fn credits(&self) -> CreditSnapshot {
        self.core.ledger.snapshot()
    }
    pub fn ledger_consistent(&self) -> bool {
        self.core.ledger.consistent()
    }
    pub fn stats(&self) -> BhStats {
        self.core.stats
    }
    /// Idle for power management: nothing in flight.
    pub fn idle(&self) -> bool {
        self.core.ledger.hw_bufs_used() == 0
    }

    /// Clean reset after a halt (or on demand): the ledger, sequences and
    /// toggles start over, pending frames go back to their queues (their
    /// old packet ids become stale), a waiting command is dropped with a
    /// timeout status. The caller power-cycles / reloads the chip.
    pub fn reset<F>(&mut self, tx: &mut impl TxAccess<F>, upper: &mut impl Upper<F>) -> usize {
        let c = &mut self.core;
        c.ledger.clear();
        c.rx_toggle = false;
        c.tx_toggle = false;
        c.rx_resync = [true; SeqSpace::COUNT];
        c.last_ctrl = [0; 4];
        for out in c.out_cmd.iter_mut() {
            if let Some(o) = out.take() {
                upper.cmd_done(o.req, STATUS_TIMEOUT, &[]);
            }
        }
        let dropped = tx.with(|s| {
            let pending_cmd = s
                .cmd
                .peek()
                .map(|(m, _)| MsgId(u16::from_le_bytes([m[2], m[3]])).base());
            s.cmd.clear();
            (pending_cmd, s.queues.requeue_all_pending())
        });
        if let Some(req) = dropped.0 {
            upper.cmd_done(req, STATUS_TIMEOUT, &[]);
        }
        c.state = BhState::AwaitStartup;
        c.stats.resets += 1;
        c.stats.requeued += dropped.1 as u64;
        dropped.1
    }

    /// One bh pass: RX batches while the chip has data, TX batches while
    /// credits and work remain, command timeouts. Call it each time
    /// [`IrqLine::take`] returns pending bits (and on timer ticks).
    pub fn run<F: AsRef<[u8]>>(
        &mut self,
        wake: Wake,
        bus: &mut impl SdioBus,
        upper: &mut impl Upper<F>,
        tx: &mut impl TxAccess<F>,
        now_ms: u64,
    ) -> Result<RunReport, BhError> {
        if let BhState::Halted(r) = self.core.state {
            return Err(BhError::Halted(r));
        }
        self.core.stats.runs += 1;
        let mut report = RunReport::default();
        let mut rx = wake.rx;
        for _ in 0..BH_ROUNDS_MAX {
            let mut progress = false;
            if rx {
                let n = self.rx_round(bus, upper, tx)?;
                report.rx_batches += n;
                // A full round may leave more behind; an empty one means the
                // chip is drained until its next IRQ.
                rx = n == RX_BATCHES_PER_ROUND_MAX;
                progress |= n > 0;
            }
            if self.core.state == BhState::Running {
                let sent = self.tx_once(bus, tx, now_ms)?;
                report.tx_batches += u32::from(sent);
                progress |= sent;
            }
            if !progress && !rx {
                break;
            }
        }
        self.check_timeouts(upper, now_ms)?;
        Ok(report)
    }

    fn halt(&mut self, r: HaltReason) -> BhError {
        self.core.state = BhState::Halted(r);
        BhError::Halted(r)
    }

    fn check_timeouts<F>(&mut self, upper: &mut impl Upper<F>, now_ms: u64) -> Result<(), BhError> {
        for i in 0..SeqSpace::COUNT {
            if let Some(o) = self.core.out_cmd[i] {
                if now_ms >= o.deadline_ms {
                    self.core.out_cmd[i] = None;
                    upper.cmd_done(o.req, STATUS_TIMEOUT, &[]);
                    return Err(self.halt(HaltReason::CommandTimeout { req: o.req }));
                }
            }
        }
        Ok(())
    }

    /// Reads up to [`RX_BATCHES_PER_ROUND_MAX`] batches; returns how many.
    fn rx_round<F: AsRef<[u8]>>(
        &mut self,
        bus: &mut impl SdioBus,
        upper: &mut impl Upper<F>,
        tx: &mut impl TxAccess<F>,
    ) -> Result<u32, BhError> {
        let mut batches = 0;
        let mut crc_tries = 0;
        let mut stale_tries = 0;
        while batches < RX_BATCHES_PER_ROUND_MAX {
            let raw = match bus.read_ctrl() {
                Ok(r) => r,
                Err(e) => return Err(self.halt(HaltReason::Bus(e))),
            };
            let ctrl = match sdio::decode_ctrl_word(raw, self.core.rx_toggle) {
                Ok(c) => c,
                Err(CtrlError::Empty) => break,
                Err(CtrlError::StaleToggle) => {
                    // The word we consumed last, shown again: stale, wait.
                    // A *different* valid word with the other toggle means
                    // the chip's toggle restarted (firmware reboot): resync.
                    // The same word for longer than the chip needs to
                    // update its register means the same: the RX sequence
                    // check catches a wrong guess (halt, reset) before any
                    // frame of a re-read batch is delivered.
                    match sdio::decode_ctrl_word(raw, !self.core.rx_toggle) {
                        Ok(c)
                            if raw != self.core.last_ctrl
                                || stale_tries >= CTRL_STALE_RETRY_MAX =>
                        {
                            self.core.stats.toggle_resyncs += 1;
                            self.core.rx_toggle = !self.core.rx_toggle;
                            c
                        }
                        _ => {
                            self.core.stats.ctrl_stale += 1;
                            stale_tries += 1;
                            if stale_tries > CTRL_STALE_RETRY_MAX {
                                break;
                            }
                            continue;
                        }
                    }
                }
                Err(CtrlError::Crc { .. }) => {
                    self.core.stats.ctrl_crc_errors += 1;
                    crc_tries += 1;
                    if crc_tries > CTRL_CRC_RETRY_MAX {
                        break;
                    }
                    continue;
                }
                Err(CtrlError::OutOfRange { .. }) => {
                    self.core.stats.ctrl_out_of_range += 1;
                    break;
                }
            };
            let len = usize::from(ctrl.total_len);
            let mut tries = 0;
            loop {
                match bus.read_data(&mut self.rx_buf[..len]) {
                    Ok(()) => break,
                    Err(BusError::Crc) if tries < DATA_CRC_RETRY_MAX => {
                        tries += 1;
                        self.core.stats.data_crc_retries += 1;
                    }
                    Err(e) => return Err(self.halt(HaltReason::Bus(e))),
                }
            }
            // The batch is consumed: the next one carries the other toggle.
            self.core.rx_toggle = !self.core.rx_toggle;
            self.core.last_ctrl = raw;
            let batch = match sdio::extract(&self.rx_buf[..len], len, Some(ctrl.count)) {
                Ok(b) => b,
                Err(e) => return Err(self.halt(HaltReason::Framing(e))),
            };
            batches += 1;
            self.core.stats.rx_batches += 1;
            let mut delivery = RxDelivery {
                buf: &self.rx_buf[..len],
                frames: [(RxMeta::default(), 0, 0); RX_BATCH_MAX],
                count: 0,
            };
            let mut fatal = None;
            for i in 0..batch.len() {
                let msg = batch.msg(&self.rx_buf[..len], i);
                let start = batch.span(i).0;
                match self.core.dispatch(msg, upper, tx) {
                    Ok(Some((meta, off, flen))) => {
                        delivery.frames[delivery.count] = (meta, (start + off) as u16, flen as u16);
                        delivery.count += 1;
                    }
                    Ok(None) => {}
                    Err(r) => {
                        fatal = Some(r);
                        break;
                    }
                }
            }
            if !delivery.is_empty() {
                self.core.stats.rx_frames += delivery.count as u64;
                upper.rx_batch(&delivery);
            }
            if let Some(r) = fatal {
                return Err(self.halt(r));
            }
            crc_tries = 0;
            stale_tries = 0;
        }
        Ok(batches)
    }

    /// Builds and writes one TX batch: the waiting command first, then
    /// data frames, while credits last. Returns whether anything was sent.
    fn tx_once<F: AsRef<[u8]>>(
        &mut self,
        bus: &mut impl SdioBus,
        tx: &mut impl TxAccess<F>,
        now_ms: u64,
    ) -> Result<bool, BhError> {
        let c = &mut self.core;
        if c.ledger.available() == 0 {
            return Ok(false);
        }
        let mut batch = TxBatch::new(&mut self.tx_buf);

        // Command (one outstanding per sequence space, as cw1200's wsm_cmd).
        let cmd_taken = tx.with(|s| {
            let (msg, if_id) = s.cmd.peek()?;
            let mid = MsgId(u16::from_le_bytes([msg[2], msg[3]]));
            let space = mid.seq_space();
            if c.out_cmd[space.index()].is_some() || batch.fits(msg.len()).is_err() {
                return None;
            }
            let seq = c.ledger.charge(space, usize::from(if_id)).ok()?;
            batch.push(msg).ok()?;
            wsm::stamp_id(batch.tail_mut(msg.len()), seq, if_id);
            s.cmd.clear();
            Some((mid.base(), if_id, space))
        });
        if let Some((req, if_id, space)) = cmd_taken {
            c.out_cmd[space.index()] = Some(OutCmd {
                req,
                if_id,
                deadline_ms: now_ms + CMD_TIMEOUT_MS,
            });
        }

        // Data frames.
        while c.ledger.available() > 0 {
            let pushed = tx.with(|s| {
                let (picked, frame) = s.queues.peek()?;
                let frame = frame.as_ref();
                let more = s.queues.queued() > 1;
                let req = wsm::Request::Tx(wsm::TxReq {
                    packet_id: picked.packet_id,
                    max_tx_rate: 0,
                    queue_id: picked.ac as u8,
                    more,
                    flags: 0,
                    expire_time: 0,
                    ht_tx_parameters: 0,
                    frame,
                });
                let max = wsm::WSM_HDR_LEN + wsm::TX_REQ_FIXED_LEN + frame.len();
                if max > MSG_LEN_MAX || batch.fits(max).is_err() {
                    return None;
                }
                let seq = c
                    .ledger
                    .charge(SeqSpace::Wsm, usize::from(picked.if_id))
                    .ok()?;
                match batch.push_with(max, |slot| req.encode(slot)) {
                    Ok(Ok(n)) => {
                        wsm::stamp_id(batch.tail_mut(n), seq, picked.link_id);
                        s.queues.mark_pending(picked.packet_id).ok()?;
                        Some(picked.packet_id)
                    }
                    _ => {
                        // Cannot happen after `fits`; undo the charge.
                        let _ = c
                            .ledger
                            .release(SeqSpace::Wsm, usize::from(picked.if_id), 1);
                        None
                    }
                }
            });
            if pushed.is_none() {
                break;
            }
        }
        if batch.is_empty() {
            return Ok(false);
        }
        let msgs = batch.count();
        let written = bus.write_data(batch.bytes(), c.tx_toggle);
        if let Err(e) = written {
            // The halt makes the caller reset, which requeues the frames
            // this batch marked pending and clears their charges.
            return Err(self.halt(HaltReason::Bus(e)));
        }
        c.tx_toggle = !c.tx_toggle;
        c.stats.tx_batches += 1;
        c.stats.tx_msgs += msgs as u64;
        Ok(true)
    }
}

impl Core {
    /// Handles one message. Returns the RX frame's metadata and its offset
    /// and length inside the message, to be delivered with the batch.
    fn dispatch<F>(
        &mut self,
        msg: &[u8],
        upper: &mut impl Upper<F>,
        tx: &mut impl TxAccess<F>,
    ) -> Result<Option<(RxMeta, usize, usize)>, HaltReason> {
        self.stats.rx_msgs += 1;
        // The header was validated by `extract`; the sequence is checked
        // before the body, so a malformed body is counted without losing
        // sequence sync.
        let (_, mid) = match wsm::parse_header(msg) {
            Ok(v) => v,
            Err(_) => {
                self.stats.decode_errors += 1;
                return Ok(None);
            }
        };
        if mid.kind() == Kind::Exception {
            let dump = msg.get(wsm::WSM_HDR_LEN..).unwrap_or(&[]);
            upper.indication(Indication::FirmwareException { dump });
            return Err(HaltReason::FirmwareException);
        }
        let space = mid.seq_space();
        if mid.base() == wsm::id::STARTUP_IND {
            // A startup indication opens a new firmware run: every
            // sequence space starts over (the MCU one at its first message).
            self.rx_resync = [true; SeqSpace::COUNT];
        }
        if self.rx_resync[space.index()] {
            // cw1200 `rx_resync`: the first message after a (re)start sets
            // the sequence instead of being checked against it.
            self.rx_resync[space.index()] = false;
            self.ledger.resync_rx(space, mid.seq());
        } else if let Err((expected, got)) = self.ledger.check_rx_seq(space, mid.seq()) {
            return Err(HaltReason::RxSequence {
                space,
                expected,
                got,
            });
        }
        let inc = match wsm::decode(msg) {
            Ok((_, inc)) => inc,
            Err(_) => {
                self.stats.decode_errors += 1;
                return Ok(None);
            }
        };
        match inc {
            Incoming::Startup(s) => {
                if self.state == BhState::Running {
                    // The firmware restarted on its own: whatever was in
                    // flight is gone. Same clean-up as `reset`, minus the
                    // sequence/toggle state the new firmware already set.
                    self.stats.unexpected_restarts += 1;
                    for out in self.out_cmd.iter_mut() {
                        if let Some(o) = out.take() {
                            upper.cmd_done(o.req, STATUS_TIMEOUT, &[]);
                        }
                    }
                    let n = tx.with(|s| s.queues.requeue_all_pending());
                    self.stats.requeued += n as u64;
                }
                self.ledger.grant(s.input_buffers);
                // The new firmware expects our first write with toggle 0.
                self.tx_toggle = false;
                self.state = if s.input_buffers > 0 {
                    BhState::Running
                } else {
                    BhState::AwaitStartup
                };
                upper.indication(Indication::Started {
                    input_buffers: s.input_buffers,
                });
            }
            Incoming::Confirm { req, status, body } => {
                self.cmd_confirm(SeqSpace::Wsm, req, status, body, upper)
            }
            Incoming::Mcu {
                cmd,
                label,
                cmd_type,
                body,
            } => {
                if label == wsm::MCU_LABEL_CONFIRM {
                    self.cmd_confirm(SeqSpace::Mcu, mid.base(), 0, body, upper);
                } else {
                    upper.indication(Indication::Mcu {
                        cmd,
                        cmd_type,
                        body,
                    });
                }
            }
            Incoming::TxConfirm(c) => self.tx_confirm(&c, upper, tx),
            Incoming::MultiTxConfirm(m) => {
                for c in m.iter() {
                    self.tx_confirm(&c, upper, tx);
                }
            }
            Incoming::Rx { meta, frame } => {
                let off = msg.len() - frame.len();
                return Ok(Some((meta, off, frame.len())));
            }
            Incoming::Event { event_id, data } => {
                upper.indication(Indication::Event { event_id, data })
            }
            Incoming::ScanComplete {
                status,
                num_channels,
                ..
            } => upper.indication(Indication::ScanComplete {
                status,
                num_channels,
            }),
            Incoming::SetPmComplete { psm } => upper.indication(Indication::SetPmComplete { psm }),
            Incoming::JoinComplete { status } => {
                upper.indication(Indication::JoinComplete { status })
            }
            Incoming::Exception { .. } | Incoming::OtherIndication { .. } => {}
        }
        Ok(None)
    }

    fn cmd_confirm<F>(
        &mut self,
        space: SeqSpace,
        req: u16,
        status: u32,
        body: &[u8],
        upper: &mut impl Upper<F>,
    ) {
        match self.out_cmd[space.index()] {
            Some(o) if o.req == req => {
                self.out_cmd[space.index()] = None;
                self.release(space, usize::from(o.if_id), 1);
                upper.cmd_done(o.req, status, body);
            }
            _ => {
                // A confirm for nothing we sent (repeated or late): cw1200
                // WARNs; we count it and leave the ledger alone.
                self.stats.unexpected_confirms += 1;
            }
        }
    }

    fn tx_confirm<F>(
        &mut self,
        c: &TxConfirm,
        upper: &mut impl Upper<F>,
        tx: &mut impl TxAccess<F>,
    ) {
        let requeue = c.status == wsm::status::REQUEUE;
        let r = tx.with(|s| -> Result<(u8, Option<F>), PacketIdError> {
            let if_id = s.queues.pending_if(c.packet_id)?;
            if requeue {
                s.queues.requeue(c.packet_id)?;
                Ok((if_id, None))
            } else {
                Ok((if_id, Some(s.queues.confirm(c.packet_id)?.frame)))
            }
        });
        match r {
            Ok((if_id, frame)) => {
                // Either way the buffer is free again on the chip.
                self.release(SeqSpace::Wsm, usize::from(if_id), 1);
                match frame {
                    Some(frame) => upper.tx_done(frame, c),
                    None => self.stats.requeued += 1,
                }
            }
            Err(_) => self.stats.stale_confirms += 1,
        }
    }

    fn release(&mut self, space: SeqSpace, if_id: usize, n: u16) {
        match self.ledger.release(space, if_id, n) {
            Ok(()) => {}
            Err(CreditError::Underflow { .. })
            | Err(CreditError::UnderflowSplit)
            | Err(CreditError::NotStarted) => {
                self.stats.credit_errors += 1;
            }
        }
    }
}
