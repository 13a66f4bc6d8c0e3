// SPDX-License-Identifier: GPL-2.0

//! bes2600: the BES2600 Wi-Fi chip of the Pine64 PineTab2 over SDIO, in Rust.
//!
//! A thin shell around the sans-I/O driver core (`driver/core`, mounted by
//! path below, unchanged): SDIO probe and remove through the kernel's
//! `sdio` abstraction, firmware from `/lib/firmware/bes2600/` through
//! `request_firmware`, and the bottom half as one kernel thread woken by the
//! SDIO interrupt (cw1200's shape, no relay). This file has no `unsafe`:
//! everything that needs it is in the abstractions of `kernel-patches/`.
//!
//! The same module binary serves a PineTab2 and the QEMU boards, where
//! `besser_sdio_sim` presents the chip model as an SDIO card to the real
//! MMC core.

// `pin_init!` of `Shared` expands one level per field.
#![recursion_limit = "256"]

use kernel::{
    c_str,
    firmware::Firmware,
    kthread,
    net::mac80211::{self, BandSpec, Hw, KeyCmd, RxStatus, SkBuff},
    prelude::*,
    sdio,
    sync::{new_mutex, new_spinlock_bh, new_wait_queue, Arc, Mutex, SpinLockBh, WaitQueue, Woken},
    time,
    types::ARef,
    workqueue::delayed::{DelayedWork, DelayedWorkItem},
};

/// The driver core, mounted by path (`core_mount.rs`): its `pub` is its
/// API toward this module, not this crate's.
#[path = "core_mount.rs"]
#[allow(unreachable_pub, dead_code, missing_docs)]
mod bes2600_core;

use bes2600_core::{bh, fwload, pm, queue, scan, wsm};

module! {
    type: Bes2600Module,
    name: "bes2600",
    author: "besser",
    description: "BES2600 Wi-Fi over SDIO (Rust)",
    license: "GPL",
    // What `MODULE_DEVICE_TABLE(sdio, …)` would make of `IDS` (file2alias.c
    // `do_sdio_entry`: class any, vendor and device as %04X), so udev /
    // modprobe load bes2600 when the card appears. The image build checks
    // depmod's modules.alias for it.
    alias: ["sdio:c*vBE57d2002*"],
}

/// bes2600's SDIO ids (cringeops/bes2600 `bes2600_sdio.c`, `SDIO_VENDOR_ID_BES2600` 0xbe57,
/// `SDIO_DEVICE_ID_BES2600` 0x2002).
static IDS: sdio::IdTable<1> = sdio::IdTable::new([sdio::DeviceId::new(0xbe57, 0x2002)]);

/// Firmware files, as bes2600 names them (`bes_fw.c` 21-22).
const FW_BOOT: &CStr = c_str!("bes2600/best2002_fw_boot_sdio.bin");
const FW_WIFI: &CStr = c_str!("bes2600/best2002_fw_sdio.bin");

/// SDIO block size bes2600 sets (`bes2600_sdio.c`, `SDIO_BLOCK_SIZE`).
const BLOCK_SIZE: u32 = 512;
/// The boot ROM's reply wait (`bes_slave_tx_ready`: HZ).
const FW_IRQ_WAIT_MS: u32 = 1000;
/// Waits for a busy command slot: 20 x 100 ms.
const CMD_SLOT_WAITS: u32 = 20;
const CMD_SLOT_WAIT_MS: u32 = 100;
/// Key table entries: group/WEP keys by index 0-3, the pairwise key at 4.
const PAIRWISE_KEY_ENTRY: u8 = 4;
/// How long the bh sleeps when the core has no deadline.
const BH_IDLE_MS: u32 = 1000;
/// Added to a scan leg's own time before the watchdog gives up on its
/// scan-complete (cw1200/bes2600 `scan.c` allow exactly the dwell times,
/// Σ max_chan_time + 10 ms; the bh may be busy with traffic on top).
const SCAN_TIMEOUT_SLACK_MS: u32 = 500;

/// A frame on its way to the chip: mac80211's skb, owned by the queue
/// until its confirm comes back.
type Frame = SkBuff;
type Slots = KVec<queue::Slot<Frame>>;
type TxShared = queue::TxShared<Frame, Slots>;

struct Bes2600Module {
    _reg: Pin<KBox<sdio::Registration<Bes2600>>>,
}

impl kernel::Module for Bes2600Module {
    fn init(module: &'static ThisModule) -> Result<Self> {
        Ok(Self {
            _reg: KBox::pin_init(sdio::Registration::new(module), GFP_KERNEL)?,
        })
    }
}

/// What IRQ context, TX submit and the bh share.
#[pin_data]
struct Shared {
    /// Pending-work bits: the only state the IRQ callback touches.
    line: bh::IrqLine,
    /// The bh sleeps here; the condition is `line.pending()` or a stop.
    #[pin]
    wake: WaitQueue,
    /// The TX queues and the command slot: taken with bottom halves off,
    /// from process context, softirq (`wake_tx_queue`) and the bh alike.
    #[pin]
    tx: SpinLockBh<TxShared>,
    /// Set once the driver data is reachable from the IRQ callback.
    bound: core::sync::atomic::AtomicBool,
    /// Woken after every bh pass: process context waiting for the command
    /// slot to be free sleeps here.
    #[pin]
    cmd_free: WaitQueue,
    /// mac80211 started the hw (an interface is up): RX before that is
    /// dropped here, as mac80211 warns about it.
    started: core::sync::atomic::AtomicBool,
    /// ACs (bit = `Ac as usize`) whose mac80211 queue this driver stopped
    /// because its own queue was full; changed with the TX lock held, so a
    /// stop and the bh's wake cannot cross.
    stopped: core::sync::atomic::AtomicU8,
    /// How often a mac80211 queue was stopped and woken (logged at remove).
    queue_stops: core::sync::atomic::AtomicU32,
    queue_wakes: core::sync::atomic::AtomicU32,
    /// The EDCA parameters mac80211 set per AC (`conf_tx` gives one AC, the
    /// firmware takes all four at once).
    #[pin]
    edca: Mutex<[wsm::EdcaParams; 4]>,
    /// The core's power-save policy (the "PM unsupported" latch that
    /// reopens on progress or timeout): process context asks it before a
    /// set-PM, the bh feeds it confirms and indications. Never held across
    /// `send_cmd`, which waits for the bh.
    #[pin]
    pm: Mutex<pm::PmPolicy>,
    /// The scan in progress: mac80211's `hw_scan` (process context) and the
    /// bh thread; never taken with the TX lock held, nor the other way round.
    #[pin]
    scan: Mutex<ScanState>,
    /// The scan watchdog (cw1200/bes2600 `scan.timeout`): re-armed for each
    /// leg; if a leg's scan-complete never comes, it ends the scan so
    /// mac80211 is not left waiting forever.
    #[pin]
    scan_timeout: DelayedWork<Shared>,
}

kernel::impl_has_delayed_work!(Shared, scan_timeout);

impl DelayedWorkItem for Shared {
    /// The watchdog expired: if the leg it was armed for still runs past
    /// its deadline, the bh ends the scan (`scan_events`).
    fn run(this: Arc<Self>) {
        let expired = {
            let mut st = this.scan.lock();
            let late = st.running.is_some() && now_ms() >= st.leg_deadline_ms;
            st.timed_out |= late;
            late
        };
        if expired {
            this.kick();
        }
    }

}

/// One mac80211 scan, run as the chip wants it: one leg per band, the
/// core's scan guard deciding each leg first (Patch I v2).
struct ScanState {
    guard: scan::ScanGuard,
    legs: [Leg; 2],
    n_legs: usize,
    next: usize,
    /// A scan is in progress (mac80211's view).
    active: bool,
    /// The band of the leg the chip is running.
    running: Option<wsm::Band>,
    /// All legs are done: the bh reports the scan complete.
    finish: bool,
    /// When the running leg's scan-complete is overdue (ms, `now_ms`).
    leg_deadline_ms: u64,
    /// The watchdog found the running leg overdue: the bh ends the scan.
    timed_out: bool,
    /// The scan ended early (a leg timed out): mac80211 hears "aborted".
    aborted: bool,
}

#[derive(Clone, Copy)]
struct Leg {
    band: wsm::Band,
    channels: [u16; wsm::SCAN_CHANNELS_MAX],
    n: usize,
}

const NO_LEG: Leg = Leg {
    band: wsm::Band::Ghz2,
    channels: [0; wsm::SCAN_CHANNELS_MAX],
    n: 0,
};

impl Shared {
    fn irq(&self) {
        if self.line.irq() {
            self.wake.wake_up();
        }
    }

    fn kick(&self) {
        if self.line.kick_tx() {
            self.wake.wake_up();
        }
    }

    /// Queues a command for the bh, waiting (process context only) while
    /// another one is in the slot. It does not wait for the confirm: the bh
    /// sends the command before any frame queued after it, as bes2600 does.
    fn send_cmd(&self, req: &wsm::Request<'_>) -> Result {
        for _ in 0..CMD_SLOT_WAITS {
            match self.tx.lock().cmd.put(req, 0) {
                Ok(()) => {
                    self.kick();
                    return Ok(());
                }
                Err(queue::CmdError::Busy) => {}
                Err(queue::CmdError::Encode(_)) => return Err(EINVAL),
            }
            self.cmd_free.wait_interruptible_timeout(
                || self.tx.lock().cmd.is_empty(),
                time::msecs_to_jiffies(CMD_SLOT_WAIT_MS),
            );
        }
        Err(EBUSY)
    }

    /// mac80211 wants power save on or off (`BSS_CHANGED_PS`): a set-PM in
    /// bes2600's mode, unless the core's latch says the firmware refused.
    fn set_power_save(&self, ps: bool, dynamic_ps_timeout: i32) {
        let req = pm::set_pm_request(ps, dynamic_ps_timeout);
        if !self.pm.lock().may_set_pm(now_ms()) {
            pr_info!("set_pm (ps {}): suppressed, the firmware refused power save\n", ps);
            return;
        }
        if let Err(e) = self.send_cmd(&req) {
            pr_warn!("set_pm (ps {}): {:?}\n", ps, e);
        }
    }

    /// `hw_scan`: split per band, guard each leg, start the first.
    fn start_scan(&self, req: &mac80211::ScanRequest) -> Result {
        let mut chans = [scan::Channel { band: wsm::Band::Ghz2, number: 0 }; 2 * wsm::SCAN_CHANNELS_MAX];
        let mut n = 0;
        for c in req.channels() {
            if n == chans.len() {
                break;
            }
            chans[n] = scan::Channel {
                band: match c.band {
                    mac80211::Band::Ghz2 => wsm::Band::Ghz2,
                    mac80211::Band::Ghz5 => wsm::Band::Ghz5,
                },
                number: c.hw_value,
            };
            n += 1;
        }
        {
            let mut st = self.scan.lock();
            if st.active {
                return Err(EBUSY);
            }
            let now = now_ms();
            let mut scratch = [0u16; wsm::SCAN_CHANNELS_MAX];
            let ScanState { guard, legs, n_legs, .. } = &mut *st;
            *n_legs = 0;
            scan::split_per_band(&chans[..n], &mut scratch, |band, list| {
                match guard.check(band, list.len(), now) {
                    Ok(()) => {
                        let mut leg = Leg { band, n: list.len(), ..NO_LEG };
                        leg.channels[..list.len()].copy_from_slice(list);
                        legs[*n_legs] = leg;
                        *n_legs += 1;
                    }
                    Err(why) => pr_info!("scan: {:?} leg refused ({:?})\n", band, why),
                }
            });
            st.next = 0;
            st.active = true;
            st.finish = false;
            st.timed_out = false;
            st.aborted = false;
        }
        Ok(())
    }

    /// Puts the next leg's start-scan in the command slot, or marks the
    /// scan finished; the bh does the rest. Returns the ms the watchdog
    /// should give the leg ([`Self::arm_scan_timeout`]).
    fn next_leg(&self) -> Option<u32> {
        let mut st = self.scan.lock();
        st.running = None;
        let mut timeout = None;
        if st.next < st.n_legs {
            let leg = st.legs[st.next];
            st.next += 1;
            let mut chs = [wsm::ScanChannel::default(); wsm::SCAN_CHANNELS_MAX];
            for (c, &number) in chs.iter_mut().zip(&leg.channels[..leg.n]) {
                *c = wsm::ScanChannel::dwell(number);
            }
            let req = wsm::Request::StartScan(wsm::ScanReq::foreground(leg.band, &chs[..leg.n]));
            if self.tx.lock().cmd.put(&req, 0).is_ok() {
                st.running = Some(leg.band);
                // cw1200 `scan.c` 33-34: Σ (max_chan_time + 10) ms.
                let ms = chs[..leg.n].iter().map(|c| c.max_chan_time + 10).sum::<u32>() + SCAN_TIMEOUT_SLACK_MS;
                st.leg_deadline_ms = now_ms() + u64::from(ms);
                timeout = Some(ms);
            } else {
                st.finish = true;
            }
        } else {
            st.finish = true;
        }
        drop(st);
        self.kick();
        timeout
    }

    /// (Re)arms the scan watchdog for the leg `next_leg` started.
    ///
    /// One jiffy more than the leg's time: a timer may fire up to a jiffy
    /// before `ms` have passed on the ktime clock, and a watchdog that runs
    /// before the deadline does nothing (it does not re-arm itself, so a
    /// `cancel_sync` never races with its own `schedule`).
    fn arm_scan_timeout(this: &Arc<Self>, ms: Option<u32>) {
        if let Some(ms) = ms {
            DelayedWork::schedule(this.clone(), time::msecs_to_jiffies(ms) + 1);
        }
    }
}

/// The per-function state the SDIO core keeps for us.
///
/// Field order is drop order: the bh thread is stopped first, then the
/// function disabled.
struct Device {
    bh: kthread::Thread<Bh>,
    /// After the bh (which unregisters the hw, so no scan can arm it again).
    _watchdog: ScanWatchdog,
    shared: Arc<Shared>,
    _enabled: Enabled,
}

/// Cancels the scan watchdog on drop: its code goes with the module.
struct ScanWatchdog(Arc<Shared>);

impl Drop for ScanWatchdog {
    fn drop(&mut self) {
        DelayedWork::cancel_sync(&self.0);
    }
}

/// Disables the function on drop (after the bh is stopped).
struct Enabled(ARef<sdio::Function>);

impl Drop for Enabled {
    fn drop(&mut self) {
        let _ = self.0.claim_host().disable();
    }
}

/// The bh thread: firmware download, then the core's bh loop.
struct Bh {
    func: ARef<sdio::Function>,
    shared: Arc<Shared>,
}

struct Bes2600;

impl sdio::Driver for Bes2600 {
    type Data = Pin<KBox<Device>>;
    const NAME: &'static CStr = c_str!("bes2600");
    const ID_TABLE: sdio::IdTableRef = IDS.as_ref();

    fn probe(func: &sdio::Function, id: &sdio::DeviceId) -> Result<Pin<KBox<Device>>> {
        pr_info!("probing {:04x}:{:04x}\n", id.vendor(), id.device());
        {
            let mut host = func.claim_host();
            host.enable()?;
            host.set_block_size(BLOCK_SIZE)?;
        }
        let enabled = Enabled(func.to_owned());
        let mut slots = KVec::with_capacity(queue::SLOTS, GFP_KERNEL)?;
        for _ in 0..queue::SLOTS {
            slots.push(queue::Slot::default(), GFP_KERNEL)?;
        }
        let tx = TxShared::with_slots(slots).map_err(|_| EINVAL)?;
        let shared = Arc::pin_init(
            pin_init!(Shared {
                line: bh::IrqLine::new(),
                wake <- new_wait_queue!("bes2600_bh"),
                cmd_free <- new_wait_queue!("bes2600_cmd"),
                tx <- new_spinlock_bh!(tx, "bes2600_tx"),
                bound: core::sync::atomic::AtomicBool::new(false),
                started: core::sync::atomic::AtomicBool::new(false),
                stopped: core::sync::atomic::AtomicU8::new(0),
                queue_stops: core::sync::atomic::AtomicU32::new(0),
                queue_wakes: core::sync::atomic::AtomicU32::new(0),
                edca <- new_mutex!([wsm::EdcaParams::default(); 4], "bes2600_edca"),
                pm <- new_mutex!(pm::PmPolicy::default(), "bes2600_pm"),
                scan <- new_mutex!(ScanState {
                    guard: scan::ScanGuard::default(),
                    legs: [NO_LEG; 2],
                    n_legs: 0,
                    next: 0,
                    active: false,
                    running: None,
                    finish: false,
                    leg_deadline_ms: 0,
                    timed_out: false,
                    aborted: false,
                }, "bes2600_scan"),
                scan_timeout <- DelayedWork::new(),
            }),
            GFP_KERNEL,
        )?;
        func.claim_host().claim_irq::<Bes2600>()?;
        let bh = kthread::Thread::spawn(
            c_str!("bes2600_bh"),
            Bh {
                func: func.to_owned(),
                shared: shared.clone(),
            },
        )?;
        Ok(KBox::pin(
            Device {
                bh,
                _watchdog: ScanWatchdog(shared.clone()),
                shared,
                _enabled: enabled,
            },
            GFP_KERNEL,
        )?)
    }

    fn probed(_func: &sdio::Function, dev: Pin<&Device>) {
        dev.shared.bound.store(true, core::sync::atomic::Ordering::Release);
        dev.bh.wake();
    }

    fn irq(_func: &sdio::Function, dev: Pin<&Device>) {
        dev.shared.irq();
    }

    fn remove(_func: &sdio::Function, dev: Pin<&Device>) {
        use core::sync::atomic::Ordering::Relaxed;
        pr_info!(
            "removed (tx queue stops {}, wakes {})\n",
            dev.shared.queue_stops.load(Relaxed),
            dev.shared.queue_wakes.load(Relaxed)
        );
    }
}

/// The address the interface gets. The simulated AP knows its station by
/// it; on a PineTab2 the chip's own address (factory data) is not read yet.
const MAC: [u8; 6] = [0x02, 0xbe, 0x57, 0x00, 0x00, 0x02];

const fn ch(hw_value: u16, center_freq: u16) -> mac80211::Channel {
    mac80211::Channel { center_freq, hw_value }
}
const fn rate(bitrate: u16, hw_value: u16) -> mac80211::Rate {
    mac80211::Rate { bitrate, hw_value }
}

/// 2.4 GHz channels 1-13 and the 802.11b/g rates (cw1200 `main.c`,
/// `cw1200_channels`, `cw1200_rates`).
static CH_2GHZ: [mac80211::Channel; 13] = [
    ch(1, 2412), ch(2, 2417), ch(3, 2422), ch(4, 2427), ch(5, 2432), ch(6, 2437), ch(7, 2442),
    ch(8, 2447), ch(9, 2452), ch(10, 2457), ch(11, 2462), ch(12, 2467), ch(13, 2472),
];
static RATES_2GHZ: [mac80211::Rate; 12] = [
    rate(10, 0), rate(20, 1), rate(55, 2), rate(110, 3), rate(60, 6), rate(90, 7), rate(120, 8),
    rate(180, 9), rate(240, 10), rate(360, 11), rate(480, 12), rate(540, 13),
];
/// 5 GHz channels 36-64 and 149-165 with the OFDM rates.
static CH_5GHZ: [mac80211::Channel; 13] = [
    ch(36, 5180), ch(40, 5200), ch(44, 5220), ch(48, 5240), ch(52, 5260), ch(56, 5280),
    ch(60, 5300), ch(64, 5320), ch(149, 5745), ch(153, 5765), ch(157, 5785), ch(161, 5805),
    ch(165, 5825),
];
static RATES_5GHZ: [mac80211::Rate; 8] = [
    rate(60, 6), rate(90, 7), rate(120, 8), rate(180, 9), rate(240, 10), rate(360, 11),
    rate(480, 12), rate(540, 13),
];

/// The mac80211 side of the driver.
struct Radio;

#[vtable]
impl mac80211::Operations for Radio {
    type Data = Arc<Shared>;
    const BANDS: &'static [BandSpec] = &[
        BandSpec { band: mac80211::Band::Ghz2, channels: &CH_2GHZ, rates: &RATES_2GHZ },
        BandSpec { band: mac80211::Band::Ghz5, channels: &CH_5GHZ, rates: &RATES_5GHZ },
    ];

    /// cw1200 `main.c`: `max_scan_ssids = 2`.
    const MAX_SCAN_SSIDS: u8 = 2;
    /// The firmware does power save (bes2600 `main.c` 379-380: SUPPORTS_PS,
    /// SUPPORTS_DYNAMIC_PS).
    const POWER_SAVE: bool = true;

    fn tx(hw: &Hw<Self>, skb: SkBuff) {
        let shared = hw.data();
        let ac = queue::Ac::from_index(usize::from(skb.queue_mapping())).unwrap_or(queue::Ac::Be);
        let meta = queue::TxMeta::default();
        let put = {
            let mut g = shared.tx.lock();
            let put = g.queues.put_with(ac, meta, skb);
            // Full now: mac80211 holds the next frames of this AC until the
            // bh has room again (`wake_stopped`), as cw1200's queue.c does.
            if g.queues.free_in(ac) == 0 {
                let bit = 1u8 << (ac as u8);
                if shared.stopped.fetch_or(bit, core::sync::atomic::Ordering::AcqRel) & bit == 0 {
                    hw.stop_queue(ac as u16);
                    shared.queue_stops.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                }
            }
            put
        };
        match put {
            Ok(()) => shared.kick(),
            // Only a frame already in flight when the queue filled.
            Err(skb) => hw.free_tx(skb),
        }
    }
    fn start(hw: &Hw<Self>) -> Result {
        hw.data().started.store(true, core::sync::atomic::Ordering::Release);
        Ok(())
    }
    fn stop(hw: &Hw<Self>, _suspend: bool) {
        hw.data().started.store(false, core::sync::atomic::Ordering::Release);
    }
    fn add_interface(_hw: &Hw<Self>, _vif: &mac80211::Vif) -> Result {
        Ok(())
    }
    fn remove_interface(_hw: &Hw<Self>, _vif: &mac80211::Vif) {}
    fn config(_hw: &Hw<Self>, _changed: u32) -> Result {
        Ok(())
    }
    fn hw_scan(hw: &Hw<Self>, _vif: &mac80211::Vif, req: &mac80211::ScanRequest) -> Result {
        let shared: Arc<Shared> = hw.data().into();
        shared.start_scan(req)?;
        let ms = shared.next_leg();
        Shared::arm_scan_timeout(&shared, ms);
        Ok(())
    }
    fn bss_info_changed(hw: &Hw<Self>, vif: &mac80211::Vif, info: &mac80211::BssConf, changed: u64) {
        if changed & mac80211::BSS_CHANGED_PS != 0 {
            hw.data().set_power_save(vif.power_save(), hw.dynamic_ps_timeout());
        }
        if changed & mac80211::BSS_CHANGED_BSSID == 0 {
            return;
        }
        let (Some(bssid), Some(chan)) = (info.bssid(), hw.channel()) else {
            return;
        };
        // Join the BSS before mac80211 sends the authentication frame
        // (cw1200 `sta.c`, `cw1200_do_join`), on the channel mac80211 set.
        let join = wsm::Request::Join(wsm::JoinReq {
            mode: 0,
            band: match chan.band {
                mac80211::Band::Ghz2 => wsm::Band::Ghz2,
                mac80211::Band::Ghz5 => wsm::Band::Ghz5,
            },
            channel: chan.hw_value,
            bssid,
            atim_window: 0,
            preamble: 0,
            probe_for_join: 1,
            dtim_period: 1,
            flags: 0,
            ssid: wsm::Ssid { len: 0, bytes: [0; 32] },
            beacon_interval: u32::from(info.beacon_int()),
            basic_rate_set: 0xf,
        });
        if let Err(e) = hw.data().send_cmd(&join) {
            pr_warn!("join {:02x?}: {:?}\n", bssid, e);
        }
    }

    fn set_key(
        hw: &Hw<Self>,
        cmd: KeyCmd,
        _vif: &mac80211::Vif,
        sta: Option<&mac80211::Sta>,
        key: &mac80211::KeyConf,
    ) -> Result {
        use mac80211::cipher;
        let entry = if key.pairwise() { PAIRWISE_KEY_ENTRY } else { key.keyidx() };
        if cmd == KeyCmd::Disable {
            return hw.data().send_cmd(&wsm::Request::RemoveKey { entry_index: entry });
        }
        // The chip's key types (bes2600 `wsm.h` 334-339): WEP default 0,
        // AES group 4, AES pairwise 5. TKIP is left to software.
        let req = match key.cipher() {
            cipher::WEP40 | cipher::WEP104 => {
                wsm::AddKeyReq::wep_default(entry, key.keyidx(), key.key()).map_err(|_| EINVAL)?
            }
            cipher::CCMP => {
                let k: [u8; 16] = key.key().try_into().map_err(|_| EINVAL)?;
                match (key.pairwise(), sta) {
                    (true, Some(sta)) => wsm::AddKeyReq::aes_pairwise(entry, sta.addr(), k),
                    (true, None) => return Err(EINVAL),
                    (false, _) => wsm::AddKeyReq::aes_group(entry, key.keyidx(), k, [0; 8]),
                }
            }
            _ => return Err(Error::from_errno(-(kernel::bindings::EOPNOTSUPP as i32))),
        };
        hw.data().send_cmd(&wsm::Request::AddKey(req))?;
        key.set_hw_index(entry);
        Ok(())
    }

    fn conf_tx(
        hw: &Hw<Self>,
        _vif: &mac80211::Vif,
        _link_id: u32,
        ac: u16,
        p: &mac80211::TxQueueParams,
    ) -> Result {
        let shared = hw.data();
        let params = {
            let mut e = shared.edca.lock();
            let slot = e.get_mut(usize::from(ac)).ok_or(EINVAL)?;
            // cw1200 `sta.c` cw1200_conf_tx: WSM_EDCA_SET(.., 0xc8 max RX lifetime, ..).
            *slot = wsm::EdcaParams {
                cwmin: p.cw_min(),
                cwmax: p.cw_max(),
                aifs: p.aifs(),
                txop_limit: p.txop(),
                max_rx_lifetime: 0xc8,
            };
            *e
        };
        shared.send_cmd(&wsm::Request::Edca { params })
    }

    fn cancel_hw_scan(hw: &Hw<Self>, _vif: &mac80211::Vif) {
        let shared = hw.data();
        let mut st = shared.scan.lock();
        if st.active {
            st.active = false;
            st.n_legs = 0;
            st.finish = false;
            hw.scan_completed(true);
        }
    }
}

fn now_ms() -> u64 {
    time::Ktime::ktime_get().to_ms() as u64
}

/// The core's SDIO bus over the kernel's: the host is claimed per transfer,
/// as bes2600 and cw1200 do, so the SDIO IRQ work can run in between.
struct Bus<'a> {
    func: &'a sdio::Function,
}

fn bus_err(e: Error) -> bh::BusError {
    // `-EILSEQ`: a data CRC error, which the core may retry (neither errno
    // is in 6.12's `kernel::error::code`).
    let errno = -e.to_errno();
    if errno == kernel::bindings::EILSEQ as i32 {
        bh::BusError::Crc
    } else if errno == kernel::bindings::ETIMEDOUT as i32 {
        bh::BusError::Timeout
    } else {
        bh::BusError::Other
    }
}

impl bh::SdioBus for Bus<'_> {
    fn readb(&mut self, addr: u32) -> core::result::Result<u8, bh::BusError> {
        self.func.claim_host().readb(addr).map_err(bus_err)
    }
    fn writeb(&mut self, addr: u32, val: u8) -> core::result::Result<(), bh::BusError> {
        self.func.claim_host().writeb(addr, val).map_err(bus_err)
    }
    fn cmd53_read(
        &mut self,
        cmd: bes2600_core::sdio::Cmd53,
        buf: &mut [u8],
    ) -> core::result::Result<(), bh::BusError> {
        self.func.claim_host().cmd53_read(cmd.arg, buf).map_err(bus_err)
    }
    fn cmd53_write(
        &mut self,
        cmd: bes2600_core::sdio::Cmd53,
        data: &[u8],
    ) -> core::result::Result<(), bh::BusError> {
        self.func.claim_host().cmd53_write(cmd.arg, data).map_err(bus_err)
    }
}

/// The bh's view of the shared TX state: one `spin_lock_bh` section per call.
struct TxLock<'a>(&'a SpinLockBh<TxShared>);

impl queue::TxAccess<Frame, Slots> for TxLock<'_> {
    fn with<R>(&mut self, f: impl FnOnce(&mut TxShared) -> R) -> R {
        f(&mut self.0.lock())
    }
}

/// What the core hands up: RX batches go to mac80211 as they come; scan
/// events are noted for the bh loop, which acts on them outside the core.
struct Upper<'a> {
    hw: &'a Hw<Radio>,
    rx_frames: u64,
    rx_dropped: u64,
    started: bool,
    /// A scan leg ended: the firmware's start status (0 if it ran).
    leg_done: Option<u32>,
}

/// MHz of a channel number as the chip reports it (2.4 GHz: 1-14, 5 GHz above).
fn chan_freq(ch: u16) -> (u16, mac80211::Band) {
    match ch {
        14 => (2484, mac80211::Band::Ghz2),
        1..=13 => (2407 + 5 * ch, mac80211::Band::Ghz2),
        _ => (5000 + 5 * ch, mac80211::Band::Ghz5),
    }
}

impl bh::Upper<Frame> for Upper<'_> {
    fn rx_batch(&mut self, batch: &bh::RxDelivery<'_>) {
        if !self.hw.data().started.load(core::sync::atomic::Ordering::Acquire) {
            self.rx_dropped += batch.len() as u64;
            return;
        }
        // Allocate first: the delivery runs with bottom halves disabled.
        let Ok(mut rx) = KVec::<(SkBuff, RxStatus)>::with_capacity(batch.len(), GFP_KERNEL) else {
            self.rx_dropped += batch.len() as u64;
            return;
        };
        for (meta, frame) in batch.iter() {
            let skb = SkBuff::alloc(frame.len() as u32).and_then(|mut s| s.put_slice(frame).map(|()| s));
            let Ok(skb) = skb else {
                self.rx_dropped += 1;
                continue;
            };
            let (freq, band) = chan_freq(meta.channel);
            let st = RxStatus { freq, band, signal: meta.rcpi_rssi as i8, rate_idx: 0 };
            if rx.push((skb, st), GFP_KERNEL).is_err() {
                self.rx_dropped += 1;
            }
        }
        self.rx_frames += self.hw.rx_batch(|b| {
            for (skb, st) in rx {
                b.push(skb, &st);
            }
        }) as u64;
    }
    fn tx_done(&mut self, frame: Frame, confirm: &wsm::TxConfirm) {
        self.hw.tx_status(frame, confirm.status == 0);
    }
    fn cmd_done(&mut self, req: u16, status: u32, _body: &[u8]) {
        if req == wsm::id::SET_PM_REQ {
            let shared = self.hw.data();
            let mut pm = shared.pm.lock();
            let latched = pm.latch();
            pm.on_set_pm_confirm(status, now_ms());
            if status != 0 && latched == pm::PmLatch::Open {
                pr_info!("set_pm refused (status {}): power save latched off\n", status);
            }
            return;
        }
        if req == wsm::id::START_SCAN_REQ {
            if status != 0 {
                // No scan-complete will follow: the leg ends here.
                self.leg_done = Some(status);
            }
            return;
        }
        if status != 0 {
            pr_warn!("command {:#06x} status {}\n", req, status);
        }
    }
    fn indication(&mut self, ind: bh::Indication<'_>) {
        match ind {
            bh::Indication::Started { input_buffers } => {
                self.started = true;
                pr_info!("firmware up, {} input buffers\n", input_buffers);
            }
            bh::Indication::FirmwareException { .. } => {
                pr_err!("firmware exception\n");
            }
            bh::Indication::ScanComplete { .. } => {
                self.leg_done.get_or_insert(0);
            }
            bh::Indication::SetPmComplete { psm } => {
                if self.hw.data().pm.lock().on_pm_indication().is_some() {
                    pr_info!("set_pm complete (psm {:#04x}): power save latch reopened\n", psm);
                }
            }
            _ => {}
        }
    }
}

impl Bh {
    /// Sleeps until the thread is asked to stop (the `Thread` joins it).
    fn park(&self) {
        while !kthread::should_stop() {
            self.sleep(BH_IDLE_MS, || false);
        }
    }

    fn sleep(&self, ms: u32, cond: impl Fn() -> bool) -> Woken {
        self.shared.wake.wait_interruptible_timeout(
            || cond() || kthread::should_stop(),
            time::msecs_to_jiffies(ms),
        )
    }

    /// The firmware download, in `bes2600_load_firmware_sdio`'s order.
    fn load_firmware(&self) -> Result {
        let dev = self.func.device();
        let boot = Firmware::request(FW_BOOT, dev)?;
        let wifi = Firmware::request(FW_WIFI, dev)?;
        let mut scratch = KVec::from_elem(0u8, fwload::FW_CHUNK_MAX, GFP_KERNEL)?;
        let mut dpd = KVec::from_elem(0u8, 0x4000, GFP_KERNEL)?;
        let mut bus = Bus { func: &self.func };
        let line = &self.shared.line;
        let mut io = fwload::FwIo {
            bus: &mut bus,
            wait_irq: |_: &mut Bus<'_>| {
                self.sleep(FW_IRQ_WAIT_MS, || line.pending());
                line.take().rx
            },
            scratch: &mut scratch,
        };
        let images = fwload::FwImages {
            boot: boot.data(),
            wifi: wifi.data(),
            factory: None,
            dpd: None,
        };
        match fwload::load_all(&mut io, &images, &mut dpd) {
            Ok((info, dpd_len)) => {
                pr_info!(
                    "firmware loaded ({} bytes at {:#x}, {} DPD bytes)\n",
                    info.code_len,
                    info.load_addr,
                    dpd_len
                );
                Ok(())
            }
            Err(e) => {
                pr_err!("firmware download failed: {:?}\n", e);
                Err(EIO)
            }
        }
    }
}

impl Bh {
    /// After a bh pass: a finished scan leg starts the next one; when all
    /// are done, mac80211 hears of it (never from inside `hw_scan`).
    /// Wakes the mac80211 queues `Radio::tx` stopped once their AC has a
    /// quarter of its slots free again (hysteresis: no stop/wake per frame).
    fn wake_stopped(&self, hw: &Hw<Radio>) {
        use core::sync::atomic::Ordering;
        if self.shared.stopped.load(Ordering::Acquire) == 0 {
            return;
        }
        let g = self.shared.tx.lock();
        for ac in queue::Ac::ALL {
            let bit = 1u8 << (ac as u8);
            if self.shared.stopped.load(Ordering::Acquire) & bit != 0
                && g.queues.free_in(ac) >= queue::QUEUE_DEPTH / 4
            {
                self.shared.stopped.fetch_and(!bit, Ordering::AcqRel);
                hw.wake_queue(ac as u16);
                self.shared.queue_wakes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn scan_events(&self, upper: &mut Upper<'_>) {
        let timed_out = {
            let mut st = self.shared.scan.lock();
            let t = core::mem::take(&mut st.timed_out);
            if t {
                if let Some(band) = st.running.take() {
                    pr_warn!("scan: timeout waiting for the {:?} leg's scan complete\n", band);
                }
                // The scan ends here (cw1200 `scan.c` cw1200_scan_timeout):
                // later legs are dropped and mac80211 hears "aborted".
                st.next = st.n_legs;
                st.aborted = true;
            }
            t
        };
        if timed_out {
            // cw1200 `scan.c` 344: stop the scan the chip may still run.
            if self.shared.tx.lock().cmd.put(&wsm::Request::StopScan, 0).is_err() {
                pr_warn!("scan: no command slot for stop-scan\n");
            }
            let _ = self.shared.next_leg();
        }
        if let Some(status) = upper.leg_done.take() {
            {
                let mut st = self.shared.scan.lock();
                if let Some(band) = st.running.take() {
                    st.guard.on_start_confirm(band, status, now_ms());
                }
            }
            let ms = self.shared.next_leg();
            Shared::arm_scan_timeout(&self.shared, ms);
        }
        let mut st = self.shared.scan.lock();
        if st.finish {
            st.finish = false;
            if st.active {
                st.active = false;
                let aborted = st.aborted;
                drop(st);
                upper.hw.scan_completed(aborted);
            }
        }
    }
}

impl kthread::Runnable for Bh {
    fn run(&self) {
        use core::sync::atomic::Ordering;
        // Wait until IRQs reach us (`Driver::probed`).
        while !self.shared.bound.load(Ordering::Acquire) && !kthread::should_stop() {
            self.sleep(BH_IDLE_MS, || self.shared.bound.load(Ordering::Acquire));
        }
        if kthread::should_stop() || self.load_firmware().is_err() {
            self.park();
            return;
        }
        // The bh state lives on this thread's stack only: `BhContext` is
        // neither `Send` nor `Sync`, so no other context can reach it.
        let mut ctx = bh::BhContext::new();
        let (Ok(mut rx), Ok(mut txb)) = (
            KVec::from_elem(0u8, bh::RX_BUF_LEN, GFP_KERNEL),
            KVec::from_elem(0u8, bh::TX_BUF_LEN, GFP_KERNEL),
        ) else {
            pr_err!("no memory for the bh buffers\n");
            self.park();
            return;
        };
        let reg = match mac80211::Registration::<Radio>::new(self.func.device(), MAC, 4, self.shared.clone()) {
            Ok(r) => r,
            Err(e) => {
                pr_err!("registering with mac80211 failed: {:?}\n", e);
                self.park();
                return;
            }
        };
        let mut upper = Upper {
            hw: reg.hw(),
            rx_frames: 0,
            rx_dropped: 0,
            started: false,
            leg_done: None,
        };
        // The chip raised its startup indication before our first wait.
        let mut wake = bh::Wake::RX;
        while !kthread::should_stop() {
            let Some(mut bufs) = bh::BhBufs::new(&mut rx, &mut txb) else {
                break;
            };
            let mut bus = Bus { func: &self.func };
            let r = ctx.run(
                wake,
                &mut bus,
                &mut bufs,
                &mut upper,
                &mut TxLock(&self.shared.tx),
                now_ms(),
            );
            if let Err(bh::BhError::Halted(why)) = r {
                pr_err!("bh halted: {:?}\n", why);
                break;
            }
            self.scan_events(&mut upper);
            self.wake_stopped(upper.hw);
            self.shared.cmd_free.wake_up();
            let idle = match ctx.next_deadline() {
                Some(t) => t.saturating_sub(now_ms()).min(u64::from(BH_IDLE_MS)) as u32,
                None => BH_IDLE_MS,
            };
            self.sleep(idle, || self.shared.line.pending());
            wake = self.shared.line.take();
        }
        // Unregistering calls back into `Radio`, which never waits for the bh.
        drop(reg);
        self.park();
    }
}

