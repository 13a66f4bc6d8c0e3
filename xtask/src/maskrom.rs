//! `cargo xtask flash --maskrom`: the USB side of
//! `besser_lab::flash::maskrom` (rockusb over nusb; the protocol and the
//! boot-file reading are the library's, tested against `rockusb-mock`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use besser_lab::flash::maskrom::{self, Image, Rockusb};

/// A rockusb device on the host's USB, driven from sync code.
struct Usb {
    rt: tokio::runtime::Runtime,
    dev: rockusb::nusb::Device,
}

impl Usb {
    /// The one Rockchip device (USB vendor 0x2207) in maskrom or loader mode.
    fn open(rt: tokio::runtime::Runtime) -> Result<Usb> {
        let dev = rt.block_on(async {
            let mut found: Vec<_> = rockusb::nusb::devices()
                .await
                .context("listing USB devices")?
                .collect();
            match found.len() {
                0 => bail!(
                    "no Rockchip device in maskrom or loader mode on USB (vendor 0x2207): \
                     hold the PineTab2's maskrom button while it powers up, with its USB-C port to this host"
                ),
                1 => Ok(rockusb::nusb::Device::from_usb_device_info(found.pop().expect("one"))
                    .await
                    .map_err(|e| anyhow!("opening the Rockchip device: {e}"))?),
                n => bail!("{n} Rockchip devices on USB: leave only the one to recover attached"),
            }
        })?;
        Ok(Usb { rt, dev })
    }
}

impl Rockusb for Usb {
    fn write_area(&mut self, area: u16, data: &[u8]) -> Result<()> {
        Ok(self.rt.block_on(self.dev.write_maskrom_area(area, data))?)
    }
    fn write_lba(&mut self, sector: u32, data: &[u8]) -> Result<()> {
        self.rt.block_on(self.dev.write_lba(sector, data))?;
        Ok(())
    }
    fn read_lba(&mut self, sector: u32, data: &mut [u8]) -> Result<()> {
        self.rt.block_on(self.dev.read_lba(sector, data))?;
        Ok(())
    }
    fn reset(&mut self) -> Result<()> {
        Ok(self
            .rt
            .block_on(self.dev.reset_device(rockusb::protocol::ResetOpcode::Reset))?)
    }
}

/// `--write SECTOR:FILE`.
pub fn parse_write(s: &str) -> Result<(u32, PathBuf)> {
    let (sec, file) = s
        .split_once(':')
        .ok_or_else(|| anyhow!("--write {s:?}: expected SECTOR:FILE (e.g. 64:idbloader.img)"))?;
    let sec = besser_lab::device::inventory::parse_number(sec)
        .map_err(|e| anyhow!("--write {s:?}: {e}"))?;
    Ok((
        u32::try_from(sec).map_err(|_| anyhow!("--write {s:?}: sector out of range"))?,
        PathBuf::from(file),
    ))
}

pub fn run(loader: &std::path::Path, writes: &[String]) -> Result<()> {
    let bytes = std::fs::read(loader).with_context(|| format!("reading {}", loader.display()))?;
    let l = maskrom::parse_loader(&bytes, &loader.display().to_string())?;
    let mut images = Vec::new();
    for w in writes {
        let (sector, file) = parse_write(w)?;
        let data = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        images.push(Image {
            sector,
            what: file.display().to_string(),
            data,
        });
    }
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .context("a runtime for USB")
    };
    let mut usb = Usb::open(rt()?)?;
    maskrom::download_boot(&mut usb, &l, &mut std::thread::sleep)?;
    println!(
        "maskrom: {} DDR-init and {} loader blob(s) downloaded",
        l.ddr.len(),
        l.usb.len()
    );
    if images.is_empty() {
        return Ok(());
    }
    // The USB loader now runs and re-enumerates: open it again.
    drop(usb);
    std::thread::sleep(Duration::from_secs(2));
    let mut usb = Usb::open(rt()?)?;
    let n = maskrom::write_images(&mut usb, &images)?;
    println!("maskrom: {n} bytes written and read back; the board resets");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_read_as_sector_and_file() {
        assert_eq!(
            super::parse_write("64:idbloader.img").unwrap(),
            (64, "idbloader.img".into())
        );
        assert_eq!(super::parse_write("0x4000:u-boot.itb").unwrap().0, 16384);
        assert!(super::parse_write("idbloader.img").is_err());
        assert!(super::parse_write("x:f").is_err());
    }
}
