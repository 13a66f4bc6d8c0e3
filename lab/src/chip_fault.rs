//! Faults injected into the chip model of a virtual device with the
//! simulated SDIO host (`--chip-fault`): validated here against the model's
//! own names ([`bes2600_sim::chip::FAULT_NAMES`]), then written to the
//! simulated host's debugfs `besser_sdio_sim/fault` right after a rep's
//! listener starts. The command prints the chip model's counters after the
//! write, which the ramp keeps as `rep-N/fault.txt`.

use anyhow::{bail, Result};
use bes2600_sim::chip::{parse_fault, FaultSpecError, FAULT_NAMES};

/// The simulated host's debugfs directory on the device.
pub const SIM_DEBUGFS: &str = "/sys/kernel/debug/besser_sdio_sim";

/// The device command that applies `specs` in order, or a clear error for
/// the first spec the model would refuse.
pub fn chip_fault_cmd(specs: &[String]) -> Result<String> {
    if specs.is_empty() {
        bail!("no chip fault given");
    }
    let mut cmd = format!(
        "[ -e {SIM_DEBUGFS} ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null; \
         [ -e {SIM_DEBUGFS}/fault ] || {{ echo 'no simulated chip on this device ({SIM_DEBUGFS}/fault)' >&2; exit 1; }}; "
    );
    for s in specs {
        let (name, v) = match parse_fault(s) {
            Ok(x) => x,
            Err(e) => bail!(
                "--chip-fault {s:?}: {}; expected `NAME VALUE` with NAME one of {}",
                match e {
                    FaultSpecError::Shape => "not `NAME VALUE`",
                    FaultSpecError::UnknownName => "unknown fault",
                    FaultSpecError::Value => "the value is not a whole number in range",
                },
                FAULT_NAMES.join(", ")
            ),
        };
        // Only names from the model's list and digits reach the shell.
        cmd.push_str(&format!("echo '{name} {v}' > {SIM_DEBUGFS}/fault && "));
    }
    cmd.push_str(&format!("cat {SIM_DEBUGFS}/chip"));
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_become_debugfs_writes_and_bad_ones_are_refused_naming_the_choices() {
        let c = chip_fault_cmd(&["ctrl_crc_every 20".into(), " exception_in_ms  3000 ".into()])
            .unwrap();
        assert!(c.contains("echo 'ctrl_crc_every 20' > /sys/kernel/debug/besser_sdio_sim/fault && echo 'exception_in_ms 3000'"));
        assert!(c.ends_with("cat /sys/kernel/debug/besser_sdio_sim/chip"));
        let e = chip_fault_cmd(&["rm -rf 1".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not `NAME VALUE`") && e.contains("drop_confirm_every"),
            "{e}"
        );
        let e = chip_fault_cmd(&["crc;reboot 1".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown fault"), "{e}");
        assert!(chip_fault_cmd(&["ctrl_crc_every 1e3".into()]).is_err());
        assert!(chip_fault_cmd(&[]).is_err());
    }
}
