//! `report.md` + `summary.json` of a ramp, in the form of the maintainers'
//! Phase 7 notes. Pure rendering over re-analysed raw data: running it twice
//! on the same run directory gives the same bytes.

pub use crate::ramp::analysis::verdicts::parse_predictions;
use crate::ramp::analysis::verdicts::{
    self, mean_per_s, series, Baseline, BaselineComparison, BaselineVerdict, PredictionResult,
    Predictions, Receipt, WITHIN_NOISE_RULE,
};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::ramp::analysis::{stats, RepAnalysis, RepStatus, Stats};
use crate::ramp::{self, RepMeta, RunJson};
use crate::rundir::{utc_human, write_atomic};
use crate::units::MIB;

/// Name of the predictions file inside a run directory.
pub const PREDICTIONS_FILE: &str = "predictions.yaml";
/// How many unreadable device lines the report lists (summary.json has all).
pub const BAD_LINES_LISTED_MAX: usize = 20;
/// How many work functions get a column when none are chosen.
pub const DEFAULT_WORK_FN_COLUMNS: usize = 3;

/// Re-makes `report.md` and `summary.json` from the run directory's raw data,
/// compared with the baselines recorded in `run.json`.
pub fn write_report(dir: &Path, baseline: Option<&Path>) -> Result<Report> {
    write_report_with(
        dir,
        &baseline
            .map(Path::to_path_buf)
            .into_iter()
            .collect::<Vec<_>>(),
    )
}

/// As [`write_report`], with `baselines` (in order) instead of the recorded
/// ones when not empty.
pub fn write_report_with(dir: &Path, baselines: &[PathBuf]) -> Result<Report> {
    let run = ramp::load_run(dir)?;
    let reps = ramp::finished_reps(dir, &run)?;
    let metas: Vec<RepMeta> = reps
        .iter()
        .map(|r| ramp::load_meta(dir, r.rep))
        .collect::<Result<_>>()?;
    let bpaths: Vec<PathBuf> = if baselines.is_empty() {
        run.config
            .baseline
            .iter()
            .chain(&run.config.more_baselines)
            .cloned()
            .collect()
    } else {
        baselines.to_vec()
    };
    let base: Vec<Baseline> = bpaths
        .iter()
        .map(|p| ramp::load_baseline(p))
        .collect::<Result<_>>()?;
    let ppath = dir.join(PREDICTIONS_FILE);
    let preds = if ppath.exists() {
        Some(parse_predictions(
            &std::fs::read_to_string(&ppath)?,
            &ppath.display().to_string(),
        )?)
    } else {
        None
    };
    let aborted = ramp::aborted_attempts(dir)?;
    let r = render(
        &ramp::dir_name(dir),
        &run,
        &reps,
        &metas,
        &aborted,
        &base,
        preds.as_ref(),
    );
    write_atomic(&dir.join("report.md"), r.markdown.as_bytes())?;
    write_atomic(
        &dir.join("summary.json"),
        (serde_json::to_string_pretty(&r.summary)? + "\n").as_bytes(),
    )?;
    Ok(r)
}

pub struct Report {
    pub markdown: String,
    pub summary: Summary,
    /// The one-screen summary printed at the end of a ramp.
    pub screen: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub kind: String,
    pub run: String,
    pub label: String,
    pub device: String,
    pub kernel_release: Option<String>,
    pub reps_planned: u32,
    pub reps_finished: usize,
    pub unit: String,
    pub throughput_mib_s: Option<Stats>,
    pub work_functions: Vec<String>,
    pub dispatch_per_s_mean: BTreeMap<String, f64>,
    pub reps: Vec<RepAnalysis>,
    pub baseline: Option<BaselineComparison>,
    /// The comparisons with the second and later baselines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_baselines: Vec<BaselineComparison>,
    pub predictions: Vec<PredictionResult>,
    pub receipts: Vec<Receipt>,
    /// Rep directories of interrupted attempts, set aside with their data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aborted_attempts: Vec<String>,
}

/// ` — locks: `a`, `b`` for a lockdep splat that named its locks.
pub fn locks_text(locks: &[String]) -> String {
    if locks.is_empty() {
        String::new()
    } else {
        format!(
            " — locks: {}",
            locks
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// One baseline's comparison table and verdict ([`compare_baseline`]), written to `w`.
fn compare_to(w: &mut String, b: &Baseline, verdict: &BaselineVerdict) {
    let (c, dispatch) = match verdict {
        BaselineVerdict::NoRunFigures => {
            let _ = writeln!(
                w,
                "Baseline `{}` given, but this run has no throughput figures.",
                b.name
            );
            return;
        }
        BaselineVerdict::NoBaselineFigures => {
            let _ = writeln!(w, "Baseline `{}` has no throughput figures.", b.name);
            return;
        }
        BaselineVerdict::Compared {
            comparison,
            dispatch,
        } => (comparison, dispatch),
    };
    let (bs, s) = (&c.baseline_mib_s, &c.this_run);
    let _ = writeln!(
        w,
        "| | baseline `{}` (N={}) | this run (N={}) | Δ |",
        b.name, bs.n, s.n
    );
    let _ = writeln!(w, "|---|---:|---:|---:|");
    let _ = writeln!(
        w,
        "| throughput mean (MB/s) | {:.3} | {:.3} | {:+.1}% |",
        bs.mean, s.mean, c.delta_percent
    );
    let _ = writeln!(
        w,
        "| throughput min–max (MB/s) | {:.3}–{:.3} | {:.3}–{:.3} | |",
        bs.min, bs.max, s.min, s.max
    );
    for (f, a, z) in dispatch {
        let _ = writeln!(
            w,
            "| {f} dispatches/s | {a:.1} | {z:.1} | {} |",
            pct(*a, *z)
        );
    }
    let wn = c.within_noise;
    let _ = writeln!(
        w,
        "\nWithin-noise rule: {WITHIN_NOISE_RULE}.\nVerdict: **{}** ({:.3} MB/s is {} the baseline's {:.3}–{:.3} MB/s).",
        if wn { "within noise" } else if c.delta_percent > 0.0 { "outside noise — better" } else { "outside noise — worse" },
        s.mean,
        if wn { "inside" } else { "outside" },
        bs.min,
        bs.max
    );
}

fn work_columns(run: &RunJson, reps: &[RepAnalysis]) -> Vec<String> {
    if !run.config.work_fns.is_empty() {
        // A `--work-fn NAME` shows as the traced `NAME [module]` when the
        // trace names exactly one module for it, so the column says where
        // the function lives.
        return run
            .config
            .work_fns
            .iter()
            .map(|w| {
                let mut traced: Vec<&str> = reps
                    .iter()
                    .flat_map(|r| r.dispatch.keys())
                    .filter(|t| besser_klog::ftrace::work_fn_matches(t, w))
                    .map(String::as_str)
                    .collect();
                traced.sort_unstable();
                traced.dedup();
                match traced.as_slice() {
                    [one] => one.to_string(),
                    _ => w.clone(),
                }
            })
            .collect();
    }
    let mut tot: BTreeMap<&str, u64> = BTreeMap::new();
    for r in reps {
        for (f, n) in &r.dispatch {
            *tot.entry(f).or_insert(0) += n;
        }
    }
    let mut v: Vec<(&str, u64)> = tot.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter()
        .take(DEFAULT_WORK_FN_COLUMNS)
        .map(|(f, _)| f.to_string())
        .collect()
}

fn f3(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}
fn f1(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.1}")).unwrap_or_else(|| "–".into())
}
/// `1234567` → `1,234,567` (the maintainers' notes group digits).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
fn tick(ok: bool) -> &'static str {
    if ok {
        "[x]"
    } else {
        "[ ]"
    }
}

pub fn render(
    run_name: &str,
    run: &RunJson,
    reps: &[RepAnalysis],
    metas: &[RepMeta],
    aborted: &[String],
    baselines: &[Baseline],
    preds: Option<&Predictions>,
) -> Report {
    let cfg = &run.config;
    let cols = work_columns(run, reps);
    let ser = series(reps);
    let st = stats(&ser);
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(
        w,
        "# Lab ramp `{}` — N={} on `{}`\n",
        cfg.label,
        reps.len(),
        run.device.name
    );
    let _ = writeln!(
        w,
        "Run `{run_name}`, started {}.",
        utc_human(run.created_unix_s)
    );
    if let Some(img) = &cfg.image {
        let _ = writeln!(
            w,
            "Image `{}` ({}, manifest sha256 `{}`), flashed from `{}` when the device ran another.",
            img.name,
            img.kernel_release,
            img.manifest_sha256,
            img.dir.display()
        );
    }
    let _ = writeln!(
        w,
        "Device `{}` (kernel {}), wired link ssh {}@{}:{}, data link `{}` (sender → {}:{}).",
        run.device.name,
        run.kernel_release.as_deref().unwrap_or("?"),
        run.device.wired.user,
        run.device.wired.host,
        run.device.wired.port,
        run.device.data.interface,
        run.device.data.connect_host,
        run.device.data.connect_port
    );
    let _ = writeln!(
        w,
        "Stress: rate-capped TCP at {:.3} MB/s for {:.0} s per rep, {}; fresh-chip window: uptime ≤ {:.0} s.",
        cfg.rate_bytes_per_s / MIB,
        cfg.duration_s,
        if cfg.reboot { "fresh boot before every rep" } else { "no reboot between reps (--no-reboot)" },
        run.device.fresh_uptime_max_s
    );
    let _ = writeln!(
        w,
        "Instrumentation: ftrace {}; netdev rx_bytes/rx_packets of `{}`; kernel log since a per-rep marker.",
        cfg.events.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", "),
        run.device.data.interface
    );
    let missing: Vec<String> = reps
        .iter()
        .filter(|r| !r.events_missing.is_empty())
        .map(|r| {
            format!(
                "rep {}: {}",
                r.rep,
                r.events_missing
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    if !missing.is_empty() {
        let _ = writeln!(
            w,
            "**ftrace events missing on the device** (not enabled: their counts are not measured, \
             not 0): {}.",
            missing.join("; ")
        );
    }
    if let Some(f) = &cfg.fault_cmd {
        let _ = writeln!(
            w,
            "**Fault injected** after the listener started in every rep: `{f}`."
        );
    }
    let _ = writeln!(
        w,
        "\nUnits: MB = MiB (2^20 bytes) and MB/s = MiB/s, as in the maintainers' notes. MB/s is the \
         listener's byte count over the rep's elapsed sending time; `rx_bytes Δ` is the data \
         interface's counter over the rep.\n"
    );

    // Results table
    let _ = writeln!(w, "## Results\n");
    let mut head = String::from("| rep | status | uptime at start (s) | elapsed (s) | RX bytes | RX MB | MB/s | rx_bytes Δ |");
    let mut sep = String::from("|----:|:-------|----:|----:|----:|----:|----:|----:|");
    for c in &cols {
        head.push_str(&format!(" {c} |"));
        sep.push_str("-:|");
    }
    // The driver's threads (sched_wakeup, filtered on the device).
    let wake_cols: BTreeSet<&str> = reps
        .iter()
        .flat_map(|r| r.wakeups.keys().map(String::as_str))
        .collect();
    for c in &wake_cols {
        head.push_str(&format!(" {c} wake-ups |"));
        sep.push_str("-:|");
    }
    let _ = writeln!(w, "{head}\n{sep}");
    for r in reps {
        let mut line = format!(
            "| {} | {} | {} | {:.2} | {} | {} | {} | {} |",
            r.rep,
            r.status.label(),
            f1(r.uptime_start_s),
            r.elapsed_s,
            r.bytes_received
                .map(thousands)
                .unwrap_or_else(|| "–".into()),
            f1(r.bytes_received.map(|b| b as f64 / MIB)),
            f3(r.mib_s),
            r.rx_bytes_delta
                .map(thousands)
                .unwrap_or_else(|| "–".into()),
        );
        for c in &cols {
            if r.dispatches_measured() {
                line.push_str(&format!(" {} ({:.2}/s) |", r.dispatches(c), r.per_s(c)));
            } else {
                line.push_str(" n/a |");
            }
        }
        for c in &wake_cols {
            line.push_str(&format!(" {} |", r.wakeups.get(*c).copied().unwrap_or(0)));
        }
        let _ = writeln!(w, "{line}");
    }
    let _ = writeln!(w);
    match &st {
        Some(s) => {
            let _ = writeln!(
                w,
                "N={} stats: mean {:.3} MB/s · median {:.3} MB/s · min {:.3} MB/s · max {:.3} MB/s",
                s.n, s.mean, s.median, s.min, s.max
            );
        }
        None => {
            let _ = writeln!(w, "No rep produced a throughput figure.");
        }
    }
    let _ = writeln!(
        w,
        "(stats over every rep with a listener count except rig failures; a wedged rep counts.)\n"
    );
    for r in reps {
        match &r.status {
            RepStatus::Ok => {}
            RepStatus::Wedged { reason } => {
                let _ = writeln!(
                    w,
                    "- rep {}: **wedged** — {reason}; telemetry collected over the wired link.",
                    r.rep
                );
            }
            RepStatus::RigFailure { reason } => {
                let _ = writeln!(w, "- rep {}: **rig failure** — {reason}.", r.rep);
            }
        }
    }

    if !aborted.is_empty() {
        let _ = writeln!(
            w,
            "\n**Aborted attempts** (interrupted, then redone; raw data kept, not in the stats): {}.",
            aborted
                .iter()
                .map(|a| format!("`{a}/`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    // Baselines
    let mut cmps: Vec<BaselineComparison> = Vec::new();
    let _ = writeln!(
        w,
        "\n## Comparison to baseline{}\n",
        if baselines.len() > 1 { "s" } else { "" }
    );
    if baselines.is_empty() {
        let _ = writeln!(w, "No baseline given (`--baseline RUN_DIR`). Within-noise rule when one is: {WITHIN_NOISE_RULE}.");
    }
    for b in baselines {
        if baselines.len() > 1 {
            let _ = writeln!(w, "### Baseline `{}`\n", b.name);
        }
        if (b.run.config.duration_s - cfg.duration_s).abs() > 0.5 {
            let _ = writeln!(
                w,
                "**Warning:** rep durations differ: {:.0} s per rep here, {:.0} s in `{}`; \
                 throughput over different windows is not the same measurement.\n",
                cfg.duration_s, b.run.config.duration_s, b.name
            );
        }
        let verdict = verdicts::compare_baseline(b, reps, st.as_ref(), &cols);
        compare_to(w, b, &verdict);
        if let BaselineVerdict::Compared { comparison, .. } = verdict {
            cmps.push(comparison);
        }
        if baselines.len() > 1 {
            let _ = writeln!(w);
        }
    }
    let cmp = cmps.first().cloned();

    // Dispatches
    let _ = writeln!(w, "\n## Workqueue dispatches\n");
    let mut all_fns: BTreeMap<&str, u64> = BTreeMap::new();
    for r in reps {
        for (f, n) in &r.dispatch {
            *all_fns.entry(f).or_insert(0) += n;
        }
    }
    let mut dispatch_mean = BTreeMap::new();
    let unmeasured: Vec<String> = reps
        .iter()
        .filter(|r| !r.dispatches_measured())
        .map(|r| r.rep.to_string())
        .collect();
    if !unmeasured.is_empty() {
        let _ = writeln!(
            w,
            "**Not measured in rep(s) {}**: the device had no `workqueue_execute_start` event \
             (shown as n/a, not 0).\n",
            unmeasured.join(", ")
        );
    }
    if all_fns.is_empty() {
        let _ = writeln!(w, "No `workqueue_execute_start` events recorded.");
    } else {
        let _ = writeln!(
            w,
            "| work function | total | per s (mean) | per 1000 RX packets (mean) |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|");
        let mut v: Vec<(&str, u64)> = all_fns.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (f, n) in v {
            let ps = mean_per_s(reps, f);
            dispatch_mean.insert(f.to_string(), ps);
            let per_k: Vec<f64> = reps
                .iter()
                .filter_map(|r| r.per_1000_rx_packets(f))
                .collect();
            let pk = (!per_k.is_empty()).then(|| per_k.iter().sum::<f64>() / per_k.len() as f64);
            let _ = writeln!(w, "| {f} | {n} | {ps:.1} | {} |", f1(pk));
        }
    }
    if !wake_cols.is_empty() {
        let _ = writeln!(
            w,
            "\n## Driver thread wake-ups\n\n`sched:sched_wakeup` filtered on the device to `comm ~ \"bes2600*\"`: \
             how often the driver's own threads (bes2600's bh kthread) were woken.\n"
        );
        let _ = writeln!(
            w,
            "| thread | total | per s (mean) | per 1000 RX packets (mean) |"
        );
        let _ = writeln!(w, "|---|---:|---:|---:|");
        for c in &wake_cols {
            let total: u64 = reps
                .iter()
                .map(|r| r.wakeups.get(*c).copied().unwrap_or(0))
                .sum();
            let per_s: Vec<f64> = reps
                .iter()
                .filter(|r| r.elapsed_s > 0.0)
                .map(|r| r.wakeups.get(*c).copied().unwrap_or(0) as f64 / r.elapsed_s)
                .collect();
            let ps = (!per_s.is_empty()).then(|| per_s.iter().sum::<f64>() / per_s.len() as f64);
            let per_k: Vec<f64> = reps
                .iter()
                .filter_map(|r| r.wakeups_per_1000_rx_packets(c))
                .collect();
            let pk = (!per_k.is_empty()).then(|| per_k.iter().sum::<f64>() / per_k.len() as f64);
            let _ = writeln!(w, "| {c} | {total} | {} | {} |", f1(ps), f1(pk));
        }
    }
    let lost: u64 = reps.iter().map(|r| r.trace_lost).sum();
    if lost > 0 {
        let _ = writeln!(w, "\n**Trace overrun**: {lost} events lost from the ring buffer; counts are lower bounds.");
    }

    // Kernel log
    let _ = writeln!(w, "\n## Kernel log (since each rep's marker)\n");
    let nsplat: usize = reps.iter().map(|r| r.splats.len()).sum();
    for r in reps {
        let _ = writeln!(
            w,
            "- rep {}: {} splat(s), {} scan-failure event(s){}",
            r.rep,
            r.splats.len(),
            r.scan_failures,
            if r.marker_found {
                ""
            } else {
                " — **marker not found**: whole log scanned"
            }
        );
        for s in &r.splats {
            let _ = writeln!(
                w,
                "  - {} `{}` — call site: {}{}",
                s.kind.as_str(),
                s.first_line,
                s.call_site
                    .as_deref()
                    .map(|c| format!("`{c}`"))
                    .unwrap_or_else(|| "unknown".into()),
                locks_text(&s.locks)
            );
        }
    }
    if let Some(m) = metas.iter().find(|m| m.fault_cmd.is_some()) {
        let _ = writeln!(
            w,
            "\n(Kernel log lines may come from the injected fault: `{}`.)",
            m.fault_cmd.as_deref().unwrap_or("")
        );
    }

    // The chip model (virtual devices on besser images only)
    if reps
        .iter()
        .any(|r| !r.chip.is_empty() || r.driver_halt.is_some())
    {
        let _ = writeln!(
            w,
            "\n## Chip model (simulated SDIO host)\n\nThe chip model's own counters at the end of each rep \
             (`rep-N/chip-after.txt`) and bes2600's account of a bh halt (kernel log since the marker).\n"
        );
        let keys = [
            "ctrl_crc_injected",
            "data_crc_injected",
            "stale_ctrl_injected",
            "confirms_dropped",
            "exceptions_raised",
            "downlink_dropped",
            "downlink_ethernet",
            "uplink_ethernet",
            "scan_rejects",
        ];
        let mut head = String::from("| rep |");
        let mut sep = String::from("|---:|");
        for k in keys {
            head.push_str(&format!(" {k} |"));
            sep.push_str("---:|");
        }
        let _ = writeln!(w, "{head} driver bh |\n{sep}:---|");
        for r in reps {
            let mut line = format!("| {} |", r.rep);
            for k in keys {
                match r.chip.get(k) {
                    Some(v) => line.push_str(&format!(" {v} |")),
                    None => line.push_str(" – |"),
                }
            }
            match &r.driver_halt {
                Some(why) => line.push_str(&format!(" halted: `{why}` |")),
                None => line.push_str(" no halt logged |"),
            }
            let _ = writeln!(w, "{line}");
        }
    }

    // Device output that did not read
    let nbad: usize = reps.iter().map(|r| r.bad_lines.len()).sum();
    if nbad > 0 {
        let _ = writeln!(w, "\n## Device output not understood\n");
        let _ = writeln!(
            w,
            "{nbad} line(s) of device output could not be read; counts from those files are lower bounds \
             (all of them are in `summary.json`):\n"
        );
        for b in reps
            .iter()
            .flat_map(|r| &r.bad_lines)
            .take(BAD_LINES_LISTED_MAX)
        {
            let _ = writeln!(w, "- `{}:{}`: {}", b.file, b.line, b.what);
        }
        if nbad > BAD_LINES_LISTED_MAX {
            let _ = writeln!(w, "- … and {} more", nbad - BAD_LINES_LISTED_MAX);
        }
    }

    // Predictions
    let presults = preds
        .map(|p| verdicts::predictions(p, reps, st.as_ref()))
        .unwrap_or_default();
    if !presults.is_empty() {
        let _ = writeln!(w, "\n## Predictions vs observed\n");
        let _ = writeln!(w, "| metric | predicted | observed | verdict |");
        let _ = writeln!(w, "|---|---|---:|---|");
        for x in &presults {
            let range = match (x.min, x.max) {
                (Some(a), Some(b)) if a == b => format!("= {a}"),
                (Some(a), Some(b)) => format!("{a} – {b}"),
                (Some(a), None) => format!("≥ {a}"),
                (None, Some(b)) => format!("≤ {b}"),
                (None, None) => "?".into(),
            };
            let _ = writeln!(
                w,
                "| {}{} | {range} | {} | {} |",
                x.metric,
                x.note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                x.observed
                    .map(|o| format!("{o:.3}"))
                    .unwrap_or_else(|| "not measured".into()),
                match x.holds {
                    Some(true) => "holds",
                    Some(false) => "**does not hold**",
                    None => "not measured",
                }
            );
        }
    }

    // Receipts
    let receipts = verdicts::receipts(run, reps, metas, baselines);
    let _ = writeln!(w, "\n## Receipts checklist\n");
    for r in &receipts {
        let _ = writeln!(w, "- {} {}", tick(r.ok), r.text);
    }
    if (reps.len() as u32) < cfg.reps {
        let _ = writeln!(w, "\n**Incomplete run**: {} of {} reps finished (resume with `cargo xtask lab ramp --resume {run_name}`, adding `--runs-dir DIR` when the run is not under the default `lab-runs/`).", reps.len(), cfg.reps);
    }

    let summary = Summary {
        kind: "ramp".into(),
        run: run_name.into(),
        label: cfg.label.clone(),
        device: run.device.name.clone(),
        kernel_release: run.kernel_release.clone(),
        reps_planned: cfg.reps,
        reps_finished: reps.len(),
        unit: "MiB/s".into(),
        throughput_mib_s: st.clone(),
        work_functions: cols,
        dispatch_per_s_mean: dispatch_mean,
        reps: reps.to_vec(),
        baseline: cmp.clone(),
        more_baselines: cmps.iter().skip(1).cloned().collect(),
        predictions: presults,
        receipts: receipts.clone(),
        aborted_attempts: aborted.to_vec(),
    };

    let mut screen = String::new();
    let _ = writeln!(
        screen,
        "ramp {run_name}: {}/{} reps on {}",
        reps.len(),
        cfg.reps,
        run.device.name
    );
    for r in reps {
        let _ = writeln!(
            screen,
            "  rep {}: {:<11} uptime {:>6} s  {:>12} bytes  {} MB/s",
            r.rep,
            r.status.label(),
            f1(r.uptime_start_s),
            r.bytes_received
                .map(thousands)
                .unwrap_or_else(|| "–".into()),
            f3(r.mib_s)
        );
    }
    if let Some(s) = &st {
        let _ = writeln!(
            screen,
            "  mean {:.3} · median {:.3} · min {:.3} · max {:.3} MB/s (MiB/s)",
            s.mean, s.median, s.min, s.max
        );
    }
    if let Some(c) = &cmp {
        let _ = writeln!(
            screen,
            "  vs {}: {:+.1}% ({})",
            c.run,
            c.delta_percent,
            if c.within_noise {
                "within noise"
            } else {
                "outside noise"
            }
        );
    }
    let _ = writeln!(
        screen,
        "  receipts: {}/{} ticked; splats: {nsplat}",
        receipts.iter().filter(|r| r.ok).count(),
        receipts.len()
    );
    Report {
        markdown: md,
        summary,
        screen,
    }
}

fn pct(a: f64, b: f64) -> String {
    if a == 0.0 {
        if b == 0.0 {
            "±0%".into()
        } else {
            "new".into()
        }
    } else {
        format!("{:+.1}%", (b - a) / a * 100.0)
    }
}
