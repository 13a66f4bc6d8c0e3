//! `report.md`, `summary.json` and the plot of a capture, from its analysis.
//! Deterministic: the same raw data gives the same bytes.

use std::fmt::Write as _;

use serde::Serialize;

use super::analysis::{Analysis, DropVerdict, ProbeClass, Status, WINDOW_S};
use super::raw::ProbeOutcome;
use super::{layout, plot, RawCapture, RunInfo};
use crate::ramp::report::thousands;
use crate::units::MIB;

pub struct Rendered {
    pub report_md: String,
    pub summary_json: String,
    pub svg: String,
}

#[derive(Serialize)]
struct Summary<'a> {
    kind: &'a str,
    units: Units,
    run: &'a RunInfo,
    analysis: &'a Analysis,
}

#[derive(Serialize)]
struct Units {
    throughput: &'static str,
    uptime: &'static str,
}

fn grouped_signed(n: i128) -> String {
    if n < 0 {
        format!("-{}", thousands(n.unsigned_abs() as u64))
    } else {
        thousands(n as u64)
    }
}

/// Throughput with enough digits for both ~2 MiB/s and ~180 B/s.
fn mib(v: f64) -> String {
    if v == 0.0 || v >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.6}")
    }
}

fn mmss(s: f64) -> String {
    let t = s.max(0.0).round() as u64;
    format!("{}:{:02}", t / 60, t % 60)
}

fn opt_s(v: Option<f64>) -> String {
    v.map(|t| format!("{t:.1}")).unwrap_or_else(|| "—".into())
}

pub fn render(raw: &RawCapture, a: &Analysis) -> Rendered {
    let run = &raw.run;
    let cfg = &run.config;
    let svg = plot::render_svg(a, cfg.duration_s);
    let summary_json = serde_json::to_string_pretty(&Summary {
        kind: super::RUN_KIND,
        units: Units {
            throughput: "MiB/s (2^20 bytes/s; \"MB/s\" in the maintainers' notes)",
            uptime: "seconds since boot",
        },
        run,
        analysis: a,
    })
    .expect("the summary is plain data") // serde_json cannot fail on these types
        + "\n";

    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# Phase 0 long capture — {}\n", run.label);
    let _ = writeln!(
        w,
        "Device `{}` · kernel `{}` · boot_id `{}` · started {} (T0 = boot)\n",
        run.device, run.kernel_release, run.boot_id, run.started_utc
    );
    let _ = writeln!(
        w,
        "Capture {:.0} s ({}), probes at {} s of uptime, {:.0} s each, sender capped at {} MiB/s; \
         data interface `{}`.\n",
        cfg.duration_s,
        mmss(cfg.duration_s),
        cfg.probes_s
            .iter()
            .map(|p| format!("{p:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        cfg.probe_len_s,
        mib(cfg.rate_bytes_per_s as f64 / MIB),
        cfg.data_iface
    );
    if !cfg.injections.is_empty() {
        let _ = writeln!(
            w,
            "**Injected on purpose (test run):** {}.\n",
            cfg.injections
                .iter()
                .map(|i| format!("at uptime {:.0} s `{}`", i.at_uptime_s, i.cmd))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let _ = writeln!(
        w,
        "**Units:** throughput in MiB/s (2^20 bytes per second) — the maintainers' notes call \
         this \"MB/s\". Uptimes in seconds since boot (m:ss in brackets).\n"
    );

    // --- state transitions
    let _ = writeln!(w, "## State transitions\n");
    let _ = writeln!(w, "| marker | uptime (s) | |");
    let _ = writeln!(w, "|---|---:|---|");
    let _ = writeln!(
        w,
        "| first scan failure | {} | {} |",
        opt_s(a.markers.first_scan_failure_s),
        a.markers
            .first_scan_failure_s
            .map(|t| format!(
                "[{}] `{}`",
                mmss(t),
                besser_klog::scan::SCAN_FAILURE_PATTERNS.join("` / `")
            ))
            .unwrap_or_else(|| "none in the kernel log".into())
    );
    let _ = writeln!(
        w,
        "| first disconnect / beacon loss | {} | {} |",
        opt_s(a.markers.first_link_loss.as_ref().map(|e| e.uptime_s)),
        a.markers
            .first_link_loss
            .as_ref()
            .map(|e| format!(
                "[{}] {} ({} line {})",
                mmss(e.uptime_s),
                e.kind,
                e.source,
                e.line
            ))
            .unwrap_or_else(|| "none (still associated)".into())
    );
    let _ = writeln!(
        w,
        "| first probe below {:.0}% of the first | {} | {} |\n",
        a.collapse_fraction * 100.0,
        opt_s(a.markers.first_low_probe_uptime_s),
        match (
            a.markers.first_low_probe,
            a.markers.first_low_probe_uptime_s
        ) {
            (Some(i), Some(t)) => format!("[{}] probe {i}", mmss(t)),
            _ => "none".into(),
        }
    );

    let _ = writeln!(w, "### Abrupt or gradual?\n");
    let _ = writeln!(
        w,
        "Rule: a probe is *good* at ≥ {:.0}% of the first probe, *collapsed* below {:.0}%, \
         *degraded* in between. The drop is **abrupt** when the last measured probe before the \
         collapse was still good (one step: single-event causation), **gradual** when degraded \
         probes came first (an accumulator). Resolution: the probe spacing.\n",
        a.good_fraction * 100.0,
        a.collapse_fraction * 100.0
    );
    let verdict = match &a.drop {
        DropVerdict::NoCollapse { degraded_probes } if degraded_probes.is_empty() => {
            "**No collapse**: every measured probe stayed good.".to_string()
        }
        DropVerdict::NoCollapse { degraded_probes } => format!(
            "**No collapse**, but degraded probe(s): {}.",
            list(degraded_probes)
        ),
        DropVerdict::Abrupt {
            last_good,
            collapse,
            from_uptime_s,
            to_uptime_s,
            events_between,
        } => format!(
            "**Abrupt**: probe {last_good} was good, probe {collapse} collapsed; the step lies \
             between uptime {from_uptime_s:.1} s and {to_uptime_s:.1} s. Events in that interval: {}.",
            if events_between.is_empty() {
                "none recorded".to_string()
            } else {
                events_between.join("; ")
            }
        ),
        DropVerdict::Gradual {
            degraded_probes,
            collapse,
        } => format!(
            "**Gradual**: degraded probe(s) {} came before the collapse at probe {collapse}.",
            list(degraded_probes)
        ),
        DropVerdict::Undetermined { why } => format!("**Undetermined**: {why}."),
    };
    let _ = writeln!(w, "{verdict}\n");
    if let (Some(t), Some(c)) = (
        a.markers.first_scan_failure_s,
        a.markers.first_low_probe_uptime_s,
    ) {
        let _ = writeln!(
            w,
            "The collapse probe started {:.1} s after the first scan failure.\n",
            c - t
        );
    }

    // --- probes
    let _ = writeln!(w, "## Probes\n");
    let _ = writeln!(w, "![throughput vs uptime]({})\n", layout::PLOT_SVG);
    let _ = writeln!(
        w,
        "MiB/s = `rx_bytes` of the data interface over the push (counters read right before and \
         after it) / seconds pushed, as in the maintainers' Phase 0 rig (it counts frames with their \
         IP/TCP headers, a few % above payload); the listener's payload byte count (which also \
         holds what drained after the push) is shown beside it.\n"
    );
    let _ = writeln!(
        w,
        "| probe | scheduled (s) | start uptime (s) | elapsed (s) | rx_bytes Δ | MiB/s | % of first | listener bytes | class | markers |"
    );
    let _ = writeln!(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for p in &a.probes {
        let class = match (p.class, p.outcome) {
            (ProbeClass::Unmeasured, _) => "not measured".to_string(),
            (c, ProbeOutcome::Wedged) => format!("{} (wedged)", class_name(c)),
            (c, _) => class_name(c).to_string(),
        };
        let markers = match (p.marker_start_s, p.marker_end_s) {
            (Some(s), Some(e)) => format!("{s:.1}–{e:.1}"),
            (Some(s), None) => format!("{s:.1}–missing"),
            (None, Some(e)) => format!("missing–{e:.1}"),
            (None, None) => "missing".into(),
        };
        let _ = writeln!(
            w,
            "| {} | {:.0} | {:.1} [{}] | {:.2} | {} | {} | {} | {} | {} | {} |",
            p.index,
            p.scheduled_uptime_s,
            p.start_uptime_s,
            mmss(p.start_uptime_s),
            p.elapsed_s,
            p.rx_bytes_delta
                .map(grouped_signed)
                .unwrap_or_else(|| "—".into()),
            match (p.mib_s, p.mib_s_from) {
                (Some(v), Some("listener")) => format!("{} (listener)", mib(v)),
                (Some(v), _) => mib(v),
                (None, _) => "—".into(),
            },
            p.fraction_of_first
                .map(percent)
                .unwrap_or_else(|| "—".into()),
            thousands(p.bytes_received),
            class,
            markers
        );
    }
    for p in a.probes.iter().filter(|p| p.note.is_some()) {
        let _ = writeln!(
            w,
            "\nProbe {}: {}",
            p.index,
            p.note.as_deref().unwrap_or_default()
        );
    }
    let _ = writeln!(w);

    // --- scan failures and link events
    let _ = writeln!(w, "## Scan failures\n");
    if a.scan_failures.is_empty() {
        let _ = writeln!(w, "None in the kernel log.\n");
    } else {
        let _ = writeln!(
            w,
            "{} failures (kernel-log lines within {:.0} s count as one), at uptime (s): {}.\n",
            a.scan_failures.len(),
            besser_klog::scan::SCAN_EVENT_GAP_S,
            a.scan_failures
                .iter()
                .map(|f| format!("{:.1}", f.uptime_s))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(s) = &a.scan_failure_interval_s {
            let _ = writeln!(
                w,
                "Interval between failures: median {:.1} s, min {:.1} s, max {:.1} s (n = {}).\n",
                s.median, s.min, s.max, s.n
            );
        }
    }
    let _ = writeln!(w, "## Disconnects and beacon losses\n");
    if a.link_events.is_empty() {
        let _ = writeln!(w, "None recorded.\n");
    } else {
        let _ = writeln!(w, "| uptime (s) | event | source |");
        let _ = writeln!(w, "|---:|---|---|");
        for e in &a.link_events {
            let _ = writeln!(
                w,
                "| {:.1} | {} | {} line {} |",
                e.uptime_s, e.kind, e.source, e.line
            );
        }
        let _ = writeln!(w);
    }
    let _ = writeln!(w, "## Kernel splats (WARN/BUG/oops/lockdep)\n");
    if a.splats.is_empty() {
        let _ = writeln!(
            w,
            "{}\n",
            if raw.kmsg.is_some() {
                "None in the kernel log."
            } else {
                "No kernel log was recorded."
            }
        );
    } else {
        let _ = writeln!(w, "| uptime (s) | kind | first line | call site |");
        let _ = writeln!(w, "|---:|---|---|---|");
        for sp in &a.splats {
            let _ = writeln!(
                w,
                "| {} | {} | `{}` | {}{} |",
                opt_s(sp.time_s),
                sp.kind.as_str(),
                sp.first_line.replace('|', "\\|"),
                sp.call_site
                    .as_deref()
                    .map(|c| format!("`{}`", c.replace('|', "\\|")))
                    .unwrap_or_else(|| "not found".into()),
                crate::ramp::report::locks_text(&sp.locks).replace('|', "\\|")
            );
        }
        let _ = writeln!(w);
    }
    if raw.iw.is_some() && a.epoch_offset_s.is_none() {
        let _ = writeln!(
            w,
            "`iw event` lines could not be placed on uptime: no counter snapshot carried the device's wall clock.\n"
        );
    }

    // --- windows
    let _ = writeln!(w, "## Events per {:.0}-minute window\n", WINDOW_S / 60.0);
    if a.windows.rows.is_empty() {
        let _ = writeln!(w, "No events recorded.\n");
    } else {
        let mut head = "| event |".to_string();
        let mut rule = "|---|".to_string();
        for i in 0..a.windows.windows {
            let _ = write!(
                head,
                " {}–{} s |",
                (i as f64 * WINDOW_S) as u64,
                ((i + 1) as f64 * WINDOW_S) as u64
            );
            rule.push_str("---:|");
        }
        let _ = writeln!(w, "{head}\n{rule}");
        for (name, counts) in &a.windows.rows {
            let cells: Vec<String> = counts.iter().map(|c| c.to_string()).collect();
            let _ = writeln!(w, "| {name} | {} |", cells.join(" | "));
        }
        let _ = writeln!(w);
    }

    // --- telemetry
    let _ = writeln!(w, "## Telemetry\n");
    if let Some(arm) = &raw.arm {
        let _ = writeln!(
            w,
            "Armed at uptime {:.1} s. ftrace events enabled: {}.",
            arm.armed_uptime_s,
            if arm.enabled_events.is_empty() {
                "none".to_string()
            } else {
                arm.enabled_events.join(", ")
            }
        );
        if !arm.missing_events.is_empty() {
            let _ = writeln!(
                w,
                "Not in this kernel (skipped): {}.",
                arm.missing_events.join(", ")
            );
        }
        let _ = writeln!(
            w,
            "`iw`: {}.\n",
            if arm.iw_available {
                "present, `iw event -t` recorded"
            } else {
                "absent on the device, no `iw event` stream"
            }
        );
    } else {
        let _ = writeln!(w, "No `{}` was recorded.\n", layout::ARM_JSON);
    }
    if !a.trace_event_counts.is_empty() {
        let _ = writeln!(w, "| ftrace event | records |");
        let _ = writeln!(w, "|---|---:|");
        for (e, n) in &a.trace_event_counts {
            let _ = writeln!(w, "| {e} | {} |", thousands(*n));
        }
        let _ = writeln!(w);
    }
    let n_snaps = raw.counters.as_ref().map(|c| c.snaps.len()).unwrap_or(0);
    let _ = writeln!(
        w,
        "Counter snapshots: {n_snaps}; RX rate between snapshots: {}.\n",
        match a
            .counter_rate
            .iter()
            .map(|r| r.mib_s)
            .fold(None, |m: Option<f64>, v| {
                Some(m.map_or(v, |m| m.max(v)))
            }) {
            Some(max) => format!("max {} MiB/s", mib(max)),
            None => "none".into(),
        }
    );
    if let Some(k) = raw.kmsg.as_ref().filter(|k| k.replayed > 0) {
        let _ = writeln!(
            w,
            "Kernel log: {} lines; {} more were the buffer replayed by a re-opened `/dev/kmsg` \
             after a reconnect (recognised by sequence number, counted once).\n",
            k.lines.len(),
            k.replayed
        );
    }
    if !raw.gaps.is_empty() {
        let _ = writeln!(w, "Recording gaps (connection lost, re-established):\n");
        for g in &raw.gaps {
            let _ = writeln!(
                w,
                "- `{}` from uptime {:.1} s to {}: {}",
                g.stream,
                g.from_uptime_s,
                g.to_uptime_s
                    .map(|t| format!("{t:.1} s"))
                    .unwrap_or_else(|| "the end".into()),
                g.reason
            );
        }
        let _ = writeln!(w);
    }

    // --- receipts
    let _ = writeln!(w, "## Receipts\n");
    for r in &a.receipts {
        let b = match r.status {
            Status::Pass => "[x]",
            Status::Fail => "[ ] **FAIL**",
            Status::NotApplicable => "[–] n/a",
        };
        let _ = writeln!(w, "- {b} {}: {}", r.check, r.detail);
    }
    let _ = writeln!(w);
    let bad = raw.bad_lines();
    if !bad.is_empty() {
        let _ = writeln!(w, "## Unparsable device output\n");
        const BAD_LINES_SHOWN_MAX: usize = 50;
        for e in bad.iter().take(BAD_LINES_SHOWN_MAX) {
            let _ = writeln!(w, "- {e}");
        }
        if bad.len() > BAD_LINES_SHOWN_MAX {
            let _ = writeln!(
                w,
                "- … and {} more (all in summary.json)",
                bad.len() - BAD_LINES_SHOWN_MAX
            );
        }
        let _ = writeln!(w);
    }

    Rendered {
        report_md: md,
        summary_json,
        svg,
    }
}

fn class_name(c: ProbeClass) -> &'static str {
    match c {
        ProbeClass::Good => "good",
        ProbeClass::Degraded => "degraded",
        ProbeClass::Collapsed => "collapsed",
        ProbeClass::Unmeasured => "not measured",
    }
}

/// A fraction as a percentage, with enough digits that a collapse to a few
/// hundred B/s does not read as 0.0%.
fn percent(f: f64) -> String {
    let p = f * 100.0;
    if p == 0.0 || p >= 1.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.3}%")
    }
}

fn list(v: &[u32]) -> String {
    v.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
