//! Pure analysis of one rep's raw data: no I/O, no clocks.
//!
//! Every function here takes text or records that the ramp saved in the run
//! directory and returns values; `lab report` re-runs exactly this code over
//! the same files, which is why a report can be re-made byte for byte.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capture::raw::{self, ParseError};
use crate::sender::{SendOutcome, SendRecord};
use crate::units::mib_per_s;

/// Kernel log lines that mark the 5 GHz scan-reject storm (DOMAIN.md, finding 4).
pub const SCAN_FAILURE_PATTERNS: &[&str] = &[
    "wsm_generic_confirm failed for request 0x0007",
    "Scan failed (-22)",
];
/// How many lines after a splat's first line to search for its call site.
pub const SPLAT_CONTEXT_LINES: usize = 40;

/// Strips a `[  12.345678] ` timestamp (and a `<4>` level) from a dmesg line.
pub fn strip_dmesg_prefix(line: &str) -> &str {
    let mut l = line.trim_end();
    if l.starts_with('<') {
        if let Some(i) = l.find('>') {
            l = &l[i + 1..];
        }
    }
    if l.starts_with('[') {
        if let Some(i) = l.find(']') {
            return l[i + 1..].trim_start();
        }
    }
    l
}

/// The `[seconds]` timestamp of a dmesg line.
pub fn dmesg_time(line: &str) -> Option<f64> {
    let l = line.trim_start();
    let l = if l.starts_with('<') {
        &l[l.find('>')? + 1..]
    } else {
        l
    };
    let inner = l.strip_prefix('[')?;
    inner[..inner.find(']')?].trim().parse().ok()
}

/// The kernel log after the rep's marker line (exclusive); all of it if the
/// marker is missing (then `found` is false).
pub fn dmesg_since_marker<'a>(dmesg: &'a str, marker: &str) -> (Vec<&'a str>, bool) {
    let lines: Vec<&str> = dmesg.lines().collect();
    match lines.iter().rposition(|l| l.contains(marker)) {
        Some(i) => (lines[i + 1..].to_vec(), true),
        None => (lines, false),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum SplatKind {
    Warn,
    Bug,
    Oops,
    Lockdep,
    Panic,
    /// The hung-task detector: `INFO: task NAME:PID blocked for more than N seconds.`
    Hung,
}

impl SplatKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SplatKind::Warn => "WARN",
            SplatKind::Bug => "BUG",
            SplatKind::Oops => "Oops",
            SplatKind::Lockdep => "lockdep",
            SplatKind::Panic => "panic",
            SplatKind::Hung => "hung task",
        }
    }
}

/// A WARN/BUG/oops/lockdep report found in the kernel log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Splat {
    pub kind: SplatKind,
    /// The splat's first line, timestamp stripped.
    pub first_line: String,
    /// Where it fired: `file:line` and/or `function+off/len [module]`.
    pub call_site: Option<String>,
    /// Kernel time of the first line, if stamped.
    pub time_s: Option<f64>,
}

fn classify(msg: &str) -> Option<SplatKind> {
    if msg.starts_with("WARNING: CPU:") || msg.starts_with("WARNING: at ") {
        Some(SplatKind::Warn)
    } else if msg.starts_with("WARNING: ")
        && (msg.contains("lock")
            || msg.contains("dependency")
            || msg.contains("recursive")
            || msg.contains("-safe ->")
            || msg.contains("RCU usage"))
    {
        Some(SplatKind::Lockdep)
    } else if msg.starts_with("turning off the locking correctness validator") {
        // Lockdep's own "I am now blind" line (after e.g. MAX_LOCKDEP_ENTRIES
        // ran out): every later locking bug of the run goes unreported.
        Some(SplatKind::Lockdep)
    } else if msg.starts_with("INFO: task ") {
        Some(SplatKind::Hung)
    } else if msg.starts_with("kernel BUG at ") || msg.starts_with("BUG: ") {
        Some(SplatKind::Bug)
    } else if msg.starts_with("Oops")
        || msg.starts_with("Internal error: Oops")
        || msg.starts_with("general protection fault")
        || msg.starts_with("Unable to handle kernel")
    {
        Some(SplatKind::Oops)
    } else if msg.starts_with("Kernel panic") {
        Some(SplatKind::Panic)
    } else {
        None
    }
}

/// A site in a stack/register line: `RIP: 0010:func+0x1/0x2 [mod]`, `pc : func+0x…`, `… at: func+0x…`.
fn site_in(msg: &str) -> Option<String> {
    for key in ["RIP: 0010:", "RIP: ", "pc : ", ", at: ", " at: "] {
        if let Some(i) = msg.find(key) {
            let s = msg[i + key.len()..].trim();
            if s.contains("+0x") {
                return Some(s.to_string());
            }
        }
    }
    None
}

/// Finds splats in kernel log lines (as returned by [`dmesg_since_marker`]).
pub fn find_splats(lines: &[&str]) -> Vec<Splat> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let msg = strip_dmesg_prefix(lines[i]);
        let Some(kind) = classify(msg) else {
            i += 1;
            continue;
        };
        // Call site: on the first line for WARN ("at file:line func") and
        // "kernel BUG at file:line!", else from the register dump / lockdep
        // "at:" lines that follow.
        let mut site = match kind {
            SplatKind::Warn => msg.split_once(" at ").map(|(_, s)| s.trim().to_string()),
            SplatKind::Bug if msg.starts_with("kernel BUG at ") => Some(
                msg["kernel BUG at ".len()..]
                    .trim_end_matches('!')
                    .to_string(),
            ),
            _ => None,
        };
        let mut j = i + 1;
        while j < lines.len() && j <= i + SPLAT_CONTEXT_LINES {
            let m = strip_dmesg_prefix(lines[j]);
            // "Internal error: Oops" / "Oops:" continue a BUG or an oops
            // report; any other splat start begins a new one.
            let continues = matches!(kind, SplatKind::Bug | SplatKind::Oops)
                && (m.starts_with("Internal error: Oops") || m.starts_with("Oops"));
            if classify(m).is_some() && !continues {
                break;
            }
            if m.starts_with("---[ end trace") {
                j += 1;
                break;
            }
            if site.is_none() {
                site = site_in(m);
            } else if kind == SplatKind::Bug && !site.as_deref().unwrap_or("").contains("+0x") {
                if let Some(s) = site_in(m) {
                    site = Some(format!("{} ({s})", site.unwrap_or_default()));
                }
            }
            j += 1;
        }
        out.push(Splat {
            kind,
            first_line: msg.to_string(),
            call_site: site,
            time_s: dmesg_time(lines[i]),
        });
        i = j.max(i + 1);
    }
    out
}

/// How many kernel log lines match the scan-failure patterns.
pub fn count_scan_failures(lines: &[&str]) -> u64 {
    lines
        .iter()
        .filter(|l| SCAN_FAILURE_PATTERNS.iter().any(|p| l.contains(p)))
        .count() as u64
}

/// `name value` lines (the counter snapshot the lab takes); lines that do not
/// read are dropped here, see [`parse_counter_file`] for them.
pub fn parse_counters(text: &str) -> BTreeMap<String, u64> {
    parse_counter_file("", text).0
}

/// `name value` lines, and a [`ParseError`] (file, line, what) for every
/// line that is not one (e.g. `rx_bytes ` when the counter could not be read).
pub fn parse_counter_file(file: &str, text: &str) -> (BTreeMap<String, u64>, Vec<ParseError>) {
    let mut m = BTreeMap::new();
    let mut bad = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let mut it = l.split_whitespace();
        match (it.next(), it.next().map(str::parse::<u64>), it.next()) {
            (Some(k), Some(Ok(v)), None) => {
                m.insert(k.to_string(), v);
            }
            _ => bad.push(ParseError {
                file: file.to_string(),
                line: i + 1,
                what: format!("expected `COUNTER VALUE` (a name and a whole number), found {l:?}"),
            }),
        }
    }
    (m, bad)
}

/// Counts of ftrace `workqueue_execute_start` per work function, and the
/// number of events the ring buffer lost (`entries-in-buffer/entries-written`
/// of the `trace` file, and `[LOST N EVENTS]` records).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TraceCounts {
    pub per_function: BTreeMap<String, u64>,
    pub events: u64,
    pub lost: u64,
    /// `sched_wakeup` records per woken task name (the ramp arms the event
    /// filtered to the driver's threads, see [`crate::ramp::event_filter`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wakeups: BTreeMap<String, u64>,
    /// Records that could not be read (the capture's strict parser's verdicts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_lines: Vec<ParseError>,
}

/// Reads the `trace` file with the capture's strict record parser
/// ([`raw::parse_trace`]): a malformed record is a [`ParseError`] naming
/// `file` and the line, never silently skipped.
pub fn parse_trace(file: &str, text: &str) -> TraceCounts {
    let mut t = TraceCounts::default();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# entries-in-buffer/entries-written:") {
            let nums: Vec<u64> = rest
                .split(|c: char| !c.is_ascii_digit())
                .filter(|s| !s.is_empty())
                .filter_map(|s| s.parse().ok())
                .collect();
            if nums.len() >= 2 {
                t.lost += nums[1].saturating_sub(nums[0]);
            }
        }
    }
    let stream = raw::parse_trace(file, text);
    t.lost += stream.losses.iter().map(|l| l.events).sum::<u64>();
    t.bad_lines = stream.bad_lines;
    for e in stream
        .events
        .iter()
        .filter(|e| e.event == "workqueue_execute_start")
    {
        match e.detail.split_once("function ") {
            Some((_, f)) if !f.trim().is_empty() => {
                t.events += 1;
                *t.per_function.entry(f.trim().to_string()).or_insert(0) += 1;
            }
            _ => t.bad_lines.push(ParseError {
                file: file.to_string(),
                line: e.line,
                what: format!(
                    "expected `function NAME` in a workqueue_execute_start record, found {:?}",
                    e.detail
                ),
            }),
        }
    }
    for e in stream.events.iter().filter(|e| e.event == "sched_wakeup") {
        // `comm=NAME pid=N prio=N target_cpu=N` (include/trace/events/sched.h)
        let comm = e
            .detail
            .strip_prefix("comm=")
            .and_then(|r| r.split_once(" pid="))
            .map(|(c, _)| c.trim())
            .filter(|c| !c.is_empty());
        match comm {
            Some(c) => *t.wakeups.entry(c.to_string()).or_insert(0) += 1,
            None => t.bad_lines.push(ParseError {
                file: file.to_string(),
                line: e.line,
                what: format!(
                    "expected `comm=NAME pid=N …` in a sched_wakeup record, found {:?}",
                    e.detail
                ),
            }),
        }
    }
    t.bad_lines.sort_by_key(|b| b.line);
    t
}

/// Is anything listening on TCP `port`? From `/proc/net/tcp` + `tcp6` text.
pub fn tcp_listening(proc_net_tcp: &str, port: u16) -> bool {
    let want = format!("{port:04X}");
    proc_net_tcp.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() > 3
            && f[1]
                .rsplit(':')
                .next()
                .is_some_and(|p| p.eq_ignore_ascii_case(&want))
            && f[3] == "0A"
    })
}

/// First number of `/proc/uptime`.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// One poll of the device during the stress window, over the wired link.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonitorSample {
    /// Seconds since the sender started.
    pub t_s: f64,
    /// Data interface rx_bytes, if the poll answered.
    pub rx_bytes: Option<u64>,
    /// Was the rep's listener process alive?
    pub listener_alive: Option<bool>,
}

/// Wedge rule over the monitor samples: the listener vanished while traffic
/// was being sent, or `rx_bytes` did not move for `stall_s` seconds.
pub fn wedge_reason(samples: &[MonitorSample], stall_s: f64) -> Option<String> {
    if let Some(s) = samples.iter().find(|s| s.listener_alive == Some(false)) {
        return Some(format!("listener gone at {:.1} s", s.t_s));
    }
    let mut last_change: Option<(f64, u64)> = None;
    for s in samples {
        let Some(rx) = s.rx_bytes else { continue };
        match last_change {
            None => last_change = Some((s.t_s, rx)),
            Some((_, prev)) if rx != prev => last_change = Some((s.t_s, rx)),
            Some((t, _)) if s.t_s - t >= stall_s => {
                return Some(format!(
                    "no bytes received for {:.0} s (from {:.1} s)",
                    s.t_s - t,
                    t
                ));
            }
            _ => {}
        }
    }
    None
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum RepStatus {
    Ok,
    /// The data link died mid-rep.
    Wedged {
        reason: String,
    },
    /// The rig, not the device, failed (e.g. nothing listening, nothing arrived).
    RigFailure {
        reason: String,
    },
}

impl RepStatus {
    pub fn label(&self) -> &'static str {
        match self {
            RepStatus::Ok => "ok",
            RepStatus::Wedged { .. } => "wedged",
            RepStatus::RigFailure { .. } => "rig failure",
        }
    }
}

/// Raw facts of one rep, as saved (inputs to [`analyse_rep`]).
pub struct RepRaw<'a> {
    pub rep: u32,
    pub boot: &'a str,
    pub uptime_end: &'a str,
    pub counters_before: &'a str,
    pub counters_after: &'a str,
    pub listener: Option<&'a str>,
    pub listening_verified: bool,
    pub sender: &'a SendRecord,
    pub monitor: &'a [MonitorSample],
    pub trace: &'a str,
    pub dmesg: &'a str,
    pub marker: &'a str,
    pub stall_s: f64,
    pub fresh_uptime_max_s: f64,
    /// ftrace events enabled for the rep (`None`: not recorded).
    pub events_enabled: Option<&'a [String]>,
    /// Configured events the device lacked.
    pub events_missing: &'a [String],
    /// The chip model's counters at the end of the rep (`chip-after.txt`:
    /// virtual devices on besser images; `None` or empty elsewhere).
    pub chip_after: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepAnalysis {
    pub rep: u32,
    pub boot_id: String,
    pub uptime_start_s: Option<f64>,
    pub uptime_end_s: Option<f64>,
    pub in_window: bool,
    pub elapsed_s: f64,
    pub bytes_sent: u64,
    /// Bytes the listener counted (None: it never reported).
    pub bytes_received: Option<u64>,
    pub rx_bytes_delta: Option<u64>,
    pub rx_packets_delta: Option<u64>,
    /// Throughput from the listener's count, MiB/s.
    pub mib_s: Option<f64>,
    /// Throughput from the rx_bytes delta, MiB/s.
    pub mib_s_rx_counter: Option<f64>,
    pub dispatch: BTreeMap<String, u64>,
    /// Wake-ups per task name (`sched:sched_wakeup`, the driver's threads).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wakeups: BTreeMap<String, u64>,
    pub trace_events: u64,
    pub trace_lost: u64,
    pub marker_found: bool,
    pub splats: Vec<Splat>,
    pub scan_failures: u64,
    pub listening_verified: bool,
    /// Device output that could not be read (file, line, what): listed in
    /// the report; counts from those files are lower bounds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_lines: Vec<ParseError>,
    /// ftrace events the device enabled (`None`: not recorded, older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_enabled: Option<Vec<String>>,
    /// Configured ftrace events missing on the device: their counts are
    /// unmeasured, not 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events_missing: Vec<String>,
    /// The chip model's `name value` counters at the end of the rep
    /// (simulated SDIO host only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub chip: BTreeMap<String, u64>,
    /// bes2600's own account of why its bh stopped, from the kernel log
    /// since the marker (`bes2600: bh halted: …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_halt: Option<String>,
    #[serde(flatten)]
    pub status: RepStatus,
}

impl RepAnalysis {
    /// Was `workqueue_execute_start` traced in this rep? (false only when the
    /// device reported it missing).
    pub fn dispatches_measured(&self) -> bool {
        !self
            .events_missing
            .iter()
            .any(|e| e.ends_with("workqueue_execute_start"))
    }
    pub fn per_s(&self, f: &str) -> f64 {
        let n = *self.dispatch.get(f).unwrap_or(&0) as f64;
        if self.elapsed_s > 0.0 {
            n / self.elapsed_s
        } else {
            0.0
        }
    }
    /// Wake-ups of task `comm` per 1000 RX packets of the data interface.
    pub fn wakeups_per_1000_rx_packets(&self, comm: &str) -> Option<f64> {
        let n = *self.wakeups.get(comm).unwrap_or(&0) as f64;
        self.rx_packets_delta
            .filter(|&p| p > 0)
            .map(|p| n * 1000.0 / p as f64)
    }
    pub fn per_1000_rx_packets(&self, f: &str) -> Option<f64> {
        let n = *self.dispatch.get(f).unwrap_or(&0) as f64;
        self.rx_packets_delta
            .filter(|&p| p > 0)
            .map(|p| n * 1000.0 / p as f64)
    }
}

pub fn analyse_rep(r: &RepRaw<'_>) -> RepAnalysis {
    let mut boot = r.boot.lines();
    let boot_id = boot.next().unwrap_or("").trim().to_string();
    let uptime_start_s = boot.next().and_then(parse_uptime);
    let uptime_end_s = parse_uptime(r.uptime_end);
    let file = |name: &str| format!("rep-{}/{name}", r.rep);
    let (before, mut bad_lines) =
        parse_counter_file(&file("counters-before.txt"), r.counters_before);
    let (after, bad_after) = parse_counter_file(&file("counters-after.txt"), r.counters_after);
    bad_lines.extend(bad_after);
    if uptime_end_s.is_none() {
        bad_lines.push(ParseError {
            file: file("uptime-end.txt"),
            line: 1,
            what: format!(
                "expected /proc/uptime (`SECONDS IDLE`), found {:?}",
                r.uptime_end.lines().next().unwrap_or("")
            ),
        });
    }
    let delta = |k: &str| Some(after.get(k)?.checked_sub(*before.get(k)?)?);
    let rx_bytes_delta = delta("rx_bytes");
    let bytes_received = r.listener.and_then(|l| l.trim().parse::<u64>().ok());
    if let Some(l) = r.listener.filter(|_| bytes_received.is_none()) {
        bad_lines.push(ParseError {
            file: file("listener.txt"),
            line: 1,
            what: format!("expected the listener's byte count, found {:?}", l.trim()),
        });
    }
    let elapsed_s = r.sender.elapsed_s;
    let mut trace = parse_trace(&file("trace.txt"), r.trace);
    bad_lines.append(&mut trace.bad_lines);
    let (since, marker_found) = dmesg_since_marker(r.dmesg, r.marker);
    let splats = find_splats(&since);
    let driver_halt = since
        .iter()
        .find_map(|l| strip_dmesg_prefix(l).split_once("bes2600: bh halted: "))
        .map(|(_, why)| why.trim().to_string());
    let status = if let SendOutcome::Error { at_s, msg } = &r.sender.outcome {
        if r.sender.bytes_sent == 0 {
            RepStatus::RigFailure {
                reason: format!("data connection failed at {at_s:.1} s: {msg}"),
            }
        } else {
            RepStatus::Wedged {
                reason: format!("data connection broke at {at_s:.1} s: {msg}"),
            }
        }
    } else if !r.listening_verified {
        RepStatus::RigFailure {
            reason: "the rep's listener was never seen listening".into(),
        }
    } else if let Some(why) = &driver_halt {
        // The driver stopped serving the chip: the data link is dead from
        // then on, however many bytes made it before (a short rep would
        // otherwise read "ok").
        RepStatus::Wedged {
            reason: format!("bes2600's bh halted: {why}"),
        }
    } else if let Some(w) = wedge_reason(r.monitor, r.stall_s) {
        RepStatus::Wedged { reason: w }
    } else if let SendOutcome::Stalled { at_s } = r.sender.outcome {
        RepStatus::Wedged {
            reason: format!("sender stalled at {at_s:.1} s (socket accepted nothing)"),
        }
    } else if let SendOutcome::Stopped { at_s, reason } = &r.sender.outcome {
        RepStatus::Wedged {
            reason: format!("stopped at {at_s:.1} s: {reason}"),
        }
    } else if bytes_received == Some(0) || (bytes_received.is_none() && r.sender.bytes_sent > 0) {
        RepStatus::RigFailure {
            reason: format!(
                "the listener received {} bytes of {} sent (stale or missing listener?)",
                bytes_received
                    .map(|b| b.to_string())
                    .unwrap_or_else(|| "no count of the".into()),
                r.sender.bytes_sent
            ),
        }
    } else {
        RepStatus::Ok
    };
    RepAnalysis {
        rep: r.rep,
        boot_id,
        uptime_start_s,
        uptime_end_s,
        in_window: uptime_start_s.is_some_and(|u| u <= r.fresh_uptime_max_s)
            && uptime_end_s.is_some_and(|u| u <= r.fresh_uptime_max_s),
        elapsed_s,
        bytes_sent: r.sender.bytes_sent,
        bytes_received,
        rx_bytes_delta,
        rx_packets_delta: delta("rx_packets"),
        mib_s: bytes_received.map(|b| mib_per_s(b as f64, elapsed_s)),
        mib_s_rx_counter: rx_bytes_delta.map(|b| mib_per_s(b as f64, elapsed_s)),
        dispatch: trace.per_function,
        wakeups: trace.wakeups,
        trace_events: trace.events,
        trace_lost: trace.lost,
        marker_found,
        scan_failures: count_scan_failures(&since),
        splats,
        listening_verified: r.listening_verified,
        bad_lines,
        events_enabled: r.events_enabled.map(<[String]>::to_vec),
        events_missing: r.events_missing.to_vec(),
        chip: r.chip_after.map(parse_chip_counters).unwrap_or_default(),
        driver_halt,
        status,
    }
}

/// The chip model's debugfs counters: the `name value` lines with a whole
/// number (others, like `keys_by_type [..]`, are not counters and skipped).
pub fn parse_chip_counters(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next().map(str::parse::<u64>), it.next()) {
                (Some(k), Some(Ok(v)), None) => Some((k.to_string(), v)),
                _ => None,
            }
        })
        .collect()
}

/// mean, median, min, max of a non-empty list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn stats(xs: &[f64]) -> Option<Stats> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stats {
        n,
        mean: v.iter().sum::<f64>() / n as f64,
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// Within-noise rule (stated in every report): a candidate series is within
/// noise of its baseline when the candidate's mean lies inside the baseline
/// reps' [min, max] range. Otherwise the change is outside noise.
pub fn within_noise(candidate_mean: f64, baseline: &Stats) -> bool {
    candidate_mean >= baseline.min && candidate_mean <= baseline.max
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rep whose data all arrived still failed if bes2600's bh halted in
    /// it: the link is dead from the halt on (a 5-s rep used to read "ok").
    #[test]
    fn a_halted_driver_wedges_the_rep() {
        let sender = SendRecord {
            target: "127.0.0.1:5201".into(),
            rate_bytes_per_s: 1000.0,
            duration_s: 5.0,
            bytes_sent: 5000,
            elapsed_s: 5.0,
            per_second: vec![1000; 5],
            outcome: SendOutcome::Completed,
        };
        let dmesg = "[   10.0] besser-marker-1\n\
                     [   12.5] bes2600: bh halted: CommandTimeout { req: 7 }\n";
        let raw = |dmesg| RepRaw {
            rep: 1,
            boot: "",
            uptime_end: "",
            counters_before: "",
            counters_after: "",
            listener: Some("5000"),
            listening_verified: true,
            sender: &sender,
            monitor: &[],
            trace: "",
            dmesg,
            marker: "besser-marker-1",
            stall_s: 10.0,
            fresh_uptime_max_s: 300.0,
            events_enabled: None,
            events_missing: &[],
            chip_after: None,
        };
        let a = analyse_rep(&raw(dmesg));
        assert_eq!(a.driver_halt.as_deref(), Some("CommandTimeout { req: 7 }"));
        assert_eq!(
            a.status,
            RepStatus::Wedged {
                reason: "bes2600's bh halted: CommandTimeout { req: 7 }".into()
            }
        );
        // The same rep without the halt line is fine.
        let a = analyse_rep(&raw("[   10.0] besser-marker-1\n"));
        assert_eq!((a.driver_halt, a.status), (None, RepStatus::Ok));
    }

    /// The bh kthread's wake-ups, as 6.12's `sched_wakeup` prints them.
    #[test]
    fn sched_wakeups_are_counted_per_task() {
        let trace = "# tracer: nop\n\
            <idle>-0 [000] d.h2. 10.000001: sched_wakeup: comm=bes2600_bh pid=95 prio=120 target_cpu=000\n\
            kworker/0:1-12 [000] d..2. 10.000002: sched_wakeup: comm=bes2600_bh pid=95 prio=120 target_cpu=000\n\
            kworker/0:1-12 [000] d..2. 10.000003: sched_wakeup: pid=95\n";
        let t = parse_trace("trace.txt", trace);
        assert_eq!(t.wakeups.get("bes2600_bh"), Some(&2));
        assert_eq!(t.events, 0, "not workqueue events");
        assert_eq!(t.bad_lines.len(), 1);
        assert_eq!(t.bad_lines[0].line, 4);
    }

    #[test]
    fn hung_tasks_and_lockdep_turning_off_are_splats() {
        let log = [
            "[  240.1] INFO: task kworker/0:1:42 blocked for more than 120 seconds.",
            "[  240.1]       Not tainted 6.12.0 #1",
            "[  300.0] BUG: MAX_LOCKDEP_ENTRIES too low!",
            "[  300.0] turning off the locking correctness validator.",
            "[  300.1] bes2600: ok",
        ];
        let kinds: Vec<_> = find_splats(&log)
            .into_iter()
            .map(|s| (s.kind, s.time_s))
            .collect();
        assert_eq!(
            kinds,
            [
                (SplatKind::Hung, Some(240.1)),
                (SplatKind::Bug, Some(300.0)),
                (SplatKind::Lockdep, Some(300.0)),
            ]
        );
        assert!(find_splats(&["[ 1.0] INFO: lockdep is turned on."]).is_empty());
    }

    #[test]
    fn stats_match_the_maintainers_v3_series() {
        let s = stats(&[2.363, 2.590, 2.102]).unwrap();
        assert_eq!(
            format!("{:.3} {:.3} {:.3} {:.3}", s.mean, s.median, s.min, s.max),
            "2.352 2.363 2.102 2.590"
        );
        assert!(!within_noise(2.352, &stats(&[1.362]).unwrap()));
        // Patch C2-style comparison: 2.277 vs v3's 2.102..2.590 → within noise.
        assert!(within_noise(2.277, &s));
    }

    #[test]
    fn malformed_trace_and_counter_lines_are_reported_not_skipped() {
        let trace = "# tracer: nop\n\
            # entries-in-buffer/entries-written: 3/5   #P:1\n\
            kworker/0:1-12 [000] d..1. 10.000001: workqueue_execute_start: work struct 0000abcd: function bes2600_bh_work [bes2600]\n\
            kworker/0:1-12 [000] d..1. 10.0000\n\
            kworker/0:1-12 [000] d..1. 10.000003: workqueue_execute_start: work struct 0000abcd\n\
            CPU:0 [LOST 7 EVENTS]\n";
        let t = parse_trace("rep-1/trace.txt", trace);
        assert_eq!(t.events, 1);
        assert_eq!(t.per_function["bes2600_bh_work [bes2600]"], 1);
        assert_eq!(t.lost, 2 + 7);
        let where_: Vec<String> = t
            .bad_lines
            .iter()
            .map(|b| format!("{}:{}", b.file, b.line))
            .collect();
        assert_eq!(where_, ["rep-1/trace.txt:4", "rep-1/trace.txt:5"]);
        assert!(
            t.bad_lines[1].what.contains("expected `function NAME`"),
            "{:?}",
            t.bad_lines[1]
        );
        let (m, bad) = parse_counter_file(
            "rep-1/counters-after.txt",
            "rx_bytes 10\nrx_packets \n\ntx_bytes 1 2\n",
        );
        assert_eq!(m.len(), 1);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 4]);
        assert!(
            bad[0]
                .to_string()
                .starts_with("rep-1/counters-after.txt:2: expected `COUNTER VALUE`"),
            "{}",
            bad[0]
        );
    }

    #[test]
    fn wedge_rule() {
        let s = |t: f64, rx: u64| MonitorSample {
            t_s: t,
            rx_bytes: Some(rx),
            listener_alive: Some(true),
        };
        assert_eq!(
            wedge_reason(&[s(1.0, 10), s(2.0, 20), s(3.0, 30)], 5.0),
            None
        );
        let w = wedge_reason(&[s(1.0, 10), s(2.0, 20), s(4.0, 20), s(8.0, 20)], 5.0).unwrap();
        assert!(w.starts_with("no bytes received for 6 s"), "{w}");
        let gone = MonitorSample {
            t_s: 3.0,
            rx_bytes: None,
            listener_alive: Some(false),
        };
        assert_eq!(
            wedge_reason(&[s(1.0, 1), gone], 5.0).unwrap(),
            "listener gone at 3.0 s"
        );
    }

    #[test]
    fn listening_from_proc_net_tcp() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:1389 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1234 1 0000000000000000 100 0 0 10 0\n   1: 0F02000A:0016 0202000A:B3C2 01 00000000:00000000 02:000A7B2B 00000000     0        0 1300 4 0000000000000000 20 4 29 10 -1\n";
        assert!(tcp_listening(t, 5001));
        assert!(!tcp_listening(t, 22)); // established, not listening
        assert!(!tcp_listening(t, 5002));
    }
}
