//! Firmware download to the simulated boot ROM, then the startup indication.

use bes2600_core::bh::BhState;
use bes2600_core::fwload::{self, DownloadError, FwError, FwImages};
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
    // info + data frames + end + run, each one write; a data frame fills
    // the receive buffer the boot ROM announced (2048 bytes here).
    let rx_buf = usize::from(ChipConfig::default().boot_rx_buf);
    let data_frames = (100_000usize).div_ceil(rx_buf - 8) as u64;
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
            assert_ne!(status, fwload::FW_OK)
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
fn the_real_chip_load_pokes_registers_reads_dpd_then_boots_the_wifi_firmware() {
    let boot = image(30_000, 0x2000_0000);
    let wifi = image(200_000, 0x2008_0000);
    let factory = vec![0x5Au8; 300];
    let cfg = ChipConfig {
        boot_stages: 2,
        ..Default::default()
    };
    let images = FwImages {
        boot: &boot,
        wifi: &wifi,
        factory: Some(&factory),
        dpd: None,
    };
    let (h, dpd) = Harness::with_firmware_images(cfg, &images).unwrap();
    assert_eq!(h.chip.boots(), 2);
    assert_eq!(h.bh.state(), BhState::Running);
    assert_eq!(h.up.indications, vec![Ind::Started(30)]);
    // bes_fw.c 1067-1068: the two pokes, in order.
    assert_eq!(h.chip.reg_writes(), &fwload::FW_PRE_POKES[..]);
    // The factory data, then the two images, each verified by its CRC.
    let mems: Vec<u32> = h.chip.mem_writes().iter().map(|m| m.0).collect();
    assert_eq!(mems, [fwload::FACTORY_ADDR, 0x2000_0000, 0x2008_0000]);
    assert_eq!(dpd.len(), usize::from(cfg.dpd_len));

    // With the DPD data cached, the boot image is not needed.
    let images = FwImages {
        dpd: Some(&dpd),
        factory: None,
        ..images
    };
    let (h, read) = Harness::with_firmware_images(cfg, &images).unwrap();
    assert!(read.is_empty());
    assert_eq!(h.chip.boots(), 1);
    assert_eq!(h.bh.state(), BhState::Running);
    let mems: Vec<u32> = h.chip.mem_writes().iter().map(|m| m.0).collect();
    assert_eq!(mems, [fwload::DPD_ADDR, 0x2008_0000]);
    assert_eq!(fwload::files::BOOT, "bes2600/best2002_fw_boot_sdio.bin");
}

#[test]
fn a_boot_rom_that_announces_no_buffer_is_refused() {
    let img = image(1000, 0x2008_0000);
    let r = Harness::with_firmware(
        ChipConfig {
            boot_rx_buf: 8,
            ..Default::default()
        },
        &img,
    );
    assert!(matches!(
        r,
        Err(DownloadError::Protocol(FwError::RxBufSize { size: 8 }))
    ));
}
