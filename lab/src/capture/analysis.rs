//! Pure analysis of a capture: throughput per probe vs uptime, the state
//! transitions (first scan failure, first link loss, first probe below a
//! fraction of the first), abrupt vs gradual, event rates per window, kernel
//! splats (by the lab's one classifier, [`besser_klog::splat::find_splats`]), receipts.
//!
//! Rules (stated in the report too):
//! - probe throughput = `rx_bytes` of the data interface over the push window
//!   / seconds pushed, in MiB/s (the maintainers' Phase 0 method: counters read
//!   right before and after the push; the listener's own count, which includes
//!   what drains after the push, is reported beside it and used only when the
//!   counters are missing); the *first* measured probe is the reference;
//! - a probe is *good* at ≥ `good_fraction` of the first, *collapsed* below
//!   `collapse_fraction`, *degraded* in between; the collapse is the first
//!   collapsed probe;
//! - the drop is *abrupt* when the last measured probe before the collapse was
//!   still good (one step between two probes: single-event causation, the events
//!   in that interval are listed), *gradual* when it was already degraded
//!   (an accumulator). The resolution is the probe spacing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::raw::{self, ProbeOutcome, MARKER_PREFIX};
use super::RawCapture;
use crate::units::MIB;
use besser_klog::scan::scan_failure_events;
use besser_klog::splat::{find_splats, Splat};

/// Width of the event-rate windows, seconds (their notes count per 5 minutes).
pub const WINDOW_S: f64 = 300.0;
/// The receipts' "fresh chip moves data" bar: first probe above 1 MiB/s.
pub const FIRST_PROBE_MIN_MIB_S: f64 = 1.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeClass {
    Good,
    Degraded,
    Collapsed,
    /// No throughput figure: the probe failed to run.
    Unmeasured,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    pub index: u32,
    pub scheduled_uptime_s: f64,
    pub start_uptime_s: f64,
    pub end_uptime_s: f64,
    pub elapsed_s: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Throughput received, MiB/s (`None` for a probe that failed to run).
    pub mib_s: Option<f64>,
    /// `rx_bytes` (the interface counter delta) or `listener`.
    pub mib_s_from: Option<&'static str>,
    /// `rx_bytes` delta of the data interface over the probe.
    pub rx_bytes_delta: Option<i128>,
    pub fraction_of_first: Option<f64>,
    pub class: ProbeClass,
    pub outcome: ProbeOutcome,
    pub note: Option<String>,
    /// Uptimes of the probe's start/end markers in the kernel log.
    pub marker_start_s: Option<f64>,
    pub marker_end_s: Option<f64>,
}

/// One failed scan: the kernel-log lines of one episode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanFailure {
    pub uptime_s: f64,
    pub lines: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkEvent {
    pub uptime_s: f64,
    /// `beacon loss`, `connection loss`, `disconnect`, `deauth`, `disassoc`.
    pub kind: String,
    /// `ftrace`, `iw` or `kmsg`, with the line in that stream.
    pub source: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spread {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum DropVerdict {
    /// No probe fell below the collapse fraction.
    NoCollapse {
        degraded_probes: Vec<u32>,
    },
    /// Good at `last_good`, collapsed at `collapse`: one step.
    Abrupt {
        last_good: u32,
        collapse: u32,
        /// The interval the step happened in (end of the good probe → end of the collapsed one).
        from_uptime_s: f64,
        to_uptime_s: f64,
        /// Scan failures and link events inside that interval.
        events_between: Vec<String>,
    },
    /// Degraded probes came before the collapse.
    Gradual {
        degraded_probes: Vec<u32>,
        collapse: u32,
    },
    Undetermined {
        why: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Markers {
    pub first_scan_failure_s: Option<f64>,
    pub first_link_loss: Option<LinkEvent>,
    /// First probe below `collapse_fraction` of the first probe.
    pub first_low_probe: Option<u32>,
    pub first_low_probe_uptime_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatePoint {
    pub uptime_s: f64,
    pub mib_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterViolation {
    pub line: usize,
    pub what: String,
}

/// Event counts per `WINDOW_S` window of uptime: `rows[name][w]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventWindows {
    pub window_s: f64,
    pub windows: usize,
    pub rows: BTreeMap<String, Vec<u64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    NotApplicable,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Receipt {
    pub check: String,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    pub collapse_fraction: f64,
    pub good_fraction: f64,
    pub probes: Vec<ProbeResult>,
    pub first_probe_mib_s: Option<f64>,
    pub scan_failures: Vec<ScanFailure>,
    pub scan_failure_interval_s: Option<Spread>,
    pub link_events: Vec<LinkEvent>,
    pub markers: Markers,
    pub drop: DropVerdict,
    /// ftrace record count per event name.
    pub trace_event_counts: BTreeMap<String, u64>,
    pub trace_lost_events: u64,
    pub windows: EventWindows,
    /// RX rate of the data interface between consecutive counter snapshots.
    pub counter_rate: Vec<RatePoint>,
    pub counter_violations: Vec<CounterViolation>,
    /// Device wall clock minus uptime (from the counter snapshots), used to
    /// place `iw event -t` lines on uptime.
    pub epoch_offset_s: Option<f64>,
    /// WARN/BUG/oops/lockdep/panic reports in the kernel log, found by the
    /// lab's one splat classifier ([`besser_klog::splat::find_splats`]).
    pub splats: Vec<Splat>,
    pub receipts: Vec<Receipt>,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn spread(mut v: Vec<f64>) -> Option<Spread> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(Spread {
        n: v.len(),
        median: median(&v),
        min: v[0],
        max: v[v.len() - 1],
    })
}

/// Link-loss kind of an ftrace event name.
fn trace_link_kind(event: &str) -> Option<&'static str> {
    Some(match event {
        "api_beacon_loss" => "beacon loss",
        "api_connection_loss" => "connection loss",
        "api_disconnect" => "disconnect",
        "rdev_deauth" => "deauth",
        "rdev_disassoc" => "disassoc",
        _ => return None,
    })
}

/// Link-loss kind of an `iw event` or kernel-log text.
fn text_link_kind(text: &str) -> Option<&'static str> {
    let t = text.to_ascii_lowercase();
    Some(if t.contains("beacon loss") {
        "beacon loss"
    } else if t.contains("connection to ap") && t.contains("lost") {
        "connection loss"
    } else if t.contains("disconnected") {
        "disconnect"
    } else if t.contains("deauth") {
        "deauth"
    } else if t.contains("disassoc") {
        "disassoc"
    } else {
        return None;
    })
}

/// The `iw event` kind used as an event-window row (text after `IFACE (phy #N): `,
/// up to the first `:` or `(`), e.g. `scan started`, `disconnected`.
fn iw_kind(text: &str) -> String {
    let body = text.split_once("): ").map(|(_, b)| b).unwrap_or(text);
    let end = body.find([':', '(', ',']).unwrap_or(body.len());
    let k = body[..end].trim();
    if k.is_empty() {
        "other".into()
    } else {
        k.to_string()
    }
}

pub fn analyse(raw: &RawCapture) -> Analysis {
    let cfg = &raw.run.config;
    let kmsg: &[raw::KmsgLine] = raw.kmsg.as_ref().map(|k| &k.lines[..]).unwrap_or(&[]);

    // --- scan failures (events, klog's one rule) from the kernel log
    let scan_failures: Vec<ScanFailure> =
        scan_failure_events(kmsg.iter().map(|l| (Some(l.uptime_s), l.text.as_str())))
            .into_iter()
            .map(|e| ScanFailure {
                uptime_s: e.uptime_s.unwrap_or(0.0),
                lines: e.lines,
            })
            .collect();
    let scan_failure_interval_s = spread(
        scan_failures
            .windows(2)
            .map(|w| w[1].uptime_s - w[0].uptime_s)
            .collect(),
    );
    let first_scan_failure_s = scan_failures.first().map(|f| f.uptime_s);

    // --- splats, by the ramp's classifier over the log re-stamped `[uptime] text`
    let stamped_kmsg: Vec<String> = kmsg
        .iter()
        .map(|l| format!("[{:.6}] {}", l.uptime_s, l.text))
        .collect();
    let splats = find_splats(&stamped_kmsg.iter().map(|l| l.as_str()).collect::<Vec<_>>());

    // --- clock offset for iw event -t (device epoch - uptime), median over snapshots
    let snaps: &[raw::CounterSnap] = raw.counters.as_ref().map(|c| &c.snaps[..]).unwrap_or(&[]);
    let epoch_offset_s = spread(
        snaps
            .iter()
            .filter_map(|s| Some(s.epoch_s? - s.uptime_s))
            .collect(),
    )
    .map(|s| s.median);

    // --- link events from ftrace, iw and the kernel log
    let mut link_events: Vec<LinkEvent> = Vec::new();
    if let Some(t) = &raw.trace {
        for e in &t.events {
            if let Some(kind) = trace_link_kind(&e.event) {
                link_events.push(LinkEvent {
                    uptime_s: e.uptime_s,
                    kind: kind.into(),
                    source: "ftrace".into(),
                    line: e.line,
                });
            }
        }
    }
    if let (Some(iw), Some(off)) = (&raw.iw, epoch_offset_s) {
        for e in &iw.events {
            if let Some(kind) = text_link_kind(&e.text) {
                link_events.push(LinkEvent {
                    uptime_s: e.epoch_s - off,
                    kind: kind.into(),
                    source: "iw".into(),
                    line: e.line,
                });
            }
        }
    }
    for l in kmsg {
        if l.text.starts_with(MARKER_PREFIX) {
            continue;
        }
        if let Some(kind) = text_link_kind(&l.text) {
            link_events.push(LinkEvent {
                uptime_s: l.uptime_s,
                kind: kind.into(),
                source: "kmsg".into(),
                line: l.line,
            });
        }
    }
    link_events.sort_by(|a, b| {
        a.uptime_s
            .total_cmp(&b.uptime_s)
            .then(a.source.cmp(&b.source))
            .then(a.line.cmp(&b.line))
    });

    // --- probes
    let marker = |idx: u32, what: &str| -> Option<f64> {
        let want = format!("{MARKER_PREFIX} probe {idx} {what}");
        kmsg.iter()
            .find(|l| l.text.trim_end() == want)
            .map(|l| l.uptime_s)
    };
    let mut probe_recs = raw.probes.clone();
    probe_recs.sort_by_key(|p| p.index);
    let rate_of = |p: &raw::ProbeRecord| -> Option<(f64, &'static str)> {
        if p.outcome == ProbeOutcome::Failed || p.elapsed_s <= 0.0 {
            return None;
        }
        Some(match (p.rx_bytes_before, p.rx_bytes_after) {
            (Some(b), Some(a)) if a >= b => ((a - b) as f64 / p.elapsed_s / MIB, "rx_bytes"),
            _ => (p.bytes_received as f64 / p.elapsed_s / MIB, "listener"),
        })
    };
    let mib_s_of = |p: &raw::ProbeRecord| rate_of(p).map(|(v, _)| v);
    let first_probe_mib_s = probe_recs.iter().find_map(mib_s_of);
    let probes: Vec<ProbeResult> = probe_recs
        .iter()
        .map(|p| {
            let mib_s = mib_s_of(p);
            let fraction_of_first = match (mib_s, first_probe_mib_s) {
                (Some(v), Some(f)) if f > 0.0 => Some(v / f),
                _ => None,
            };
            let class = match fraction_of_first {
                None => ProbeClass::Unmeasured,
                Some(x) if x >= cfg.good_fraction => ProbeClass::Good,
                Some(x) if x >= cfg.collapse_fraction => ProbeClass::Degraded,
                Some(_) => ProbeClass::Collapsed,
            };
            ProbeResult {
                index: p.index,
                scheduled_uptime_s: p.scheduled_uptime_s,
                start_uptime_s: p.start_uptime_s,
                end_uptime_s: p.end_uptime_s,
                elapsed_s: p.elapsed_s,
                bytes_sent: p.bytes_sent,
                bytes_received: p.bytes_received,
                mib_s,
                mib_s_from: rate_of(p).map(|(_, from)| from),
                rx_bytes_delta: match (p.rx_bytes_before, p.rx_bytes_after) {
                    (Some(b), Some(a)) => Some(a as i128 - b as i128),
                    _ => None,
                },
                fraction_of_first,
                class,
                outcome: p.outcome,
                note: p.note.clone(),
                marker_start_s: marker(p.index, "start"),
                marker_end_s: marker(p.index, "end"),
            }
        })
        .collect();

    // --- collapse and the abrupt/gradual verdict
    let measured: Vec<&ProbeResult> = probes.iter().filter(|p| p.mib_s.is_some()).collect();
    let collapse_pos = measured
        .iter()
        .position(|p| p.class == ProbeClass::Collapsed);
    let degraded_before = |end: usize| -> Vec<u32> {
        measured[..end]
            .iter()
            .filter(|p| p.class == ProbeClass::Degraded)
            .map(|p| p.index)
            .collect()
    };
    let drop = match (first_probe_mib_s, collapse_pos) {
        (None, _) => DropVerdict::Undetermined {
            why: "no probe measured any throughput".into(),
        },
        (Some(f), _) if f <= 0.0 => DropVerdict::Undetermined {
            why: "the first probe received nothing, so there is no reference".into(),
        },
        (Some(_), None) => DropVerdict::NoCollapse {
            degraded_probes: degraded_before(measured.len()),
        },
        (Some(_), Some(c)) => {
            let collapse = measured[c];
            let prev = measured[c - 1]; // c >= 1: the first measured probe is the reference
            if prev.class == ProbeClass::Good {
                let (from, to) = (prev.end_uptime_s, collapse.end_uptime_s);
                let mut events_between: Vec<String> = scan_failures
                    .iter()
                    .filter(|f| f.uptime_s >= from && f.uptime_s <= to)
                    .map(|f| format!("scan failure at {:.1} s", f.uptime_s))
                    .collect();
                events_between.extend(
                    link_events
                        .iter()
                        .filter(|e| e.uptime_s >= from && e.uptime_s <= to)
                        .map(|e| format!("{} ({}) at {:.1} s", e.kind, e.source, e.uptime_s)),
                );
                events_between.extend(splats.iter().filter_map(|sp| {
                    let t = sp.time_s.filter(|t| *t >= from && *t <= to)?;
                    Some(format!("{} splat at {t:.1} s", sp.kind.as_str()))
                }));
                DropVerdict::Abrupt {
                    last_good: prev.index,
                    collapse: collapse.index,
                    from_uptime_s: from,
                    to_uptime_s: to,
                    events_between,
                }
            } else {
                DropVerdict::Gradual {
                    degraded_probes: degraded_before(c),
                    collapse: collapse.index,
                }
            }
        }
    };
    let markers = Markers {
        first_scan_failure_s,
        first_link_loss: link_events.first().cloned(),
        first_low_probe: collapse_pos.map(|c| measured[c].index),
        first_low_probe_uptime_s: collapse_pos.map(|c| measured[c].start_uptime_s),
    };

    // --- ftrace counts
    let mut trace_event_counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut trace_lost_events = 0;
    if let Some(t) = &raw.trace {
        for e in &t.events {
            *trace_event_counts.entry(e.event.clone()).or_default() += 1;
        }
        trace_lost_events = t.losses.iter().map(|l| l.events).sum();
    }

    // --- event windows
    let mut stamped: Vec<(String, f64)> = Vec::new();
    stamped.extend(
        scan_failures
            .iter()
            .map(|f| ("scan failure (kmsg)".to_string(), f.uptime_s)),
    );
    if let Some(t) = &raw.trace {
        stamped.extend(t.events.iter().map(|e| (e.event.clone(), e.uptime_s)));
    }
    if let (Some(iw), Some(off)) = (&raw.iw, epoch_offset_s) {
        stamped.extend(
            iw.events
                .iter()
                .map(|e| (format!("iw: {}", iw_kind(&e.text)), e.epoch_s - off)),
        );
    }
    stamped.extend(
        link_events
            .iter()
            .filter(|e| e.source == "kmsg")
            .map(|e| (format!("kmsg: {}", e.kind), e.uptime_s)),
    );
    let last_s = stamped
        .iter()
        .map(|(_, t)| *t)
        .fold(cfg.duration_s, f64::max);
    let windows = ((last_s / WINDOW_S).ceil() as usize).max(1);
    let mut rows: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (name, t) in stamped {
        let w = ((t.max(0.0) / WINDOW_S) as usize).min(windows - 1);
        rows.entry(name).or_insert_with(|| vec![0; windows])[w] += 1;
    }

    // --- counters: rate line and monotonicity
    let mut counter_rate = Vec::new();
    let mut counter_violations = Vec::new();
    for w in snaps.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let dt = b.uptime_s - a.uptime_s;
        if dt <= 0.0 {
            counter_violations.push(CounterViolation {
                line: b.line,
                what: format!(
                    "uptime went from {:.2} s to {:.2} s (a reboot, or snapshots out of order)",
                    a.uptime_s, b.uptime_s
                ),
            });
            continue;
        }
        let mut ok = true;
        for (name, x, y) in [
            ("rx_bytes", a.rx_bytes, b.rx_bytes),
            ("rx_packets", a.rx_packets, b.rx_packets),
        ] {
            if y < x {
                ok = false;
                counter_violations.push(CounterViolation {
                    line: b.line,
                    what: format!(
                        "{name} went backwards from {x} to {y} between uptime {:.2} s and {:.2} s",
                        a.uptime_s, b.uptime_s
                    ),
                });
            }
        }
        if ok {
            counter_rate.push(RatePoint {
                uptime_s: (a.uptime_s + b.uptime_s) / 2.0,
                mib_s: (b.rx_bytes - a.rx_bytes) as f64 / dt / MIB,
            });
        }
    }

    let mut a = Analysis {
        collapse_fraction: cfg.collapse_fraction,
        good_fraction: cfg.good_fraction,
        probes,
        first_probe_mib_s,
        scan_failures,
        scan_failure_interval_s,
        link_events,
        markers,
        drop,
        trace_event_counts,
        trace_lost_events,
        windows: EventWindows {
            window_s: WINDOW_S,
            windows,
            rows,
        },
        counter_rate,
        counter_violations,
        epoch_offset_s,
        splats,
        receipts: Vec::new(),
    };
    a.receipts = receipts(raw, &a);
    a
}

fn receipts(raw: &RawCapture, a: &Analysis) -> Vec<Receipt> {
    use Status::*;
    let mut r = Vec::new();
    let mut push = |check: &str, status: Status, detail: String| {
        r.push(Receipt {
            check: check.into(),
            status,
            detail,
        })
    };

    // 1. events actually fired
    let total: u64 = a.trace_event_counts.values().sum();
    let enabled: Vec<&str> = match &raw.arm {
        Some(arm) => arm.enabled_events.iter().map(|s| s.as_str()).collect(),
        None => Vec::new(),
    };
    let silent: Vec<&str> = enabled
        .iter()
        .copied()
        .filter(|e| {
            let name = e.rsplit('/').next().unwrap_or(e);
            !a.trace_event_counts.contains_key(name)
        })
        .collect();
    let mut detail = format!(
        "{total} records of {} event types",
        a.trace_event_counts.len()
    );
    if !silent.is_empty() {
        detail += &format!("; enabled but silent: {}", silent.join(", "));
    }
    if raw.trace.is_none() {
        detail = "no ftrace stream was recorded".into();
    }
    push(
        "ftrace events actually fired",
        if total > 0 { Pass } else { Fail },
        detail,
    );

    // 2. scan-failure timestamp captured
    let kmsg_lines = raw.kmsg.as_ref().map(|k| k.lines.len()).unwrap_or(0);
    let (status, detail) = match (a.markers.first_scan_failure_s, kmsg_lines) {
        (Some(t), _) => (
            Pass,
            format!(
                "first at uptime {t:.1} s; {} failures",
                a.scan_failures.len()
            ),
        ),
        (None, 0) => (Fail, "no kernel log was recorded".into()),
        (None, n) => (
            NotApplicable,
            format!("no scan failure in {n} kernel-log lines"),
        ),
    };
    push(
        "kernel log captured the scan-failure timestamp",
        status,
        detail,
    );

    // 2b. no kernel splat
    let (status, detail) = match (a.splats.first(), kmsg_lines) {
        (None, 0) => (Fail, "no kernel log was recorded".into()),
        (None, n) => (Pass, format!("none in {n} kernel-log lines")),
        (Some(first), _) => (
            Fail,
            format!(
                "{} splat(s); first: {} at uptime {} ({})",
                a.splats.len(),
                first.kind.as_str(),
                first
                    .time_s
                    .map(|t| format!("{t:.1} s"))
                    .unwrap_or_else(|| "?".into()),
                first.call_site.as_deref().unwrap_or("call site not found")
            ),
        ),
    };
    push(
        "no WARN/BUG/lockdep splat in the kernel log",
        status,
        detail,
    );

    // 3. first probe above 1 MiB/s
    let (status, detail) = match a.first_probe_mib_s {
        Some(v) if v > FIRST_PROBE_MIN_MIB_S => (Pass, format!("{v:.3} MiB/s")),
        Some(v) => (Fail, format!("{v:.3} MiB/s")),
        None => (Fail, "no probe measured any throughput".into()),
    };
    push(
        "first probe above 1 MiB/s (fresh chip moves data)",
        status,
        detail,
    );

    // 4. a probe after the first failure
    let (status, detail) = match a.markers.first_scan_failure_s {
        None => (NotApplicable, "no scan failure".into()),
        Some(t) => {
            let after: Vec<String> = a
                .probes
                .iter()
                .filter(|p| p.mib_s.is_some() && p.start_uptime_s >= t)
                .map(|p| p.index.to_string())
                .collect();
            if after.is_empty() {
                (Fail, format!("no measured probe started after {t:.1} s"))
            } else {
                (Pass, format!("probes {}", after.join(", ")))
            }
        }
    };
    push(
        "at least one probe after the first scan failure",
        status,
        detail,
    );

    // 5. counters monotonic
    let n = raw.counters.as_ref().map(|c| c.snaps.len()).unwrap_or(0);
    let (status, detail) = if n < 2 {
        (Fail, format!("{n} counter snapshots; need at least 2"))
    } else if a.counter_violations.is_empty() {
        (Pass, format!("{n} snapshots"))
    } else {
        (
            Fail,
            a.counter_violations
                .iter()
                .map(|v| format!("line {}: {}", v.line, v.what))
                .collect::<Vec<_>>()
                .join("; "),
        )
    };
    push("netdev counters monotonic", status, detail);

    // 6. probe markers
    let unmarked: Vec<String> = a
        .probes
        .iter()
        .filter(|p| p.marker_start_s.is_none() || p.marker_end_s.is_none())
        .map(|p| p.index.to_string())
        .collect();
    let (status, detail) = if a.probes.is_empty() {
        (Fail, "no probe was recorded".into())
    } else if unmarked.is_empty() {
        (Pass, format!("{} probes", a.probes.len()))
    } else {
        (
            Fail,
            format!("probes without both markers: {}", unmarked.join(", ")),
        )
    };
    push(
        "every probe bracketed by start/end markers in the kernel log",
        status,
        detail,
    );

    // 7. completeness
    let mut holes: Vec<String> = raw
        .gaps
        .iter()
        .map(|g| match g.to_uptime_s {
            Some(to) => format!("{} {:.1}–{:.1} s", g.stream, g.from_uptime_s, to),
            None => format!("{} from {:.1} s on", g.stream, g.from_uptime_s),
        })
        .collect();
    if a.trace_lost_events > 0 {
        holes.push(format!(
            "{} ftrace events lost in the ring buffer",
            a.trace_lost_events
        ));
    }
    let mut absent: Vec<&str> = Vec::new();
    if raw.trace.is_none() {
        absent.push("trace");
    }
    if raw.kmsg.is_none() {
        absent.push("kmsg");
    }
    if raw.counters.is_none() {
        absent.push("counters");
    }
    if raw.iw.is_none() && raw.arm.as_ref().map(|a| a.iw_available).unwrap_or(false) {
        absent.push("iw");
    }
    if !absent.is_empty() {
        holes.push(format!("streams not recorded: {}", absent.join(", ")));
    }
    push(
        "streams complete (no gaps, no ftrace losses)",
        if holes.is_empty() { Pass } else { Fail },
        if holes.is_empty() {
            "none".into()
        } else {
            holes.join("; ")
        },
    );

    // 8. parse
    let bad = raw.bad_lines();
    push(
        "all device output parsed",
        if bad.is_empty() { Pass } else { Fail },
        if bad.is_empty() {
            "yes".into()
        } else {
            format!("{} unparsable lines (listed below)", bad.len())
        },
    );
    r
}
