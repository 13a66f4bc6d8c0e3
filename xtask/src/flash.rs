//! `cargo xtask flash`: a built image onto an inventory device's inactive
//! A/B slot (`besser_lab::flash`), or `--module-only` the driver into the
//! running kernel.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use besser_image::manifest::Manifest;
use besser_lab::device::inventory::Inventory;
use besser_lab::flash::device::{ShellSlots, SlotDevice};
use besser_lab::flash::{plan, run};

#[derive(clap::Args)]
pub struct Args {
    /// Device name in the inventory (its `boot:` says where the slots are),
    /// or `vm`: the virtual device of `lab vm up --ab`.
    #[arg(long, required_unless_present_any = ["maskrom", "place", "labgrid_tags"])]
    device: Option<String>,
    /// Inventory file (default: $BESSER_INVENTORY or ~/.config/besser/inventory.yaml).
    #[arg(long)]
    inventory: Option<PathBuf>,
    /// Image directory, e.g. target/images/pinetab2-release.
    #[arg(long, required_unless_present = "maskrom")]
    image: Option<PathBuf>,
    /// Only bes2600.ko, into the running kernel's slot and system (depmod,
    /// reload; no reboot).
    #[arg(long)]
    module_only: bool,
    /// Print the plan (what is copied where, which variables change) and
    /// write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Recovery when nothing boots: over USB to the board's boot ROM
    /// (PineTab2: hold the maskrom button while powering up). Downloads
    /// `--loader`, then writes each `--write SECTOR:FILE` and reads it back.
    #[arg(long, conflicts_with_all = ["device", "image", "module_only", "dry_run"])]
    maskrom: bool,
    /// A Rockchip boot file (RK356x SPL loader, what `rkdeveloptool db` takes).
    #[arg(long, requires = "maskrom")]
    loader: Option<PathBuf>,
    /// `SECTOR:FILE` to write in maskrom mode (mainline U-Boot on the RK3566:
    /// `64:idbloader.img` and `16384:u-boot.itb`); repeatable.
    #[arg(long = "write", requires = "maskrom")]
    writes: Vec<String>,
    #[command(flatten)]
    farm: crate::farm::FarmOpts,
}

pub fn run(a: Args) -> Result<()> {
    if a.maskrom {
        let loader = a
            .loader
            .as_deref()
            .ok_or_else(|| anyhow!("--maskrom needs --loader FILE (the RK356x SPL loader)"))?;
        return crate::maskrom::run(loader, &a.writes);
    }
    let sh = xshell::Shell::new()?;
    let held = crate::farm::take(
        &sh,
        &a.farm,
        a.inventory.as_deref(),
        &crate::lab::target_dir(),
    )?;
    let image = a
        .image
        .clone()
        .ok_or_else(|| anyhow!("--image DIR is needed"))?;
    let r = flash_device(&a, held.as_ref().map(|h| h.device.clone()), &image);
    if let Some(h) = held {
        h.finish(&format!(
            "flash of {}",
            image
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
    }
    r
}

fn flash_device(
    a: &Args,
    given: Option<besser_lab::device::inventory::Device>,
    image: &std::path::Path,
) -> Result<()> {
    let image = image.to_path_buf();
    let dev = if let Some(d) = given {
        d
    } else if a.device.as_deref() == Some("vm") {
        // `cargo xtask lab vm up --ab --image DIR`.
        let st = besser_lab::vm::running(&crate::lab::target_dir())
            .ok_or_else(|| anyhow!("no virtual device is up: `cargo xtask lab vm up --ab --image target/images/qemu-arm64-release` first"))?;
        st.device()
    } else {
        let inv_path = a
            .inventory
            .clone()
            .unwrap_or_else(besser_lab::ramp::command::default_inventory);
        let inv = Inventory::load(&inv_path)?;
        let device = a
            .device
            .clone()
            .ok_or_else(|| anyhow!("--device NAME or --place NAME is needed"))?;
        inv.devices.get(&device).cloned().ok_or_else(|| {
            anyhow!(
                "no device {:?} in {} (it has: {})",
                device,
                inv_path.display(),
                inv.devices.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })?
    };
    let m = Manifest::load(&image)?;
    let boot = dev.boot.clone().ok_or_else(|| {
        anyhow!(
            "device {}: the inventory gives no `boot:`; it cannot be flashed",
            dev.name
        )
    })?;
    let mut sd = ShellSlots::new(dev.clone())?;
    sd.read_only = a.dry_run;
    let st = sd
        .state()
        .with_context(|| format!("reading {}'s slots", dev.name))?;
    println!(
        "{}: runs {} from slot {}",
        dev.name,
        st.kernel_release,
        st.booted
            .map_or("? (no rauc.slot= on its command line)".into(), |s| s
                .to_string())
    );
    let p = plan::plan(&image, &m, &boot, &st, a.module_only)?;
    println!("{p}");
    if a.dry_run {
        println!("(dry run: nothing was written)");
        return Ok(());
    }
    let r = run::flash(&mut sd, &p)?;
    match r.slot.filter(|_| !a.module_only) {
        Some(slot) => println!(
            "{}: slot {slot} verified and marked good: {} bytes copied ({:.1} s), reboot {:.1} s, verify {:.1} s",
            dev.name, r.bytes_copied, r.copy_s, r.reboot_s, r.verify_s
        ),
        None => println!(
            "{}: bes2600 reloaded with the image's srcversion: {} bytes copied ({:.1} s)",
            dev.name, r.bytes_copied, r.copy_s
        ),
    }
    Ok(())
}
