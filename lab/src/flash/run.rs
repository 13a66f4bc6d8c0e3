//! Carrying out a [`Plan`] on a [`SlotDevice`]: stage, verify, commit, one
//! try, reboot, verify, mark good, or find the device back on the old slot
//! and say so. Nothing here knows SSH or shell.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use super::device::{Back, SlotDevice};
use super::plan::{Copy, Expect, Plan};
use super::slots::{AbState, Slot};

/// What a finished flash measured (`cargo xtask bench flash`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlashReport {
    pub slot: Option<Slot>,
    pub bytes_copied: u64,
    pub copy_s: f64,
    pub reboot_s: f64,
    pub verify_s: f64,
}

/// A flash that did not end on a verified slot. Each says what the device
/// runs now.
#[derive(Debug, thiserror::Error)]
pub enum FlashError {
    #[error(
        "slot {target} did not come up: the device is back on slot {running} by itself (U-Boot spent \
         slot {target}'s one try and fell back); slot {target} is marked bad, slot {running} good"
    )]
    FellBack { target: Slot, running: Slot },
    #[error(
        "the device did not come back within its boot timeout after booting slot {target} \
         (last probe: {last}); U-Boot falls back to slot {} on the next boot: {hint}",
        .target.other()
    )]
    NotBack {
        target: Slot,
        last: String,
        hint: String,
    },
    #[error(
        "slot {target} booted but is not the image: {what}; it is marked bad and the device was \
         rebooted into slot {}",
        .target.other()
    )]
    Mismatch { target: Slot, what: String },
    #[error("a staged file does not match the manifest after the copy: {file} (expected sha256 {expected}, found {found}); nothing was committed, slot {target} is as it was")]
    Corrupt {
        target: Slot,
        file: String,
        expected: String,
        found: String,
    },
}

fn dirs_of(copies: &[Copy]) -> Vec<String> {
    let mut d: Vec<String> = copies
        .iter()
        .filter_map(|c| c.to.rsplit_once('/').map(|(dir, _)| dir.to_string()))
        .collect();
    d.sort();
    d.dedup();
    d
}

/// Carries out `plan` on `dev`. The active slot and the boot variables are
/// not touched until every staged file matched the manifest on the device.
pub fn flash(dev: &mut dyn SlotDevice, plan: &Plan) -> Result<FlashReport> {
    match plan {
        Plan::Module {
            slot,
            copy,
            kernel_release,
            srcversion,
            ..
        } => {
            let t0 = Instant::now();
            let data = std::fs::read(&copy.from)
                .with_context(|| format!("reading {}", copy.from.display()))?;
            dev.install_module(*slot, &copy.to, kernel_release, &data, &copy.sha256)?;
            let copy_s = t0.elapsed().as_secs_f64();
            let t1 = Instant::now();
            let r = dev.running()?;
            if r.srcversion.as_deref() != Some(srcversion.as_str()) {
                bail!(
                    "bes2600 reloaded with srcversion {:?}, the image's is {srcversion}",
                    r.srcversion
                );
            }
            Ok(FlashReport {
                slot: *slot,
                bytes_copied: copy.bytes,
                copy_s,
                reboot_s: 0.0,
                verify_s: t1.elapsed().as_secs_f64(),
            })
        }
        Plan::Slot {
            target,
            copies,
            bytes,
            after,
            expect,
            ..
        } => {
            let target = *target;
            let t0 = Instant::now();
            let st = dev.state()?;
            if st.booted == Some(target) {
                bail!("the device now runs slot {target}, the one this plan writes: plan again");
            }
            dev.start_staging(target, &dirs_of(copies))?;
            for c in copies {
                let mut f = std::fs::File::open(&c.from)
                    .with_context(|| format!("reading {}", c.from.display()))?;
                dev.put(target, &c.to, &mut f, c.bytes)?;
            }
            if let Some(b) = st.booted {
                dev.keep_bootargs(b, target)?;
            }
            let rels: Vec<&str> = copies.iter().map(|c| c.to.as_str()).collect();
            let got = dev.staged_sha256(target, &rels)?;
            for (c, g) in copies.iter().zip(&got) {
                if g.as_deref() != Some(c.sha256.as_str()) {
                    return Err(FlashError::Corrupt {
                        target,
                        file: c.to.clone(),
                        expected: c.sha256.clone(),
                        found: g.clone().unwrap_or_else(|| "nothing".into()),
                    }
                    .into());
                }
            }
            dev.commit(target)?;
            // The one try, on top of the variables as they are now.
            let mut env = dev.read_env()?;
            let mut ab = AbState::from_env(&env).map_err(|e| anyhow!("U-Boot environment: {e}"))?;
            ab.try_slot(target, 1);
            if ab.order != after.order {
                bail!(
                    "the boot order changed since the plan ({:?} planned, {:?} now): nothing was switched; plan again",
                    after.order,
                    ab.order
                );
            }
            ab.apply(&mut env);
            dev.write_env(&env)?;
            let copy_s = t0.elapsed().as_secs_f64();

            let t1 = Instant::now();
            if let Back::No { last } = dev.reboot()? {
                match dev.power_cycle()? {
                    Some(Back::Yes) => {}
                    Some(Back::No { last }) => {
                        return Err(FlashError::NotBack {
                            target,
                            last,
                            hint: "not after the inventory's power command either".into(),
                        }
                        .into())
                    }
                    None => {
                        return Err(FlashError::NotBack {
                            target,
                            last,
                            hint: "power-cycle it (the inventory has no power command)".into(),
                        }
                        .into())
                    }
                }
            }
            let reboot_s = t1.elapsed().as_secs_f64();

            let t2 = Instant::now();
            let r = dev.running()?;
            let mut env = dev.read_env()?;
            let mut ab = AbState::from_env(&env).map_err(|e| anyhow!("U-Boot environment: {e}"))?;
            match r.booted {
                Some(s) if s == target => {}
                Some(running) => {
                    ab.mark_bad(target);
                    ab.apply(&mut env);
                    dev.write_env(&env)?;
                    return Err(FlashError::FellBack { target, running }.into());
                }
                None => bail!("the device came back without `rauc.slot=` on its command line: is it booting through besser's boot script?"),
            }
            if let Some(what) = mismatch(expect, &r) {
                ab.mark_bad(target);
                ab.apply(&mut env);
                dev.write_env(&env)?;
                let _ = dev.reboot()?;
                return Err(FlashError::Mismatch { target, what }.into());
            }
            ab.mark_good(target);
            ab.apply(&mut env);
            dev.write_env(&env)?;
            Ok(FlashReport {
                slot: Some(target),
                bytes_copied: *bytes,
                copy_s,
                reboot_s,
                verify_s: t2.elapsed().as_secs_f64(),
            })
        }
    }
}

/// What differs between the running kernel and the image, if anything.
fn mismatch(e: &Expect, r: &super::device::Running) -> Option<String> {
    let mut w = Vec::new();
    if r.kernel_release != e.kernel_release {
        w.push(format!(
            "uname -r {} (image: {})",
            r.kernel_release, e.kernel_release
        ));
    }
    if r.config_sha256.as_deref() != Some(e.config_sha256.as_str()) {
        w.push(format!(
            "config sha256 {} (image: {})",
            r.config_sha256
                .as_deref()
                .unwrap_or("unknown: no /proc/config.gz"),
            e.config_sha256
        ));
    }
    if let Some(want) = &e.srcversion {
        if r.srcversion.as_deref() != Some(want.as_str()) {
            w.push(format!(
                "bes2600 srcversion {} (image: {want})",
                r.srcversion.as_deref().unwrap_or("none: not loaded")
            ));
        }
    }
    (!w.is_empty()).then(|| w.join(", "))
}

/// After a reboot that is not a flash (a ramp's fresh boot): the booted
/// slot proved good again, so its tries go back to
/// [`super::slots::GOOD_TRIES`] (RAUC's mark-good at every good boot);
/// otherwise every reboot spends one and the slot runs out after three.
/// Returns the booted slot, if the device says.
pub fn mark_booted_good(dev: &mut dyn SlotDevice) -> Result<Option<Slot>> {
    let r = dev.running()?;
    let Some(slot) = r.booted else {
        return Ok(None);
    };
    let mut env = dev.read_env()?;
    let mut ab = AbState::from_env(&env).map_err(|e| anyhow!("U-Boot environment: {e}"))?;
    if ab.left(slot) < super::slots::GOOD_TRIES {
        ab.mark_good(slot);
        ab.apply(&mut env);
        dev.write_env(&env)?;
    }
    Ok(Some(slot))
}
