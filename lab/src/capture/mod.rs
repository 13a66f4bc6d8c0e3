//! The Phase 0 long capture (issue 5): from a fresh boot, always-on telemetry
//! streams over the wired link, rate-capped probes at scheduled uptimes, and an
//! analysis of throughput vs uptime with the state transitions marked on it.
//!
//! Layers, each usable alone:
//! - [`raw`]: the run directory's raw data as the device produced it, and its parsers;
//! - [`analysis`]: pure functions from [`RawCapture`] to [`analysis::Analysis`];
//! - [`report`]: `report.md`, `summary.json` and the SVG plot from an analysis.
//! - [`live`]: the capture loop (streams saved raw as they arrive, probes,
//!   reconnects, injections) behind the [`live::DeviceLink`] / [`live::Prober`] seams;
//! - [`traffic`]: the lab's listener and sender as the prober; [`command`]: one
//!   `lab capture` run (run dir, device, fresh boot, progress). The
//!   compressed capture on the virtual device is `besser-lab-e2e`'s.
//!
//! Units: throughput is MiB/s (2^20 bytes/s), which the maintainers' notes call
//! "MB/s"; uptimes are seconds since boot (T0 = boot).
//!
//! **Invariant:** the analysis and report layers never talk to a device: the
//! live loop records raw streams into a run directory and [`remake_report`]
//! turns a run directory into the report, so `lab report` reproduces it byte
//! for byte.

pub mod analysis;
pub mod command;
pub mod live;
pub mod plot;
pub mod raw;
pub mod report;
pub mod traffic;

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::rundir::write_atomic;
use raw::{
    ArmRecord, CounterStream, GapRecord, IwStream, KmsgStream, ParseError, ProbeRecord, TraceStream,
};

/// The `kind` of a capture run in `run.json`.
pub const RUN_KIND: &str = "capture";

/// Files of a capture run directory, relative to it.
pub mod layout {
    pub const RUN_JSON: &str = "run.json";
    pub const ARM_JSON: &str = "arm.json";
    pub const TRACE: &str = "streams/trace.txt";
    pub const KMSG: &str = "streams/kmsg.txt";
    pub const IW: &str = "streams/iw-event.txt";
    pub const COUNTERS: &str = "streams/counters.txt";
    pub const PROBES: &str = "probes.jsonl";
    pub const GAPS: &str = "gaps.jsonl";
    pub const REPORT_MD: &str = "report.md";
    pub const SUMMARY_JSON: &str = "summary.json";
    pub const PLOT_SVG: &str = "throughput.svg";
}

/// The default ftrace event set (`system/event`), after the maintainers'
/// Phase 0 rig. Events the running kernel lacks are reported and skipped.
pub const DEFAULT_EVENTS: &[&str] = &[
    "workqueue/workqueue_queue_work",
    "workqueue/workqueue_execute_start",
    "mac80211/drv_hw_scan",
    "mac80211/api_beacon_loss",
    "mac80211/api_connection_loss",
    "mac80211/api_disconnect",
    "mac80211/drv_set_key",
    "cfg80211/rdev_assoc",
    "cfg80211/rdev_deauth",
    "cfg80211/rdev_disassoc",
    "cfg80211/cfg80211_scan_done",
    "power/suspend_resume",
    "mmc/mmc_request_start",
    "mmc/mmc_request_done",
];

/// Default fraction of the first probe's throughput below which a probe counts
/// as collapsed.
pub const COLLAPSE_FRACTION_DEFAULT: f64 = 0.5;
/// Default fraction of the first probe's throughput at or above which a probe
/// counts as still good (between the two: degraded).
pub const GOOD_FRACTION_DEFAULT: f64 = 0.8;

fn collapse_fraction_default() -> f64 {
    COLLAPSE_FRACTION_DEFAULT
}
fn good_fraction_default() -> f64 {
    GOOD_FRACTION_DEFAULT
}

/// What the capture was asked to do (`run.json` → `"config"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureConfig {
    /// Capture length from T0 = boot, seconds.
    pub duration_s: f64,
    /// Scheduled probe uptimes, seconds.
    pub probes_s: Vec<f64>,
    pub probe_len_s: f64,
    /// Sender rate cap, bytes per second.
    pub rate_bytes_per_s: u64,
    /// Requested ftrace events (`system/event`).
    pub events: Vec<String>,
    /// Data interface on the device.
    pub data_iface: String,
    /// Device commands run at set uptimes (tests inject faults this way);
    /// recorded here and listed in the report.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub injections: Vec<Injection>,
    #[serde(default = "collapse_fraction_default")]
    pub collapse_fraction: f64,
    #[serde(default = "good_fraction_default")]
    pub good_fraction: f64,
}

/// A device command the capture runs at a set uptime (fault injection).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Injection {
    pub at_uptime_s: f64,
    pub cmd: String,
}

/// `run.json` of a capture run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub kind: String,
    pub label: String,
    pub device: String,
    /// `YYYY-MM-DDTHH:MM:SSZ` when the capture started (host clock).
    pub started_utc: String,
    /// `/proc/sys/kernel/random/boot_id` of the fresh boot the capture ran in.
    pub boot_id: String,
    pub kernel_release: String,
    pub config: CaptureConfig,
}

/// Everything a capture run recorded, parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawCapture {
    pub run: RunInfo,
    pub arm: Option<ArmRecord>,
    pub trace: Option<TraceStream>,
    pub kmsg: Option<KmsgStream>,
    pub iw: Option<IwStream>,
    pub counters: Option<CounterStream>,
    pub probes: Vec<ProbeRecord>,
    pub gaps: Vec<GapRecord>,
}

impl RawCapture {
    /// Every unparsable device line, in file order.
    pub fn bad_lines(&self) -> Vec<&ParseError> {
        let mut v: Vec<&ParseError> = Vec::new();
        v.extend(self.trace.iter().flat_map(|s| &s.bad_lines));
        v.extend(self.kmsg.iter().flat_map(|s| &s.bad_lines));
        v.extend(self.iw.iter().flat_map(|s| &s.bad_lines));
        v.extend(self.counters.iter().flat_map(|s| &s.bad_lines));
        v
    }
}

fn read_optional(dir: &Path, rel: &str) -> Result<Option<String>> {
    let p = dir.join(rel);
    match std::fs::read(&p) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// Reads and parses a capture run directory. Missing streams are `None` (the
/// report says so); a bad host-written file is an error naming file and line.
pub fn load_run(dir: &Path) -> Result<RawCapture> {
    let run_text = read_optional(dir, layout::RUN_JSON)?
        .with_context(|| format!("{} has no {}", dir.display(), layout::RUN_JSON))?;
    let run: RunInfo = serde_json::from_str(&run_text).map_err(|e| ParseError {
        file: layout::RUN_JSON.into(),
        line: e.line(),
        what: e.to_string(),
    })?;
    if run.kind != RUN_KIND {
        bail!(
            "{}: kind is {:?}, not {RUN_KIND:?}",
            dir.join(layout::RUN_JSON).display(),
            run.kind
        );
    }
    let arm = match read_optional(dir, layout::ARM_JSON)? {
        Some(t) => Some(serde_json::from_str(&t).map_err(|e| ParseError {
            file: layout::ARM_JSON.into(),
            line: e.line(),
            what: e.to_string(),
        })?),
        None => None,
    };
    let probes = match read_optional(dir, layout::PROBES)? {
        Some(t) => raw::parse_jsonl(layout::PROBES, &t)?,
        None => Vec::new(),
    };
    let gaps = match read_optional(dir, layout::GAPS)? {
        Some(t) => raw::parse_jsonl(layout::GAPS, &t)?,
        None => Vec::new(),
    };
    Ok(RawCapture {
        run,
        arm,
        trace: read_optional(dir, layout::TRACE)?.map(|t| raw::parse_trace(layout::TRACE, &t)),
        kmsg: read_optional(dir, layout::KMSG)?.map(|t| raw::parse_kmsg(layout::KMSG, &t)),
        iw: read_optional(dir, layout::IW)?.map(|t| raw::parse_iw(layout::IW, &t)),
        counters: read_optional(dir, layout::COUNTERS)?
            .map(|t| raw::parse_counters(layout::COUNTERS, &t)),
        probes,
        gaps,
    })
}

/// Re-makes `report.md`, `summary.json` and the plot of a capture run from its
/// raw data alone (each file written atomically with fsync, so a crash never
/// leaves a half-written report). Returns the analysis.
pub fn remake_report(dir: &Path) -> Result<analysis::Analysis> {
    let raw = load_run(dir)?;
    let a = analysis::analyse(&raw);
    let out = report::render(&raw, &a);
    write_atomic(&dir.join(layout::PLOT_SVG), out.svg.as_bytes())?;
    write_atomic(&dir.join(layout::SUMMARY_JSON), out.summary_json.as_bytes())?;
    write_atomic(&dir.join(layout::REPORT_MD), out.report_md.as_bytes())?;
    Ok(a)
}
