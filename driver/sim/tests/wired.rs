//! The AP's wired side: Ethernet in, 802.11 data frames out to the
//! station and back, through the driver core's real bh.
//!
//! Layouts: IEEE 802.11-2020 9.3.2.1 (data frame: frame control, duration,
//! addr1-3, sequence control) and Table 9-30 (ToDS 1/FromDS 0: addr1 BSSID,
//! addr2 SA, addr3 DA; ToDS 0/FromDS 1: addr1 DA, addr2 BSSID, addr3 SA);
//! RFC 1042 encapsulation as Linux's `ieee80211_data_to_8023_exthdr`
//! (net/wireless/util.c) expects it. In the VM, mac80211 itself does the
//! station's half of this conversion, so the kernel checks these too.

use bes2600_core::queue::Ac;
use bes2600_sim::ap::{self, Ap};
use bes2600_sim::chip::ChipConfig;
use bes2600_sim::harness::Harness;

const GW: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x03, 0x02];

/// A station's ARP reply to the gateway as mac80211 transmits it: non-QoS
/// data, ToDS, addr1 BSSID, addr2 the station, addr3 the gateway, then
/// LLC/SNAP with EtherType 0x0806 and the 28-byte ARP body.
fn sta_arp(ap: &Ap) -> Vec<u8> {
    let mut f = vec![0x08, 0x01, 0x00, 0x00];
    f.extend_from_slice(&ap.bssid);
    f.extend_from_slice(&ap.sta);
    f.extend_from_slice(&GW);
    f.extend_from_slice(&[0x10, 0x00]); // sequence 1
    f.extend_from_slice(&[0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x08, 0x06]);
    f.extend((0..28).map(|i| i as u8));
    f
}

#[test]
fn a_station_data_frame_becomes_the_ethernet_frame_it_carries() {
    let ap = Ap::default();
    let mut out = [0u8; 1600];
    let n = ap::to_ethernet(&ap, &sta_arp(&ap), &mut out).unwrap();
    assert_eq!(n, 14 + 28);
    assert_eq!(&out[0..6], &GW, "DA is addr3");
    assert_eq!(&out[6..12], &ap.sta, "SA is addr2");
    assert_eq!(&out[12..14], &[0x08, 0x06]);
    assert!(out[14..n].iter().enumerate().all(|(i, &b)| b == i as u8));

    // QoS Data: two more header bytes (QoS Control) before the LLC.
    let mut q = sta_arp(&ap);
    q[0] = 0x88;
    q.splice(24..24, [0x00, 0x00]);
    assert_eq!(ap::to_ethernet(&ap, &q, &mut out), Some(n));
    assert_eq!(&out[0..6], &GW);
}

#[test]
fn the_ap_drops_what_it_cannot_bridge() {
    let ap = Ap::default();
    let mut out = [0u8; 1600];
    let good = sta_arp(&ap);
    let mut protected = good.clone();
    protected[1] |= 0x40;
    let mut from_ds = good.clone();
    from_ds[1] = 0x02;
    let mut other_bss = good.clone();
    other_bss[4] ^= 1;
    let mut no_llc = good.clone();
    no_llc[24] = 0x42;
    let mut null = good.clone();
    null[0] = 0x48; // Null (no data)
    for (what, f) in [
        ("protected", &protected),
        ("FromDS", &from_ds),
        ("another BSS", &other_bss),
        ("not RFC 1042", &no_llc),
        ("Null", &null),
        ("truncated", &good[..30].to_vec()),
    ] {
        assert_eq!(ap::to_ethernet(&ap, f, &mut out), None, "{what}");
    }
    assert_eq!(
        ap::to_ethernet(&ap, &good, &mut out[..20]),
        None,
        "too small an out"
    );
}

#[test]
fn an_ethernet_frame_for_the_station_goes_on_air_from_the_ds() {
    let ap = Ap::default();
    let mut eth = vec![0xff; 6];
    eth.extend_from_slice(&GW);
    eth.extend_from_slice(&[0x08, 0x06]);
    eth.extend([0x5a; 28]);
    let mut out = [0u8; 1600];
    let n = ap::from_ethernet(&ap, &eth, &mut out).unwrap();
    assert_eq!(n, 24 + 8 + 28);
    assert_eq!(&out[0..2], &[0x08, 0x02], "data, FromDS");
    assert_eq!(&out[4..10], &[0xff; 6], "addr1 DA");
    assert_eq!(&out[10..16], &ap.bssid, "addr2 BSSID");
    assert_eq!(&out[16..22], &GW, "addr3 SA");
    assert_eq!(&out[24..32], &[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x06]);

    let mut other = eth.clone();
    other[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 9]);
    assert_eq!(
        ap::from_ethernet(&ap, &other, &mut out),
        None,
        "unicast to someone else"
    );
    let mut big = eth.clone();
    big.resize(14 + 1600, 0);
    assert_eq!(ap::from_ethernet(&ap, &big, &mut out), None, "over a frame");
    assert_eq!(
        ap::from_ethernet(&ap, &eth[..13], &mut out),
        None,
        "no header"
    );
}

/// Wired → air → the core's bh → the host, and the host's frame → air →
/// wired, with the chip model's counters agreeing.
#[test]
fn traffic_crosses_the_air_both_ways_through_the_bh() {
    let mut h = Harness::new(ChipConfig::default());
    assert!(h.associate().unwrap());
    h.up.keep_frames = true;
    let before = h.up.rx_frames;

    let mut eth = h.chip.ap.sta.to_vec();
    eth.extend_from_slice(&GW);
    eth.extend_from_slice(&[0x08, 0x00]);
    eth.extend((0..1500).map(|i| (i * 7) as u8));
    let mut sent = 0;
    while sent < 50 {
        if h.chip.offer_ethernet(&eth) {
            sent += 1;
        } else {
            h.pump().unwrap();
        }
    }
    h.pump().unwrap();
    assert_eq!(h.up.rx_frames - before, 50);
    assert_eq!(h.chip.stats.downlink_ethernet, 50);
    let f = h.up.frames.last().unwrap();
    assert_eq!(f.len(), 24 + 8 + 1500);
    assert_eq!(&f[32..], &eth[14..]);

    let frame = sta_arp(&h.chip.ap);
    for _ in 0..3 {
        h.send_frame(Ac::Be, frame.clone()).unwrap();
    }
    h.pump().unwrap();
    let mut out = [0u8; 1600];
    let mut got = 0;
    while let Some(n) = h.chip.take_ethernet(&mut out) {
        assert_eq!(&out[..6], &GW);
        assert_eq!(n, 42);
        got += 1;
    }
    assert_eq!(got, 3);
    assert_eq!(h.chip.stats.uplink_ethernet, 3);
    assert_eq!(h.chip.stats.uplink_ethernet_dropped, 0);
    h.check_invariants().unwrap();
}

/// The wired side holds a bounded number of frames; more are dropped and
/// counted, never overwrite what is queued.
#[test]
fn a_full_wired_side_drops_and_counts() {
    let mut h = Harness::new(ChipConfig::default());
    assert!(h.associate().unwrap());
    let frame = sta_arp(&h.chip.ap);
    let n = bes2600_sim::chip::WIRED_SLOTS + 3;
    for _ in 0..n {
        h.send_frame(Ac::Be, frame.clone()).unwrap();
        h.pump().unwrap();
    }
    assert_eq!(
        h.chip.stats.uplink_ethernet as usize,
        bes2600_sim::chip::WIRED_SLOTS
    );
    assert_eq!(h.chip.stats.wired_full, 3);
    assert_eq!(h.chip.stats.uplink_ethernet_dropped, 0);
    let mut out = [0u8; 1600];
    assert_eq!(h.chip.take_ethernet(&mut out), Some(42));
}
