//! The core against the golden vectors of `tests/data/bes2600.vec` (written
//! by hand from the C sources, each with its citation): every request the
//! core encodes must be the vector's bytes, every chip message in the file
//! must decode to what the vector says.

#[path = "vecfile.rs"]
mod vecfile;

use bes2600_core::fwload::{self, FwLoader};
use bes2600_core::sdio::{self, Cmd53, Ctrl, TxBatch};
use bes2600_core::wsm::{self, AddKeyReq, Incoming, Request, SeqSpace};
use proptest::prelude::*;

fn v(name: &str) -> vecfile::Vector {
    vecfile::load()
        .remove(name)
        .unwrap_or_else(|| panic!("no vector {name}"))
}

fn encode(req: &Request<'_>, seq: u8, if_id: u8) -> Vec<u8> {
    let mut buf = vec![0u8; wsm::MSG_LEN_MAX];
    let n = req.encode(&mut buf).unwrap();
    wsm::stamp_id(&mut buf[..n], seq, if_id);
    buf.truncate(n);
    buf
}

#[test]
fn tx_request_layout() {
    let vec = v("tx_request");
    let want = vec.zeroed();
    let frame = &want[24..];
    let req = Request::Tx(wsm::TxReq {
        packet_id: 0x1234_5678,
        max_tx_rate: 13,
        queue_id: wsm::tx_queue_byte(2, 0),
        more: false,
        flags: bes2600_core::queue::TxMeta {
            rate_policy_index: 1,
            ..Default::default()
        }
        .wsm_flags(),
        expire_time: 0,
        ht_tx_parameters: 0,
        frame,
    });
    vec.matches(&encode(&req, 3, 0)).unwrap();
}

#[test]
fn queue_byte_carries_the_link_over_the_wsm_queue() {
    // VO, VI, BE, BK -> 3, 2, 0, 1 (B/wsm.h 2156-2162); link in bits 2-5.
    assert_eq!([0, 1, 2, 3].map(wsm::wsm_queue_id), [3, 2, 0, 1]);
    assert_eq!(wsm::tx_queue_byte(2, 5), (5 << 2));
    assert_eq!(wsm::tx_queue_byte(0, 1), (1 << 2) | 3);
}

#[test]
fn add_key_uses_the_chips_aes_types() {
    let vec = v("add_key_aes_pairwise");
    let key: [u8; 16] = core::array::from_fn(|i| i as u8);
    let req = Request::AddKey(AddKeyReq::aes_pairwise(
        0,
        [0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
        key,
    ));
    vec.matches(&encode(&req, 2, 0)).unwrap();
    assert_eq!(AddKeyReq::aes_group(1, 1, key, [0; 8]).key_type, 4);
    assert_eq!(AddKeyReq::wep_default(0, 0, b"12345").unwrap().key_type, 0);
}

#[test]
fn mcu_command_is_cmd_type_and_arguments() {
    let vec = v("mcu_command");
    let req = Request::Mcu {
        cmd: 0x27,
        cmd_type: 3,
        payload: &5u32.to_le_bytes(),
    };
    vec.matches(&encode(&req, 1, 0)).unwrap();
}

#[test]
fn write_mib_layout() {
    let req = Request::WriteMib {
        mib_id: 0x1024,
        data: &1u32.to_le_bytes(),
    };
    v("write_mib_multi_tx_confirm")
        .matches(&encode(&req, 0, 0))
        .unwrap();
}

#[test]
fn chip_messages_decode() {
    let m = v("multi_tx_confirm").zeroed();
    assert_eq!(wsm::releases_buffer(&m), Some(SeqSpace::Wsm));
    let Ok((_, Incoming::MultiTxConfirm(c))) = wsm::decode(&m) else {
        panic!("multi-TX confirm does not decode");
    };
    let ids: Vec<u32> = c.iter().map(|c| c.packet_id).collect();
    assert_eq!(ids, [0x0002_0001, 0x0002_0002]);

    let m = v("rx_indication").zeroed();
    assert_eq!(wsm::releases_buffer(&m), None);
    let Ok((_, Incoming::Rx { meta, frame })) = wsm::decode(&m) else {
        panic!("RX indication does not decode");
    };
    assert_eq!((meta.channel, meta.rx_rate, meta.rcpi_rssi), (6, 13, 0x50));
    assert_eq!(meta.flags, 0x0001_0000);
    assert_eq!(
        frame,
        &m[32..],
        "the frame starts after the 16 skipped bytes"
    );
    assert_eq!(frame.len(), 30);

    let m = v("startup_indication").zeroed();
    let Ok((mid, Incoming::Startup(s))) = wsm::decode(&m) else {
        panic!("startup indication does not decode");
    };
    assert_eq!(mid.seq(), 0);
    assert_eq!((s.input_buffers, s.input_buffer_size), (30, 1632));

    let m = v("mcu_confirm").zeroed();
    assert_eq!(wsm::releases_buffer(&m), Some(SeqSpace::Mcu));
    let Ok((
        mid,
        Incoming::Mcu {
            label, cmd_type, ..
        },
    )) = wsm::decode(&m)
    else {
        panic!("MCU confirm does not decode");
    };
    assert_eq!((mid.seq_space(), label, cmd_type), (SeqSpace::Mcu, 0x0f, 3));
}

#[test]
fn tx_aggregate_slots_and_argument() {
    let vec = v("tx_aggregate_3");
    let mut buf = vec![0u8; sdio::TX_BUF_LEN];
    let mut b = TxBatch::new(&mut buf);
    for (seq, len) in [100usize, 200, 60].into_iter().enumerate() {
        let mut m = vec![0u8; len];
        m[..2].copy_from_slice(&(len as u16).to_le_bytes());
        m[2..4].copy_from_slice(
            &wsm::MsgId::new(wsm::id::TX_REQ, 0, seq as u8)
                .0
                .to_le_bytes(),
        );
        b.push(&m, false, 0xAABB_CCDD).unwrap();
    }
    let (cmd, bytes) = b.finish(false);
    assert_eq!(cmd.arg, vec.args[0], "CMD53 argument {:#010x}", cmd.arg);
    vec.matches(bytes).unwrap();
    // The 4-byte timestamp follows each message (B/bh.c 1134-1136).
    assert_eq!(&bytes[100..104], &0xAABB_CCDDu32.to_le_bytes());
    assert_eq!(
        Cmd53::tx_write(b_coded(&[100, 200, 60]), true).arg,
        v("tx_arg_toggle_1").args[0]
    );
    assert_eq!(
        Cmd53::tx_write(b_coded(&[700]), false).arg,
        v("tx_arg_one_700").args[0]
    );
    assert_eq!(
        Cmd53::tx_write(b_coded(&[1600, 1600]), false).arg,
        v("tx_arg_two_1600").args[0]
    );
}

/// The coded total of a batch of messages with these lengths.
fn b_coded(lens: &[usize]) -> u32 {
    let mut buf = vec![0u8; sdio::TX_BUF_LEN];
    let mut b = TxBatch::new(&mut buf);
    for &len in lens {
        let mut m = vec![0u8; len];
        m[..2].copy_from_slice(&(len as u16).to_le_bytes());
        b.push(&m, false, 0).unwrap();
    }
    b.coded_total()
}

#[test]
fn slot_sizes_split_batches_and_mcu_goes_alone() {
    let mut buf = vec![0u8; sdio::TX_BUF_LEN];
    let mut b = TxBatch::new(&mut buf);
    b.push(&[8, 0, 4, 0, 0, 0, 0, 0], false, 0).unwrap();
    // 600 + 4 needs two blocks: another write.
    assert_eq!(b.fits(600, false), Err(sdio::TxBatchFull::SlotSize));
    assert_eq!(b.fits(8, true), Err(sdio::TxBatchFull::Alone));
    for _ in 1..sdio::TX_BATCH_MAX {
        b.push(&[8, 0, 4, 0, 0, 0, 0, 0], false, 0).unwrap();
    }
    assert_eq!(b.fits(8, false), Err(sdio::TxBatchFull::Count));
    let mut buf = vec![0u8; sdio::TX_BUF_LEN];
    let mut m = TxBatch::new(&mut buf);
    m.push(&[12, 0, 0x27, 0x0C, 3, 0, 0, 0, 5, 0, 0, 0], true, 0)
        .unwrap();
    assert_eq!(m.fits(8, false), Err(sdio::TxBatchFull::Alone));
    assert_eq!(sdio::tx_slot(1629 + 4), None, "above 4 blocks: no slot");
}

#[test]
fn rx_control_byte_and_read_argument() {
    let vec = v("rx_ctrl_and_read");
    let b = vec.zeroed()[0];
    assert_eq!(sdio::decode_ctrl_byte(b, false), Ctrl::Pending(512));
    assert_eq!(sdio::decode_ctrl_byte(b, true), Ctrl::Stale);
    assert_eq!(sdio::decode_ctrl_byte(0x80, true), Ctrl::Zero);
    assert_eq!(Cmd53::transfer(false, 512, 512).arg, vec.args[0]);
    assert_eq!(
        Cmd53::transfer(false, 1536 | 1 << 16, 1536).arg,
        vec.args[1]
    );
}

#[test]
fn rx_batch_walk_stops_at_zero_length() {
    let m = v("rx_batch_two").zeroed();
    let batch = sdio::extract(&m, m.len()).unwrap();
    assert_eq!(batch.len(), 2);
    assert_eq!(batch.span(0), (0, 22));
    assert_eq!(batch.span(1), (24, 12));
    // A message running past the announced total is refused (-202).
    let mut bad = m.clone();
    bad[24] = 0xF0;
    bad[25] = 0x01;
    assert!(sdio::extract(&bad, 512).is_err());
}

fn reply(seq: u8) -> [u8; 8] {
    [0xB0, seq, 4, 0, 0, 0, 0, 0]
}

/// Takes the loader's next frames (boot ROM buffer 0x200), checks each
/// against the named vector, answers it OK; returns the write sizes.
fn frames_match(l: &mut FwLoader<'_>, names: &[&str]) -> Vec<usize> {
    let mut out = vec![0u8; fwload::FW_CHUNK_MAX];
    let mut sizes = Vec::new();
    for (seq, name) in names.iter().enumerate() {
        let n = l.next_frame(0x200, &mut out).unwrap().unwrap();
        v(name)
            .matches(&out[..n])
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        l.on_reply(&reply(seq as u8)).unwrap();
        sizes.push(n);
    }
    sizes
}

#[test]
fn firmware_frames_of_a_tiny_image() {
    let image = v("fw_image_tiny").zeroed();
    let info = fwload::parse_image(&image).unwrap();
    assert_eq!(
        (info.load_addr, info.code_len, info.crc32),
        (0x2008_0000, 16, 0x7F67_DF5F)
    );
    let mut l = FwLoader::new(&image).unwrap();
    for n in frames_match(&mut l, &["fw_info", "fw_data", "fw_end", "fw_run"]) {
        assert_eq!(Cmd53::transfer(true, n as u32, n).arg, v("fw_info").args[0]);
    }
    assert!(l.done());
    assert_eq!(Cmd53::transfer(false, 8, 8).arg, v("fw_reply_ok").args[0]);
    assert_eq!(&reply(1)[..], &v("fw_reply_ok").zeroed()[..]);
}

#[test]
fn firmware_register_poke_frames() {
    let val = 0x0080_2006u32.to_le_bytes();
    let mut l = FwLoader::write_reg(0x4010_0000, &val);
    frames_match(&mut l, &["fw_write_reg_info", "fw_write_reg_data"]);
    assert!(l.done(), "no end frame after a poke");
    assert_eq!(fwload::FW_PRE_POKES[0], (0x4010_0000, 0x0080_2006));
}

#[test]
fn a_data_frame_fills_the_announced_buffer() {
    let mut image = vec![0u8; 5000];
    image[12..16].copy_from_slice(&0x2008_0000u32.to_le_bytes());
    let mut l = FwLoader::new(&image).unwrap();
    let mut out = vec![0u8; fwload::FW_CHUNK_MAX];
    l.next_frame(0x800, &mut out).unwrap().unwrap();
    l.on_reply(&reply(0)).unwrap();
    let n = l.next_frame(0x800, &mut out).unwrap().unwrap();
    assert_eq!(n, 0x800, "header + addr + 2040 code bytes");
    assert_eq!(u16::from_le_bytes([out[2], out[3]]), 0x800 - 4);
    assert!(matches!(
        FwLoader::new(&image).unwrap().next_frame(6, &mut out),
        Err(fwload::FwError::RxBufSize { .. })
    ));
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = wsm::decode(&bytes);
        let _ = wsm::releases_buffer(&bytes);
        let _ = sdio::extract(&bytes, bytes.len());
    }
}
