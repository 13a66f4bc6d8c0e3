//! The A/B virtual device: QEMU `virt` (arm64, TCG) booted by Debian's
//! `u-boot-qemu` (qemu_arm64) instead of `-kernel`, so a flash meets a real
//! bootloader. U-Boot's default `bootcmd` (distro boot) finds `boot.scr`
//! (the image's A/B boot script) on the first partition of a virtio disk, a
//! FAT file system holding the slots `A/` and `B/` and the A/B variables
//! (`uboot.env`, a U-Boot environment image the script reads with `env
//! import -c` and writes with `fatwrite`). Built without root: `mkfs.vfat
//! -C` and `mcopy` (mtools) make and fill the partition, `sfdisk` writes the
//! partition table into a plain file.
//!
//! Why not U-Boot's own environment in the second flash bank: QEMU 7.2's
//! CFI flash ("Write to buffer emulation is flawed") times U-Boot's
//! `saveenv` out half-way; the file is the same format, CRC and all.
//!
//! In the guest the boot partition is `/dev/vda1`, mounted at `/boot`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use tool::run;

use crate::assets::VmImage;
use crate::device::inventory::BootStorage;

/// Debian's `u-boot-qemu` build for `qemu-system-aarch64 -M virt`.
pub const UBOOT_BIN: &str = "/usr/lib/u-boot/qemu_arm64/u-boot.bin";
/// qemu_arm64_defconfig's `CONFIG_ENV_SIZE`: the size `env export -c`
/// writes.
pub const ENV_SIZE: u64 = 0x40000;
/// The boot partition: room for two slots of an image and a staging copy.
pub const BOOT_PART_MIB: u64 = 160;
/// Where the guest mounts it, and what it is.
pub const GUEST_BOOT_MOUNT: &str = "/boot";
pub const GUEST_BOOT_DEV: &str = "/dev/vda1";
/// The A/B variables (the boot script's `besser_env_file`).
pub const GUEST_ENV_FILE: &str = "/boot/uboot.env";

/// What QEMU boots an A/B virtual device from.
#[derive(Clone, Debug)]
pub struct UBootBoot {
    pub firmware: PathBuf,
    pub disk: PathBuf,
    /// The device's inventory `boot:`.
    pub storage: BootStorage,
}

/// The guest's view of the boot storage.
pub fn storage() -> BootStorage {
    BootStorage {
        mount: GUEST_BOOT_MOUNT.into(),
        device: Some(GUEST_BOOT_DEV.into()),
        env_path: GUEST_ENV_FILE.into(),
        env_offset: 0,
        env_size: ENV_SIZE,
        env_redundant: false,
    }
}

mod tool {
    use anyhow::{bail, Context, Result};
    use std::process::Command;

    /// Runs a tool, its stderr in the error.
    pub fn run(c: &mut Command) -> Result<()> {
        let what = format!("{c:?}");
        let out = c.output().with_context(|| format!("running {what}"))?;
        if !out.status.success() {
            bail!(
                "{what}: {} ({})",
                String::from_utf8_lossy(&out.stderr).trim(),
                out.status
            );
        }
        Ok(())
    }
}

/// Creates `dir/boot.img`: slot A holding `image_dir`'s kernel and
/// initramfs with `bootargs` as its command line, slot B empty, the image's
/// `boot.scr` at the root, no `uboot.env` yet (the boot script writes it
/// on the first boot, A first with 3 tries).
pub fn create(dir: &Path, image_dir: &Path, image: &VmImage, bootargs: &str) -> Result<UBootBoot> {
    let m = besser_image::manifest::Manifest::load(image_dir)?;
    let scr = m.artifacts.boot_script.as_deref().with_context(|| {
        format!(
            "{}: no boot script in the manifest (an image of a U-Boot board built before flash support: rebuild it)",
            image_dir.display()
        )
    })?;
    if !Path::new(UBOOT_BIN).exists() {
        bail!("{UBOOT_BIN} is missing: apt-get install u-boot-qemu");
    }
    fs::create_dir_all(dir)?;
    let root = dir.join("boot-root");
    let _ = fs::remove_dir_all(&root);
    fs::create_dir_all(root.join("A"))?;
    fs::create_dir_all(root.join("B"))?;
    fs::copy(image_dir.join(scr), root.join("boot.scr"))?;
    fs::copy(
        &image.kernel,
        root.join("A").join(crate::flash::plan::SLOT_KERNEL),
    )?;
    fs::copy(
        &image.initrd,
        root.join("A").join(crate::flash::plan::SLOT_INITRAMFS),
    )?;
    fs::copy(
        image_dir.join(besser_image::manifest::MANIFEST_FILE),
        root.join("A").join(crate::flash::plan::SLOT_MANIFEST),
    )?;
    fs::write(
        root.join("A").join(crate::flash::plan::SLOT_BOOTARGS),
        format!("besser_bootargs={bootargs}\n"),
    )?;
    let part = dir.join("boot-part.img");
    let _ = fs::remove_file(&part);
    run(std::process::Command::new("mkfs.vfat")
        .args(["-n", "BESSERBOOT", "-C"])
        .arg(&part)
        .arg((BOOT_PART_MIB * 1024).to_string()))?;
    run(std::process::Command::new("mcopy")
        .arg("-i")
        .arg(&part)
        .arg("-s")
        .arg(root.join("boot.scr"))
        .arg(root.join("A"))
        .arg(root.join("B"))
        .arg("::/"))?;
    let disk = dir.join("boot.img");
    let f = fs::File::create(&disk)?;
    f.set_len((BOOT_PART_MIB + 1) << 20)?;
    drop(f);
    let mut sf = std::process::Command::new("sfdisk");
    sf.args(["-q", "--no-reread", "--no-tell-kernel"])
        .arg(&disk);
    let mut child = sf
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("sfdisk (fdisk package)")?;
    {
        use std::io::Write;
        let mut i = child.stdin.take().expect("stdin");
        // One FAT32 (LBA) partition from 1 MiB.
        writeln!(i, "label: dos\nstart=2048, type=c")?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "sfdisk {}: {}",
            disk.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    {
        use std::io::{Seek, SeekFrom, Write};
        let data = fs::read(&part)?;
        let mut d = fs::OpenOptions::new().write(true).open(&disk)?;
        d.seek(SeekFrom::Start(1 << 20))?;
        d.write_all(&data)?;
        d.sync_all()?;
    }
    let _ = fs::remove_file(&part);
    let _ = fs::remove_dir_all(&root);
    Ok(UBootBoot {
        firmware: PathBuf::from(UBOOT_BIN),
        disk,
        storage: storage(),
    })
}
