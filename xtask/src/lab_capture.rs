//! `cargo xtask lab capture`: the Phase 0 long capture (issue 5), a thin CLI
//! over `besser_lab::capture`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use besser_lab::capture::{self, command, CaptureConfig, Injection};
use besser_lab::units::{parse_duration_s, parse_rate};
use clap::Parser;
use xshell::Shell;

use super::{target_dir, vm_image, ImageArgs};
use crate::test::Step;

#[derive(Parser)]
pub struct CaptureArgs {
    /// Capture length from boot (T0 = boot), e.g. 35m.
    #[arg(long, default_value = "35m")]
    duration: String,
    /// Probe uptimes, comma-separated, e.g. 5m,10m,15m,20m,25m.
    #[arg(long, default_value = "5m,10m,15m,20m,25m", value_delimiter = ',')]
    probes: Vec<String>,
    /// Push length of each probe.
    #[arg(long, default_value = "30s")]
    probe_len: String,
    /// Offered load of a probe; MB = MiB as in `pv -L 4m` (4MB/s = 4 MiB/s).
    #[arg(long, default_value = "4MB/s")]
    rate: String,
    /// ftrace events (`system/event`, or `system:event`), comma-separated (default: the
    /// maintainers' Phase 0 set). Events the kernel lacks are reported, skipped.
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    /// Netdev counter snapshot period.
    #[arg(long, default_value = "30s")]
    snap_every: String,
    /// A probe below this fraction of the first probe counts as collapsed.
    #[arg(long, default_value_t = capture::COLLAPSE_FRACTION_DEFAULT)]
    collapse_fraction: f64,
    /// No bytes accepted for this long ends a probe as wedged.
    #[arg(long, default_value = "10s")]
    stall_timeout: String,
    /// Device name in the inventory (default, or `vm`: the built-in virtual device).
    #[arg(long)]
    device: Option<String>,
    /// Inventory file (default: $BESSER_INVENTORY or ~/.config/besser/inventory.yaml).
    #[arg(long)]
    inventory: Option<PathBuf>,
    /// Label of the run directory.
    #[arg(long, default_value = "capture")]
    label: String,
    /// Where run directories go.
    #[arg(long, default_value = "lab-runs")]
    runs_dir: PathBuf,
    /// Record an unknown host key on first use (a changed key is still refused).
    #[arg(long)]
    trust_new_host_key: bool,
    /// Seconds to wait for the device after the reboot (default: inventory's).
    #[arg(long)]
    boot_timeout: Option<u64>,
    /// Fault injection (tests): `UPTIME=COMMAND`, run on the device at that uptime.
    #[arg(long, hide = true)]
    inject: Vec<String>,
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    farm: crate::farm::FarmOpts,
}

pub fn config(a: &CaptureArgs) -> Result<CaptureConfig> {
    let events = if a.events.is_empty() {
        capture::DEFAULT_EVENTS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        a.events
            .iter()
            .map(|e| besser_lab::device::commands::event_path(e))
            .collect::<Result<_>>()?
    };
    let injections = a
        .inject
        .iter()
        .map(|s| {
            let (at, cmd) = s
                .split_once('=')
                .with_context(|| format!("--inject {s:?}: expected UPTIME=COMMAND"))?;
            Ok(Injection {
                at_uptime_s: parse_duration_s(at)?,
                cmd: cmd.to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let c = CaptureConfig {
        duration_s: parse_duration_s(&a.duration)?,
        probes_s: a
            .probes
            .iter()
            .map(|p| parse_duration_s(p))
            .collect::<Result<_>>()?,
        probe_len_s: parse_duration_s(&a.probe_len)?,
        rate_bytes_per_s: parse_rate(&a.rate)?.round() as u64,
        events,
        // the device's data interface replaces this once the device is known
        data_iface: besser_lab::appliance::DATA_IFACE.into(),
        injections,
        collapse_fraction: a.collapse_fraction,
        good_fraction: capture::GOOD_FRACTION_DEFAULT.max(a.collapse_fraction),
    };
    command::validate(&c)?;
    Ok(c)
}

pub fn run(sh: &Shell, a: CaptureArgs) -> Result<()> {
    let config = config(&a)?;
    let held = crate::farm::take(sh, &a.farm, a.inventory.as_deref(), &target_dir())?;
    let device = match &held {
        Some(h) => besser_lab::ramp::command::DeviceChoice::Given(Box::new(h.device.clone())),
        None => super::device_choice(sh, a.device.as_deref(), a.inventory.as_deref(), &a.image)?,
    };
    let out = command::run_capture(command::CaptureOptions {
        config,
        label: a.label.clone(),
        runs_dir: a.runs_dir.clone(),
        device,
        target_dir: target_dir(),
        trust_new_host_key: a.trust_new_host_key,
        boot_timeout_s: a.boot_timeout,
        snap_every_s: parse_duration_s(&a.snap_every)?,
        stall_timeout_s: parse_duration_s(&a.stall_timeout)?,
    })?;
    let dir = out.run_dir;
    if let Some(h) = held {
        h.finish(&format!(
            "a capture ({})",
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
    }
    match out.result {
        Ok(an) => {
            println!("{}", command::summary_screen(&an));
            println!(
                "run directory: {} (report.md, summary.json, throughput.svg)",
                dir.display()
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("run directory (raw data kept): {}", dir.display());
            Err(e)
        }
    }
}

pub fn test_steps() -> Vec<Step> {
    vec![Step::new(
        "lab capture e2e: 2-min capture on the virtual device; injected scan failures, SSH cut and degraded link placed at the right uptimes",
        |sh| {
            let image = vm_image(sh, &ImageArgs::debian())?;
            let runs = std::env::temp_dir().join(format!("besser-capture-e2e-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&runs);
            let dir = besser_lab_e2e::capture::compressed_capture(&target_dir(), &image, &runs)?;
            let md = std::fs::read_to_string(dir.join(capture::layout::REPORT_MD))?;
            eprintln!("{}", md.lines().take(40).collect::<Vec<_>>().join("\n"));
            let _ = std::fs::remove_dir_all(&runs);
            Ok(())
        },
    )]
}
