//! bes2600 SDIO framing as the shipping build speaks it: the register map,
//! CMD53 arguments with bes2600's own address encoding, the one-byte RX
//! control with its toggle, multi-RX extraction and slotted TX aggregation.
//!
//! Every fact here is from the public bes2600 sources (cringeops/bes2600 at
//! 123c432, `bes2600/`); `driver/core/tests/data/*.vec` has byte-exact
//! vectors with the same citations. Both public builds compile with
//! `-DBES_SDIO_OPTIMIZED_LEN`, `-DBES_SDIO_RXTX_TOGGLE`,
//! `-DBES_SDIO_{RX,TX}_MULTIPLE_ENABLE` (`Makefile` 89-93); the
//! non-optimised 4-byte CRC8 length word (`bes2600_sdio.c` 589-686 under
//! `#ifndef BES_SDIO_OPTIMIZED_LEN`) is not what the chips ship with and is
//! not implemented.
//!
//! - Registers are reached by CMD52 only, one byte at a time
//!   (`bes2600_sdio.c` 364-396, "bes sdio slave regs can only be accessed by
//!   command52").
//! - RX: reading [`reg::CTRL_LEN`] (0x001) clears the chip's interrupt and
//!   gives the pending length in 512-byte blocks (bits 0-6) and a toggle
//!   (bit 7) that must equal the host's `next_toggle`; a zero is confirmed
//!   by bit 0 of [`reg::CTRL`] (0x000) (`bes2600_sdio_read_ctrl`, 636-711).
//!   The data is one CMD53 read whose address is the length with the RX data
//!   toggle in address bit 16 (`bes_sdio_memcpy_io_helper`, 195-217).
//!   The read holds up to 16 messages, each padded to 4 bytes, ended by a
//!   zero length or by the announced total (`bes2600_sdio_packets_check`,
//!   715-773; `bes2600_sdio_extract_packets`, 775-827).
//! - TX: every message of one write takes an equal slot of `blocks * 512`
//!   bytes (1632 for 4 blocks); messages of another block count start a new
//!   write; an MCU command (`0x0Cxx`) goes alone; at most 16 per write. The
//!   CMD53 address is the sum of the slots with `blocks - 1` in its low two
//!   bits and the TX data toggle in bit 16 (`sdio_tx_work`, 1080-1182;
//!   `bes_sdio_memcpy_to_io_helper`, 951-1075).

#![forbid(unsafe_code)]

use super::wsm::{self, WsmError, MSG_LEN_MAX, TX_TRAILER_LEN};

/// SDIO function of the Wi-Fi part (bes2600 probes function 1; the CMD53
/// argument carries `func->num << 28`).
pub const SDIO_FUNC: u8 = 1;
/// Block size the driver sets (`sdio_set_block_size(func, 512)`, bytes).
pub const BLOCK_LEN: usize = 512;
/// Messages in one SDIO read (`hwio.h` 294, `BES_SDIO_RX_MULTIPLE_NUM`).
pub const RX_BATCH_MAX: usize = 16;
/// Messages merged into one SDIO write (`hwio.h` 295, `BES_SDIO_TX_MULTIPLE_NUM`).
pub const TX_BATCH_MAX: usize = 16;
/// Message alignment inside an RX batch (bytes, `(len + 3) & ~3`).
pub const MSG_ALIGN: usize = 4;
/// Largest single SDIO transfer (`hwio.h` 297, `MAX_SDIO_TRANSFER_LEN`, bytes).
pub const TRANSFER_LEN_MAX: usize = 32768;
/// Largest TX write: 16 slots of 1632 bytes, padded to whole blocks.
pub const TX_BUF_LEN: usize = (TX_BATCH_MAX * TX_SLOT_4_BLOCKS).div_ceil(BLOCK_LEN) * BLOCK_LEN;
/// Slot of a 4-block message (`sdio_tx_work`: `if (blks >= 4) align = 1632`).
pub const TX_SLOT_4_BLOCKS: usize = 1632;
/// Largest byte-mode CMD53 (`sdio_max_byte_size`, min(..., 512)); longer
/// transfers use block mode.
pub const BYTE_MODE_MAX: usize = 512;

/// Function-1 registers (`hwio.h` 242-288).
pub mod reg {
    /// `BES_TX_CTRL_REG_ID`: bit 0 set = "nothing pending" (confirms a zero
    /// control byte, `bes2600_sdio.c` 703-707).
    pub const CTRL: u32 = 0x000;
    /// `BES_TX_CTRL_REG_ID + 1`: the control byte (blocks | toggle << 7);
    /// reading it clears the slave interrupt (`bes2600_sdio.c` 644-645).
    pub const CTRL_LEN: u32 = 0x001;
    /// Boot ROM: non-zero when it can take a frame (`bes_fw.c`).
    pub const FW_RX_READY: u32 = 0x108;
    /// Boot ROM: its receive buffer size in KiB (`bes_fw.c`).
    pub const FW_RX_BUF_KIB: u32 = 0x109;
    /// `BES_SLAVE_STATUS_REG_ID`: MCU/DPD/Wi-Fi ready bits.
    pub const SLAVE_STATUS: u32 = 0x10c;
    /// `BES_HOST_INT_REG_ID`: host-to-chip interrupt with a subsystem code.
    pub const HOST_INT: u32 = 0x120;
}

/// CMD53 (`SD_IO_RW_EXTENDED`) argument bits (SDIO spec 5.3; bes2600 sets
/// them by hand in `bes_sdio_memcpy_io_helper`, 198-220).
pub mod cmd53 {
    pub const WRITE: u32 = 1 << 31;
    pub const FUNC_SHIFT: u32 = 28;
    pub const BLOCK_MODE: u32 = 1 << 27;
    pub const OP_INC_ADDR: u32 = 1 << 26;
    pub const ADDR_SHIFT: u32 = 9;
    pub const ADDR_MASK: u32 = 0x1_FFFF;
    pub const COUNT_MASK: u32 = 0x1FF;
    /// bes2600 carries the data toggle in address bit 16 (argument bit 25).
    pub const TOGGLE_ADDR_BIT: u32 = 1 << 16;
}

/// A CMD53 argument and the bytes it moves on the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmd53 {
    /// The 32-bit argument, exactly as it goes on the command line.
    pub arg: u32,
    /// Bytes transferred: `count * 512` in block mode, `count` (0 = 512)
    /// in byte mode.
    pub len: usize,
}

impl Cmd53 {
    /// The transfer bes2600 makes for `size` bytes at `addr` (which already
    /// carries any toggle bit): byte mode up to [`BYTE_MODE_MAX`], block
    /// mode above, as `bes_sdio_memcpy_io_helper` decides (185-220, 287-310).
    pub fn transfer(write: bool, addr: u32, size: usize) -> Cmd53 {
        if size > BYTE_MODE_MAX {
            Self::blocks(write, addr, size)
        } else {
            Cmd53 {
                arg: Self::base(write, addr) | (size as u32 & cmd53::COUNT_MASK),
                len: size,
            }
        }
    }
    /// A TX aggregate write: always block mode (`bes_sdio_memcpy_to_io_helper`
    /// 951-1030: `size & ~3` rounded up to blocks, address = the coded total).
    pub fn tx_write(coded_total: u32, toggle: bool) -> Cmd53 {
        let addr = (coded_total & !cmd53::TOGGLE_ADDR_BIT) | (u32::from(toggle) << 16);
        Self::blocks(true, addr, (coded_total & !3) as usize)
    }
    fn base(write: bool, addr: u32) -> u32 {
        (u32::from(write) << 31)
            | (u32::from(SDIO_FUNC) << cmd53::FUNC_SHIFT)
            | cmd53::OP_INC_ADDR
            | ((addr & cmd53::ADDR_MASK) << cmd53::ADDR_SHIFT)
    }
    fn blocks(write: bool, addr: u32, size: usize) -> Cmd53 {
        let blocks = size.div_ceil(BLOCK_LEN);
        Cmd53 {
            arg: Self::base(write, addr) | cmd53::BLOCK_MODE | (blocks as u32 & cmd53::COUNT_MASK),
            len: blocks * BLOCK_LEN,
        }
    }
}

/// What the one-byte RX control says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctrl {
    /// This many bytes (whole blocks) are pending under the expected toggle.
    Pending(usize),
    /// A non-zero length with the previous toggle: the chip has not
    /// published a new batch yet (bes2600 counts it, `rx_remain_ctrl_cnt`,
    /// and reads again).
    Stale,
    /// Zero blocks: confirm with [`reg::CTRL`] bit 0.
    Zero,
}

/// Decodes the control byte against the host's expected toggle.
pub fn decode_ctrl_byte(b: u8, expected_toggle: bool) -> Ctrl {
    let blocks = usize::from(b & 0x7f);
    if blocks == 0 {
        Ctrl::Zero
    } else if (b & 0x80 != 0) == expected_toggle {
        Ctrl::Pending(blocks * BLOCK_LEN)
    } else {
        Ctrl::Stale
    }
}

/// [`reg::CTRL`] bit 0: the chip really has nothing pending.
pub fn ctrl_says_empty(b: u8) -> bool {
    b & 0x01 != 0
}

/// Rounds a message length up to [`MSG_ALIGN`].
pub const fn pad4(len: usize) -> usize {
    (len + MSG_ALIGN - 1) & !(MSG_ALIGN - 1)
}

/// Why a batch could not be split into messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The read buffer holds fewer bytes than the control byte announced.
    ShortRead { announced: usize, have: usize },
    /// Message `index` has a bad header.
    Msg {
        index: u8,
        offset: usize,
        err: WsmError,
    },
    /// The padded message lengths run past the announced total
    /// (`bes2600_sdio_packets_check` -202).
    LenMismatch { announced: usize, summed: usize },
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
        let (start, len) = self.span(i);
        &buf[start..start + len]
    }
    pub fn iter<'b>(&'b self, buf: &'b [u8]) -> impl Iterator<Item = &'b [u8]> + 'b {
        (0..self.len()).map(move |i| self.msg(buf, i))
    }
}

/// Splits a read of `total_len` bytes into messages, as the optimised build
/// does: at most [`RX_BATCH_MAX`], each padded to 4 bytes, up to a zero
/// length or the total.
pub fn extract(buf: &[u8], total_len: usize) -> Result<RxBatch, FrameError> {
    if buf.len() < total_len {
        return Err(FrameError::ShortRead {
            announced: total_len,
            have: buf.len(),
        });
    }
    let buf = &buf[..total_len];
    let mut batch = RxBatch {
        spans: [(0, 0); RX_BATCH_MAX],
        count: 0,
    };
    let mut pos = 0usize;
    while batch.len() < RX_BATCH_MAX && pos + 2 <= total_len {
        let rest = &buf[pos..];
        if rest[0] == 0 && rest[1] == 0 {
            break; // zero-length terminator
        }
        let (len, _) = wsm::parse_header(rest).map_err(|err| FrameError::Msg {
            index: batch.count,
            offset: pos,
            err,
        })?;
        if pos + pad4(len) > total_len {
            return Err(FrameError::LenMismatch {
                announced: total_len,
                summed: pos + pad4(len),
            });
        }
        batch.spans[batch.len()] = (pos as u16, len as u16);
        batch.count += 1;
        pos += pad4(len);
    }
    Ok(batch)
}

/// How many blocks a TX message of `len` bytes takes, and its slot size;
/// `None` above 4 blocks (`sdio_tx_work` skips those: "skip error-len packet").
pub fn tx_slot(len: usize) -> Option<(u8, usize)> {
    match len.div_ceil(BLOCK_LEN) {
        0 => None,
        b @ 1..=3 => Some((b as u8, b * BLOCK_LEN)),
        // C takes 4 blocks for anything up to 2048 bytes and sends 1632 of
        // them: longer messages would be cut, so none is put in a slot.
        4 if len <= TX_SLOT_4_BLOCKS => Some((4, TX_SLOT_4_BLOCKS)),
        _ => None,
    }
}

/// Why a message could not join a TX batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxBatchFull {
    /// [`TX_BATCH_MAX`] messages already.
    Count,
    /// The message needs another slot size: it starts the next write.
    SlotSize,
    /// An MCU command goes alone, so nothing joins it or is joined by it.
    Alone,
    /// The buffer has no room for another slot.
    Bytes,
    /// Longer than 4 blocks: no slot fits (or empty).
    TooLong,
}

/// One SDIO write being built: equal slots of one block count.
pub struct TxBatch<'b> {
    buf: &'b mut [u8],
    blocks: u8,
    count: usize,
    alone: bool,
}

impl<'b> TxBatch<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        TxBatch {
            buf,
            blocks: 0,
            count: 0,
            alone: false,
        }
    }
    pub fn count(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    fn slot_len(&self) -> usize {
        match self.blocks {
            0 => 0,
            4 => TX_SLOT_4_BLOCKS,
            b => usize::from(b) * BLOCK_LEN,
        }
    }
    /// Bytes of the slots (the aggregate before block padding).
    pub fn len(&self) -> usize {
        self.count * self.slot_len()
    }
    /// Can a message of up to `len` bytes join? `mcu` marks a `0x0Cxx`.
    /// Its slot is chosen for `len` plus the 4-byte timestamp trailer.
    pub fn fits(&self, len: usize, mcu: bool) -> Result<(), TxBatchFull> {
        let (blocks, slot) = tx_slot(len + TX_TRAILER_LEN).ok_or(TxBatchFull::TooLong)?;
        if self.count == 0 {
            return if slot.div_ceil(BLOCK_LEN) * BLOCK_LEN > self.buf.len() {
                Err(TxBatchFull::Bytes)
            } else {
                Ok(())
            };
        }
        if self.alone || mcu {
            return Err(TxBatchFull::Alone);
        }
        if self.count >= TX_BATCH_MAX {
            return Err(TxBatchFull::Count);
        }
        if blocks != self.blocks {
            return Err(TxBatchFull::SlotSize);
        }
        let end = (self.count + 1) * slot;
        if end.div_ceil(BLOCK_LEN) * BLOCK_LEN > self.buf.len().min(TRANSFER_LEN_MAX) {
            return Err(TxBatchFull::Bytes);
        }
        Ok(())
    }
    /// Lets `encode` write one message of at most `max_len` bytes into the
    /// next slot; `encode` returns the message length, and `stamp` (the
    /// host's ms clock) follows it as the 4-byte trailer. The slot is
    /// zeroed first (the chip sees zeros between messages).
    pub fn push_with<E>(
        &mut self,
        max_len: usize,
        mcu: bool,
        stamp: u32,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<Result<usize, E>, TxBatchFull> {
        self.fits(max_len, mcu)?;
        let (blocks, slot) = tx_slot(max_len + TX_TRAILER_LEN).ok_or(TxBatchFull::TooLong)?;
        let start = self.count * slot;
        let region = &mut self.buf[start..start + slot];
        region.fill(0);
        match encode(&mut region[..max_len]) {
            Ok(n) => {
                region[n..n + TX_TRAILER_LEN].copy_from_slice(&stamp.to_le_bytes());
                if self.count == 0 {
                    self.blocks = blocks;
                    self.alone = mcu;
                }
                self.count += 1;
                Ok(Ok(n))
            }
            Err(e) => Ok(Err(e)),
        }
    }
    /// Appends an already encoded message.
    pub fn push(&mut self, msg: &[u8], mcu: bool, stamp: u32) -> Result<(), TxBatchFull> {
        self.push_with(msg.len(), mcu, stamp, |slot| {
            slot[..msg.len()].copy_from_slice(msg);
            Ok::<usize, ()>(msg.len())
        })
        .map(|_| ())
    }
    /// The last pushed message's slot (for stamping ids).
    pub fn tail_mut(&mut self) -> &mut [u8] {
        let slot = self.slot_len();
        let start = (self.count - 1) * slot;
        &mut self.buf[start..start + slot]
    }
    /// The coded total bes2600 puts in the CMD53 address: the slots' sum
    /// with `blocks - 1` in the low two bits (`total_len |= (cur_blk - 1)`).
    pub fn coded_total(&self) -> u32 {
        (self.len() as u32) | u32::from(self.blocks.saturating_sub(1))
    }
    /// The write: its CMD53 and the bytes (slots, zero-padded to blocks).
    pub fn finish(self, toggle: bool) -> (Cmd53, &'b [u8]) {
        let cmd = Cmd53::tx_write(self.coded_total(), toggle);
        let total = self.len();
        self.buf[total..cmd.len].fill(0);
        (cmd, &self.buf[..cmd.len])
    }
}

/// `true` for a bes2600 driver-to-MCU command id (`IS_DRIVER_VENDOR_CMD`,
/// `bes2600_sdio.c` 107: `(id & 0x0C00) == 0x0C00`).
pub fn is_vendor_cmd(id: u16) -> bool {
    id & 0x0C00 == 0x0C00
}

const _: () = assert!(MSG_LEN_MAX == TX_SLOT_4_BLOCKS);
/// Largest message that fits a slot with its trailer.
pub const TX_MSG_LEN_MAX: usize = TX_SLOT_4_BLOCKS - TX_TRAILER_LEN;
