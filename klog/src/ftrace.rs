//! ftrace records (`trace` / `trace_pipe`) and what the lab counts in them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{excerpt, parse_f64, ParseError};

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

/// A traced work function name and its module: ftrace prints a function
/// that lives in a module as `NAME [MODULE]` (`sdio_rx_work [bes2600]`).
pub fn split_module(traced: &str) -> (&str, Option<&str>) {
    match traced
        .trim_end()
        .strip_suffix(']')
        .and_then(|r| r.rsplit_once(" ["))
    {
        Some((name, module)) if !module.is_empty() && !module.contains(' ') => {
            (name.trim_end(), Some(module))
        }
        _ => (traced.trim(), None),
    }
}

/// Does the traced name `traced` (maybe with ` [MODULE]`) name the work
/// function `wanted` (with or without its module)? A name without a module
/// matches the function in any module; a name with one, only that module.
pub fn work_fn_matches(traced: &str, wanted: &str) -> bool {
    let (tn, tm) = split_module(traced);
    match split_module(wanted) {
        (wn, None) => tn == wn,
        (wn, Some(wm)) => tn == wn && tm == Some(wm),
    }
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
    /// filtered to the driver's threads)).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wakeups: BTreeMap<String, u64>,
    /// Records that could not be read (the capture's strict parser's verdicts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_lines: Vec<ParseError>,
}

/// Reads the `trace` file with the capture's strict record parser
/// ([`parse_trace`]): a malformed record is a [`ParseError`] naming
/// `file` and the line, never silently skipped.
pub fn count_trace(file: &str, text: &str) -> TraceCounts {
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
    let stream = parse_trace(file, text);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_functions_match_with_and_without_their_module() {
        assert_eq!(
            split_module("sdio_rx_work [bes2600]"),
            ("sdio_rx_work", Some("bes2600"))
        );
        assert_eq!(split_module("vmstat_update"), ("vmstat_update", None));
        assert!(work_fn_matches("sdio_rx_work [bes2600]", "sdio_rx_work"));
        assert!(work_fn_matches(
            "sdio_rx_work [bes2600]",
            "sdio_rx_work [bes2600]"
        ));
        assert!(!work_fn_matches(
            "sdio_rx_work [other]",
            "sdio_rx_work [bes2600]"
        ));
        assert!(work_fn_matches("sdio_rx_work", "sdio_rx_work"));
        assert!(!work_fn_matches("sdio_rx_work", "sdio_rx_work [bes2600]"));
        assert!(!work_fn_matches(
            "sdio_rx_work_more [bes2600]",
            "sdio_rx_work"
        ));
    }

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

    /// The bh kthread's wake-ups, as 6.12's `sched_wakeup` prints them.
    #[test]
    fn sched_wakeups_are_counted_per_task() {
        let trace = "# tracer: nop\n\
            <idle>-0 [000] d.h2. 10.000001: sched_wakeup: comm=bes2600_bh pid=95 prio=120 target_cpu=000\n\
            kworker/0:1-12 [000] d..2. 10.000002: sched_wakeup: comm=bes2600_bh pid=95 prio=120 target_cpu=000\n\
            kworker/0:1-12 [000] d..2. 10.000003: sched_wakeup: pid=95\n";
        let t = count_trace("trace.txt", trace);
        assert_eq!(t.wakeups.get("bes2600_bh"), Some(&2));
        assert_eq!(t.events, 0, "not workqueue events");
        assert_eq!(t.bad_lines.len(), 1);
        assert_eq!(t.bad_lines[0].line, 4);
    }
}
