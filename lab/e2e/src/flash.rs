//! `cargo xtask flash` on the A/B virtual device (`besser_lab::abvm`):
//! Debian's U-Boot, the image's boot script, the environment in flash. A
//! good image lands in the other slot and is marked good; a kernel that
//! panics at boot comes back on the previous slot without help; a copy
//! interrupted by a dropped SSH session leaves the running slot and the
//! boot variables as they were, and a rerun succeeds; a manifest that does
//! not match its files and a slot that does not fit are refused before
//! anything is written.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use besser_image::manifest::{self, Manifest};
use besser_lab::abvm;
use besser_lab::assets::{LabKeys, VmImage};
use besser_lab::flash::device::{Back, Running, ShellSlots, SlotDevice};
use besser_lab::flash::env::Env;
use besser_lab::flash::plan::{self, DeviceState, Plan, PlanError};
use besser_lab::flash::run::{flash, FlashError, FlashReport};
use besser_lab::flash::slots::Slot;
use besser_lab::vm::{Vm, VmOptions};

/// A [`SlotDevice`] whose SSH session drops during its `n`-th file copy.
struct DropsSession<'a> {
    inner: &'a mut ShellSlots,
    on_put: usize,
    puts: usize,
}

impl SlotDevice for DropsSession<'_> {
    fn state(&mut self) -> Result<DeviceState> {
        self.inner.state()
    }
    fn read_env(&mut self) -> Result<Env> {
        self.inner.read_env()
    }
    fn write_env(&mut self, env: &Env) -> Result<()> {
        self.inner.write_env(env)
    }
    fn start_staging(&mut self, slot: Slot, dirs: &[String]) -> Result<()> {
        self.inner.start_staging(slot, dirs)
    }
    fn put(&mut self, slot: Slot, rel: &str, data: &mut dyn Read, len: u64) -> Result<()> {
        self.puts += 1;
        if self.puts == self.on_put {
            // Half the file, then the session goes (the transport is dropped
            // mid-command, as when the wired link is pulled).
            let mut half = data.take(len / 2);
            let r = self.inner.put(slot, rel, &mut half, len);
            self.inner.drop_session();
            r?;
            bail!("the SSH session was dropped during the copy of {rel}");
        }
        self.inner.put(slot, rel, data, len)
    }
    fn keep_bootargs(&mut self, from: Slot, slot: Slot) -> Result<()> {
        self.inner.keep_bootargs(from, slot)
    }
    fn staged_sha256(&mut self, slot: Slot, rels: &[&str]) -> Result<Vec<Option<String>>> {
        self.inner.staged_sha256(slot, rels)
    }
    fn commit(&mut self, slot: Slot) -> Result<()> {
        self.inner.commit(slot)
    }
    fn reboot(&mut self) -> Result<Back> {
        self.inner.reboot()
    }
    fn power_cycle(&mut self) -> Result<Option<Back>> {
        self.inner.power_cycle()
    }
    fn running(&mut self) -> Result<Running> {
        self.inner.running()
    }
    fn install_module(
        &mut self,
        slot: Option<Slot>,
        rel: &str,
        kr: &str,
        data: &[u8],
        sha: &str,
    ) -> Result<()> {
        self.inner.install_module(slot, rel, kr, data, sha)
    }
}

/// A copy of `image_dir` whose initramfs has no `/init`: the kernel finds
/// no init and no root, panics at boot and, with `panic=5`, resets.
fn broken_image(image_dir: &Path, to: &Path) -> Result<PathBuf> {
    let _ = fs::remove_dir_all(to);
    let st = std::process::Command::new("cp")
        .arg("-a")
        .arg(image_dir)
        .arg(to)
        .status()?;
    ensure!(st.success(), "copying {}", image_dir.display());
    let mut m = Manifest::load(to)?;
    let mut w = besser_lab::cpio::Writer::new(Vec::new());
    w.add(&besser_lab::cpio::Entry::Dir {
        path: "dev",
        mode: 0o755,
    })?;
    fs::write(to.join(&m.artifacts.initramfs), w.finish()?)?;
    m.sha256 = manifest::hash_tree(to, &[manifest::MANIFEST_FILE])?;
    fs::write(to.join(manifest::MANIFEST_FILE), m.to_json())?;
    Ok(to.to_path_buf())
}

fn plan_on(dev: &mut dyn SlotDevice, dir: &Path) -> Result<std::result::Result<Plan, PlanError>> {
    let m = Manifest::load(dir)?;
    let st = dev.state()?;
    Ok(plan::plan(dir, &m, &abvm::storage(), &st, false))
}

fn slot_image_sha(sd: &mut ShellSlots, slot: Slot) -> Result<String> {
    sd.shell(&format!(
        "sha256sum /boot/{slot}/Image 2>/dev/null || echo none"
    ))
}

/// A fresh A/B virtual device in `dir`, slot A holding `image_dir`;
/// returns it and the seconds from QEMU's start to SSH.
fn boot_ab_vm(dir: &Path, image_dir: &Path, image: &VmImage, keys: &LabKeys) -> Result<(Vm, f64)> {
    let ub = abvm::create(
        dir,
        image_dir,
        image,
        &besser_lab::vm::kernel_cmdline(image),
    )?;
    let t0 = Instant::now();
    let vm = Vm::boot_with(
        &VmOptions {
            image,
            keys,
            dir: &dir.join("run"),
            detached: false,
        },
        Some(&ub),
    )
    .with_context(|| {
        format!(
            "booting the A/B virtual device (console: {})",
            dir.join("run/console.log").display()
        )
    })?;
    Ok((vm, t0.elapsed().as_secs_f64()))
}

/// What the end-to-end run measured, for the step line and `bench flash`.
pub struct FlashE2e {
    pub boot_to_ssh_s: f64,
    pub good: FlashReport,
    pub image_bytes: u64,
}

/// Every case, in order, on one A/B virtual device booted from
/// `image_dir` (a qemu-arm64 image).
pub fn flash_cases_on_the_ab_vm(
    target: &Path,
    image_dir: &Path,
    image: &VmImage,
    keys: &LabKeys,
) -> Result<FlashE2e> {
    let dir = target.join("lab-vm-ab");
    let (vm, boot_to_ssh_s) = boot_ab_vm(&dir, image_dir, image, keys)?;
    let mut sd = ShellSlots::new(vm.device())?;

    // The first boot: slot A, the boot script saved its variables.
    let st = sd.state()?;
    ensure!(
        st.booted == Some(Slot::A),
        "the first boot ran slot {:?}, expected A",
        st.booted
    );
    ensure!(
        st.ab.left(Slot::A) == 2 && st.ab.order == [Slot::A, Slot::B],
        "after the first boot the variables are {:?}; expected A first with 2 tries left",
        st.ab
    );

    // A manifest that does not match its files: refused, nothing written.
    let tampered = broken_image(image_dir, &dir.join("tampered"))?;
    fs::write(tampered.join("config"), b"# edited after the build\n")?;
    match plan_on(&mut sd, &tampered)? {
        Err(PlanError::ManifestMismatch { changed, .. }) => {
            ensure!(changed == ["config"], "mismatch lists {changed:?}")
        }
        other => bail!("a tampered image was not refused: {other:?}"),
    }

    // Not enough space: fill the partition, the plan refuses, unfill.
    let free = st.free_bytes;
    let need = match plan_on(&mut sd, image_dir)? {
        Ok(Plan::Slot { bytes, .. }) => bytes,
        other => bail!("no slot plan for the good image: {other:?}"),
    };
    let fill_kib = (free - need / 2) / 1024;
    sd.shell(&format!(
        "dd if=/dev/zero of=/boot/fill bs=1024 count={fill_kib} 2>/dev/null; sync"
    ))?;
    let r = plan_on(&mut sd, image_dir)?;
    sd.shell("rm -f /boot/fill; sync")?;
    ensure!(
        matches!(r, Err(PlanError::NoSpace { .. })),
        "a full boot partition was not refused: {r:?}"
    );

    // A good image: slot B, verified, marked good.
    let p = plan_on(&mut sd, image_dir)?.map_err(anyhow::Error::from)?;
    let good = flash(&mut sd, &p).context("flashing the good image")?;
    let st = sd.state()?;
    ensure!(
        st.booted == Some(Slot::B),
        "after a good flash the device runs {:?}",
        st.booted
    );
    ensure!(
        st.ab.order == [Slot::B, Slot::A] && st.ab.left(Slot::B) == 3,
        "after a good flash the variables are {:?}",
        st.ab
    );

    // `lab ramp --image` on a device that runs the image already: no flash.
    let (img, flashed) = besser_lab::flash::ensure_image(&sd.dev, image_dir)?;
    ensure!(
        !flashed,
        "ensure_image flashed an image the booted slot already holds"
    );
    ensure!(
        img.kernel_release == st.kernel_release,
        "ensure_image named {img:?}"
    );
    ensure!(
        sd.state()?.booted == Some(Slot::B),
        "ensure_image rebooted the device"
    );

    // Interrupted copy into A: B keeps running, the variables and A stay.
    let env_before = sd.read_env()?;
    let a_before = slot_image_sha(&mut sd, Slot::A)?;
    let p = plan_on(&mut sd, image_dir)?.map_err(anyhow::Error::from)?;
    let e = flash(
        &mut DropsSession {
            inner: &mut sd,
            on_put: 1,
            puts: 0,
        },
        &p,
    )
    .unwrap_err();
    ensure!(
        format!("{e:#}").contains("dropped"),
        "the interrupted flash failed with {e:#}"
    );
    ensure!(
        sd.read_env()? == env_before,
        "the interrupted flash changed the boot variables"
    );
    ensure!(
        slot_image_sha(&mut sd, Slot::A)? == a_before,
        "the interrupted flash changed slot A"
    );
    ensure!(
        sd.state()?.booted == Some(Slot::B),
        "the interrupted flash rebooted the device"
    );
    // ...and a rerun succeeds.
    let p = plan_on(&mut sd, image_dir)?.map_err(anyhow::Error::from)?;
    flash(&mut sd, &p).context("rerunning the interrupted flash")?;
    ensure!(
        sd.state()?.booted == Some(Slot::A),
        "the rerun did not land in slot A"
    );

    // A kernel that panics: one try on B, then U-Boot takes A by itself.
    let broken = broken_image(image_dir, &dir.join("broken"))?;
    let p = plan_on(&mut sd, &broken)?.map_err(anyhow::Error::from)?;
    let e = flash(&mut sd, &p).unwrap_err();
    match e.downcast_ref::<FlashError>() {
        Some(FlashError::FellBack {
            target: Slot::B,
            running: Slot::A,
        }) => {}
        _ => bail!("the panicking image did not fall back to slot A: {e:#}"),
    }
    let st = sd.state()?;
    ensure!(
        st.booted == Some(Slot::A) && st.ab.order == [Slot::A, Slot::B] && st.ab.left(Slot::B) == 0,
        "after the fall-back: {st:?}"
    );
    let console = fs::read_to_string(dir.join("run/console.log")).unwrap_or_default();
    ensure!(
        console.contains("besser-ab: slot B") && console.contains("Kernel panic"),
        "the console does not show slot B's try and its panic"
    );
    drop(vm);
    let image_bytes = match plan_on_bytes(image_dir) {
        Some(b) => b,
        None => good.bytes_copied,
    };
    Ok(FlashE2e {
        boot_to_ssh_s,
        good,
        image_bytes,
    })
}

/// The image directory's files as the manifest lists them, in bytes.
fn plan_on_bytes(image_dir: &Path) -> Option<u64> {
    let m = Manifest::load(image_dir).ok()?;
    m.sha256
        .keys()
        .map(|f| fs::metadata(image_dir.join(f)).map(|md| md.len()).ok())
        .sum()
}

/// `cargo xtask bench flash`: on a fresh A/B virtual device, one whole-image
/// flash (copy, reboot, verify timed apart) and one `--module-only`.
pub struct FlashBench {
    pub boot_to_ssh_s: f64,
    pub full: FlashReport,
    pub image_bytes: u64,
    pub module: FlashReport,
    pub module_file_bytes: u64,
}

pub fn bench_flash(
    target: &Path,
    image_dir: &Path,
    image: &VmImage,
    keys: &LabKeys,
) -> Result<FlashBench> {
    let dir = target.join("bench-flash");
    let (vm, boot_to_ssh_s) = boot_ab_vm(&dir, image_dir, image, keys)?;
    let mut sd = ShellSlots::new(vm.device())?;
    let m = Manifest::load(image_dir)?;
    let st = sd.state()?;
    let p = plan::plan(image_dir, &m, &abvm::storage(), &st, false)?;
    let full = flash(&mut sd, &p)?;
    let st = sd.state()?;
    let p = plan::plan(image_dir, &m, &abvm::storage(), &st, true)?;
    let module = flash(&mut sd, &p)?;
    drop(vm);
    let module_file_bytes =
        fs::metadata(image_dir.join(&m.driver.as_ref().context("no driver")?.module))?.len();
    Ok(FlashBench {
        boot_to_ssh_s,
        full,
        image_bytes: plan_on_bytes(image_dir).unwrap_or(0),
        module,
        module_file_bytes,
    })
}
