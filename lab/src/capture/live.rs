//! The live capture: drives a device through the lab's shared transport,
//! fresh-boot, listener and sender code (behind the small [`DeviceLink`] and
//! [`Prober`] seams, so the loop itself is tested against a scripted device),
//! saves every stream raw as it arrives, runs the probes on schedule and writes
//! the report at the end.
//!
//! Time: device uptime is estimated from the host's monotonic clock and one
//! `/proc/uptime` read taken at the start (`uptime = host_now + offset`); probes
//! record the uptimes the device itself reports around them.

use crate::clock::Clock;
use crate::device::commands::{enable_events_cmd, validate_event};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::raw::{self, ArmRecord, GapRecord, ProbeOutcome, ProbeRecord, MARKER_PREFIX};
use super::{layout, CaptureConfig, RunInfo};
use crate::device::commands::tracefs;
use besser_klog::dmesg::parse_uptime;
use besser_klog::scan::is_scan_failure;

/// Timeout of one short remote command (marker, counter read, uptime).
pub const EXEC_TIMEOUT_S: u64 = 15;
/// A probe's listener is started this long before the probe's uptime, so the
/// push itself starts on time.
pub const PROBE_LEAD_S: f64 = 5.0;
/// Streams are polled this often while nothing else happens.
pub const POLL_INTERVAL_S: f64 = 0.2;
/// Give up re-establishing a lost connection after this long without success
/// (the capture then ends early, keeping everything recorded).
pub const RECONNECT_GIVE_UP_S: f64 = 300.0;
/// Wait between reconnect attempts.
pub const RECONNECT_BACKOFF_S: f64 = 2.0;
/// No byte from any stream for this long (and at least three counter periods):
/// check the connection with a short command.
pub const SILENCE_CHECK_MIN_S: f64 = 15.0;
/// Timeout of that check.
pub const LIVENESS_TIMEOUT_S: u64 = 5;

/// What the capture needs from the transport (the lab's one SSH session).
pub trait DeviceLink {
    type Stream;
    /// Runs `cmd` through the remote shell; a non-zero exit is an error.
    fn exec(&mut self, cmd: &str, timeout: Duration) -> Result<String>;
    /// Starts a long-running command on a channel of the same connection.
    fn open_stream(&mut self, cmd: &str) -> Result<Self::Stream>;
    /// Appends what the stream produced so far, without blocking. An error
    /// means the connection is gone.
    fn poll_stream(&mut self, s: &mut Self::Stream, out: &mut Vec<u8>) -> Result<usize>;
    /// The remote command ended.
    fn stream_ended(&self, s: &Self::Stream) -> bool;
    fn close_stream(&mut self, s: Self::Stream);
    /// Drops the connection and opens a new one to the same device.
    fn reconnect(&mut self) -> Result<()>;
}

/// How one push ended, as the sender saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct PushResult {
    pub bytes_sent: u64,
    /// Seconds the sender pushed.
    pub elapsed_s: f64,
    /// The data link stopped taking bytes (the sender gave up early).
    pub stalled: bool,
}

/// One probe's traffic: the lab's fresh listener on the device and its
/// rate-capped sender on the host.
pub trait Prober<L: DeviceLink> {
    /// Starts a fresh listener for this probe and verifies it listens.
    fn start_listener(&mut self, link: &mut L, index: u32) -> Result<()>;
    /// Starts pushing `len_s` seconds at `rate_bytes_per_s` in the background.
    fn start_push(&mut self, len_s: f64, rate_bytes_per_s: u64) -> Result<()>;
    /// `Some` once the push has ended (without blocking).
    fn poll_push(&mut self) -> Option<Result<PushResult>>;
    /// Stops the listener and returns the bytes it received.
    fn finish_listener(&mut self, link: &mut L) -> Result<u64>;
}

/// What the progress display shows, refreshed every poll.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Progress {
    pub uptime_s: f64,
    pub duration_s: f64,
    /// `(index, scheduled uptime)` of the next probe, if any.
    pub next_probe: Option<(u32, f64)>,
    /// A probe is pushing now.
    pub probing: Option<u32>,
    pub trace_records: u64,
    pub kmsg_lines: u64,
    /// Scan-failure events so far (the two lines of one attempt are one:
    /// [`besser_klog::scan`]'s rule, by adjacency as the lines arrive).
    pub scan_failures: u64,
    /// The last kernel-log line was a scan-failure line.
    pub in_scan_failure: bool,
    pub iw_events: u64,
    pub snapshots: u64,
    pub gaps: usize,
}

/// Streams of a capture: name (as in `gaps.jsonl`), file, command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Trace,
    Kmsg,
    Iw,
    Counters,
}

impl StreamKind {
    pub fn name(self) -> &'static str {
        match self {
            StreamKind::Trace => "trace",
            StreamKind::Kmsg => "kmsg",
            StreamKind::Iw => "iw",
            StreamKind::Counters => "counters",
        }
    }
    pub fn file(self) -> &'static str {
        match self {
            StreamKind::Trace => layout::TRACE,
            StreamKind::Kmsg => layout::KMSG,
            StreamKind::Iw => layout::IW,
            StreamKind::Counters => layout::COUNTERS,
        }
    }
}

/// Stops the stream processes of an earlier session (after a reconnect the
/// old `cat trace_pipe` may still hold the pipe, which takes one reader only).
pub const KILL_STALE_STREAMS: &str = "for f in /run/besser/capture-*.pid; do \
     [ -e \"$f\" ] && kill $(cat \"$f\") 2>/dev/null; rm -f \"$f\"; done; true";

/// The device command of each stream; each records its pid for [`KILL_STALE_STREAMS`].
pub fn stream_command(kind: StreamKind, iface: &str, snap_every_s: f64) -> String {
    format!(
        "mkdir -p /run/besser; echo $$ > /run/besser/capture-{}.pid; {}",
        kind.name(),
        stream_body(kind, iface, snap_every_s)
    )
}

fn stream_body(kind: StreamKind, iface: &str, snap_every_s: f64) -> String {
    match kind {
        StreamKind::Trace => format!("{}; exec cat $T/trace_pipe", tracefs()),
        // /dev/kmsg: the whole buffer since boot, then follows; records carry
        // sequence numbers, so a re-opened stream's replay is recognised.
        StreamKind::Kmsg => "exec cat /dev/kmsg".into(),
        StreamKind::Iw => "exec iw event -t".into(),
        StreamKind::Counters => format!(
            "while :; do {}; sleep {snap_every_s}; done",
            raw::counter_snapshot_command(iface)
        ),
    }
}

/// The arming script: enables each requested ftrace event that exists, and
/// prints `enabled E` / `missing E`, then `iw yes|no` and `uptime U`.
pub fn arm_command(events: &[String]) -> String {
    let mut s = format!("{}; echo 0 > $T/tracing_on; echo > $T/trace; ", tracefs());
    s += &enable_events_cmd(events);
    s += "echo 1 > $T/tracing_on; \
          if command -v iw >/dev/null 2>&1; then echo 'iw yes'; else echo 'iw no'; fi; \
          read up _ < /proc/uptime; echo \"uptime $up\"";
    s
}

/// Reads the arming script's output.
pub fn parse_arm_output(out: &str) -> Result<ArmRecord> {
    let mut arm = ArmRecord::default();
    let mut up = None;
    for l in out.lines() {
        match l.split_once(' ') {
            Some(("enabled", e)) => arm.enabled_events.push(e.to_string()),
            Some(("missing", e)) => arm.missing_events.push(e.to_string()),
            Some(("iw", v)) => arm.iw_available = v == "yes",
            Some(("uptime", v)) => up = v.trim().parse::<f64>().ok(),
            _ => {}
        }
    }
    arm.armed_uptime_s =
        up.with_context(|| format!("arming printed no uptime; output was {out:?}"))?;
    Ok(arm)
}

/// Uptimes in records are kept to the millisecond (the clocks are not better).
fn ms(t: f64) -> f64 {
    (t * 1000.0).round() / 1000.0
}

/// First field of `/proc/uptime`, or an error quoting what came instead.
fn uptime_of(out: &str) -> Result<f64> {
    parse_uptime(out).with_context(|| format!("expected /proc/uptime, got {out:?}"))
}

struct Recorder<S> {
    kind: StreamKind,
    cmd: String,
    file: File,
    stream: Option<S>,
    buf: Vec<u8>,
    lines: u64,
}

fn append_line(path: &Path, line: &str) -> Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{line}").with_context(|| format!("writing {}", path.display()))?;
    f.sync_data().ok();
    Ok(())
}

/// Everything `run` needs besides the device.
pub struct CaptureParams {
    pub run: RunInfo,
    /// Counter snapshot period on the device (30 s in the maintainers' rig).
    pub snap_every_s: f64,
}

/// Creates the run directory's skeleton and writes `run.json` (before any
/// device command, so an unwritable directory fails first).
pub fn create_run_dir(dir: &Path, run: &RunInfo) -> Result<()> {
    fs::create_dir_all(dir.join("streams"))
        .with_context(|| format!("creating run directory {}", dir.display()))?;
    let json = serde_json::to_string_pretty(run)? + "\n";
    fs::write(dir.join(layout::RUN_JSON), json)
        .with_context(|| format!("writing {}", dir.join(layout::RUN_JSON).display()))?;
    Ok(())
}

struct Session<'a, L: DeviceLink, C: Clock> {
    dir: PathBuf,
    link: &'a mut L,
    clock: &'a mut C,
    /// device uptime = host clock + offset
    offset_s: f64,
    recorders: Vec<Recorder<L::Stream>>,
    gaps: Vec<GapRecord>,
    progress: Progress,
    /// Uptime when the link was lost, while it is.
    lost_since: Option<(f64, String)>,
    /// Host time any stream last delivered bytes.
    last_heard_s: f64,
    silence_check_s: f64,
    /// Injections still to run, earliest first.
    injections: Vec<super::Injection>,
}

impl<L: DeviceLink, C: Clock> Session<'_, L, C> {
    fn uptime(&self) -> f64 {
        ms(self.clock.now_s() + self.offset_s)
    }

    fn open_all(&mut self) -> Result<()> {
        for r in &mut self.recorders {
            if r.stream.is_none() {
                r.stream = Some(self.link.open_stream(&r.cmd)?);
            }
        }
        Ok(())
    }

    /// Polls every stream once and saves what arrived. On a lost connection,
    /// records the gap, reconnects and re-opens the streams.
    fn pump(&mut self) -> Result<()> {
        let mut lost: Option<String> = None;
        for r in &mut self.recorders {
            let Some(s) = r.stream.as_mut() else { continue };
            let before = r.buf.len();
            match self.link.poll_stream(s, &mut r.buf) {
                Ok(_) => {}
                Err(e) => {
                    lost = Some(format!("{}: {e:#}", r.kind.name()));
                }
            }
            if r.buf.len() > before {
                self.last_heard_s = self.clock.now_s();
                // save complete lines as they arrive; keep a partial tail
                if let Some(end) = r.buf.iter().rposition(|&b| b == b'\n') {
                    let chunk: Vec<u8> = r.buf.drain(..=end).collect();
                    r.file
                        .write_all(&chunk)
                        .and_then(|_| r.file.flush())
                        .with_context(|| format!("saving {}", r.kind.file()))?;
                    count_lines(&mut self.progress, r.kind, &chunk);
                    r.lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
                }
            }
            if lost.is_some() {
                break;
            }
            if self
                .link
                .stream_ended(r.stream.as_ref().expect("polled above"))
            {
                // the remote command died while the connection lives: restart it
                let up = ms(self.clock.now_s() + self.offset_s);
                if let Some(s) = r.stream.take() {
                    self.link.close_stream(s);
                }
                self.gaps.push(GapRecord {
                    stream: r.kind.name().into(),
                    from_uptime_s: up,
                    to_uptime_s: Some(up),
                    reason: format!("`{}` ended; restarted", r.cmd),
                });
                match self.link.open_stream(&r.cmd) {
                    Ok(s) => r.stream = Some(s),
                    Err(e) => {
                        lost = Some(format!("{}: restarting: {e:#}", r.kind.name()));
                        break;
                    }
                }
            }
        }
        if lost.is_none() && self.clock.now_s() - self.last_heard_s > self.silence_check_s {
            // A dead TCP connection reads as "nothing yet" forever: ask.
            match self
                .link
                .exec("true", Duration::from_secs(LIVENESS_TIMEOUT_S))
            {
                Ok(_) => self.last_heard_s = self.clock.now_s(),
                Err(e) => lost = Some(format!("no stream data and no answer: {e:#}")),
            }
        }
        if let Some(reason) = lost {
            self.on_lost(reason)?;
            self.last_heard_s = self.clock.now_s();
        }
        Ok(())
    }

    /// The connection is gone: reconnect (bounded), re-open the streams,
    /// record the gap. Errors only when the device stays unreachable.
    fn on_lost(&mut self, reason: String) -> Result<()> {
        let from = self.uptime();
        self.lost_since.get_or_insert((from, reason.clone()));
        for r in &mut self.recorders {
            // the channel belongs to the dead session; dropping it is enough
            r.stream = None;
            if !r.buf.is_empty() {
                // a line cut by the drop: keep it, it is what arrived
                r.buf.push(b'\n');
                let chunk = std::mem::take(&mut r.buf);
                r.file.write_all(&chunk).ok();
            }
        }
        let t0 = self.clock.now_s();
        loop {
            let attempt = self
                .link
                .reconnect()
                .and_then(|_| {
                    self.link
                        .exec(KILL_STALE_STREAMS, Duration::from_secs(EXEC_TIMEOUT_S))
                })
                .and_then(|_| self.open_all());
            match attempt {
                Ok(()) => break,
                Err(e) => {
                    if self.clock.now_s() - t0 > RECONNECT_GIVE_UP_S {
                        let (from, why) = self.lost_since.take().expect("set above");
                        self.gaps.push(GapRecord {
                            stream: "all".into(),
                            from_uptime_s: from,
                            to_uptime_s: None,
                            reason: format!(
                                "{why}; reconnect failed for {RECONNECT_GIVE_UP_S:.0} s: {e:#}"
                            ),
                        });
                        self.save_gaps()?;
                        bail!(
                            "lost the device at uptime ~{from:.1} s and could not reconnect: {e:#}"
                        );
                    }
                    self.clock.sleep_s(RECONNECT_BACKOFF_S);
                }
            }
        }
        let (from, why) = self.lost_since.take().expect("set above");
        let to = self.uptime();
        self.gaps.push(GapRecord {
            stream: "all".into(),
            from_uptime_s: from,
            to_uptime_s: Some(to),
            reason: format!("connection lost ({why}); reconnected"),
        });
        self.progress.gaps = self.gaps.len();
        self.save_gaps()
    }

    fn save_gaps(&self) -> Result<()> {
        let mut s = String::new();
        for g in &self.gaps {
            s += &serde_json::to_string(g)?;
            s.push('\n');
        }
        fs::write(self.dir.join(layout::GAPS), s).context("writing gaps.jsonl")
    }

    /// Runs a short command, riding out one connection loss.
    fn exec(&mut self, cmd: &str) -> Result<String> {
        match self.link.exec(cmd, Duration::from_secs(EXEC_TIMEOUT_S)) {
            Ok(o) => Ok(o),
            Err(e) => {
                self.on_lost(format!("`{cmd}`: {e:#}"))?;
                self.link.exec(cmd, Duration::from_secs(EXEC_TIMEOUT_S))
            }
        }
    }

    /// Runs the injections whose uptime has come (also in the middle of a probe).
    fn run_due_injections(&mut self) -> Result<()> {
        while self
            .injections
            .first()
            .is_some_and(|i| self.uptime() >= i.at_uptime_s)
        {
            let inj = self.injections.remove(0);
            self.exec(&inj.cmd)
                .with_context(|| format!("injected command `{}` failed", inj.cmd))?;
        }
        Ok(())
    }

    fn marker(&mut self, text: &str) -> Result<()> {
        self.exec(&format!("echo '{MARKER_PREFIX} {text}' > /dev/kmsg"))
            .map(|_| ())
    }

    /// Device uptime and `rx_bytes` of `iface` from one command (the
    /// estimate and `None` if the device does not answer).
    fn uptime_and_rx(&mut self, iface: &str) -> (f64, Option<u64>) {
        let cmd = format!("cat /proc/uptime /sys/class/net/{iface}/statistics/rx_bytes");
        match self.exec(&cmd) {
            Ok(out) => {
                let mut l = out.lines();
                let up = l.next().and_then(parse_uptime);
                let rx = l.next().and_then(|r| r.trim().parse().ok());
                (up.unwrap_or_else(|| self.uptime()), rx)
            }
            Err(_) => (self.uptime(), None),
        }
    }
}

fn count_lines(p: &mut Progress, kind: StreamKind, chunk: &[u8]) {
    let text = String::from_utf8_lossy(chunk);
    for l in text.lines() {
        match kind {
            StreamKind::Trace => p.trace_records += 1,
            StreamKind::Kmsg => {
                p.kmsg_lines += 1;
                let failed = is_scan_failure(l);
                if failed && !p.in_scan_failure {
                    p.scan_failures += 1;
                }
                p.in_scan_failure = failed;
            }
            StreamKind::Iw => p.iw_events += 1,
            StreamKind::Counters => p.snapshots += 1,
        }
    }
}

/// Runs a capture on a freshly booted device (the caller did the fresh boot:
/// T0 = boot). `dir` must have been made by [`create_run_dir`]. Writes the
/// streams, `arm.json`, `probes.jsonl`, `gaps.jsonl` as they happen, then the
/// report. `on_progress` is called after every poll.
pub fn run<L: DeviceLink, P: Prober<L>, C: Clock>(
    dir: &Path,
    params: &CaptureParams,
    link: &mut L,
    prober: &mut P,
    clock: &mut C,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<super::analysis::Analysis> {
    let cfg: &CaptureConfig = &params.run.config;
    for e in &cfg.events {
        validate_event(e)?;
    }
    if let Err(e) = crate::device::inventory::check_interface(&cfg.data_iface) {
        bail!("data interface: {e}");
    }
    let h0 = clock.now_s();
    let up0 = uptime_of(&link.exec("cat /proc/uptime", Duration::from_secs(EXEC_TIMEOUT_S))?)?;
    let h1 = clock.now_s();
    let offset_s = up0 - (h0 + h1) / 2.0;

    let arm = parse_arm_output(&link.exec(
        &arm_command(&cfg.events),
        Duration::from_secs(EXEC_TIMEOUT_S),
    )?)?;
    fs::write(
        dir.join(layout::ARM_JSON),
        serde_json::to_string_pretty(&arm)? + "\n",
    )
    .context("writing arm.json")?;

    let mut kinds = vec![StreamKind::Kmsg, StreamKind::Trace, StreamKind::Counters];
    if arm.iw_available {
        kinds.push(StreamKind::Iw);
    }
    let mut recorders = Vec::new();
    for kind in kinds {
        let path = dir.join(kind.file());
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        recorders.push(Recorder {
            kind,
            cmd: stream_command(kind, &cfg.data_iface, params.snap_every_s),
            file,
            stream: None,
            buf: Vec::new(),
            lines: 0,
        });
    }
    let mut s = Session {
        dir: dir.to_path_buf(),
        link,
        clock,
        offset_s,
        recorders,
        gaps: Vec::new(),
        progress: Progress {
            duration_s: cfg.duration_s,
            ..Progress::default()
        },
        lost_since: None,
        last_heard_s: h1,
        silence_check_s: (3.0 * params.snap_every_s).max(SILENCE_CHECK_MIN_S),
        injections: {
            let mut v = cfg.injections.clone();
            v.sort_by(|a, b| a.at_uptime_s.total_cmp(&b.at_uptime_s));
            v
        },
    };
    s.exec(KILL_STALE_STREAMS)?;
    s.open_all()?;
    s.marker("armed")?;

    let mut schedule: Vec<(u32, f64)> = cfg
        .probes_s
        .iter()
        .enumerate()
        .map(|(i, &t)| (i as u32 + 1, t))
        .collect();
    schedule.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut next = 0;
    let probes_path = dir.join(layout::PROBES);
    loop {
        s.pump()?;
        let up = s.uptime();
        s.progress.uptime_s = up;
        s.progress.next_probe = schedule.get(next).copied();
        s.progress.probing = None;
        on_progress(&s.progress);
        if up >= cfg.duration_s {
            break;
        }
        s.run_due_injections()?;
        if let Some(&(index, at)) = schedule.get(next) {
            if up >= at - PROBE_LEAD_S {
                next += 1;
                let rec = probe(&mut s, prober, index, at, cfg, on_progress)?;
                append_line(&probes_path, &serde_json::to_string(&rec)?)?;
                continue;
            }
        }
        let wake = schedule
            .get(next)
            .map(|&(_, at)| at - PROBE_LEAD_S)
            .unwrap_or(cfg.duration_s)
            .min(cfg.duration_s)
            .min(
                s.injections
                    .first()
                    .map(|i| i.at_uptime_s)
                    .unwrap_or(f64::INFINITY),
            );
        s.clock.sleep_s((wake - up).clamp(0.0, POLL_INTERVAL_S));
    }
    s.marker("end")?;
    // drain what the streams still hold, briefly
    for _ in 0..5 {
        s.pump()?;
        s.clock.sleep_s(POLL_INTERVAL_S);
    }
    s.save_gaps()?;
    for r in &mut s.recorders {
        if let Some(st) = r.stream.take() {
            s.link.close_stream(st);
        }
        if !r.buf.is_empty() {
            r.buf.push(b'\n');
            r.file.write_all(&r.buf).ok();
        }
    }
    // stop the streams and tracing, so nothing keeps running after we leave
    let _ = s.exec(&format!(
        "{KILL_STALE_STREAMS}; {}; echo 0 > $T/tracing_on",
        tracefs()
    ));
    super::remake_report(dir)
}

fn probe<L: DeviceLink, P: Prober<L>, C: Clock>(
    s: &mut Session<'_, L, C>,
    prober: &mut P,
    index: u32,
    scheduled: f64,
    cfg: &CaptureConfig,
    on_progress: &mut dyn FnMut(&Progress),
) -> Result<ProbeRecord> {
    let mut rec = ProbeRecord {
        index,
        scheduled_uptime_s: scheduled,
        start_uptime_s: s.uptime(),
        end_uptime_s: s.uptime(),
        elapsed_s: 0.0,
        bytes_sent: 0,
        bytes_received: 0,
        rx_bytes_before: None,
        rx_bytes_after: None,
        outcome: ProbeOutcome::Failed,
        note: None,
    };
    if let Err(e) = prober.start_listener(s.link, index) {
        rec.note = Some(format!("listener did not start: {e:#}"));
        return Ok(rec);
    }
    s.marker(&format!("probe {index} start"))?;
    // keep recording until the scheduled uptime
    while s.uptime() < scheduled {
        s.pump()?;
        s.run_due_injections()?;
        s.progress.uptime_s = s.uptime();
        s.progress.probing = Some(index);
        on_progress(&s.progress);
        s.clock
            .sleep_s((scheduled - s.uptime()).clamp(0.0, POLL_INTERVAL_S));
    }
    // uptime and rx_bytes in one round trip, right before the push
    let (up, rx) = s.uptime_and_rx(&cfg.data_iface);
    rec.start_uptime_s = up;
    rec.rx_bytes_before = rx;
    if let Err(e) = prober.start_push(cfg.probe_len_s, cfg.rate_bytes_per_s) {
        rec.note = Some(format!("sender did not start: {e:#}"));
        let _ = prober.finish_listener(s.link);
        s.marker(&format!("probe {index} end"))?;
        return Ok(rec);
    }
    let push = loop {
        s.pump()?;
        s.run_due_injections()?;
        s.progress.uptime_s = s.uptime();
        s.progress.probing = Some(index);
        on_progress(&s.progress);
        if let Some(r) = prober.poll_push() {
            break r;
        }
        s.clock.sleep_s(POLL_INTERVAL_S);
    };
    let (up, rx) = s.uptime_and_rx(&cfg.data_iface);
    rec.end_uptime_s = up;
    rec.rx_bytes_after = rx;
    s.marker(&format!("probe {index} end"))?;
    let received = prober.finish_listener(s.link).or_else(|e| {
        // one retry after a reconnect: the listener's count is on the device
        s.on_lost(format!("reading the listener: {e:#}"))?;
        prober.finish_listener(s.link)
    });
    match (push, received) {
        (Ok(p), Ok(n)) => {
            rec.bytes_sent = p.bytes_sent;
            rec.elapsed_s = p.elapsed_s;
            rec.bytes_received = n;
            rec.outcome = if p.stalled {
                rec.note =
                    Some("the data link stopped taking bytes; the sender gave up early".into());
                ProbeOutcome::Wedged
            } else {
                ProbeOutcome::Ok
            };
        }
        (Err(e), Ok(n)) => {
            rec.bytes_received = n;
            rec.note = Some(format!("sender failed: {e:#}"));
        }
        (Ok(p), Err(e)) => {
            rec.bytes_sent = p.bytes_sent;
            rec.elapsed_s = p.elapsed_s;
            rec.note = Some(format!("listener count lost: {e:#}"));
        }
        (Err(e1), Err(e2)) => {
            rec.note = Some(format!(
                "sender failed: {e1:#}; listener count lost: {e2:#}"
            ));
        }
    }
    Ok(rec)
}

/// The lab's one transport is the capture's link.
impl DeviceLink for crate::device::transport::Transport {
    type Stream = crate::device::transport::Stream;
    fn exec(&mut self, cmd: &str, timeout: Duration) -> Result<String> {
        Ok(self.exec_ok(cmd, timeout)?)
    }
    fn open_stream(&mut self, cmd: &str) -> Result<Self::Stream> {
        Ok(self.stream(cmd)?)
    }
    fn poll_stream(&mut self, s: &mut Self::Stream, out: &mut Vec<u8>) -> Result<usize> {
        Ok(crate::device::transport::Transport::poll_stream(
            self, s, out,
        )?)
    }
    fn stream_ended(&self, s: &Self::Stream) -> bool {
        s.eof
    }
    fn close_stream(&mut self, s: Self::Stream) {
        crate::device::transport::Transport::close_stream(self, s)
    }
    fn reconnect(&mut self) -> Result<()> {
        Ok(crate::device::transport::Transport::reconnect(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arming_output_is_read_back() {
        let arm = parse_arm_output(
            "enabled workqueue/workqueue_execute_start\nmissing mac80211/drv_hw_scan\niw no\nuptime 6.04\n",
        )
        .unwrap();
        assert_eq!(arm.enabled_events, ["workqueue/workqueue_execute_start"]);
        assert_eq!(arm.missing_events, ["mac80211/drv_hw_scan"]);
        assert!(!arm.iw_available);
        assert_eq!(arm.armed_uptime_s, 6.04);
        let e = parse_arm_output("sh: can't create /sys/kernel/tracing/trace: nonexistent\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("arming printed no uptime"), "{e}");
    }

    #[test]
    fn event_names_cannot_smuggle_shell() {
        validate_event("mmc/mmc_request_start").unwrap();
        for bad in [
            "mmc",
            "mmc/",
            "/x",
            "a/b/c",
            "a/b;reboot",
            "a/$(x)",
            "a b/c",
        ] {
            assert!(validate_event(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn streams_record_their_pid_for_the_stale_killer() {
        for k in [
            StreamKind::Trace,
            StreamKind::Kmsg,
            StreamKind::Iw,
            StreamKind::Counters,
        ] {
            let c = stream_command(k, "wlan0", 30.0);
            assert!(
                c.starts_with(&format!(
                    "mkdir -p /run/besser; echo $$ > /run/besser/capture-{}.pid; ",
                    k.name()
                )),
                "{c}"
            );
        }
        assert!(stream_command(StreamKind::Counters, "wlan0", 5.0).ends_with("sleep 5; done"));
    }
}
