// SPDX-License-Identifier: GPL-2.0

//! The chip model of `driver/sim` (`chip.rs`, `wire.rs`, `ap.rs`, mounted by
//! path, unchanged) inside the kernel, behind the simulated SDIO host of
//! `sim_host.c`. Test-only: it is built into QEMU boards' images alone.
//!
//! This file is the C ABI between the two halves. `sim_host.c` owns the MMC
//! host, the SDIO card's function 0 (CCCR, FBR, CIS) and the locking (one
//! mutex around every call here); this side owns function 1, i.e. the chip.
//! The only `unsafe` is turning the C side's pointers back into the chip and
//! into byte slices.

#[path = "../sim/src/ap.rs"]
#[allow(dead_code, missing_docs, unreachable_pub)]
mod ap;
#[path = "../sim/src/chip.rs"]
#[allow(dead_code, missing_docs, unreachable_pub)]
mod chip;
#[path = "../sim/src/wire.rs"]
#[allow(dead_code, missing_docs, unreachable_pub)]
mod wire;

use chip::{Chip, ChipBusError, ChipConfig};
use kernel::{ffi::c_void, prelude::*};

type KChip = Chip<VVec<u8>>;

/// What a chip call returns to C: 0, or a negative errno as the MMC core
/// expects it from a host (`-EILSEQ` CRC, `-ETIMEDOUT` no response, `-EIO`).
fn errno(r: core::result::Result<(), ChipBusError>) -> i32 {
    match r {
        Ok(()) => 0,
        // Not in 6.12's `kernel::error::code`.
        Err(ChipBusError::Crc) => -(kernel::bindings::EILSEQ as i32),
        Err(ChipBusError::Timeout) => -(kernel::bindings::ETIMEDOUT as i32),
        Err(ChipBusError::Other) => EIO.to_errno(),
    }
}

/// A chip in its boot ROM, as at power-on: the driver downloads the
/// firmware (two stages and the DPD readback, as on a PineTab2). The AP
/// beacons every 102 ms (100 TU). Returns NULL when memory is short.
#[no_mangle]
pub extern "C" fn besser_chip_new() -> *mut c_void {
    let Ok(mem) = VVec::from_elem(0u8, chip::MEM_LEN, GFP_KERNEL) else {
        return core::ptr::null_mut();
    };
    let cfg = ChipConfig {
        boot_stages: 2,
        beacon_interval_ms: Some(102),
        ..ChipConfig::default()
    };
    let Ok(mut c) = KBox::new(Chip::with_mem(cfg, mem), GFP_KERNEL) else {
        return core::ptr::null_mut();
    };
    c.power_on_boot_rom();
    KBox::into_raw(c).cast()
}

/// # Safety
///
/// `c` must come from [`besser_chip_new`] and not be used again.
#[no_mangle]
pub unsafe extern "C" fn besser_chip_free(c: *mut c_void) {
    if !c.is_null() {
        // SAFETY: The caller's promise: `c` is ours, from `KBox::into_raw`.
        drop(unsafe { KBox::from_raw(c.cast::<KChip>()) });
    }
}

/// # Safety
///
/// `c` must come from [`besser_chip_new`], with no other call on it running.
unsafe fn chip<'a>(c: *mut c_void) -> &'a mut KChip {
    // SAFETY: The caller's promise; `sim_host.c` serialises calls with its mutex.
    unsafe { &mut *c.cast::<KChip>() }
}

/// CMD52 read of function-1 register `addr` into `*out`.
///
/// # Safety
///
/// As for [`chip`]; `out` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn besser_chip_readb(c: *mut c_void, addr: u32, out: *mut u8) -> i32 {
    // SAFETY: The caller's promise.
    let chip = unsafe { chip(c) };
    match chip.readb(addr) {
        Ok(v) => {
            // SAFETY: The caller's promise.
            unsafe { out.write(v) };
            0
        }
        Err(e) => errno(Err(e)),
    }
}

/// CMD52 write of function-1 register `addr`.
///
/// # Safety
///
/// As for [`chip`].
#[no_mangle]
pub unsafe extern "C" fn besser_chip_writeb(c: *mut c_void, addr: u32, val: u8) -> i32 {
    // SAFETY: The caller's promise.
    errno(unsafe { chip(c) }.writeb(addr, val))
}

/// CMD53 with the raw argument `arg` on `len` bytes at `buf` (read or
/// write, as bit 31 of `arg` says).
///
/// # Safety
///
/// As for [`chip`]; `buf` must be valid for reads and writes of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn besser_chip_cmd53(c: *mut c_void, arg: u32, buf: *mut u8, len: usize) -> i32 {
    // SAFETY: The caller's promise.
    let (chip, buf) = unsafe { (chip(c), core::slice::from_raw_parts_mut(buf, len)) };
    errno(if arg & (1 << 31) != 0 {
        chip.cmd53_write(arg, buf)
    } else {
        chip.cmd53_read(arg, buf)
    })
}

/// Advances the chip's clock to `now_ms` (beacons, timed faults).
///
/// # Safety
///
/// As for [`chip`].
#[no_mangle]
pub unsafe extern "C" fn besser_chip_tick(c: *mut c_void, now_ms: u64) {
    // SAFETY: The caller's promise.
    unsafe { chip(c) }.tick(now_ms);
}

/// Whether the chip raised its interrupt since the last call.
///
/// # Safety
///
/// As for [`chip`].
#[no_mangle]
pub unsafe extern "C" fn besser_chip_take_irq(c: *mut c_void) -> bool {
    // SAFETY: The caller's promise.
    unsafe { chip(c) }.take_irq()
}

/// Writes into a byte slice, cutting off what does not fit.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n < s.len() {
            Err(core::fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// The chip model's oracle counters as `name value` lines (debugfs
/// `besser_sdio_sim/chip`, which the tests read). Returns the bytes written.
///
/// # Safety
///
/// As for [`chip`]; `buf` must be valid for writes of `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn besser_chip_stats(c: *mut c_void, buf: *mut u8, cap: usize) -> usize {
    use core::fmt::Write;
    // SAFETY: The caller's promise.
    let (chip, buf) = unsafe { (chip(c), core::slice::from_raw_parts_mut(buf, cap)) };
    let s = chip.stats;
    let mut w = SliceWriter { buf, len: 0 };
    let _ = write!(
        w,
        "boots {}\nrequests {}\nscan_requests {}\nscan_rejects {}\nscan_rejects_5ghz_multi {}\n\
         tx_frames {}\nrx_batches {}\nrx_msgs {}\noverruns {}\ntx_toggle_errors {}\n\
         rx_toggle_errors {}\nbad_writes {}\nbad_reads {}\nslot_mismatches {}\nmcu_not_alone {}\n\
         keys_by_type {:?}\nap_associated {}\ndownlink_ethernet {}\ndownlink_dropped {}\n\
         uplink_ethernet {}\nuplink_ethernet_dropped {}\nwired_full {}\noutbox_full {}\n\
         ctrl_crc_injected {}\ndata_crc_injected {}\nstale_ctrl_injected {}\nconfirms_dropped {}\n\
         exceptions_raised {}\nrequeued_by_chip_every {}\ndegraded {}\nuptime_ms {}\n\
         edca_requests {}\npm_requests {}\npm_refused {}\nlast_pm_mode {}\n\
         scan_completes_dropped {}\n",
        chip.boots(),
        s.requests,
        s.scan_requests,
        s.scan_rejects,
        s.scan_rejects_5ghz_multi,
        s.tx_frames,
        s.rx_batches,
        s.rx_msgs,
        s.overruns,
        s.tx_toggle_errors,
        s.rx_toggle_errors,
        s.bad_writes,
        s.bad_reads,
        s.slot_mismatches,
        s.mcu_not_alone,
        s.keys_by_type,
        chip.ap.associated,
        s.downlink_ethernet,
        s.downlink_dropped,
        s.uplink_ethernet,
        s.uplink_ethernet_dropped,
        s.wired_full,
        s.outbox_full,
        s.ctrl_crc_injected,
        s.data_crc_injected,
        s.stale_ctrl_injected,
        s.confirms_dropped,
        s.exceptions_raised,
        chip.cfg.faults.requeue_every,
        u8::from(chip.cfg.faults.degrade_after_ms.is_some_and(|t| chip.uptime_ms() >= t)),
        chip.uptime_ms(),
        s.edca_requests,
        s.pm_requests,
        s.pm_refused,
        s.last_pm_mode,
        s.scan_completes_dropped,
    );
    // The last EDCA request per queue (VO, VI, BE, BK): `NAME a b c d` lines.
    type Edca = (u16, u16, u8, u16);
    type Pick = fn(&Edca) -> u16;
    let fields: [(&str, Pick); 3] = [
        ("edca_cwmin", |e| e.0),
        ("edca_cwmax", |e| e.1),
        ("edca_aifs", |e| u16::from(e.2)),
    ];
    for (name, pick) in fields {
        let _ = write!(w, "{name}");
        for e in &s.last_edca {
            let _ = write!(w, " {}", pick(e));
        }
        let _ = writeln!(w);
    }
    w.len
}

/// Makes the simulated AP advertise privacy (or not), for a static-key
/// association (debugfs `besser_sdio_sim/ap_privacy`).
///
/// # Safety
///
/// As for [`chip`].
#[no_mangle]
pub unsafe extern "C" fn besser_chip_set_ap_privacy(c: *mut c_void, on: bool) {
    // SAFETY: The caller's promise.
    unsafe { chip(c) }.ap.privacy = on;
}

/// An Ethernet frame from the AP's wired side (`besserap0`) for the air:
/// `false` when the chip's outbox is full (the caller keeps the frame).
///
/// # Safety
///
/// As for [`chip`]; `buf` must be valid for reads of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn besser_chip_offer_eth(c: *mut c_void, buf: *const u8, len: usize) -> bool {
    // SAFETY: The caller's promise.
    let (chip, eth) = unsafe { (chip(c), core::slice::from_raw_parts(buf, len)) };
    chip.offer_ethernet(eth)
}

/// The oldest Ethernet frame the AP bridged off the air into `buf`
/// (`cap` >= `chip::WIRED_LEN`); its length, or 0 when there is none.
///
/// # Safety
///
/// As for [`chip`]; `buf` must be valid for writes of `cap` bytes.
#[no_mangle]
pub unsafe extern "C" fn besser_chip_take_eth(c: *mut c_void, buf: *mut u8, cap: usize) -> usize {
    // SAFETY: The caller's promise.
    let (chip, out) = unsafe { (chip(c), core::slice::from_raw_parts_mut(buf, cap)) };
    chip.take_ethernet(out).unwrap_or(0)
}

/// Applies one fault spec (`NAME VALUE`, `chip::FAULT_NAMES`) to the running
/// chip model (debugfs `besser_sdio_sim/fault`): 0, or `-EINVAL` for a spec
/// the model refuses.
///
/// # Safety
///
/// As for [`chip`]; `buf` must be valid for reads of `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn besser_chip_fault(c: *mut c_void, buf: *const u8, len: usize) -> i32 {
    // SAFETY: The caller's promise.
    let (chip, spec) = unsafe { (chip(c), core::slice::from_raw_parts(buf, len)) };
    let applied = core::str::from_utf8(spec)
        .ok()
        .map(|s| chip.apply_fault(s));
    match applied {
        Some(Ok(())) => 0,
        _ => EINVAL.to_errno(),
    }
}
