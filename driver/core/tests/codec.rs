//! WSM codec and SDIO framing: known vectors, round trips, arbitrary input.

use bes2600_core::sdio::{self, CtrlError, FrameError, TxBatch, RX_BATCH_MAX};
use bes2600_core::wsm::{
    self, chip, id, Incoming, Kind, MsgId, Request, RxMeta, SeqSpace, TxConfirm, WsmError,
};
use proptest::prelude::*;

#[test]
fn crc8_matches_the_smbus_check_value() {
    // CRC-8 (poly 0x07, init 0) of "123456789" is 0xF4.
    assert_eq!(sdio::crc8(b"123456789"), 0xF4);
    assert_eq!(sdio::crc8(&[]), 0);
}

#[test]
fn id_bit_fields() {
    let m = MsgId::new(id::RX_IND, 5, 3);
    assert_eq!(m.0, 0x0804 | (5 << 6) | (3 << 13));
    assert_eq!((m.base(), m.link_id(), m.seq()), (id::RX_IND, 5, 3));
    assert_eq!(m.kind(), Kind::Indication);
    assert_eq!(MsgId(0x0800).kind(), Kind::Exception);
    assert_eq!(MsgId(0x0407).kind(), Kind::Confirm);
    assert_eq!(MsgId(0x0007).kind(), Kind::Request);
    let mcu = MsgId::new(id::MCU_BASE | 0x31, 0, 2);
    assert_eq!(mcu.kind(), Kind::Mcu);
    assert_eq!(mcu.seq_space(), SeqSpace::Mcu);
    assert_eq!(m.seq_space(), SeqSpace::Wsm);
}

#[test]
fn ctrl_word_toggle_and_crc() {
    let w = sdio::encode_ctrl_word(1500, 3, true);
    assert_eq!(
        sdio::decode_ctrl_word(w, true),
        Ok(sdio::CtrlWord {
            total_len: 1500,
            count: 3
        })
    );
    assert_eq!(
        sdio::decode_ctrl_word(w, false),
        Err(CtrlError::StaleToggle)
    );
    let mut bad = w;
    bad[0] ^= 1;
    assert!(matches!(
        sdio::decode_ctrl_word(bad, true),
        Err(CtrlError::Crc { .. })
    ));
    assert_eq!(
        sdio::decode_ctrl_word(sdio::encode_ctrl_word(0, 0, true), true),
        Err(CtrlError::Empty)
    );
    assert!(matches!(
        sdio::decode_ctrl_word(sdio::encode_ctrl_word(64, 17, false), false),
        Err(CtrlError::OutOfRange { .. })
    ));
}

#[test]
fn ctrl_byte_counts_512_byte_blocks() {
    assert_eq!(
        sdio::decode_ctrl_byte(sdio::encode_ctrl_byte(1600, true), true),
        Ok(2048)
    );
    assert_eq!(
        sdio::decode_ctrl_byte(0x83, false),
        Err(CtrlError::StaleToggle)
    );
    assert_eq!(sdio::decode_ctrl_byte(0x80, true), Err(CtrlError::Empty));
}

#[test]
fn startup_indication_decodes_credits() {
    let mut b = [0u8; 256];
    let n = chip::startup(&mut b, 0, 23, 1632).unwrap();
    match wsm::decode(&b[..n]).unwrap().1 {
        Incoming::Startup(s) => {
            assert_eq!(s.input_buffers, 23);
            assert_eq!(s.input_buffer_size, 1632);
            assert!(s.fw_label.starts_with(b"besser-sim"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn scan_request_layout_matches_cw1200() {
    let ch = [wsm::ScanChannel {
        number: 36,
        min_chan_time: 10,
        max_chan_time: 40,
    }];
    let req = Request::StartScan(wsm::ScanReq {
        band: wsm::Band::Ghz5,
        scan_type: 0,
        flags: 0,
        max_tx_rate: 0,
        auto_scan_interval: 0,
        num_probes: 2,
        probe_delay: 0,
        channels: &ch,
        ssids: &[],
    });
    let mut b = [0u8; 128];
    let n = req.encode(&mut b).unwrap();
    // header + 12 fixed bytes + 16 per channel
    assert_eq!(n, 4 + 12 + 16);
    assert_eq!(&b[2..4], &0x0007u16.to_le_bytes());
    assert_eq!(b[4], 1); // band
    assert_eq!(b[13], 1); // num_channels
    assert_eq!(&b[16..18], &36u16.to_le_bytes());
    let (_, v) = wsm::decode_request(&b[..n]).unwrap();
    assert_eq!(
        v,
        wsm::ReqView::StartScan {
            band: 1,
            num_channels: 1,
            first_channel: 36
        }
    );
}

#[test]
fn multi_tx_confirm_count_is_checked_against_the_body() {
    let mut b = [0u8; 64];
    let n = chip::multi_tx_confirm(&mut b, 0, &[TxConfirm::default()]).unwrap();
    b[4] = 3; // claims three confirms, carries one
    assert!(matches!(
        wsm::decode(&b[..n]),
        Err(WsmError::BadCount { .. })
    ));
}

#[test]
fn batch_with_zero_terminator() {
    let mut buf = [0u8; 512];
    let mut tx = TxBatch::new(&mut buf);
    let mut m = [0u8; 64];
    let n = chip::event(&mut m, 0, 1, 2).unwrap();
    tx.push(&m[..n]).unwrap();
    tx.push(&m[..n]).unwrap();
    let len = tx.len();
    // One-byte control: a whole block is read, the rest is zeros.
    let b = sdio::extract(&buf, 512, None).unwrap();
    assert_eq!(b.len(), 2);
    assert_eq!(len, 2 * sdio::pad4(n));
}

#[test]
fn batch_length_mismatch_is_typed() {
    let mut buf = [0u8; 64];
    let mut m = [0u8; 64];
    let n = chip::event(&mut m, 0, 1, 2).unwrap();
    buf[..n].copy_from_slice(&m[..n]);
    assert!(matches!(
        sdio::extract(&buf, sdio::pad4(n) + 8, Some(1)),
        Err(FrameError::LenMismatch { .. })
    ));
    assert!(matches!(
        sdio::extract(&buf[..8], 16, Some(1)),
        Err(FrameError::ShortRead { .. })
    ));
}

#[test]
fn tx_batch_stops_at_sixteen() {
    let mut buf = [0u8; 4096];
    let mut tx = TxBatch::new(&mut buf);
    for _ in 0..RX_BATCH_MAX {
        tx.push(&[8, 0, 4, 0, 1, 2, 3, 4]).unwrap();
    }
    assert_eq!(
        tx.push(&[8, 0, 4, 0, 1, 2, 3, 4]),
        Err(sdio::TxBatchFull::Count)
    );
}

fn arb_confirm() -> impl Strategy<Value = TxConfirm> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        any::<u8>(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(packet_id, status, tx_rate, ack_failures, flags, media_delay, tx_queue_delay)| {
                TxConfirm {
                    packet_id,
                    status,
                    tx_rate,
                    ack_failures,
                    flags,
                    media_delay,
                    tx_queue_delay,
                }
            },
        )
}

/// A chip message of one of the kinds the driver acts on.
fn arb_chip_msg() -> impl Strategy<Value = Vec<u8>> {
    let seq = 0u8..8;
    prop_oneof![
        (
            seq.clone(),
            0u8..16,
            proptest::collection::vec(any::<u8>(), 0..1600)
        )
            .prop_map(|(s, l, f)| {
                let mut b = vec![0u8; 1700];
                let meta = RxMeta {
                    link_id: l,
                    channel: 6,
                    ..Default::default()
                };
                let n = chip::rx(&mut b, s, &meta, &f).unwrap();
                b.truncate(n);
                b
            }),
        (seq.clone(), arb_confirm()).prop_map(|(s, c)| {
            let mut b = vec![0u8; 64];
            let n = chip::tx_confirm(&mut b, s, 0, &c).unwrap();
            b.truncate(n);
            b
        }),
        (seq.clone(), proptest::collection::vec(arb_confirm(), 0..20)).prop_map(|(s, c)| {
            let mut b = vec![0u8; 1632];
            let n = chip::multi_tx_confirm(&mut b, s, &c).unwrap();
            b.truncate(n);
            b
        }),
        (
            seq.clone(),
            prop::sample::select(vec![
                0x05u16, 0x06, 0x07, 0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x10, 0x11, 0x12, 0x13
            ]),
            any::<u32>()
        )
            .prop_map(|(s, r, st)| {
                let mut b = vec![0u8; 64];
                let n = chip::confirm(&mut b, s, r, st, &[]).unwrap();
                b.truncate(n);
                b
            }),
        (seq, any::<u32>(), any::<u32>()).prop_map(|(s, e, d)| {
            let mut b = vec![0u8; 64];
            let n = chip::event(&mut b, s, e, d).unwrap();
            b.truncate(n);
            b
        }),
    ]
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        let _ = wsm::decode(&bytes);
        let _ = wsm::decode_request(&bytes);
        let _ = sdio::extract(&bytes, bytes.len(), None);
        let _ = sdio::extract(&bytes, bytes.len(), Some((bytes.len() % 20) as u8));
    }

    #[test]
    fn tx_confirm_round_trip(c in arb_confirm(), seq in 0u8..8, link in 0u8..16) {
        let mut b = [0u8; 64];
        let n = chip::tx_confirm(&mut b, seq, link, &c).unwrap();
        let (mid, inc) = wsm::decode(&b[..n]).unwrap();
        prop_assert_eq!(mid.seq(), seq);
        prop_assert_eq!(mid.link_id(), link);
        prop_assert_eq!(inc, Incoming::TxConfirm(c));
        prop_assert_eq!(inc.credits_released(), 1);
    }

    #[test]
    fn multi_tx_confirm_round_trip(cs in proptest::collection::vec(arb_confirm(), 0..40)) {
        let mut b = [0u8; 1632];
        let n = chip::multi_tx_confirm(&mut b, 1, &cs).unwrap();
        match wsm::decode(&b[..n]).unwrap().1 {
            Incoming::MultiTxConfirm(m) => {
                prop_assert_eq!(m.len(), cs.len());
                prop_assert_eq!(m.iter().collect::<Vec<_>>(), cs);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn tx_request_round_trip(pid in any::<u32>(), q in 0u8..4, frame in proptest::collection::vec(any::<u8>(), 0..1500)) {
        let req = Request::Tx(wsm::TxReq {
            packet_id: pid, max_tx_rate: 0, queue_id: q, more: false, flags: 0,
            expire_time: 0, ht_tx_parameters: 0, frame: &frame,
        });
        let mut b = [0u8; 1632];
        let n = req.encode(&mut b).unwrap();
        prop_assert_eq!(n, 4 + wsm::TX_REQ_FIXED_LEN + frame.len());
        wsm::stamp_id(&mut b[..n], 5, 2);
        let (mid, v) = wsm::decode_request(&b[..n]).unwrap();
        prop_assert_eq!((mid.base(), mid.seq(), mid.link_id()), (id::TX_REQ, 5, 2));
        prop_assert_eq!(v, wsm::ReqView::Tx { packet_id: pid, queue_id: q, frame: &frame });
    }

    /// Messages batched by the TX aggregator come back out of `extract`
    /// unchanged, whatever their sizes, with the control word's count.
    #[test]
    fn batch_round_trip(msgs in proptest::collection::vec(arb_chip_msg(), 1..=16)) {
        let mut buf = vec![0u8; 16 * 1632];
        let mut tx = TxBatch::new(&mut buf);
        let mut pushed = Vec::new();
        for m in &msgs {
            if tx.push(m).is_ok() { pushed.push(m.clone()); }
        }
        let len = tx.len();
        let ctrl = sdio::encode_ctrl_word(len as u16, pushed.len() as u8, false);
        let w = sdio::decode_ctrl_word(ctrl, false).unwrap();
        let batch = sdio::extract(&buf, usize::from(w.total_len), Some(w.count)).unwrap();
        let got: Vec<Vec<u8>> = batch.iter(&buf).map(|m| m.to_vec()).collect();
        prop_assert_eq!(&got, &pushed);
        for m in &got {
            prop_assert!(wsm::decode(m).is_ok());
        }
    }

    /// A control word with any single bit flipped is never accepted as a
    /// different valid word with the same toggle (CRC8 catches 1-bit errors).
    #[test]
    fn crc_catches_single_bit_flips(len in 4u16..4000, count in 1u8..=16, toggle: bool, bit in 0usize..32) {
        let mut w = sdio::encode_ctrl_word(len, count, toggle);
        w[bit / 8] ^= 1 << (bit % 8);
        let crc_err = matches!(sdio::decode_ctrl_word(w, toggle), Err(CtrlError::Crc { .. }));
        prop_assert!(crc_err, "flipped bit {} accepted", bit);
    }
}

proptest! {
    /// A stream of messages split into consecutive SDIO batches at
    /// arbitrary points (≤ 16 per batch) comes out whole and in order.
    #[test]
    fn arbitrary_batch_splits_keep_every_message(
        msgs in proptest::collection::vec(arb_chip_msg(), 1..60),
        cuts in proptest::collection::vec(1usize..=16, 1..60),
    ) {
        let mut out = Vec::new();
        let mut i = 0;
        let mut c = cuts.iter().cycle();
        while i < msgs.len() {
            let n = (*c.next().unwrap()).min(msgs.len() - i);
            let mut buf = vec![0u8; 16 * 1632];
            let mut tx = TxBatch::new(&mut buf);
            let mut k = 0;
            while k < n && tx.push(&msgs[i + k]).is_ok() {
                k += 1;
            }
            prop_assert!(k > 0);
            let len = tx.len();
            let batch = sdio::extract(&buf, len, Some(k as u8)).unwrap();
            out.extend(batch.iter(&buf).map(|m| m.to_vec()));
            i += k;
        }
        prop_assert_eq!(out, msgs);
    }
}

#[test]
fn confirm_bodies_decode_typed() {
    use bes2600_core::wsm::confirm;
    let mut b = [0u8; 64];
    let n = chip::confirm(&mut b, 0, id::READ_MIB_REQ, 0, &[0x02, 0x10, 3, 0, 7, 8, 9]).unwrap();
    let Incoming::Confirm { req, status, body } = wsm::decode(&b[..n]).unwrap().1 else {
        panic!()
    };
    assert_eq!((req, status), (id::READ_MIB_REQ, 0));
    assert_eq!(
        confirm::ReadMib::parse(body),
        Ok(confirm::ReadMib {
            mib_id: 0x1002,
            data: &[7, 8, 9]
        })
    );
    assert!(matches!(
        confirm::ReadMib::parse(&[0x02, 0x10, 9, 0, 1]),
        Err(WsmError::Truncated { .. })
    ));
    let j = confirm::Join::parse(&[10, 0, 0, 0, 200, 0, 0, 0]).unwrap();
    assert_eq!((j.min_power_level, j.max_power_level), (10, 200));
    let mut cfg = vec![2, 0xbe, 0x57, 0, 0, 2, 3, 0];
    cfg.extend_from_slice(&0xfffu32.to_le_bytes());
    for v in [0u32, 200, 10, 0, 170, 10] {
        cfg.extend_from_slice(&v.to_le_bytes());
    }
    let c = confirm::Configuration::parse(&cfg).unwrap();
    assert_eq!(
        (
            c.bands_supported,
            c.supported_rate_mask,
            c.tx_power_range[1]
        ),
        (3, 0xfff, (0, 170, 10))
    );
}

fn every_request<'a>(
    dpd: &'a [u8],
    mib: &'a [u8],
    chans: &'a [wsm::ScanChannel],
    ssids: &'a [wsm::Ssid],
    frame: &'a [u8],
) -> Vec<Request<'a>> {
    let ssid = wsm::Ssid {
        len: 6,
        bytes: [b'x'; 32],
    };
    vec![
        Request::Configuration {
            max_tx_msdu_lifetime: 1,
            max_rx_lifetime: 2,
            rts_threshold: 3,
            station_id: [1; 6],
            dpd,
        },
        Request::Reset {
            reset_statistics: true,
        },
        Request::ReadMib { mib_id: 0x1002 },
        Request::WriteMib {
            mib_id: 0x1003,
            data: mib,
        },
        Request::StartScan(wsm::ScanReq {
            band: wsm::Band::Ghz2,
            scan_type: 0,
            flags: 0,
            max_tx_rate: 0,
            auto_scan_interval: 0,
            num_probes: 2,
            probe_delay: 0,
            channels: chans,
            ssids,
        }),
        Request::StopScan,
        Request::Join(wsm::JoinReq {
            mode: 0,
            band: wsm::Band::Ghz5,
            channel: 36,
            bssid: [2; 6],
            atim_window: 0,
            preamble: 0,
            probe_for_join: 1,
            dtim_period: 1,
            flags: 0,
            ssid,
            beacon_interval: 100,
            basic_rate_set: 0xf,
        }),
        Request::AddKey(wsm::AddKeyReq::aes_pairwise(1, [3; 6], [4; 16])),
        Request::AddKey(wsm::AddKeyReq::aes_group(2, 1, [5; 16], [0; 8])),
        Request::RemoveKey { entry_index: 1 },
        Request::SetPm {
            mode: 1,
            fast_psm_idle_period: 0,
            ap_psm_change_period: 0,
            min_auto_pspoll_period: 0,
        },
        Request::SetBssParams {
            reset_beacon_loss: true,
            beacon_lost_count: 20,
            aid: 1,
            operational_rate_set: 0xff,
        },
        Request::TxQueueParams {
            aci: 1,
            ack_policy: 0,
            max_tx_lifetime: 0,
            allowed_medium_time: 0,
        },
        Request::Edca {
            params: [wsm::EdcaParams {
                cwmin: 3,
                cwmax: 7,
                aifs: 2,
                txop_limit: 47,
                max_rx_lifetime: 0,
            }; 4],
        },
        Request::Tx(wsm::TxReq {
            packet_id: 9,
            max_tx_rate: 0,
            queue_id: 2,
            more: true,
            flags: 0,
            expire_time: 0,
            ht_tx_parameters: 0,
            frame,
        }),
        Request::Mcu {
            cmd: 0x11,
            cmd_type: 4,
            payload: mib,
        },
    ]
}

proptest! {
    /// Every request the driver sends encodes within MSG_LEN_MAX with its
    /// id, and the length field matches the bytes written.
    #[test]
    fn every_request_encodes_with_its_id_and_length(
        dpd in proptest::collection::vec(any::<u8>(), 0..64),
        mib in proptest::collection::vec(any::<u8>(), 0..64),
        n_ch in 0usize..=48,
        n_ssid in 0usize..=2,
        frame in proptest::collection::vec(any::<u8>(), 0..1500),
    ) {
        let chans = vec![wsm::ScanChannel { number: 1, min_chan_time: 1, max_chan_time: 2 }; n_ch];
        let ssids = vec![wsm::Ssid { len: 4, bytes: [b'a'; 32] }; n_ssid];
        for req in every_request(&dpd, &mib, &chans, &ssids, &frame) {
            let mut b = vec![0u8; 2048];
            let n = req.encode(&mut b).unwrap();
            let (len, mid) = wsm::parse_header(&b[..n]).unwrap();
            prop_assert_eq!(len, n);
            prop_assert_eq!(mid.base(), req.base_id());
            prop_assert!(wsm::decode_request(&b[..n]).is_ok());
            // Too small a buffer is a typed error, never a panic.
            let mut small = vec![0u8; n - 1];
            prop_assert!(req.encode(&mut small).is_err());
        }
        let too_many = vec![wsm::ScanChannel::default(); 49];
        let bad = Request::StartScan(wsm::ScanReq { band: wsm::Band::Ghz2, scan_type: 0, flags: 0, max_tx_rate: 0, auto_scan_interval: 0, num_probes: 0, probe_delay: 0, channels: &too_many, ssids: &[] });
        prop_assert_eq!(bad.encode(&mut [0u8; 2048]), Err(WsmError::InvalidArgument));
    }
}
