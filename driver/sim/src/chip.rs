//! The chip and its firmware, as the host sees them over SDIO. `no_std`,
//! fixed capacity: it can later serve as a simulated bus inside the kernel.

use bes2600_core::bh::BusError;
use bes2600_core::sdio::{self, TxBatch, RX_BATCH_LEN_MAX, RX_BATCH_MAX};
use bes2600_core::wsm::{self, chip as enc, status, ReqView, SeqSpace, TxConfirm, MSG_LEN_MAX};

use crate::ap::{self, Ap};

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
    /// Corrupt the CRC8 of every n-th control-word read.
    pub ctrl_crc_every: u32,
    /// Fail every n-th data read with a bus CRC error (data stays pending).
    pub data_crc_every: u32,
    /// Present the previous (consumed) control word on every n-th read: a
    /// stale length with the old toggle.
    pub stale_ctrl_every: u32,
    /// Confirm every n-th TX frame with `WSM_REQUEUE` (the host must send
    /// it again).
    pub requeue_every: u32,
    /// Fail the n-th SDIO write (1-based) with a bus error, once.
    pub write_fail_at: Option<u64>,
    /// Never send the confirm of every n-th command.
    pub drop_confirm_every: u32,
    /// Flip one byte of the firmware image at this offset while it is
    /// downloaded (the CRC check at the end must catch it).
    pub fw_corrupt_at: Option<usize>,
    /// Raise a firmware exception at this uptime.
    pub exception_at_ms: Option<u64>,
    /// Bug #5 model: from this uptime on, scans fail and only one downlink
    /// frame in `degraded_keep_one_in` reaches the host.
    pub degrade_after_ms: Option<u64>,
    pub degraded_keep_one_in: u32,
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
    /// (second-stage boot image, then the Wi-Fi firmware), 1 for short tests.
    pub boot_stages: u8,
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
            mute: false,
            faults: Faults::default(),
        }
    }
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
    pub bad_writes: u64,
    pub scan_requests: u64,
    pub scan_rejects: u64,
    pub scan_rejects_5ghz_multi: u64,
    pub rx_batches: u64,
    pub rx_msgs: u64,
    pub downlink_offered: u64,
    pub downlink_dropped: u64,
    pub outbox_full: u64,
    pub confirms_dropped: u64,
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

struct Outbox {
    msgs: [[u8; MSG_LEN_MAX]; OUTBOX_MAX],
    lens: [u16; OUTBOX_MAX],
    head: usize,
    len: usize,
}

impl Outbox {
    fn push_with(&mut self, f: impl FnOnce(&mut [u8]) -> Option<usize>) -> bool {
        if self.len == OUTBOX_MAX {
            return false;
        }
        let i = (self.head + self.len) % OUTBOX_MAX;
        match f(&mut self.msgs[i]) {
            Some(n) => {
                self.lens[i] = n as u16;
                self.len += 1;
                true
            }
            None => false,
        }
    }
    fn front(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| &self.msgs[self.head][..usize::from(self.lens[self.head])])
    }
    fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % OUTBOX_MAX;
            self.len -= 1;
        }
    }
}

/// The simulated chip.
pub struct Chip {
    pub cfg: ChipConfig,
    pub ap: Ap,
    power: Power,
    uptime_ms: u64,
    outbox: Outbox,
    tx_seq: [u8; SeqSpace::COUNT],
    /// Published batch (what the current control word announces).
    batch: [u8; RX_BATCH_LEN_MAX],
    batch_len: usize,
    batch_count: u8,
    /// Toggle of the next batch to publish.
    toggle: bool,
    last_word: [u8; 4],
    host_tx_toggle: bool,
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
    pending_confirms: [TxConfirm; MULTI_CONFIRM_MAX],
    n_pending_confirms: usize,
    pub stats: ChipStats,
}

impl Chip {
    pub fn new(cfg: ChipConfig) -> Self {
        Chip {
            cfg,
            ap: Ap::default(),
            power: Power::Off,
            uptime_ms: 0,
            outbox: Outbox {
                msgs: [[0; MSG_LEN_MAX]; OUTBOX_MAX],
                lens: [0; OUTBOX_MAX],
                head: 0,
                len: 0,
            },
            tx_seq: [0; SeqSpace::COUNT],
            batch: [0; RX_BATCH_LEN_MAX],
            batch_len: 0,
            batch_count: 0,
            toggle: false,
            last_word: [0; 4],
            host_tx_toggle: false,
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
            pending_confirms: [TxConfirm::default(); MULTI_CONFIRM_MAX],
            n_pending_confirms: 0,
            stats: ChipStats::default(),
        }
    }

    /// Power on (or power-cycle): the firmware boots and sends its startup
    /// indication granting `input_buffers` credits.
    pub fn power_on(&mut self) {
        let cfg = self.cfg;
        let ap = self.ap;
        let stats = self.stats;
        let uptime = self.uptime_ms;
        // A power cycle forgets everything but the counters and the clock.
        *self = Chip::new(cfg);
        self.ap = ap;
        self.ap.associated = false;
        self.stats = stats;
        self.uptime_ms = uptime;
        self.power = Power::Running;
        if cfg.mute {
            return;
        }
        let n = cfg.input_buffers;
        self.send(SeqSpace::Wsm, |b, s| {
            enc::startup(b, s, n, MSG_LEN_MAX as u16).ok()
        });
    }

    /// Power on into the boot ROM: the host must download the firmware
    /// ([`bes2600_core::fwload`]) before the startup indication comes.
    pub fn power_on_boot_rom(&mut self) {
        self.power_on();
        self.outbox.len = 0;
        self.tx_seq = [0; SeqSpace::COUNT];
        self.irq = false;
        self.power = Power::BootRom;
        self.boot = BootRom::default();
    }

    /// Firmware images fully received and started.
    pub fn boots(&self) -> u64 {
        self.boot.booted
    }

    fn boot_frame(&mut self, data: &[u8]) {
        use bes2600_core::fwload::{self as fw, frame};
        let b = &mut self.boot;
        if data.len() < fw::FW_HDR_LEN {
            self.stats.bad_writes += 1;
            return;
        }
        let (ty, seq) = (data[0], data[1]);
        let len = usize::from(u16::from_le_bytes([data[2], data[3]]));
        let Some(p) = data.get(fw::FW_HDR_LEN..fw::FW_HDR_LEN + len) else {
            b.reply = Some(fw::encode_reply(seq, fw::FW_ERR_LEN));
            return;
        };
        let le32 = |at: usize| {
            p.get(at..at + 4)
                .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        };
        let status = match ty {
            frame::INFO => match (le32(0), le32(4)) {
                (Some(code_len), Some(addr)) => {
                    *b = BootRom {
                        code_len: code_len as usize,
                        load_addr: addr,
                        booted: b.booted,
                        ..BootRom::default()
                    };
                    fw::FW_OK
                }
                _ => fw::FW_ERR_LEN,
            },
            frame::DATA => match le32(0) {
                Some(addr) if addr == b.load_addr.wrapping_add(b.received as u32) => {
                    let n = (p.len() - 4).min(fw::FW_CHUNK_MAX);
                    let mut tmp = [0u8; fw::FW_CHUNK_MAX];
                    tmp[..n].copy_from_slice(&p[4..4 + n]);
                    if let Some(at) = self.cfg.faults.fw_corrupt_at {
                        if (b.received..b.received + n).contains(&at) {
                            tmp[at - b.received] ^= 0xff;
                        }
                    }
                    b.crc = fw::crc32_continue(b.crc, &tmp[..n]);
                    b.received += n;
                    fw::FW_OK
                }
                _ => fw::FW_ERR_LEN,
            },
            frame::END => match le32(0) {
                Some(crc) if b.received == b.code_len && crc == b.crc => {
                    b.verified = true;
                    fw::FW_OK
                }
                _ => fw::FW_ERR_CRC,
            },
            frame::RUN => {
                if b.verified {
                    fw::FW_OK
                } else {
                    fw::FW_ERR_CRC
                }
            }
            _ => fw::FW_ERR_LEN,
        };
        b.reply = Some(fw::encode_reply(seq, status));
        if ty == frame::RUN && status == fw::FW_OK {
            b.booted += 1;
            b.run_pending = true;
        }
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
                self.send(SeqSpace::Wsm, |b, s| {
                    let mut frame = [0u8; ap::FRAME_LEN_MAX];
                    let n = ap::beacon(&ap, &mut frame);
                    enc::rx(b, s, &ap.rx_meta(), &frame[..n]).ok()
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
                self.send(SeqSpace::Wsm, |b, s| {
                    enc::exception(b, s, b"sim: assert at lmac.c:1234").ok()
                });
                self.power = Power::Crashed;
            }
        }
    }

    fn send(&mut self, space: SeqSpace, f: impl FnOnce(&mut [u8], u8) -> Option<usize>) -> bool {
        if self.power == Power::Crashed {
            return false;
        }
        let seq = self.tx_seq[space.index()];
        let ok = self.outbox.push_with(|b| f(b, seq));
        if ok {
            self.tx_seq[space.index()] = (seq + 1) % wsm::SEQ_MODULO;
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
            self.send(SeqSpace::Wsm, |b, s| {
                enc::tx_confirm(b, s, 0, &confirms[0]).ok()
            })
        } else {
            self.send(SeqSpace::Wsm, |b, s| {
                enc::multi_tx_confirm(b, s, &confirms[..n]).ok()
            })
        };
        if sent {
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
            if self.outbox_room() <= OUTBOX_CONTROL_RESERVE {
                break;
            }
            self.stats.downlink_offered += 1;
            self.downlink_seen += 1;
            if self.degraded() {
                let keep = self.cfg.faults.degraded_keep_one_in.max(1);
                if self.downlink_seen % u64::from(keep) != 0 {
                    // Lost on the chip: the AP sent it, the host never sees it.
                    self.stats.downlink_dropped += 1;
                    taken += 1;
                    continue;
                }
            }
            let ap = self.ap;
            let ok = self.send(SeqSpace::Wsm, |b, s| {
                let mut frame = [0u8; ap::FRAME_LEN_MAX];
                let flen = ap::data_frame(&ap, len, &mut frame);
                enc::rx(b, s, &ap.rx_meta(), &frame[..flen]).ok()
            });
            if !ok {
                break;
            }
            taken += 1;
        }
        taken
    }

    /// Room left in the firmware's outbox.
    pub fn outbox_room(&self) -> usize {
        OUTBOX_MAX - self.outbox.len
    }

    fn publish(&mut self) {
        if self.batch_count != 0 || self.power == Power::Off {
            return;
        }
        let mut tx = TxBatch::new(&mut self.batch);
        let mut count = 0;
        while count < RX_BATCH_MAX {
            let Some(m) = self.outbox.front() else { break };
            if tx.push(m).is_err() {
                break;
            }
            self.outbox.pop();
            count += 1;
        }
        self.batch_len = tx.len();
        self.batch_count = count as u8;
    }

    /// Bus: the 4-byte control word.
    pub fn read_ctrl(&mut self) -> Result<[u8; 4], BusError> {
        if self.power == Power::Off {
            return Err(BusError::Timeout);
        }
        self.ctrl_reads += 1;
        let f = self.cfg.faults;
        if f.stale_ctrl_every != 0
            && self.ctrl_reads % u64::from(f.stale_ctrl_every) == 0
            && self.last_word != [0; 4]
        {
            return Ok(self.last_word);
        }
        if self.power == Power::BootRom {
            let len = if self.boot.reply.is_some() {
                bes2600_core::fwload::FW_REPLY_LEN
            } else {
                0
            };
            return Ok(sdio::encode_ctrl_word(
                len as u16,
                u8::from(len > 0),
                self.boot.toggle,
            ));
        }
        // Reading the control word acknowledges the interrupt (bes2600
        // clears the slave interrupt with this read).
        self.irq = false;
        self.publish();
        let mut w = sdio::encode_ctrl_word(self.batch_len as u16, self.batch_count, self.toggle);
        if f.ctrl_crc_every != 0 && self.ctrl_reads % u64::from(f.ctrl_crc_every) == 0 {
            w[3] ^= 0x5a;
        }
        Ok(w)
    }

    /// Bus: one CMD53 read of the published batch.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<(), BusError> {
        if self.power == Power::Off {
            return Err(BusError::Timeout);
        }
        if self.power == Power::BootRom {
            let Some(r) = self.boot.reply.take() else {
                return Err(BusError::Other);
            };
            if buf.len() != r.len() {
                return Err(BusError::Other);
            }
            buf.copy_from_slice(&r);
            self.boot.toggle = !self.boot.toggle;
            if core::mem::take(&mut self.boot.run_pending) {
                if self.boot.booted < u64::from(self.cfg.boot_stages.max(1)) {
                    // A loader stage runs and takes the next image with the
                    // same protocol (its own frame numbers and toggle).
                    let booted = self.boot.booted;
                    self.boot = BootRom {
                        booted,
                        ..BootRom::default()
                    };
                } else {
                    // The firmware starts: it speaks WSM from now on.
                    self.power = Power::Running;
                    let n = self.cfg.input_buffers;
                    self.send(SeqSpace::Wsm, |b, s| {
                        enc::startup(b, s, n, MSG_LEN_MAX as u16).ok()
                    });
                }
            }
            return Ok(());
        }
        if self.batch_count == 0 || buf.len() != self.batch_len {
            self.stats.bad_writes += 1;
            return Err(BusError::Other);
        }
        self.data_reads += 1;
        let f = self.cfg.faults;
        if f.data_crc_every != 0 && self.data_reads % u64::from(f.data_crc_every) == 0 {
            return Err(BusError::Crc);
        }
        buf.copy_from_slice(&self.batch[..self.batch_len]);
        self.stats.rx_batches += 1;
        self.stats.rx_msgs += u64::from(self.batch_count);
        self.last_word =
            sdio::encode_ctrl_word(self.batch_len as u16, self.batch_count, self.toggle);
        self.toggle = !self.toggle;
        self.batch_count = 0;
        self.batch_len = 0;
        self.flush_confirms();
        if self.outbox.len > 0 {
            self.irq = true;
        }
        Ok(())
    }

    /// Bus: one CMD53 write of a TX batch.
    pub fn write_data(&mut self, data: &[u8], toggle: bool) -> Result<(), BusError> {
        if self.power == Power::Off {
            return Err(BusError::Timeout);
        }
        if self.power == Power::BootRom {
            self.boot_frame(data);
            return Ok(());
        }
        self.writes += 1;
        if self.cfg.faults.write_fail_at == Some(self.writes) {
            self.cfg.faults.write_fail_at = None; // one shot
            return Err(BusError::Other);
        }
        if toggle != self.host_tx_toggle {
            self.stats.tx_toggle_errors += 1;
            return Ok(()); // the firmware drops a repeated write
        }
        self.host_tx_toggle = !self.host_tx_toggle;
        let Ok(batch) = sdio::extract(data, data.len(), None) else {
            self.stats.bad_writes += 1;
            return Ok(());
        };
        // The whole write lands in input buffers before any of it is
        // processed: a write needs as many free buffers as it has messages.
        if !self.cfg.mute && self.power == Power::Running {
            let k = batch.len() as u16;
            self.in_flight += k;
            self.stats.max_in_flight = self.stats.max_in_flight.max(self.in_flight);
            if self.in_flight > self.cfg.input_buffers {
                self.stats.overruns += u64::from(k.min(self.in_flight - self.cfg.input_buffers));
            }
        }
        for i in 0..batch.len() {
            let (start, len) = batch.span(i);
            self.request(&data[start..start + len]);
        }
        self.flush_confirms();
        Ok(())
    }

    fn request(&mut self, msg: &[u8]) {
        let Ok((mid, view)) = wsm::decode_request(msg) else {
            self.stats.bad_writes += 1;
            return;
        };
        if self.power == Power::Crashed {
            return;
        }
        self.stats.requests += 1;
        if self.cfg.mute {
            return;
        }
        let base = mid.base();
        if let ReqView::Tx {
            packet_id, frame, ..
        } = view
        {
            self.stats.tx_frames += 1;
            self.stats.tx_bytes += frame.len() as u64;
            self.ap_uplink(frame);
            if self.n_pending_confirms == MULTI_CONFIRM_MAX {
                self.flush_confirms();
            }
            self.tx_seen += 1;
            let f = self.cfg.faults;
            let st = if f.requeue_every != 0 && self.tx_seen % u64::from(f.requeue_every) == 0 {
                status::REQUEUE
            } else {
                status::SUCCESS
            };
            self.pending_confirms[self.n_pending_confirms] = TxConfirm {
                packet_id,
                status: st,
                ..Default::default()
            };
            self.n_pending_confirms += 1;
            return;
        }
        self.commands += 1;
        let f = self.cfg.faults;
        if f.drop_confirm_every != 0 && self.commands % u64::from(f.drop_confirm_every) == 0 {
            self.stats.confirms_dropped += 1;
            return;
        }
        match view {
            ReqView::StartScan {
                band, num_channels, ..
            } => {
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
                // One probe response per channel from our AP, then done.
                let ap = self.ap;
                self.send(SeqSpace::Wsm, |b, s| {
                    let mut frame = [0u8; ap::FRAME_LEN_MAX];
                    let n = ap::probe_response(&ap, &mut frame);
                    enc::rx(b, s, &ap.rx_meta(), &frame[..n]).ok()
                });
                self.send(SeqSpace::Wsm, |b, s| {
                    enc::scan_complete(b, s, status::SUCCESS, num_channels).ok()
                });
            }
            ReqView::Join { bssid } => {
                let st = if bssid == self.ap.bssid {
                    status::SUCCESS
                } else {
                    status::FAILURE
                };
                self.confirm(base, st, &[0; 8]);
            }
            ReqView::SetPm { mode } => {
                if self.cfg.pm_supported {
                    self.confirm(base, status::SUCCESS, &[]);
                    self.send(SeqSpace::Wsm, |b, s| enc::set_pm_complete(b, s, mode).ok());
                } else {
                    self.confirm(base, status::FAILURE, &[]);
                }
            }
            ReqView::ReadMib { mib_id } => {
                let mut body = [0u8; 4];
                body[..2].copy_from_slice(&mib_id.to_le_bytes());
                self.confirm(base, status::SUCCESS, &body);
            }
            ReqView::Mcu { cmd_type } => {
                let cmd = (base & 0x3f) as u8;
                if self.send(SeqSpace::Mcu, |b, s| {
                    enc::mcu(b, s, cmd, wsm::MCU_LABEL_CONFIRM, cmd_type, &[]).ok()
                }) {
                    self.in_flight = self.in_flight.saturating_sub(1);
                }
            }
            ReqView::Tx { .. } | ReqView::Other => self.confirm(base, status::SUCCESS, &[]),
        }
    }

    fn confirm(&mut self, req: u16, st: u32, body: &[u8]) {
        if self.send(SeqSpace::Wsm, |b, s| enc::confirm(b, s, req, st, body).ok()) {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
    }

    /// What the AP does with a frame the host transmitted.
    fn ap_uplink(&mut self, frame: &[u8]) {
        if let Some(reply) = self.ap.on_uplink(frame) {
            let ap = self.ap;
            self.send(SeqSpace::Wsm, |b, s| {
                let mut out = [0u8; ap::FRAME_LEN_MAX];
                let n = ap::mgmt_reply(&ap, reply, &mut out);
                enc::rx(b, s, &ap.rx_meta(), &out[..n]).ok()
            });
        }
    }

    /// Queues an arbitrary message for the host (trace replay, tests).
    pub fn inject(&mut self, msg: &[u8]) -> bool {
        let Ok((_, mid)) = wsm::parse_header(msg) else {
            return false;
        };
        let space = mid.seq_space();
        self.send(space, |b, s| {
            let n = msg.len().min(b.len());
            b[..n].copy_from_slice(&msg[..n]);
            wsm::stamp_id(&mut b[..n], s, mid.link_id());
            Some(n)
        })
    }

    /// An event indication (e.g. a BSS-lost), for tests.
    pub fn indicate_event(&mut self, event_id: u32, data: u32) {
        self.send(SeqSpace::Wsm, |b, s| enc::event(b, s, event_id, data).ok());
    }
}

/// Boot-ROM state during a firmware download.
#[derive(Clone, Copy, Debug, Default)]
struct BootRom {
    code_len: usize,
    load_addr: u32,
    received: usize,
    crc: u32,
    verified: bool,
    reply: Option<[u8; bes2600_core::fwload::FW_REPLY_LEN]>,
    toggle: bool,
    run_pending: bool,
    booted: u64,
}
