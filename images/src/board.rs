//! Boards and flavours: the one table that says what each image is made of.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// CPU architecture of a board, as the manifest and the lab name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The kernel's `ARCH=` value.
    pub fn kernel_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// The name used in the manifest (`uname -m`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// `uname -m`, Debian's or the kernel's name of an architecture.
    pub fn parse(s: &str) -> Result<Arch, String> {
        match s {
            "x86_64" | "amd64" => Ok(Arch::X86_64),
            "aarch64" | "arm64" => Ok(Arch::Aarch64),
            _ => Err(format!(
                "unknown architecture {s:?} (expected x86_64 or aarch64)"
            )),
        }
    }
}

/// A board besser builds kernels for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Board {
    /// The virtual lab device (QEMU, TCG).
    QemuX86_64,
    /// QEMU `virt`, arm64: the same SoC architecture as the PineTab2.
    QemuArm64,
    /// Pine64 PineTab2 (Rockchip RK3566); built, not booted in tests.
    Pinetab2,
}

/// The build variant of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flavour {
    /// What users run.
    Release,
    /// Lean lockdep kernel (`PROVE_LOCKING` and friends).
    ProveLocking,
}

/// Everything about a board the build needs, in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardSpec {
    pub board: Board,
    pub arch: Arch,
    /// Kconfig fragments after `common.config`, relative to `kernel-patches/config/`.
    pub fragments: &'static [&'static str],
    /// Make targets that produce the kernel image (and dtbs where there are any).
    pub make_targets: &'static [&'static str],
    /// The bootable kernel image, relative to the build tree.
    pub kernel_image: &'static str,
    /// Device trees shipped with the image, relative to `arch/<arch>/boot/dts/`.
    pub dtbs: &'static [&'static str],
    /// Whether `--boot-test` boots it (in QEMU); real boards are built only.
    pub qemu_bootable: bool,
    /// A pinned upstream tarball to build from instead of Debian's
    /// `linux-source-6.12` (`None`: Debian's). Fetched into the cache only
    /// when set, and refused unless its sha256 is the pinned one.
    pub source: Option<SourcePin>,
    /// Boards booted by U-Boot get the A/B boot script and its
    /// environment defaults in their image directory ([`crate::uboot`]).
    pub uboot: Option<UBoot>,
}

/// Where a board's U-Boot finds the A/B slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UBoot {
    /// `interface dev:part` of the boot partition, as U-Boot's `load` takes it.
    pub boot_dev: &'static str,
    /// The device tree in each slot (`None`: the one the firmware passes,
    /// `${fdtcontroladdr}`, as QEMU's `virt` machine makes it).
    pub fdt: Option<&'static str>,
}

/// `source = { url, sha256 }`: where a board's kernel tarball comes from and
/// the sha256 it must have (`https://…`, `file://…` or a local path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcePin {
    pub url: &'static str,
    pub sha256: &'static str,
}

/// A fetched tarball whose sha256 is not the pinned one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url}: sha256 is {actual}, but the board pins {pinned}: refusing to build from it")]
pub struct PinMismatch {
    pub url: String,
    pub pinned: String,
    pub actual: String,
}

impl SourcePin {
    /// Checks a fetched file's sha256 (any case) against the pin.
    pub fn verify(&self, actual_sha256: &str) -> Result<(), PinMismatch> {
        if actual_sha256.eq_ignore_ascii_case(self.sha256) {
            Ok(())
        } else {
            Err(PinMismatch {
                url: self.url.to_string(),
                pinned: self.sha256.to_lowercase(),
                actual: actual_sha256.to_lowercase(),
            })
        }
    }

    /// The file name the tarball is cached under: the pin's first 16 hex
    /// digits and the URL's last path segment, so two pins never share a file.
    pub fn cache_name(&self) -> String {
        let base = self
            .url
            .rsplit('/')
            .next()
            .filter(|b| !b.is_empty())
            .unwrap_or("source.tar");
        let short: String = self.sha256.to_lowercase().chars().take(16).collect();
        format!("{short}-{base}")
    }
}

impl Board {
    pub const ALL: [Board; 3] = [Board::QemuX86_64, Board::QemuArm64, Board::Pinetab2];

    pub fn name(self) -> &'static str {
        match self {
            Board::QemuX86_64 => "qemu-x86_64",
            Board::QemuArm64 => "qemu-arm64",
            Board::Pinetab2 => "pinetab2",
        }
    }

    pub fn spec(self) -> BoardSpec {
        match self {
            Board::QemuX86_64 => BoardSpec {
                board: self,
                arch: Arch::X86_64,
                fragments: &["board/qemu-x86_64.config"],
                make_targets: &["bzImage", "modules"],
                kernel_image: "arch/x86/boot/bzImage",
                dtbs: &[],
                qemu_bootable: true,
                source: None,
                uboot: None,
            },
            Board::QemuArm64 => BoardSpec {
                board: self,
                arch: Arch::Aarch64,
                fragments: &["board/arm64.config", "board/qemu-arm64.config"],
                make_targets: &["Image", "modules"],
                kernel_image: "arch/arm64/boot/Image",
                dtbs: &[],
                qemu_bootable: true,
                source: None,
                // Debian's u-boot-qemu (qemu_arm64) on the lab's virtual
                // device: the boot partition is the first of the virtio disk.
                uboot: Some(UBoot {
                    boot_dev: "virtio 0:1",
                    fdt: None,
                }),
            },
            Board::Pinetab2 => BoardSpec {
                board: self,
                arch: Arch::Aarch64,
                fragments: &["board/arm64.config", "board/pinetab2.config"],
                make_targets: &["Image", "modules", "dtbs"],
                kernel_image: "arch/arm64/boot/Image",
                dtbs: &[
                    "rockchip/rk3566-pinetab2-v2.0.dtb",
                    "rockchip/rk3566-pinetab2-v0.1.dtb",
                ],
                qemu_bootable: false,
                source: None,
                // Mainline U-Boot (`pinetab2-rk3566_defconfig`, with the
                // fragment in `images/boot/`): eMMC is mmc 0, the boot
                // partition its first.
                uboot: Some(UBoot {
                    boot_dev: "mmc 0:1",
                    fdt: Some("rk3566-pinetab2-v2.0.dtb"),
                }),
            },
        }
    }
}

impl Flavour {
    pub const ALL: [Flavour; 2] = [Flavour::Release, Flavour::ProveLocking];

    pub fn name(self) -> &'static str {
        match self {
            Flavour::Release => "release",
            Flavour::ProveLocking => "prove-locking",
        }
    }

    /// The flavour's fragment, relative to `kernel-patches/config/`.
    pub fn fragment(self) -> String {
        format!("flavour/{}.config", self.name())
    }
}

/// The fragments of one image in merge order (later ones win), relative to
/// `kernel-patches/config/`.
pub fn fragment_order(board: Board, flavour: Flavour) -> Vec<String> {
    let mut v = vec!["common.config".to_string()];
    v.extend(board.spec().fragments.iter().map(|s| s.to_string()));
    v.push(flavour.fragment());
    v
}

/// The image's directory name, `<board>-<flavour>`.
pub fn image_name(board: Board, flavour: Flavour) -> String {
    format!("{}-{}", board.name(), flavour.name())
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{given}` (known: {known})")]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub known: String,
}

impl FromStr for Board {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Board::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| UnknownName {
                what: "board",
                given: s.to_string(),
                known: Board::ALL.map(Board::name).join(", "),
            })
    }
}

impl FromStr for Flavour {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Flavour::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownName {
                what: "flavour",
                given: s.to_string(),
                known: Flavour::ALL.map(Flavour::name).join(", "),
            })
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Flavour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_boards_build_from_debians_source() {
        for b in Board::ALL {
            assert_eq!(b.spec().source, None, "{}", b.name());
        }
    }

    #[test]
    fn a_source_pin_checks_the_sha256_and_names_its_cache_file() {
        let pin = SourcePin {
            url: "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.117.tar.xz",
            sha256: "ABCDEF0123456789ffff",
        };
        assert_eq!(pin.verify("abcdef0123456789FFFF"), Ok(()));
        let e = pin.verify("0000").unwrap_err();
        assert_eq!(
            e.to_string(),
            "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.117.tar.xz: sha256 is 0000, \
             but the board pins abcdef0123456789ffff: refusing to build from it"
        );
        assert_eq!(pin.cache_name(), "abcdef0123456789-linux-6.12.117.tar.xz");
    }

    #[test]
    fn names_round_trip() {
        for b in Board::ALL {
            assert_eq!(b.name().parse::<Board>().unwrap(), b);
        }
        for f in Flavour::ALL {
            assert_eq!(f.name().parse::<Flavour>().unwrap(), f);
        }
        let e = "pinetab3".parse::<Board>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown board `pinetab3` (known: qemu-x86_64, qemu-arm64, pinetab2)"
        );
    }

    #[test]
    fn fragment_order_is_common_board_flavour() {
        assert_eq!(
            fragment_order(Board::Pinetab2, Flavour::ProveLocking),
            [
                "common.config",
                "board/arm64.config",
                "board/pinetab2.config",
                "flavour/prove-locking.config"
            ]
        );
    }

    #[test]
    fn pinetab2_ships_both_board_revisions() {
        let s = Board::Pinetab2.spec();
        assert!(s.dtbs.iter().any(|d| d.ends_with("pinetab2-v2.0.dtb")));
        assert!(s.dtbs.iter().any(|d| d.ends_with("pinetab2-v0.1.dtb")));
        assert!(!s.qemu_bootable);
    }
}
