//! The probe traffic of a capture, through the lab's shared pieces: the
//! ramp's fresh listener (started, verified listening, drained) and the
//! rate-capped sender.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use super::live::{Prober, PushResult};
use crate::device::sender::{self, SendControl, SendOutcome, SendParams, SendRecord};
use crate::device::transport::Transport;

/// Seconds the capture waits for a probe's listener to report after the push
/// (short: the probe's figure comes from `rx_bytes`; a degraded link could
/// keep a listener busy for minutes with data buffered on the way).
pub const LISTENER_DRAIN_S: u64 = 2;

pub struct LabProber {
    /// `host:port` the sender connects to.
    pub target: String,
    pub listen_port: u16,
    pub stall_timeout_s: f64,
    push: Option<(JoinHandle<SendRecord>, Arc<SendControl>)>,
}

impl LabProber {
    pub fn new(device: &crate::device::inventory::Device, stall_timeout_s: f64) -> LabProber {
        LabProber {
            target: format!("{}:{}", device.data.connect_host, device.data.connect_port),
            listen_port: device.data.listen_port,
            stall_timeout_s,
            push: None,
        }
    }
}

impl Prober<Transport> for LabProber {
    fn start_listener(&mut self, link: &mut Transport, _index: u32) -> Result<()> {
        let cmd_timeout = Duration::from_secs(crate::ramp::CMD_TIMEOUT_S);
        link.exec_ok(
            &crate::device::commands::listener_start_cmd(self.listen_port),
            cmd_timeout,
        )?;
        // a forwarded port accepts connections even when nothing listens: check
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(crate::ramp::LISTEN_TIMEOUT_S) {
            let tcp = link.exec_ok(crate::device::commands::LISTENING_CHECK_CMD, cmd_timeout)?;
            if crate::ramp::analysis::tcp_listening(&tcp, self.listen_port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "nothing listens on port {} after {} s",
            self.listen_port,
            crate::ramp::LISTEN_TIMEOUT_S
        )
    }

    fn start_push(&mut self, len_s: f64, rate_bytes_per_s: u64) -> Result<()> {
        if self.push.is_some() {
            bail!("a push is already running");
        }
        let params = SendParams {
            target: self.target.clone(),
            rate_bytes_per_s: rate_bytes_per_s as f64,
            duration_s: len_s,
            stall_timeout_s: self.stall_timeout_s,
        };
        let ctl = Arc::new(SendControl::default());
        let ctl2 = ctl.clone();
        let h = std::thread::spawn(move || sender::send(&params, &ctl2));
        self.push = Some((h, ctl));
        Ok(())
    }

    fn poll_push(&mut self) -> Option<Result<PushResult>> {
        if !self.push.as_ref()?.0.is_finished() {
            return None;
        }
        let (h, _) = self.push.take()?;
        Some(match h.join() {
            Err(_) => Err(anyhow!("the sender thread panicked")),
            Ok(rec) => match rec.outcome {
                SendOutcome::Error { at_s, msg } if rec.bytes_sent == 0 => {
                    Err(anyhow!("sender: {msg} (at {at_s:.1} s)"))
                }
                SendOutcome::Stalled { .. } | SendOutcome::Error { .. } => Ok(PushResult {
                    bytes_sent: rec.bytes_sent,
                    elapsed_s: rec.elapsed_s,
                    stalled: true,
                }),
                _ => Ok(PushResult {
                    bytes_sent: rec.bytes_sent,
                    elapsed_s: rec.elapsed_s,
                    stalled: false,
                }),
            },
        })
    }

    fn finish_listener(&mut self, link: &mut Transport) -> Result<u64> {
        let out = link.exec_ok(
            &crate::device::commands::listener_drain_cmd(LISTENER_DRAIN_S),
            Duration::from_secs(crate::ramp::CMD_TIMEOUT_S + LISTENER_DRAIN_S),
        )?;
        out.trim()
            .parse()
            .with_context(|| format!("the listener reported {out:?}, not a byte count"))
    }
}
