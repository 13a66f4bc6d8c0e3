//! The host side wired to the simulated chip: IRQ line, bh context, shared
//! TX state, a recording upper layer, the scan and PM policies, and
//! simulated time. One object per test.

use std::boxed::Box;
use std::vec::Vec;

use bes2600_core::bh::{
    BhBufs, BhContext, BhError, Indication, IrqLine, RunReport, RxDelivery, Upper, Wake,
    RX_BUF_LEN, TX_BUF_LEN,
};
use bes2600_core::fwload::{self, DownloadError, FwImages, FwIo, FwLoader};
use bes2600_core::pm::PmPolicy;
use bes2600_core::queue::{Ac, CmdError, TxShared};
use bes2600_core::scan::{self, Channel, ScanGuard, ScanRefusal};
use bes2600_core::wsm::{self, Band, Request, TxConfirm};

use crate::ap;
use crate::bus::{BusModel, BusStats, SimBus};
use crate::chip::{Chip, ChipConfig};

/// bh passes per [`Harness::pump`] before it reports "not settling".
pub const PUMP_PASSES_MAX: usize = 10_000;

/// An indication, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ind {
    Started(u16),
    Event(u32, u32),
    ScanComplete(u32),
    SetPmComplete(u8),
    JoinComplete(u32),
    Mcu(u8, u32),
    Exception(Vec<u8>),
}

/// The upper layer: records everything the bh hands up.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Frames per delivery call (one call per SDIO read).
    pub rx_deliveries: Vec<usize>,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Kept frames (only when `keep_frames`).
    pub frames: Vec<Vec<u8>>,
    pub keep_frames: bool,
    pub tx_done: Vec<(Vec<u8>, u32)>,
    pub cmd_done: Vec<(u16, u32)>,
    pub indications: Vec<Ind>,
    /// The PM policy, fed by the bh's indications as the driver's
    /// `Upper` implementation feeds it.
    pub pm: PmPolicy,
}

impl Upper<Vec<u8>> for Recorder {
    fn rx_batch(&mut self, batch: &RxDelivery<'_>) {
        self.rx_deliveries.push(batch.len());
        for (_, f) in batch.iter() {
            self.rx_frames += 1;
            self.rx_bytes += f.len() as u64;
            if self.keep_frames {
                self.frames.push(f.to_vec());
            }
        }
    }
    fn tx_done(&mut self, frame: Vec<u8>, confirm: &TxConfirm) {
        self.tx_done.push((frame, confirm.status));
    }
    fn cmd_done(&mut self, req: u16, status: u32, _body: &[u8]) {
        self.cmd_done.push((req, status));
    }
    fn indication(&mut self, ind: Indication<'_>) {
        self.indications.push(match ind {
            Indication::Started { input_buffers } => Ind::Started(input_buffers),
            Indication::Event { event_id, data } => Ind::Event(event_id, data),
            Indication::ScanComplete { status, .. } => Ind::ScanComplete(status),
            Indication::SetPmComplete { psm } => {
                self.pm.on_pm_indication();
                Ind::SetPmComplete(psm)
            }
            Indication::JoinComplete { status } => Ind::JoinComplete(status),
            Indication::Mcu { cmd, cmd_type, .. } => Ind::Mcu(cmd, cmd_type),
            Indication::FirmwareException { dump } => Ind::Exception(dump.to_vec()),
        });
    }
}

/// What a scan request came to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanOutcome {
    pub legs_sent: u32,
    pub legs_refused: u32,
    pub fw_rejects: u32,
    pub completed: u32,
}

pub struct Harness {
    pub chip: Box<Chip>,
    pub bh: BhContext,
    /// The bus buffers, heap-allocated as the module's are.
    pub rx_buf: Box<[u8]>,
    pub tx_buf: Box<[u8]>,
    pub line: IrqLine,
    pub shared: Box<TxShared<Vec<u8>>>,
    pub up: Recorder,
    pub bus_model: BusModel,
    pub bus: BusStats,
    pub now_ms: u64,
    /// Times a producer (IRQ or TX submit) had to wake the sleeping bh.
    pub wakeups: u64,
    pub scan: ScanGuard,
}

impl Harness {
    /// A host and a chip that has not been powered yet.
    fn unpowered(cfg: ChipConfig) -> Self {
        Harness {
            chip: Box::new(Chip::new(cfg)),
            bh: BhContext::new(),
            rx_buf: std::vec![0u8; RX_BUF_LEN].into_boxed_slice(),
            tx_buf: std::vec![0u8; TX_BUF_LEN].into_boxed_slice(),
            line: IrqLine::new(),
            shared: Box::default(),
            up: Recorder::default(),
            bus_model: BusModel::default(),
            bus: BusStats::default(),
            now_ms: 0,
            wakeups: 0,
            scan: ScanGuard::default(),
        }
    }

    /// Powers the chip on and runs the bh until the startup indication.
    pub fn new(cfg: ChipConfig) -> Self {
        let mut h = Harness::unpowered(cfg);
        h.chip.power_on();
        let _ = h.pump();
        h
    }

    /// Powers the chip into its boot ROM, downloads `image` over the
    /// modelled bus, and runs the bh until the firmware's startup indication.
    pub fn with_firmware(cfg: ChipConfig, image: &[u8]) -> Result<Self, DownloadError> {
        let mut h = Harness::unpowered(cfg);
        h.chip.power_on_boot_rom();
        let mut scratch = std::vec![0u8; fwload::FW_CHUNK_MAX];
        h.fw_io(&mut scratch, |io| {
            io.run(FwLoader::new(image).map_err(DownloadError::Protocol)?)
        })?;
        let _ = h.pump();
        Ok(h)
    }

    /// The real chip's load ([`fwload::load_all`]): register pokes, factory
    /// data, boot image, DPD readback (or cached DPD), Wi-Fi image; then
    /// the bh until the startup indication. Returns the DPD bytes read.
    pub fn with_firmware_images(
        cfg: ChipConfig,
        images: &FwImages<'_>,
    ) -> Result<(Self, Vec<u8>), DownloadError> {
        let mut h = Harness::unpowered(cfg);
        h.chip.power_on_boot_rom();
        let mut scratch = std::vec![0u8; fwload::FW_CHUNK_MAX];
        let mut dpd = std::vec![0u8; 0x4000];
        let (_, n) = h.fw_io(&mut scratch, |io| fwload::load_all(io, images, &mut dpd))?;
        dpd.truncate(n);
        let _ = h.pump();
        Ok((h, dpd))
    }

    /// Runs `f` on a firmware-download view of the bus: the IRQ wait takes
    /// the chip's interrupt line.
    pub fn fw_io<R>(
        &mut self,
        scratch: &mut [u8],
        f: impl FnOnce(&mut FwIo<'_, SimBus<'_>, fn(&mut SimBus<'_>) -> bool>) -> R,
    ) -> R {
        let mut bus = SimBus {
            chip: &mut self.chip,
            model: self.bus_model,
            stats: &mut self.bus,
        };
        fn wait(b: &mut SimBus<'_>) -> bool {
            b.chip.take_irq()
        }
        let mut io = FwIo {
            bus: &mut bus,
            wait_irq: wait as fn(&mut SimBus<'_>) -> bool,
            scratch,
        };
        f(&mut io)
    }

    /// The chip's interrupt, as the IRQ handler sees it.
    pub fn deliver_irq(&mut self) {
        if self.chip.take_irq() && self.line.irq() {
            self.wakeups += 1;
        }
    }

    /// One bh pass on whatever bits are pending.
    pub fn bh_pass(&mut self) -> Result<RunReport, BhError> {
        let w = self.line.take();
        self.run(w)
    }

    /// One bh pass with explicit wake bits (ticks, tests).
    pub fn run(&mut self, w: Wake) -> Result<RunReport, BhError> {
        let mut bus = SimBus {
            chip: &mut self.chip,
            model: self.bus_model,
            stats: &mut self.bus,
        };
        let Some(mut bufs) = BhBufs::new(&mut self.rx_buf, &mut self.tx_buf) else {
            unreachable!("the harness allocates RX_BUF_LEN and TX_BUF_LEN");
        };
        self.bh.run(
            w,
            &mut bus,
            &mut bufs,
            &mut self.up,
            &mut *self.shared,
            self.now_ms,
        )
    }

    /// IRQs and bh passes until the bh has nothing left to do.
    pub fn pump(&mut self) -> Result<(), BhError> {
        for _ in 0..PUMP_PASSES_MAX {
            self.deliver_irq();
            let w = self.line.take();
            if !w.any() {
                return Ok(());
            }
            self.run(w)?;
        }
        Ok(())
    }

    /// Advances simulated time (a timer tick runs the bh for timeouts).
    pub fn advance(&mut self, ms: u64) -> Result<(), BhError> {
        self.now_ms += ms;
        self.chip.tick(self.now_ms);
        self.run(Wake::default())?;
        self.pump()
    }

    /// mac80211 TX path: queue a frame and kick the bh.
    pub fn send_frame(&mut self, ac: Ac, frame: Vec<u8>) -> Result<(), Vec<u8>> {
        self.shared.queues.put(ac, 0, 0, frame)?;
        if self.line.kick_tx() {
            self.wakeups += 1;
        }
        Ok(())
    }

    /// Process context: queue a command and kick the bh.
    pub fn command(&mut self, req: &Request<'_>) -> Result<(), CmdError> {
        self.shared.cmd.put(req, 0)?;
        if self.line.kick_tx() {
            self.wakeups += 1;
        }
        Ok(())
    }

    /// Sends a command, pumps, and returns its confirm status (if any).
    pub fn command_sync(&mut self, req: &Request<'_>) -> Result<Option<u32>, BhError> {
        let before = self.up.cmd_done.len();
        if self.command(req).is_err() {
            return Ok(None);
        }
        self.pump()?;
        Ok(self.up.cmd_done[before..]
            .iter()
            .find(|(r, _)| *r == req.base_id())
            .map(|&(_, s)| s))
    }

    /// Clean reset after a halt: bh reset, then a chip power cycle.
    pub fn reset(&mut self) -> usize {
        let n = self.bh.reset(&mut *self.shared, &mut self.up);
        self.chip.power_on();
        let _ = self.pump();
        if self.shared.queues.queued() > 0 && self.line.kick_tx() {
            self.wakeups += 1;
        }
        let _ = self.pump();
        n
    }

    /// A mac80211 scan request, split per band and guarded as the driver's
    /// `hw_scan` does.
    pub fn scan(&mut self, channels: &[Channel]) -> Result<ScanOutcome, BhError> {
        let mut legs: Vec<(Band, Vec<u16>)> = Vec::new();
        let mut scratch = [0u16; wsm::SCAN_CHANNELS_MAX];
        scan::split_per_band(channels, &mut scratch, |band, chans| {
            legs.push((band, chans.to_vec()))
        });
        let mut out = ScanOutcome::default();
        for (band, chans) in legs {
            match self.scan.check(band, chans.len(), self.now_ms) {
                Err(ScanRefusal::NotSupported) | Err(ScanRefusal::BackingOff { .. }) => {
                    out.legs_refused += 1;
                    continue;
                }
                Ok(()) => {}
            }
            let chs: Vec<wsm::ScanChannel> =
                chans.iter().map(|&n| wsm::ScanChannel::dwell(n)).collect();
            let req = Request::StartScan(wsm::ScanReq::foreground(band, &chs));
            let before = self.up.indications.len();
            out.legs_sent += 1;
            match self.command_sync(&req)? {
                Some(wsm::status::SUCCESS) => {
                    self.scan
                        .on_start_confirm(band, wsm::status::SUCCESS, self.now_ms);
                    if self.up.indications[before..]
                        .iter()
                        .any(|i| matches!(i, Ind::ScanComplete(_)))
                    {
                        out.completed += 1;
                    }
                }
                Some(st) => {
                    out.fw_rejects += 1;
                    self.scan.on_start_confirm(band, st, self.now_ms);
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// Join + open auth + assoc with the simulated AP.
    pub fn associate(&mut self) -> Result<bool, BhError> {
        let a = self.chip.ap;
        let join = Request::Join(wsm::JoinReq {
            mode: 0,
            band: Band::Ghz2,
            channel: a.channel,
            bssid: a.bssid,
            atim_window: 0,
            preamble: 0,
            probe_for_join: 1,
            dtim_period: 1,
            flags: 0,
            ssid: wsm::Ssid {
                len: 6,
                bytes: [0; 32],
            },
            beacon_interval: 100,
            basic_rate_set: 0xf,
        });
        if self.command_sync(&join)? != Some(wsm::status::SUCCESS) {
            return Ok(false);
        }
        for f0 in [ap::fc::AUTH, ap::fc::ASSOC_REQ] {
            let mut buf = [0u8; 64];
            let n = ap::sta_frame(&a, f0, 6, &mut buf);
            let _ = self.send_frame(Ac::Vo, buf[..n].to_vec());
            self.pump()?;
        }
        Ok(self.chip.ap.associated)
    }

    /// Keeps the ledger and the chip's view in agreement (test oracle).
    pub fn check_invariants(&self) -> Result<(), std::string::String> {
        let c = self.bh.credits();
        if !self.bh.ledger_consistent() {
            return Err(std::format!("ledger inconsistent: {c:?}"));
        }
        if self.chip.stats.overruns != 0 {
            return Err(std::format!(
                "chip input buffers overrun {} times",
                self.chip.stats.overruns
            ));
        }
        if self.bh.stats().credit_errors != 0 {
            return Err(std::format!(
                "{} credit underflows",
                self.bh.stats().credit_errors
            ));
        }
        let k = self.chip.stats;
        let wire = [
            ("TX toggle errors", k.tx_toggle_errors),
            ("RX toggle errors", k.rx_toggle_errors),
            ("malformed writes", k.bad_writes),
            ("refused reads", k.bad_reads),
            ("slots of the wrong size", k.slot_mismatches),
            ("MCU commands not alone", k.mcu_not_alone),
        ];
        if let Some((what, n)) = wire.iter().find(|(_, n)| *n != 0) {
            return Err(std::format!("the chip model saw {n} {what}"));
        }
        if c.hw_bufs_used < self.chip.in_flight() {
            return Err(std::format!(
                "host thinks {} in flight, chip holds {}",
                c.hw_bufs_used,
                self.chip.in_flight()
            ));
        }
        Ok(())
    }
}
