//! Pure analysis of one rep's raw data: no I/O, no clocks.
//!
//! Every function here takes text or records that the ramp saved in the run
//! directory and returns values; `lab report` re-runs exactly this code over
//! the same files, which is why a report can be re-made byte for byte.

pub(crate) mod verdicts;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::device::sender::{SendOutcome, SendRecord};
use crate::units::mib_per_s;
use besser_klog::dmesg::{dmesg_since_marker, parse_uptime, strip_dmesg_prefix};
use besser_klog::ftrace::{count_trace, work_fn_matches};
use besser_klog::scan::count_scan_failures;
use besser_klog::splat::{find_splats, Splat};
use besser_klog::ParseError;

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
    /// `dispatch` per second of the rep's elapsed sending time, as the
    /// maintainers' notes give it (e.g. `sdio_tx_work` 276/s).
    #[serde(default)]
    pub dispatch_per_s: BTreeMap<String, f64>,
    /// Wake-ups per task name (`sched/sched_wakeup`, the driver's threads).
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
    /// Dispatches of work function `f` in this rep: every traced name that
    /// is `f`, with or without a ` [module]` suffix
    /// ([`besser_klog::ftrace::work_fn_matches`]).
    pub fn dispatches(&self, f: &str) -> u64 {
        self.dispatch
            .iter()
            .filter(|(traced, _)| work_fn_matches(traced, f))
            .map(|(_, n)| n)
            .sum()
    }
    pub fn per_s(&self, f: &str) -> f64 {
        let n = self.dispatches(f) as f64;
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
        let n = self.dispatches(f) as f64;
        self.rx_packets_delta
            .filter(|&p| p > 0)
            .map(|p| n * 1000.0 / p as f64)
    }
}

pub fn analyse_rep(r: &RepRaw<'_>) -> RepAnalysis {
    let mut boot = r.boot.lines();
    let boot_id = boot.next().unwrap_or("").trim().to_string();
    let uptime_line = boot.next();
    let uptime_start_s = uptime_line.and_then(parse_uptime);
    let uptime_end_s = parse_uptime(r.uptime_end);
    let file = |name: &str| format!("rep-{}/{name}", r.rep);
    let (before, mut bad_lines) =
        parse_counter_file(&file("counters-before.txt"), r.counters_before);
    // boot.txt: the boot_id (a UUID, /proc/sys/kernel/random/boot_id), then
    // /proc/uptime. A cut file must say so, not read as "outside the window".
    if !is_boot_id(&boot_id) {
        bad_lines.push(ParseError {
            file: file("boot.txt"),
            line: 1,
            what: format!("expected a boot_id (a UUID), found {boot_id:?}"),
        });
    }
    if uptime_start_s.is_none() {
        bad_lines.push(ParseError {
            file: file("boot.txt"),
            line: 2,
            what: format!(
                "expected /proc/uptime (`SECONDS IDLE`), found {:?}",
                uptime_line.unwrap_or("")
            ),
        });
    }
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
    let delta = |k: &str| after.get(k)?.checked_sub(*before.get(k)?);
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
    let mut trace = count_trace(&file("trace.txt"), r.trace);
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
        dispatch_per_s: trace
            .per_function
            .iter()
            .map(|(f, &n)| {
                let per_s = if elapsed_s > 0.0 {
                    n as f64 / elapsed_s
                } else {
                    0.0
                };
                (f.clone(), (per_s * 1000.0).round() / 1000.0)
            })
            .collect(),
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

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits.
fn is_boot_id(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Device output as text: bytes that are not UTF-8 (an SSID printed raw)
/// are decoded lossily (U+FFFD) and reported as a [`ParseError`] naming
/// `file` and the line of the first one, instead of failing the report.
pub fn device_text(file: &str, bytes: Vec<u8>) -> (String, Option<ParseError>) {
    match String::from_utf8(bytes) {
        Ok(s) => (s, None),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count();
            let err = ParseError {
                file: file.to_string(),
                line,
                what: format!(
                    "bytes that are not UTF-8 (first at byte {at}): decoded lossily, shown as U+FFFD"
                ),
            };
            (String::from_utf8_lossy(&bytes).into_owned(), Some(err))
        }
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
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
        let t = count_trace("rep-1/trace.txt", trace);
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
