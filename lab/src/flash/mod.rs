//! `cargo xtask flash`: a built image onto a lab device's inactive A/B slot,
//! one try, and a kernel that does not come back falls back by itself.
//!
//! - [`env`]: the U-Boot environment image (codec, checked against
//!   `mkenvimage`).
//! - [`slots`]: RAUC's A/B variables (`BOOT_ORDER`, `BOOT_<slot>_LEFT`).
//! - [`plan`]: what a flash will do, decided before anything is written
//!   (manifest check, space, copies, variables before/after): `--dry-run`.
//! - [`device`]: the operations a flash needs ([`device::SlotDevice`]) and
//!   their shell implementation over the lab transport.
//! - [`run`]: carrying a plan out.
//! - [`maskrom`]: recovery over Rockchip's USB protocol when nothing boots.

pub mod device;
pub mod env;
pub mod maskrom;
pub mod plan;
pub mod run;
pub mod slots;

use std::path::Path;

use anyhow::{Context, Result};

use crate::device::inventory::Device;
use crate::ramp::RampImage;
use device::SlotDevice as _;

/// `lab ramp --device NAME --image DIR`: flashes the image unless the
/// device's booted slot already holds this manifest. Returns the image as
/// the ramp records it and whether it was flashed.
pub fn ensure_image(dev: &Device, image_dir: &Path) -> Result<(RampImage, bool)> {
    let m = besser_image::manifest::Manifest::load(image_dir)?;
    let sha = besser_image::sha256_file(&image_dir.join(besser_image::manifest::MANIFEST_FILE))?;
    let img = RampImage {
        dir: image_dir.to_path_buf(),
        name: format!("{}-{}", m.board, m.flavour),
        manifest_sha256: sha.clone(),
        kernel_release: m.kernel_release.clone(),
    };
    let boot = dev.boot.clone().with_context(|| {
        format!(
            "device {}: --image needs a flashable device (its inventory entry has no `boot:`)",
            dev.name
        )
    })?;
    let mut sd = device::ShellSlots::new(dev.clone())?;
    let st = sd.state()?;
    if st.booted_manifest_sha256.as_deref() == Some(sha.as_str()) {
        return Ok((img, false));
    }
    let p = plan::plan(image_dir, &m, &boot, &st, false)?;
    crate::progress::note(&format!("{}: flashing {} first:\n{p}", dev.name, img.name));
    run::flash(&mut sd, &p)?;
    Ok((img, true))
}
