//! The bottom half: cw1200's shape, as Patch C v3 restored it.
//!
//! - IRQ context owns nothing but an [`IrqLine`] (one atomic word). It
//!   raises a bit and tells its caller whether the bh must be woken. It
//!   never reads the bus and never touches credit or sequence state.
//! - The bh context ([`BhContext`]) alone reads the bus, extracts the batch,
//!   dispatches every message and writes TX batches. It is the single writer
//!   of the credit ledger (`hw_bufs_used` and the per-space
//!   counts), the sequence counters and the toggles: they are private fields
//!   reachable only through `&mut BhContext`, and `BhContext` is neither
//!   `Send` nor `Sync`, so a second writer in another context does not
//!   compile (`tests/ui/`).
//! - All frames of one SDIO read reach the upper layer in one
//!   [`Upper::rx_batch`] call (later `ieee80211_rx_list` inside one
//!   bh-disabled section); there is no other RX delivery API (lesson 2).
//!
//! Mutation testing (`cargo xtask mutants --all`) covers the credit and
//! sequence paths. What survives there is justified: the header check at
//! the top of `dispatch` cannot fail (`sdio::extract` validated every header
//! it returns; the branch is kept so that a message never panics the bh),
//! and the ++/*= mutants of pure statistics counters that no decision reads.
//!
//! Time is an input (`now_ms`) and [`BhContext::next_deadline`] says when
//! the bh must run again without an IRQ; the bus is the [`SdioBus`] seam
//! (CMD52 registers and raw CMD53 with bes2600's argument encoding); the
//! bus buffers are the caller's ([`BhBufs`]), so the kernel module passes
//! `kmalloc`ed, DMA-safe memory and nothing the bus touches is on a stack.
#![forbid(unsafe_code)]

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU32, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, Ordering};

use super::credits::{CreditError, CreditLedger, CreditSnapshot};
use super::queue::{PacketIdError, SlotStore, TxAccess};
use super::sdio::{self, reg, Cmd53, Ctrl, FrameError, TxBatch, RX_BATCH_MAX};
use super::wsm::{self, Incoming, Kind, MsgId, RxMeta, SeqSpace, TxConfirm, MSG_LEN_MAX};

/// Bytes of the RX buffer the caller passes: what bes2600 allocates
/// (`__get_dma_pages(.., get_order(1632 * BES_SDIO_RX_MULTIPLE_NUM))`, an
/// order-3 allocation: 32 KiB, `bes2600_sdio.c` 1229). A control byte
/// announcing more (the byte allows 127 blocks) is refused, not overrun.
pub const RX_BUF_LEN: usize = 32 * 1024;
const _: () = assert!(RX_BUF_LEN >= MSG_LEN_MAX * RX_BATCH_MAX);
/// Bytes of the TX buffer the caller passes (one SDIO write).
pub const TX_BUF_LEN: usize = sdio::TX_BUF_LEN;
/// Extra control-byte reads after a stale toggle or an unconfirmed zero
/// before the bh waits for the next IRQ (`sdio_rx_work`: `retry <= 5`,
/// `bes2600_sdio.c` 858-866). Never a halt: bes2600 reads again later.
pub const CTRL_RETRY_MAX: u32 = 5;
/// Data transfers retried after a bus CRC error (`-EILSEQ`, -84):
/// `crc_retry <= 10` (`bes2600_sdio.c` 869-877, 1156-1165).
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
    /// Anything pending? (the bh's `wait_event` condition; does not clear)
    pub fn pending(&self) -> bool {
        self.bits.load(Ordering::Acquire) != 0
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

/// The seam to the SDIO bus (smoltcp's `phy::Device` idea), at the level
/// bes2600 uses the card: CMD52 on function-1 registers and CMD53 with an
/// argument the core builds ([`Cmd53`]), because bes2600 encodes lengths
/// and toggles in the address bits. The kernel implements it with
/// `sdio_readb`/`sdio_writeb` and a raw `mmc_wait_for_req`; the simulator
/// with its own decoding of the same arguments.
pub trait SdioBus {
    /// CMD52 read of function-1 register `addr`.
    fn readb(&mut self, addr: u32) -> Result<u8, BusError>;
    /// CMD52 write of function-1 register `addr`.
    fn writeb(&mut self, addr: u32, val: u8) -> Result<(), BusError>;
    /// CMD53 read: `buf.len() == cmd.len`.
    fn cmd53_read(&mut self, cmd: Cmd53, buf: &mut [u8]) -> Result<(), BusError>;
    /// CMD53 write: `data.len() == cmd.len`.
    fn cmd53_write(&mut self, cmd: Cmd53, data: &[u8]) -> Result<(), BusError>;
}

/// The bus buffers, owned by the caller (DMA-safe memory in the kernel).
pub struct BhBufs<'a> {
    rx: &'a mut [u8],
    tx: &'a mut [u8],
}

impl<'a> BhBufs<'a> {
    /// `None` unless `rx` holds [`RX_BUF_LEN`] and `tx` [`TX_BUF_LEN`] bytes.
    pub fn new(rx: &'a mut [u8], tx: &'a mut [u8]) -> Option<Self> {
        (rx.len() >= RX_BUF_LEN && tx.len() >= TX_BUF_LEN).then_some(BhBufs { rx, tx })
    }
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
    /// Control-byte reads that failed with a bus CRC error.
    pub ctrl_crc_errors: u64,
    /// Control bytes with the previous toggle (`rx_remain_ctrl_cnt`).
    pub ctrl_stale: u64,
    /// Zero control bytes that `REG_CTRL` bit 0 did not confirm.
    pub ctrl_zero_unconfirmed: u64,
    pub data_crc_retries: u64,
    pub decode_errors: u64,
    pub credit_errors: u64,
    pub stale_confirms: u64,
    pub unexpected_confirms: u64,
    pub requeued: u64,
    pub resets: u64,
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
    deadline_ms: u64,
}

/// Makes its owner neither `Send` nor `Sync` (a raw pointer field, never
/// dereferenced). A type of our own rather than `PhantomData<*mut ()>`, so
/// the compile-fail proofs' expected errors point into this crate only.
#[derive(Debug)]
#[allow(dead_code)] // never read: the field exists to remove Send and Sync
struct OneThread(*const u8);

/// The bh context: owned by the bh thread alone. It is neither `Send` nor
/// `Sync` ([`OneThread`]): the thread that runs the bh creates it,
/// and no `Mutex<BhContext>` can be handed to a second worker
/// (`tests/ui/`). Every mutation needs `&mut self`. It holds no buffers
/// (those are [`BhBufs`]), so it is small enough to live on the bh
/// thread's stack (asserted below).
pub struct BhContext {
    state: BhState,
    ledger: CreditLedger,
    /// The control byte's expected toggle (`next_toggle`).
    ctrl_toggle: bool,
    /// RX data toggle in the CMD53 address (`rx_data_toggle`).
    rx_data_toggle: bool,
    /// TX data toggle in the CMD53 address (`tx_data_toggle`).
    tx_data_toggle: bool,
    out_cmd: [Option<OutCmd>; SeqSpace::COUNT],
    stats: BhStats,
    _one_thread: OneThread,
}

/// Largest structure the core builds by value (bytes): the kernel stack is
/// 16 KiB and the bh thread's frame must stay small.
pub const BY_VALUE_MAX: usize = 1024;
const _: () = assert!(core::mem::size_of::<BhContext>() <= BY_VALUE_MAX);

/// Runs a data transfer again after a bus CRC error, up to
/// [`DATA_CRC_RETRY_MAX`] times with the same argument (bes2600 undoes the
/// toggle increment on an error, `bes2600_sdio.c` 324-333). Returns the
/// outcome and how many retries it took.
fn crc_retried(mut op: impl FnMut() -> Result<(), BusError>) -> (Result<(), BusError>, u32) {
    let mut retries = 0;
    loop {
        match op() {
            Err(BusError::Crc) if retries < DATA_CRC_RETRY_MAX => retries += 1,
            r => return (r, retries),
        }
    }
}

impl Default for BhContext {
    fn default() -> Self {
        Self::new()
    }
}

impl BhContext {
    pub const fn new() -> Self {
        BhContext {
            state: BhState::AwaitStartup,
            ledger: CreditLedger::new(),
            ctrl_toggle: false,
            rx_data_toggle: false,
            tx_data_toggle: false,
            out_cmd: [None; SeqSpace::COUNT],
            stats: BhStats {
                runs: 0,
                rx_batches: 0,
                rx_msgs: 0,
                rx_frames: 0,
                tx_batches: 0,
                tx_msgs: 0,
                ctrl_crc_errors: 0,
                ctrl_stale: 0,
                ctrl_zero_unconfirmed: 0,
                data_crc_retries: 0,
                decode_errors: 0,
                credit_errors: 0,
                stale_confirms: 0,
                unexpected_confirms: 0,
                requeued: 0,
                resets: 0,
                unexpected_restarts: 0,
            },
            _one_thread: OneThread(core::ptr::null()),
        }
    }

    pub fn state(&self) -> BhState {
        self.state
    }
    pub fn credits(&self) -> CreditSnapshot {
        self.ledger.snapshot()
    }
    pub fn ledger_consistent(&self) -> bool {
        self.ledger.consistent()
    }
    pub fn stats(&self) -> BhStats {
        self.stats
    }
    /// Idle for power management: nothing in flight.
    pub fn idle(&self) -> bool {
        self.ledger.hw_bufs_used() == 0
    }
    /// When the bh must run next without an IRQ or a TX kick (ms, on the
    /// `now_ms` clock): the earliest command deadline. `None`: only an
    /// event can give it work (smoltcp's `poll_delay` idea).
    pub fn next_deadline(&self) -> Option<u64> {
        self.out_cmd.iter().flatten().map(|o| o.deadline_ms).min()
    }

    /// Clean reset after a halt (or on demand): the ledger, sequences and
    /// toggles start over (bes2600 zeroes its three toggles with the chip,
    /// `bes2600_sdio.c` 1222-1224, 1588-1590), pending frames go back to
    /// their queues (their old packet ids become stale), a waiting command
    /// is dropped with a timeout status. The caller power-cycles / reloads
    /// the chip.
    pub fn reset<F, S: SlotStore<F>>(
        &mut self,
        tx: &mut impl TxAccess<F, S>,
        upper: &mut impl Upper<F>,
    ) -> usize {
        self.ledger.clear();
        self.ctrl_toggle = false;
        self.rx_data_toggle = false;
        self.tx_data_toggle = false;
        for out in self.out_cmd.iter_mut() {
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
        self.state = BhState::AwaitStartup;
        self.stats.resets += 1;
        self.stats.requeued += dropped.1 as u64;
        dropped.1
    }

    /// One bh pass: RX batches while the chip has data, TX batches while
    /// credits and work remain, command timeouts. Call it each time
    /// [`IrqLine::take`] returns pending bits, and at [`Self::next_deadline`].
    pub fn run<F: AsRef<[u8]>, S: SlotStore<F>>(
        &mut self,
        wake: Wake,
        bus: &mut impl SdioBus,
        bufs: &mut BhBufs<'_>,
        upper: &mut impl Upper<F>,
        tx: &mut impl TxAccess<F, S>,
        now_ms: u64,
    ) -> Result<RunReport, BhError> {
        if let BhState::Halted(r) = self.state {
            return Err(BhError::Halted(r));
        }
        self.stats.runs += 1;
        let mut report = RunReport::default();
        let mut rx = wake.rx;
        for _ in 0..BH_ROUNDS_MAX {
            let mut progress = false;
            if rx {
                let n = self.rx_round(bus, bufs.rx, upper, tx)?;
                report.rx_batches += n;
                // A full round may leave more behind; an empty one means the
                // chip is drained until its next IRQ.
                rx = n == RX_BATCHES_PER_ROUND_MAX;
                progress |= n > 0;
            }
            if self.state == BhState::Running {
                let sent = self.tx_once(bus, bufs.tx, tx, now_ms)?;
                report.tx_batches += u32::from(sent);
                progress |= sent;
                // bes2600 reads right after every write (`queue_work(..,
                // &self->rx_work)` after the TX transfer, 1167): the write
                // may have produced confirms.
                rx |= sent;
            }
            if !progress && !rx {
                break;
            }
        }
        self.check_timeouts(upper, now_ms)?;
        Ok(report)
    }

    fn halt(&mut self, r: HaltReason) -> BhError {
        self.state = BhState::Halted(r);
        BhError::Halted(r)
    }

    fn check_timeouts<F>(&mut self, upper: &mut impl Upper<F>, now_ms: u64) -> Result<(), BhError> {
        for i in 0..SeqSpace::COUNT {
            if let Some(o) = self.out_cmd[i] {
                if now_ms >= o.deadline_ms {
                    self.out_cmd[i] = None;
                    upper.cmd_done(o.req, STATUS_TIMEOUT, &[]);
                    return Err(self.halt(HaltReason::CommandTimeout { req: o.req }));
                }
            }
        }
        Ok(())
    }

    /// Reads up to [`RX_BATCHES_PER_ROUND_MAX`] batches; returns how many.
    /// The shape of `sdio_rx_work` + `bes2600_sdio_read_ctrl`, inline in the
    /// bh (no relay).
    fn rx_round<F: AsRef<[u8]>, S: SlotStore<F>>(
        &mut self,
        bus: &mut impl SdioBus,
        rx_buf: &mut [u8],
        upper: &mut impl Upper<F>,
        tx: &mut impl TxAccess<F, S>,
    ) -> Result<u32, BhError> {
        let mut batches = 0;
        let mut retries = 0;
        while batches < RX_BATCHES_PER_ROUND_MAX {
            let b = match bus.readb(reg::CTRL_LEN) {
                Ok(b) => b,
                // `bes2600_sdio_read_ctrl` returns the error, which leaves
                // `total_len` 0 and ends the loop: read again on the next
                // IRQ (the interrupt was not cleared), no halt.
                Err(BusError::Crc) => {
                    self.stats.ctrl_crc_errors += 1;
                    break;
                }
                Err(e) => return Err(self.halt(HaltReason::Bus(e))),
            };
            let len = match sdio::decode_ctrl_byte(b, self.ctrl_toggle) {
                Ctrl::Pending(len) => len,
                Ctrl::Stale => {
                    self.stats.ctrl_stale += 1;
                    retries += 1;
                    if retries > CTRL_RETRY_MAX {
                        break;
                    }
                    continue;
                }
                Ctrl::Zero => {
                    let c = match bus.readb(reg::CTRL) {
                        Ok(c) => c,
                        Err(e) => return Err(self.halt(HaltReason::Bus(e))),
                    };
                    if sdio::ctrl_says_empty(c) {
                        break;
                    }
                    self.stats.ctrl_zero_unconfirmed += 1;
                    retries += 1;
                    if retries > CTRL_RETRY_MAX {
                        break;
                    }
                    continue;
                }
            };
            // The control byte is consumed: the next one carries the other
            // toggle, whatever happens to the data.
            self.ctrl_toggle = !self.ctrl_toggle;
            if len > RX_BUF_LEN.min(rx_buf.len()) {
                return Err(self.halt(HaltReason::Framing(FrameError::ShortRead {
                    announced: len,
                    have: RX_BUF_LEN.min(rx_buf.len()),
                })));
            }
            let addr = len as u32 | (u32::from(self.rx_data_toggle) << 16);
            let cmd = Cmd53::transfer(false, addr, len);
            let (r, crc_retries) = crc_retried(|| bus.cmd53_read(cmd, &mut rx_buf[..cmd.len]));
            self.stats.data_crc_retries += u64::from(crc_retries);
            if let Err(e) = r {
                return Err(self.halt(HaltReason::Bus(e)));
            }
            self.rx_data_toggle = !self.rx_data_toggle;
            let batch = match sdio::extract(&rx_buf[..len], len) {
                Ok(b) => b,
                Err(e) => return Err(self.halt(HaltReason::Framing(e))),
            };
            batches += 1;
            self.stats.rx_batches += 1;
            let buf = &rx_buf[..len];
            let mut delivery = RxDelivery {
                buf,
                frames: [(RxMeta::default(), 0, 0); RX_BATCH_MAX],
                count: 0,
            };
            let mut fatal = None;
            for i in 0..batch.len() {
                let msg = batch.msg(buf, i);
                let start = batch.span(i).0;
                match self.dispatch(msg, upper, tx) {
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
                self.stats.rx_frames += delivery.count as u64;
                upper.rx_batch(&delivery);
            }
            if let Some(r) = fatal {
                return Err(self.halt(r));
            }
            retries = 0;
        }
        Ok(batches)
    }

    /// Builds and writes one TX batch: the waiting command first, then
    /// data frames of the same slot size, while credits last; an MCU
    /// command alone. Returns whether anything was sent.
    fn tx_once<F: AsRef<[u8]>, S: SlotStore<F>>(
        &mut self,
        bus: &mut impl SdioBus,
        tx_buf: &mut [u8],
        tx: &mut impl TxAccess<F, S>,
        now_ms: u64,
    ) -> Result<bool, BhError> {
        if self.ledger.available() == 0 {
            return Ok(false);
        }
        let ledger = &mut self.ledger;
        let out_cmd = &mut self.out_cmd;
        let mut batch = TxBatch::new(tx_buf);

        // Command (one outstanding per sequence space, as cw1200's wsm_cmd).
        let cmd_taken = tx.with(|s| {
            let (msg, if_id) = s.cmd.peek()?;
            let mid = MsgId(u16::from_le_bytes([msg[2], msg[3]]));
            let space = mid.seq_space();
            let vendor = sdio::is_vendor_cmd(mid.0);
            if out_cmd[space.index()].is_some() || batch.fits(msg.len(), vendor).is_err() {
                return None;
            }
            let seq = ledger.charge(space).ok()?;
            batch.push(msg, vendor, now_ms as u32).ok()?;
            // `wsm_cmd_send` (`wsm.c` 1863-1872): the interface in bits
            // 6-9, none for an MCU command.
            wsm::stamp_id(batch.tail_mut(), seq, if vendor { 0 } else { if_id });
            s.cmd.clear();
            Some((mid.base(), space))
        });
        if let Some((req, space)) = cmd_taken {
            out_cmd[space.index()] = Some(OutCmd {
                req,
                deadline_ms: now_ms + CMD_TIMEOUT_MS,
            });
        }

        // Data frames.
        while ledger.available() > 0 {
            let pushed = tx.with(|s| {
                let (picked, frame) = s.queues.peek()?;
                let frame = frame.as_ref();
                let more = s.queues.queued() > 1;
                let m = picked.meta;
                let req = wsm::Request::Tx(wsm::TxReq {
                    packet_id: picked.packet_id,
                    max_tx_rate: m.max_tx_rate,
                    queue_id: wsm::tx_queue_byte(picked.ac as u8, picked.link_id),
                    more,
                    flags: m.wsm_flags(),
                    expire_time: m.expire_time,
                    ht_tx_parameters: m.ht_tx_parameters,
                    frame,
                });
                let max = wsm::WSM_HDR_LEN + wsm::TX_REQ_FIXED_LEN + frame.len();
                if max > sdio::TX_MSG_LEN_MAX || batch.fits(max, false).is_err() {
                    return None;
                }
                let seq = ledger.charge(SeqSpace::Wsm).ok()?;
                match batch.push_with(max, false, now_ms as u32, |slot| req.encode(slot)) {
                    Ok(Ok(_)) => {
                        // bes2600 puts the interface in bits 6-9 and the link
                        // in the queue byte (`wsm.c` 2979-2992, `txrx.c` 782).
                        wsm::stamp_id(batch.tail_mut(), seq, picked.if_id);
                        s.queues.mark_pending(picked.packet_id).ok()?;
                        Some(picked.packet_id)
                    }
                    _ => {
                        // Cannot happen after `fits`; undo the charge.
                        let _ = ledger.release(SeqSpace::Wsm, 1);
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
        let (cmd, bytes) = batch.finish(self.tx_data_toggle);
        let (r, retries) = crc_retried(|| bus.cmd53_write(cmd, bytes));
        self.stats.data_crc_retries += u64::from(retries);
        if let Err(e) = r {
            // The halt makes the caller reset, which requeues the frames
            // this batch marked pending and clears their charges.
            return Err(self.halt(HaltReason::Bus(e)));
        }
        self.tx_data_toggle = !self.tx_data_toggle;
        self.stats.tx_batches += 1;
        self.stats.tx_msgs += msgs as u64;
        Ok(true)
    }

    /// Handles one message, as `bes2600_bh_rx_helper` (`bh.c` 1044-1098):
    /// exception, then the sequence check, then the buffer release for a
    /// confirm *before* the body is parsed, then the body. Returns the RX
    /// frame's metadata and its offset and length inside the message, to
    /// be delivered with the batch.
    fn dispatch<F, S: SlotStore<F>>(
        &mut self,
        msg: &[u8],
        upper: &mut impl Upper<F>,
        tx: &mut impl TxAccess<F, S>,
    ) -> Result<Option<(RxMeta, usize, usize)>, HaltReason> {
        self.stats.rx_msgs += 1;
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
        // bes2600 checks strictly, from 0 after a chip reset, with no
        // resync (`bh.c` 1066-1073; cw1200's `rx_resync` is reset on every
        // call, so cw1200 never checks). A spontaneous firmware restart
        // therefore shows as a sequence error: halt, reset, reload.
        if let Err((expected, got)) = self.ledger.check_rx_seq(space, mid.seq()) {
            return Err(HaltReason::RxSequence {
                space,
                expected,
                got,
            });
        }
        // One input buffer is free again for every confirm, whatever its
        // body says: a confirm that does not decode must not strand a
        // credit (`hw_bufs_used` stuck, TX stalled for good).
        if let Some(sp) = wsm::releases_buffer(msg) {
            self.release(sp, 1);
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
                    // flight is gone.
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
                // The header's release covered one entry (`wsm.c` 652).
                self.release(SeqSpace::Wsm, m.len().saturating_sub(1) as u16);
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
                upper.cmd_done(o.req, status, body);
            }
            _ => {
                // A confirm for nothing we sent (repeated or late): cw1200
                // WARNs; we count it. Its buffer was released as in C.
                self.stats.unexpected_confirms += 1;
            }
        }
    }

    fn tx_confirm<F, S: SlotStore<F>>(
        &mut self,
        c: &TxConfirm,
        upper: &mut impl Upper<F>,
        tx: &mut impl TxAccess<F, S>,
    ) {
        let requeue = c.status == wsm::status::REQUEUE;
        let r = tx.with(|s| -> Result<Option<F>, PacketIdError> {
            if requeue {
                s.queues.requeue(c.packet_id)?;
                Ok(None)
            } else {
                Ok(Some(s.queues.confirm(c.packet_id)?.frame))
            }
        });
        match r {
            Ok(Some(frame)) => upper.tx_done(frame, c),
            Ok(None) => self.stats.requeued += 1,
            Err(_) => self.stats.stale_confirms += 1,
        }
    }

    fn release(&mut self, space: SeqSpace, n: u16) {
        match self.ledger.release(space, n) {
            Ok(()) => {}
            Err(CreditError::Underflow { .. })
            | Err(CreditError::UnderflowSplit)
            | Err(CreditError::NotStarted) => {
                self.stats.credit_errors += 1;
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_irq_line_coalesces_wake_ups() {
        let l = IrqLine::new();
        assert!(!l.pending());
        assert!(l.irq(), "first producer wakes the bh");
        assert!(l.pending());
        assert!(!l.irq(), "a second IRQ before the bh ran does not");
        assert!(!l.kick_tx(), "nor does a TX kick");
        assert_eq!(l.take(), Wake { rx: true, tx: true });
        assert!(!l.pending(), "take clears");
        assert_eq!(l.take(), Wake::default());
        assert!(l.kick_tx());
        assert_eq!(l.take(), Wake::TX);
        assert!(l.irq());
        assert_eq!(l.take(), Wake::RX);
        assert!(Wake::RX.any() && Wake::TX.any() && !Wake::default().any());
    }

    #[test]
    fn bus_buffers_must_hold_a_whole_batch_and_write() {
        let (mut rx, mut tx) = ([0u8; RX_BUF_LEN], [0u8; TX_BUF_LEN]);
        assert!(BhBufs::new(&mut rx, &mut tx).is_some());
        assert!(BhBufs::new(&mut rx[1..], &mut tx).is_none());
        assert!(BhBufs::new(&mut rx, &mut tx[1..]).is_none());
    }

    #[test]
    fn a_fresh_bh_has_no_deadline_and_waits_for_startup() {
        let bh = BhContext::new();
        assert_eq!(bh.next_deadline(), None);
        assert_eq!(bh.state(), BhState::AwaitStartup);
        assert!(bh.idle());
    }
}
