//! What a flash will do, decided before anything is written: the slot it
//! writes, each file copied (from the image directory, to the device, its
//! size and sha256 from the manifest), the boot variables before and after,
//! and what the fresh boot must show. `--dry-run` prints this and stops.
//! Pure: the device's state comes in as [`DeviceState`].

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use besser_image::manifest::Manifest;

use super::slots::{AbState, Slot};
use crate::device::inventory::BootStorage;

/// The slot's fixed file names, the ones the boot script loads.
pub const SLOT_KERNEL: &str = "Image";
pub const SLOT_INITRAMFS: &str = "initramfs.cpio";
pub const SLOT_BOOTARGS: &str = "bootargs.env";
/// The image's manifest, kept in the slot: what the slot holds.
pub const SLOT_MANIFEST: &str = "manifest.json";
/// Where the new slot is assembled before it replaces the old one.
pub const STAGING_PREFIX: &str = ".besser-staging-";

/// What the device said before the flash ([`super::run::read_state`]).
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceState {
    pub boot_id: String,
    pub kernel_release: String,
    /// The slot the running kernel was booted from (`rauc.slot=`), if any.
    pub booted: Option<Slot>,
    pub ab: AbState,
    /// Free bytes on the boot partition, and what each slot's directory
    /// holds now.
    pub free_bytes: u64,
    pub slot_bytes: [u64; 2],
    /// sha256 of the manifest the booted slot holds, if it holds one.
    pub booted_manifest_sha256: Option<String>,
}

/// One file to copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    /// Absolute, on the host.
    pub from: PathBuf,
    /// Relative to the slot directory.
    pub to: String,
    pub bytes: u64,
    pub sha256: String,
}

/// What the fresh boot must show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expect {
    pub slot: Slot,
    pub kernel_release: String,
    pub config_sha256: String,
    /// `/sys/module/bes2600/srcversion` (None: the image has no driver).
    pub srcversion: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// A whole image into the inactive slot, one try, reboot, verify, mark good.
    Slot {
        target: Slot,
        /// The boot partition's mount point and the staging/slot directories.
        mount: String,
        copies: Vec<Copy>,
        bytes: u64,
        before: AbState,
        /// For the one try.
        after: AbState,
        expect: Expect,
    },
    /// `--module-only`: bes2600.ko into the running slot and the running
    /// system, `depmod`, reload.
    Module {
        slot: Option<Slot>,
        mount: String,
        copy: Copy,
        kernel_release: String,
        srcversion: String,
    },
}

/// Why a flash is refused before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{dir}: the files do not match manifest.json ({}); rebuild the image (cargo xtask image) before flashing it", .changed.join(", "))]
    ManifestMismatch { dir: String, changed: Vec<String> },
    #[error("{dir}: the manifest has no {what}")]
    Incomplete { dir: String, what: String },
    #[error(
        "slot {target} needs {need} bytes but the boot partition has {free} free \
         ({old} more once slot {target}'s old contents go): nothing was written"
    )]
    NoSpace {
        target: Slot,
        need: u64,
        free: u64,
        old: u64,
    },
    #[error(
        "--module-only: the device runs {running}, the image is for {image}; \
         flash the whole image instead"
    )]
    OtherKernel { running: String, image: String },
}

fn incomplete(dir: &Path, what: &str) -> PlanError {
    PlanError::Incomplete {
        dir: dir.display().to_string(),
        what: what.into(),
    }
}

fn copy(dir: &Path, m: &Manifest, rel: &str, to: &str) -> Result<Copy, PlanError> {
    let sha = m
        .sha256
        .get(rel)
        .ok_or_else(|| incomplete(dir, &format!("sha256 for {rel}")))?;
    let from = dir.join(rel);
    let bytes = std::fs::metadata(&from)
        .map(|md| md.len())
        .map_err(|_| incomplete(dir, rel))?;
    Ok(Copy {
        from,
        to: to.into(),
        bytes,
        sha256: sha.clone(),
    })
}

/// The slot a flash writes: the one the device is not running (A when it
/// does not say).
pub fn inactive(st: &DeviceState) -> Slot {
    st.booted.map_or(Slot::B, Slot::other)
}

/// Plans flashing the image in `dir` (manifest `m`, already loaded) onto a
/// device in state `st` with boot storage `boot`. Checks the files against
/// the manifest and the space on the device first.
pub fn plan(
    dir: &Path,
    m: &Manifest,
    boot: &BootStorage,
    st: &DeviceState,
    module_only: bool,
) -> Result<Plan, PlanError> {
    let changed = m.verify(dir);
    if !changed.is_empty() {
        return Err(PlanError::ManifestMismatch {
            dir: dir.display().to_string(),
            changed,
        });
    }
    if module_only {
        let d = m
            .driver
            .as_ref()
            .ok_or_else(|| incomplete(dir, "driver module"))?;
        if st.kernel_release != m.kernel_release {
            return Err(PlanError::OtherKernel {
                running: st.kernel_release.clone(),
                image: m.kernel_release.clone(),
            });
        }
        // `modules/lib/modules/<release>/extra/bes2600.ko`: the same path
        // under the slot's modules tree.
        let to = d.module.clone();
        return Ok(Plan::Module {
            slot: st.booted,
            mount: boot.mount.clone(),
            copy: copy(dir, m, &d.module, &to)?,
            kernel_release: m.kernel_release.clone(),
            srcversion: d.srcversion.clone(),
        });
    }
    let target = inactive(st);
    let a = &m.artifacts;
    let mut copies = vec![
        copy(dir, m, &a.kernel, SLOT_KERNEL)?,
        copy(dir, m, &a.initramfs, SLOT_INITRAMFS)?,
    ];
    for d in &a.dtbs {
        let base = Path::new(d)
            .file_name()
            .map(|b| b.to_string_lossy().into_owned())
            .ok_or_else(|| incomplete(dir, d))?;
        copies.push(copy(dir, m, d, &base)?);
    }
    let mods = format!("{}/", a.modules.trim_end_matches('/'));
    for rel in m.sha256.keys().filter(|k| k.starts_with(&mods)) {
        copies.push(copy(dir, m, rel, rel)?);
    }
    let manifest_path = dir.join(besser_image::manifest::MANIFEST_FILE);
    let manifest_bytes = std::fs::metadata(&manifest_path)
        .map(|md| md.len())
        .map_err(|_| incomplete(dir, "manifest.json"))?;
    copies.push(Copy {
        from: manifest_path.clone(),
        to: SLOT_MANIFEST.into(),
        bytes: manifest_bytes,
        sha256: besser_image::sha256_file(&manifest_path)
            .map_err(|_| incomplete(dir, "manifest.json"))?,
    });
    let bytes: u64 = copies.iter().map(|c| c.bytes).sum();
    // The staging directory holds the new slot while the old one is still
    // there: the new one must fit the free space as it is.
    if bytes > st.free_bytes {
        return Err(PlanError::NoSpace {
            target,
            need: bytes,
            free: st.free_bytes,
            old: st.slot_bytes[target as usize],
        });
    }
    let mut after = st.ab.clone();
    after.try_slot(target, 1);
    Ok(Plan::Slot {
        target,
        mount: boot.mount.clone(),
        copies,
        bytes,
        before: st.ab.clone(),
        after,
        expect: Expect {
            slot: target,
            kernel_release: m.kernel_release.clone(),
            config_sha256: m.config_sha256.clone(),
            srcversion: m.driver.as_ref().map(|d| d.srcversion.clone()),
        },
    })
}

fn ab_text(s: &AbState) -> String {
    let order: Vec<&str> = s.order.iter().map(|x| x.name()).collect();
    format!(
        "BOOT_ORDER=\"{}\" BOOT_A_LEFT={} BOOT_B_LEFT={}",
        order.join(" "),
        s.left(Slot::A),
        s.left(Slot::B)
    )
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut w = String::new();
        match self {
            Plan::Slot {
                target,
                mount,
                copies,
                bytes,
                before,
                after,
                expect,
            } => {
                let staging = format!("{mount}/{STAGING_PREFIX}{target}");
                let _ = writeln!(
                    w,
                    "flash into slot {target} ({mount}/{target}), {bytes} bytes in {} files:",
                    copies.len()
                );
                for c in copies.iter().filter(|c| !c.to.starts_with("modules/")) {
                    let _ = writeln!(
                        w,
                        "  {} -> {staging}/{} ({} bytes, sha256 {})",
                        c.from.display(),
                        c.to,
                        c.bytes,
                        &c.sha256[..16.min(c.sha256.len())]
                    );
                }
                let nmod = copies
                    .iter()
                    .filter(|c| c.to.starts_with("modules/"))
                    .count();
                if nmod > 0 {
                    let _ = writeln!(w, "  {nmod} module files -> {staging}/modules/");
                }
                let _ = writeln!(w, "  bootargs.env: kept from the running slot");
                let _ = writeln!(w, "then: sync, check every sha256 on the device, replace {mount}/{target} with the staging directory, sync");
                let _ = writeln!(
                    w,
                    "boot variables: {} -> {} (one try)",
                    ab_text(before),
                    ab_text(after)
                );
                let _ = writeln!(
                    w,
                    "reboot; the fresh boot must run slot {} with uname -r {}, config sha256 {}{}",
                    expect.slot,
                    expect.kernel_release,
                    &expect.config_sha256[..16.min(expect.config_sha256.len())],
                    expect
                        .srcversion
                        .as_deref()
                        .map(|s| format!(", bes2600 srcversion {s}"))
                        .unwrap_or_default()
                );
                let mut good = after.clone();
                good.mark_good(*target);
                let _ = writeln!(w, "then mark it good: {}", ab_text(&good));
                let _ = write!(
                    w,
                    "if it does not come back, U-Boot falls back to slot {} by itself",
                    target.other()
                );
            }
            Plan::Module {
                slot,
                mount,
                copy,
                kernel_release,
                srcversion,
            } => {
                let _ = writeln!(w, "module only, into the running kernel {kernel_release}:");
                if let Some(s) = slot {
                    let _ = writeln!(
                        w,
                        "  {} -> {mount}/{s}/{} ({} bytes)",
                        copy.from.display(),
                        copy.to,
                        copy.bytes
                    );
                }
                let _ = writeln!(
                    w,
                    "  {} -> /lib/modules/{kernel_release}/extra/bes2600.ko",
                    copy.from.display()
                );
                let _ = write!(w, "then: depmod, reload bes2600, check srcversion {srcversion}; no reboot, no boot variables change");
            }
        }
        f.write_str(&w)
    }
}
