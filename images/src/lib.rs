//! besser kernel images: what goes into one (boards, flavours, the patch
//! series, Kconfig fragments), the checks that keep a build honest (patches
//! that do not apply, options dropped by `olddefconfig`), the manifest that
//! says what came out, and the cache keys that decide what to rebuild.
//!
//! Pure logic plus small, local file and `patch(1)` helpers; the build
//! itself (make, QEMU) is driven by `cargo xtask image`.

pub mod apply;
pub mod board;
pub mod bootcheck;
pub mod cache;
pub mod clippy;
pub mod kconfig;
pub mod manifest;
pub mod packaging;
pub mod series;
pub mod stackcheck;
pub mod testfw;
pub mod uboot;

pub use board::{Arch, Board, Flavour};

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(data))
}

/// Lower-case hex SHA-256 of a file, streamed.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
