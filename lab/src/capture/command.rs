//! A whole `lab capture` invocation: the run directory first (a bad one fails
//! before any device is touched), the device (inventory entry, the running
//! `lab vm up` device, or a virtual device booted for this capture), a fresh
//! boot, then the capture loop with a progress display, then the report.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::analysis::Analysis;
use super::live::{self, CaptureParams, Progress};
use super::traffic::LabProber;
use super::{CaptureConfig, RunInfo, RUN_KIND};
use crate::clock::SystemClock;
use crate::device::boot::FreshBootError;
use crate::device::transport::Transport;
use crate::ramp::command::{self, DeviceChoice};
use crate::rundir;

pub struct CaptureOptions {
    pub config: CaptureConfig,
    pub label: String,
    pub runs_dir: PathBuf,
    pub device: DeviceChoice,
    pub target_dir: PathBuf,
    pub trust_new_host_key: bool,
    pub boot_timeout_s: Option<u64>,
    /// Counter snapshot period (the maintainers' rig: 30 s).
    pub snap_every_s: f64,
    /// No bytes accepted for this long ends a probe as wedged.
    pub stall_timeout_s: f64,
}

pub struct CaptureOutcome {
    pub run_dir: PathBuf,
    /// A failure mid-capture keeps everything recorded so far in `run_dir`.
    pub result: Result<Analysis>,
}

/// Checks a capture configuration before anything runs.
pub fn validate(c: &CaptureConfig) -> Result<()> {
    if c.duration_s.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        bail!("--duration must be positive");
    }
    if c.probe_len_s.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        bail!("--probe-len must be positive");
    }
    for &p in &c.probes_s {
        if p + c.probe_len_s > c.duration_s {
            bail!(
                "probe at {p:.0} s of uptime (+{:.0} s) ends after the capture ({:.0} s)",
                c.probe_len_s,
                c.duration_s
            );
        }
    }
    let mut sorted = c.probes_s.clone();
    sorted.sort_by(f64::total_cmp);
    for w in sorted.windows(2) {
        if w[1] - w[0] < c.probe_len_s {
            bail!(
                "probes at {:.0} s and {:.0} s overlap (probe length {:.0} s)",
                w[0],
                w[1],
                c.probe_len_s
            );
        }
    }
    if c.rate_bytes_per_s == 0 {
        bail!("--rate must be positive");
    }
    for e in &c.events {
        crate::device::commands::validate_event(e)?;
    }
    if !(0.0 < c.collapse_fraction
        && c.collapse_fraction <= c.good_fraction
        && c.good_fraction <= 1.0)
    {
        bail!("need 0 < collapse fraction <= good fraction <= 1");
    }
    Ok(())
}

fn progress_line(p: &Progress) -> String {
    let next = match (p.probing, p.next_probe) {
        (Some(i), _) => format!("probe {i} pushing"),
        (None, Some((i, at))) => format!(
            "next probe {i} at {at:.0} s (in {:.0} s)",
            (at - p.uptime_s).max(0.0)
        ),
        (None, None) => "no more probes".into(),
    };
    // the bar itself shows uptime / capture length
    format!(
        "uptime · {:.0} s left · {next} · trace {} · kmsg {} (scan failures {}) · iw {} · snapshots {} · gaps {}",
        (p.duration_s - p.uptime_s).max(0.0),
        p.trace_records,
        p.kmsg_lines,
        p.scan_failures,
        p.iw_events,
        p.snapshots,
        p.gaps
    )
}

/// Runs a capture. The outer `Err` means nothing was run.
pub fn run_capture(opts: CaptureOptions) -> Result<CaptureOutcome> {
    validate(&opts.config)?;
    // 1. the run directory
    let dir = rundir::create_run_dir(&opts.runs_dir, &opts.label, rundir::now_unix())?;
    let started_utc = rundir::utc_human(rundir::now_unix());
    // 2. the device
    let (mut device, vm_guard) = match command::open_device(&opts.device, &opts.target_dir, &dir) {
        Ok(d) => d,
        Err(e) => {
            // nothing was recorded: leave no empty run directory behind
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
    };
    if opts.trust_new_host_key {
        device.wired.host_key_policy = crate::device::inventory::HostKeyPolicy::TrustOnFirstUse;
    }
    if let Some(t) = opts.boot_timeout_s {
        device.boot_timeout_s = t;
    }
    let result = (|| -> Result<Analysis> {
        // 3. a fresh boot: T0 = boot. A virtual device booted just now for
        // this capture already is one.
        let mut t = Transport::connect(&device.wired)?;
        if vm_guard.is_none() {
            let old = t.exec_ok(
                "cat /proc/sys/kernel/random/boot_id",
                std::time::Duration::from_secs(live::EXEC_TIMEOUT_S),
            )?;
            t = match crate::device::boot::fresh_boot(&device, Some(t), old.trim(), "capture", None)
            {
                Ok((t, _)) => t,
                Err(FreshBootError::Lost { last }) => bail!(
                    "device {} did not come back within {} s after the reboot (last: {last})",
                    device.name,
                    device.boot_timeout_s
                ),
                Err(FreshBootError::Other(e)) => return Err(e),
                Err(FreshBootError::Interrupted) => {
                    bail!("interrupted while waiting for the fresh boot")
                }
            };
        }
        let id = t.exec_ok(
            "cat /proc/sys/kernel/random/boot_id; uname -r",
            std::time::Duration::from_secs(live::EXEC_TIMEOUT_S),
        )?;
        let mut l = id.lines();
        let mut config = opts.config.clone();
        config.data_iface = device.data.interface.clone();
        let run = RunInfo {
            kind: RUN_KIND.into(),
            label: opts.label.clone(),
            device: device.name.clone(),
            started_utc: started_utc.clone(),
            boot_id: l.next().unwrap_or("").trim().to_string(),
            kernel_release: l.next().unwrap_or("").trim().to_string(),
            config,
        };
        live::create_run_dir(&dir, &run)?;
        let pb = crate::progress::seconds_bar(run.config.duration_s.ceil() as u64, "capture");
        let mut prober = LabProber::new(&device, opts.stall_timeout_s);
        let params = CaptureParams {
            run,
            snap_every_s: opts.snap_every_s,
        };
        let a = live::run(
            &dir,
            &params,
            &mut t,
            &mut prober,
            &mut SystemClock::default(),
            &mut |p: &Progress| {
                pb.set_position(p.uptime_s.max(0.0) as u64);
                pb.set_message(progress_line(p));
            },
        );
        pb.finish_and_clear();
        a.with_context(|| format!("capture stopped; what was recorded is in {}", dir.display()))
    })();
    drop(vm_guard);
    Ok(CaptureOutcome {
        run_dir: dir,
        result,
    })
}

/// The one-screen summary printed at the end of a capture.
pub fn summary_screen(a: &Analysis) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "probe  start uptime (s)  MiB/s (\"MB/s\")  class");
    for p in &a.probes {
        let _ = writeln!(
            s,
            "{:>5}  {:>17.1}  {:>15}  {:?}",
            p.index,
            p.start_uptime_s,
            p.mib_s
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "-".into()),
            p.class
        );
    }
    let opt = |v: Option<f64>| {
        v.map(|t| format!("{t:.1} s"))
            .unwrap_or_else(|| "none".into())
    };
    let _ = writeln!(
        s,
        "first scan failure: {} · first link loss: {} · first probe below {:.0}% of the first: {}",
        opt(a.markers.first_scan_failure_s),
        opt(a.markers.first_link_loss.as_ref().map(|e| e.uptime_s)),
        a.collapse_fraction * 100.0,
        match a.markers.first_low_probe {
            Some(i) => format!("probe {i} at {}", opt(a.markers.first_low_probe_uptime_s)),
            None => "none".into(),
        }
    );
    let verdict = match &a.drop {
        super::analysis::DropVerdict::NoCollapse { .. } => "no collapse".to_string(),
        super::analysis::DropVerdict::Abrupt {
            last_good,
            collapse,
            ..
        } => format!("abrupt (probe {last_good} good, probe {collapse} collapsed)"),
        super::analysis::DropVerdict::Gradual { collapse, .. } => {
            format!("gradual (degraded probes before probe {collapse})")
        }
        super::analysis::DropVerdict::Undetermined { why } => format!("undetermined: {why}"),
    };
    let failed: Vec<&str> = a
        .receipts
        .iter()
        .filter(|r| r.status == super::analysis::Status::Fail)
        .map(|r| r.check.as_str())
        .collect();
    let _ = writeln!(s, "drop: {verdict}");
    let count = |st: super::analysis::Status| a.receipts.iter().filter(|r| r.status == st).count();
    let _ = write!(
        s,
        "receipts: {} pass, {} n/a, {} fail{}",
        count(super::analysis::Status::Pass),
        count(super::analysis::Status::NotApplicable),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({})", failed.join("; "))
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CaptureConfig {
        CaptureConfig {
            duration_s: 2100.0,
            probes_s: vec![300.0, 600.0, 900.0, 1200.0, 1500.0],
            probe_len_s: 30.0,
            rate_bytes_per_s: 4 << 20,
            events: crate::capture::DEFAULT_EVENTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            data_iface: "wlan0".into(),
            injections: vec![],
            collapse_fraction: 0.5,
            good_fraction: 0.8,
        }
    }

    #[test]
    fn the_maintainers_schedule_is_valid() {
        validate(&cfg()).unwrap();
    }

    #[test]
    fn bad_schedules_are_refused_before_anything_runs() {
        let mut c = cfg();
        c.probes_s.push(2090.0);
        let e = validate(&c).unwrap_err().to_string();
        assert!(e.contains("ends after the capture"), "{e}");
        let mut c = cfg();
        c.probes_s.push(310.0);
        let e = validate(&c).unwrap_err().to_string();
        assert!(e.contains("overlap"), "{e}");
        let mut c = cfg();
        c.events.push("mac80211/x; reboot".into());
        let e = validate(&c).unwrap_err().to_string();
        assert!(e.contains("expected `system/event`"), "{e}");
        let mut c = cfg();
        c.collapse_fraction = 0.9;
        assert!(validate(&c).is_err());
    }
}
