//! The core against the simulated chip: startup, association, traffic both
//! ways, batching, fault recovery.

use bes2600_core::bh::{BhError, BhState, HaltReason};
use bes2600_core::queue::Ac;
use bes2600_core::sdio::RX_BATCH_MAX;
use bes2600_core::wsm::{self, Request};
use bes2600_sim::ap;
use bes2600_sim::chip::{ChipConfig, Faults};
use bes2600_sim::harness::{Harness, Ind};

fn data(h: &Harness, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; 1600];
    let n = ap::sta_frame(&h.chip.ap, ap::fc::DATA, len, &mut b);
    b.truncate(n);
    b
}

fn offer_all(h: &mut Harness, n: usize, len: usize) {
    let mut offered = 0;
    while offered < n {
        offered += h.chip.offer_downlink(n - offered, len);
        h.pump().unwrap();
    }
}

#[test]
fn startup_grants_the_firmwares_credits() {
    let h = Harness::new(ChipConfig {
        input_buffers: 11,
        ..Default::default()
    });
    assert_eq!(h.bh.state(), BhState::Running);
    assert_eq!(h.bh.credits().input_buffers, 11);
    assert_eq!(h.up.indications, vec![Ind::Started(11)]);
}

#[test]
fn associates_with_the_simulated_ap() {
    let mut h = Harness::new(ChipConfig::default());
    assert!(h.associate().unwrap());
    // auth response + assoc response came up as RX frames
    assert_eq!(h.up.rx_frames, 2);
    assert_eq!(h.up.tx_done.len(), 2);
    h.check_invariants().unwrap();
    assert!(h.bh.idle());
}

#[test]
fn downlink_arrives_in_batches_of_at_most_sixteen_one_delivery_per_read() {
    let mut h = Harness::new(ChipConfig::default());
    h.up.keep_frames = true;
    let mut offered = 0;
    while offered < 1000 {
        offered += h.chip.offer_downlink(1000 - offered, 1500);
        h.pump().unwrap();
    }
    assert_eq!(h.up.rx_frames, 1000);
    assert!(h
        .up
        .rx_deliveries
        .iter()
        .all(|&n| (1..=RX_BATCH_MAX).contains(&n)));
    // Every SDIO data read that carried RX frames is exactly one delivery.
    assert_eq!(
        h.up.rx_deliveries.len() as u64,
        h.bus.data_reads - 1 /* startup */
    );
    assert!(h.up.frames.iter().all(|f| f.len() == 1500));
    h.check_invariants().unwrap();
}

#[test]
fn uplink_never_exceeds_the_granted_credits() {
    let mut h = Harness::new(ChipConfig {
        input_buffers: 4,
        ..Default::default()
    });
    for _ in 0..200 {
        let f = data(&h, 1400);
        if let Err(f) = h.send_frame(Ac::Be, f) {
            h.pump().unwrap();
            h.send_frame(Ac::Be, f).unwrap();
        }
    }
    h.pump().unwrap();
    assert_eq!(h.up.tx_done.len(), 200);
    assert_eq!(h.chip.stats.overruns, 0);
    assert!(h.chip.stats.max_in_flight <= 4);
    h.check_invariants().unwrap();
}

#[test]
fn crc_errors_and_stale_lengths_are_retried_without_loss() {
    let faults = Faults {
        ctrl_crc_every: 3,
        data_crc_every: 4,
        stale_ctrl_every: 5,
        ..Default::default()
    };
    let mut h = Harness::new(ChipConfig {
        faults,
        ..Default::default()
    });
    let mut offered = 0;
    while offered < 500 {
        offered += h.chip.offer_downlink(500 - offered, 1000);
        h.pump().unwrap();
        // the stale/CRC retries may leave data for the next IRQ-less pass
        h.run(bes2600_core::bh::Wake::RX).unwrap();
    }
    h.pump().unwrap();
    let s = h.bh.stats();
    assert_eq!(h.up.rx_frames, 500, "{s:?}");
    assert!(
        s.ctrl_crc_errors > 0 && s.data_crc_retries > 0 && s.ctrl_stale > 0,
        "{s:?}"
    );
    h.check_invariants().unwrap();
}

#[test]
fn firmware_exception_halts_and_reset_resends_pending_frames() {
    let mut h = Harness::new(ChipConfig::default());
    h.chip.cfg.faults.exception_at_ms = Some(5);
    // Frames go out but the chip crashes before confirming the second lot.
    for _ in 0..3 {
        let f = data(&h, 100);
        h.send_frame(Ac::Be, f).unwrap();
    }
    h.pump().unwrap();
    assert_eq!(h.up.tx_done.len(), 3);
    h.chip.tick(5); // crash: exception queued, chip stops answering
    let f = data(&h, 100);
    h.send_frame(Ac::Be, f).unwrap();
    let r = h.pump();
    assert_eq!(r, Err(BhError::Halted(HaltReason::FirmwareException)));
    assert!(
        matches!(h.up.indications.last(), Some(Ind::Exception(d)) if d.starts_with(b"sim: assert"))
    );
    // Halted means halted: nothing more is read or written.
    assert!(h.bh_pass().is_err() || h.bh.state() != BhState::Running);
    let requeued = h.reset();
    assert!(requeued <= 1);
    assert_eq!(h.bh.state(), BhState::Running);
    h.pump().unwrap();
    assert_eq!(
        h.up.tx_done.len(),
        4,
        "the frame sent into the crash went out after the reset"
    );
    h.check_invariants().unwrap();
}

#[test]
fn a_dropped_confirm_times_out_and_the_reset_path_recovers() {
    let faults = Faults {
        drop_confirm_every: 1,
        ..Default::default()
    };
    let mut h = Harness::new(ChipConfig {
        faults,
        ..Default::default()
    });
    assert_eq!(
        h.command_sync(&Request::ReadMib { mib_id: 0x1002 })
            .unwrap(),
        None
    );
    assert_eq!(h.bh.credits().hw_bufs_used, 1);
    let r = h.advance(bes2600_core::bh::CMD_TIMEOUT_MS);
    assert!(
        matches!(
            r,
            Err(BhError::Halted(HaltReason::CommandTimeout { req: 0x0005 }))
        ),
        "{r:?}"
    );
    assert!(h
        .up
        .cmd_done
        .contains(&(0x0005, bes2600_core::bh::STATUS_TIMEOUT)));
    h.chip.cfg.faults.drop_confirm_every = 0;
    h.reset();
    assert_eq!(
        h.command_sync(&Request::ReadMib { mib_id: 0x1002 })
            .unwrap(),
        Some(0)
    );
    h.check_invariants().unwrap();
}

#[test]
fn mcu_commands_use_their_own_sequence_space() {
    let mut h = Harness::new(ChipConfig::default());
    for _ in 0..10 {
        let st = h
            .command_sync(&Request::Mcu {
                cmd: 0x11,
                cmd_type: 7,
                payload: &[1, 2, 3],
            })
            .unwrap();
        assert_eq!(st, Some(0));
        h.command_sync(&Request::ReadMib { mib_id: 1 }).unwrap();
    }
    let c = h.bh.credits();
    assert_eq!(c.tx_seq, [10 % 8, 10 % 8]);
    assert_eq!(c.hw_bufs_used, 0);
    h.check_invariants().unwrap();
}

#[test]
fn bug5_degradation_mode_reproduces_the_signature() {
    let faults = Faults {
        degrade_after_ms: Some(13 * 60_000),
        degraded_keep_one_in: 100,
        ..Default::default()
    };
    let mut h = Harness::new(ChipConfig {
        faults,
        ..Default::default()
    });
    let ch = [bes2600_core::scan::Channel {
        band: wsm::Band::Ghz2,
        number: 6,
    }];
    let fresh = h.scan(&ch).unwrap();
    offer_all(&mut h, 100, 1500);
    let fresh_rx = h.up.rx_frames;
    h.advance(14 * 60_000).unwrap();
    let old = h.scan(&ch).unwrap();
    offer_all(&mut h, 100, 1500);
    let old_rx = h.up.rx_frames - fresh_rx - 1 /* probe response of the fresh scan is before */;
    assert_eq!((fresh.completed, fresh.fw_rejects), (1, 0));
    assert_eq!((old.completed, old.fw_rejects), (0, 1));
    assert_eq!(fresh_rx, 101);
    assert!(old_rx <= 2, "{old_rx}");
}

#[test]
fn requeued_frames_are_sent_again_and_confirmed_once() {
    let faults = Faults {
        requeue_every: 3,
        ..Default::default()
    };
    let mut h = Harness::new(ChipConfig {
        input_buffers: 5,
        faults,
        ..Default::default()
    });
    for i in 0..30u8 {
        let mut f = data(&h, 60);
        f[30] = i;
        h.send_frame(Ac::Vi, f).unwrap();
        h.pump().unwrap();
    }
    h.pump().unwrap();
    assert_eq!(h.up.tx_done.len(), 30);
    assert!(h
        .up
        .tx_done
        .iter()
        .all(|(_, st)| *st == wsm::status::SUCCESS));
    let mut ids: Vec<u8> = h.up.tx_done.iter().map(|(f, _)| f[30]).collect();
    ids.sort();
    assert_eq!(
        ids,
        (0..30).collect::<Vec<u8>>(),
        "each frame confirmed exactly once"
    );
    assert!(h.bh.stats().requeued >= 10);
    assert!(
        h.chip.stats.tx_frames > 30,
        "requeued frames went over the air twice"
    );
    h.check_invariants().unwrap();
}

#[test]
fn a_failed_write_halts_and_the_reset_resends_its_frames() {
    let faults = Faults {
        write_fail_at: Some(1),
        ..Default::default()
    };
    let mut h = Harness::new(ChipConfig {
        faults,
        ..Default::default()
    });
    for _ in 0..4 {
        let f = data(&h, 200);
        h.send_frame(Ac::Be, f).unwrap();
    }
    let r = h.pump();
    assert_eq!(
        r,
        Err(BhError::Halted(HaltReason::Bus(
            bes2600_core::bh::BusError::Other
        )))
    );
    assert_eq!(h.up.tx_done.len(), 0);
    let requeued = h.reset();
    assert_eq!(requeued, 4);
    h.pump().unwrap();
    assert_eq!(h.up.tx_done.len(), 4);
    h.check_invariants().unwrap();
}

#[test]
fn a_malformed_body_is_counted_without_losing_sequence_sync() {
    let mut h = Harness::new(ChipConfig::default());
    // A TX confirm with its body cut short: header valid, fields missing.
    let bad = [8u8, 0, 0x04, 0x04, 1, 2, 3, 4];
    assert!(h.chip.inject(&bad));
    h.chip.indicate_event(7, 1);
    h.pump().unwrap();
    assert_eq!(h.bh.stats().decode_errors, 1);
    assert_eq!(h.up.indications.last(), Some(&Ind::Event(7, 1)));
    assert_eq!(h.bh.state(), BhState::Running);
}

#[test]
fn the_ap_beacons_at_its_interval() {
    let mut h = Harness::new(ChipConfig {
        beacon_interval_ms: Some(100),
        ..Default::default()
    });
    h.up.keep_frames = true;
    for _ in 0..10 {
        h.advance(100).unwrap();
    }
    // t = 100 .. 1000 ms: beacons due at 0, 100, ..., 1000
    assert_eq!(h.up.rx_frames, 11);
    assert!(h
        .up
        .frames
        .iter()
        .all(|f| f[0] == ap::fc::BEACON && f[4..10] == [0xff; 6]));
}

#[test]
fn a_spontaneous_firmware_restart_halts_and_the_reset_resends_what_was_in_flight() {
    // bes2600 checks RX sequences strictly with no resync (bh.c 1066-1073):
    // the new firmware's startup indication (sequence 0) is a sequence
    // error, the bh halts, and the reset path recovers the frames.
    let mut h = Harness::new(ChipConfig {
        faults: Faults {
            restart_after_write: Some(1),
            ..Default::default()
        },
        ..Default::default()
    });
    for _ in 0..3 {
        let f = data(&h, 100);
        h.send_frame(Ac::Be, f).unwrap();
    }
    match h.pump() {
        Err(BhError::Halted(HaltReason::RxSequence {
            expected: 1,
            got: 0,
            ..
        })) => {}
        other => panic!("expected a sequence halt, got {other:?}"),
    }
    assert_eq!(h.bh.credits().hw_bufs_used, 3);
    assert_eq!(h.reset(), 3, "the three frames go back to their queue");
    let s = h.bh.stats();
    assert_eq!((s.resets, s.requeued), (1, 3));
    assert_eq!(
        h.up.tx_done.len(),
        3,
        "sent again to the new firmware and confirmed"
    );
    h.check_invariants().unwrap();
}

/// A chip that drops every command's confirm, with a read-MIB sent and its
/// confirm outstanding.
fn read_mib_awaiting_its_confirm(input_buffers: u16) -> Harness {
    let mut h = Harness::new(ChipConfig {
        input_buffers,
        faults: Faults {
            drop_confirm_every: 1,
            ..Default::default()
        },
        ..Default::default()
    });
    h.command(&Request::ReadMib { mib_id: 1 }).unwrap();
    h.pump().unwrap();
    h
}

#[test]
fn a_confirm_that_does_not_decode_still_frees_its_buffer() {
    // C frees one input buffer for every confirm before parsing it (cw1200
    // bh.c 318, bes2600 bh.c 1076-1080). A confirm whose body is cut short
    // must not strand the credit: TX would stall for good.
    let mut h = read_mib_awaiting_its_confirm(1);
    assert_eq!(h.bh.credits().hw_bufs_used, 1, "no confirm came");
    // The confirm arrives without its status word.
    assert!(h.chip.inject(&[4, 0, 0x05, 0x04]));
    h.pump().unwrap();
    let s = h.bh.stats();
    assert_eq!(s.decode_errors, 1);
    assert_eq!(h.bh.credits().hw_bufs_used, 0, "the buffer is free again");
    h.chip.cfg.faults.drop_confirm_every = 0;
    let f = data(&h, 64);
    h.send_frame(Ac::Be, f).unwrap();
    h.pump().unwrap();
    assert_eq!(h.up.tx_done.len(), 1, "TX goes on");
}

#[test]
fn a_long_run_of_stale_control_bytes_is_waited_out_not_a_halt() {
    // bes2600 reads the control byte again (retry <= 5) and then waits for
    // the next interrupt (bes2600_sdio.c 858-866); it never re-reads an old
    // batch. A halt here would mean a firmware reload on a real board.
    let mut h = Harness::new(ChipConfig::default());
    offer_all(&mut h, 10, 200);
    h.chip.cfg.faults.stale_ctrl_every = 1;
    h.chip.offer_downlink(10, 200);
    for _ in 0..5 {
        h.pump().unwrap();
        h.run(bes2600_core::bh::Wake::RX).unwrap();
    }
    assert_eq!(h.bh.state(), BhState::Running);
    assert!(h.bh.stats().ctrl_stale > 5);
    assert_eq!(h.up.rx_frames, 10, "nothing stale was delivered");
    h.chip.cfg.faults.stale_ctrl_every = 0;
    h.run(bes2600_core::bh::Wake::RX).unwrap();
    h.pump().unwrap();
    assert_eq!(h.up.rx_frames, 20);
    h.check_invariants().unwrap();
}

#[test]
fn tx_metadata_reaches_the_chip() {
    let mut h = Harness::new(ChipConfig::default());
    let f = data(&h, 64);
    let meta = bes2600_core::queue::TxMeta {
        link_id: 2,
        if_id: 1,
        max_tx_rate: 13,
        rate_policy_index: 3,
        flags: 0,
        expire_time: 250,
        ht_tx_parameters: 1,
    };
    h.shared.queues.put_with(Ac::Vi, meta, f).unwrap();
    h.line.kick_tx();
    h.pump().unwrap();
    let t = h.chip.stats.last_tx;
    assert_eq!(t.max_tx_rate, 13);
    assert_eq!(t.rate_policy, 3);
    assert_eq!((t.expire_time, t.ht_tx_parameters), (250, 1));
    // bes2600: link in the queue byte over the WSM queue (VI -> 2), the
    // interface in the id (txrx.c 782-783, wsm.c 2979-2992).
    assert_eq!(t.queue_byte, (2 << 2) | 2);
    assert_eq!(t.if_id, 1);
}

#[test]
fn a_command_longer_than_512_bytes_is_sent() {
    // A 40-channel start-scan is 652 bytes: the command slot holds any
    // message the chip takes (it was capped at 512).
    let mut h = Harness::new(ChipConfig::default());
    let chans: Vec<wsm::ScanChannel> = (0..40)
        .map(|i| wsm::ScanChannel {
            number: 1 + i % 13,
            min_chan_time: 10,
            max_chan_time: 40,
        })
        .collect();
    let req = Request::StartScan(wsm::ScanReq {
        band: wsm::Band::Ghz2,
        scan_type: 0,
        flags: 0,
        max_tx_rate: 0,
        auto_scan_interval: 0,
        num_probes: 1,
        probe_delay: 0,
        channels: &chans,
        ssids: &[],
    });
    assert_eq!(h.command_sync(&req).unwrap(), Some(wsm::status::SUCCESS));
    assert_eq!(h.chip.stats.slot_mismatches, 0);
}

#[test]
fn keys_reach_the_chip_with_its_key_types() {
    let mut h = Harness::new(ChipConfig::default());
    let key = [7u8; 16];
    for req in [
        wsm::AddKeyReq::aes_pairwise(0, h.chip.ap.bssid, key),
        wsm::AddKeyReq::aes_group(1, 1, key, [0; 8]),
        wsm::AddKeyReq::wep_default(2, 0, b"abcde").unwrap(),
    ] {
        assert_eq!(
            h.command_sync(&Request::AddKey(req)).unwrap(),
            Some(wsm::status::SUCCESS)
        );
    }
    // WSM_KEY_TYPE_AES_PAIRWISE 5, _AES_GROUP 4, _WEP_DEFAULT 0 (cw1200
    // wsm.h 327-332): nothing installed as TKIP (2, 3).
    let k = h.chip.stats.keys_by_type;
    assert_eq!((k[5], k[4], k[0]), (1, 1, 1));
    assert_eq!((k[2], k[3]), (0, 0));
}

#[test]
fn a_startup_that_arrives_in_sequence_while_running_cleans_up_in_flight_frames() {
    // A firmware that restarts and happens to continue the sequence (or
    // replays its startup): what was in flight is requeued and sent again.
    let mut h = Harness::new(ChipConfig::default());
    h.chip.cfg.mute = true; // the firmware takes the frames, confirms nothing
    for _ in 0..2 {
        let f = data(&h, 80);
        h.send_frame(Ac::Be, f).unwrap();
    }
    h.pump().unwrap();
    assert_eq!(h.bh.credits().hw_bufs_used, 2);
    let mut m = [0u8; 256];
    let n = bes2600_sim::wire::startup(&mut m, 0, 5, 1632).unwrap();
    assert!(h.chip.inject(&m[..n]));
    h.chip.cfg.mute = false;
    h.pump().unwrap();
    let s = h.bh.stats();
    assert_eq!((s.unexpected_restarts, s.requeued), (1, 2));
    assert_eq!(h.bh.credits().input_buffers, 5, "the new grant");
    h.pump().unwrap();
    assert_eq!(h.up.tx_done.len(), 2, "sent again and confirmed");
    assert_eq!(
        s.rx_msgs, h.chip.stats.rx_msgs,
        "every message read was dispatched"
    );
}

#[test]
fn a_startup_granting_no_buffers_leaves_the_bh_waiting() {
    let h = Harness::new(ChipConfig {
        input_buffers: 0,
        ..Default::default()
    });
    assert_eq!(h.bh.state(), BhState::AwaitStartup);
    assert_eq!(h.up.indications, vec![Ind::Started(0)]);
}

#[test]
fn a_confirm_for_another_request_does_not_complete_the_outstanding_one() {
    let mut h = read_mib_awaiting_its_confirm(30);
    let mut m = [0u8; 64];
    let n = bes2600_sim::wire::confirm(&mut m, 0, wsm::id::JOIN_REQ, 0, &[0; 8]).unwrap();
    assert!(h.chip.inject(&m[..n]));
    h.pump().unwrap();
    assert!(h.up.cmd_done.is_empty(), "{:?}", h.up.cmd_done);
    assert_eq!(h.bh.stats().unexpected_confirms, 1);
    assert!(
        h.bh.next_deadline().is_some(),
        "the read-MIB is still awaited"
    );
}

/// EDCA parameters (mac80211's `conf_tx`) cross the bus in the firmware's
/// reverse queue order and come back per Linux queue (cw1200 `wsm.c`
/// `wsm_set_edca_params`): the core's encoder and the model's independent
/// parser agree, and a wrong order would swap VO and BK.
#[test]
fn edca_parameters_reach_the_chip_per_queue() {
    use bes2600_core::wsm::EdcaParams;
    let mut h = Harness::new(ChipConfig::default());
    let p = |cwmin, cwmax, aifs, txop| EdcaParams {
        cwmin,
        cwmax,
        aifs,
        txop_limit: txop,
        max_rx_lifetime: 0xc8,
    };
    // VO, VI, BE, BK as mac80211's WMM defaults (IEEE 802.11-2020 Table 9-155).
    let params = [
        p(3, 7, 2, 47),
        p(7, 15, 2, 94),
        p(15, 1023, 3, 0),
        p(15, 1023, 7, 0),
    ];
    let st = h.command_sync(&Request::Edca { params }).unwrap();
    assert_eq!(st, Some(0));
    assert_eq!(h.chip.stats.edca_requests, 1);
    assert_eq!(
        h.chip.stats.last_edca,
        [
            (3, 7, 2, 47),
            (7, 15, 2, 94),
            (15, 1023, 3, 0),
            (15, 1023, 7, 0)
        ]
    );
}
