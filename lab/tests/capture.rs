//! Capture analysis on fixture run directories (`tests/data/capture/*`): the
//! expected report and summary of each fixture are insta snapshots in its
//! `expected/` directory; the facts the issue asks for are also asserted
//! directly, so a snapshot update cannot silently accept a wrong answer.

use std::path::{Path, PathBuf};

use besser_klog::splat::SplatKind;
use besser_lab::capture::analysis::{DropVerdict, ProbeClass, Status};
use besser_lab::capture::{self, analysis, layout, report};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/capture")
        .join(name)
}

fn analyse(name: &str) -> (capture::RawCapture, analysis::Analysis) {
    let raw = capture::load_run(&fixture(name)).unwrap();
    let a = analysis::analyse(&raw);
    (raw, a)
}

fn snapshot(name: &str) {
    let (raw, a) = analyse(name);
    let out = report::render(&raw, &a);
    insta::with_settings!({
        snapshot_path => fixture(name).join("expected"),
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("report.md", out.report_md);
        insta::assert_snapshot!("summary.json", out.summary_json);
    });
}

fn receipt(a: &analysis::Analysis, prefix: &str) -> Status {
    a.receipts
        .iter()
        .find(|r| r.check.starts_with(prefix))
        .unwrap_or_else(|| panic!("no receipt {prefix:?}"))
        .status
}

#[test]
fn phase0_shaped_snapshots() {
    snapshot("phase0-shaped");
}

#[test]
fn phase0_shaped_places_failure_and_collapse() {
    let (_, a) = analyse("phase0-shaped");
    let first = a.markers.first_scan_failure_s.unwrap();
    assert!((first - 778.2).abs() < 0.01, "{first}");
    let iv = a.scan_failure_interval_s.as_ref().unwrap();
    assert!(iv.min >= 301.0 && iv.max <= 302.0, "{iv:?}");
    // probes 1-5 at ~2.3 MiB/s, 6 and 7 collapsed to hundreds of B/s
    assert!((a.first_probe_mib_s.unwrap() - 2.363).abs() < 0.001);
    assert_eq!(a.markers.first_low_probe, Some(6));
    let t = a.markers.first_low_probe_uptime_s.unwrap();
    assert!((t - 1680.0).abs() < 1.0, "{t}");
    assert!(a.probes[5].mib_s.unwrap() * besser_lab::units::MIB < 700.0);
    match &a.drop {
        DropVerdict::Abrupt {
            last_good,
            collapse,
            events_between,
            ..
        } => {
            assert_eq!((*last_good, *collapse), (5, 6));
            assert_eq!(events_between.len(), 1, "{events_between:?}");
            assert!(events_between[0].starts_with("scan failure at 168"));
        }
        other => panic!("expected abrupt, got {other:?}"),
    }
    assert!(a.markers.first_link_loss.is_none(), "still associated");
    for r in &a.receipts {
        assert_eq!(r.status, Status::Pass, "{r:?}");
    }
    // 5-minute windows: no failure before 600 s, one per window after
    let row = &a.windows.rows["scan failure (kmsg)"];
    assert_eq!(row.len(), 7);
    assert_eq!(&row[..2], &[0, 0]);
    assert!(row[2..].iter().all(|&n| n == 1), "{row:?}");
}

#[test]
fn gradual_disconnect_snapshots() {
    snapshot("gradual-disconnect");
}

#[test]
fn gradual_disconnect_facts() {
    let (raw, a) = analyse("gradual-disconnect");
    assert_eq!(
        a.drop,
        DropVerdict::Gradual {
            degraded_probes: vec![3],
            collapse: 4
        }
    );
    let first = a.markers.first_link_loss.as_ref().unwrap();
    assert_eq!(
        (first.kind.as_str(), first.source.as_str()),
        ("beacon loss", "ftrace")
    );
    assert!((first.uptime_s - 700.25).abs() < 1e-9);
    // iw placed on uptime through the snapshots' wall clock (1-s resolution)
    let iw = a.link_events.iter().find(|e| e.source == "iw").unwrap();
    assert!((iw.uptime_s - 705.4).abs() < 1.0, "{iw:?}");
    assert!(a.markers.first_scan_failure_s.is_none());
    assert_eq!(receipt(&a, "kernel log captured"), Status::NotApplicable);
    assert_eq!(
        receipt(&a, "at least one probe after"),
        Status::NotApplicable
    );
    // the counter reset is flagged, not plotted as a negative rate
    assert_eq!(receipt(&a, "netdev counters monotonic"), Status::Fail);
    assert!(a
        .counter_violations
        .iter()
        .any(|v| v.what.starts_with("rx_bytes went backwards")));
    assert!(a.counter_rate.iter().all(|r| r.mib_s >= 0.0));
    assert_eq!(receipt(&a, "every probe bracketed"), Status::Fail);
    assert_eq!(receipt(&a, "streams complete"), Status::Fail);
    assert_eq!(a.trace_lost_events, 17);
    // one bad line in each of trace, kmsg, counters, with file and line
    let bad: Vec<String> = raw.bad_lines().iter().map(|e| e.to_string()).collect();
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(bad[0].starts_with("streams/trace.txt:"), "{bad:?}");
    assert!(bad[1].starts_with("streams/kmsg.txt:"), "{bad:?}");
    assert!(bad[2].starts_with("streams/counters.txt:"), "{bad:?}");
    assert_eq!(a.probes[4].class, ProbeClass::Collapsed);
    assert_eq!(a.probes[4].outcome, capture::raw::ProbeOutcome::Wedged);
    // the WARN and the lockdep report in the kernel log, with call site and uptime
    let sp: Vec<(SplatKind, &str, f64)> = a
        .splats
        .iter()
        .map(|s| {
            (
                s.kind.clone(),
                s.call_site.as_deref().unwrap_or(""),
                s.time_s.unwrap(),
            )
        })
        .collect();
    assert_eq!(sp.len(), 2, "{:?}", a.splats);
    assert_eq!(sp[0].0, SplatKind::Warn);
    assert!(sp[0]
        .1
        .starts_with("drivers/staging/bes2600/bh.c:587 bes2600_bh_rx_helper+0x2d8"));
    assert!((sp[0].2 - 652.31).abs() < 0.001, "{sp:?}");
    assert_eq!(sp[1].0, SplatKind::Lockdep);
    assert_eq!(sp[1].1, "bes2600_queue_put+0x5c/0x1e8 [bes2600]");
    assert!((sp[1].2 - 1003.72).abs() < 0.001, "{sp:?}");
    assert_eq!(receipt(&a, "no WARN/BUG/lockdep splat"), Status::Fail);
}

#[test]
fn healthy_no_iw_snapshots() {
    snapshot("healthy-no-iw");
}

#[test]
fn healthy_no_iw_facts() {
    let (_, a) = analyse("healthy-no-iw");
    assert_eq!(
        a.drop,
        DropVerdict::NoCollapse {
            degraded_probes: vec![]
        }
    );
    assert_eq!(a.probes[1].class, ProbeClass::Unmeasured);
    assert_eq!(a.probes[1].mib_s, None);
    assert_eq!(receipt(&a, "first probe above"), Status::Pass);
    assert!(a.splats.is_empty(), "{:?}", a.splats);
    assert_eq!(receipt(&a, "no WARN/BUG/lockdep splat"), Status::Pass);
    assert_eq!(
        receipt(&a, "streams complete"),
        Status::Pass,
        "iw absent on the device is not a hole"
    );
}

/// `lab report` must re-make the report byte for byte from raw data alone.
#[test]
fn remake_is_byte_identical_and_writes_the_plot() {
    let src = fixture("phase0-shaped");
    let dir = std::env::temp_dir().join(format!("besser-capture-remake-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&src, &dir);
    let _ = std::fs::remove_dir_all(dir.join("expected"));
    capture::remake_report(&dir).unwrap();
    let first: Vec<Vec<u8>> = [layout::REPORT_MD, layout::SUMMARY_JSON, layout::PLOT_SVG]
        .iter()
        .map(|f| std::fs::read(dir.join(f)).unwrap())
        .collect();
    capture::remake_report(&dir).unwrap();
    for (f, before) in [layout::REPORT_MD, layout::SUMMARY_JSON, layout::PLOT_SVG]
        .iter()
        .zip(&first)
    {
        assert_eq!(&std::fs::read(dir.join(f)).unwrap(), before, "{f} changed");
    }
    let svg = String::from_utf8(first[2].clone()).unwrap();
    assert!(svg.starts_with("<svg"));
    // one filled circle per measured probe (+1 in the legend)
    assert_eq!(svg.matches("<circle").count(), 7 + 1);
    assert!(
        svg.contains("first probe &lt; 50% of first") || svg.contains("first probe < 50% of first")
    );
    let md = String::from_utf8(first[0].clone()).unwrap();
    assert!(md.contains("](throughput.svg)"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_host_records_are_errors_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("besser-capture-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&fixture("healthy-no-iw"), &dir);
    std::fs::write(dir.join(layout::PROBES), "{\"index\": 1}\n").unwrap();
    let e = capture::load_run(&dir).unwrap_err().to_string();
    assert!(e.starts_with("probes.jsonl:1: missing field"), "{e}");
    std::fs::write(dir.join(layout::RUN_JSON), "{\"kind\": \"ramp\"}").unwrap();
    let e = capture::load_run(&dir).unwrap_err().to_string();
    assert!(e.starts_with("run.json:1:"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}
