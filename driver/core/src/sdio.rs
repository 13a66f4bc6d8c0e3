//! bes2600 SDIO framing: the control word / control byte with its toggle
//! bit, CRC8 (poly 0x07), multi-RX extraction and TX aggregation.
//!
//! Facts from the public bes2600 sources: the 4-byte length word is
//! `le16 total_len | u8 (packet count bits 0-6, toggle bit 7) | u8 crc8` with
//! the CRC over the first three bytes; the optimised one-byte control gives
//! the pending length in 512-byte blocks (bits 0-6) and the toggle (bit 7).
//! One CMD53 read carries up to [`RX_BATCH_MAX`] messages, each padded to 4
//! bytes, ended by the total length or a zero-length terminator.

use crate::wsm::{self, WsmError, MSG_LEN_MAX, WSM_HDR_LEN};

/// Messages in one SDIO read (bes2600 `BES_SDIO_RX_MULTIPLE_NUM`).
pub const RX_BATCH_MAX: usize = 16;
/// Messages merged into one SDIO write (bes2600 `BES_SDIO_TX_MULTIPLE_NUM`).
pub const TX_BATCH_MAX: usize = 16;
/// Block size of the control byte's length unit (bytes).
pub const BLOCK_LEN: usize = 512;
/// Message alignment inside a batch (bytes).
pub const MSG_ALIGN: usize = 4;
/// Largest single SDIO transfer (bes2600 `MAX_SDIO_TRANSFER_LEN`, bytes).
pub const TRANSFER_LEN_MAX: usize = 32768;
/// Largest batch length a control word may announce (bytes).
pub const RX_BATCH_LEN_MAX: usize = RX_BATCH_MAX * MSG_LEN_MAX;

/// Rounds a message length up to [`MSG_ALIGN`].
pub const fn pad4(len: usize) -> usize {
    (len + MSG_ALIGN - 1) & !(MSG_ALIGN - 1)
}

const fn crc8_table() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u8;
        let mut b = 0;
        while b < 8 {
            c = if c & 0x80 != 0 {
                (c << 1) ^ 0x07
            } else {
                c << 1
            };
            b += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC8_TABLE: [u8; 256] = crc8_table();

/// CRC-8, polynomial x^8+x^2+x+1 (0x07), initial value 0, no reflection.
pub fn crc8(data: &[u8]) -> u8 {
    data.iter()
        .fold(0u8, |crc, &b| CRC8_TABLE[usize::from(crc ^ b)])
}

/// A validated control word: what the chip has pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtrlWord {
    /// Total bytes of the batch (sum of padded message lengths).
    pub total_len: u16,
    /// Messages in the batch.
    pub count: u8,
}

/// Why a control word/byte was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlError {
    /// CRC8 over the first three bytes did not match byte 3: read again.
    Crc { got: u8, want: u8 },
    /// The toggle bit is the previous one: the chip has not published a new
    /// batch (a stale length). Reading it would re-read old data.
    StaleToggle,
    /// Nothing pending.
    Empty,
    /// Count or length outside the limits: the chip is confused.
    OutOfRange { total_len: u16, count: u8 },
}

/// Builds the 4-byte control word (chip side).
pub fn encode_ctrl_word(total_len: u16, count: u8, toggle: bool) -> [u8; 4] {
    let [l0, l1] = total_len.to_le_bytes();
    let b2 = (count & 0x7f) | (u8::from(toggle) << 7);
    let crc = crc8(&[l0, l1, b2]);
    [l0, l1, b2, crc]
}

/// Validates a control word against the host's expected toggle.
pub fn decode_ctrl_word(raw: [u8; 4], expected_toggle: bool) -> Result<CtrlWord, CtrlError> {
    let want = crc8(&raw[..3]);
    if raw[3] != want {
        return Err(CtrlError::Crc { got: raw[3], want });
    }
    let toggle = raw[2] & 0x80 != 0;
    if toggle != expected_toggle {
        return Err(CtrlError::StaleToggle);
    }
    let total_len = u16::from_le_bytes([raw[0], raw[1]]);
    let count = raw[2] & 0x7f;
    if total_len == 0 || count == 0 {
        return Err(CtrlError::Empty);
    }
    if usize::from(count) > RX_BATCH_MAX
        || usize::from(total_len) > RX_BATCH_LEN_MAX
        || usize::from(total_len) < WSM_HDR_LEN * usize::from(count)
    {
        return Err(CtrlError::OutOfRange { total_len, count });
    }
    Ok(CtrlWord { total_len, count })
}

/// Optimised one-byte control: pending length in 512-byte blocks + toggle.
/// Returns the bytes to read.
pub fn decode_ctrl_byte(b: u8, expected_toggle: bool) -> Result<usize, CtrlError> {
    let blocks = usize::from(b & 0x7f);
    if blocks == 0 {
        return Err(CtrlError::Empty);
    }
    if (b & 0x80 != 0) != expected_toggle {
        return Err(CtrlError::StaleToggle);
    }
    Ok(blocks * BLOCK_LEN)
}

/// Builds the one-byte control (chip side). `len` is rounded up to blocks.
pub fn encode_ctrl_byte(len: usize, toggle: bool) -> u8 {
    let blocks = len.div_ceil(BLOCK_LEN).min(0x7f) as u8;
    blocks | (u8::from(toggle) << 7)
}

/// Why a batch could not be split into messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The read buffer holds fewer bytes than the control word announced.
    ShortRead { announced: usize, have: usize },
    /// Message `index` has a bad header.
    Msg {
        index: u8,
        offset: usize,
        err: WsmError,
    },
    /// The padded message lengths do not add up to the announced total.
    LenMismatch { announced: usize, summed: usize },
    /// More messages than the control word's count (or [`RX_BATCH_MAX`]).
    TooMany,
}

/// The messages of one SDIO read: offsets into the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxBatch {
    spans: [(u16, u16); RX_BATCH_MAX],
    count: u8,
}

impl RxBatch {
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Offset and length of the `i`-th message inside the read buffer.
    pub fn span(&self, i: usize) -> (usize, usize) {
        let (start, len) = self.spans[i];
        (usize::from(start), usize::from(len))
    }
    /// The `i`-th message (header included, unpadded) inside `buf`.
    pub fn msg<'b>(&self, buf: &'b [u8], i: usize) -> &'b [u8] {
        let (start, len) = self.spans[i];
        &buf[usize::from(start)..usize::from(start) + usize::from(len)]
    }
    pub fn iter<'b>(&'b self, buf: &'b [u8]) -> impl Iterator<Item = &'b [u8]> + 'b {
        (0..self.len()).map(move |i| self.msg(buf, i))
    }
}

/// Splits a read of `total_len` bytes into messages. With `count = None`
/// (one-byte control), messages are read until a zero length or the end.
pub fn extract(buf: &[u8], total_len: usize, count: Option<u8>) -> Result<RxBatch, FrameError> {
    if buf.len() < total_len {
        return Err(FrameError::ShortRead {
            announced: total_len,
            have: buf.len(),
        });
    }
    let want = count.map(usize::from).unwrap_or(RX_BATCH_MAX);
    if want > RX_BATCH_MAX {
        return Err(FrameError::TooMany);
    }
    let buf = &buf[..total_len];
    let mut batch = RxBatch {
        spans: [(0, 0); RX_BATCH_MAX],
        count: 0,
    };
    let mut pos = 0usize;
    while usize::from(batch.count) < want && pos < total_len {
        let rest = &buf[pos..];
        if count.is_none() && rest.len() >= 2 && rest[0] == 0 && rest[1] == 0 {
            break; // zero-length terminator
        }
        let (len, _) = wsm::parse_header(rest).map_err(|err| FrameError::Msg {
            index: batch.count,
            offset: pos,
            err,
        })?;
        batch.spans[usize::from(batch.count)] = (pos as u16, len as u16);
        batch.count += 1;
        pos += pad4(len);
    }
    let complete = match count {
        Some(_) => usize::from(batch.count) == want && pos == total_len,
        None => pos <= total_len,
    };
    if !complete {
        return Err(FrameError::LenMismatch {
            announced: total_len,
            summed: pos,
        });
    }
    Ok(batch)
}

/// Merges up to [`TX_BATCH_MAX`] messages into one write buffer, each
/// padded to 4 bytes.
pub struct TxBatch<'b> {
    buf: &'b mut [u8],
    len: usize,
    count: usize,
}

/// Why a message could not join a TX batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxBatchFull {
    Count,
    Bytes,
}

impl<'b> TxBatch<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        TxBatch {
            buf,
            len: 0,
            count: 0,
        }
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn count(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// Room for a message of `len` bytes?
    pub fn fits(&self, len: usize) -> Result<(), TxBatchFull> {
        if self.count >= TX_BATCH_MAX {
            return Err(TxBatchFull::Count);
        }
        if self.len + pad4(len) > self.buf.len().min(TRANSFER_LEN_MAX) {
            return Err(TxBatchFull::Bytes);
        }
        Ok(())
    }
    /// Lets `encode` write one message at the end of the batch; `encode`
    /// returns the message length.
    pub fn push_with<E>(
        &mut self,
        max_len: usize,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<Result<usize, E>, TxBatchFull> {
        self.fits(max_len)?;
        let end = (self.len + pad4(max_len)).min(self.buf.len());
        let slot = &mut self.buf[self.len..end];
        match encode(slot) {
            Ok(n) => {
                let padded = pad4(n);
                for b in &mut self.buf[self.len + n..self.len + padded] {
                    *b = 0;
                }
                self.len += padded;
                self.count += 1;
                Ok(Ok(n))
            }
            Err(e) => Ok(Err(e)),
        }
    }
    /// Appends an already encoded message.
    pub fn push(&mut self, msg: &[u8]) -> Result<(), TxBatchFull> {
        self.push_with(msg.len(), |slot| {
            slot[..msg.len()].copy_from_slice(msg);
            Ok::<usize, ()>(msg.len())
        })
        .map(|_| ())
    }
    /// The bytes to write.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    /// Mutable access to the last pushed message region (for stamping ids).
    pub fn tail_mut(&mut self, msg_len: usize) -> &mut [u8] {
        let start = self.len - pad4(msg_len);
        &mut self.buf[start..start + msg_len]
    }
}
