//! The chip and its firmware, as the host sees them over SDIO: CMD52 on
//! function-1 registers and CMD53 with bes2600's argument encoding.
//! `no_std`, fixed capacity, and independent of `bes2600-core`: every byte
//! it parses or builds goes through [`crate::wire`], written from the C
//! sources (a tidy step keeps it that way).
//!
//! What is modelled and where it comes from:
//! - RX: the one-byte control at 0x001 (blocks | toggle << 7, reading it
//!   clears the interrupt), 0x000 bit 0 = nothing pending, the data read
//!   with the length and the RX data toggle in the CMD53 address
//!   (`bes2600_sdio.c` 636-711, 195-217);
//! - TX: slotted aggregates decoded from the CMD53 address (low two bits =
//!   blocks - 1, bit 16 = TX data toggle; `sdio_tx_work` 1080-1182);
//! - credits: every confirm frees one input buffer, a multi-TX confirm one
//!   per entry (`wsm.c` 652), the MCU confirm one;
//! - the boot ROM: registers 0x108/0x109 (buffer count, receive size),
//!   frames B1-B4, an IRQ per reply with its length at registers 0/1, DPD
//!   readback after the boot image (`bes_fw.c` 44-104, 224-449, 850-908).
//!
//! Not verifiable from public sources, so chosen and marked here: the boot
//! ROM's receive buffer size ([`ChipConfig::boot_rx_buf`]), the DPD blob's
//! contents, and that the SDIO toggles survive a spontaneous firmware
//! restart (they are SDIO slave state; C resets them only with the chip).

use crate::ap::{self, Ap};
use crate::wire::{self, ids, Cmd53Arg};

/// A bus error as the card causes it (mapped to the host's error type by
/// the harness's bus adapter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChipBusError {
    /// Data CRC error (`-EILSEQ`).
    Crc,
    /// No response.
    Timeout,
    /// Anything else the card refuses (wrong argument, nothing to read).
    Other,
}

const MSG_LEN_MAX: usize = wire::MSG_MAX;
/// The chip's RX batch buffer (16 messages of 1632 bytes).
const BATCH_LEN_MAX: usize = wire::MSG_MAX * wire::BATCH_MAX;
/// Sequence spaces: WSM and MCU.
const SPACES: usize = 2;
const WSM: usize = 0;
const MCU: usize = 1;

/// WSM status codes (cw1200 `wsm.h`).
pub mod status {
    pub const SUCCESS: u32 = 0;
    pub const FAILURE: u32 = 1;
    pub const INVALID_PARAMETER: u32 = 2;
    pub const REQUEUE: u32 = 11;
}

/// Messages the firmware can hold for the host before it drops new ones.
pub const OUTBOX_MAX: usize = 96;
/// Outbox slots downlink traffic may not use: room for confirms and
/// indications, which the firmware never drops.
pub const OUTBOX_CONTROL_RESERVE: usize = 40;
/// TX confirms folded into one multi-TX confirm.
pub const MULTI_CONFIRM_MAX: usize = 16;

/// Fault injection. `*_every = n` means every n-th event (0 = never).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Fail every n-th control-byte read (CMD52) with a bus CRC error.
    pub ctrl_crc_every: u32,
    /// Fail every n-th data read with a bus CRC error (data stays pending).
    pub data_crc_every: u32,
    /// Present the previous (consumed) control byte on every n-th read: a
    /// stale length with the old toggle.
    pub stale_ctrl_every: u32,
    /// Confirm every n-th TX frame with `WSM_REQUEUE` (the host must send
    /// it again).
    pub requeue_every: u32,
    /// Fail the n-th SDIO write (1-based) with a bus error, once.
    pub write_fail_at: Option<u64>,
    /// The firmware reboots by itself right after taking the n-th write
    /// (1-based), before confirming any of it, once.
    pub restart_after_write: Option<u64>,
    /// Never send the confirm of every n-th command.
    pub drop_confirm_every: u32,
    /// Confirm every n-th started scan but never report it complete (the
    /// hang cw1200's and bes2600's `scan.timeout` work exists for).
    pub drop_scan_complete_every: u32,
    /// Flip one byte of the firmware image at this offset while it is
    /// downloaded (the CRC check at the end must catch it).
    pub fw_corrupt_at: Option<usize>,
    /// Raise a firmware exception at this uptime.
    pub exception_at_ms: Option<u64>,
    /// Bug #5 model: from this uptime on, scans fail and only one downlink
    /// frame in `degraded_keep_one_in` reaches the host.
    pub degrade_after_ms: Option<u64>,
    pub degraded_keep_one_in: u32,
    /// Refuse set-PM requests (status FAILURE) as firmware without PM
    /// does, on top of [`ChipConfig::pm_supported`].
    pub pm_refused: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct ChipConfig {
    /// Credits granted in the startup indication.
    pub input_buffers: u16,
    /// Does the firmware accept set-PM?
    pub pm_supported: bool,
    /// The firmware quirk of lesson 4 (multi-channel 5 GHz scan -> status 2).
    pub reject_5ghz_multi_scan: bool,
    /// Images to download before the firmware runs: 2 on the real chip
    /// (second-stage boot image, DPD readback, then the Wi-Fi firmware),
    /// 1 for short tests. Cached DPD data written to 0x2008C000 skips the
    /// boot image.
    pub boot_stages: u8,
    /// What the boot ROM announces at 0x109/0x10a (bytes). Not in any
    /// public source; 2048 is an assumption.
    pub boot_rx_buf: u16,
    /// DPD calibration bytes the boot image hands back (`DPD_BIN_SIZE`,
    /// 0x3B14 in `bes_chardev.h`).
    pub dpd_len: u16,
    /// The AP's beacon interval (None: no beacons, the default for tests
    /// that count frames). 802.11 default: 102 ms (100 TU).
    pub beacon_interval_ms: Option<u64>,
    /// Trace replay: the firmware model says nothing by itself (no startup,
    /// no confirms); only injected messages reach the host.
    pub mute: bool,
    pub faults: Faults,
}

impl Default for ChipConfig {
    fn default() -> Self {
        ChipConfig {
            input_buffers: 30,
            pm_supported: true,
            reject_5ghz_multi_scan: true,
            beacon_interval_ms: None,
            boot_stages: 1,
            boot_rx_buf: 2048,
            dpd_len: 0x3B14,
            mute: false,
            faults: Faults::default(),
        }
    }
}

/// TX request fields the chip acts on (`struct wsm_tx`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LastTx {
    pub max_tx_rate: u8,
    /// The raw `queueId` byte: link id in bits 2-5, WSM queue in 0-1.
    pub queue_byte: u8,
    pub rate_policy: u8,
    pub expire_time: u32,
    pub ht_tx_parameters: u32,
    /// Interface id from the message id's bits 6-9.
    pub if_id: u8,
}

/// What the chip observed (the test oracle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChipStats {
    pub requests: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Host sent more requests than the granted input buffers.
    pub overruns: u64,
    pub max_in_flight: u16,
    pub tx_toggle_errors: u64,
    pub rx_toggle_errors: u64,
    pub bad_writes: u64,
    pub bad_reads: u64,
    /// Writes that mixed an MCU command with other messages.
    pub mcu_not_alone: u64,
    /// Messages whose slot did not match its own length's block count.
    pub slot_mismatches: u64,
    /// Keys installed, by WSM key type (index = type, 0..8).
    pub keys_by_type: [u32; 8],
    /// EDCA parameter requests taken, and the last one's values per queue
    /// in Linux order (VO, VI, BE, BK): `(cwmin, cwmax, aifs, txop)`.
    pub edca_requests: u64,
    pub last_edca: [(u16, u16, u8, u16); 4],
    /// Set-PM requests taken and refused, and the last one's mode byte
    /// (`WSM_PSM_*`: 0 active, 1 PS, 0x81 fast PS).
    pub pm_requests: u64,
    pub pm_refused: u64,
    pub last_pm_mode: u8,
    /// The last TX request's metadata as the chip read it.
    pub last_tx: LastTx,
    pub scan_requests: u64,
    pub scan_rejects: u64,
    pub scan_rejects_5ghz_multi: u64,
    pub rx_batches: u64,
    pub rx_msgs: u64,
    pub downlink_offered: u64,
    pub downlink_dropped: u64,
    /// Ethernet frames from the AP's wired side sent on air to the station.
    pub downlink_ethernet: u64,
    /// Station data frames the AP handed to its wired side as Ethernet.
    pub uplink_ethernet: u64,
    /// Station data frames the AP could not hand on: not associated, not
    /// RFC 1042 encapsulated, protected.
    pub uplink_ethernet_dropped: u64,
    /// Station data frames dropped because the wired side was full (the
    /// host did not take them in time).
    pub wired_full: u64,
    pub outbox_full: u64,
    pub confirms_dropped: u64,
    pub scan_completes_dropped: u64,
    /// Faults the model injected (what a lab run reads back).
    pub ctrl_crc_injected: u64,
    pub data_crc_injected: u64,
    pub stale_ctrl_injected: u64,
    pub exceptions_raised: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Power {
    Off,
    /// The boot ROM: takes firmware download frames.
    BootRom,
    Running,
    /// Crashed: answers nothing until power-cycled.
    Crashed,
}

/// Bytes of the chip's buffers: the outbox's messages, then the published
/// RX batch. [`Chip::with_mem`] takes them from the caller, so the chip
/// itself stays small enough to build by value (a kernel module hands in a
/// `vmalloc` buffer; [`Chip::new`] uses [`InlineMem`]).
pub const MEM_LEN: usize = OUTBOX_MAX * MSG_LEN_MAX + BATCH_LEN_MAX + WIRED_SLOTS * WIRED_LEN;

/// Ethernet frames the AP's wired side holds for the host to take
/// ([`Chip::take_ethernet`]); more are dropped and counted.
pub const WIRED_SLOTS: usize = 32;
/// Largest Ethernet frame on the AP's wired side (DA, SA, type, 1500 bytes
/// of payload, and room for a VLAN tag).
pub const WIRED_LEN: usize = 1518;
const WIRED_AT: usize = OUTBOX_MAX * MSG_LEN_MAX + BATCH_LEN_MAX;

/// [`MEM_LEN`] bytes held inline (host tests box the whole chip).
pub struct InlineMem(pub [u8; MEM_LEN]);

impl core::ops::Deref for InlineMem {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl core::ops::DerefMut for InlineMem {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

/// A bounded queue of messages whose bytes live in the chip's memory,
/// message `i` at `i * SLOT`: the firmware's queue for the host
/// (`Outbox<OUTBOX_MAX, MSG_LEN_MAX>`) and the AP's wired side.
struct Outbox<const N: usize = OUTBOX_MAX, const SLOT: usize = MSG_LEN_MAX> {
    lens: [u16; N],
    head: usize,
    len: usize,
}

impl<const N: usize, const SLOT: usize> Outbox<N, SLOT> {
    const EMPTY: Self = Outbox {
        lens: [0; N],
        head: 0,
        len: 0,
    };
    fn push_with(&mut self, msgs: &mut [u8], f: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        if self.len == N {
            return false;
        }
        let i = (self.head + self.len) % N;
        match f(&mut msgs[i * SLOT..(i + 1) * SLOT]) {
            Some(n) => {
                self.lens[i] = n as u16;
                self.len += 1;
                true
            }
            None => false,
        }
    }
    fn front<'m>(&self, msgs: &'m [u8]) -> Option<&'m [u8]> {
        let i = self.head;
        (self.len > 0).then(|| &msgs[i * SLOT..i * SLOT + usize::from(self.lens[i])])
    }
    fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % N;
            self.len -= 1;
        }
    }
}

/// The simulated chip; `M` holds its buffers ([`MEM_LEN`] bytes).
pub struct Chip<M = InlineMem> {
    pub cfg: ChipConfig,
    pub ap: Ap,
    power: Power,
    uptime_ms: u64,
    outbox: Outbox,
    /// Ethernet frames from the station for the AP's wired side.
    wired: Outbox<WIRED_SLOTS, WIRED_LEN>,
    tx_seq: [u8; SPACES],
    /// The outbox's messages, then the published batch (what the control
    /// byte announces, whole blocks).
    mem: M,
    batch_len: usize,
    batch_count: u8,
    /// Toggle of the published batch's control byte.
    ctrl_toggle: bool,
    /// The control byte of the batch the host consumed last.
    last_ctrl: u8,
    /// Data toggles the chip expects in the CMD53 address.
    rx_data_toggle: bool,
    tx_data_toggle: bool,
    in_flight: u16,
    irq: bool,
    ctrl_reads: u64,
    data_reads: u64,
    commands: u64,
    tx_seen: u64,
    writes: u64,
    next_beacon_ms: u64,
    downlink_seen: u64,
    boot: BootRom,
    pending_confirms: [(u32, u32); MULTI_CONFIRM_MAX],
    n_pending_confirms: usize,
    pub stats: ChipStats,
}

impl Chip<InlineMem> {
    pub fn new(cfg: ChipConfig) -> Self {
        Chip::with_mem(cfg, InlineMem([0; MEM_LEN]))
    }
}

impl<M: core::ops::DerefMut<Target = [u8]>> Chip<M> {
    /// A chip whose buffers are `mem` (at least [`MEM_LEN`] bytes).
    ///
    /// # Panics
    /// If `mem` is shorter than [`MEM_LEN`].
    pub fn with_mem(cfg: ChipConfig, mem: M) -> Self {
        assert!(
            mem.len() >= MEM_LEN,
            "chip memory: {} of {MEM_LEN} bytes",
            mem.len()
        );
        Chip {
            cfg,
            ap: Ap::default(),
            power: Power::Off,
            uptime_ms: 0,
            outbox: Outbox::EMPTY,
            wired: Outbox::EMPTY,
            tx_seq: [0; SPACES],
            mem,
            batch_len: 0,
            batch_count: 0,
            ctrl_toggle: false,
            last_ctrl: 0,
            rx_data_toggle: false,
            tx_data_toggle: false,
            in_flight: 0,
            irq: false,
            ctrl_reads: 0,
            data_reads: 0,
            commands: 0,
            tx_seen: 0,
            writes: 0,
            next_beacon_ms: 0,
            downlink_seen: 0,
            boot: BootRom::default(),
            pending_confirms: [(0, 0); MULTI_CONFIRM_MAX],
            n_pending_confirms: 0,
            stats: ChipStats::default(),
        }
    }

    /// Power on (or power-cycle) straight into running firmware: the
    /// startup indication grants `input_buffers` credits.
    pub fn power_on(&mut self) {
        self.cold_reset();
        self.start_firmware();
    }

    /// A power cycle forgets everything but the counters, the clock and
    /// the AP (which loses the association).
    /// In place: the ~190 KiB of message buffers are never rebuilt (only
    /// their lengths and indexes), so a power cycle builds nothing large by
    /// value; that matters once the model runs inside the kernel.
    fn cold_reset(&mut self) {
        self.ap.associated = false;
        self.ap.authenticated = false;
        self.power = Power::Off;
        self.outbox.head = 0;
        self.outbox.len = 0;
        self.wired.head = 0;
        self.wired.len = 0;
        self.tx_seq = [0; SPACES];
        self.batch_len = 0;
        self.batch_count = 0;
        self.ctrl_toggle = false;
        self.last_ctrl = 0;
        self.rx_data_toggle = false;
        self.tx_data_toggle = false;
        self.in_flight = 0;
        self.irq = false;
        self.ctrl_reads = 0;
        self.data_reads = 0;
        self.commands = 0;
        self.tx_seen = 0;
        self.writes = 0;
        self.next_beacon_ms = 0;
        self.downlink_seen = 0;
        self.boot = BootRom::default();
        self.n_pending_confirms = 0;
    }

    fn start_firmware(&mut self) {
        self.power = Power::Running;
        if self.cfg.mute {
            return;
        }
        let n = self.cfg.input_buffers;
        self.send(WSM, |b, s| wire::startup(b, s, n, MSG_LEN_MAX as u16));
    }

    /// Power on into the boot ROM: the host must download the firmware
    /// ([`bes2600_core`'s `fwload`]) before the startup indication comes.
    pub fn power_on_boot_rom(&mut self) {
        self.cold_reset();
        self.power = Power::BootRom;
    }

    /// Firmware images fully received and started.
    pub fn boots(&self) -> u64 {
        self.boot.booted
    }
    /// 4-byte register writes the boot ROM took (address, value), in order.
    pub fn reg_writes(&self) -> &[(u32, u32)] {
        &self.boot.regs[..self.boot.n_regs]
    }
    /// Memory writes (address, bytes) the boot ROM verified, in order.
    pub fn mem_writes(&self) -> &[(u32, usize)] {
        &self.boot.mems[..self.boot.n_mems]
    }

    pub fn uptime_ms(&self) -> u64 {
        self.uptime_ms
    }
    pub fn crashed(&self) -> bool {
        self.power == Power::Crashed
    }
    pub fn in_flight(&self) -> u16 {
        self.in_flight
    }
    pub fn outbox_len(&self) -> usize {
        self.outbox.len + usize::from(self.batch_count)
    }

    /// The IRQ line: true once per "data became pending" edge.
    pub fn take_irq(&mut self) -> bool {
        core::mem::take(&mut self.irq)
    }

    fn degraded(&self) -> bool {
        matches!(self.cfg.faults.degrade_after_ms, Some(t) if self.uptime_ms >= t)
    }

    /// Advances the chip's clock.
    pub fn tick(&mut self, now_ms: u64) {
        self.uptime_ms = now_ms;
        if let (Some(every), Power::Running) = (self.cfg.beacon_interval_ms, self.power) {
            while self.next_beacon_ms <= now_ms && self.outbox_room() > OUTBOX_CONTROL_RESERVE {
                self.next_beacon_ms += every.max(1);
                let ap = self.ap;
                self.send(WSM, |b, s| {
                    let mut frame = [0u8; ap::FRAME_LEN_MAX];
                    let n = ap::beacon(&ap, &mut frame);
                    wire::rx(b, s, ap.channel, ap.rssi, &frame[..n])
                });
            }
            // Beacons the outbox had no room for are lost, as on air.
            if self.next_beacon_ms <= now_ms {
                self.next_beacon_ms = now_ms + every.max(1);
            }
        }
        if let Some(t) = self.cfg.faults.exception_at_ms {
            if now_ms >= t && self.power == Power::Running {
                self.cfg.faults.exception_at_ms = None;
                self.stats.exceptions_raised += 1;
                self.send(WSM, |b, s| {
                    wire::exception(b, s, b"sim: assert at lmac.c:1234")
                });
                self.power = Power::Crashed;
            }
        }
    }

    fn send(&mut self, space: usize, f: impl FnOnce(&mut [u8], u8) -> Option<usize>) -> bool {
        if self.power == Power::Crashed {
            return false;
        }
        let seq = self.tx_seq[space];
        let ok = self
            .outbox
            .push_with(&mut self.mem[..OUTBOX_MAX * MSG_LEN_MAX], |b| f(b, seq));
        if ok {
            self.tx_seq[space] = (seq + 1) % 8;
            self.irq = true;
        } else {
            self.stats.outbox_full += 1;
        }
        ok
    }

    /// Flushes TX confirms collected from one write into one message.
    fn flush_confirms(&mut self) {
        let n = self.n_pending_confirms;
        if n == 0 {
            return;
        }
        let confirms = self.pending_confirms;
        let sent = if n == 1 {
            let (pid, st) = confirms[0];
            self.send(WSM, |b, s| wire::tx_confirm(b, s, pid, st))
        } else {
            self.send(WSM, |b, s| wire::multi_tx_confirm(b, s, &confirms[..n]))
        };
        if sent {
            // Every entry of a (multi-)TX confirm frees one input buffer.
            self.in_flight = self.in_flight.saturating_sub(n as u16);
            self.n_pending_confirms = 0;
        }
        // Otherwise the firmware keeps them until the host reads.
    }

    /// The AP sends `n` data frames of `len` bytes to us. Returns how many
    /// the chip took off the air (its outbox is bounded; in the degraded
    /// mode most of those are then lost).
    pub fn offer_downlink(&mut self, n: usize, len: usize) -> usize {
        let mut taken = 0;
        for _ in 0..n {
            // Lost in the degraded mode still counts as taken off the air.
            if self
                .downlink(|ap, frame| Some(ap::data_frame(ap, len, frame)))
                .is_none()
            {
                break;
            }
            taken += 1;
        }
        taken
    }

    /// An Ethernet frame from the AP's wired side (DA, SA, EtherType,
    /// payload) for the station: the AP sends it on air as an RFC 1042
    /// data frame ([`ap::from_ethernet`]). `false` when the outbox has no
    /// room for it (the caller keeps it and offers it again), or when it is
    /// not for the station (the AP drops it: counted in neither).
    pub fn offer_ethernet(&mut self, eth: &[u8]) -> bool {
        match self.downlink(|ap, frame| ap::from_ethernet(ap, eth, frame)) {
            Some(true) => {
                self.stats.downlink_ethernet += 1;
                true
            }
            Some(false) => true,
            None => false,
        }
    }

    /// One downlink data frame, built by `build` (`None`: not for us):
    /// `None` when the outbox is full, `Some(false)` when dropped on
    /// purpose (not for the station, lost in the degraded mode),
    /// `Some(true)` when queued for the host.
    fn downlink(&mut self, build: impl FnOnce(&Ap, &mut [u8]) -> Option<usize>) -> Option<bool> {
        if self.outbox_room() <= OUTBOX_CONTROL_RESERVE {
            return None;
        }
        let mut frame = [0u8; ap::FRAME_LEN_MAX];
        let ap = self.ap;
        let Some(flen) = build(&ap, &mut frame) else {
            return Some(false);
        };
        self.stats.downlink_offered += 1;
        self.downlink_seen += 1;
        if self.degraded() {
            let keep = self.cfg.faults.degraded_keep_one_in.max(1);
            if self.downlink_seen % u64::from(keep) != 0 {
                // Lost on the chip: the AP sent it, the host never sees it.
                self.stats.downlink_dropped += 1;
                return Some(false);
            }
        }
        let ok = self.send(WSM, |b, s| {
            wire::rx(b, s, ap.channel, ap.rssi, &frame[..flen])
        });
        ok.then_some(true)
    }

    /// The oldest Ethernet frame the AP's wired side holds, copied into
    /// `out` (at least [`WIRED_LEN`] bytes); its length, or `None`.
    pub fn take_ethernet(&mut self, out: &mut [u8]) -> Option<usize> {
        let f = self.wired.front(&self.mem[WIRED_AT..])?;
        let n = f.len().min(out.len());
        out[..n].copy_from_slice(&f[..n]);
        self.wired.pop();
        Some(n)
    }

    /// Room left in the firmware's outbox.
    pub fn outbox_room(&self) -> usize {
        OUTBOX_MAX - self.outbox.len
    }

    fn publish(&mut self) {
        if self.batch_count != 0 || self.power == Power::Off {
            return;
        }
        let (msgs, batch) = self.mem.split_at_mut(OUTBOX_MAX * MSG_LEN_MAX);
        let mut rx = wire::RxBatch::new(&mut batch[..BATCH_LEN_MAX]);
        while let Some(m) = self.outbox.front(msgs) {
            if !rx.push(m) {
                break;
            }
            self.outbox.pop();
        }
        let count = rx.count();
        let len = rx.finish();
        self.batch_count = count as u8;
        self.batch_len = if count == 0 { 0 } else { len };
    }

    fn ctrl_byte(&self) -> u8 {
        if self.batch_count == 0 {
            0
        } else {
            ((self.batch_len / wire::BLOCK) as u8 & 0x7f) | (u8::from(self.ctrl_toggle) << 7)
        }
    }

    /// CMD52 read of a function-1 register.
    pub fn readb(&mut self, addr: u32) -> Result<u8, ChipBusError> {
        match self.power {
            Power::Off => Err(ChipBusError::Timeout),
            Power::BootRom => Ok(self.boot_readb(addr)),
            Power::Running | Power::Crashed => Ok(match addr {
                0x001 => {
                    self.ctrl_reads += 1;
                    let f = self.cfg.faults;
                    if every(f.ctrl_crc_every, self.ctrl_reads) {
                        // The read failed on the bus: the interrupt stays
                        // asserted (an SDIO card interrupt is a level on
                        // DAT1 until the read clears it), so the host sees
                        // it again.
                        self.stats.ctrl_crc_injected += 1;
                        self.irq = true;
                        return Err(ChipBusError::Crc);
                    }
                    // Reading the control byte clears the slave interrupt
                    // (`bes2600_sdio.c` 644: "clear sdio slave gen interrupt").
                    self.irq = false;
                    if every(f.stale_ctrl_every, self.ctrl_reads) && self.last_ctrl != 0 {
                        self.stats.stale_ctrl_injected += 1;
                        self.irq = true; // the real batch is still to come
                        return Ok(self.last_ctrl);
                    }
                    self.publish();
                    self.ctrl_byte()
                }
                // Bit 0: nothing pending (`bes2600_sdio.c` 703-707).
                0x000 => u8::from(self.batch_count == 0 && self.outbox.len == 0),
                // SLAVE_STATUS: MCU and Wi-Fi ready.
                0x10c => 0x05,
                _ => 0,
            }),
        }
    }

    /// CMD52 write of a function-1 register (host interrupt, wake-up
    /// configuration): recorded, no effect in the model.
    pub fn writeb(&mut self, addr: u32, _val: u8) -> Result<(), ChipBusError> {
        if self.power == Power::Off {
            return Err(ChipBusError::Timeout);
        }
        let _ = addr;
        Ok(())
    }

    /// A CMD53 read: `buf.len()` must be what the argument moves.
    pub fn cmd53_read(&mut self, arg: u32, buf: &mut [u8]) -> Result<(), ChipBusError> {
        if self.power == Power::Off {
            return Err(ChipBusError::Timeout);
        }
        let a = Cmd53Arg::parse(arg);
        if a.write || a.func != 1 || !a.inc || a.bytes() != buf.len() {
            self.stats.bad_reads += 1;
            return Err(ChipBusError::Other);
        }
        if self.power == Power::BootRom {
            return self.boot_read(a, buf);
        }
        if self.batch_count == 0 || wire::addr_len(a.addr) as usize != self.batch_len {
            self.stats.bad_reads += 1;
            return Err(ChipBusError::Other);
        }
        if wire::addr_toggle(a.addr) != self.rx_data_toggle {
            self.stats.rx_toggle_errors += 1;
            return Err(ChipBusError::Other);
        }
        self.data_reads += 1;
        let f = self.cfg.faults;
        if every(f.data_crc_every, self.data_reads) {
            self.stats.data_crc_injected += 1;
            return Err(ChipBusError::Crc);
        }
        let at = OUTBOX_MAX * MSG_LEN_MAX;
        buf[..self.batch_len].copy_from_slice(&self.mem[at..at + self.batch_len]);
        buf[self.batch_len..].fill(0);
        self.stats.rx_batches += 1;
        self.stats.rx_msgs += u64::from(self.batch_count);
        self.last_ctrl = self.ctrl_byte();
        self.ctrl_toggle = !self.ctrl_toggle;
        self.rx_data_toggle = !self.rx_data_toggle;
        self.batch_count = 0;
        self.batch_len = 0;
        self.flush_confirms();
        if self.outbox.len > 0 {
            self.irq = true;
        }
        Ok(())
    }

    /// A CMD53 write: `data.len()` must be what the argument moves.
    pub fn cmd53_write(&mut self, arg: u32, data: &[u8]) -> Result<(), ChipBusError> {
        if self.power == Power::Off {
            return Err(ChipBusError::Timeout);
        }
        let a = Cmd53Arg::parse(arg);
        if !a.write || a.func != 1 || !a.inc || a.bytes() != data.len() {
            self.stats.bad_writes += 1;
            return Err(ChipBusError::Other);
        }
        if self.power == Power::BootRom {
            // Before the firmware runs the address is the write's size.
            let n = (a.addr as usize).min(data.len());
            self.boot_frame(&data[..n]);
            return Ok(());
        }
        self.writes += 1;
        if self.cfg.faults.write_fail_at == Some(self.writes) {
            self.cfg.faults.write_fail_at = None; // one shot
            return Err(ChipBusError::Other);
        }
        if wire::addr_toggle(a.addr) != self.tx_data_toggle {
            self.stats.tx_toggle_errors += 1;
            return Ok(()); // the firmware drops a repeated write
        }
        self.tx_data_toggle = !self.tx_data_toggle;
        let Some((slot, n)) = wire::tx_slots(wire::addr_len(a.addr)) else {
            self.stats.bad_writes += 1;
            return Ok(());
        };
        if n * slot > data.len() {
            self.stats.bad_writes += 1;
            return Ok(());
        }
        // The whole write lands in input buffers before any of it is
        // processed: a write needs as many free buffers as it has messages.
        if !self.cfg.mute && self.power == Power::Running {
            let k = n as u16;
            self.in_flight += k;
            self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight);
            if self.in_flight > self.cfg.input_buffers {
                self.stats.overruns += u64::from(k.min(self.in_flight - self.cfg.input_buffers));
            }
        }
        for i in 0..n {
            let s = &data[i * slot..(i + 1) * slot];
            let Some(req) = wire::Req::parse(s) else {
                self.stats.bad_writes += 1;
                continue;
            };
            // The slot must be the one the message's own length (plus its
            // 4-byte timestamp) asks for.
            let want = match (s.len().min(usize::from(wire::le16(s, 0).unwrap_or(0))) + 4)
                .div_ceil(wire::BLOCK)
            {
                b @ 1..=3 => b * wire::BLOCK,
                _ => wire::MSG_MAX,
            };
            if want != slot {
                self.stats.slot_mismatches += 1;
            }
            if req.mcu() && n > 1 {
                self.stats.mcu_not_alone += 1;
            }
            self.request(req);
        }
        if self.cfg.faults.restart_after_write == Some(self.writes) {
            self.cfg.faults.restart_after_write = None; // one shot
            self.spontaneous_restart();
            return Ok(());
        }
        self.flush_confirms();
        Ok(())
    }

    fn request(&mut self, req: wire::Req<'_>) {
        if self.power == Power::Crashed {
            return;
        }
        self.stats.requests += 1;
        if self.cfg.mute {
            return;
        }
        let base = req.base();
        if base == ids::TX {
            let Some(t) = wire::tx_req(req.body) else {
                self.stats.bad_writes += 1;
                return;
            };
            self.stats.tx_frames += 1;
            self.stats.tx_bytes += t.frame.len() as u64;
            self.stats.last_tx = LastTx {
                max_tx_rate: t.max_tx_rate,
                queue_byte: t.queue_id,
                rate_policy: t.rate_policy,
                expire_time: t.expire_time,
                ht_tx_parameters: t.ht_tx_parameters,
                if_id: req.link(),
            };
            self.ap_uplink(t.frame);
            if self.n_pending_confirms == MULTI_CONFIRM_MAX {
                self.flush_confirms();
            }
            self.tx_seen += 1;
            let f = self.cfg.faults;
            let st = if every(f.requeue_every, self.tx_seen) {
                status::REQUEUE
            } else {
                status::SUCCESS
            };
            self.pending_confirms[self.n_pending_confirms] = (t.packet_id, st);
            self.n_pending_confirms += 1;
            return;
        }
        self.commands += 1;
        let f = self.cfg.faults;
        if every(f.drop_confirm_every, self.commands) {
            self.stats.confirms_dropped += 1;
            return;
        }
        if req.mcu() {
            // `wsm_vendor_rf_cmd` body: cmd_type first (`wsm.c` 345).
            let cmd_type = wire::le32(req.body, 0).unwrap_or(u32::MAX);
            let cmd = (base & 0x3f) as u8;
            if self.send(MCU, |b, s| {
                wire::mcu(b, s, cmd, ids::MCU_CONFIRM_LABEL, cmd_type)
            }) {
                self.in_flight = self.in_flight.saturating_sub(1);
            }
            return;
        }
        match base {
            ids::START_SCAN => {
                let Some((band, num_channels, _)) = wire::scan_req(req.body) else {
                    self.confirm(base, status::INVALID_PARAMETER, &[]);
                    return;
                };
                self.stats.scan_requests += 1;
                let reject = if band == 1 && num_channels > 1 && self.cfg.reject_5ghz_multi_scan {
                    self.stats.scan_rejects_5ghz_multi += 1;
                    Some(status::INVALID_PARAMETER)
                } else if self.degraded() {
                    Some(status::FAILURE)
                } else {
                    None
                };
                if let Some(st) = reject {
                    self.stats.scan_rejects += 1;
                    self.confirm(base, st, &[]);
                    return;
                }
                self.confirm(base, status::SUCCESS, &[]);
                // One probe response from our AP, then done.
                let ap = self.ap;
                self.send(WSM, |b, s| {
                    let mut frame = [0u8; ap::FRAME_LEN_MAX];
                    let n = ap::probe_response(&ap, &mut frame);
                    wire::rx(b, s, ap.channel, ap.rssi, &frame[..n])
                });
                if every(
                    self.cfg.faults.drop_scan_complete_every,
                    self.stats.scan_requests,
                ) {
                    self.stats.scan_completes_dropped += 1;
                } else {
                    self.send(WSM, |b, s| {
                        wire::scan_complete(b, s, status::SUCCESS, num_channels)
                    });
                }
            }
            ids::JOIN => {
                let st = if wire::join_bssid(req.body) == Some(self.ap.bssid) {
                    status::SUCCESS
                } else {
                    status::FAILURE
                };
                self.confirm(base, st, &[0; 8]);
            }
            ids::SET_PM => {
                self.stats.pm_requests += 1;
                if self.cfg.pm_supported && !self.cfg.faults.pm_refused {
                    let mode = req.body.first().copied().unwrap_or(0);
                    self.stats.last_pm_mode = mode;
                    self.confirm(base, status::SUCCESS, &[]);
                    self.send(WSM, |b, s| wire::set_pm_complete(b, s, mode));
                } else {
                    self.stats.pm_refused += 1;
                    self.confirm(base, status::FAILURE, &[]);
                }
            }
            ids::EDCA_PARAMS => match wire::edca(req.body) {
                Some(p) => {
                    self.stats.edca_requests += 1;
                    self.stats.last_edca = p;
                    self.confirm(base, status::SUCCESS, &[]);
                }
                None => self.confirm(base, status::INVALID_PARAMETER, &[]),
            },
            ids::READ_MIB => {
                let mut body = [0u8; 4];
                body[..2].copy_from_slice(&wire::le16(req.body, 0).unwrap_or(0).to_le_bytes());
                self.confirm(base, status::SUCCESS, &body);
            }
            ids::ADD_KEY => match wire::add_key(req.body) {
                Some((ty, _)) if usize::from(ty) < self.stats.keys_by_type.len() => {
                    self.stats.keys_by_type[usize::from(ty)] += 1;
                    self.confirm(base, status::SUCCESS, &[]);
                }
                _ => self.confirm(base, status::INVALID_PARAMETER, &[]),
            },
            _ => self.confirm(base, status::SUCCESS, &[]),
        }
    }

    fn confirm(&mut self, req: u16, st: u32, body: &[u8]) {
        if self.send(WSM, |b, s| wire::confirm(b, s, req, st, body)) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    /// What the AP does with a frame the host transmitted.
    fn ap_uplink(&mut self, frame: &[u8]) {
        if ap::is_data(frame) {
            self.ap.on_uplink(frame);
            let ap = self.ap;
            if ap.associated && self.wired.len == WIRED_SLOTS {
                self.stats.wired_full += 1;
            } else if ap.associated
                && self.wired.push_with(&mut self.mem[WIRED_AT..], |out| {
                    ap::to_ethernet(&ap, frame, out)
                })
            {
                self.stats.uplink_ethernet += 1;
            } else {
                self.stats.uplink_ethernet_dropped += 1;
            }
            return;
        }
        if let Some(reply) = self.ap.on_uplink(frame) {
            let ap = self.ap;
            self.send(WSM, |b, s| {
                let mut out = [0u8; ap::FRAME_LEN_MAX];
                let n = ap::mgmt_reply(&ap, reply, &mut out);
                wire::rx(b, s, ap.channel, ap.rssi, &out[..n])
            });
        }
    }

    /// Queues an arbitrary message for the host (trace replay, tests); the
    /// chip stamps its own sequence number on it.
    pub fn inject(&mut self, msg: &[u8]) -> bool {
        let Some(raw) = wire::le16(msg, 2) else {
            return false;
        };
        let space = if raw & 0x0F00 == 0x0C00 { MCU } else { WSM };
        self.send(space, |b, s| {
            let n = msg.len().min(b.len());
            b[..n].copy_from_slice(&msg[..n]);
            let id = (raw & !0xE000) | (u16::from(s) << 13);
            b[2..4].copy_from_slice(&id.to_le_bytes());
            Some(n)
        })
    }

    /// An event indication (e.g. a BSS-lost), for tests.
    pub fn indicate_event(&mut self, event_id: u32, data: u32) {
        self.send(WSM, |b, s| wire::event(b, s, event_id, data));
    }

    /// The firmware reboots by itself (a watchdog): what it had not sent
    /// is lost, a new startup indication comes with fresh sequence
    /// numbers; the SDIO toggles (slave hardware state) are kept.
    pub fn spontaneous_restart(&mut self) {
        self.tx_seq = [0; SPACES];
        self.in_flight = 0;
        self.n_pending_confirms = 0;
        self.outbox.len = 0;
        self.batch_count = 0;
        self.batch_len = 0;
        self.start_firmware();
    }

    // ---- boot ROM ---------------------------------------------------------

    fn boot_readb(&mut self, addr: u32) -> u8 {
        let b = &self.boot;
        let out_len = if let Some(r) = b.reply {
            r.len() as u16
        } else if b.dpd_pending {
            self.cfg.dpd_len
        } else {
            0
        };
        match addr {
            // Reply (or DPD) length, le16 at 0/1 (`bes_slave_tx_ready`).
            0x000 => out_len.to_le_bytes()[0],
            0x001 => out_len.to_le_bytes()[1],
            // Buffer count and receive size (`bes_slave_rx_ready`).
            0x108 => 1,
            0x109 => self.cfg.boot_rx_buf.to_le_bytes()[0],
            0x10a => self.cfg.boot_rx_buf.to_le_bytes()[1],
            // SLAVE_STATUS: MCU ready, DPD ready while the blob waits.
            0x10c => 0x01 | (u8::from(b.dpd_pending) << 1),
            _ => 0,
        }
    }

    fn boot_read(&mut self, a: Cmd53Arg, buf: &mut [u8]) -> Result<(), ChipBusError> {
        if let Some(r) = self.boot.reply {
            if a.addr as usize != r.len() || buf.len() < r.len() {
                self.stats.bad_reads += 1;
                return Err(ChipBusError::Other);
            }
            buf[..r.len()].copy_from_slice(&r);
            self.boot.reply = None;
            if core::mem::take(&mut self.boot.run_pending) {
                let stages = u64::from(self.cfg.boot_stages.max(1));
                if self.boot.booted < stages && !self.boot.dpd_written {
                    // The boot image runs its calibration and offers the
                    // DPD data, then takes the next image.
                    self.boot.dpd_pending = true;
                    self.irq = true;
                } else {
                    self.start_firmware();
                }
            }
            return Ok(());
        }
        if self.boot.dpd_pending {
            let n = usize::from(self.cfg.dpd_len);
            if a.addr as usize != n || buf.len() < n {
                self.stats.bad_reads += 1;
                return Err(ChipBusError::Other);
            }
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = (i as u8).wrapping_mul(7) ^ 0xD0;
            }
            self.boot.dpd_pending = false;
            return Ok(());
        }
        self.stats.bad_reads += 1;
        Err(ChipBusError::Other)
    }

    fn boot_frame(&mut self, data: &[u8]) {
        use wire::fw;
        const OK: u32 = 0;
        const ERR_LEN: u32 = 1;
        const ERR_CRC: u32 = 2;
        let (Some(&ty), Some(&seq), Some(len)) = (data.first(), data.get(1), wire::le16(data, 2))
        else {
            self.stats.bad_writes += 1;
            return;
        };
        let Some(p) = data.get(4..4 + usize::from(len)) else {
            self.boot_reply(seq, ERR_LEN);
            return;
        };
        let b = &mut self.boot;
        // Frame numbers count from 0 at each download-info frame.
        if ty != fw::INFO && seq != b.next_seq {
            self.boot_reply(seq, ERR_LEN);
            return;
        }
        let status = match ty {
            fw::INFO => match (wire::le32(p, 0), wire::le32(p, 4)) {
                (Some(code_len), Some(addr)) if seq == 0 => {
                    b.code_len = code_len as usize;
                    b.load_addr = addr;
                    b.received = 0;
                    b.crc = 0;
                    b.verified = false;
                    b.active = true;
                    OK
                }
                _ => ERR_LEN,
            },
            fw::DATA => match wire::le32(p, 0) {
                Some(addr)
                    if b.active
                        && addr == b.load_addr.wrapping_add(b.received as u32)
                        && b.received + (p.len() - 4) <= b.code_len =>
                {
                    let n = (p.len() - 4).min(BOOT_CHUNK_MAX);
                    let chunk = &p[4..4 + n];
                    // The CRC over what arrived, with the injected flip (no
                    // copy: this runs on a 16 KiB kernel stack, too).
                    match self.cfg.faults.fw_corrupt_at {
                        Some(at) if (b.received..b.received + n).contains(&at) => {
                            let i = at - b.received;
                            b.crc = wire::crc32_update(b.crc, &chunk[..i]);
                            b.crc = wire::crc32_update(b.crc, &[chunk[i] ^ 0xff]);
                            b.crc = wire::crc32_update(b.crc, &chunk[i + 1..]);
                        }
                        _ => b.crc = wire::crc32_update(b.crc, chunk),
                    }
                    b.received += n;
                    if b.code_len == 4 && b.received == 4 && b.n_regs < b.regs.len() {
                        // A register write (`bes_firmware_download_write_reg`):
                        // info + one data frame, no end.
                        let v = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                        b.regs[b.n_regs] = (b.load_addr, v);
                        b.n_regs += 1;
                    }
                    OK
                }
                _ => ERR_LEN,
            },
            fw::END => match wire::le32(p, 0) {
                Some(crc) if b.active && b.received == b.code_len && crc == b.crc => {
                    b.verified = true;
                    if b.n_mems < b.mems.len() {
                        b.mems[b.n_mems] = (b.load_addr, b.code_len);
                        b.n_mems += 1;
                    }
                    if b.load_addr == 0x2008_C000 {
                        b.dpd_written = true;
                    }
                    OK
                }
                _ => ERR_CRC,
            },
            fw::RUN => {
                if b.verified && wire::le32(p, 0) == Some(b.load_addr) {
                    b.booted += 1;
                    b.run_pending = true;
                    b.active = false;
                    OK
                } else {
                    ERR_CRC
                }
            }
            _ => ERR_LEN,
        };
        self.boot_reply(seq, status);
    }

    fn boot_reply(&mut self, seq: u8, status: u32) {
        self.boot.reply = Some(wire::fw_reply(seq, status));
        self.boot.next_seq = seq.wrapping_add(1);
        self.irq = true;
    }
}

/// Fault schedule: the `count`-th event is hit when `n` divides it (`n` =
/// 0: never).
/// The faults a running chip takes from outside (the lab, through the
/// simulated host's debugfs `fault` file), as `NAME VALUE`:
/// - `ctrl_crc_every N`: every N-th control-byte read fails with a CRC error;
/// - `data_crc_every N`: every N-th data read fails with a CRC error;
/// - `stale_ctrl_every N`: every N-th control read shows the previous
///   control byte (old toggle, stale length: a toggle mismatch);
/// - `requeue_every N`: every N-th TX frame is confirmed `WSM_REQUEUE`;
/// - `drop_confirm_every N`: the confirm of every N-th command never comes;
/// - `exception_in_ms N`: a firmware exception N ms from now;
/// - `degrade_in_ms N`: the Bug #5 degradation N ms from now (scans fail,
///   one downlink frame in `degraded_keep_one_in` arrives; default 4);
/// - `degraded_keep_one_in N`;
/// - `clear 0`: all of them off.
///
/// `N = 0` turns an `_every` fault off.
pub const FAULT_NAMES: &[&str] = &[
    "ctrl_crc_every",
    "data_crc_every",
    "stale_ctrl_every",
    "requeue_every",
    "drop_confirm_every",
    "drop_scan_complete_every",
    "exception_in_ms",
    "degrade_in_ms",
    "degraded_keep_one_in",
    "pm_refused",
    "clear",
];

/// Why a fault spec was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultSpecError {
    /// Not `NAME VALUE`.
    Shape,
    /// A name not in [`FAULT_NAMES`].
    UnknownName,
    /// The value is not a whole number in range.
    Value,
}

/// Parses `NAME VALUE` (one line, surrounding whitespace allowed).
pub fn parse_fault(spec: &str) -> Result<(&str, u64), FaultSpecError> {
    let mut it = spec.split_whitespace();
    let (Some(name), Some(v), None) = (it.next(), it.next(), it.next()) else {
        return Err(FaultSpecError::Shape);
    };
    let name = FAULT_NAMES
        .iter()
        .copied()
        .find(|n| *n == name)
        .ok_or(FaultSpecError::UnknownName)?;
    let v: u64 = v.parse().map_err(|_| FaultSpecError::Value)?;
    if name.ends_with("_every") || name == "degraded_keep_one_in" {
        u32::try_from(v).map_err(|_| FaultSpecError::Value)?;
    }
    if name == "pm_refused" && v > 1 {
        return Err(FaultSpecError::Value);
    }
    Ok((name, v))
}

impl<M: core::ops::DerefMut<Target = [u8]>> Chip<M> {
    /// Applies one fault spec ([`FAULT_NAMES`]) to the running model.
    pub fn apply_fault(&mut self, spec: &str) -> Result<(), FaultSpecError> {
        let (name, v) = parse_fault(spec)?;
        let small = u32::try_from(v).unwrap_or(u32::MAX);
        let f = &mut self.cfg.faults;
        match name {
            "ctrl_crc_every" => f.ctrl_crc_every = small,
            "data_crc_every" => f.data_crc_every = small,
            "stale_ctrl_every" => f.stale_ctrl_every = small,
            "requeue_every" => f.requeue_every = small,
            "drop_confirm_every" => f.drop_confirm_every = small,
            "drop_scan_complete_every" => f.drop_scan_complete_every = small,
            "exception_in_ms" => f.exception_at_ms = Some(self.uptime_ms.saturating_add(v)),
            "degrade_in_ms" => {
                f.degrade_after_ms = Some(self.uptime_ms.saturating_add(v));
                if f.degraded_keep_one_in == 0 {
                    f.degraded_keep_one_in = 4;
                }
            }
            "degraded_keep_one_in" => f.degraded_keep_one_in = small,
            "pm_refused" => f.pm_refused = v == 1,
            _ => *f = Faults::default(),
        }
        Ok(())
    }
}

fn every(n: u32, count: u64) -> bool {
    n != 0 && count % u64::from(n) == 0
}

/// Largest data frame the model takes (bytes).
const BOOT_CHUNK_MAX: usize = 32 * 1024;

/// Boot-ROM state during a firmware download.
#[derive(Clone, Copy, Debug, Default)]
struct BootRom {
    active: bool,
    next_seq: u8,
    code_len: usize,
    load_addr: u32,
    received: usize,
    crc: u32,
    verified: bool,
    reply: Option<[u8; 8]>,
    run_pending: bool,
    dpd_pending: bool,
    dpd_written: bool,
    booted: u64,
    regs: [(u32, u32); 4],
    n_regs: usize,
    mems: [(u32, usize); 8],
    n_mems: usize,
}
