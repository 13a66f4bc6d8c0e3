//! The U-Boot environment as it sits in flash or in a file: what
//! `fw_printenv`/`fw_setenv` read and write, written again from the format's
//! definition (U-Boot `include/env.h` `env_t`, `tools/mkenvimage.c`).
//!
//! ```text
//! le32 crc32(data) | [flags: u8, redundant copies only] | data
//! data = "key=value\0" … "\0", padded to the area's size
//! ```
//!
//! The CRC is the zlib CRC-32 over the whole data area, padding included.
//! Tests check the codec against images made by U-Boot's own `mkenvimage`
//! (`lab/tests/data/uboot-env/`).

use std::fmt;

/// Where one environment copy's layout differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// One copy: CRC, then data.
    Single,
    /// `CONFIG_SYS_REDUNDAND_ENVIRONMENT`: CRC, a flags byte (the copy
    /// with the higher count is current), then data.
    Redundant,
}

impl Layout {
    fn header_len(self) -> usize {
        match self {
            Layout::Single => 4,
            Layout::Redundant => 5,
        }
    }
}

/// An environment: its variables in the order they are stored (U-Boot's
/// `saveenv` stores them sorted; `mkenvimage` in its input's order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(String, String)>,
}

/// Why an environment image does not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvError {
    /// Smaller than its header plus the closing empty entry.
    TooSmall { len: usize },
    /// The stored CRC is not the data's: never written, or torn.
    BadCrc { stored: u32, computed: u32 },
    /// No closing empty entry inside the area.
    Unterminated,
    /// An entry at `offset` (from the start of the data) without `=`, or
    /// not UTF-8.
    BadEntry { offset: usize },
    /// Encoding: the variables do not fit the area.
    TooBig { need: usize, size: usize },
    /// Encoding: a name or value U-Boot could not store (`=` in a name,
    /// NUL or an empty name).
    BadVar { name: String },
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::TooSmall { len } => write!(f, "{len} bytes is too small for a U-Boot environment"),
            EnvError::BadCrc { stored, computed } => write!(
                f,
                "CRC mismatch (stored {stored:#010x}, data {computed:#010x}): the environment was never saved or is torn"
            ),
            EnvError::Unterminated => write!(f, "no end of the variable list inside the area"),
            EnvError::BadEntry { offset } => {
                write!(f, "data byte {offset}: an entry that is not `name=value` text")
            }
            EnvError::TooBig { need, size } => {
                write!(f, "the variables need {need} bytes, the environment area holds {size}")
            }
            EnvError::BadVar { name } => write!(f, "variable {name:?} cannot be stored in a U-Boot environment"),
        }
    }
}

impl std::error::Error for EnvError {}

/// zlib's CRC-32 (reflected polynomial 0xEDB88320), as U-Boot's `crc32()`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl Env {
    pub fn new() -> Env {
        Env::default()
    }

    /// Reads one environment copy of `image.len()` bytes.
    pub fn decode(image: &[u8], layout: Layout) -> Result<Env, EnvError> {
        let h = layout.header_len();
        if image.len() < h + 2 {
            return Err(EnvError::TooSmall { len: image.len() });
        }
        let stored = u32::from_le_bytes([image[0], image[1], image[2], image[3]]);
        let data = &image[h..];
        let computed = crc32(data);
        if stored != computed {
            return Err(EnvError::BadCrc { stored, computed });
        }
        let mut vars = Vec::new();
        let mut off = 0;
        loop {
            let Some(len) = data[off..].iter().position(|&b| b == 0) else {
                return Err(EnvError::Unterminated);
            };
            if len == 0 {
                break;
            }
            let entry = std::str::from_utf8(&data[off..off + len])
                .map_err(|_| EnvError::BadEntry { offset: off })?;
            let (k, v) = entry
                .split_once('=')
                .ok_or(EnvError::BadEntry { offset: off })?;
            vars.push((k.to_string(), v.to_string()));
            off += len + 1;
            if off >= data.len() {
                return Err(EnvError::Unterminated);
            }
        }
        Ok(Env { vars })
    }

    /// Writes the environment as one copy of `size` bytes, the rest filled
    /// with `pad` (`mkenvimage`: 0xff; U-Boot's `saveenv`: 0x00). `flags`
    /// is the redundant layout's copy counter.
    pub fn encode(
        &self,
        size: usize,
        layout: Layout,
        pad: u8,
        flags: u8,
    ) -> Result<Vec<u8>, EnvError> {
        let h = layout.header_len();
        let mut data = Vec::with_capacity(size);
        for (k, v) in &self.vars {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return Err(EnvError::BadVar { name: k.clone() });
            }
            data.extend_from_slice(k.as_bytes());
            data.push(b'=');
            data.extend_from_slice(v.as_bytes());
            data.push(0);
        }
        // The closing empty entry.
        data.push(0);
        if data.len() + h > size {
            return Err(EnvError::TooBig {
                need: data.len() + h,
                size,
            });
        }
        data.resize(size - h, pad);
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(&crc32(&data).to_le_bytes());
        if layout == Layout::Redundant {
            out.push(flags);
        }
        out.extend_from_slice(&data);
        Ok(out)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` (in place when it exists, appended otherwise).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.vars.push((name.to_string(), value.to_string())),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.vars.retain(|(k, _)| k != name);
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/data/uboot-env/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    fn ab() -> Env {
        let mut e = Env::new();
        e.set("BOOT_ORDER", "A B");
        e.set("BOOT_A_LEFT", "3");
        e.set("BOOT_B_LEFT", "3");
        e
    }

    #[test]
    fn crc32_is_zlibs() {
        // The check value of CRC-32/ISO-HDLC (zlib).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn encodes_byte_for_byte_what_mkenvimage_makes() {
        assert_eq!(
            ab().encode(0x100, Layout::Single, 0xff, 0).unwrap(),
            vector("ab-256.bin")
        );
        assert_eq!(
            ab().encode(0x100, Layout::Single, 0, 0).unwrap(),
            vector("ab-256-pad0.bin")
        );
        assert_eq!(
            ab().encode(0x100, Layout::Redundant, 0xff, 1).unwrap(),
            vector("ab-256-redundant.bin")
        );
    }

    #[test]
    fn decodes_mkenvimage_images() {
        assert_eq!(
            Env::decode(&vector("ab-256.bin"), Layout::Single).unwrap(),
            ab()
        );
        assert_eq!(
            Env::decode(&vector("ab-256-redundant.bin"), Layout::Redundant).unwrap(),
            ab()
        );
        let m = Env::decode(&vector("mixed-512.bin"), Layout::Single).unwrap();
        // A value may hold `=` and `;`: only the first `=` splits.
        assert_eq!(m.get("bootcmd"), Some("run distro_bootcmd; echo x=y"));
        assert_eq!(m.get("BOOT_ORDER"), Some("B A"));
        assert_eq!(m.get("BOOT_B_LEFT"), Some("1"));
        assert_eq!(m.vars().count(), 5);
    }

    #[test]
    fn a_torn_or_blank_area_is_an_error_not_an_empty_environment() {
        let mut v = vector("ab-256.bin");
        v[40] ^= 1;
        assert!(matches!(
            Env::decode(&v, Layout::Single),
            Err(EnvError::BadCrc { .. })
        ));
        // Erased NOR flash: all 0xff.
        assert!(matches!(
            Env::decode(&[0xff; 256], Layout::Single),
            Err(EnvError::BadCrc { .. })
        ));
        assert_eq!(
            Env::decode(&[0; 4], Layout::Single),
            Err(EnvError::TooSmall { len: 4 })
        );
    }

    #[test]
    fn set_keeps_order_and_round_trips() {
        let mut e = Env::decode(&vector("mixed-512.bin"), Layout::Single).unwrap();
        e.set("BOOT_B_LEFT", "3");
        e.set("besser_new", "1");
        let img = e.encode(0x200, Layout::Single, 0, 0).unwrap();
        let back = Env::decode(&img, Layout::Single).unwrap();
        assert_eq!(back, e);
        assert_eq!(
            back.vars().map(|(k, _)| k).collect::<Vec<_>>()[..2],
            ["bootcmd", "BOOT_ORDER"]
        );
    }

    #[test]
    fn what_does_not_fit_or_cannot_be_stored_is_refused() {
        let mut e = ab();
        e.set("big", &"x".repeat(300));
        assert!(matches!(
            e.encode(0x100, Layout::Single, 0, 0),
            Err(EnvError::TooBig { .. })
        ));
        let mut e = Env::new();
        e.set("a=b", "1");
        assert!(matches!(
            e.encode(0x100, Layout::Single, 0, 0),
            Err(EnvError::BadVar { .. })
        ));
    }
}
