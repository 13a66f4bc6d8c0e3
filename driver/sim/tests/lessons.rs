//! One regression test per lesson in DOMAIN.md ("What the maintainers found").

use bes2600_core::bh::Wake;
use bes2600_core::pm::{PmLatch, PM_LATCH_TIMEOUT_MS};
use bes2600_core::queue::Ac;
use bes2600_core::scan::{Channel, ScanGuard, ScanRefusal, SCAN_REJECTS_BEFORE_BACKOFF};
use bes2600_core::wsm::{self, status, Band, Request};
use bes2600_sim::ap;
use bes2600_sim::chip::{ChipConfig, Faults};
use bes2600_sim::harness::{Harness, Ind};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Lesson 1: no RX relay; the bh is the single writer of the credit ledger.
// Under any interleaving of IRQ, TX submit, RX and time events the ledger
// never underflows, never exceeds the grant, and the chip never sees more
// requests than its input buffers.

#[derive(Clone, Debug)]
enum Op {
    Irq,
    BhPass,
    SpuriousRxWake,
    Send(u8, usize),
    Command(u8),
    Downlink(usize, usize),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Irq),
        3 => Just(Op::BhPass),
        1 => Just(Op::SpuriousRxWake),
        4 => (0u8..4, 24usize..1500).prop_map(|(a, l)| Op::Send(a, l)),
        1 => (0u8..3).prop_map(Op::Command),
        2 => (1usize..40, 24usize..1500).prop_map(|(n, l)| Op::Downlink(n, l)),
        1 => (1u64..50).prop_map(Op::Advance),
    ]
}

fn apply(h: &mut Harness, op: &Op, sent: &mut usize) {
    match *op {
        Op::Irq => h.deliver_irq(),
        Op::BhPass => {
            h.bh_pass().unwrap();
        }
        Op::SpuriousRxWake => {
            h.run(Wake::RX).unwrap();
        }
        Op::Send(ac, len) => {
            let mut b = vec![0u8; 1600];
            let n = ap::sta_frame(&h.chip.ap, ap::fc::DATA, len, &mut b);
            b.truncate(n);
            if h.send_frame(Ac::from_index(usize::from(ac)).unwrap(), b)
                .is_ok()
            {
                *sent += 1;
            }
        }
        Op::Command(k) => {
            let req = match k {
                0 => Request::ReadMib { mib_id: 7 },
                1 => Request::Mcu {
                    cmd: 3,
                    cmd_type: 1,
                    payload: &[],
                },
                _ => Request::SetBssParams {
                    reset_beacon_loss: false,
                    beacon_lost_count: 20,
                    aid: 1,
                    operational_rate_set: 0xff,
                },
            };
            let _ = h.command(&req); // Busy is fine: one command at a time
        }
        Op::Downlink(n, len) => {
            h.chip.offer_downlink(n, len);
        }
        Op::Advance(ms) => {
            h.now_ms += ms;
            h.chip.tick(h.now_ms);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn no_credit_underflow_under_any_interleaving(
        credits in 1u16..8,
        faulty in any::<bool>(),
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let faults = if faulty {
            Faults { ctrl_crc_every: 7, data_crc_every: 5, stale_ctrl_every: 6, ..Default::default() }
        } else {
            Faults::default()
        };
        let mut h = Harness::new(ChipConfig { input_buffers: credits, faults, ..Default::default() });
        let mut sent = 0;
        for op in &ops {
            apply(&mut h, op, &mut sent);
            if let Err(e) = h.check_invariants() {
                prop_assert!(false, "after {:?}: {}", op, e);
            }
        }
        // Drain: everything sent is confirmed, nothing left in flight.
        for _ in 0..200 {
            h.pump().unwrap();
            h.run(Wake::RX).unwrap();
        }
        prop_assert_eq!(h.up.tx_done.len(), sent);
        prop_assert_eq!(h.bh.credits().hw_bufs_used, 0);
        prop_assert!(h.chip.stats.max_in_flight <= credits);
        prop_assert_eq!(h.bh.stats().credit_errors, 0);
        h.check_invariants().map_err(TestCaseError::fail)?;
    }
}

#[test]
fn a_confirm_for_nothing_is_counted_not_applied() {
    // The firmware repeats a confirm: cw1200 WARNs. C frees a buffer for
    // every confirm before parsing it (bh.c 1076-1080); with nothing in
    // flight that release would underflow: it is counted, not applied.
    let mut h = Harness::new(ChipConfig::default());
    let mut m = [0u8; 64];
    let n = bes2600_sim::wire::confirm(&mut m, 0, wsm::id::READ_MIB_REQ, 0, &[]).unwrap();
    assert!(h.chip.inject(&m[..n]));
    let n = bes2600_sim::wire::tx_confirm(&mut m, 0, 0x0102_0304, 0).unwrap();
    assert!(h.chip.inject(&m[..n]));
    h.pump().unwrap();
    let s = h.bh.stats();
    assert_eq!(
        (s.unexpected_confirms, s.stale_confirms, s.credit_errors),
        (1, 1, 2)
    );
    assert_eq!(h.bh.credits().hw_bufs_used, 0);
    assert!(h.bh.ledger_consistent());
}

// ---------------------------------------------------------------------------
// Lesson 2: RX delivery from the bh in batches, one delivery per SDIO read
// (the only RX delivery API of `Upper` is `rx_batch`).

#[test]
fn one_delivery_per_sdio_read_and_few_wakeups() {
    let mut h = Harness::new(ChipConfig::default());
    let reads_before = h.bus.data_reads;
    let wake_before = h.wakeups;
    let mut offered = 0;
    while offered < 2000 {
        offered += h.chip.offer_downlink(2000 - offered, 1500);
        h.pump().unwrap();
    }
    let reads = h.bus.data_reads - reads_before;
    let wakeups = h.wakeups - wake_before;
    assert_eq!(h.up.rx_frames, 2000);
    assert_eq!(h.up.rx_deliveries.len() as u64, reads);
    // Wake-ups are coalesced: never more than one per batch read.
    assert!(wakeups <= reads, "{wakeups} wake-ups for {reads} reads");
}

// ---------------------------------------------------------------------------
// Lesson 4: 5 GHz scan guard (Patch I v2).

fn nm_full_scan() -> Vec<Channel> {
    let mut v: Vec<Channel> = (1..=13)
        .map(|n| Channel {
            band: Band::Ghz2,
            number: n,
        })
        .collect();
    v.extend(
        [
            36u16, 40, 44, 48, 52, 56, 60, 64, 100, 104, 108, 112, 116, 120, 124, 128, 132, 136,
            140, 149, 153, 157, 161, 165,
        ]
        .iter()
        .map(|&n| Channel {
            band: Band::Ghz5,
            number: n,
        }),
    );
    v
}

#[test]
fn guard_refuses_multichannel_5ghz_and_passes_single_channel() {
    let mut g = ScanGuard::default();
    assert_eq!(g.check(Band::Ghz5, 24, 0), Err(ScanRefusal::NotSupported));
    assert_eq!(g.check(Band::Ghz5, 1, 0), Ok(()));
    assert_eq!(g.check(Band::Ghz2, 13, 0), Ok(()));
}

#[test]
fn single_channel_5ghz_scan_reaches_the_firmware_and_completes() {
    let mut h = Harness::new(ChipConfig::default());
    let out = h
        .scan(&[Channel {
            band: Band::Ghz5,
            number: 36,
        }])
        .unwrap();
    assert_eq!(
        (
            out.legs_sent,
            out.legs_refused,
            out.fw_rejects,
            out.completed
        ),
        (1, 0, 0, 1)
    );
    assert!(h.up.indications.contains(&Ind::ScanComplete(0)));
}

#[test]
fn rejects_on_5ghz_back_off_even_with_24ghz_successes_in_between() {
    // The defer-on-reject patch reset its count on every 2.4 GHz success
    // and so never tripped. The count is per band here.
    let mut g = ScanGuard::default();
    for i in 0..SCAN_REJECTS_BEFORE_BACKOFF {
        assert_eq!(g.check(Band::Ghz5, 1, u64::from(i)), Ok(()));
        g.on_start_confirm(Band::Ghz5, status::INVALID_PARAMETER, u64::from(i));
        g.on_start_confirm(Band::Ghz2, status::SUCCESS, u64::from(i));
    }
    assert!(matches!(
        g.check(Band::Ghz5, 1, 10),
        Err(ScanRefusal::BackingOff { .. })
    ));
    assert_eq!(g.check(Band::Ghz2, 13, 10), Ok(()));
}

/// A simulated hour of NetworkManager: a full two-band scan every 30 s
/// (mac80211 splits it per band) and a single-channel 5 GHz scan every
/// 120 s (profile with band=a). Returns (firmware rejects, outcomes).
fn nm_hour(guard: bool) -> (u64, u32, u32) {
    let mut h = Harness::new(ChipConfig::default());
    h.scan.enabled = guard;
    let full = nm_full_scan();
    let mut single_ok = 0;
    let mut refused = 0;
    for s in 0..3600u64 {
        if s % 30 == 0 {
            refused += h.scan(&full).unwrap().legs_refused;
        }
        if s % 120 == 60 {
            single_ok += h
                .scan(&[Channel {
                    band: Band::Ghz5,
                    number: 36,
                }])
                .unwrap()
                .completed;
        }
        h.advance(1000).unwrap();
    }
    h.check_invariants().unwrap();
    (h.chip.stats.scan_rejects, refused, single_ok)
}

#[test]
fn reject_storm_rate_is_zero_over_a_simulated_hour() {
    let (rejects, refused, single_ok) = nm_hour(true);
    assert_eq!(rejects, 0, "firmware rejects per hour with the guard");
    assert_eq!(
        refused, 120,
        "every 5 GHz leg of the 120 full scans refused upfront"
    );
    assert_eq!(single_ok, 30, "all single-channel 5 GHz scans completed");
}

#[test]
fn without_the_guard_the_storm_is_back() {
    // Negative control: the same hour without Patch I shows the storm, so
    // the test above can fail. (Backoff is part of the guard, so off too.)
    let (rejects, _, _) = nm_hour(false);
    assert_eq!(rejects, 120);
}

// ---------------------------------------------------------------------------
// Bug #5 candidate 4: the PM-unsupported latch recovers on timeout or progress.

#[test]
fn pm_latch_recovers_on_timeout() {
    let mut h = Harness::new(ChipConfig {
        pm_supported: false,
        ..Default::default()
    });
    let req = Request::SetPm {
        mode: 1,
        fast_psm_idle_period: 0,
        ap_psm_change_period: 0,
        min_auto_pspoll_period: 0,
    };
    assert!(h.up.pm.may_set_pm(h.now_ms));
    let st = h.command_sync(&req).unwrap().unwrap();
    h.up.pm.on_set_pm_confirm(st, h.now_ms);
    assert_eq!(h.up.pm.latch(), PmLatch::Unsupported { since_ms: 0 });
    assert!(!h.up.pm.may_set_pm(PM_LATCH_TIMEOUT_MS - 1));
    assert!(h.up.pm.may_set_pm(PM_LATCH_TIMEOUT_MS));
    assert_eq!(h.up.pm.stats().reopened_timeout, 1);
}

#[test]
fn pm_latch_recovers_on_progress() {
    // A real PM indication arriving after the latch proves PM works: the
    // latch must not stay stale (Bug #5 candidate 4). The indication comes
    // from the chip model through the bh's normal path (`Upper`).
    let mut h = Harness::new(ChipConfig::default());
    h.up.pm.on_set_pm_confirm(status::FAILURE, 0);
    assert!(!h.up.pm.may_set_pm(1));
    let req = Request::SetPm {
        mode: 1,
        fast_psm_idle_period: 0,
        ap_psm_change_period: 0,
        min_auto_pspoll_period: 0,
    };
    // Another path (e.g. the firmware's own power save, or a probe) gets
    // a set-PM through; its completion indication reopens the latch.
    h.command_sync(&req).unwrap();
    assert!(h
        .up
        .indications
        .iter()
        .any(|i| matches!(i, Ind::SetPmComplete(1))));
    assert_eq!(h.up.pm.stats().reopened_progress, 1);
    assert!(h.up.pm.may_set_pm(2));
}

// ---------------------------------------------------------------------------
// Lesson 3: lock discipline. The bh takes the one shared lock (`TxShared`,
// `spin_lock_bh` in the kernel) in short sections: never nested, never held
// across a bus transfer or an upcall, so no second lock can be ordered
// against it (the `pending_record_lock` inversion).

mod lock_discipline {
    use std::cell::Cell;
    use std::rc::Rc;

    use bes2600_core::bh::{
        BhBufs, BhContext, BusError, Indication, RxDelivery, SdioBus, Upper, Wake, RX_BUF_LEN,
        TX_BUF_LEN,
    };
    use bes2600_core::queue::{Ac, TxAccess, TxShared};
    use bes2600_core::sdio::Cmd53;
    use bes2600_core::wsm::TxConfirm;
    use bes2600_sim::ap;
    use bes2600_sim::bus::{BusModel, BusStats, SimBus};
    use bes2600_sim::chip::{Chip, ChipConfig};

    struct Checked {
        shared: TxShared<Vec<u8>>,
        held: Rc<Cell<bool>>,
        sections: u64,
    }

    impl TxAccess<Vec<u8>> for Checked {
        fn with<R>(&mut self, f: impl FnOnce(&mut TxShared<Vec<u8>>) -> R) -> R {
            assert!(!self.held.get(), "TxShared lock taken while held (nested)");
            self.held.set(true);
            self.sections += 1;
            let r = f(&mut self.shared);
            self.held.set(false);
            r
        }
    }

    struct Bus<'a> {
        inner: SimBus<'a>,
        held: Rc<Cell<bool>>,
    }

    impl SdioBus for Bus<'_> {
        fn readb(&mut self, addr: u32) -> Result<u8, BusError> {
            assert!(!self.held.get(), "bus transfer under the TxShared lock");
            self.inner.readb(addr)
        }
        fn writeb(&mut self, addr: u32, v: u8) -> Result<(), BusError> {
            assert!(!self.held.get(), "bus transfer under the TxShared lock");
            self.inner.writeb(addr, v)
        }
        fn cmd53_read(&mut self, c: Cmd53, buf: &mut [u8]) -> Result<(), BusError> {
            assert!(!self.held.get(), "bus transfer under the TxShared lock");
            self.inner.cmd53_read(c, buf)
        }
        fn cmd53_write(&mut self, c: Cmd53, d: &[u8]) -> Result<(), BusError> {
            assert!(!self.held.get(), "bus transfer under the TxShared lock");
            self.inner.cmd53_write(c, d)
        }
    }

    struct Up {
        held: Rc<Cell<bool>>,
        done: usize,
        rx: u64,
    }

    impl Upper<Vec<u8>> for Up {
        fn rx_batch(&mut self, b: &RxDelivery<'_>) {
            assert!(!self.held.get(), "RX delivery under the TxShared lock");
            self.rx += b.len() as u64;
        }
        fn tx_done(&mut self, _: Vec<u8>, _: &TxConfirm) {
            assert!(!self.held.get(), "TX status under the TxShared lock");
            self.done += 1;
        }
        fn cmd_done(&mut self, _: u16, _: u32, _: &[u8]) {
            assert!(!self.held.get());
        }
        fn indication(&mut self, _: Indication<'_>) {
            assert!(!self.held.get());
        }
    }

    #[test]
    fn one_lock_never_nested_never_held_across_io_or_upcalls() {
        let held = Rc::new(Cell::new(false));
        let mut chip = Box::new(Chip::new(ChipConfig {
            input_buffers: 6,
            ..Default::default()
        }));
        chip.power_on();
        let mut bh = BhContext::new();
        let mut rx_buf = vec![0u8; RX_BUF_LEN];
        let mut tx_buf = vec![0u8; TX_BUF_LEN];
        let mut bufs = BhBufs::new(&mut rx_buf, &mut tx_buf).unwrap();
        let mut tx = Box::new(Checked {
            shared: TxShared::default(),
            held: held.clone(),
            sections: 0,
        });
        let mut up = Up {
            held: held.clone(),
            done: 0,
            rx: 0,
        };
        let mut stats = BusStats::default();
        let a = chip.ap;
        for round in 0..200 {
            for _ in 0..3 {
                let mut b = vec![0u8; 1600];
                let n = ap::sta_frame(&a, ap::fc::DATA, 300 + round, &mut b);
                b.truncate(n);
                let _ = tx.with(|s| s.queues.put(Ac::Be, 0, 0, b));
            }
            chip.offer_downlink(5, 800);
            let mut bus = Bus {
                inner: SimBus {
                    chip: &mut chip,
                    model: BusModel::default(),
                    stats: &mut stats,
                },
                held: held.clone(),
            };
            bh.run(
                Wake { rx: true, tx: true },
                &mut bus,
                &mut bufs,
                &mut up,
                &mut *tx,
                0,
            )
            .unwrap();
        }
        for _ in 0..10 {
            let mut bus = Bus {
                inner: SimBus {
                    chip: &mut chip,
                    model: BusModel::default(),
                    stats: &mut stats,
                },
                held: held.clone(),
            };
            bh.run(Wake::RX, &mut bus, &mut bufs, &mut up, &mut *tx, 0)
                .unwrap();
        }
        assert_eq!(up.done, 600);
        assert_eq!(up.rx, 1000);
        assert!(
            tx.sections > 600,
            "the checks ran ({} sections)",
            tx.sections
        );
    }
}

#[test]
fn the_overrun_oracle_fires_when_a_host_ignores_its_credits() {
    // Negative control for the interleaving test: a host that writes
    // without counting credits is caught by the chip model.
    use bes2600_core::sdio::TxBatch;
    use bes2600_sim::chip::Chip;
    let mut chip = Chip::new(ChipConfig {
        input_buffers: 2,
        ..Default::default()
    });
    chip.power_on();
    let mut buf = vec![0u8; 8192];
    let mut batch = TxBatch::new(&mut buf);
    for seq in 0..5u8 {
        let mut m = [0u8; 64];
        let n = Request::ReadMib { mib_id: 1 }.encode(&mut m).unwrap();
        wsm::stamp_id(&mut m[..n], seq, 0);
        batch.push(&m[..n], false, 0).unwrap();
    }
    let (cmd, bytes) = batch.finish(false);
    chip.cmd53_write(cmd.arg, bytes).unwrap();
    assert_eq!(chip.stats.overruns, 3);
    assert_eq!(chip.stats.slot_mismatches, 0);
}
