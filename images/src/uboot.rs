//! The A/B boot script of U-Boot boards and the environment it expects
//! (RAUC's U-Boot convention; the host side is `besser_lab::flash`).

use crate::board::UBoot;

/// The boot script's source (U-Boot hush), compiled into `boot.scr` with
/// `mkimage -T script` when the image directory is assembled.
pub const BOOT_SCRIPT_SRC: &str = include_str!("../boot/besser-ab.cmd");
/// File names in the image directory.
pub const BOOT_SCRIPT_FILE: &str = "boot.scr";
pub const BOOT_SCRIPT_SRC_FILE: &str = "besser-ab.cmd";
pub const BOOT_ENV_FILE: &str = "uboot-env.txt";

/// Tries a slot starts with (RAUC's default).
pub const DEFAULT_TRIES: u32 = 3;

/// The environment defaults for `u`: slot A first, both slots with
/// [`DEFAULT_TRIES`], and where the slots are. `name=value` lines, the
/// input `mkenvimage` and `env import -t` read.
pub fn env_defaults(u: &UBoot) -> String {
    let mut s = format!(
        "BOOT_ORDER=A B\nBOOT_A_LEFT={DEFAULT_TRIES}\nBOOT_B_LEFT={DEFAULT_TRIES}\nbesser_boot_dev={}\n",
        u.boot_dev
    );
    if let Some(f) = u.fdt {
        s.push_str(&format!("besser_fdt={f}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Board;

    #[test]
    fn every_uboot_board_gets_defaults_the_script_reads() {
        for b in Board::ALL {
            let Some(u) = b.spec().uboot else { continue };
            let d = env_defaults(&u);
            for var in [
                "BOOT_ORDER",
                "BOOT_A_LEFT",
                "BOOT_B_LEFT",
                "besser_boot_dev",
            ] {
                assert!(d.contains(&format!("{var}=")), "{b}: {var}");
                assert!(
                    BOOT_SCRIPT_SRC.contains(&format!("${{{var}}}")),
                    "the script reads {var}"
                );
            }
            assert_eq!(d.contains("besser_fdt="), u.fdt.is_some(), "{b}");
        }
    }

    #[test]
    fn the_script_puts_the_slot_on_the_command_line_as_rauc_does() {
        assert!(BOOT_SCRIPT_SRC.contains("rauc.slot=${besser_slot}"));
        assert!(BOOT_SCRIPT_SRC.contains("setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1"));
        assert!(BOOT_SCRIPT_SRC.contains("setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1"));
    }
}
