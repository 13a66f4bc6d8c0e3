//! The raw data of a capture run, as the device (and the host) produced it, and
//! the parsers that read it back.
//!
//! Every stream is saved to the run directory exactly as it arrived; parsing
//! happens only here, at analysis time. A device line that does not parse is
//! never fatal: it becomes a [`ParseError`] (file, line, what) that the report
//! lists, and the rest of the stream is still used. Files the host writes itself
//! (`run.json`, `probes.jsonl`, `gaps.jsonl`, `arm.json`) are strict: a bad one
//! is an error naming the file and line.

use serde::{Deserialize, Serialize};

/// The kernel's own streams (ftrace, kernel log) and the error every device
/// line that does not read becomes are read by `besser-klog`, as the ramp's
/// and the boot test's are.
pub use besser_klog::dmesg::{parse_kmsg, KmsgLine, KmsgStream};
pub use besser_klog::ftrace::{parse_trace, TraceEvent, TraceLoss, TraceStream};
pub use besser_klog::ParseError;
use besser_klog::{excerpt, parse_f64};

/// The prefix of every marker line the capture writes into the kernel log
/// (`echo "besser-capture: probe 3 start" > /dev/kmsg`).
pub const MARKER_PREFIX: &str = "besser-capture:";

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
