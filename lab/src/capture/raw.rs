//! The raw data of a capture run, as the device (and the host) produced it, and
//! the parsers that read it back.
//!
//! Every stream is saved to the run directory exactly as it arrived; parsing
//! happens only here, at analysis time. A device line that does not parse is
//! never fatal: it becomes a [`ParseError`] (file, line, what) that the report
//! lists, and the rest of the stream is still used. Files the host writes itself
//! (`run.json`, `probes.jsonl`, `gaps.jsonl`, `arm.json`) are strict: a bad one
//! is an error naming the file and line.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The prefix of every marker line the capture writes into the kernel log
/// (`echo "besser-capture: probe 3 start" > /dev/kmsg`).
pub const MARKER_PREFIX: &str = "besser-capture:";

/// A line of device output that could not be read: where and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParseError {
    /// Path relative to the run directory, e.g. `streams/trace.txt`.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What was expected and what was found.
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

impl std::error::Error for ParseError {}

/// Shortens a device line for an error message (device output can be huge).
fn excerpt(line: &str) -> String {
    const EXCERPT_CHARS_MAX: usize = 80;
    let mut s: String = line.chars().take(EXCERPT_CHARS_MAX).collect();
    if line.chars().count() > EXCERPT_CHARS_MAX {
        s.push('…');
    }
    format!("{s:?}")
}

fn parse_f64(s: &str) -> Option<f64> {
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

// ---------------------------------------------------------------- ftrace

/// One ftrace record from `trace_pipe`. The timestamp is the trace clock
/// (`local` by default: seconds since boot, the same base as printk).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceEvent {
    pub line: usize,
    pub uptime_s: f64,
    pub task: String,
    pub cpu: u32,
    /// Event name without its system, e.g. `workqueue_execute_start`.
    pub event: String,
    pub detail: String,
}

/// `CPU:1 [LOST 42 EVENTS]`: the kernel's ring buffer overflowed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceLoss {
    pub line: usize,
    pub cpu: u32,
    pub events: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TraceStream {
    pub events: Vec<TraceEvent>,
    pub losses: Vec<TraceLoss>,
    pub bad_lines: Vec<ParseError>,
}

/// Parses `trace_pipe` text (also accepts the `trace` file, with its `#` header).
///
/// Record shape: `TASK-PID [CPU] FLAGS TIMESTAMP: EVENT: DETAIL`, where the task
/// name may contain spaces and dashes, a `(TGID)` column may precede the CPU,
/// and the flags column is absent on kernels without irq-info.
pub fn parse_trace(file: &str, text: &str) -> TraceStream {
    let mut out = TraceStream::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim_end();
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        match parse_trace_line(l, line) {
            Ok(TraceLine::Event(e)) => out.events.push(e),
            Ok(TraceLine::Loss(l)) => out.losses.push(l),
            Err(what) => out.bad_lines.push(ParseError {
                file: file.to_string(),
                line,
                what,
            }),
        }
    }
    out
}

enum TraceLine {
    Event(TraceEvent),
    Loss(TraceLoss),
}

fn parse_trace_line(l: &str, line: usize) -> Result<TraceLine, String> {
    let t = l.trim_start();
    if let Some(rest) = t.strip_prefix("CPU:") {
        // CPU:1 [LOST 42 EVENTS]
        let (cpu, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let n = rest
            .trim()
            .strip_prefix("[LOST ")
            .and_then(|r| r.strip_suffix(" EVENTS]"));
        return match (cpu.parse(), n.and_then(|n| n.parse().ok())) {
            (Ok(cpu), Some(events)) => Ok(TraceLine::Loss(TraceLoss { line, cpu, events })),
            _ => Err(format!(
                "expected `CPU:N [LOST M EVENTS]`, found {}",
                excerpt(l)
            )),
        };
    }
    let bad = |why: &str| format!("{why} in ftrace record {}", excerpt(l));
    // The CPU column `[NNN]` is the anchor: everything left of it is TASK-PID
    // (and maybe a TGID column), everything right is FLAGS TIMESTAMP: EVENT: ...
    let open = t
        .find(" [")
        .ok_or_else(|| bad("expected a `[CPU]` column"))?;
    let close = t[open..]
        .find(']')
        .map(|c| open + c)
        .ok_or_else(|| bad("unterminated `[CPU]` column"))?;
    let cpu: u32 = t[open + 2..close]
        .trim()
        .parse()
        .map_err(|_| bad("expected a CPU number inside `[...]`"))?;
    let mut left = t[..open].trim_end();
    if left.ends_with(')') {
        // optional "(TGID)" column
        if let Some(p) = left.rfind('(') {
            left = left[..p].trim_end();
        }
    }
    let (task, pid) = left
        .rsplit_once('-')
        .ok_or_else(|| bad("expected `TASK-PID` before the CPU column"))?;
    pid.parse::<u32>()
        .map_err(|_| bad("expected a numeric PID in `TASK-PID`"))?;
    let right = &t[close + 1..];
    // The timestamp is the last whitespace-separated token before the first ": ".
    let colon = right
        .find(": ")
        .ok_or_else(|| bad("expected `TIMESTAMP: EVENT:`"))?;
    let ts_tok = right[..colon]
        .split_whitespace()
        .last()
        .ok_or_else(|| bad("missing timestamp"))?;
    let uptime_s = parse_f64(ts_tok).ok_or_else(|| bad("expected a timestamp in seconds"))?;
    let rest = &right[colon + 2..];
    let (event, detail) = match rest.split_once(':') {
        Some((e, d)) => (e, d.strip_prefix(' ').unwrap_or(d)),
        None => (rest, ""),
    };
    if event.is_empty() || !event.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(bad("expected an event name after the timestamp"));
    }
    Ok(TraceLine::Event(TraceEvent {
        line,
        uptime_s,
        task: task.trim().to_string(),
        cpu,
        event: event.to_string(),
        detail: detail.to_string(),
    }))
}

// ---------------------------------------------------------------- kernel log

/// One kernel log message with its printk timestamp (seconds since boot).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KmsgLine {
    pub line: usize,
    pub uptime_s: f64,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KmsgStream {
    pub lines: Vec<KmsgLine>,
    pub bad_lines: Vec<ParseError>,
    /// `/dev/kmsg` records seen again after a reconnect (a re-opened
    /// `/dev/kmsg` replays the buffer): skipped by sequence number.
    pub replayed: usize,
}

/// Parses a kernel log follow: either `dmesg -w` text (`[  778.123456] msg`) or
/// raw `/dev/kmsg` records (`6,1234,778123456,-;msg`, whose continuation lines
/// start with a space and are skipped). A `/dev/kmsg` record whose sequence
/// number is not above the highest seen so far is a replay after a reconnect
/// and is counted in `replayed`, not kept twice.
pub fn parse_kmsg(file: &str, text: &str) -> KmsgStream {
    let mut out = KmsgStream::default();
    let mut seq_max: Option<u64> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.starts_with(' ') && !raw.trim_start().starts_with('[') {
            continue; // blank, or a /dev/kmsg dictionary continuation line
        }
        match parse_kmsg_line(raw) {
            Some((_, _, Some(seq))) if seq_max.is_some_and(|m| seq <= m) => out.replayed += 1,
            Some((uptime_s, text, seq)) => {
                if seq.is_some() {
                    seq_max = seq;
                }
                out.lines.push(KmsgLine {
                    line,
                    uptime_s,
                    text: text.to_string(),
                })
            }
            None => out.bad_lines.push(ParseError {
                file: file.to_string(),
                line,
                what: format!(
                    "expected `[SECONDS] message` or `PRIO,SEQ,USEC,FLAGS;message`, found {}",
                    excerpt(raw)
                ),
            }),
        }
    }
    out
}

/// `(uptime_s, message, /dev/kmsg sequence number)`.
fn parse_kmsg_line(raw: &str) -> Option<(f64, &str, Option<u64>)> {
    let t = raw.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        let (ts, msg) = rest.split_once(']')?;
        let uptime_s = parse_f64(ts.trim())?;
        return Some((uptime_s, msg.strip_prefix(' ').unwrap_or(msg), None));
    }
    let (head, msg) = t.split_once(';')?;
    let mut f = head.split(',');
    let _prio: u32 = f.next()?.parse().ok()?;
    let seq: u64 = f.next()?.parse().ok()?;
    let usec: u64 = f.next()?.parse().ok()?;
    Some((usec as f64 / 1e6, msg, Some(seq)))
}

// ---------------------------------------------------------------- iw event -t

/// One `iw event -t` line: `EPOCH.USEC: IFACE (phy #N): text`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IwEvent {
    pub line: usize,
    /// Wall-clock time on the device (seconds since the epoch).
    pub epoch_s: f64,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IwStream {
    pub events: Vec<IwEvent>,
    pub bad_lines: Vec<ParseError>,
}

pub fn parse_iw(file: &str, text: &str) -> IwStream {
    let mut out = IwStream::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let parsed = raw
            .split_once(": ")
            .and_then(|(ts, rest)| Some((parse_f64(ts.trim())?, rest)));
        match parsed {
            Some((epoch_s, text)) => out.events.push(IwEvent {
                line,
                epoch_s,
                text: text.to_string(),
            }),
            None => out.bad_lines.push(ParseError {
                file: file.to_string(),
                line,
                what: format!(
                    "expected `EPOCH.USEC: event` (iw event -t), found {}",
                    excerpt(raw)
                ),
            }),
        }
    }
    out
}

// ---------------------------------------------------------------- counters

/// One netdev counter snapshot, as the on-device loop prints it every 30 s:
/// `snap uptime=778.12 epoch=1778189516.42 rx_bytes=123 rx_packets=45`.
/// `epoch` (device wall clock) lets `iw event -t` times be placed on uptime.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CounterSnap {
    pub line: usize,
    pub uptime_s: f64,
    pub epoch_s: Option<f64>,
    pub rx_bytes: u64,
    pub rx_packets: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CounterStream {
    pub snaps: Vec<CounterSnap>,
    pub bad_lines: Vec<ParseError>,
}

/// The shell line the device runs to print one snapshot in the format
/// [`parse_counters`] reads (`IFACE` is substituted by the caller).
pub fn counter_snapshot_command(iface: &str) -> String {
    format!(
        "read up _ < /proc/uptime; \
         echo \"snap uptime=$up epoch=$(date +%s) \
         rx_bytes=$(cat /sys/class/net/{iface}/statistics/rx_bytes) \
         rx_packets=$(cat /sys/class/net/{iface}/statistics/rx_packets)\""
    )
}

pub fn parse_counters(file: &str, text: &str) -> CounterStream {
    let mut out = CounterStream::default();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        match parse_counter_line(raw, line) {
            Ok(s) => out.snaps.push(s),
            Err(what) => out.bad_lines.push(ParseError {
                file: file.to_string(),
                line,
                what,
            }),
        }
    }
    out
}

fn parse_counter_line(raw: &str, line: usize) -> Result<CounterSnap, String> {
    let mut words = raw.split_whitespace();
    if words.next() != Some("snap") {
        return Err(format!(
            "expected a line starting with `snap`, found {}",
            excerpt(raw)
        ));
    }
    let (mut up, mut epoch, mut rxb, mut rxp) = (None, None, None, None);
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("expected `key=value`, found {:?} in {}", w, excerpt(raw)))?;
        let bad = || format!("bad value for `{k}`: {v:?} in {}", excerpt(raw));
        match k {
            "uptime" => up = Some(parse_f64(v).ok_or_else(bad)?),
            "epoch" => epoch = Some(parse_f64(v).ok_or_else(bad)?),
            "rx_bytes" => rxb = Some(v.parse::<u64>().map_err(|_| bad())?),
            "rx_packets" => rxp = Some(v.parse::<u64>().map_err(|_| bad())?),
            _ => {} // tolerate extra counters
        }
    }
    let missing = |k: &str| format!("missing `{k}=` in {}", excerpt(raw));
    Ok(CounterSnap {
        line,
        uptime_s: up.ok_or_else(|| missing("uptime"))?,
        epoch_s: epoch,
        rx_bytes: rxb.ok_or_else(|| missing("rx_bytes"))?,
        rx_packets: rxp.ok_or_else(|| missing("rx_packets"))?,
    })
}

// ---------------------------------------------------------------- host-written records

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeOutcome {
    /// The push ran for its whole length.
    Ok,
    /// The data link stopped moving bytes mid-probe; what arrived is still counted.
    Wedged,
    /// The probe could not run (listener did not start, sender could not connect).
    Failed,
}

/// One scheduled probe, written by the host when the probe finishes
/// (`probes.jsonl`, one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// 1-based, in schedule order.
    pub index: u32,
    pub scheduled_uptime_s: f64,
    /// Device uptime when the push started / ended.
    pub start_uptime_s: f64,
    pub end_uptime_s: f64,
    /// Seconds the sender pushed (host clock).
    pub elapsed_s: f64,
    pub bytes_sent: u64,
    /// What the fresh listener on the device actually received.
    pub bytes_received: u64,
    /// `rx_bytes` of the data interface just before / after the probe.
    pub rx_bytes_before: Option<u64>,
    pub rx_bytes_after: Option<u64>,
    pub outcome: ProbeOutcome,
    /// Why a probe failed or wedged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A stretch of time a stream was not recorded (connection lost and
/// re-established), written by the host (`gaps.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapRecord {
    /// `trace`, `kmsg`, `iw`, `counters`, or `all` for the SSH connection.
    pub stream: String,
    pub from_uptime_s: f64,
    /// `None` when the stream never came back before the capture ended.
    pub to_uptime_s: Option<f64>,
    pub reason: String,
}

/// What arming the telemetry found on the device (`arm.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmRecord {
    /// ftrace events (`system/event`) enabled.
    pub enabled_events: Vec<String>,
    /// Requested events the running kernel lacks: reported, skipped.
    pub missing_events: Vec<String>,
    /// Whether `iw` exists on the device (else no `iw event` stream).
    pub iw_available: bool,
    /// Device uptime when the streams were armed.
    pub armed_uptime_s: f64,
}

/// Parses a JSON-lines file the host wrote. Strict: the first bad line is an
/// error naming the file and line.
pub fn parse_jsonl<T: for<'de> Deserialize<'de>>(
    file: &str,
    text: &str,
) -> Result<Vec<T>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(raw).map_err(|e| ParseError {
            file: file.to_string(),
            line: i + 1,
            what: format!("{e} (expected one JSON record per line)"),
        })?;
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lines_of_several_kernel_formats() {
        let text = "\
# tracer: nop
     kworker/0:1-12      [000] d..1.   123.456789: workqueue_execute_start: work struct 00000000abcd: function bes2600_bh_work [bes2600]
          <idle>-0       [001] ..s2  200.000001: api_beacon_loss: phy0 vif:wlan0(2)
 NetworkManager-5 (    5) [003] .... 300.5: drv_hw_scan: phy0 vif:wlan0(2)
 my task-with-dash-77    [002]   400.25: cfg80211_scan_done: aborted: false
CPU:1 [LOST 42 EVENTS]
garbage line
  kworker/1:0-9 [001] d..1. notatime: workqueue_queue_work: x
";
        let s = parse_trace("streams/trace.txt", text);
        assert_eq!(s.events.len(), 4);
        assert_eq!(s.events[0].task, "kworker/0:1");
        assert_eq!(s.events[0].event, "workqueue_execute_start");
        assert_eq!(s.events[0].uptime_s, 123.456789);
        assert!(s.events[0].detail.contains("bes2600_bh_work"));
        assert_eq!(s.events[1].task, "<idle>");
        assert_eq!(s.events[2].task, "NetworkManager");
        assert_eq!(s.events[3].task, "my task-with-dash");
        assert_eq!(s.events[3].uptime_s, 400.25);
        assert_eq!(
            s.losses,
            vec![TraceLoss {
                line: 6,
                cpu: 1,
                events: 42
            }]
        );
        assert_eq!(s.bad_lines.len(), 2);
        assert_eq!(s.bad_lines[0].line, 7);
        assert_eq!(
            s.bad_lines[1].to_string(),
            "streams/trace.txt:8: expected a timestamp in seconds in ftrace record \"  kworker/1:0-9 [001] d..1. notatime: workqueue_queue_work: x\""
        );
    }

    #[test]
    fn kmsg_in_dmesg_and_dev_kmsg_form() {
        let text = "[    0.000000] Linux version 6.12\n\
                    [  778.123456] ieee80211 phy0: [SCAN] Scan failed (-22)\n\
                    6,1234,779500000,-;besser-capture: probe 1 start\n \
                    SUBSYSTEM=net\n\
                    truncated li";
        let s = parse_kmsg("streams/kmsg.txt", text);
        assert_eq!(s.lines.len(), 3);
        assert_eq!(s.lines[1].uptime_s, 778.123456);
        assert_eq!(s.lines[1].text, "ieee80211 phy0: [SCAN] Scan failed (-22)");
        assert_eq!(s.lines[2].uptime_s, 779.5);
        assert_eq!(s.lines[2].text, "besser-capture: probe 1 start");
        assert_eq!(s.bad_lines.len(), 1);
        assert_eq!(s.bad_lines[0].line, 5);
    }

    #[test]
    fn kmsg_replay_after_reconnect_is_not_doubled() {
        let text = "6,10,1000000,-;a\n6,11,2000000,-;b\n6,10,1000000,-;a\n6,11,2000000,-;b\n6,12,3000000,-;c\n";
        let s = parse_kmsg("streams/kmsg.txt", text);
        let msgs: Vec<&str> = s.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(msgs, ["a", "b", "c"]);
        assert_eq!(s.replayed, 2);
    }

    #[test]
    fn counters_and_iw() {
        let c = parse_counters(
            "streams/counters.txt",
            "snap uptime=30.01 epoch=1778188768 rx_bytes=100 rx_packets=2\n\
             snap uptime=60.02 rx_bytes=x rx_packets=3\nsnap uptime=90 rx_packets=3\n",
        );
        assert_eq!(c.snaps.len(), 1);
        assert_eq!(c.snaps[0].epoch_s, Some(1778188768.0));
        assert_eq!(c.bad_lines.len(), 2);
        assert!(c.bad_lines[0].what.contains("bad value for `rx_bytes`"));
        assert!(c.bad_lines[1].what.contains("missing `rx_bytes=`"));
        let iw = parse_iw(
            "streams/iw-event.txt",
            "1778189516.123456: wlan0 (phy #0): scan aborted\nnope\n",
        );
        assert_eq!(iw.events.len(), 1);
        assert_eq!(iw.events[0].text, "wlan0 (phy #0): scan aborted");
        assert_eq!(iw.bad_lines[0].line, 2);
    }

    #[test]
    fn jsonl_errors_name_file_and_line() {
        let e = parse_jsonl::<GapRecord>("gaps.jsonl", "\n{\"stream\":\"kmsg\"}\n").unwrap_err();
        assert_eq!(e.file, "gaps.jsonl");
        assert_eq!(e.line, 2);
        assert!(e.what.contains("missing field"), "{e}");
    }
}
