//! Firmware download to the bes2600 boot ROM, sans-I/O.
//!
//! Protocol facts from the public bes2600 sources (cringeops/bes2600 at
//! 123c432: `bes_fw.c`, `bes_fw_common.{c,h}`); vectors with the same
//! citations are in `tests/data/fwload.vec`:
//! - every frame is `{u8 type, u8 seq, le16 len}` + payload
//!   (`struct fw_msg_hdr_t`): `0xB1` download-info `{le32 len, le32 addr}`,
//!   `0xB2` data `{le32 addr, bytes}`, `0xB3` end `{le32 crc32}`, `0xB4` run
//!   `{le32 addr}`; frame numbers count from 0 per download;
//! - before each frame the host reads register 0x108 (buffer count) and the
//!   le16 at 0x109/0x10a, the boot ROM's receive buffer size in bytes
//!   (`bes_slave_rx_ready`, `bes_fw.c` 44-63); a data frame fills it:
//!   `tx_size - 8` code bytes (`bes_fw.c` 320-327), and `tx_size` must be a
//!   non-zero multiple of 4 (-203, 314-318);
//! - a write is at least 512 bytes (`length > 512 ? length : 512`), sent
//!   with the CMD53 address equal to its size and no toggle (the firmware
//!   has not started, `bes_sdio_memcpy_io_helper` 195-217);
//! - the boot ROM answers by IRQ; the host then reads the reply length as
//!   the le16 at registers 0/1 (up to 5 tries while it reads 0,
//!   `bes_slave_tx_ready`, 68-104) and reads that many bytes: `0xB0 {seq,
//!   len = 4, le32 status}` (`bes_frame_rsp_check`, `bes_fw_common.c`
//!   73-100; status 0 = `ERR_NONE`);
//! - the CRC is `crc32_le(~0, code) ^ ~0` (IEEE) over the image without
//!   its last 4 bytes, which (like bytes 12..16 of the exec header) carry
//!   the load address; the trailer's address wins when set and different
//!   (`bes_parse_fw_info`, `bes_fw_common.c` 19-71);
//! - the load order (`bes2600_load_firmware_sdio`, `bes_fw.c` 1046-1110):
//!   two register pokes (0x40100000 = 0x802006, 0x4008602C = 0x3E00C000),
//!   the factory calibration to 0x2008B000 when there is one, then either
//!   the cached DPD data to 0x2008C000 and the Wi-Fi image, or the boot
//!   image, the DPD data read back once `SLAVE_STATUS` shows DPD-ready, and
//!   the Wi-Fi image (`bes2600_load_wifi_firmware{,_with_dpd}`, 958-1030).
#![forbid(unsafe_code)]

use super::bh::{BusError, SdioBus};
use super::sdio::{reg, Cmd53};

/// Firmware files under `/lib/firmware` (bes2600 `bes_fw.c`): the second-
/// stage boot image is downloaded to the boot ROM first, then one of the
/// Wi-Fi images through it, with the same protocol.
pub mod files {
    pub const BOOT: &str = "bes2600/best2002_fw_boot_sdio.bin";
    pub const WIFI: &str = "bes2600/best2002_fw_sdio.bin";
    pub const WIFI_NOSIGNAL: &str = "bes2600/best2002_fw_sdio_nosignal.bin";
    pub const WIFI_BTRF: &str = "bes2600/best2002_fw_sdio_btrf.bin";
    pub const FACTORY: &str = "bes2600_factory.txt";
}

/// Frame header bytes.
pub const FW_HDR_LEN: usize = 4;
/// Smallest write to the boot ROM (bytes).
pub const FW_WRITE_MIN: usize = 512;
/// Largest boot-ROM receive buffer we use (bytes; the C host allocates
/// 32 KiB for a data frame, `bes_fw.c` 292).
pub const FW_CHUNK_MAX: usize = 32 * 1024;
/// Bytes of a reply frame.
pub const FW_REPLY_LEN: usize = 8;
/// Exec header at the start of an image: entry, param, sp, exec_addr.
pub const FW_EXEC_HDR_LEN: usize = 16;
/// Trailing bytes that are not code (they repeat the load address).
pub const FW_TRAILER_LEN: usize = 4;
/// Largest image we accept (bytes).
pub const FW_IMAGE_MAX: usize = 4 << 20;
/// Register pokes before any download (`bes_fw.c` 1067-1068).
pub const FW_PRE_POKES: [(u32, u32); 2] = [(0x4010_0000, 0x0080_2006), (0x4008_602C, 0x3E00_C000)];
/// Where the factory calibration goes (`BES2600_FACTORY_ADDR`).
pub const FACTORY_ADDR: u32 = 0x2008_B000;
/// Where cached DPD calibration goes (`BES2600_DPD_ADDR`).
pub const DPD_ADDR: u32 = 0x2008_C000;
/// `BES_SLAVE_STATUS_DPD_READY` (`hwio.h` 283).
pub const SLAVE_STATUS_DPD_READY: u8 = 1 << 1;

pub mod frame {
    pub const REPLY: u8 = 0xB0;
    pub const INFO: u8 = 0xB1;
    pub const DATA: u8 = 0xB2;
    pub const END: u8 = 0xB3;
    pub const RUN: u8 = 0xB4;
}

/// Boot-ROM status `ERR_NONE` (`enum ERR_CODE`, `bes_fw_common.h` 50-53);
/// any other status (`ERR_LEN` = 1, or anything else) is a refusal.
pub const FW_OK: u32 = 0;

/// Why a download cannot go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwError {
    /// The image is shorter than its exec header plus trailer, or too big.
    ImageSize { len: usize },
    /// Neither the exec header nor the trailer give a load address.
    NoLoadAddress,
    /// The reply is not a `0xB0` frame of 8 bytes.
    ReplyMalformed { type_byte: u8, len: usize },
    /// The reply answers another frame.
    ReplySeq { expected: u8, got: u8 },
    /// The boot ROM refused the frame.
    ReplyStatus { seq: u8, status: u32 },
    /// The output buffer cannot hold a frame.
    NoRoom,
    /// The boot ROM's receive buffer size is unusable (`-203`).
    RxBufSize { size: u16 },
}

const fn crc32_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC32_TABLE: [u32; 256] = crc32_table();

/// IEEE CRC-32 (reflected, init and final xor 0xFFFFFFFF).
pub fn crc32(data: &[u8]) -> u32 {
    crc32_continue(0, data)
}

/// Continues a CRC-32: `crc32_continue(crc32(a), b) == crc32(a ++ b)`.
pub fn crc32_continue(crc: u32, data: &[u8]) -> u32 {
    !data.iter().fold(!crc, |c, &b| {
        CRC32_TABLE[usize::from((c as u8) ^ b)] ^ (c >> 8)
    })
}

/// What the image says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FwInfo {
    pub load_addr: u32,
    pub code_len: usize,
    pub crc32: u32,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads load address, code length and CRC from an image. The trailer's
/// address wins when it is set and differs (as bes2600 does).
pub fn parse_image(image: &[u8]) -> Result<FwInfo, FwError> {
    if image.len() < FW_EXEC_HDR_LEN + FW_TRAILER_LEN || image.len() > FW_IMAGE_MAX {
        return Err(FwError::ImageSize { len: image.len() });
    }
    let code_len = image.len() - FW_TRAILER_LEN;
    let hdr_addr = le32(image, 12);
    let trailer = le32(image, code_len);
    let load_addr = if trailer != 0 { trailer } else { hdr_addr };
    if load_addr == 0 {
        return Err(FwError::NoLoadAddress);
    }
    Ok(FwInfo {
        load_addr,
        code_len,
        crc32: crc32(&image[..code_len]),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Info,
    Data { offset: usize },
    End,
    Run,
    Done,
}

/// The download as a state machine: ask for the next frame, write it, feed
/// the reply back, until [`FwLoader::done`].
#[derive(Debug)]
pub struct FwLoader<'a> {
    image: &'a [u8],
    info: FwInfo,
    phase: Phase,
    seq: u8,
    awaiting: Option<u8>,
    /// Send the end frame after the data (not for a register poke).
    end: bool,
    /// Run the code after the end frame (an image) or not (a memory write).
    run: bool,
    /// Code bytes in the data frame awaiting its reply.
    chunk: usize,
}

impl<'a> FwLoader<'a> {
    /// An image download that ends with a run frame (`bes_firmware_download`).
    pub fn new(image: &'a [u8]) -> Result<Self, FwError> {
        Ok(FwLoader {
            image,
            info: parse_image(image)?,
            phase: Phase::Info,
            seq: 0,
            awaiting: None,
            end: true,
            run: true,
            chunk: 0,
        })
    }
    /// A memory write: info, data, end, no run
    /// (`bes_firmware_download_write_mem`, `bes_fw.c` 224-449: the CRC is over
    /// all of `data`).
    pub fn write_mem(addr: u32, data: &'a [u8]) -> Result<Self, FwError> {
        if data.is_empty() || data.len() > FW_IMAGE_MAX {
            return Err(FwError::ImageSize { len: data.len() });
        }
        Ok(FwLoader {
            image: data,
            info: FwInfo {
                load_addr: addr,
                code_len: data.len(),
                crc32: crc32(data),
            },
            phase: Phase::Info,
            seq: 0,
            awaiting: None,
            end: true,
            run: false,
            chunk: 0,
        })
    }
    /// A register poke (`bes_firmware_download_write_reg`, `bes_fw.c`
    /// 130-222): an info frame `{len 4, addr}` and one data frame
    /// `{addr, value}`, no end frame.
    pub fn write_reg(addr: u32, val: &'a [u8; 4]) -> Self {
        FwLoader {
            image: val,
            info: FwInfo {
                load_addr: addr,
                code_len: 4,
                crc32: crc32(val),
            },
            phase: Phase::Info,
            seq: 0,
            awaiting: None,
            end: false,
            run: false,
            chunk: 0,
        }
    }
    pub fn info(&self) -> FwInfo {
        self.info
    }
    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Writes the next frame into `out` (zero-padded to [`FW_WRITE_MIN`]) and
    /// returns the bytes to write; `None` while a reply is awaited or when
    /// done. `rx_buf` is the boot ROM's announced receive buffer size.
    pub fn next_frame(&mut self, rx_buf: u16, out: &mut [u8]) -> Result<Option<usize>, FwError> {
        if self.awaiting.is_some() || self.phase == Phase::Done {
            return Ok(None);
        }
        let info = self.info;
        let (ty, payload_len) = match self.phase {
            Phase::Info => {
                if usize::from(rx_buf) <= FW_HDR_LEN + 8 {
                    return Err(FwError::RxBufSize { size: rx_buf });
                }
                (frame::INFO, 8)
            }
            Phase::Data { offset } => {
                let size = usize::from(rx_buf);
                if size < 4 || size % 4 != 0 || size <= FW_HDR_LEN + 4 {
                    return Err(FwError::RxBufSize { size: rx_buf });
                }
                let left = info.code_len - offset;
                // `bes_fw.c` 320-327: all that is left if it fits in the
                // buffer with both headers, else the buffer full.
                let n = if left + FW_HDR_LEN + 4 < size {
                    left
                } else {
                    size - FW_HDR_LEN - 4
                };
                self.chunk = n;
                (frame::DATA, 4 + n)
            }
            Phase::End => (frame::END, 4),
            Phase::Run => (frame::RUN, 4),
            Phase::Done => return Ok(None),
        };
        let len = FW_HDR_LEN + payload_len;
        let total = len.max(FW_WRITE_MIN);
        if out.len() < total {
            return Err(FwError::NoRoom);
        }
        out[..total].fill(0);
        out[0] = ty;
        out[1] = self.seq;
        out[2..4].copy_from_slice(&(payload_len as u16).to_le_bytes());
        let p = &mut out[FW_HDR_LEN..len];
        match self.phase {
            Phase::Info => {
                p[..4].copy_from_slice(&(info.code_len as u32).to_le_bytes());
                p[4..8].copy_from_slice(&info.load_addr.to_le_bytes());
            }
            Phase::Data { offset } => {
                let addr = info.load_addr.wrapping_add(offset as u32);
                p[..4].copy_from_slice(&addr.to_le_bytes());
                let n = payload_len - 4;
                p[4..].copy_from_slice(&self.image[offset..offset + n]);
            }
            Phase::End => p.copy_from_slice(&info.crc32.to_le_bytes()),
            Phase::Run => p.copy_from_slice(&info.load_addr.to_le_bytes()),
            Phase::Done => {}
        }
        self.awaiting = Some(self.seq);
        self.seq = self.seq.wrapping_add(1);
        Ok(Some(total))
    }

    /// Checks the boot ROM's reply to the last frame and advances.
    pub fn on_reply(&mut self, reply: &[u8]) -> Result<(), FwError> {
        let Some(expected) = self.awaiting else {
            return Err(FwError::ReplySeq {
                expected: self.seq,
                got: reply.get(1).copied().unwrap_or(0),
            });
        };
        if reply.len() < FW_REPLY_LEN
            || reply[0] != frame::REPLY
            || u16::from_le_bytes([reply[2], reply[3]]) != 4
        {
            return Err(FwError::ReplyMalformed {
                type_byte: reply.first().copied().unwrap_or(0),
                len: reply.len(),
            });
        }
        if reply[1] != expected {
            return Err(FwError::ReplySeq {
                expected,
                got: reply[1],
            });
        }
        let status = le32(reply, 4);
        if status != FW_OK {
            return Err(FwError::ReplyStatus {
                seq: expected,
                status,
            });
        }
        self.awaiting = None;
        self.phase = match self.phase {
            Phase::Info => Phase::Data { offset: 0 },
            Phase::Data { offset } => {
                if offset + self.chunk >= self.info.code_len {
                    if self.end {
                        Phase::End
                    } else {
                        Phase::Done
                    }
                } else {
                    Phase::Data {
                        offset: offset + self.chunk,
                    }
                }
            }
            Phase::End if self.run => Phase::Run,
            Phase::End => Phase::Done,
            Phase::Run | Phase::Done => Phase::Done,
        };
        Ok(())
    }
}

/// Why a download over the bus failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadError {
    Protocol(FwError),
    Bus(BusError),
    /// No IRQ from the boot ROM within the caller's wait.
    NoIrq {
        seq: u8,
    },
    /// The boot ROM announced a zero-length reply 6 times (`bes_fw.c` 82-90).
    NoReply {
        seq: u8,
    },
    /// The reply is longer than the caller's reply buffer.
    ReplyTooLong {
        len: u16,
    },
    /// `SLAVE_STATUS` never showed DPD-ready.
    DpdNotReady,
    /// The DPD data the chip announced does not fit the caller's buffer.
    DpdSize {
        len: u16,
    },
}

/// Register reads of a zero reply length before giving up (`retry <= 5`).
pub const FW_REPLY_LEN_TRIES: u32 = 6;
/// `SLAVE_STATUS` polls for DPD-ready (C: every 100 ms for 15 s).
pub const DPD_READY_POLLS_MAX: u32 = 150;

/// The bus side of a download: the bus, a way to wait for the chip's IRQ
/// (C: `wait_for_completion_interruptible_timeout(.., HZ)`; given the bus,
/// returns false on timeout), and a scratch buffer of [`FW_CHUNK_MAX`] bytes owned by the
/// caller (DMA-safe memory in the kernel, never the stack).
pub struct FwIo<'a, B: SdioBus, W: FnMut(&mut B) -> bool> {
    pub bus: &'a mut B,
    pub wait_irq: W,
    pub scratch: &'a mut [u8],
}

impl<B: SdioBus, W: FnMut(&mut B) -> bool> FwIo<'_, B, W> {
    fn readb(&mut self, addr: u32) -> Result<u8, DownloadError> {
        self.bus.readb(addr).map_err(DownloadError::Bus)
    }
    fn read16(&mut self, addr: u32) -> Result<u16, DownloadError> {
        Ok(u16::from_le_bytes([
            self.readb(addr)?,
            self.readb(addr + 1)?,
        ]))
    }
    /// `bes_slave_rx_ready`: buffer count, then the receive buffer size.
    fn rx_ready(&mut self) -> Result<u16, DownloadError> {
        let _count = self.readb(reg::FW_RX_READY)?;
        self.read16(reg::FW_RX_BUF_KIB)
    }
    /// `bes_slave_tx_ready`: the IRQ, then the le16 reply length at 0/1.
    fn tx_ready(&mut self, seq: u8) -> Result<u16, DownloadError> {
        if !(self.wait_irq)(self.bus) {
            return Err(DownloadError::NoIrq { seq });
        }
        for _ in 0..FW_REPLY_LEN_TRIES {
            let n = self.read16(reg::CTRL)?;
            if n != 0 {
                return Ok(n);
            }
        }
        Err(DownloadError::NoReply { seq })
    }
    fn write(&mut self, n: usize) -> Result<(), DownloadError> {
        let cmd = Cmd53::transfer(true, n as u32, n);
        if cmd.len > self.scratch.len() {
            return Err(DownloadError::Protocol(FwError::NoRoom));
        }
        self.scratch[n..cmd.len].fill(0);
        self.bus
            .cmd53_write(cmd, &self.scratch[..cmd.len])
            .map_err(DownloadError::Bus)
    }
    fn read(&mut self, n: usize) -> Result<(), DownloadError> {
        let cmd = Cmd53::transfer(false, n as u32, n);
        if cmd.len > self.scratch.len() {
            return Err(DownloadError::ReplyTooLong { len: n as u16 });
        }
        self.bus
            .cmd53_read(cmd, &mut self.scratch[..cmd.len])
            .map_err(DownloadError::Bus)
    }

    /// Runs one loader to its end.
    pub fn run(&mut self, mut l: FwLoader<'_>) -> Result<FwInfo, DownloadError> {
        while !l.done() {
            let rx_buf = self.rx_ready()?.min(self.scratch.len() as u16);
            let Some(n) = l
                .next_frame(rx_buf, self.scratch)
                .map_err(DownloadError::Protocol)?
            else {
                break;
            };
            let seq = self.scratch[1];
            self.write(n)?;
            let len = self.tx_ready(seq)?;
            self.read(usize::from(len))?;
            l.on_reply(&self.scratch[..usize::from(len)])
                .map_err(DownloadError::Protocol)?;
        }
        Ok(l.info())
    }

    /// A register poke ([`FwLoader::write_reg`]).
    pub fn write_reg(&mut self, addr: u32, val: u32) -> Result<(), DownloadError> {
        let v = val.to_le_bytes();
        self.run(FwLoader::write_reg(addr, &v)).map(|_| ())
    }

    /// `bes_read_dpd_data`: wait for DPD-ready, then the announced length
    /// and the data (copied into `out`); returns its length.
    pub fn read_dpd(&mut self, out: &mut [u8]) -> Result<usize, DownloadError> {
        let mut ready = false;
        for _ in 0..DPD_READY_POLLS_MAX {
            match self.bus.readb(reg::SLAVE_STATUS) {
                Ok(s) if s & SLAVE_STATUS_DPD_READY != 0 => {
                    ready = true;
                    break;
                }
                Ok(_) | Err(BusError::Crc) => {}
                Err(e) => return Err(DownloadError::Bus(e)),
            }
        }
        if !ready {
            return Err(DownloadError::DpdNotReady);
        }
        let len = self.tx_ready(0)?;
        if usize::from(len) > out.len() {
            return Err(DownloadError::DpdSize { len });
        }
        self.read(usize::from(len))?;
        out[..usize::from(len)].copy_from_slice(&self.scratch[..usize::from(len)]);
        Ok(usize::from(len))
    }
}

/// What a whole firmware load needs.
pub struct FwImages<'a> {
    pub boot: &'a [u8],
    pub wifi: &'a [u8],
    pub factory: Option<&'a [u8]>,
    /// DPD calibration from an earlier boot; without it the boot image runs
    /// first and the chip hands it over (into `dpd_out`).
    pub dpd: Option<&'a [u8]>,
}

/// The whole load, in `bes2600_load_firmware_sdio`'s order. Returns the
/// Wi-Fi image's info and how many DPD bytes were read into `dpd_out`.
pub fn load_all<B: SdioBus, W: FnMut(&mut B) -> bool>(
    io: &mut FwIo<'_, B, W>,
    images: &FwImages<'_>,
    dpd_out: &mut [u8],
) -> Result<(FwInfo, usize), DownloadError> {
    for (addr, val) in FW_PRE_POKES {
        io.write_reg(addr, val)?;
    }
    if let Some(f) = images.factory {
        io.run(FwLoader::write_mem(FACTORY_ADDR, f).map_err(DownloadError::Protocol)?)?;
    }
    let mut dpd_len = 0;
    match images.dpd {
        Some(d) => {
            io.run(FwLoader::write_mem(DPD_ADDR, d).map_err(DownloadError::Protocol)?)?;
        }
        None => {
            io.run(FwLoader::new(images.boot).map_err(DownloadError::Protocol)?)?;
            dpd_len = io.read_dpd(dpd_out)?;
        }
    }
    let info = io.run(FwLoader::new(images.wifi).map_err(DownloadError::Protocol)?)?;
    Ok((info, dpd_len))
}
