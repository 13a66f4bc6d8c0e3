//! Firmware download to the bes2600 boot ROM, sans-I/O.
//!
//! Protocol facts from the public bes2600 sources (`bes_fw.c`,
//! `bes_fw_common.h`): every frame is `{u8 type, u8 seq, le16 len}` + payload;
//! `0xB1` download-info `{le32 code_len, le32 load_addr}`, `0xB2` data
//! `{le32 addr, bytes}`, `0xB3` end `{le32 crc32}`, `0xB4` run `{le32 addr}`;
//! the boot ROM answers each with `0xB0 {seq, len = 4, le32 status}`
//! (0 = ok). The CRC is IEEE CRC-32 over the image without its last 4 bytes,
//! which (like bytes 12..16 of the exec header) carry the load address.
//! Writes are padded to at least [`FW_WRITE_MIN`] bytes.

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
/// Bytes per data frame the boot ROM accepts (its RX buffer size).
pub const FW_CHUNK_MAX: usize = 2048;
/// Bytes of a reply frame.
pub const FW_REPLY_LEN: usize = 8;
/// Exec header at the start of an image: entry, param, sp, exec_addr.
pub const FW_EXEC_HDR_LEN: usize = 16;
/// Trailing bytes that are not code (they repeat the load address).
pub const FW_TRAILER_LEN: usize = 4;
/// Largest image we accept (bytes).
pub const FW_IMAGE_MAX: usize = 4 << 20;

pub mod frame {
    pub const REPLY: u8 = 0xB0;
    pub const INFO: u8 = 0xB1;
    pub const DATA: u8 = 0xB2;
    pub const END: u8 = 0xB3;
    pub const RUN: u8 = 0xB4;
}

/// Boot-ROM status codes.
pub const FW_OK: u32 = 0;
pub const FW_ERR_LEN: u32 = 1;
/// Status the simulated boot ROM uses for a CRC mismatch.
pub const FW_ERR_CRC: u32 = 2;

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
}

impl<'a> FwLoader<'a> {
    pub fn new(image: &'a [u8]) -> Result<Self, FwError> {
        Ok(FwLoader {
            image,
            info: parse_image(image)?,
            phase: Phase::Info,
            seq: 0,
            awaiting: None,
        })
    }
    pub fn info(&self) -> FwInfo {
        self.info
    }
    pub fn done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Writes the next frame into `out` (zero-padded to [`FW_WRITE_MIN`]) and
    /// returns the bytes to write; `None` while a reply is awaited or when done.
    pub fn next_frame(&mut self, out: &mut [u8]) -> Result<Option<usize>, FwError> {
        if self.awaiting.is_some() || self.phase == Phase::Done {
            return Ok(None);
        }
        let info = self.info;
        let (ty, payload_len) = match self.phase {
            Phase::Info => (frame::INFO, 8),
            Phase::Data { offset } => {
                let n = (info.code_len - offset).min(FW_CHUNK_MAX - FW_HDR_LEN - 4);
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
                let n = (self.info.code_len - offset).min(FW_CHUNK_MAX - FW_HDR_LEN - 4);
                if offset + n >= self.info.code_len {
                    Phase::End
                } else {
                    Phase::Data { offset: offset + n }
                }
            }
            Phase::End => Phase::Run,
            Phase::Run | Phase::Done => Phase::Done,
        };
        Ok(())
    }
}

/// Encodes a boot-ROM reply (simulator side).
pub fn encode_reply(seq: u8, status: u32) -> [u8; FW_REPLY_LEN] {
    let mut r = [0u8; FW_REPLY_LEN];
    r[0] = frame::REPLY;
    r[1] = seq;
    r[2..4].copy_from_slice(&4u16.to_le_bytes());
    r[4..8].copy_from_slice(&status.to_le_bytes());
    r
}

/// Why a download over the bus failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadError {
    Protocol(FwError),
    Bus(crate::bh::BusError),
    /// The boot ROM announced no reply where one was due.
    NoReply {
        seq: u8,
    },
}

/// Control-word polls for one reply before giving up.
pub const FW_REPLY_POLLS_MAX: u32 = 100;

/// Runs a whole download over the bus: each frame is one write; each reply
/// is announced by a control word (1 message, 8 bytes) and read with one
/// data read. `scratch` holds one frame ([`FW_CHUNK_MAX`] bytes or more).
pub fn download(
    bus: &mut impl crate::bh::SdioBus,
    image: &[u8],
    scratch: &mut [u8],
) -> Result<FwInfo, DownloadError> {
    let mut l = FwLoader::new(image).map_err(DownloadError::Protocol)?;
    let mut toggle = false;
    while !l.done() {
        let Some(n) = l.next_frame(scratch).map_err(DownloadError::Protocol)? else {
            break;
        };
        let seq = scratch[1];
        bus.write_data(&scratch[..n], false)
            .map_err(DownloadError::Bus)?;
        let mut polls = 0;
        loop {
            let raw = bus.read_ctrl().map_err(DownloadError::Bus)?;
            if let Ok(w) = crate::sdio::decode_ctrl_word(raw, toggle) {
                if usize::from(w.total_len) == FW_REPLY_LEN {
                    break;
                }
            }
            polls += 1;
            if polls >= FW_REPLY_POLLS_MAX {
                return Err(DownloadError::NoReply { seq });
            }
        }
        let mut reply = [0u8; FW_REPLY_LEN];
        bus.read_data(&mut reply).map_err(DownloadError::Bus)?;
        toggle = !toggle;
        l.on_reply(&reply).map_err(DownloadError::Protocol)?;
    }
    Ok(l.info())
}
