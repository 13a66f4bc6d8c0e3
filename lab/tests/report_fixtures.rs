//! Parsing and report generation over fixture run directories
//! (`tests/data/ramp/{baseline,candidate}`, made by `make-fixtures.py`
//! there); expected outputs are the insta snapshots in `tests/snapshots/`.

use std::fs;
use std::path::{Path, PathBuf};

use besser_klog::{dmesg, ftrace, scan, splat, splat::SplatKind};
use besser_lab::ramp;
use besser_lab::ramp::analysis;
use besser_lab::ramp::report;

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ramp")
        .join(p)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            fs::copy(e.path(), t).unwrap();
        }
    }
}

/// A scratch copy of fixture run `fixture` (`baseline` / `candidate`) for
/// one test: `(the scratch root to remove, the run directory)`.
fn scratch(tag: &str, fixture: &str) -> (PathBuf, PathBuf) {
    let tmp = std::env::temp_dir().join(format!("besser-report-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let dir = tmp.join(fixture);
    copy_dir(&data(fixture), &dir);
    (tmp, dir)
}

#[test]
fn splats_in_a_rep_log_after_its_marker() {
    let dmesg = fs::read_to_string(data("candidate/rep-3/dmesg.txt")).unwrap();
    let (since, found) = dmesg::dmesg_since_marker(&dmesg, "besser-lab: candidate rep 3 start");
    assert!(found);
    let splats = splat::find_splats(&since);
    // The WARN before the marker (probe_stub) belongs to boot, not to the rep.
    assert!(splats.iter().all(|s| !s.first_line.contains("probe_stub")));
    assert_eq!(
        splats.iter().map(|s| s.kind.clone()).collect::<Vec<_>>(),
        vec![SplatKind::Warn, SplatKind::Oops, SplatKind::Bug]
    );
    insta::assert_json_snapshot!("candidate_rep3_splats", splats);
    // One failed attempt, two lines (firmware reject + mac80211's verdict).
    assert_eq!(scan::count_scan_failures(&since), 1);
}

#[test]
fn lockdep_splat_names_the_lock_site() {
    let dmesg = fs::read_to_string(data("candidate/rep-2/dmesg.txt")).unwrap();
    let (since, _) = dmesg::dmesg_since_marker(&dmesg, "besser-lab: candidate rep 2 start");
    let s = splat::find_splats(&since);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].kind, SplatKind::Lockdep);
    assert_eq!(
        s[0].first_line,
        "WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"
    );
    assert_eq!(
        s[0].call_site.as_deref(),
        Some("bes2600_queue_remove+0x64/0x1b0 [bes2600]")
    );
}

#[test]
fn ftrace_counts_per_work_function() {
    let t = ftrace::count_trace(
        "rep-1/trace.txt",
        &fs::read_to_string(data("baseline/rep-1/trace.txt")).unwrap(),
    );
    assert!(t.bad_lines.is_empty(), "{:?}", t.bad_lines);
    insta::assert_json_snapshot!("baseline_rep1_trace_counts", t);
}

#[test]
fn counter_files() {
    let b = analysis::parse_counters(
        &fs::read_to_string(data("candidate/rep-1/counters-before.txt")).unwrap(),
    );
    let a = analysis::parse_counters(
        &fs::read_to_string(data("candidate/rep-1/counters-after.txt")).unwrap(),
    );
    insta::assert_json_snapshot!("candidate_rep1_counters", (b, a));
}

#[test]
fn rep_analysis_of_the_candidate() {
    let dir = data("candidate");
    let run = ramp::load_run(&dir).unwrap();
    let reps = ramp::finished_reps(&dir, &run).unwrap();
    // The maintainers' figures: 2.363 / 2.590 / 2.102 MiB/s.
    let mibs: Vec<String> = reps
        .iter()
        .map(|r| format!("{:.3}", r.mib_s.unwrap()))
        .collect();
    assert_eq!(mibs, ["2.363", "2.590", "2.102"]);
    insta::assert_json_snapshot!("candidate_rep_analyses", reps);
}

#[test]
fn report_with_baseline_and_predictions() {
    let tmp = std::env::temp_dir().join(format!("besser-report-fixture-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    copy_dir(&data("candidate"), &tmp.join("candidate"));
    let r = report::write_report(&tmp.join("candidate"), Some(&data("baseline"))).unwrap();
    insta::assert_snapshot!("candidate_report_md", r.markdown);
    insta::assert_json_snapshot!("candidate_summary", r.summary);
    // `lab report` re-makes the same bytes.
    let md = fs::read(tmp.join("candidate/report.md")).unwrap();
    let js = fs::read(tmp.join("candidate/summary.json")).unwrap();
    report::write_report(&tmp.join("candidate"), Some(&data("baseline"))).unwrap();
    assert_eq!(fs::read(tmp.join("candidate/report.md")).unwrap(), md);
    assert_eq!(fs::read(tmp.join("candidate/summary.json")).unwrap(), js);
    fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn aborted_attempts_are_listed_in_the_report() {
    let (tmp, dir) = scratch("aborted", "baseline");
    // What `--resume` leaves of a rep 2 interrupted before it finished.
    copy_dir(
        &dir.join("rep-2"),
        &dir.join("rep-2.aborted-20261122T044000Z"),
    );
    let r = report::write_report(&dir, None).unwrap();
    assert!(
        r.markdown.contains(
            "**Aborted attempts** (interrupted, then redone; raw data kept, not in the stats): \
             `rep-2.aborted-20261122T044000Z/`."
        ),
        "{}",
        r.markdown
    );
    assert_eq!(
        r.summary.aborted_attempts,
        ["rep-2.aborted-20261122T044000Z"]
    );
    // Still N=3: the aborted attempt is not a rep.
    assert_eq!(r.summary.reps_finished, 3);
    fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn malformed_device_lines_are_listed_in_the_report() {
    let (tmp, dir) = scratch("badlines", "baseline");
    let trace = dir.join("rep-1/trace.txt");
    let mut t = fs::read_to_string(&trace).unwrap();
    let n = t.lines().count();
    t.push_str("kworker/0:1-12 [000] d..1. 2.5\n");
    fs::write(&trace, t).unwrap();
    fs::write(dir.join("rep-2/counters-after.txt"), "rx_bytes \n").unwrap();
    let r = report::write_report(&dir, None).unwrap();
    let md = &r.markdown;
    assert!(md.contains("## Device output not understood"), "{md}");
    assert!(
        md.contains(&format!(
            "- `rep-1/trace.txt:{}`: expected `TIMESTAMP: EVENT:`",
            n + 1
        )),
        "{md}"
    );
    assert!(
        md.contains("- `rep-2/counters-after.txt:1`: expected `COUNTER VALUE`"),
        "{md}"
    );
    assert_eq!(r.summary.reps[0].bad_lines.len(), 1);
    fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn a_missing_ftrace_event_shows_and_breaks_same_instrumentation() {
    let (tmp, dir) = scratch("events", "candidate");
    // Same configured events as the baseline, but rep 2's kernel lacked the
    // workqueue event: the receipt must compare what was enabled.
    for rep in 1..=3 {
        let p = dir.join(format!("rep-{rep}/meta.json"));
        let mut m: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        let (on, off) = if rep == 2 {
            (vec![], vec!["workqueue:workqueue_execute_start"])
        } else {
            (vec!["workqueue:workqueue_execute_start"], vec![])
        };
        m["events_enabled"] = serde_json::json!(on);
        m["events_missing"] = serde_json::json!(off);
        fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    }
    fs::write(dir.join("rep-2/trace.txt"), "# tracer: nop\n").unwrap();
    let r = report::write_report(&dir, Some(&data("baseline"))).unwrap();
    let md = &r.markdown;
    assert!(
        md.contains(
            "**ftrace events missing on the device** (not enabled: their counts are not measured, \
             not 0): rep 2: `workqueue:workqueue_execute_start`."
        ),
        "{md}"
    );
    assert!(md.contains("**Not measured in rep(s) 2**"), "{md}");
    let row2 = md.lines().find(|l| l.starts_with("| 2 |")).unwrap();
    assert!(row2.ends_with("| 508,306,728 | n/a | n/a |"), "{row2}");
    assert!(
        md.contains("- [ ] instrumentation DIFFERS from the baseline `baseline`: enabled ftrace events \
             (differing between reps: [workqueue:workqueue_execute_start] / [none] / [workqueue:workqueue_execute_start])"),
        "{md}"
    );
    // All reps enabled it: the receipt holds against the (unrecorded) baseline config.
    for rep in [2] {
        let p = dir.join(format!("rep-{rep}/meta.json"));
        let mut m: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        m["events_enabled"] = serde_json::json!(["workqueue:workqueue_execute_start"]);
        m["events_missing"] = serde_json::json!([]);
        fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    }
    let r = report::write_report(&dir, Some(&data("baseline"))).unwrap();
    assert!(
        r.markdown
            .contains("- [x] same instrumentation as the baseline `baseline`"),
        "{}",
        r.markdown
    );
    fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn the_wired_link_receipt_comes_from_the_recorded_collect_endpoint() {
    let (tmp, dir) = scratch("wired", "baseline");
    let set = |rep: u32, v: serde_json::Value| {
        let p = dir.join(format!("rep-{rep}/meta.json"));
        let mut m: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        m["collect_over"] = v;
        fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    };
    let r = report::write_report(&dir, None).unwrap();
    assert!(r.markdown.contains("- [x] telemetry (counters, trace, kernel log) collected over the wired link (ohm-wired.lan:22)"));
    // Rep 2 collected over another session; rep 3 did not record one.
    set(2, serde_json::json!("root@ohm.lan:5001"));
    set(3, serde_json::Value::Null);
    let r = report::write_report(&dir, None).unwrap();
    assert!(
        r.markdown.contains(
            "- [ ] telemetry collected over the wired link (root@ohm-wired.lan:22): NOT shown for \
             rep 2 over root@ohm.lan:5001, rep 3 not recorded"
        ),
        "{}",
        r.markdown
    );
    fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn baseline_report_without_comparison() {
    let tmp = std::env::temp_dir().join(format!("besser-report-baseline-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    copy_dir(&data("baseline"), &tmp.join("baseline"));
    let r = report::write_report(&tmp.join("baseline"), None).unwrap();
    insta::assert_snapshot!("baseline_report_md", r.markdown);
    fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn bad_predictions_file_says_where() {
    let e = report::parse_predictions("predictions:\n  - metric: splats\n    maxx: 0\n", "p.yaml")
        .unwrap_err();
    let m = e.to_string();
    assert!(m.starts_with("p.yaml:3:5: "), "{m}");
    assert!(m.contains("unknown field `maxx`"), "{m}");
    let e = report::parse_predictions("predictions:\n  - metric: speed\n    max: 0\n", "p.yaml")
        .unwrap_err();
    assert!(e.to_string().contains("unknown metric \"speed\""), "{e}");
}

/// ftrace names a module's work function `NAME [MODULE]`: a prediction (and
/// a `--work-fn`) naming the function alone must still find it. Before, a
/// "dropped to 0/s" prediction held on a kernel where it still ran ~86/s.
#[test]
fn a_work_function_in_a_module_is_found_by_its_bare_name() {
    let (tmp, dir) = scratch("modfn", "candidate");
    for rep in 1..=3 {
        let p = dir.join(format!("rep-{rep}/trace.txt"));
        let mut t = fs::read_to_string(&p).unwrap();
        // 86 per second over the rep's ~180.7 s.
        for i in 0..(86 * 180) {
            t.push_str(&format!(
                "     kworker/0:2-45      [000] d..1.   {}.{:06}: workqueue_execute_start: work struct 00000000deadbeef: function sdio_rx_work [bes2600]\n",
                100 + i / 86,
                (i % 86) * 1000
            ));
        }
        fs::write(&p, t).unwrap();
    }
    let md = report::write_report(&dir, None).unwrap().markdown;
    let line = md
        .lines()
        .find(|l| l.starts_with("| dispatch_per_s.sdio_rx_work"))
        .unwrap_or_else(|| panic!("no prediction line in:\n{md}"));
    assert!(line.contains("**does not hold**"), "{line}");
    assert!(line.contains("| 85.") || line.contains("| 86."), "{line}");
    // The dispatch table shows where the function lives.
    assert!(md.contains("| sdio_rx_work [bes2600] |"), "{md}");
    fs::remove_dir_all(&tmp).unwrap();
}

/// The maintainers' fresh-chip rule: each rep on a fresh boot *or* starting
/// inside the window (their example: uptime 200 / 391 / 582 s in one boot).
/// Before, the receipt demanded a fresh boot *and* the whole rep inside.
#[test]
fn the_fresh_chip_receipt_follows_the_maintainers_rule() {
    let (tmp, dir) = scratch("fresh", "candidate");
    let set = |rep: u32, boot_id: &str, start: &str, end: &str| {
        let rd = dir.join(format!("rep-{rep}"));
        fs::write(rd.join("boot.txt"), format!("{boot_id}\n{start} 740.00\n")).unwrap();
        fs::write(rd.join("uptime-end.txt"), format!("{end} 800.00\n")).unwrap();
        let meta = fs::read_to_string(rd.join("meta.json")).unwrap();
        fs::write(
            rd.join("meta.json"),
            meta.replace("\"fresh_boot\": true", "\"fresh_boot\": false"),
        )
        .unwrap();
    };
    let one_boot = "c0c45831-0f1e-4d2c-8b7a-167311fad6f2";
    set(1, one_boot, "200.00", "383.82");
    set(2, one_boot, "391.00", "574.77");
    set(3, one_boot, "582.00", "790.00");
    let receipt = |md: &str| {
        md.lines()
            .filter(|l| l.contains("fresh-chip window"))
            .find_map(|l| l.strip_prefix("- ["))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no fresh-chip receipt in:\n{md}"))
    };
    let r = receipt(&report::write_report(&dir, None).unwrap().markdown);
    assert!(r.starts_with("x]"), "{r}");
    assert!(
        r.contains("warning: rep 3 ran past the window (uptime 790.0 s at its end)"),
        "{r}"
    );
    // Rep 3 starting past the window on the same boot: unticked, and why.
    set(3, one_boot, "800.00", "990.00");
    let r = receipt(&report::write_report(&dir, None).unwrap().markdown);
    assert!(r.starts_with(" ]"), "{r}");
    assert!(
        r.contains("NOT for rep 3 (no fresh boot, and started at uptime 800.0 s > 780 s)"),
        "{r}"
    );
    fs::remove_dir_all(&tmp).unwrap();
}

/// Device output that does not read is listed, never silent and never a
/// failed report: a cut boot.txt, a kernel log with a raw (non-UTF-8) SSID;
/// a finished rep whose directory is gone is refused by name.
#[test]
fn cut_or_undecodable_device_output_is_listed_and_a_missing_rep_named() {
    let (tmp, dir) = scratch("cut", "baseline");
    // The boot_id line only (the uptime line never arrived).
    let boot = fs::read_to_string(dir.join("rep-1/boot.txt")).unwrap();
    fs::write(dir.join("rep-1/boot.txt"), boot.lines().next().unwrap()).unwrap();
    // An SSID the kernel printed byte for byte (Latin-1 "café").
    let mut dmesg = fs::read(dir.join("rep-2/dmesg.txt")).unwrap();
    let line = dmesg.iter().filter(|&&b| b == b'\n').count() + 1;
    dmesg.extend_from_slice(b"[  300.000000] wlan0: connecting to caf\xe9\n");
    fs::write(dir.join("rep-2/dmesg.txt"), dmesg).unwrap();
    let md = report::write_report(&dir, None).unwrap().markdown;
    assert!(
        md.contains("- `rep-1/boot.txt:2`: expected /proc/uptime"),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "- `rep-2/dmesg.txt:{line}`: bytes that are not UTF-8 (first at byte"
        )),
        "{md}"
    );
    fs::remove_dir_all(dir.join("rep-3")).unwrap();
    let Err(e) = report::write_report(&dir, None) else {
        panic!("a report without rep-3/")
    };
    assert!(
        format!("{e:#}")
            .contains("rep 3 finished (rep-3.json) but its directory rep-3/ is missing"),
        "{e:#}"
    );
    fs::remove_dir_all(&tmp).unwrap();
}

/// The maintainers compare a candidate with two baselines in one note (Patch B
/// and the Bug #5 floor): one section and one verdict per baseline, all in
/// the instrumentation receipt and in summary.json.
#[test]
fn a_report_compares_against_two_baselines() {
    let tmp = std::env::temp_dir().join(format!("besser-report-2base-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    copy_dir(&data("candidate"), &tmp.join("candidate"));
    copy_dir(&data("baseline"), &tmp.join("bug5-floor"));
    let r = report::write_report_with(
        &tmp.join("candidate"),
        &[data("baseline"), tmp.join("bug5-floor")],
    )
    .unwrap();
    let md = &r.markdown;
    assert!(md.contains("## Comparison to baselines\n"), "{md}");
    let a = md
        .find("### Baseline `baseline`")
        .expect("first baseline section");
    let b = md
        .find("### Baseline `bug5-floor`")
        .expect("second baseline section");
    assert!(a < b);
    assert_eq!(md.matches("Verdict: **").count(), 2, "{md}");
    assert!(
        md.contains("same instrumentation as the baselines `baseline`, `bug5-floor`"),
        "{md}"
    );
    assert_eq!(r.summary.baseline.as_ref().unwrap().run, "baseline");
    assert_eq!(r.summary.more_baselines.len(), 1);
    assert_eq!(r.summary.more_baselines[0].run, "bug5-floor");
    fs::remove_dir_all(&tmp).unwrap();
}

/// After a resume on the virtual device (new forwarded ports), each rep is
/// judged against the wired endpoint of the boot it ran on, recorded in its
/// meta.json; before, the reps done before the interruption failed.
#[test]
fn a_resumed_run_judges_each_rep_against_its_own_wired_endpoint() {
    let (tmp, dir) = scratch("resumed", "baseline");
    let set = |rep: u32, wired: &str, data: &str| {
        let p = dir.join(format!("rep-{rep}/meta.json"));
        let mut m: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&p).unwrap()).unwrap();
        m["collect_over"] = serde_json::json!(wired);
        m["endpoints"] = serde_json::json!({"wired": wired, "data": data});
        fs::write(&p, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    };
    // Reps 1-2 before the interruption, rep 3 after it, on new ports.
    set(1, "root@127.0.0.1:40001", "127.0.0.1:40002");
    set(2, "root@127.0.0.1:40001", "127.0.0.1:40002");
    set(3, "root@127.0.0.1:41001", "127.0.0.1:41002");
    let md = report::write_report(&dir, None).unwrap().markdown;
    let line = md
        .lines()
        .find(|l| l.contains("collected over the wired link"))
        .unwrap();
    assert!(line.starts_with("- [x]"), "{line}");
    // A rep whose collect went over its own data endpoint still fails.
    set(3, "root@127.0.0.1:41002", "127.0.0.1:41002");
    let md = report::write_report(&dir, None).unwrap().markdown;
    let line = md
        .lines()
        .find(|l| l.contains("collected over the wired link"))
        .unwrap();
    assert!(line.starts_with("- [ ]"), "{line}");
    fs::remove_dir_all(&tmp).unwrap();
}
