//! The independent chip model against the same golden vectors as the core
//! (`driver/core/tests/data/bes2600.vec`): what the model parses of the
//! host's bytes and what it builds must agree with the C sources too, so a
//! disagreement between core and model is a failing test on one side.

#[path = "../../core/tests/vecfile.rs"]
mod vecfile;

use bes2600_sim::chip::{Chip, ChipConfig};
use bes2600_sim::wire::{self, Cmd53Arg};

fn v(name: &str) -> vecfile::Vector {
    vecfile::load()
        .remove(name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

#[test]
fn the_model_reads_the_hosts_requests() {
    let m = v("tx_request").zeroed();
    let r = wire::Req::parse(&m).unwrap();
    assert_eq!((r.base(), r.seq(), r.link()), (wire::ids::TX, 3, 0));
    let t = wire::tx_req(r.body).unwrap();
    assert_eq!(t.packet_id, 0x1234_5678);
    assert_eq!((t.max_tx_rate, t.queue_id, t.rate_policy), (13, 0, 1));
    assert_eq!(t.frame.len(), 34);

    let m = v("add_key_aes_pairwise").zeroed();
    let r = wire::Req::parse(&m).unwrap();
    assert_eq!(wire::add_key(r.body), Some((5, 0)));

    let m = v("mcu_command").zeroed();
    let r = wire::Req::parse(&m).unwrap();
    assert!(r.mcu());
    assert_eq!(wire::le32(r.body, 0), Some(3), "cmd_type first");
}

#[test]
fn the_model_builds_the_chips_messages() {
    let want = v("rx_indication");
    let frame = &want.zeroed()[32..];
    let mut b = [0u8; 256];
    let n = wire::rx_full(&mut b, 1, 6, 13, 0x50, 0x0001_0000, frame).unwrap();
    want.matches(&b[..n]).unwrap();

    let want = v("mcu_confirm");
    let n = wire::mcu(&mut b, 1, 0x27, wire::ids::MCU_CONFIRM_LABEL, 3).unwrap();
    want.matches(&b[..n]).unwrap();

    let want = v("startup_indication").zeroed();
    let n = wire::startup(&mut b, 0, 30, 1632).unwrap();
    assert_eq!(n, want.len());
    assert_eq!(&b[..8], &want[..8], "len, id, buffers, buffer size");

    let want = v("multi_tx_confirm").zeroed();
    let n = wire::multi_tx_confirm(&mut b, 5, &[(0x0002_0001, 0), (0x0002_0002, 0)]).unwrap();
    assert_eq!(n, want.len());
    assert_eq!(
        &b[..16],
        &want[..16],
        "header, count, first packet id, status"
    );
    assert_eq!(&b[28..36], &want[28..36], "second packet id and status");
}

#[test]
fn the_model_decodes_cmd53_arguments() {
    let a = Cmd53Arg::parse(v("tx_aggregate_3").args[0]);
    assert!(a.write && a.block && a.inc && a.func == 1);
    assert_eq!((a.count, a.bytes()), (3, 1536));
    assert!(!wire::addr_toggle(a.addr));
    assert_eq!(wire::tx_slots(wire::addr_len(a.addr)), Some((512, 3)));
    let a = Cmd53Arg::parse(v("tx_arg_toggle_1").args[0]);
    assert!(wire::addr_toggle(a.addr));
    let a = Cmd53Arg::parse(v("tx_arg_one_700").args[0]);
    assert_eq!(wire::tx_slots(wire::addr_len(a.addr)), Some((1024, 1)));
    let a = Cmd53Arg::parse(v("tx_arg_two_1600").args[0]);
    assert_eq!(wire::tx_slots(wire::addr_len(a.addr)), Some((1632, 2)));
    assert_eq!(a.bytes(), 7 * 512);
    let a = Cmd53Arg::parse(v("rx_ctrl_and_read").args[0]);
    assert!(!a.write && !a.block);
    assert_eq!((a.addr, a.bytes()), (512, 512));
}

#[test]
fn the_model_takes_the_vector_aggregate_as_three_requests() {
    let mut chip = Chip::new(ChipConfig::default());
    chip.power_on();
    let vec = v("tx_aggregate_3");
    let mut bytes = vec.zeroed();
    // Give each slot a well-formed TX request body (the vector fixes only
    // the headers) and its timestamp.
    for (i, len) in [100usize, 200, 60].into_iter().enumerate() {
        let s = &mut bytes[i * 512..];
        s[4..8].copy_from_slice(&(i as u32).to_le_bytes());
        s[len..len + 4].copy_from_slice(&7u32.to_le_bytes());
    }
    chip.cmd53_write(vec.args[0], &bytes).unwrap();
    assert_eq!(chip.stats.tx_frames, 3);
    assert_eq!(chip.stats.slot_mismatches, 0);
    assert_eq!(chip.stats.bad_writes, 0);
    assert_eq!(chip.in_flight(), 0, "confirmed: one multi-TX confirm");
    // The same bytes again carry the old toggle: dropped as a repeat.
    chip.cmd53_write(vec.args[0], &bytes).unwrap();
    assert_eq!(chip.stats.tx_toggle_errors, 1);
}

#[test]
fn the_boot_rom_takes_the_vector_frames() {
    let mut chip = Chip::new(ChipConfig {
        boot_rx_buf: 0x200,
        ..Default::default()
    });
    chip.power_on_boot_rom();
    assert_eq!(chip.readb(0x109), Ok(0x00));
    assert_eq!(chip.readb(0x10a), Ok(0x02));
    let image = v("fw_image_tiny").zeroed();
    assert_eq!(wire::crc32_update(0, &image[..16]), 0x7F67_DF5F);
    for (seq, name) in ["fw_info", "fw_data", "fw_end", "fw_run"]
        .into_iter()
        .enumerate()
    {
        let frame = v(name).zeroed();
        chip.cmd53_write(v("fw_info").args[0], &frame).unwrap();
        assert!(chip.take_irq(), "{name}: the reply is signalled");
        assert_eq!((chip.readb(0), chip.readb(1)), (Ok(8), Ok(0)));
        let mut reply = [0u8; 8];
        chip.cmd53_read(0x1400_1008, &mut reply).unwrap();
        assert_eq!(reply, wire::fw_reply(seq as u8, 0), "{name}");
    }
    assert_eq!(chip.boots(), 1);
    assert_eq!(chip.mem_writes(), &[(0x2008_0000, 16)]);
    // The firmware runs: its startup indication is pending.
    assert!(chip.take_irq());
    assert_eq!(chip.readb(0x001).map(|b| b & 0x7f), Ok(1));
}

#[test]
fn the_boot_rom_takes_a_register_poke() {
    let mut chip = Chip::new(ChipConfig::default());
    chip.power_on_boot_rom();
    for name in ["fw_write_reg_info", "fw_write_reg_data"] {
        chip.cmd53_write(v("fw_info").args[0], &v(name).zeroed())
            .unwrap();
        let mut reply = [0u8; 8];
        chip.cmd53_read(0x1400_1008, &mut reply).unwrap();
        assert_eq!(&reply[4..], &[0; 4], "{name} accepted");
    }
    assert_eq!(chip.reg_writes(), &[(0x4010_0000, 0x0080_2006)]);
}
