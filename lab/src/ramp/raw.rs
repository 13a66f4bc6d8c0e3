//! The run directory of a ramp: its schema (`run.json`, `rep-N.json`,
//! `rep-N/meta.json`, the device files of a rep) and the loaders that read
//! it back. The one place that knows the layout: the report, the bench and
//! `lab report` go through these.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::{ssh_endpoint_name, RampConfig};
use crate::device::inventory::Device;
use crate::device::sender::SendRecord;
use crate::ramp::analysis::verdicts::Baseline;
use crate::ramp::analysis::{self, MonitorSample, RepAnalysis, RepRaw};
use crate::rundir;

/// `run.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunJson {
    pub kind: String,
    pub created_unix_s: u64,
    pub config: RampConfig,
    pub device: Device,
    /// `uname -r` on the device at the start.
    pub kernel_release: Option<String>,
}

/// `rep-N/meta.json`: facts of the rep the device files don't carry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepMeta {
    pub rep: u32,
    pub marker: String,
    pub started_unix_s: u64,
    pub fresh_boot: bool,
    pub listening_verified: bool,
    /// Seconds spent waiting for the reboot (0 without one).
    pub boot_wait_s: f64,
    /// Wall time of the whole rep, seconds.
    pub total_s: f64,
    pub fault_cmd: Option<String>,
    /// Wedge seen live (also derivable from monitor.json + sender.json).
    pub wedge: Option<String>,
    /// ftrace events (as configured, `system:event`) the device enabled for
    /// this rep; `None` in runs made before this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_enabled: Option<Vec<String>>,
    /// Configured events the device could not enable (absent on its kernel).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events_missing: Vec<String>,
    /// `user@host:port` of the SSH session the collect ran over (the report
    /// checks it is the wired endpoint, not the data link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collect_over: Option<String>,
    /// The device's wired endpoint (`user@host:port`) and data endpoint
    /// (`host:port`) when the rep ran: a resumed run's device may have new
    /// ones (the virtual device's forwarded ports), and each rep is judged
    /// against its own. `None` in runs made before this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<RepEndpoints>,
    /// Where the rep's time went besides the boot wait (`None` in runs made
    /// before this was recorded): `cargo xtask bench lab` reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<RepPhases>,
}

/// Wall time of a rep's phases, seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RepPhases {
    /// The boot phase besides the wait for the device: the boot_id read
    /// (none when the session knew it), the reboot command, the progress bar.
    pub boot_other_s: f64,
    /// The start command: ftrace armed, counters, listener verified; and
    /// the fault command.
    pub start_s: f64,
    /// Traffic, sender start to join (its stress window is `sender.json`'s
    /// `elapsed_s`).
    pub traffic_s: f64,
    /// The collect command and saving its files.
    pub collect_s: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepEndpoints {
    pub wired: String,
    pub data: String,
}

impl RepEndpoints {
    pub fn of(dev: &Device) -> Self {
        RepEndpoints {
            wired: ssh_endpoint_name(&dev.wired),
            data: format!("{}:{}", dev.data.connect_host, dev.data.connect_port),
        }
    }
}

/// The combined start command's output, saved verbatim in the rep directory.
pub const START_OUT: &str = "start.out";
/// The combined collect command's output, saved verbatim in the rep directory.
pub const COLLECT_OUT: &str = "collect.out";

pub fn rep_dir(run_dir: &Path, rep: u32) -> PathBuf {
    run_dir.join(format!("rep-{rep}"))
}
pub fn rep_json(run_dir: &Path, rep: u32) -> PathBuf {
    run_dir.join(format!("rep-{rep}.json"))
}

/// The reps of `1..=reps` a run (or its resume) still has to run: those
/// without a `rep-N.json`, in order. A half-done `rep-N/` does not count as
/// done; the rep sets it aside ([`set_aside_rep_dir`]) before it runs again.
pub fn pending_reps(run_dir: &Path, reps: u32) -> Vec<u32> {
    (1..=reps)
        .filter(|&r| !rep_json(run_dir, r).exists())
        .collect()
}

pub fn load_run(dir: &Path) -> Result<RunJson> {
    let p = dir.join("run.json");
    let t = fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let v: RunJson =
        serde_json::from_str(&t).with_context(|| format!("parsing {}", p.display()))?;
    if v.kind != "ramp" {
        bail!("{} is a {:?} run, not a ramp", p.display(), v.kind);
    }
    Ok(v)
}

/// `rep-N.json`: the rep's identity and its analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepJson {
    pub rep: u32,
    pub boot_id: String,
    pub uptime_start_s: Option<f64>,
    pub bytes_sent: u64,
    pub bytes_received: Option<u64>,
    pub boot_wait_s: f64,
    pub total_s: f64,
    pub analysis: RepAnalysis,
}

impl RepJson {
    pub fn new(meta: &RepMeta, a: &RepAnalysis) -> Self {
        RepJson {
            rep: a.rep,
            boot_id: a.boot_id.clone(),
            uptime_start_s: a.uptime_start_s,
            bytes_sent: a.bytes_sent,
            bytes_received: a.bytes_received,
            boot_wait_s: meta.boot_wait_s,
            total_s: meta.total_s,
            analysis: a.clone(),
        }
    }
}

/// Infix of a rep directory set aside by [`set_aside_rep_dir`].
pub const ABORTED_INFIX: &str = ".aborted-";

/// Moves a half-done `rep-N/` aside as `rep-N.aborted-<UTC>/` (a `-2`, `-3`…
/// suffix if that exists): measured data is never deleted. An empty `rep-N/`
/// is just removed. Returns where the data went.
pub fn set_aside_rep_dir(run_dir: &Path, rep: u32, unix_s: u64) -> Result<Option<PathBuf>> {
    let rd = rep_dir(run_dir, rep);
    if !rd.exists() {
        return Ok(None);
    }
    let empty = fs::read_dir(&rd)
        .with_context(|| format!("reading {}", rd.display()))?
        .next()
        .is_none();
    if empty {
        fs::remove_dir(&rd).with_context(|| format!("removing empty {}", rd.display()))?;
        return Ok(None);
    }
    let base = format!("rep-{rep}{ABORTED_INFIX}{}", rundir::utc_stamp(unix_s));
    let mut to = run_dir.join(&base);
    let mut k = 2;
    while to.exists() {
        to = run_dir.join(format!("{base}-{k}"));
        k += 1;
    }
    fs::rename(&rd, &to)
        .with_context(|| format!("setting {} aside as {}", rd.display(), to.display()))?;
    Ok(Some(to))
}

/// Names of the rep directories set aside in a run directory, sorted.
pub fn aborted_attempts(run_dir: &Path) -> Result<Vec<String>> {
    let mut v = Vec::new();
    for e in fs::read_dir(run_dir).with_context(|| format!("reading {}", run_dir.display()))? {
        let name = e?.file_name().to_string_lossy().to_string();
        if name.starts_with("rep-") && name.contains(ABORTED_INFIX) {
            v.push(name);
        }
    }
    v.sort();
    Ok(v)
}

fn read(rd: &Path, name: &str) -> Result<String> {
    fs::read_to_string(rd.join(name))
        .with_context(|| format!("reading {}", rd.join(name).display()))
}

/// A rep's `sender.json`: what the sender did.
pub fn load_sender(run_dir: &Path, rep: u32) -> Result<SendRecord> {
    let rd = rep_dir(run_dir, rep);
    serde_json::from_str(&read(&rd, "sender.json")?)
        .with_context(|| format!("parsing {}/sender.json", rd.display()))
}

pub fn load_meta(run_dir: &Path, rep: u32) -> Result<RepMeta> {
    let rd = rep_dir(run_dir, rep);
    serde_json::from_str(&read(&rd, "meta.json")?)
        .with_context(|| format!("parsing {}/meta.json", rd.display()))
}

/// Analyses one rep from its raw files alone.
pub fn analyse_rep_dir(run_dir: &Path, run: &RunJson, rep: u32) -> Result<RepAnalysis> {
    let rd = rep_dir(run_dir, rep);
    if !rd.is_dir() {
        bail!(
            "{}: rep {rep} finished (rep-{rep}.json) but its directory rep-{rep}/ is missing",
            run_dir.display()
        );
    }
    let meta = load_meta(run_dir, rep)?;
    let sender = load_sender(run_dir, rep)?;
    let monitor: Vec<MonitorSample> = serde_json::from_str(&read(&rd, "monitor.json")?)
        .with_context(|| format!("parsing {}/monitor.json", rd.display()))?;
    // Device output is read as bytes: what is not UTF-8 is decoded lossily
    // and listed, never a failed report.
    let mut undecoded = Vec::new();
    let mut device = |name: &str| -> Result<String> {
        let bytes = fs::read(rd.join(name))
            .with_context(|| format!("reading {}", rd.join(name).display()))?;
        let (text, err) = analysis::device_text(&format!("rep-{rep}/{name}"), bytes);
        undecoded.extend(err);
        Ok(text)
    };
    let listener = device("listener.txt").ok();
    let chip_after = device("chip-after.txt").ok();
    let (boot, up_end, cb, ca, trace, dmesg) = (
        device("boot.txt")?,
        device("uptime-end.txt")?,
        device("counters-before.txt")?,
        device("counters-after.txt")?,
        device("trace.txt")?,
        device("dmesg.txt")?,
    );
    let mut a = analysis::analyse_rep(&RepRaw {
        rep,
        boot: &boot,
        uptime_end: &up_end,
        counters_before: &cb,
        counters_after: &ca,
        listener: listener.as_deref().filter(|s| !s.trim().is_empty()),
        listening_verified: meta.listening_verified,
        sender: &sender,
        monitor: &monitor,
        trace: &trace,
        dmesg: &dmesg,
        marker: &meta.marker,
        stall_s: run.config.stall_timeout_s,
        fresh_uptime_max_s: run.device.fresh_uptime_max_s,
        events_enabled: meta.events_enabled.as_deref(),
        events_missing: &meta.events_missing,
        chip_after: chip_after.as_deref(),
    });
    a.bad_lines.extend(undecoded);
    Ok(a)
}

/// The reps of a run that finished (have `rep-N.json`), re-analysed from raw data.
pub fn finished_reps(run_dir: &Path, run: &RunJson) -> Result<Vec<RepAnalysis>> {
    let mut out = Vec::new();
    for rep in 1..=run.config.reps.max(1) {
        if rep_json(run_dir, rep).exists() {
            out.push(analyse_rep_dir(run_dir, run, rep)?);
        }
    }
    Ok(out)
}

/// Loads a baseline run directory: its `run.json` and finished reps.
pub fn load_baseline(dir: &Path) -> Result<Baseline> {
    let run = load_run(dir).with_context(|| format!("baseline {}", dir.display()))?;
    let reps = finished_reps(dir, &run)?;
    Ok(Baseline {
        name: dir_name(dir),
        run,
        reps,
    })
}

/// A run directory's name (its last component), as reports call it.
pub fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| dir.display().to_string())
}
