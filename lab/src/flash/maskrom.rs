//! Recovery when nothing boots: the RK3566's boot ROM (maskrom mode, the
//! PineTab2's maskrom button held while it powers up) speaks Rockchip's USB
//! protocol. besser drives it with the `rockusb` crate (Collabora's,
//! sans-I/O): the boot file's DDR-init blobs go to area 0x471 and its USB
//! loader to 0x472 (as `rkdeveloptool db` does), then each image is written
//! at its sector and read back, then the board resets.
//!
//! The boot file is read with the `rockfile` crate; the protocol runs over
//! anything that implements [`Rockusb`] ( `rockusb::device::Device` over a
//! transport: `rockusb-mock`'s in the tests).

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use rockfile::boot::{RkBootEntry, RkBootHeader, RkBootHeaderEntry};
use rockusb::protocol::{ResetOpcode, SECTOR_SIZE};

/// Areas of the boot ROM's download protocol.
pub const AREA_DDR: u16 = 0x471;
pub const AREA_LOADER: u16 = 0x472;

/// One blob of a boot file and the delay to observe after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub name: String,
    pub data: Vec<u8>,
    pub delay_ms: u32,
}

/// A Rockchip boot file (`rk356x_spl_loader_*.bin`, what `rkdeveloptool db`
/// takes): its DDR-init and USB-loader blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loader {
    pub ddr: Vec<Blob>,
    pub usb: Vec<Blob>,
}

fn entries(bytes: &[u8], e: &RkBootHeaderEntry, file: &str, what: &str) -> Result<Vec<Blob>> {
    let mut out = Vec::new();
    for i in 0..e.count as usize {
        let at = e.offset as usize + i * e.size as usize;
        let raw: &[u8; 57] = bytes
            .get(at..at + 57)
            .and_then(|s| s.try_into().ok())
            .with_context(|| {
                format!(
                    "{file}: {what} entry {i} at byte {at} is past the end ({} bytes)",
                    bytes.len()
                )
            })?;
        let be = RkBootEntry::from_bytes(raw);
        let (o, n) = (be.data_offset as usize, be.data_size as usize);
        let data = bytes.get(o..o + n).with_context(|| {
            format!("{file}: {what} entry {i}: its data ({n} bytes at {o}) is past the end")
        })?;
        let name = String::from_utf16_lossy(&be.name)
            .trim_end_matches('\0')
            .to_string();
        out.push(Blob {
            name,
            data: data.to_vec(),
            delay_ms: be.data_delay,
        });
    }
    Ok(out)
}

/// Reads a boot file; errors say which part of `file` does not read.
pub fn parse_loader(bytes: &[u8], file: &str) -> Result<Loader> {
    let head: &[u8; 102] = bytes
        .get(..102)
        .and_then(|s| s.try_into().ok())
        .with_context(|| {
            format!(
                "{file}: {} bytes, shorter than a Rockchip boot file's 102-byte header",
                bytes.len()
            )
        })?;
    let h = RkBootHeader::from_bytes(head).with_context(|| {
        format!("{file}: not a Rockchip boot file (no `BOOT` or `LDR ` tag at byte 0)")
    })?;
    if h.rc4_flag == 0 {
        bail!("{file}: its blobs are RC4-scrambled (rc4 flag 0), which this tool does not undo; use an RK356x loader built with rc4 off");
    }
    let l = Loader {
        ddr: entries(bytes, &h.entry_471, file, "DDR-init (0x471)")?,
        usb: entries(bytes, &h.entry_472, file, "USB loader (0x472)")?,
    };
    ensure!(
        !l.ddr.is_empty() && !l.usb.is_empty(),
        "{file}: no DDR-init or no USB-loader blob"
    );
    Ok(l)
}

/// What the recovery needs of a rockusb device.
pub trait Rockusb {
    fn write_area(&mut self, area: u16, data: &[u8]) -> Result<()>;
    fn write_lba(&mut self, sector: u32, data: &[u8]) -> Result<()>;
    fn read_lba(&mut self, sector: u32, data: &mut [u8]) -> Result<()>;
    fn reset(&mut self) -> Result<()>;
}

impl<T: rockusb::device::Transport> Rockusb for rockusb::device::Device<T> {
    fn write_area(&mut self, area: u16, data: &[u8]) -> Result<()> {
        Ok(self.write_maskrom_area(area, data)?)
    }
    fn write_lba(&mut self, sector: u32, data: &[u8]) -> Result<()> {
        rockusb::device::Device::write_lba(self, sector, data)?;
        Ok(())
    }
    fn read_lba(&mut self, sector: u32, data: &mut [u8]) -> Result<()> {
        rockusb::device::Device::read_lba(self, sector, data)?;
        Ok(())
    }
    fn reset(&mut self) -> Result<()> {
        Ok(self.reset_device(ResetOpcode::Reset)?)
    }
}

/// One image to write at a sector (e.g. mainline U-Boot's `idbloader.img`
/// at 64 and `u-boot.itb` at 16384 on the RK3566's eMMC).
#[derive(Clone, Debug)]
pub struct Image {
    pub sector: u32,
    pub what: String,
    pub data: Vec<u8>,
}

/// Loads the boot file's blobs into the boot ROM (DDR init, then the USB
/// loader), `sleep`ing as each blob asks.
pub fn download_boot(
    dev: &mut dyn Rockusb,
    l: &Loader,
    sleep: &mut dyn FnMut(Duration),
) -> Result<()> {
    for (area, blobs) in [(AREA_DDR, &l.ddr), (AREA_LOADER, &l.usb)] {
        for b in blobs {
            dev.write_area(area, &b.data)
                .with_context(|| format!("downloading {} to area {area:#x}", b.name))?;
            sleep(Duration::from_millis(b.delay_ms.into()));
        }
    }
    Ok(())
}

/// Writes each image at its sector (padded to whole sectors), reads it back
/// and compares, then resets the board. Returns the bytes written.
pub fn write_images(dev: &mut dyn Rockusb, images: &[Image]) -> Result<u64> {
    let sector = SECTOR_SIZE as usize;
    let mut total = 0;
    for im in images {
        let mut data = im.data.clone();
        data.resize(data.len().div_ceil(sector) * sector, 0);
        // Chunks the loader takes in one command (128 sectors = 64 KiB).
        let chunk = 128 * sector;
        for (i, c) in data.chunks(chunk).enumerate() {
            let at = im.sector + (i * chunk / sector) as u32;
            dev.write_lba(at, c)
                .with_context(|| format!("writing {} at sector {at}", im.what))?;
            let mut back = vec![0u8; c.len()];
            dev.read_lba(at, &mut back)
                .with_context(|| format!("reading {} back at sector {at}", im.what))?;
            if back != c {
                bail!(
                    "{} at sector {at}: what was read back differs from what was written",
                    im.what
                );
            }
        }
        total += data.len() as u64;
    }
    dev.reset().context("resetting the board")?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A boot file laid out as `rockfile` reads it (header 102 bytes, then
    /// 57-byte entries, then data), built here from the format, not from
    /// the parser.
    fn boot_file(ddr: &[&[u8]], usb: &[&[u8]], rc4_off: bool) -> Vec<u8> {
        let n = ddr.len() + usb.len();
        let entries_at = 102usize;
        let data_at = entries_at + 57 * n;
        let mut f = vec![0u8; data_at];
        f[..4].copy_from_slice(b"BOOT");
        f[4..6].copy_from_slice(&102u16.to_le_bytes());
        // version, merge version, release time, chip: left 0 / "356X".
        f[21..25].copy_from_slice(b"X653");
        let put_header_entry = |f: &mut Vec<u8>, at: usize, count: usize, first: usize| {
            f[at] = count as u8;
            f[at + 1..at + 5].copy_from_slice(&((entries_at + 57 * first) as u32).to_le_bytes());
            f[at + 5] = 57;
        };
        put_header_entry(&mut f, 25, ddr.len(), 0);
        put_header_entry(&mut f, 31, usb.len(), ddr.len());
        put_header_entry(&mut f, 37, 0, n);
        f[44] = u8::from(rc4_off);
        for (i, blob) in ddr.iter().chain(usb).enumerate() {
            let off = f.len();
            f.extend_from_slice(blob);
            let e = entries_at + 57 * i;
            f[e] = 57;
            f[e + 1..e + 5].copy_from_slice(&(if i < ddr.len() { 1u32 } else { 2 }).to_le_bytes());
            for (k, c) in format!("blob{i}").encode_utf16().enumerate() {
                f[e + 5 + 2 * k..e + 7 + 2 * k].copy_from_slice(&c.to_le_bytes());
            }
            f[e + 45..e + 49].copy_from_slice(&(off as u32).to_le_bytes());
            f[e + 49..e + 53].copy_from_slice(&(blob.len() as u32).to_le_bytes());
            f[e + 53..e + 57].copy_from_slice(&(i as u32 * 10).to_le_bytes());
        }
        f
    }

    #[test]
    fn a_boot_file_reads_as_its_ddr_and_usb_blobs() {
        let f = boot_file(&[b"ddr-init"], &[b"usbplug!", b"more"], true);
        let l = parse_loader(&f, "loader.bin").unwrap();
        assert_eq!(l.ddr.len(), 1);
        assert_eq!(l.ddr[0].data, b"ddr-init");
        assert_eq!(l.ddr[0].name, "blob0");
        assert_eq!(
            l.usb.iter().map(|b| b.data.as_slice()).collect::<Vec<_>>(),
            [&b"usbplug!"[..], b"more"]
        );
        assert_eq!(l.usb[1].delay_ms, 20);
    }

    #[test]
    fn a_bad_boot_file_says_what_is_wrong() {
        assert!(parse_loader(b"short", "x.bin")
            .unwrap_err()
            .to_string()
            .contains("shorter than"));
        let mut f = boot_file(&[b"d"], &[b"u"], true);
        f[..4].copy_from_slice(b"ZZZZ");
        assert!(parse_loader(&f, "x.bin")
            .unwrap_err()
            .to_string()
            .contains("not a Rockchip boot file"));
        let f = boot_file(&[b"d"], &[b"u"], false);
        assert!(parse_loader(&f, "x.bin")
            .unwrap_err()
            .to_string()
            .contains("RC4"));
        let mut f = boot_file(&[b"d"], &[b"u"], true);
        f.truncate(f.len() - 1);
        let e = parse_loader(&f, "x.bin").unwrap_err().to_string();
        assert!(e.contains("past the end"), "{e}");
    }

    #[test]
    fn recovery_against_the_rockusb_mock_device() {
        let mut mock = rockusb_mock::MockDevice::new(rockusb_mock::MockDeviceConfig {
            flash: vec![0xff; 40_000 * SECTOR_SIZE as usize],
            ..Default::default()
        })
        .unwrap();
        let f = boot_file(&[b"ddr-init-blob"], &[b"usb-loader-blob"], true);
        let l = parse_loader(&f, "loader.bin").unwrap();
        let mut slept = Vec::new();
        download_boot(mock.device(), &l, &mut |d| slept.push(d)).unwrap();
        // The boot ROM gets each blob with the protocol's CRC-16 after it.
        for (area, blob) in [
            (AREA_DDR, &b"ddr-init-blob"[..]),
            (AREA_LOADER, &b"usb-loader-blob"[..]),
        ] {
            let got = mock.maskrom_area(area).unwrap();
            assert!(
                got.starts_with(blob) && got.len() == blob.len() + 2,
                "area {area:#x}: {got:?}"
            );
        }
        assert_eq!(slept, [Duration::from_millis(0), Duration::from_millis(10)]);
        let idb: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
        let itb = b"u-boot.itb contents".to_vec();
        let n = write_images(
            mock.device(),
            &[
                Image {
                    sector: 64,
                    what: "idbloader.img".into(),
                    data: idb.clone(),
                },
                Image {
                    sector: 16384,
                    what: "u-boot.itb".into(),
                    data: itb.clone(),
                },
            ],
        )
        .unwrap();
        let s = SECTOR_SIZE as usize;
        assert_eq!(&mock.flash()[64 * s..64 * s + idb.len()], &idb[..]);
        assert_eq!(&mock.flash()[16384 * s..16384 * s + itb.len()], &itb[..]);
        assert_eq!(n, (idb.len().div_ceil(s) + 1) as u64 * s as u64);
        assert_eq!(mock.last_reset(), Some(ResetOpcode::Reset));
    }
}
