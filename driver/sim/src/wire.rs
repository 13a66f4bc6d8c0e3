//! The chip's side of the wire, written from the C sources and sharing no
//! code with `bes2600-core` (a tidy step fails if this model imports the
//! core): what the chip parses of the host's CMD52/CMD53 traffic and how it
//! builds what it sends. A layout the core gets wrong is then a failing
//! test, not a mirrored one. Citations are to cringeops/bes2600 at 123c432
//! (`bes2600/`) and to mainline cw1200 in Linux 6.12
//! (`drivers/net/wireless/st/cw1200/`); `driver/core/tests/data/*.vec` hold
//! the same facts as byte vectors, and both sides are tested against them.

/// Little-endian field access on untrusted bytes: `None` when short.
pub fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}
pub fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(at)?,
        *b.get(at + 1)?,
        *b.get(at + 2)?,
        *b.get(at + 3)?,
    ]))
}

/// Largest WSM message (`bes2600_sdio.c` 738: `single > 1632` is an error).
pub const MSG_MAX: usize = 1632;
/// SDIO block (`sdio_set_block_size(func, 512)`).
pub const BLOCK: usize = 512;
/// Messages per read / write (`hwio.h` 294-295).
pub const BATCH_MAX: usize = 16;

/// CMD53 argument, as the card sees it on the command line (SDIO spec
/// 5.3: R/W bit 31, function 28-30, block mode 27, OP code 26, address
/// 9-25, count 0-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmd53Arg {
    pub write: bool,
    pub func: u8,
    pub block: bool,
    pub inc: bool,
    pub addr: u32,
    pub count: u16,
}

impl Cmd53Arg {
    pub fn parse(arg: u32) -> Cmd53Arg {
        Cmd53Arg {
            write: arg >> 31 != 0,
            func: ((arg >> 28) & 7) as u8,
            block: (arg >> 27) & 1 != 0,
            inc: (arg >> 26) & 1 != 0,
            addr: (arg >> 9) & 0x1_FFFF,
            count: (arg & 0x1FF) as u16,
        }
    }
    /// Bytes this command moves (byte mode: count 0 means 512).
    pub fn bytes(&self) -> usize {
        match (self.block, self.count) {
            (true, n) => usize::from(n) * BLOCK,
            (false, 0) => 512,
            (false, n) => usize::from(n),
        }
    }
}

/// bes2600 address fields of a data CMD53 once the firmware runs
/// (`bes_sdio_memcpy_io_helper` 205-217, `bes_sdio_memcpy_to_io_helper`
/// 1019-1024): bit 16 is the data toggle, the rest the coded length.
pub fn addr_toggle(addr: u32) -> bool {
    addr & (1 << 16) != 0
}
pub fn addr_len(addr: u32) -> u32 {
    addr & 0xFFFF
}

/// The slot layout of a TX aggregate from its coded length (`sdio_tx_work`
/// 1104-1150): low two bits = blocks per message - 1; the rest is the sum
/// of the slots. Returns (slot bytes, messages).
pub fn tx_slots(coded: u32) -> Option<(usize, usize)> {
    let code = coded & 3;
    let total = (coded & !3) as usize;
    let slot = if code == 3 {
        MSG_MAX
    } else {
        (code as usize + 1) * BLOCK
    };
    if total == 0 || total % slot != 0 || total / slot > BATCH_MAX {
        return None;
    }
    Some((slot, total / slot))
}

/// WSM ids the chip uses (cw1200 `wsm.h`; bes2600 `wsm.h` adds `0x0Cxx`).
pub mod ids {
    pub const TX: u16 = 0x0004;
    pub const READ_MIB: u16 = 0x0005;
    pub const START_SCAN: u16 = 0x0007;
    pub const JOIN: u16 = 0x000B;
    pub const ADD_KEY: u16 = 0x000C;
    pub const SET_PM: u16 = 0x0010;
    /// `WSM_EDCA_PARAMS_REQ_ID` (cw1200 `wsm.h` 1107).
    pub const EDCA_PARAMS: u16 = 0x0013;
    pub const TX_CONFIRM: u16 = 0x0404;
    pub const MULTI_TX_CONFIRM: u16 = 0x041E;
    pub const EXCEPTION: u16 = 0x0800;
    pub const STARTUP: u16 = 0x0801;
    pub const RX: u16 = 0x0804;
    pub const EVENT: u16 = 0x0805;
    pub const SCAN_COMPLETE: u16 = 0x0806;
    pub const SET_PM_COMPLETE: u16 = 0x0809;
    pub const MCU: u16 = 0x0C00;
    /// `WSM_TO_MCU_CMD_CONFIRM_LABEL` (bes2600 `wsm.h` 689).
    pub const MCU_CONFIRM_LABEL: u32 = 0x0f;
}

/// A request as the chip reads it from one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Req<'a> {
    /// The raw id (with link id and sequence).
    pub raw_id: u16,
    pub body: &'a [u8],
}

impl<'a> Req<'a> {
    /// Reads `{le16 len, le16 id}` and the body from a slot.
    pub fn parse(slot: &'a [u8]) -> Option<Req<'a>> {
        let len = usize::from(le16(slot, 0)?);
        let raw_id = le16(slot, 2)?;
        if !(4..=MSG_MAX).contains(&len) || len > slot.len() {
            return None;
        }
        Some(Req {
            raw_id,
            body: &slot[4..len],
        })
    }
    /// Message number and type bits (bes2600 `WSM_MSG_ID_MASK` 0x0C3F).
    pub fn base(&self) -> u16 {
        self.raw_id & 0x0C3F
    }
    pub fn seq(&self) -> u8 {
        (self.raw_id >> 13) as u8
    }
    pub fn link(&self) -> u8 {
        ((self.raw_id >> 6) & 0xF) as u8
    }
    /// `(id & 0xF00) == 0xC00` (bes2600 `WSM_TXRX_SEQ_IDX`).
    pub fn mcu(&self) -> bool {
        self.raw_id & 0x0F00 == 0x0C00
    }
}

/// Fields of a TX request (`struct wsm_tx`, cw1200 `wsm.h` 801-840):
/// packet id le32 @0, max_tx_rate @4, queue_id @5, more @6, flags @7
/// (rate policy index in bits 4-7), reserved le32 @8, expire_time le32 @12,
/// ht_tx_parameters le32 @16, frame @20.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxReqView<'a> {
    pub packet_id: u32,
    pub max_tx_rate: u8,
    pub queue_id: u8,
    pub more: u8,
    pub rate_policy: u8,
    pub expire_time: u32,
    pub ht_tx_parameters: u32,
    pub frame: &'a [u8],
}

pub fn tx_req(body: &[u8]) -> Option<TxReqView<'_>> {
    Some(TxReqView {
        packet_id: le32(body, 0)?,
        max_tx_rate: *body.get(4)?,
        queue_id: *body.get(5)?,
        more: *body.get(6)?,
        rate_policy: *body.get(7)? >> 4,
        expire_time: le32(body, 12)?,
        ht_tx_parameters: le32(body, 16)?,
        frame: body.get(20..)?,
    })
}

/// Start-scan (`struct wsm_scan`, cw1200 `wsm.c` `wsm_scan`): band @0,
/// number of channels @9, then 12-byte... channels of 16 bytes each after
/// the 12-byte fixed part (channel number le16 first).
pub fn scan_req(body: &[u8]) -> Option<(u8, u8, u16)> {
    let band = *body.first()?;
    let n_ch = *body.get(9)?;
    let first = if n_ch > 0 { le16(body, 12)? } else { 0 };
    if body.len() < 12 + usize::from(n_ch) * 16 {
        return None;
    }
    Some((band, n_ch, first))
}

/// Join (`wsm_join`): BSSID at body offset 4.
pub fn join_bssid(body: &[u8]) -> Option<[u8; 6]> {
    let b = body.get(4..10)?;
    let mut out = [0u8; 6];
    out.copy_from_slice(b);
    Some(out)
}

/// Add-key (`struct wsm_add_key`, cw1200 `wsm.h` 1004-1062): type @0,
/// index @1, reserved le16, 40-byte union.
/// EDCA parameters as the firmware reads them (cw1200 `wsm.c` 564-600,
/// `wsm_set_edca_params`): four `cwmin`, four `cwmax`, four `aifs`, four
/// `txop_limit`, four `max_rx_lifetime`, each in queue order BK, BE, VI, VO.
/// Returned per queue in Linux order (VO, VI, BE, BK): `(cwmin, cwmax, aifs, txop)`.
pub fn edca(body: &[u8]) -> Option<[(u16, u16, u8, u16); 4]> {
    if body.len() < 44 {
        return None;
    }
    let mut out = [(0, 0, 0, 0); 4];
    for (q, o) in out.iter_mut().enumerate() {
        let i = 3 - q; // the body's index of Linux queue q
        *o = (
            le16(body, 2 * i)?,
            le16(body, 8 + 2 * i)?,
            body[16 + i],
            le16(body, 20 + 2 * i)?,
        );
    }
    Some(out)
}

pub fn add_key(body: &[u8]) -> Option<(u8, u8)> {
    if body.len() < 4 + 40 {
        return None;
    }
    Some((body[0], body[1]))
}

/// Writes chip messages into a caller's buffer.
pub struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Out<'a> {
    /// Starts a message with id `base | link << 6 | seq << 13`.
    pub fn begin(buf: &'a mut [u8], base: u16, link: u8, seq: u8) -> Option<Out<'a>> {
        let id = base | (u16::from(link & 0xF) << 6) | (u16::from(seq & 7) << 13);
        let mut o = Out { buf, pos: 0 };
        o.put(&[0, 0])?;
        o.put(&id.to_le_bytes())?;
        Some(o)
    }
    pub fn put(&mut self, b: &[u8]) -> Option<()> {
        let end = self.pos + b.len();
        self.buf.get_mut(self.pos..end)?.copy_from_slice(b);
        self.pos = end;
        Some(())
    }
    pub fn u8(&mut self, v: u8) -> Option<()> {
        self.put(&[v])
    }
    pub fn u16(&mut self, v: u16) -> Option<()> {
        self.put(&v.to_le_bytes())
    }
    pub fn u32(&mut self, v: u32) -> Option<()> {
        self.put(&v.to_le_bytes())
    }
    /// Patches the length and returns it.
    pub fn end(self) -> Option<usize> {
        if self.pos > MSG_MAX {
            return None;
        }
        let n = self.pos as u16;
        self.buf[..2].copy_from_slice(&n.to_le_bytes());
        Some(self.pos)
    }
}

/// Startup indication (`struct wsm_startup_ind`, cw1200 `wsm.c`
/// `wsm_startup_indication`): input buffers le16, buffer size le16,
/// hw id, hw subid, status, fw capabilities, fw type, fw api, fw build,
/// fw version (le16 each), 128-byte label (152 bytes; the `config[4]`
/// tail of the struct is read by neither driver and not sent here).
pub fn startup(buf: &mut [u8], seq: u8, input_buffers: u16, buf_size: u16) -> Option<usize> {
    let mut o = Out::begin(buf, ids::STARTUP, 0, seq)?;
    o.u16(input_buffers)?;
    o.u16(buf_size)?;
    for v in [0x2002u16, 0, 0, 0, 0, 0, 0, 0] {
        o.u16(v)?;
    }
    let mut label = [0u8; 128];
    let text = b"besser chip model";
    label[..text.len()].copy_from_slice(text);
    o.put(&label)?;
    o.end()
}

/// A generic confirm: the request id with bit 10 set, status le32, body.
pub fn confirm(buf: &mut [u8], seq: u8, req: u16, status: u32, body: &[u8]) -> Option<usize> {
    let mut o = Out::begin(buf, req | 0x0400, 0, seq)?;
    o.u32(status)?;
    o.put(body)?;
    o.end()
}

/// One TX confirm body (`struct wsm_tx_confirm`, cw1200 `wsm.h`): packet
/// id le32, status le32, tx rate u8, ack failures u8, flags le16, media
/// delay le32, tx queue delay le32 (20 bytes).
pub fn tx_confirm_body(o: &mut Out<'_>, packet_id: u32, status: u32) -> Option<()> {
    o.u32(packet_id)?;
    o.u32(status)?;
    o.u8(0)?;
    o.u8(0)?;
    o.u16(0)?;
    o.u32(0)?;
    o.u32(0)
}

pub fn tx_confirm(buf: &mut [u8], seq: u8, packet_id: u32, status: u32) -> Option<usize> {
    let mut o = Out::begin(buf, ids::TX_CONFIRM, 0, seq)?;
    tx_confirm_body(&mut o, packet_id, status)?;
    o.end()
}

/// Multi-TX confirm (`wsm_multi_tx_confirm`, cw1200 `wsm.c`): count le32,
/// then `count` TX confirm bodies.
pub fn multi_tx_confirm(buf: &mut [u8], seq: u8, confirms: &[(u32, u32)]) -> Option<usize> {
    let mut o = Out::begin(buf, ids::MULTI_TX_CONFIRM, 0, seq)?;
    o.u32(confirms.len() as u32)?;
    for &(pid, st) in confirms {
        tx_confirm_body(&mut o, pid, st)?;
    }
    o.end()
}

/// RX indication (bes2600 `wsm_receive_indication`, `wsm.c` 1487-1492):
/// status le32, channel le16, rx rate u8, rcpi/rssi u8, flags le32, then 16
/// bytes the host skips unread ("lmac wsm data ind struct update"; their
/// content is not public, the model sends zeros), then the 802.11 frame.
pub fn rx(buf: &mut [u8], seq: u8, channel: u16, rssi: u8, frame: &[u8]) -> Option<usize> {
    rx_full(buf, seq, channel, 0, rssi, 0, frame)
}

pub fn rx_full(
    buf: &mut [u8],
    seq: u8,
    channel: u16,
    rate: u8,
    rssi: u8,
    flags: u32,
    frame: &[u8],
) -> Option<usize> {
    let mut o = Out::begin(buf, ids::RX, 0, seq)?;
    o.u32(0)?;
    o.u16(channel)?;
    o.u8(rate)?;
    o.u8(rssi)?;
    o.u32(flags)?;
    o.put(&[0u8; 16])?;
    o.put(frame)?;
    o.end()
}

pub fn event(buf: &mut [u8], seq: u8, event_id: u32, data: u32) -> Option<usize> {
    let mut o = Out::begin(buf, ids::EVENT, 0, seq)?;
    o.u32(event_id)?;
    o.u32(data)?;
    o.end()
}

/// Scan complete (`wsm_scan_complete_indication`): status le32, psm u8,
/// number of channels u8.
pub fn scan_complete(buf: &mut [u8], seq: u8, status: u32, n_ch: u8) -> Option<usize> {
    let mut o = Out::begin(buf, ids::SCAN_COMPLETE, 0, seq)?;
    o.u32(status)?;
    o.u8(0)?;
    o.u8(n_ch)?;
    o.end()
}

/// Set-PM-mode complete (`wsm_set_pm_indication`): psm u8 + 3 reserved.
pub fn set_pm_complete(buf: &mut [u8], seq: u8, psm: u8) -> Option<usize> {
    let mut o = Out::begin(buf, ids::SET_PM_COMPLETE, 0, seq)?;
    o.put(&[psm, 0, 0, 0])?;
    o.end()
}

pub fn exception(buf: &mut [u8], seq: u8, dump: &[u8]) -> Option<usize> {
    let mut o = Out::begin(buf, ids::EXCEPTION, 0, seq)?;
    o.put(dump)?;
    o.end()
}

/// An MCU message (`struct wsm_mcu_hdr`, bes2600 `wsm.h` 672-677): the
/// header, le32 reserve, le32 handle label, le32 cmd_type, then a le32
/// return value (what `wsm_driver_rf_cmd_confirm` reads for cmd_type 0,
/// `wsm.c` 1814-1835; shaped like the driver's loopback, `tx_loop.c`
/// 345-377).
pub fn mcu(buf: &mut [u8], seq: u8, cmd: u8, label: u32, cmd_type: u32) -> Option<usize> {
    let mut o = Out::begin(buf, ids::MCU | u16::from(cmd & 0x3F), 0, seq)?;
    o.u32(0)?;
    o.u32(label)?;
    o.u32(cmd_type)?;
    o.u32(0)?;
    o.end()
}

/// An RX batch being built: messages at 4-byte alignment, then a zero
/// length if room remains, padded to whole blocks; returns the control
/// byte's block count with [`RxBatch::blocks`].
pub struct RxBatch<'a> {
    buf: &'a mut [u8],
    pos: usize,
    count: usize,
}

impl<'a> RxBatch<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        RxBatch {
            buf,
            pos: 0,
            count: 0,
        }
    }
    pub fn count(&self) -> usize {
        self.count
    }
    /// Appends one message; `false` when it does not fit or the batch is full.
    pub fn push(&mut self, msg: &[u8]) -> bool {
        let padded = (msg.len() + 3) & !3;
        if self.count == BATCH_MAX || self.pos + padded > self.buf.len() {
            return false;
        }
        self.buf[self.pos..self.pos + msg.len()].copy_from_slice(msg);
        self.buf[self.pos + msg.len()..self.pos + padded].fill(0);
        self.pos += padded;
        self.count += 1;
        true
    }
    /// Finishes: zero-fills to whole blocks (the zero length terminates
    /// the walk on the host) and returns the bytes to publish.
    pub fn finish(self) -> usize {
        let total = self.pos.div_ceil(BLOCK) * BLOCK;
        self.buf[self.pos..total].fill(0);
        total
    }
}

/// Boot-ROM frame types (`bes_fw_common.h` 23-27).
pub mod fw {
    pub const REPLY: u8 = 0xB0;
    pub const INFO: u8 = 0xB1;
    pub const DATA: u8 = 0xB2;
    pub const END: u8 = 0xB3;
    pub const RUN: u8 = 0xB4;
}

/// A boot-ROM reply (`struct frame_struct_t`): type 0xB0, frame number,
/// le16 length 4, le32 status.
pub fn fw_reply(seq: u8, status: u32) -> [u8; 8] {
    let mut r = [0u8; 8];
    r[0] = fw::REPLY;
    r[1] = seq;
    r[2..4].copy_from_slice(&4u16.to_le_bytes());
    r[4..8].copy_from_slice(&status.to_le_bytes());
    r
}

/// IEEE CRC-32 as the kernel's `crc32_le(~0, ..) ^ ~0`, bitwise (no table:
/// an implementation of its own, not the core's).
pub fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            let lsb = c & 1;
            c >>= 1;
            if lsb != 0 {
                c ^= 0xEDB8_8320;
            }
        }
    }
    !c
}
