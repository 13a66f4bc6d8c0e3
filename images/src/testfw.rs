//! Test firmware for the chip model: what a QEMU board's image puts in
//! `/lib/firmware/bes2600/` so the Rust driver's download runs end to end
//! against `besser_sdio_sim`. **Not BES firmware**: a 16-byte exec header
//! (entry, param, sp, exec address), deterministic filler and the load
//! address as trailer, the layout `bes_fw.c` reads (see
//! `driver/core/src/fwload.rs`, `parse_image`). A PineTab2 image ships
//! none: there the vendor's blobs go to the same paths.

/// Where the kernel's firmware loader finds the files, relative to the
/// guest's root, with the file names bes2600 requests (`bes_fw.c` 21-22).
pub const BOOT_IMAGE: &str = "lib/firmware/bes2600/best2002_fw_boot_sdio.bin";
pub const WIFI_IMAGE: &str = "lib/firmware/bes2600/best2002_fw_sdio.bin";

/// Load addresses: the second-stage boot image, and the Wi-Fi firmware.
const BOOT_LOAD: u32 = 0x2008_0000;
const WIFI_LOAD: u32 = 0x2000_0000;

fn image(code_len: usize, load_addr: u32, seed: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity(code_len + 4);
    for w in [load_addr | 1, 0, 0x2008_0000, load_addr] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    let mut x = seed;
    while v.len() < code_len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v.extend_from_slice(&load_addr.to_le_bytes());
    v
}

/// The two images, as `(guest path, bytes)`.
pub fn images() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (BOOT_IMAGE, image(24 * 1024, BOOT_LOAD, 0xB007_0001)),
        (WIFI_IMAGE, image(96 * 1024, WIFI_LOAD, 0x3E57_2002)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_carry_their_load_address_in_header_and_trailer() {
        for (path, img) in images() {
            let n = img.len();
            assert_eq!(img[12..16], img[n - 4..], "{path}");
            assert_ne!(
                u32::from_le_bytes(img[12..16].try_into().unwrap()),
                0,
                "{path}"
            );
        }
        assert_ne!(images()[0].1, images()[1].1);
    }

    #[test]
    fn the_driver_core_reads_them_as_images() {
        for (path, img) in images() {
            let info =
                bes2600_core::fwload::parse_image(&img).unwrap_or_else(|e| panic!("{path}: {e:?}"));
            assert_eq!(info.code_len, img.len() - 4, "{path}");
        }
    }
}
