//! A whole `lab ramp` invocation: run directory first (so a bad one fails
//! before anything runs), then the device (inventory entry, the running
//! `lab vm up` device, or an in-process virtual device), then the reps, the
//! report and a one-screen summary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::assets::{self, VmImage};
use crate::device::inventory::{HostKeyPolicy, Inventory, Reboot};
use crate::ramp::report::{self, PREDICTIONS_FILE};
use crate::ramp::{Ramp, RampConfig};
use crate::rundir;
use crate::vm::{self, Vm, VmOptions};

/// Where the device comes from.
pub enum DeviceChoice {
    /// A device of an inventory file.
    Inventory { path: PathBuf, name: String },
    /// A device already resolved (a farm place, [`crate::farm`]).
    Given(Box<crate::device::inventory::Device>),
    /// The built-in virtual device: the one `lab vm up` left running, else
    /// one booted for this ramp from `image`.
    Vm {
        image: VmImage,
        /// Always boot a VM for this ramp (tests), even if one is up.
        fresh: bool,
    },
}

pub struct RampOptions {
    pub config: RampConfig,
    pub runs_dir: PathBuf,
    /// Continue this run directory instead of starting a new one.
    pub resume: Option<PathBuf>,
    pub predictions: Option<PathBuf>,
    pub device: DeviceChoice,
    pub target_dir: PathBuf,
    pub trust_new_host_key: bool,
    pub boot_timeout_s: Option<u64>,
    /// Replaces the device's reboot method (tests: a device that never comes back).
    pub reboot_override: Option<Reboot>,
    /// Set by the caller's Ctrl-C handler (the library installs none): the
    /// rep in flight stops, finished reps and the report stay.
    pub interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// See [`Ramp::stop_before_next`].
    pub stop_before_next: Option<std::sync::Arc<std::sync::Mutex<Option<String>>>>,
}

/// What a finished (or failed) ramp leaves.
pub struct RampOutcome {
    pub run_dir: PathBuf,
    pub result: Result<()>,
    pub screen: Option<String>,
    /// Remote commands run over the session (overhead benchmark).
    pub commands_run: u64,
}

/// Runs a ramp. The outer `Err` means nothing was run; a failure mid-ramp
/// comes back in `RampOutcome::result` with the run directory (finished reps kept).
pub fn run_ramp(opts: RampOptions) -> Result<RampOutcome> {
    if opts.config.reps == 0 {
        bail!("--reps must be at least 1");
    }
    for b in opts
        .config
        .baseline
        .iter()
        .chain(&opts.config.more_baselines)
    {
        crate::ramp::load_run(b).with_context(|| format!("--baseline {}", b.display()))?;
    }
    let preds = match &opts.predictions {
        Some(p) => {
            let t =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            report::parse_predictions(&t, &p.display().to_string())?;
            Some(t)
        }
        None => None,
    };
    // 1. the run directory, before any device is touched
    let dir = match &opts.resume {
        Some(given) => {
            let d = &resolve_resume(given, &opts.runs_dir)?;
            crate::ramp::load_run(d)?;
            rundir::write_atomic(&d.join(".writable"), b"").with_context(|| {
                format!(
                    "run directory {} is not writable (nothing was run)",
                    d.display()
                )
            })?;
            std::fs::remove_file(d.join(".writable"))?;
            d.clone()
        }
        None => rundir::create_run_dir(&opts.runs_dir, &opts.config.label, rundir::now_unix())?,
    };
    if let Some(t) = &preds {
        rundir::write_atomic(&dir.join(PREDICTIONS_FILE), t.as_bytes())?;
    }
    // 2. the device
    let (mut device, _vm_guard) = open_device(&opts.device, &opts.target_dir, &dir)?;
    if opts.trust_new_host_key {
        device.wired.host_key_policy = HostKeyPolicy::TrustOnFirstUse;
    }
    if let Some(t) = opts.boot_timeout_s {
        device.boot_timeout_s = t;
    }
    if let Some(r) = &opts.reboot_override {
        device.reboot = r.clone();
    }
    // 3. the reps
    let mut ramp = match &opts.resume {
        Some(_) => Ramp::resume(dir.clone(), device, Some(opts.config.reps))?,
        None => match Ramp::start(dir.clone(), opts.config.clone(), device) {
            Ok(r) => r,
            Err(e) => {
                return Ok(RampOutcome {
                    run_dir: dir,
                    result: Err(e),
                    screen: None,
                    commands_run: 0,
                });
            }
        },
    };
    ramp.interrupt = opts.interrupt.clone();
    ramp.stop_before_next = opts.stop_before_next.clone();
    let result = ramp.run_all();
    let screen = ramp.report.take().map(|r| r.screen);
    Ok(RampOutcome {
        run_dir: dir,
        result,
        screen,
        commands_run: ramp.commands_run(),
    })
}

/// The device a run uses, and the virtual device booted for it (kept alive
/// by the returned guard; its files go under `run_dir/vm`). Shared by the
/// ramp and the capture.
pub fn open_device(
    choice: &DeviceChoice,
    target_dir: &Path,
    run_dir: &Path,
) -> Result<(crate::device::inventory::Device, Option<Vm>)> {
    Ok(match choice {
        DeviceChoice::Inventory { path, name } => (Inventory::load(path)?.device(name)?, None),
        DeviceChoice::Given(d) => ((**d).clone(), None),
        DeviceChoice::Vm { image, fresh } => match vm::running(target_dir).filter(|_| !fresh) {
            Some(s) => {
                crate::progress::note(format!(
                    "using the virtual lab device left up by `lab vm up` (pid {})",
                    s.pid
                ));
                (s.device(), None)
            }
            _ => {
                let keys = assets::lab_keys(target_dir)?;
                let vdir = run_dir.join("vm");
                let v = Vm::boot(&VmOptions {
                    image,
                    keys: &keys,
                    dir: &vdir,
                    detached: false,
                })?;
                (v.device(), Some(v))
            }
        },
    })
}

/// The default inventory file: `$BESSER_INVENTORY`, else `~/.config/besser/inventory.yaml`.
pub fn default_inventory() -> PathBuf {
    if let Some(p) = std::env::var_os("BESSER_INVENTORY") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".config/besser/inventory.yaml")
}

/// `--resume` takes a run directory's path, or its name under `--runs-dir`.
pub fn resolve_resume(given: &Path, runs_dir: &Path) -> Result<PathBuf> {
    if given.join("run.json").is_file() {
        return Ok(given.to_path_buf());
    }
    let under = runs_dir.join(given);
    if under.join("run.json").is_file() {
        return Ok(under);
    }
    bail!(
        "--resume {}: no run.json in {} nor in {} (give the run directory's path, or its name with --runs-dir)",
        given.display(),
        given.display(),
        under.display()
    )
}

/// `lab report RUN_DIR`: re-makes the report of a ramp from its raw data.
pub fn remake_ramp_report(dir: &Path, baselines: &[PathBuf]) -> Result<report::Report> {
    report::write_report_with(dir, baselines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_takes_a_path_or_a_name_under_the_runs_dir() {
        let runs = std::env::temp_dir().join(format!("besser-resume-{}", std::process::id()));
        let run = runs.join("20261201T000000Z-x");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("run.json"), "{}").unwrap();
        assert_eq!(resolve_resume(&run, Path::new("elsewhere")).unwrap(), run);
        assert_eq!(
            resolve_resume(Path::new("20261201T000000Z-x"), &runs).unwrap(),
            run
        );
        let e = resolve_resume(Path::new("nope"), &runs)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("give the run directory's path, or its name with --runs-dir"),
            "{e}"
        );
        std::fs::remove_dir_all(&runs).unwrap();
    }
}
