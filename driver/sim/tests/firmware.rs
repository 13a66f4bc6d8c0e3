//! Firmware download to the simulated boot ROM, then the startup indication.

use bes2600_core::bh::BhState;
use bes2600_core::fwload::{self, DownloadError, FwError, FW_ERR_CRC};
use bes2600_sim::chip::{ChipConfig, Faults};
use bes2600_sim::harness::{Harness, Ind};

/// A fake image: exec header (entry, param, sp, exec_addr), code, trailer
/// repeating the load address.
fn image(code_len: usize, load_addr: u32) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [0x2000_0101u32, 0, 0x2008_0000, load_addr] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    let mut x = 0x1234_5678u32;
    while v.len() < code_len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v.extend_from_slice(&load_addr.to_le_bytes());
    v
}

#[test]
fn crc32_is_ieee() {
    assert_eq!(fwload::crc32(b"123456789"), 0xCBF4_3926);
    let (a, b) = b"123456789".split_at(4);
    assert_eq!(fwload::crc32_continue(fwload::crc32(a), b), 0xCBF4_3926);
}

#[test]
fn download_boots_the_firmware() {
    let img = image(100_000, 0x2008_0000);
    let h = Harness::with_firmware(ChipConfig::default(), &img).unwrap();
    assert_eq!(h.chip.boots(), 1);
    assert_eq!(h.bh.state(), BhState::Running);
    assert_eq!(h.up.indications, vec![Ind::Started(30)]);
    // info + data frames + end + run, each one write
    let data_frames = (100_000usize).div_ceil(fwload::FW_CHUNK_MAX - 8) as u64;
    assert_eq!(h.bus.writes, 3 + data_frames);
}

#[test]
fn a_corrupted_transfer_is_refused_at_the_end() {
    let img = image(20_000, 0x2008_0000);
    let faults = Faults {
        fw_corrupt_at: Some(12_345),
        ..Default::default()
    };
    let r = Harness::with_firmware(
        ChipConfig {
            faults,
            ..Default::default()
        },
        &img,
    );
    match r {
        Err(DownloadError::Protocol(FwError::ReplyStatus { status, .. })) => {
            assert_eq!(status, FW_ERR_CRC)
        }
        Err(e) => panic!("unexpected error {e:?}"),
        Ok(_) => panic!("a corrupted image booted"),
    }
}

#[test]
fn a_truncated_image_is_a_typed_error() {
    assert_eq!(
        fwload::parse_image(&[0u8; 10]),
        Err(FwError::ImageSize { len: 10 })
    );
    assert_eq!(fwload::parse_image(&[0u8; 64]), Err(FwError::NoLoadAddress));
}

#[test]
fn the_real_chip_needs_the_boot_image_then_the_wifi_firmware() {
    let boot = image(30_000, 0x2000_0000);
    let wifi = image(200_000, 0x2008_0000);
    let cfg = ChipConfig {
        boot_stages: 2,
        ..Default::default()
    };
    // Only the boot image: the loader runs, no startup indication yet.
    let h = Harness::with_firmware_images(cfg, &[&boot]).unwrap();
    assert_eq!(h.bh.state(), BhState::AwaitStartup);
    assert!(h.up.indications.is_empty());
    // Both, in order: the firmware starts.
    let h = Harness::with_firmware_images(cfg, &[&boot, &wifi]).unwrap();
    assert_eq!(h.chip.boots(), 2);
    assert_eq!(h.bh.state(), BhState::Running);
    assert_eq!(fwload::files::BOOT, "bes2600/best2002_fw_boot_sdio.bin");
}
