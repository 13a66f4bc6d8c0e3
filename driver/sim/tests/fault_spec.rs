//! Faults applied to a running model from outside (the lab's `--chip-fault`,
//! through the simulated host's debugfs), and what the core's bh makes of
//! each: recovered (counted) or halted with a reason, never a panic.

use bes2600_core::bh::{BhError, HaltReason};
use bes2600_sim::chip::{parse_fault, ChipConfig, FaultSpecError, FAULT_NAMES};
use bes2600_sim::harness::Harness;

#[test]
fn specs_are_name_and_value_or_a_clear_refusal() {
    assert_eq!(
        parse_fault(" ctrl_crc_every 20\n"),
        Ok(("ctrl_crc_every", 20))
    );
    assert_eq!(parse_fault("clear 0"), Ok(("clear", 0)));
    assert_eq!(parse_fault("ctrl_crc_every"), Err(FaultSpecError::Shape));
    assert_eq!(
        parse_fault("ctrl_crc_every 1 2"),
        Err(FaultSpecError::Shape)
    );
    assert_eq!(parse_fault("crc 1"), Err(FaultSpecError::UnknownName));
    assert_eq!(parse_fault("ctrl_crc_every -1"), Err(FaultSpecError::Value));
    assert_eq!(
        parse_fault("ctrl_crc_every 4294967296"),
        Err(FaultSpecError::Value)
    );
    assert_eq!(
        parse_fault("exception_in_ms 4294967296"),
        Ok(("exception_in_ms", 1 << 32))
    );
    assert!(FAULT_NAMES
        .iter()
        .all(|n| parse_fault(&format!("{n} 1")).is_ok()));
}

/// Offers `frames` downlink frames; `Ok(false)` when the host stopped
/// taking them (no progress in 1000 rounds of advancing the clock).
fn traffic(h: &mut Harness, frames: usize) -> Result<bool, BhError> {
    let mut offered = 0;
    let mut idle = 0;
    while offered < frames {
        let n = h.chip.offer_downlink(frames - offered, 1500);
        offered += n;
        idle = if n == 0 { idle + 1 } else { 0 };
        if idle > 1000 {
            return Ok(false);
        }
        h.advance(1)?;
    }
    h.advance(10)?;
    Ok(true)
}

#[test]
fn bus_faults_are_recovered_and_counted() {
    for spec in ["ctrl_crc_every 7", "data_crc_every 5", "stale_ctrl_every 6"] {
        let mut h = Harness::new(ChipConfig::default());
        assert!(h.associate().unwrap());
        let before = h.up.rx_frames;
        h.chip.apply_fault(spec).unwrap();
        let flowed = traffic(&mut h, 200).unwrap_or_else(|e| panic!("{spec}: {e:?}"));
        assert!(flowed, "{spec}: the host stopped taking frames");
        assert_eq!(h.up.rx_frames - before, 200, "{spec}: every frame arrives");
        let s = h.chip.stats;
        let injected = s.ctrl_crc_injected + s.data_crc_injected + s.stale_ctrl_injected;
        assert!(injected > 0, "{spec}: nothing injected");
        h.chip.apply_fault("clear 0").unwrap();
        h.check_invariants().unwrap();
    }
}

#[test]
fn an_exception_halts_the_bh_with_its_reason() {
    let mut h = Harness::new(ChipConfig::default());
    assert!(h.associate().unwrap());
    h.chip.apply_fault("exception_in_ms 100").unwrap();
    let r = h.advance(200);
    assert_eq!(r, Err(BhError::Halted(HaltReason::FirmwareException)));
    assert_eq!(h.chip.stats.exceptions_raised, 1);
}

/// `pm_refused 1` makes the firmware refuse set-PM (as firmware without PM
/// does) until `pm_refused 0` or `clear`; the chip counts what it took,
/// what it refused, and the last mode it accepted.
#[test]
fn pm_refusal_is_injectable_and_counted() {
    use bes2600_core::wsm::{status, Request};
    let set_pm = |mode| Request::SetPm {
        mode,
        fast_psm_idle_period: 0,
        ap_psm_change_period: 0,
        min_auto_pspoll_period: 0,
    };
    assert_eq!(parse_fault("pm_refused 2"), Err(FaultSpecError::Value));
    let mut h = Harness::new(ChipConfig::default());
    assert_eq!(h.command_sync(&set_pm(1)).unwrap(), Some(status::SUCCESS));
    h.chip.apply_fault("pm_refused 1").unwrap();
    assert_eq!(h.command_sync(&set_pm(0)).unwrap(), Some(status::FAILURE));
    h.chip.apply_fault("clear 0").unwrap();
    assert_eq!(
        h.command_sync(&set_pm(0x81)).unwrap(),
        Some(status::SUCCESS)
    );
    let s = h.chip.stats;
    assert_eq!((s.pm_requests, s.pm_refused, s.last_pm_mode), (3, 1, 0x81));
}

/// `drop_scan_complete_every 1`: the scan is confirmed, its probe response
/// arrives, its completion never does (what a driver's scan watchdog is for).
#[test]
fn a_scan_complete_can_be_withheld() {
    use bes2600_core::{scan::Channel, wsm::Band};
    let mut h = Harness::new(ChipConfig::default());
    let ch = [Channel {
        band: Band::Ghz2,
        number: 6,
    }];
    assert_eq!(h.scan(&ch).unwrap().completed, 1, "a normal scan completes");
    h.chip.apply_fault("drop_scan_complete_every 1").unwrap();
    let out = h.scan(&ch).unwrap();
    assert_eq!((out.legs_sent, out.completed), (1, 0), "{out:?}");
    assert_eq!(h.chip.stats.scan_completes_dropped, 1);
}
