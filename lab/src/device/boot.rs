//! A fresh boot: reboot the device its configured way and wait until SSH
//! answers with a new boot_id. Shared by the ramp and the capture; the
//! waiting itself is [`crate::ramp::live::wait_fresh_boot`], tested in
//! simulated time.

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{anyhow, Context};

use super::inventory::{Device, Reboot};
use super::transport::{Transport, TransportError};
use crate::ramp::live;

/// Timeout of one probe while waiting for a reboot.
pub const PROBE_TIMEOUT_S: u64 = 4;
/// After starting a reboot: the first look at the device, then the retries.
const BOOT_SETTLE_S: f64 = 1.5;
const BOOT_RETRY_S: f64 = 0.5;

/// Why [`fresh_boot`] failed.
#[derive(Debug)]
pub enum FreshBootError {
    /// Interrupted from outside (Ctrl-C) while waiting.
    Interrupted,
    /// The device did not come back with a new boot_id within its boot timeout.
    Lost {
        last: String,
    },
    Other(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for FreshBootError {
    fn from(e: E) -> Self {
        FreshBootError::Other(e.into())
    }
}

/// Reboots `dev` (its configured method) and waits, with a progress bar, until
/// SSH answers with a boot_id other than `old_boot_id`. Returns the session to
/// the fresh boot and the seconds waited. Shared by the ramp and the capture.
pub fn fresh_boot(
    dev: &Device,
    transport: Option<Transport>,
    old_boot_id: &str,
    what: &str,
    interrupt: Option<&AtomicBool>,
) -> std::result::Result<(Transport, f64), FreshBootError> {
    let old = old_boot_id;
    match &dev.reboot {
        Reboot::Ssh { command } => {
            let mut t = match transport {
                Some(t) => t,
                None => Transport::connect(&dev.wired)?,
            };
            let cmd = format!("(sleep 1; {command}) </dev/null >/dev/null 2>&1 &");
            let _ = t.exec(&cmd, Duration::from_secs(PROBE_TIMEOUT_S));
        }
        Reboot::Power { command } => {
            drop(transport);
            let st = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .status()
                .with_context(|| format!("running the power command {command:?}"))?;
            if !st.success() {
                return Err(anyhow!("the power command {command:?} failed ({st})").into());
            }
        }
    }
    let pb = crate::progress::seconds_bar(
        dev.boot_timeout_s,
        format!("{what}: waiting for a fresh boot of {}", dev.name),
    );
    // `live::wait_fresh_boot` decides (simulated-time tests there); each
    // probe is a new SSH session, and the one that sees the new boot is kept.
    let probe_timeout = Duration::from_secs(PROBE_TIMEOUT_S);
    let mut fresh: Option<Transport> = None;
    let r = live::wait_fresh_boot(
        &mut live::SystemClock::default(),
        || match Transport::connect_with_timeout(&dev.wired, probe_timeout) {
            Ok(mut t) => match t.exec("cat /proc/sys/kernel/random/boot_id", probe_timeout) {
                Ok(o) => {
                    let id = if o.status == 0 {
                        o.stdout_str().trim().to_string()
                    } else {
                        String::new()
                    };
                    if !id.is_empty() && id != old {
                        fresh = Some(t);
                    }
                    live::BootProbe::Booted(id)
                }
                Err(e) => live::BootProbe::NoAnswer(e.to_string()),
            },
            Err(
                e @ (TransportError::HostKeyMismatch { .. }
                | TransportError::HostKeyUnknown { .. }
                | TransportError::Auth { .. }),
            ) => live::BootProbe::Fatal(e.into()),
            Err(e) => live::BootProbe::NoAnswer(e.to_string()),
        },
        |waited_s| pb.set_position(waited_s as u64),
        old,
        dev.boot_timeout_s as f64,
        BOOT_SETTLE_S,
        BOOT_RETRY_S,
        interrupt,
    );
    pb.finish_and_clear();
    match r {
        Ok((_, waited_s)) => Ok((
            fresh.ok_or_else(|| anyhow!("the fresh boot's session was not kept"))?,
            waited_s,
        )),
        Err(live::BootWaitError::Lost { last }) => Err(FreshBootError::Lost { last }),
        Err(live::BootWaitError::Fatal(e)) => Err(FreshBootError::Other(e)),
        Err(live::BootWaitError::Interrupted) => Err(FreshBootError::Interrupted),
    }
}
