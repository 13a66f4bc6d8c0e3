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

use kernel::{
    c_str,
    firmware::Firmware,
    kthread,
    prelude::*,
    sdio,
    sync::{new_spinlock_bh, new_wait_queue, Arc, SpinLockBh, WaitQueue, Woken},
    time,
    types::ARef,
};

/// The driver core, mounted by path (`core_mount.rs`): its `pub` is its
/// API toward this module, not this crate's.
#[path = "core_mount.rs"]
#[allow(unreachable_pub, dead_code, missing_docs)]
mod bes2600_core;

use bes2600_core::{bh, fwload, queue};

module! {
    type: Bes2600Module,
    name: "bes2600",
    author: "besser",
    description: "BES2600 Wi-Fi over SDIO (Rust)",
    license: "GPL",
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
/// How long the bh sleeps when the core has no deadline.
const BH_IDLE_MS: u32 = 1000;

/// A frame on its way to the chip (owned bytes until mac80211 is wired in).
struct Frame(KVec<u8>);

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}
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
}

impl Shared {
    fn irq(&self) {
        if self.line.irq() {
            self.wake.wake_up();
        }
    }
}

/// The per-function state the SDIO core keeps for us.
///
/// Field order is drop order: the bh thread is stopped first, then the
/// function disabled.
struct Device {
    bh: kthread::Thread<Bh>,
    shared: Arc<Shared>,
    _enabled: Enabled,
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
                tx <- new_spinlock_bh!(tx, "bes2600_tx"),
                bound: core::sync::atomic::AtomicBool::new(false),
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

    fn remove(_func: &sdio::Function, _dev: Pin<&Device>) {
        pr_info!("removed\n");
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

/// What the core hands up. Until mac80211 is wired in, frames are counted.
struct Upper {
    rx_frames: u64,
    started: bool,
}

impl bh::Upper<Frame> for Upper {
    fn rx_batch(&mut self, batch: &bh::RxDelivery<'_>) {
        self.rx_frames += batch.len() as u64;
    }
    fn tx_done(&mut self, _frame: Frame, _confirm: &bes2600_core::wsm::TxConfirm) {}
    fn cmd_done(&mut self, req: u16, status: u32, _body: &[u8]) {
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
        let mut upper = Upper {
            rx_frames: 0,
            started: false,
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
            let idle = match ctx.next_deadline() {
                Some(t) => t.saturating_sub(now_ms()).min(u64::from(BH_IDLE_MS)) as u32,
                None => BH_IDLE_MS,
            };
            self.sleep(idle, || self.shared.line.pending());
            wake = self.shared.line.take();
        }
        self.park();
    }
}

