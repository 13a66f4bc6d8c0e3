//! WSM message codec: the `{le16 len, le16 id}` header, the id bit fields and
//! typed encode/decode of the messages the driver uses.
//!
//! Protocol facts (ids, field order) follow mainline cw1200 `wsm.h`/`wsm.c`
//! and the public bes2600 sources (`0x0Cxx` MCU commands with their own
//! sequence space and a confirm/indication label). Everything received from
//! the chip is untrusted: decoding returns [`WsmError`], never panics.
//!
//! Only the host's side lives here: requests are encoded, chip messages
//! decoded. The simulator builds the chip's side with its own code
//! (`driver/sim/src/wire.rs`), so a wrong layout here fails a test instead
//! of being mirrored; both are checked against `tests/data/*.vec`.
#![forbid(unsafe_code)]

/// Bytes of the `{le16 len, le16 id}` header.
pub const WSM_HDR_LEN: usize = 4;
/// Largest WSM message the chip sends or accepts, header included (bytes).
pub const MSG_LEN_MAX: usize = 1632;
/// Sequence numbers are 3 bits wide (bits 13-15 of the id).
pub const SEQ_MODULO: u8 = 8;
/// Link / interface ids are 4 bits wide (bits 6-9 of the id).
pub const LINK_ID_MAX: u8 = 15;
/// Channels in one start-scan request (cw1200 refuses more than 48).
pub const SCAN_CHANNELS_MAX: usize = 48;
/// SSIDs in one start-scan request (cw1200 refuses more than 2).
pub const SCAN_SSIDS_MAX: usize = 2;
/// Bytes of the add-key union body (largest variant: TKIP/WAPI pairwise).
pub const KEY_BODY_LEN: usize = 40;
/// Bytes of the firmware label in the startup indication.
pub const FW_LABEL_LEN: usize = 128;
/// Bytes of the fixed part of a WSM TX request after the header.
pub const TX_REQ_FIXED_LEN: usize = 20;
/// Bytes of the fixed part of an RX indication after the header.
/// bes2600 reads status, channel, rate, RSSI and flags (12 bytes) and then
/// skips 16 more ("lmac wsm data ind struct update", `wsm.c` 1487-1492):
/// the frame starts 32 bytes into the message (cw1200: 16).
pub const RX_IND_FIXED_LEN: usize = 28;
/// Bytes bes2600 writes after every message on the wire, outside `len`: a
/// host timestamp in ms (`BES2600_HOST_TIMESTAMP_DEBUG` is always defined;
/// `wsm.c` 1874-1877, `queue.c` 435-440, sent as `len + 4`, `bh.c`
/// 1134-1141). The slot size is chosen from `len + 4`.
pub const TX_TRAILER_LEN: usize = 4;
/// Bytes of the bes2600 MCU header after the WSM header (reserve, label, type).
pub const MCU_HDR_LEN: usize = 12;

/// bes2600: `handle_label` of an MCU confirm.
pub const MCU_LABEL_CONFIRM: u32 = 0x0f;
/// bes2600: `handle_label` of an MCU indication.
pub const MCU_LABEL_INDICATION: u32 = 0xf0;

const ID_SEQ_SHIFT: u16 = 13;
const ID_LINK_SHIFT: u16 = 6;
const ID_LINK_MASK: u16 = 0x0F << ID_LINK_SHIFT;
/// Message number and type bits (bes2600 `WSM_MSG_ID_MASK`).
const ID_BASE_MASK: u16 = 0x0C3F;
const ID_TYPE_MASK: u16 = 0x0C00;

/// Base ids (type bits + message number, without link id and sequence).
pub mod id {
    pub const CONFIGURATION_REQ: u16 = 0x0009;
    pub const RESET_REQ: u16 = 0x000A;
    pub const READ_MIB_REQ: u16 = 0x0005;
    pub const WRITE_MIB_REQ: u16 = 0x0006;
    pub const START_SCAN_REQ: u16 = 0x0007;
    pub const STOP_SCAN_REQ: u16 = 0x0008;
    pub const JOIN_REQ: u16 = 0x000B;
    pub const ADD_KEY_REQ: u16 = 0x000C;
    pub const REMOVE_KEY_REQ: u16 = 0x000D;
    pub const TX_REQ: u16 = 0x0004;
    pub const SET_PM_REQ: u16 = 0x0010;
    pub const SET_BSS_PARAMS_REQ: u16 = 0x0011;
    pub const TX_QUEUE_PARAMS_REQ: u16 = 0x0012;
    pub const EDCA_PARAMS_REQ: u16 = 0x0013;

    /// A confirm is the request id with bit 10 set.
    pub const CONFIRM_BIT: u16 = 0x0400;
    pub const TX_CONFIRM: u16 = 0x0404;
    pub const MULTI_TX_CONFIRM: u16 = 0x041E;

    pub const EXCEPTION_IND: u16 = 0x0800;
    pub const STARTUP_IND: u16 = 0x0801;
    pub const RX_IND: u16 = 0x0804;
    pub const EVENT_IND: u16 = 0x0805;
    pub const SCAN_COMPLETE_IND: u16 = 0x0806;
    pub const SET_PM_IND: u16 = 0x0809;
    pub const JOIN_COMPLETE_IND: u16 = 0x080F;

    /// bes2600 driver-to-MCU command space.
    pub const MCU_BASE: u16 = 0x0C00;
}

/// WSM status codes the driver acts on.
pub mod status {
    pub const SUCCESS: u32 = 0;
    pub const FAILURE: u32 = 1;
    /// What the bes2600 firmware answers to a multi-channel 5 GHz start-scan.
    pub const INVALID_PARAMETER: u32 = 2;
    pub const REQUEUE: u32 = 11;
}

/// Which sequence counter a message uses: bes2600 gives the `0x0Cxx` MCU
/// commands their own space (`WSM_TXRX_SEQ_IDX`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqSpace {
    Wsm = 0,
    Mcu = 1,
}

impl SeqSpace {
    pub const COUNT: usize = 2;
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The kind of a message, from bits 10-11 of its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Confirm,
    Indication,
    /// `0x0800`: the firmware crashed; the body is its dump.
    Exception,
    /// bes2600 `0x0Cxx` MCU command (direction decided by the label).
    Mcu,
}

/// A raw 16-bit message id with its bit fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsgId(pub u16);

impl MsgId {
    pub fn new(base: u16, link_id: u8, seq: u8) -> MsgId {
        MsgId(
            (base & ID_BASE_MASK)
                | (u16::from(link_id & LINK_ID_MAX) << ID_LINK_SHIFT)
                | (u16::from(seq % SEQ_MODULO) << ID_SEQ_SHIFT),
        )
    }
    /// Type bits and message number, without link id and sequence.
    pub fn base(self) -> u16 {
        self.0 & ID_BASE_MASK
    }
    pub fn link_id(self) -> u8 {
        ((self.0 & ID_LINK_MASK) >> ID_LINK_SHIFT) as u8
    }
    pub fn seq(self) -> u8 {
        (self.0 >> ID_SEQ_SHIFT) as u8
    }
    pub fn with_seq(self, seq: u8) -> MsgId {
        MsgId((self.0 & !(0x7 << ID_SEQ_SHIFT)) | (u16::from(seq % SEQ_MODULO) << ID_SEQ_SHIFT))
    }
    pub fn with_link_id(self, link_id: u8) -> MsgId {
        MsgId((self.0 & !ID_LINK_MASK) | (u16::from(link_id & LINK_ID_MAX) << ID_LINK_SHIFT))
    }
    pub fn kind(self) -> Kind {
        match self.0 & ID_TYPE_MASK {
            0x0000 => Kind::Request,
            0x0400 => Kind::Confirm,
            0x0800 if self.base() == id::EXCEPTION_IND => Kind::Exception,
            0x0800 => Kind::Indication,
            _ => Kind::Mcu,
        }
    }
    /// bes2600 `WSM_TXRX_SEQ_IDX` (`wsm.h` 687-688): the MCU space is
    /// `(id & 0xF00) == 0xC00`.
    pub fn seq_space(self) -> SeqSpace {
        if self.0 & 0x0F00 == 0x0C00 {
            SeqSpace::Mcu
        } else {
            SeqSpace::Wsm
        }
    }
}

/// Why a message from the chip could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsmError {
    /// The buffer holds fewer bytes than a header.
    ShortHeader { have: usize },
    /// The header's length is below the header size.
    LenBelowHeader { len: u16 },
    /// The header's length exceeds [`MSG_LEN_MAX`].
    LenAboveMax { len: u16 },
    /// The header's length exceeds the bytes available.
    LenBeyondBuffer { len: u16, have: usize },
    /// A field at `offset` (from the message start) needs bytes the message lacks.
    Truncated { id: u16, offset: usize },
    /// A count field is larger than the message can hold or than our limit.
    BadCount { id: u16, count: u32 },
    /// The output buffer is too small for the encoded message.
    NoRoom { need: usize, have: usize },
    /// A request field is outside what the firmware accepts.
    InvalidArgument,
}

/// Reads little-endian fields from an untrusted byte slice.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    id: u16,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], start: usize, id: u16) -> Self {
        Reader {
            buf,
            pos: start,
            id,
        }
    }
    fn err(&self) -> WsmError {
        WsmError::Truncated {
            id: self.id,
            offset: self.pos,
        }
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], WsmError> {
        let end = self.pos.checked_add(n).ok_or(self.err())?;
        let s = self.buf.get(self.pos..end).ok_or(self.err())?;
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, WsmError> {
        Ok(self.bytes(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, WsmError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, WsmError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }
}

/// Writes little-endian fields into a caller-provided buffer.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }
    pub(crate) fn put(&mut self, b: &[u8]) -> Result<(), WsmError> {
        let end = self.pos + b.len();
        if end > self.buf.len() {
            return Err(WsmError::NoRoom {
                need: end,
                have: self.buf.len(),
            });
        }
        self.buf[self.pos..end].copy_from_slice(b);
        self.pos = end;
        Ok(())
    }
    pub(crate) fn u8(&mut self, v: u8) -> Result<(), WsmError> {
        self.put(&[v])
    }
    pub(crate) fn u16(&mut self, v: u16) -> Result<(), WsmError> {
        self.put(&v.to_le_bytes())
    }
    pub(crate) fn u32(&mut self, v: u32) -> Result<(), WsmError> {
        self.put(&v.to_le_bytes())
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
}

/// Reads and validates the header of the message at the start of `buf`.
/// Returns `(len, id)`; `len` is checked against the header size,
/// [`MSG_LEN_MAX`] and the bytes available.
pub fn parse_header(buf: &[u8]) -> Result<(usize, MsgId), WsmError> {
    if buf.len() < WSM_HDR_LEN {
        return Err(WsmError::ShortHeader { have: buf.len() });
    }
    let len = u16::from_le_bytes([buf[0], buf[1]]);
    let id = MsgId(u16::from_le_bytes([buf[2], buf[3]]));
    if usize::from(len) < WSM_HDR_LEN {
        return Err(WsmError::LenBelowHeader { len });
    }
    if usize::from(len) > MSG_LEN_MAX {
        return Err(WsmError::LenAboveMax { len });
    }
    if usize::from(len) > buf.len() {
        return Err(WsmError::LenBeyondBuffer {
            len,
            have: buf.len(),
        });
    }
    Ok((usize::from(len), id))
}

/// Overwrites the sequence and link-id bits of an encoded message in place.
pub fn stamp_id(msg: &mut [u8], seq: u8, link_id: u8) {
    if msg.len() >= WSM_HDR_LEN {
        let id = MsgId(u16::from_le_bytes([msg[2], msg[3]]))
            .with_seq(seq)
            .with_link_id(link_id);
        msg[2..4].copy_from_slice(&id.0.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------
// Requests (host -> chip)

/// Radio band as WSM encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Band {
    Ghz2 = 0,
    Ghz5 = 1,
}

/// One channel of a start-scan request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ScanChannel {
    pub number: u16,
    pub min_chan_time: u32,
    pub max_chan_time: u32,
}

/// One SSID of a start-scan request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ssid {
    pub len: u8,
    pub bytes: [u8; 32],
}

/// Start-scan (`0x0007`) arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanReq<'a> {
    pub band: Band,
    pub scan_type: u8,
    pub flags: u8,
    pub max_tx_rate: u8,
    pub auto_scan_interval: u32,
    pub num_probes: u8,
    pub probe_delay: u8,
    pub channels: &'a [ScanChannel],
    pub ssids: &'a [Ssid],
}

impl<'a> ScanReq<'a> {
    /// The foreground active scan a `hw_scan` leg sends: two probes per
    /// channel, broadcast SSID (cw1200 `scan.c`, `cw1200_scan_work`:
    /// `numOfProbeRequests = 2`, no SSID list for a wildcard scan).
    pub fn foreground(band: Band, channels: &'a [ScanChannel]) -> Self {
        ScanReq {
            band,
            scan_type: 0,
            flags: 0,
            max_tx_rate: 0,
            auto_scan_interval: 0,
            num_probes: 2,
            probe_delay: 0,
            channels,
            ssids: &[],
        }
    }
}

impl ScanChannel {
    /// A channel with the dwell times the driver uses (10-40 ms).
    pub const fn dwell(number: u16) -> Self {
        ScanChannel {
            number,
            min_chan_time: 10,
            max_chan_time: 40,
        }
    }
}

/// Join (`0x000B`) arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinReq {
    pub mode: u8,
    pub band: Band,
    pub channel: u16,
    pub bssid: [u8; 6],
    pub atim_window: u16,
    pub preamble: u8,
    pub probe_for_join: u8,
    pub dtim_period: u8,
    pub flags: u8,
    pub ssid: Ssid,
    pub beacon_interval: u32,
    pub basic_rate_set: u32,
}

/// Add-key (`0x000C`): key type, entry index and the 40-byte union body whose
/// layout depends on the type (see cw1200 `struct wsm_add_key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddKeyReq {
    pub key_type: u8,
    pub entry_index: u8,
    pub body: [u8; KEY_BODY_LEN],
}

impl AddKeyReq {
    /// `WSM_KEY_TYPE_WEP_DEFAULT` (cw1200 `wsm.h` 327, bes2600 `wsm.h` 334).
    pub const TYPE_WEP_DEFAULT: u8 = 0;
    /// `WSM_KEY_TYPE_WEP_PAIRWISE` (cw1200 `wsm.h` 328).
    pub const TYPE_WEP_PAIRWISE: u8 = 1;
    /// `WSM_KEY_TYPE_TKIP_GROUP` (cw1200 `wsm.h` 329).
    pub const TYPE_TKIP_GROUP: u8 = 2;
    /// `WSM_KEY_TYPE_TKIP_PAIRWISE` (cw1200 `wsm.h` 330).
    pub const TYPE_TKIP_PAIRWISE: u8 = 3;
    /// `WSM_KEY_TYPE_AES_GROUP` (cw1200 `wsm.h` 331): CCMP group key.
    pub const TYPE_AES_GROUP: u8 = 4;
    /// `WSM_KEY_TYPE_AES_PAIRWISE` (cw1200 `wsm.h` 332): CCMP pairwise key.
    pub const TYPE_AES_PAIRWISE: u8 = 5;

    /// `aes_pairwise`: peer address, reserved le16, 16-byte key.
    pub fn aes_pairwise(entry_index: u8, peer: [u8; 6], key: [u8; 16]) -> Self {
        let mut body = [0u8; KEY_BODY_LEN];
        body[..6].copy_from_slice(&peer);
        body[8..24].copy_from_slice(&key);
        AddKeyReq {
            key_type: Self::TYPE_AES_PAIRWISE,
            entry_index,
            body,
        }
    }
    /// `aes_group`: 16-byte key, key id, 3 reserved, 8-byte RX sequence.
    pub fn aes_group(entry_index: u8, key_id: u8, key: [u8; 16], rx_seq: [u8; 8]) -> Self {
        let mut body = [0u8; KEY_BODY_LEN];
        body[..16].copy_from_slice(&key);
        body[16] = key_id;
        body[20..28].copy_from_slice(&rx_seq);
        AddKeyReq {
            key_type: Self::TYPE_AES_GROUP,
            entry_index,
            body,
        }
    }
    /// `wep_group` (a default/static WEP key): key id, key length,
    /// reserved le16, key bytes (5 or 13, at most 16).
    pub fn wep_default(entry_index: u8, key_id: u8, key: &[u8]) -> Result<Self, WsmError> {
        if key.is_empty() || key.len() > 16 || key_id > 3 {
            return Err(WsmError::InvalidArgument);
        }
        let mut body = [0u8; KEY_BODY_LEN];
        body[0] = key_id;
        body[1] = key.len() as u8;
        body[4..4 + key.len()].copy_from_slice(key);
        Ok(AddKeyReq {
            key_type: Self::TYPE_WEP_DEFAULT,
            entry_index,
            body,
        })
    }
}

/// Per-access-category EDCA parameters, in Linux queue order (VO, VI, BE, BK).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EdcaParams {
    pub cwmin: u16,
    pub cwmax: u16,
    pub aifs: u8,
    pub txop_limit: u16,
    pub max_rx_lifetime: u32,
}

/// TX request (`0x0004`) fixed fields; the 802.11 frame follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxReq<'a> {
    pub packet_id: u32,
    pub max_tx_rate: u8,
    pub queue_id: u8,
    pub more: bool,
    pub flags: u8,
    pub expire_time: u32,
    pub ht_tx_parameters: u32,
    pub frame: &'a [u8],
}

/// The WSM queue id of a mac80211 queue (VO, VI, BE, BK -> 3, 2, 0, 1;
/// `wsm_queue_id_to_wsm`, bes2600 `wsm.h` 2156-2162, cw1200 `wsm.h`
/// 1847-1853).
pub fn wsm_queue_id(linux_queue: u8) -> u8 {
    match linux_queue {
        0 => 3,
        1 => 2,
        2 => 0,
        _ => 1,
    }
}

/// The TX request's `queueId` byte in bes2600: the raw link id in bits 2-5
/// over the WSM queue id (`txrx.c` 782-783); the id's bits 6-9 carry the
/// interface instead.
pub fn tx_queue_byte(linux_queue: u8, link_id: u8) -> u8 {
    ((link_id & 0x0F) << 2) | wsm_queue_id(linux_queue)
}

/// A request the host sends. Sequence number and link id are stamped by the
/// bh at submit time ([`stamp_id`]); encoding leaves them 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Configuration {
        max_tx_msdu_lifetime: u32,
        max_rx_lifetime: u32,
        rts_threshold: u32,
        station_id: [u8; 6],
        dpd: &'a [u8],
    },
    Reset {
        reset_statistics: bool,
    },
    ReadMib {
        mib_id: u16,
    },
    WriteMib {
        mib_id: u16,
        data: &'a [u8],
    },
    StartScan(ScanReq<'a>),
    StopScan,
    Join(JoinReq),
    AddKey(AddKeyReq),
    RemoveKey {
        entry_index: u8,
    },
    SetPm {
        mode: u8,
        fast_psm_idle_period: u8,
        ap_psm_change_period: u8,
        min_auto_pspoll_period: u8,
    },
    SetBssParams {
        reset_beacon_loss: bool,
        beacon_lost_count: u8,
        aid: u16,
        operational_rate_set: u32,
    },
    TxQueueParams {
        /// WMM ACI of the queue.
        aci: u8,
        ack_policy: u8,
        max_tx_lifetime: u32,
        allowed_medium_time: u16,
    },
    Edca {
        /// Indexed by Linux queue id (VO, VI, BE, BK).
        params: [EdcaParams; 4],
    },
    Tx(TxReq<'a>),
    /// bes2600 driver-to-MCU command `0x0C00 | cmd` (cmd in bits 0-5).
    Mcu {
        cmd: u8,
        cmd_type: u32,
        payload: &'a [u8],
    },
}

impl Request<'_> {
    pub fn base_id(&self) -> u16 {
        match self {
            Request::Configuration { .. } => id::CONFIGURATION_REQ,
            Request::Reset { .. } => id::RESET_REQ,
            Request::ReadMib { .. } => id::READ_MIB_REQ,
            Request::WriteMib { .. } => id::WRITE_MIB_REQ,
            Request::StartScan(_) => id::START_SCAN_REQ,
            Request::StopScan => id::STOP_SCAN_REQ,
            Request::Join(_) => id::JOIN_REQ,
            Request::AddKey(_) => id::ADD_KEY_REQ,
            Request::RemoveKey { .. } => id::REMOVE_KEY_REQ,
            Request::SetPm { .. } => id::SET_PM_REQ,
            Request::SetBssParams { .. } => id::SET_BSS_PARAMS_REQ,
            Request::TxQueueParams { .. } => id::TX_QUEUE_PARAMS_REQ,
            Request::Edca { .. } => id::EDCA_PARAMS_REQ,
            Request::Tx(_) => id::TX_REQ,
            Request::Mcu { cmd, .. } => id::MCU_BASE | u16::from(cmd & 0x3F),
        }
    }

    /// Encodes header + body into `out`; returns the message length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, WsmError> {
        let mut w = Writer::new(out);
        w.u16(0)?; // length, patched below
        w.u16(self.base_id())?;
        match *self {
            Request::Configuration {
                max_tx_msdu_lifetime,
                max_rx_lifetime,
                rts_threshold,
                station_id,
                dpd,
            } => {
                let dpd_len =
                    u16::try_from(dpd.len() + 12).map_err(|_| WsmError::InvalidArgument)?;
                w.u32(max_tx_msdu_lifetime)?;
                w.u32(max_rx_lifetime)?;
                w.u32(rts_threshold)?;
                w.u16(dpd_len)?;
                w.u16(1)?; // DPD version
                w.put(&station_id)?;
                w.u16(5)?; // DPD flags
                w.put(dpd)?;
            }
            Request::Reset { reset_statistics } => w.u32(if reset_statistics { 0 } else { 1 })?,
            Request::ReadMib { mib_id } => {
                w.u16(mib_id)?;
                w.u16(0)?;
            }
            Request::WriteMib { mib_id, data } => {
                w.u16(mib_id)?;
                w.u16(u16::try_from(data.len()).map_err(|_| WsmError::InvalidArgument)?)?;
                w.put(data)?;
            }
            Request::StartScan(ref s) => {
                if s.channels.len() > SCAN_CHANNELS_MAX || s.ssids.len() > SCAN_SSIDS_MAX {
                    return Err(WsmError::InvalidArgument);
                }
                w.u8(s.band as u8)?;
                w.u8(s.scan_type)?;
                w.u8(s.flags)?;
                w.u8(s.max_tx_rate)?;
                w.u32(s.auto_scan_interval)?;
                w.u8(s.num_probes)?;
                w.u8(s.channels.len() as u8)?;
                w.u8(s.ssids.len() as u8)?;
                w.u8(s.probe_delay)?;
                for ch in s.channels {
                    w.u16(ch.number)?;
                    w.u16(0)?;
                    w.u32(ch.min_chan_time)?;
                    w.u32(ch.max_chan_time)?;
                    w.u32(0)?;
                }
                for ssid in s.ssids {
                    w.u32(u32::from(ssid.len))?;
                    w.put(&ssid.bytes)?;
                }
            }
            Request::StopScan => {}
            Request::Join(ref j) => {
                w.u8(j.mode)?;
                w.u8(j.band as u8)?;
                w.u16(j.channel)?;
                w.put(&j.bssid)?;
                w.u16(j.atim_window)?;
                w.u8(j.preamble)?;
                w.u8(j.probe_for_join)?;
                w.u8(j.dtim_period)?;
                w.u8(j.flags)?;
                w.u32(u32::from(j.ssid.len))?;
                w.put(&j.ssid.bytes)?;
                w.u32(j.beacon_interval)?;
                w.u32(j.basic_rate_set)?;
            }
            Request::AddKey(ref k) => {
                w.u8(k.key_type)?;
                w.u8(k.entry_index)?;
                w.u16(0)?;
                w.put(&k.body)?;
            }
            Request::RemoveKey { entry_index } => {
                w.u8(entry_index)?;
                w.u8(0)?;
                w.u16(0)?;
            }
            Request::SetPm {
                mode,
                fast_psm_idle_period,
                ap_psm_change_period,
                min_auto_pspoll_period,
            } => {
                w.put(&[
                    mode,
                    fast_psm_idle_period,
                    ap_psm_change_period,
                    min_auto_pspoll_period,
                ])?;
            }
            Request::SetBssParams {
                reset_beacon_loss,
                beacon_lost_count,
                aid,
                operational_rate_set,
            } => {
                w.u8(u8::from(reset_beacon_loss))?;
                w.u8(beacon_lost_count)?;
                w.u16(aid)?;
                w.u32(operational_rate_set)?;
            }
            Request::TxQueueParams {
                aci,
                ack_policy,
                max_tx_lifetime,
                allowed_medium_time,
            } => {
                w.put(&[aci, 0, ack_policy, 0])?;
                w.u32(max_tx_lifetime)?;
                w.u16(allowed_medium_time)?;
                w.u16(0)?;
            }
            Request::Edca { ref params } => {
                // The firmware wants the queues in reverse Linux order.
                for p in params.iter().rev() {
                    w.u16(p.cwmin)?;
                }
                for p in params.iter().rev() {
                    w.u16(p.cwmax)?;
                }
                for p in params.iter().rev() {
                    w.u8(p.aifs)?;
                }
                for p in params.iter().rev() {
                    w.u16(p.txop_limit)?;
                }
                for p in params.iter().rev() {
                    w.u32(p.max_rx_lifetime)?;
                }
            }
            Request::Tx(ref t) => {
                w.u32(t.packet_id)?;
                w.u8(t.max_tx_rate)?;
                w.u8(t.queue_id)?;
                w.u8(u8::from(t.more))?;
                w.u8(t.flags)?;
                w.u32(0)?; // reserved
                w.u32(t.expire_time)?;
                w.u32(t.ht_tx_parameters)?;
                w.put(t.frame)?;
            }
            Request::Mcu {
                cmd_type, payload, ..
            } => {
                // bes2600 `wsm_vendor_rf_cmd` (`wsm.c` 345-353): the body is
                // `cmd_type` and the command's own arguments, no reserve or
                // label (those exist only in the chip's `wsm_mcu_hdr`).
                w.u32(cmd_type)?;
                w.put(payload)?;
            }
        }
        let len = w.pos();
        if len > MSG_LEN_MAX {
            return Err(WsmError::InvalidArgument);
        }
        out[..2].copy_from_slice(&(len as u16).to_le_bytes());
        Ok(len)
    }
}

// ---------------------------------------------------------------------------
// Messages from the chip

/// Startup indication (`0x0801`): what the firmware grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Startup<'a> {
    /// Credits: how many requests the host may have outstanding.
    pub input_buffers: u16,
    pub input_buffer_size: u16,
    pub hw_id: u16,
    pub hw_subid: u16,
    pub status: u16,
    pub fw_cap: u16,
    pub fw_type: u16,
    pub fw_api: u16,
    pub fw_build: u16,
    pub fw_ver: u16,
    pub fw_label: &'a [u8],
}

/// One TX confirm (in `0x0404`, or repeated in a multi-TX confirm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TxConfirm {
    pub packet_id: u32,
    pub status: u32,
    pub tx_rate: u8,
    pub ack_failures: u8,
    pub flags: u16,
    pub media_delay: u32,
    pub tx_queue_delay: u32,
}

/// Bytes of one encoded TX confirm.
pub const TX_CONFIRM_LEN: usize = 20;
/// Confirms in one multi-TX confirm we accept (bounded by [`MSG_LEN_MAX`]).
pub const MULTI_TX_CONFIRM_MAX: usize = (MSG_LEN_MAX - WSM_HDR_LEN - 4) / TX_CONFIRM_LEN;

impl TxConfirm {
    fn read(r: &mut Reader<'_>) -> Result<Self, WsmError> {
        Ok(TxConfirm {
            packet_id: r.u32()?,
            status: r.u32()?,
            tx_rate: r.u8()?,
            ack_failures: r.u8()?,
            flags: r.u16()?,
            media_delay: r.u32()?,
            tx_queue_delay: r.u32()?,
        })
    }
}

/// The confirms of a multi-TX confirm, decoded lazily from validated bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MultiTxConfirm<'a> {
    count: usize,
    body: &'a [u8],
}

impl<'a> MultiTxConfirm<'a> {
    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    pub fn iter(&self) -> impl Iterator<Item = TxConfirm> + 'a {
        let body = self.body;
        (0..self.count).filter_map(move |i| {
            let mut r = Reader::new(body, i * TX_CONFIRM_LEN, id::MULTI_TX_CONFIRM);
            TxConfirm::read(&mut r).ok()
        })
    }
}

/// RX indication (`0x0804`) metadata; the 802.11 frame follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RxMeta {
    pub link_id: u8,
    pub status: u32,
    pub channel: u16,
    pub rx_rate: u8,
    pub rcpi_rssi: u8,
    pub flags: u32,
}

/// A decoded message from the chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    Startup(Startup<'a>),
    /// Confirm of request `req` (base id without the confirm bit).
    Confirm {
        req: u16,
        status: u32,
        /// Bytes after the status (e.g. the MIB of a read-MIB confirm).
        body: &'a [u8],
    },
    TxConfirm(TxConfirm),
    MultiTxConfirm(MultiTxConfirm<'a>),
    Rx {
        meta: RxMeta,
        frame: &'a [u8],
    },
    Event {
        event_id: u32,
        data: u32,
    },
    ScanComplete {
        status: u32,
        psm: u8,
        num_channels: u8,
    },
    SetPmComplete {
        psm: u8,
    },
    JoinComplete {
        status: u32,
    },
    Exception {
        dump: &'a [u8],
    },
    /// bes2600 MCU message: a confirm (label 0x0f) releases a credit.
    Mcu {
        cmd: u8,
        label: u32,
        cmd_type: u32,
        body: &'a [u8],
    },
    /// A well-formed indication we do not act on.
    OtherIndication {
        base: u16,
    },
}

/// Which ledger a message from the chip frees one input buffer in, before
/// its body is parsed: bes2600 `WSM_CONFIRM_CONDITION` (`wsm.h` 692-693,
/// applied in `bes2600_bh_rx_helper`, `bh.c` 1076-1080; cw1200 releases for
/// `id & 0x0400`, `bh.c` 318-324). On the 12-bit id: `0x04xx` with bits 8-9
/// clear, or an MCU message (`(id & 0xF00) == 0xC00`) whose `handle_label`
/// (le32 at byte 8) is the confirm label `0x0f`. A multi-TX confirm frees
/// `count - 1` more once its body decodes (`wsm.c` 652).
pub fn releases_buffer(msg: &[u8]) -> Option<SeqSpace> {
    let raw = u16::from_le_bytes([*msg.get(2)?, *msg.get(3)?]) & 0x0FFF;
    match raw & 0x0F00 {
        0x0400 => Some(SeqSpace::Wsm),
        0x0C00 => {
            let l = msg.get(8..12)?;
            (u32::from_le_bytes([l[0], l[1], l[2], l[3]]) == MCU_LABEL_CONFIRM)
                .then_some(SeqSpace::Mcu)
        }
        _ => None,
    }
}

/// Decodes one message (header included). `msg` may be longer than the
/// message; only the header's length is used.
pub fn decode(msg: &[u8]) -> Result<(MsgId, Incoming<'_>), WsmError> {
    let (len, mid) = parse_header(msg)?;
    let msg = &msg[..len];
    let mut r = Reader::new(msg, WSM_HDR_LEN, mid.0);
    let base = mid.base();
    let inc = match mid.kind() {
        Kind::Exception => Incoming::Exception { dump: r.rest() },
        Kind::Confirm if base == id::TX_CONFIRM => Incoming::TxConfirm(TxConfirm::read(&mut r)?),
        Kind::Confirm if base == id::MULTI_TX_CONFIRM => {
            let count = r.u32()?;
            let body = r.rest();
            if count as usize > MULTI_TX_CONFIRM_MAX
                || (count as usize) * TX_CONFIRM_LEN > body.len()
            {
                return Err(WsmError::BadCount { id: mid.0, count });
            }
            Incoming::MultiTxConfirm(MultiTxConfirm {
                count: count as usize,
                body,
            })
        }
        Kind::Confirm => Incoming::Confirm {
            req: base & !id::CONFIRM_BIT,
            status: r.u32()?,
            body: r.rest(),
        },
        Kind::Indication => match base {
            id::STARTUP_IND => {
                let s = Startup {
                    input_buffers: r.u16()?,
                    input_buffer_size: r.u16()?,
                    hw_id: r.u16()?,
                    hw_subid: r.u16()?,
                    status: r.u16()?,
                    fw_cap: r.u16()?,
                    fw_type: r.u16()?,
                    fw_api: r.u16()?,
                    fw_build: r.u16()?,
                    fw_ver: r.u16()?,
                    fw_label: r.bytes(FW_LABEL_LEN)?,
                };
                Incoming::Startup(s)
            }
            id::RX_IND => {
                let meta = RxMeta {
                    link_id: mid.link_id(),
                    status: r.u32()?,
                    channel: r.u16()?,
                    rx_rate: r.u8()?,
                    rcpi_rssi: r.u8()?,
                    flags: r.u32()?,
                };
                r.bytes(RX_IND_FIXED_LEN - 12)?;
                Incoming::Rx {
                    meta,
                    frame: r.rest(),
                }
            }
            id::EVENT_IND => Incoming::Event {
                event_id: r.u32()?,
                data: r.u32()?,
            },
            id::SCAN_COMPLETE_IND => Incoming::ScanComplete {
                status: r.u32()?,
                psm: r.u8()?,
                num_channels: r.u8()?,
            },
            id::SET_PM_IND => Incoming::SetPmComplete { psm: r.u8()? },
            id::JOIN_COMPLETE_IND => Incoming::JoinComplete { status: r.u32()? },
            _ => Incoming::OtherIndication { base },
        },
        Kind::Mcu => {
            r.u32()?; // reserve
            let label = r.u32()?;
            let cmd_type = r.u32()?;
            Incoming::Mcu {
                cmd: (base & 0x3F) as u8,
                label,
                cmd_type,
                body: r.rest(),
            }
        }
        // A request id coming from the chip is a protocol violation, but a
        // typed one: the caller counts it.
        Kind::Request => {
            return Err(WsmError::BadCount {
                id: mid.0,
                count: 0,
            })
        }
    };
    Ok((mid, inc))
}

/// Typed bodies of the confirms that carry more than a status.
pub mod confirm {
    use super::{Reader, WsmError};

    /// Read-MIB confirm body (after the status): `{le16 mib_id, le16 len, data}`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct ReadMib<'a> {
        pub mib_id: u16,
        pub data: &'a [u8],
    }

    impl<'a> ReadMib<'a> {
        pub fn parse(body: &'a [u8]) -> Result<Self, WsmError> {
            let mut r = Reader::new(body, 0, super::id::READ_MIB_REQ | super::id::CONFIRM_BIT);
            let mib_id = r.u16()?;
            let len = r.u16()?;
            Ok(ReadMib {
                mib_id,
                data: r.bytes(usize::from(len))?,
            })
        }
    }

    /// Join confirm body: min/max TX power in 0.1 dBm.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Join {
        pub min_power_level: u32,
        pub max_power_level: u32,
    }

    impl Join {
        pub fn parse(body: &[u8]) -> Result<Self, WsmError> {
            let mut r = Reader::new(body, 0, super::id::JOIN_REQ | super::id::CONFIRM_BIT);
            Ok(Join {
                min_power_level: r.u32()?,
                max_power_level: r.u32()?,
            })
        }
    }

    /// Configuration confirm body: station address, bands, rates, power
    /// ranges for the two bands.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Configuration {
        pub station_id: [u8; 6],
        pub bands_supported: u8,
        pub supported_rate_mask: u32,
        /// (min, max, stepping) per band.
        pub tx_power_range: [(u32, u32, u32); 2],
    }

    impl Configuration {
        pub fn parse(body: &[u8]) -> Result<Self, WsmError> {
            let mut r = Reader::new(
                body,
                0,
                super::id::CONFIGURATION_REQ | super::id::CONFIRM_BIT,
            );
            let mut station_id = [0u8; 6];
            station_id.copy_from_slice(r.bytes(6)?);
            let bands_supported = r.u8()?;
            r.u8()?;
            let supported_rate_mask = r.u32()?;
            let mut tx_power_range = [(0, 0, 0); 2];
            for p in &mut tx_power_range {
                *p = (r.u32()?, r.u32()?, r.u32()?);
            }
            Ok(Configuration {
                station_id,
                bands_supported,
                supported_rate_mask,
                tx_power_range,
            })
        }
    }
}
