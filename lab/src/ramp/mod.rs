//! The stress ramp: N reps, each on a fresh boot, over the wired link.
//!
//! One rep, in order: fresh boot (new boot_id) → arm telemetry (ftrace
//! events, kernel-log marker, netdev counters) → fresh listener, verified
//! listening → rate-capped traffic from the host while the device is polled
//! over the wired link (wedge detection) → collect (counters, listener's
//! count, trace, kernel log, uptime) → raw files → analysis → `rep-N.json`,
//! written atomically. A ramp stopped half-way keeps its finished reps;
//! [`resume`] runs the missing ones.

pub mod analysis;
pub mod command;
pub mod live;
pub mod raw;
pub mod report;

pub use raw::*;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};

use crate::device::boot::{fresh_boot, FreshBootError};
use crate::device::commands::{
    enabled_events, event_path, rep_collect_cmd, rep_start_cmd, split_sections, RepStart,
    LISTENING_CHECK_CMD, REP_COLLECT_FILES, REP_START_SECTIONS, SECTION_TAG,
};
use crate::device::inventory::Device;
use crate::device::sender::{self, SendParams, SendRecord};
use crate::device::transport::{Transport, TransportError};
use crate::rundir::{self, write_atomic};
use analysis::RepAnalysis;

/// ftrace events armed by default (the maintainers' instrumentation), as
/// `system/event` like the capture's; run directories of older ramps may
/// spell them `system:event` ([`event_path`] reads both).
pub const DEFAULT_EVENTS: &[&str] = &["workqueue/workqueue_execute_start", "sched/sched_wakeup"];

/// No bytes for this long while sending = the data link is wedged.
pub const STALL_TIMEOUT_S_DEFAULT: f64 = 10.0;
/// Nap of the monitor loop between checks of the sender.
pub const MONITOR_NAP_MS: u64 = 10;
/// Poll period of the device during the stress window.
pub const MONITOR_INTERVAL_S: f64 = 1.0;
/// ftrace ring buffer per CPU.
pub const TRACE_BUFFER_KB: u32 = 16384;
/// How long the rep's listener may take to start listening.
pub const LISTEN_TIMEOUT_S: u64 = 10;
/// How long the listener may take to report its count after the sender closed.
pub const LISTENER_DRAIN_S: u64 = 10;
/// Timeout of an ordinary remote command.
pub const CMD_TIMEOUT_S: u64 = 30;
/// Timeout of the big collection commands (trace, dmesg).
pub const COLLECT_TIMEOUT_S: u64 = 120;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RampConfig {
    pub label: String,
    pub reps: u32,
    pub rate_bytes_per_s: f64,
    pub duration_s: f64,
    /// Fresh boot before every rep (false: `--no-reboot`).
    pub reboot: bool,
    pub events: Vec<String>,
    /// Work functions whose dispatch counts get report columns (empty: the
    /// three most dispatched).
    pub work_fns: Vec<String>,
    pub stall_timeout_s: f64,
    /// Stop the ramp at the first wedged rep (default: go on).
    pub stop_on_wedge: bool,
    pub trace_buffer_kb: u32,
    /// A baseline run directory compared in the report.
    pub baseline: Option<PathBuf>,
    /// More baselines, compared after the first (the maintainers compare a
    /// candidate against e.g. Patch B and the Bug #5 floor in one note).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_baselines: Vec<PathBuf>,
    /// Fault injection for tests: a device command run right after the
    /// listener is up (recorded, and shown in the report).
    pub fault_cmd: Option<String>,
    /// The image the device ran (`lab ramp --device NAME --image DIR`
    /// flashes it first when the device runs another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<RampImage>,
}

/// An image a ramp ran on: where it was built and its manifest's sha256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RampImage {
    pub dir: PathBuf,
    pub name: String,
    pub manifest_sha256: String,
    pub kernel_release: String,
}

impl RampConfig {
    pub fn new(label: &str) -> Self {
        RampConfig {
            label: label.into(),
            reps: 3,
            rate_bytes_per_s: 4.0 * crate::units::MIB,
            duration_s: 180.0,
            reboot: true,
            events: DEFAULT_EVENTS.iter().map(|s| s.to_string()).collect(),
            work_fns: Vec::new(),
            stall_timeout_s: STALL_TIMEOUT_S_DEFAULT,
            stop_on_wedge: false,
            trace_buffer_kb: TRACE_BUFFER_KB,
            baseline: None,
            more_baselines: Vec::new(),
            fault_cmd: None,
            image: None,
        }
    }
}

/// `user@host:port` of an SSH endpoint, as [`RepMeta::collect_over`] records it.
pub fn ssh_endpoint_name(ep: &crate::device::inventory::SshEndpoint) -> String {
    format!("{}@{}:{}", ep.user, ep.host, ep.port)
}

/// Errors the caller may want to tell apart.
#[derive(Debug, thiserror::Error)]
pub enum RampError {
    #[error(
        "device {device} did not come back within {timeout_s} s after the reboot for rep {rep} \
         (last probe: {last}). Reps finished so far are kept in {run_dir}; resume with \
         `cargo xtask lab ramp --resume {run_dir}` once the device is back"
    )]
    DeviceLost {
        device: String,
        rep: u32,
        timeout_s: u64,
        last: String,
        run_dir: String,
    },
    #[error(
        "refusing rep {rep}: uptime {uptime_s:.0} s is outside the fresh-chip window \
         (max {max_s:.0} s); reboot the device or drop --no-reboot"
    )]
    OutsideWindow { rep: u32, uptime_s: f64, max_s: f64 },
    #[error(
        "interrupted during rep {rep}: the reps finished before it and their report are kept in \
         {run_dir} (rep {rep}'s partial data is set aside on resume); resume with \
         `cargo xtask lab ramp --resume {run_dir}`"
    )]
    Interrupted { rep: u32, run_dir: String },
    /// The device printed something the ramp cannot read. The raw output is
    /// already saved verbatim (`start.out`/`collect.out`) when this is returned.
    #[error("{file}{}: {what}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    DeviceOutput {
        file: String,
        line: Option<usize>,
        what: String,
    },
}

/// Saves a combined command's output verbatim as `rd/file` (before anything
/// reads it), then splits it into sections. A section of `required` that is
/// missing is a [`RampError::DeviceOutput`] naming the file and the section;
/// the raw text stays on disk either way.
pub fn save_and_split(
    rd: &Path,
    file: &str,
    out: &str,
    required: &[(&str, &str)],
) -> Result<std::collections::BTreeMap<String, String>> {
    let path = rd.join(file);
    write_atomic(&path, out.as_bytes())?;
    let sec = split_sections(out);
    for (name, expected) in required {
        if !sec.contains_key(*name) {
            return Err(RampError::DeviceOutput {
                file: path.display().to_string(),
                line: None,
                what: format!(
                    "no `{name}` section (expected a `{SECTION_TAG}{name}@@` line followed by {expected}); \
                     the output is kept there verbatim"
                ),
            }
            .into());
        }
    }
    Ok(sec)
}

/// Reads `boot.txt` (boot_id, then `/proc/uptime`): both or a
/// [`RampError::DeviceOutput`] naming the file, line and what was expected.
pub fn parse_boot(file: &str, boot: &str) -> std::result::Result<(String, f64), RampError> {
    let mut l = boot.lines();
    let bad = |line: usize, what: String| RampError::DeviceOutput {
        file: file.to_string(),
        line: Some(line),
        what,
    };
    let id = l.next().unwrap_or("").trim();
    if id.is_empty() || id.contains(char::is_whitespace) {
        return Err(bad(
            1,
            format!("expected the boot_id (/proc/sys/kernel/random/boot_id), found {id:?}"),
        ));
    }
    let up_line = l.next().unwrap_or("");
    let up = besser_klog::dmesg::parse_uptime(up_line)
        .filter(|u| u.is_finite() && *u >= 0.0)
        .ok_or_else(|| {
            bad(
                2,
                format!("could not read the uptime: expected /proc/uptime (`SECONDS IDLE`), found {up_line:?}"),
            )
        })?;
    Ok((id.to_string(), up))
}

/// What a rep's start found ([`Ramp::start_rep`]).
struct Started {
    marker: String,
    listening: bool,
    events_enabled: Vec<String>,
    events_missing: Vec<String>,
}

pub struct Ramp {
    pub dir: PathBuf,
    pub run: RunJson,
    transport: Option<Transport>,
    /// The device's boot_id as last seen on the current session (saves a
    /// round trip before the next reboot).
    boot_id: Option<String>,
    /// Set by the CLI's Ctrl-C handler: the rep in flight stops, the finished
    /// ones and their report stay.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Set (with the reason) when the run must not start another rep, e.g.
    /// its farm lease was lost: the rep in flight finishes and is kept.
    pub stop_before_next: Option<Arc<std::sync::Mutex<Option<String>>>>,
    /// The report `run_all` wrote.
    pub report: Option<crate::ramp::report::Report>,
}

impl Ramp {
    /// Starts a new ramp in an already-created run directory.
    pub fn start(dir: PathBuf, config: RampConfig, device: Device) -> Result<Ramp> {
        let run = RunJson {
            kind: "ramp".into(),
            created_unix_s: rundir::now_unix(),
            config,
            device,
            kernel_release: None,
        };
        let mut r = Ramp::new(dir, run);
        let rel = r.exec(
            "uname -r; cat /proc/sys/kernel/random/boot_id",
            CMD_TIMEOUT_S,
        )?;
        let mut l = rel.lines();
        r.run.kernel_release = l.next().map(|s| s.trim().to_string());
        r.boot_id = l
            .next()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        write_atomic(
            &r.dir.join("run.json"),
            serde_json::to_string_pretty(&r.run)?.as_bytes(),
        )?;
        Ok(r)
    }

    /// Re-opens a run directory to run its missing reps. `device` replaces
    /// the recorded one (a VM's ports change between boots).
    pub fn resume(dir: PathBuf, device: Device, reps: Option<u32>) -> Result<Ramp> {
        let mut run = load_run(&dir)?;
        run.device = device;
        if let Some(n) = reps {
            run.config.reps = n;
        }
        write_atomic(
            &dir.join("run.json"),
            serde_json::to_string_pretty(&run)?.as_bytes(),
        )?;
        Ok(Ramp::new(dir, run))
    }

    fn new(dir: PathBuf, run: RunJson) -> Ramp {
        Ramp {
            dir,
            run,
            transport: None,
            boot_id: None,
            interrupt: None,
            stop_before_next: None,
            report: None,
        }
    }

    fn transport(&mut self) -> Result<&mut Transport> {
        if self.transport.is_none() {
            // A new session may see a different boot: forget the cached id.
            self.boot_id = None;
            self.transport = Some(Transport::connect(&self.run.device.wired)?);
        }
        Ok(self.transport.as_mut().expect("just set"))
    }

    /// Commands run on the (single) SSH session so far.
    pub fn commands_run(&self) -> u64 {
        self.transport.as_ref().map(|t| t.commands_run).unwrap_or(0)
    }

    fn exec(&mut self, cmd: &str, timeout_s: u64) -> Result<String> {
        let t = self.transport()?;
        match t.exec_ok(cmd, Duration::from_secs(timeout_s)) {
            Ok(s) => Ok(s),
            Err(e @ (TransportError::Timeout { .. } | TransportError::Ssh { .. })) => {
                // One reconnect: the session may have died with the link.
                self.transport = None;
                let t = self.transport().map_err(|_| anyhow!(e))?;
                Ok(t.exec_ok(cmd, Duration::from_secs(timeout_s))?)
            }
            Err(e) => Err(e.into()),
        }
    }

    fn say(&self, msg: &str) {
        crate::progress::note(msg);
    }

    /// Runs every rep that has no `rep-N.json` yet; then writes the report.
    pub fn run_all(&mut self) -> Result<()> {
        let n = self.run.config.reps;
        let mut result = Ok(());
        for rep in pending_reps(&self.dir, n) {
            if self.is_interrupted() {
                result = Err(self.interrupted_at(rep));
                break;
            }
            let stop = self
                .stop_before_next
                .as_ref()
                .and_then(|s| s.lock().ok().and_then(|g| g.clone()));
            if let Some(why) = stop {
                result = Err(anyhow!(
                    "{why}; stopped before rep {rep} (the reps before it are kept: `--resume {}` continues)",
                    self.dir.display()
                ));
                break;
            }
            match self.run_rep(rep) {
                Ok(a) => {
                    self.say(&format!(
                        "rep {rep}/{n}: {} · uptime at start {} s · {} · {} MiB/s",
                        a.status.label(),
                        a.uptime_start_s
                            .map(|u| format!("{u:.1}"))
                            .unwrap_or("?".into()),
                        a.bytes_received
                            .map(|b| format!("{b} bytes received"))
                            .unwrap_or("no count".into()),
                        a.mib_s.map(|m| format!("{m:.3}")).unwrap_or("-".into()),
                    ));
                    if matches!(a.status, analysis::RepStatus::Wedged { .. })
                        && self.run.config.stop_on_wedge
                    {
                        result = Err(anyhow!("rep {rep} wedged; stopping (--stop-on-wedge)"));
                        break;
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // The report covers whatever finished, also after an error; it is
        // written once per ramp, here (the session shows its screen).
        match crate::ramp::report::write_report(&self.dir, None) {
            Ok(r) => self.report = Some(r),
            Err(e) if result.is_ok() => return Err(e),
            Err(e) => self.say(&format!("(report not written: {e:#})")),
        }
        result
    }

    fn boot_info(&mut self) -> Result<(String, f64)> {
        let out = self.exec(
            "cat /proc/sys/kernel/random/boot_id /proc/uptime",
            CMD_TIMEOUT_S,
        )?;
        let mut l = out.lines();
        let id = l.next().unwrap_or("").trim().to_string();
        let up = l
            .next()
            .and_then(besser_klog::dmesg::parse_uptime)
            .ok_or_else(|| anyhow!("no uptime in {out:?}"))?;
        Ok((id, up))
    }

    /// Reboots the device and waits for a new boot_id. Returns seconds waited.
    /// Returns the seconds spent besides the wait (the boot_id read, the
    /// reboot command) and the seconds waited.
    fn fresh_boot(&mut self, rep: u32) -> Result<(f64, f64)> {
        let t0 = Instant::now();
        let old = match (self.boot_id.take(), self.transport.is_some()) {
            (Some(id), true) => id,
            _ => self.boot_info()?.0,
        };
        let dev = self.run.device.clone();
        let t = self.transport.take();
        match fresh_boot(
            &dev,
            t,
            &old,
            &format!("rep {rep}"),
            self.interrupt.as_deref(),
        ) {
            Ok((t, waited_s)) => {
                // An A/B device: the slot that came up is good again (each
                // boot spent one of its tries).
                let t = if dev.boot.is_some() {
                    let mut sd = crate::flash::device::ShellSlots::with_transport(dev.clone(), t)?;
                    crate::flash::run::mark_booted_good(&mut sd)
                        .with_context(|| format!("rep {rep}: marking the booted slot good"))?;
                    sd.into_transport()
                        .ok_or_else(|| anyhow!("the session dropped while marking the slot good"))?
                } else {
                    t
                };
                self.transport = Some(t);
                Ok(((t0.elapsed().as_secs_f64() - waited_s).max(0.0), waited_s))
            }
            Err(FreshBootError::Lost { last }) => Err(RampError::DeviceLost {
                device: dev.name.clone(),
                rep,
                timeout_s: dev.boot_timeout_s,
                last,
                run_dir: self.dir.display().to_string(),
            }
            .into()),
            Err(FreshBootError::Other(e)) => Err(e),
            Err(FreshBootError::Interrupted) => Err(self.interrupted_at(rep)),
        }
    }

    fn interrupted_at(&self, rep: u32) -> anyhow::Error {
        RampError::Interrupted {
            rep,
            run_dir: self.dir.display().to_string(),
        }
        .into()
    }

    fn is_interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|f| f.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// One rep, in a fresh rep directory: a half-done one from an interrupted
    /// run is set aside as `rep-N.aborted-<UTC>/` (its data kept, never mixed
    /// with the new attempt's).
    pub fn run_rep(&mut self, rep: u32) -> Result<RepAnalysis> {
        let t_rep = Instant::now();
        let cfg = self.run.config.clone();
        let dev = self.run.device.clone();
        let rd = rep_dir(&self.dir, rep);
        if let Some(old) = set_aside_rep_dir(&self.dir, rep, rundir::now_unix())? {
            self.say(&format!(
                "rep {rep}: an earlier attempt's data is kept in {}",
                old.display()
            ));
        }
        fs::create_dir_all(&rd).with_context(|| format!("creating {}", rd.display()))?;
        let started_unix_s = rundir::now_unix();

        // 1. fresh boot
        let mut phases = RepPhases::default();
        let boot_wait_s = if cfg.reboot {
            let (before_s, waited_s) = self.fresh_boot(rep)?;
            phases.boot_other_s = before_s;
            waited_s
        } else {
            0.0
        };
        // 2.-3. start: boot identity, telemetry armed, a verified listener
        let t = Instant::now();
        let started = self.start_rep(rep, &rd, &cfg, &dev)?;
        phases.start_s = t.elapsed().as_secs_f64();
        // 4. traffic, device polled over the wired link
        let t = Instant::now();
        let wedge = self.traffic(rep, &rd, &cfg, &dev, started.listening)?;
        phases.traffic_s = t.elapsed().as_secs_f64();
        // 5. collect over the wired link
        let t = Instant::now();
        let collect_over = self.collect(&rd, &dev.data.interface)?;
        phases.collect_s = t.elapsed().as_secs_f64();
        let meta = RepMeta {
            rep,
            marker: started.marker,
            started_unix_s,
            fresh_boot: cfg.reboot,
            listening_verified: started.listening,
            boot_wait_s,
            total_s: t_rep.elapsed().as_secs_f64(),
            fault_cmd: cfg.fault_cmd.clone(),
            wedge,
            events_enabled: Some(started.events_enabled),
            events_missing: started.events_missing,
            collect_over,
            endpoints: Some(RepEndpoints::of(&dev)),
            phases: Some(phases),
        };
        fs::write(rd.join("meta.json"), serde_json::to_string_pretty(&meta)?)?;

        // 6. analyse; rep-N.json marks the rep as done
        let a = analyse_rep_dir(&self.dir, &self.run, rep)?;
        write_atomic(
            &rep_json(&self.dir, rep),
            serde_json::to_string_pretty(&RepJson::new(&meta, &a))?.as_bytes(),
        )?;
        Ok(a)
    }

    /// Steps 2-3 of a rep, one remote command: boot identity (refused outside
    /// the fresh-chip window), ftrace armed, the kernel-log marker, the
    /// counters, a fresh listener, verified listening; then the fault
    /// command, if any. Saves `start.out` and its files in `rd`.
    fn start_rep(
        &mut self,
        rep: u32,
        rd: &Path,
        cfg: &RampConfig,
        dev: &Device,
    ) -> Result<Started> {
        // 2.-3. one remote command: boot identity, arm telemetry, counters,
        // a fresh listener and the TCP table once it shows up (verified here).
        let marker = format!(
            "besser-lab: {} rep {rep} start",
            self.dir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        );
        let iface = &dev.data.interface;
        let port = dev.data.listen_port;
        let event_paths = cfg
            .events
            .iter()
            .map(|e| event_path(e))
            .collect::<Result<Vec<_>>>()?;
        let start = rep_start_cmd(&RepStart {
            marker: &marker,
            iface,
            port,
            events: &event_paths,
            trace_buffer_kb: cfg.trace_buffer_kb,
            listen_timeout_s: LISTEN_TIMEOUT_S,
        });
        let out = self.exec(&start, CMD_TIMEOUT_S + LISTEN_TIMEOUT_S)?;
        let sec = save_and_split(rd, START_OUT, &out, REP_START_SECTIONS)?;
        let boot = &sec["boot"];
        fs::write(rd.join("boot.txt"), boot)?;
        let (boot_id, uptime) = match parse_boot(&rd.join("boot.txt").display().to_string(), boot) {
            Ok(b) => b,
            Err(e) => {
                let _ = self.exec("killall nc 2>/dev/null; true", CMD_TIMEOUT_S);
                return Err(e.into());
            }
        };
        self.boot_id = Some(boot_id);
        if uptime > dev.fresh_uptime_max_s {
            // The rep directory stays (a later run sets it aside, never deletes it).
            let _ = self.exec("killall nc 2>/dev/null; true", CMD_TIMEOUT_S);
            return Err(RampError::OutsideWindow {
                rep,
                uptime_s: uptime,
                max_s: dev.fresh_uptime_max_s,
            }
            .into());
        }
        fs::write(rd.join("counters-before.txt"), &sec["counters"])?;
        fs::write(rd.join("events.txt"), &sec["events"])?;
        let (events_enabled, events_missing) = enabled_events(&cfg.events, &sec["events"])?;
        if !events_missing.is_empty() {
            self.say(&format!(
                "rep {rep}: ftrace event(s) missing on the device: {} (not measured)",
                events_missing.join(", ")
            ));
        }
        let mut listening = analysis::tcp_listening(&sec["tcp"], port);
        let t_l = Instant::now();
        while !listening && t_l.elapsed() < Duration::from_secs(LISTEN_TIMEOUT_S) {
            std::thread::sleep(Duration::from_millis(200));
            let tcp = self.exec(LISTENING_CHECK_CMD, CMD_TIMEOUT_S)?;
            listening = analysis::tcp_listening(&tcp, port);
        }
        if let Some(f) = &cfg.fault_cmd {
            // What the fault command printed (for a chip fault: the chip
            // model's counters right after it) is raw data of the rep.
            let out = self.exec(f, CMD_TIMEOUT_S)?;
            fs::write(rd.join("fault.txt"), out)?;
        }
        Ok(Started {
            marker,
            listening,
            events_enabled,
            events_missing,
        })
    }

    /// Step 4: rate-capped traffic while the device is polled over the wired
    /// link (`live::drive_traffic`, the loop the simulated-time tests drive);
    /// nothing is sent when the listener never listened. Saves
    /// `sender.json` and `monitor.json`; returns the wedge, if one was seen.
    fn traffic(
        &mut self,
        rep: u32,
        rd: &Path,
        cfg: &RampConfig,
        dev: &Device,
        listening: bool,
    ) -> Result<Option<String>> {
        let iface = &dev.data.interface;
        let params = SendParams {
            target: format!("{}:{}", dev.data.connect_host, dev.data.connect_port),
            rate_bytes_per_s: cfg.rate_bytes_per_s,
            duration_s: cfg.duration_s,
            stall_timeout_s: cfg.stall_timeout_s,
        };
        let (sender_rec, monitor, wedge) = if listening {
            let pb = crate::progress::seconds_bar(
                cfg.duration_s.ceil() as u64,
                format!("rep {rep}: sending"),
            );
            let mut bar = SendingBar { pb: &pb, rep };
            let o = live::drive_traffic(
                self,
                &mut live::SystemClock::default(),
                &mut live::SenderThread::default(),
                &mut bar,
                params,
                iface,
                live::Polling {
                    interval_s: MONITOR_INTERVAL_S,
                    nap_s: MONITOR_NAP_MS as f64 / 1000.0,
                    interrupt: self.interrupt.clone().as_deref(),
                },
            )?;
            pb.finish_and_clear();
            if o.interrupted {
                // Not a measurement: no rep-N.json; a resume sets the
                // directory aside and runs the rep again.
                let _ = self.exec("killall nc 2>/dev/null; true", CMD_TIMEOUT_S);
                return Err(self.interrupted_at(rep));
            }
            (o.sender, o.monitor, o.wedge)
        } else {
            let rec = SendRecord {
                target: params.target.clone(),
                rate_bytes_per_s: params.rate_bytes_per_s,
                duration_s: params.duration_s,
                bytes_sent: 0,
                elapsed_s: 0.0,
                per_second: Vec::new(),
                outcome: sender::SendOutcome::Error {
                    at_s: 0.0,
                    msg: "not sent: the listener never listened".into(),
                },
            };
            (rec, Vec::new(), None)
        };
        fs::write(
            rd.join("sender.json"),
            serde_json::to_string_pretty(&sender_rec)?,
        )?;
        fs::write(
            rd.join("monitor.json"),
            serde_json::to_string_pretty(&monitor)?,
        )?;
        Ok(wedge)
    }

    /// Step 5, one remote command: the listener's count, counters, uptime,
    /// kernel log, chip counters and trace, saved as `collect.out` and one
    /// file each. Returns the SSH endpoint it ran over.
    fn collect(&mut self, rd: &Path, iface: &str) -> Result<Option<String>> {
        let collect = rep_collect_cmd(iface, LISTENER_DRAIN_S);
        let out = self.exec(&collect, COLLECT_TIMEOUT_S + LISTENER_DRAIN_S)?;
        let files = REP_COLLECT_FILES;
        let required: Vec<(&str, &str)> = files.iter().map(|(n, _, e)| (*n, *e)).collect();
        let collect_over = self
            .transport
            .as_ref()
            .map(|t| ssh_endpoint_name(t.endpoint()));
        let sec = save_and_split(rd, COLLECT_OUT, &out, &required)?;
        for (name, file, _) in files {
            fs::write(rd.join(file), &sec[name])?;
        }
        Ok(collect_over)
    }
}

/// The traffic phase polls over the ramp's one session; a failed poll drops
/// it, and the next command reconnects.
impl live::PollLink for Ramp {
    fn poll(&mut self, cmd: &str, timeout: Duration) -> Result<String> {
        let r = self.transport().and_then(|t| Ok(t.exec_ok(cmd, timeout)?));
        if r.is_err() {
            self.transport = None;
        }
        r
    }
}

/// The rep's progress bar while it sends.
struct SendingBar<'a> {
    pb: &'a crate::progress::Bar,
    rep: u32,
}

impl live::TrafficObserver for SendingBar<'_> {
    fn sending(&mut self, t_s: f64, rx_bytes: Option<u64>) {
        let mb = rx_bytes.map(|b| format!("{:.1} MiB received", b as f64 / crate::units::MIB));
        self.pb.set_position(t_s as u64);
        self.pb.set_message(format!(
            "rep {}: sending · {}",
            self.rep,
            mb.unwrap_or_default()
        ));
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("besser-ramp-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn collect_output_is_saved_verbatim_before_a_missing_section_errs() {
        let d = scratch("collect");
        // A collect cut short: no dmesg or trace section.
        let out = format!(
            "junk before\n{t}listener@@\n123\n{t}counters@@\nrx_bytes 1\n{t}uptime@@\n12.5 3.0\n",
            t = SECTION_TAG
        );
        let e = save_and_split(
            &d,
            COLLECT_OUT,
            &out,
            &[("listener", "x"), ("dmesg", "the kernel log")],
        )
        .unwrap_err();
        assert_eq!(fs::read_to_string(d.join(COLLECT_OUT)).unwrap(), out);
        match e.downcast_ref::<RampError>() {
            Some(RampError::DeviceOutput {
                file,
                line: None,
                what,
            }) => {
                assert!(file.ends_with(COLLECT_OUT), "{file}");
                assert!(
                    what.contains("no `dmesg` section") && what.contains("kernel log"),
                    "{what}"
                );
            }
            _ => panic!("not a DeviceOutput error: {e:#}"),
        }
        // Complete output: the sections, and the raw file still verbatim.
        let sec =
            save_and_split(&d, START_OUT, &out, &[("listener", "x"), ("uptime", "y")]).unwrap();
        assert_eq!(sec["listener"], "123\n");
        assert_eq!(fs::read_to_string(d.join(START_OUT)).unwrap(), out);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_half_done_rep_is_set_aside_not_deleted() {
        let d = scratch("aside");
        fs::create_dir_all(d.join("rep-2")).unwrap();
        fs::write(d.join("rep-2/sender.json"), "{\"bytes_sent\": 42}").unwrap();
        let to = set_aside_rep_dir(&d, 2, 0).unwrap().unwrap();
        assert!(
            to.ends_with("rep-2.aborted-19700101T000000Z"),
            "{}",
            to.display()
        );
        assert_eq!(
            fs::read_to_string(to.join("sender.json")).unwrap(),
            "{\"bytes_sent\": 42}"
        );
        assert!(!d.join("rep-2").exists());
        // A second attempt aborted within the same second gets its own name.
        fs::create_dir_all(d.join("rep-2")).unwrap();
        fs::write(d.join("rep-2/boot.txt"), "x").unwrap();
        let to2 = set_aside_rep_dir(&d, 2, 0).unwrap().unwrap();
        assert!(to2.ends_with("rep-2.aborted-19700101T000000Z-2"));
        // Empty or absent: nothing to keep.
        fs::create_dir_all(d.join("rep-3")).unwrap();
        assert_eq!(set_aside_rep_dir(&d, 3, 0).unwrap(), None);
        assert!(!d.join("rep-3").exists());
        assert_eq!(set_aside_rep_dir(&d, 4, 0).unwrap(), None);
        assert_eq!(
            aborted_attempts(&d).unwrap(),
            [
                "rep-2.aborted-19700101T000000Z",
                "rep-2.aborted-19700101T000000Z-2"
            ]
        );
        fs::remove_dir_all(&d).unwrap();
    }

    /// A resume runs exactly the reps without `rep-N.json`: finished ones
    /// are kept, a half-done one runs again (its data set aside), and a
    /// resume with more reps adds them at the end.
    #[test]
    fn a_resume_runs_the_reps_that_have_no_rep_json() {
        let d = scratch("pending");
        fs::write(d.join("rep-1.json"), "{}").unwrap();
        fs::create_dir_all(d.join("rep-2")).unwrap();
        fs::write(d.join("rep-2/boot.txt"), "half").unwrap();
        fs::write(d.join("rep-3.json"), "{}").unwrap();
        assert_eq!(pending_reps(&d, 3), [2]);
        assert_eq!(pending_reps(&d, 5), [2, 4, 5]);
        assert!(pending_reps(&d, 1).is_empty());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unreadable_uptime_is_a_device_output_error_not_outside_the_window() {
        let e = parse_boot(
            "rep-1/boot.txt",
            "0b5e-id\ncat: /proc/uptime: No such file\n",
        )
        .unwrap_err();
        assert!(
            matches!(e, RampError::DeviceOutput { line: Some(2), .. }),
            "{e:?}"
        );
        let m = e.to_string();
        assert!(
            m.starts_with("rep-1/boot.txt:2: could not read the uptime: expected /proc/uptime"),
            "{m}"
        );
        let e = parse_boot("rep-1/boot.txt", "").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("rep-1/boot.txt:1: expected the boot_id"),
            "{e}"
        );
        assert_eq!(
            parse_boot("b", "0b5e-id\n12.50 20.00\n").unwrap(),
            ("0b5e-id".to_string(), 12.5)
        );
    }
}
