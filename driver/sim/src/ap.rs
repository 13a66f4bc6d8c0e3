//! A simulated access point: the 802.11 frames the chip hands up (beacons,
//! probe responses, auth/assoc responses, data) and what it does with the
//! frames the host transmits.

/// Largest 802.11 frame the AP builds (bytes).
pub const FRAME_LEN_MAX: usize = 1600;
/// 802.11 MAC header without QoS (bytes).
pub const HDR_LEN: usize = 24;

/// Frame-control first byte: subtype << 4 | type << 2.
pub mod fc {
    pub const ASSOC_REQ: u8 = 0x00;
    pub const ASSOC_RESP: u8 = 0x10;
    pub const PROBE_RESP: u8 = 0x50;
    pub const BEACON: u8 = 0x80;
    pub const AUTH: u8 = 0xB0;
    pub const DATA: u8 = 0x08;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    Auth,
    /// An authentication algorithm the AP does not do (shared key, SAE):
    /// status 13, so a station falls back to open system.
    AuthRefused {
        alg: u16,
    },
    Assoc,
}

/// Supported Rates element: 1, 2, 5.5, 11 Mbit/s basic, 6-18 Mbit/s
/// (IEEE 802.11-2020 9.4.2.3). mac80211 builds the station's rate set from it.
const RATES_IE: [u8; 10] = [0x01, 0x08, 0x82, 0x84, 0x8b, 0x96, 0x0c, 0x12, 0x18, 0x24];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ap {
    pub bssid: [u8; 6],
    pub sta: [u8; 6],
    pub channel: u16,
    pub rssi: u8,
    pub authenticated: bool,
    pub associated: bool,
    /// Advertise privacy (capability bit 4): a network for static WEP keys.
    pub privacy: bool,
    pub uplink_data_frames: u64,
    seq: u16,
}

impl Default for Ap {
    fn default() -> Self {
        Ap {
            bssid: [0x02, 0xbe, 0x57, 0x00, 0x00, 0x01],
            sta: [0x02, 0xbe, 0x57, 0x00, 0x00, 0x02],
            channel: 6,
            rssi: 0xc4,
            authenticated: false,
            associated: false,
            privacy: false,
            uplink_data_frames: 0,
            seq: 0,
        }
    }
}

impl Ap {
    /// A frame from the station: returns the management reply to send.
    pub fn on_uplink(&mut self, frame: &[u8]) -> Option<Reply> {
        let (&f0, _) = frame.split_first()?;
        if frame.len() < HDR_LEN || frame[4..10] != self.bssid {
            return None;
        }
        match f0 {
            fc::AUTH => {
                let alg = frame
                    .get(HDR_LEN..HDR_LEN + 2)
                    .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
                if alg != 0 {
                    return Some(Reply::AuthRefused { alg });
                }
                self.authenticated = true;
                Some(Reply::Auth)
            }
            fc::ASSOC_REQ if self.authenticated => {
                self.associated = true;
                Some(Reply::Assoc)
            }
            fc::DATA => {
                self.uplink_data_frames += 1;
                None
            }
            _ => None,
        }
    }
}

fn header(ap: &Ap, f0: u8, f1: u8, to: [u8; 6], out: &mut [u8]) {
    out[0] = f0;
    out[1] = f1;
    out[2..4].copy_from_slice(&[0, 0]);
    out[4..10].copy_from_slice(&to);
    out[10..16].copy_from_slice(&ap.bssid);
    out[16..22].copy_from_slice(&ap.bssid);
    out[22..24].copy_from_slice(&(ap.seq << 4).to_le_bytes());
}

/// A downlink data frame of `len` bytes (header included, min 24).
pub fn data_frame(ap: &Ap, len: usize, out: &mut [u8]) -> usize {
    let len = len.clamp(HDR_LEN, out.len().min(FRAME_LEN_MAX));
    header(ap, fc::DATA, 0x02, ap.sta, out); // FromDS
    for (i, b) in out[HDR_LEN..len].iter_mut().enumerate() {
        *b = i as u8;
    }
    len
}

/// RFC 1042 (IEEE 802.1H) LLC/SNAP header that carries an EtherType
/// in an 802.11 data frame: `rfc1042_header` of net/wireless/util.c
/// (Linux 6.12, line 2689), the encapsulation `ieee80211_data_to_8023_exthdr`
/// strips and `ieee80211_subif_start_xmit` adds.
pub const RFC1042: [u8; 6] = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00];
/// Ethernet header: destination, source, EtherType.
pub const ETH_HLEN: usize = 14;

/// Whether `frame` is a data frame that carries data (subtype Data or QoS
/// Data; not Null, which a station sends for power management).
pub fn is_data(frame: &[u8]) -> bool {
    matches!(frame.first(), Some(0x08 | 0x88))
}

/// The AP's wired side: a station's data frame (ToDS: addr1 BSSID, addr2
/// source, addr3 destination; IEEE 802.11-2020 Table 9-30) as the Ethernet
/// frame the AP bridges on. `None` when it is not ToDS to this BSS from
/// the station, protected (this AP does no crypto), not RFC 1042, or does
/// not fit `out`.
pub fn to_ethernet(ap: &Ap, frame: &[u8], out: &mut [u8]) -> Option<usize> {
    let hdr = match frame.first()? {
        0x08 => HDR_LEN,
        0x88 => HDR_LEN + 2, // QoS Control
        _ => return None,
    };
    let f1 = *frame.get(1)?;
    // ToDS only (bit 0), not FromDS (bit 1), not Protected (bit 6), no
    // HT Control (Order, bit 7, in a QoS frame).
    if f1 & 0xc3 != 0x01 || frame.get(4..10)? != ap.bssid || frame.get(10..16)? != ap.sta {
        return None;
    }
    let body = frame.get(hdr..)?;
    if body.get(..6)? != RFC1042 {
        return None;
    }
    let payload = body.get(8..)?;
    let n = ETH_HLEN + payload.len();
    let out = out.get_mut(..n)?;
    out[0..6].copy_from_slice(&frame[16..22]);
    out[6..12].copy_from_slice(&frame[10..16]);
    out[12..14].copy_from_slice(&body[6..8]);
    out[ETH_HLEN..].copy_from_slice(payload);
    Some(n)
}

/// The AP's air side: an Ethernet frame from the wired side as the data
/// frame the AP sends to its station (FromDS: addr1 destination, addr2
/// BSSID, addr3 source), RFC 1042 encapsulated. `None` when it is for
/// neither the station nor a group address (the AP has one station), too
/// short, or too long for a frame.
pub fn from_ethernet(ap: &Ap, eth: &[u8], out: &mut [u8]) -> Option<usize> {
    if eth.len() < ETH_HLEN {
        return None;
    }
    let (da, sa, ty) = (&eth[0..6], &eth[6..12], &eth[12..14]);
    if da != ap.sta && da[0] & 1 == 0 {
        return None;
    }
    let payload = &eth[ETH_HLEN..];
    let n = HDR_LEN + RFC1042.len() + 2 + payload.len();
    if n > FRAME_LEN_MAX || n > out.len() {
        return None;
    }
    header(ap, fc::DATA, 0x02, [0; 6], out); // FromDS
    out[4..10].copy_from_slice(da);
    out[16..22].copy_from_slice(sa);
    out[HDR_LEN..HDR_LEN + 6].copy_from_slice(&RFC1042);
    out[HDR_LEN + 6..HDR_LEN + 8].copy_from_slice(ty);
    out[HDR_LEN + 8..n].copy_from_slice(payload);
    Some(n)
}

/// A probe response carrying the SSID "besser", the supported rates and
/// the channel (DS Parameter Set).
pub fn probe_response(ap: &Ap, out: &mut [u8]) -> usize {
    header(ap, fc::PROBE_RESP, 0, ap.sta, out);
    let body: [u8; 20] = [
        0, 0, 0, 0, 0, 0, 0, 0, // timestamp
        0x64, 0x00, // beacon interval 100 TU
        0x01, 0x04, // capabilities
        0x00, 0x06, b'b', b'e', b's', b's', b'e', b'r', // SSID element
    ];
    let mut body = body;
    if ap.privacy {
        body[10] |= 0x10;
    }
    let mut n = HDR_LEN;
    for part in [
        &body[..],
        &RATES_IE[..],
        &[0x03, 0x01, ap.channel as u8][..],
    ] {
        out[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    n
}

/// A beacon (same body as the probe response).
pub fn beacon(ap: &Ap, out: &mut [u8]) -> usize {
    let n = probe_response(ap, out);
    out[0] = fc::BEACON;
    out[4..10].copy_from_slice(&[0xff; 6]);
    n
}

/// Auth / assoc response to the station.
pub fn mgmt_reply(ap: &Ap, reply: Reply, out: &mut [u8]) -> usize {
    match reply {
        Reply::Auth => {
            header(ap, fc::AUTH, 0, ap.sta, out);
            // algorithm open, transaction 2, status success
            out[HDR_LEN..HDR_LEN + 6].copy_from_slice(&[0, 0, 2, 0, 0, 0]);
            HDR_LEN + 6
        }
        Reply::AuthRefused { alg } => {
            header(ap, fc::AUTH, 0, ap.sta, out);
            // the station's algorithm, transaction 2, status 13 (unsupported algorithm)
            let a = alg.to_le_bytes();
            out[HDR_LEN..HDR_LEN + 6].copy_from_slice(&[a[0], a[1], 2, 0, 13, 0]);
            HDR_LEN + 6
        }
        Reply::Assoc => {
            header(ap, fc::ASSOC_RESP, 0, ap.sta, out);
            // capabilities, status success, AID 1
            out[HDR_LEN..HDR_LEN + 6].copy_from_slice(&[0x01, 0x04, 0, 0, 0x01, 0xc0]);
            out[HDR_LEN + 6..HDR_LEN + 6 + RATES_IE.len()].copy_from_slice(&RATES_IE);
            HDR_LEN + 6 + RATES_IE.len()
        }
    }
}

/// A station frame to the AP (for tests and the harness).
pub fn sta_frame(ap: &Ap, f0: u8, payload_len: usize, out: &mut [u8]) -> usize {
    out[0] = f0;
    out[1] = if f0 == fc::DATA { 0x01 } else { 0 }; // ToDS for data
    out[2..4].copy_from_slice(&[0, 0]);
    out[4..10].copy_from_slice(&ap.bssid);
    out[10..16].copy_from_slice(&ap.sta);
    out[16..22].copy_from_slice(&ap.bssid);
    out[22..24].copy_from_slice(&[0, 0]);
    let len = (HDR_LEN + payload_len).min(out.len());
    for b in &mut out[HDR_LEN..len] {
        *b = 0xa5;
    }
    if f0 == fc::AUTH && len >= HDR_LEN + 6 {
        // open system, transaction 1, status 0
        out[HDR_LEN..HDR_LEN + 6].copy_from_slice(&[0, 0, 1, 0, 0, 0]);
    }
    len
}
