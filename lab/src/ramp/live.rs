//! The live parts of a rep, behind seams so they run in simulated time:
//! the traffic phase (sender + device polled over the wired link, wedge
//! detection) and the wait for a fresh boot.
//!
//! [`drive_traffic`] and [`wait_fresh_boot`] know nothing of SSH, threads
//! or wall-clock time: the ramp passes the lab transport, a sender thread
//! and [`SystemClock`]; the tests pass a scripted device, a simulated
//! sender and a clock that only moves when slept on, so a listener that
//! dies, a link that stalls, an SSH session that drops and a device that
//! never comes back are each checked in milliseconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};

pub use crate::clock::{Clock, SystemClock};
use crate::device::sender::{self, SendControl, SendParams, SendRecord};
use crate::ramp::analysis::{self, MonitorSample};

/// The device's wired link as the traffic phase uses it.
pub trait PollLink {
    /// Runs one command; an `Err` means the session is gone (the ramp
    /// reconnects on its next command).
    fn poll(&mut self, cmd: &str, timeout: Duration) -> Result<String>;
}

/// The rate-capped sender of one rep.
pub trait Traffic {
    fn start(&mut self, p: SendParams);
    fn finished(&self) -> bool;
    /// Ask it to stop early (a wedge); it records the reason.
    fn request_stop(&self, reason: &str);
    /// Waits for it and returns what it did.
    fn join(&mut self) -> Result<SendRecord>;
}

/// What the traffic phase reports while it runs (the CLI draws a bar).
pub trait TrafficObserver {
    fn sending(&mut self, _t_s: f64, _rx_bytes: Option<u64>) {}
}

/// No progress display.
pub struct Quiet;
impl TrafficObserver for Quiet {}

/// What came of the traffic phase.
pub struct TrafficOutcome {
    pub sender: SendRecord,
    pub monitor: Vec<MonitorSample>,
    /// Why the rep was stopped early, if it was.
    pub wedge: Option<String>,
    /// Stopped by an interrupt (the rep is not a measurement).
    pub interrupted: bool,
}

/// The device poll of the traffic phase: the data interface's `rx_bytes`
/// and whether the rep's listener still runs.
pub fn poll_cmd(iface: &str) -> String {
    format!(
        "cat /sys/class/net/{iface}/statistics/rx_bytes; pidof nc >/dev/null && echo alive || echo gone"
    )
}

fn parse_poll(t_s: f64, out: &str) -> MonitorSample {
    let mut l = out.lines();
    MonitorSample {
        t_s,
        rx_bytes: l.next().and_then(|x| x.trim().parse().ok()),
        listener_alive: l.next().map(|x| x.trim() == "alive"),
    }
}

/// How the traffic phase polls: once per `interval_s`, checking for the
/// sender's end (and an interrupt) every `nap_s`.
#[derive(Clone, Copy, Debug)]
pub struct Polling<'a> {
    pub interval_s: f64,
    pub nap_s: f64,
    /// Set from outside (the CLI's Ctrl-C): stop the sender and return.
    pub interrupt: Option<&'a AtomicBool>,
}

fn interrupted(flag: Option<&AtomicBool>) -> bool {
    flag.is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Runs the sender and polls the device once per interval until the sender
/// ends; stops it at the first wedge ([`analysis::wedge_reason`]).
pub fn drive_traffic(
    link: &mut impl PollLink,
    clock: &mut impl Clock,
    traffic: &mut impl Traffic,
    observer: &mut impl TrafficObserver,
    params: SendParams,
    iface: &str,
    polling: Polling,
) -> Result<TrafficOutcome> {
    let Polling {
        interval_s,
        nap_s,
        interrupt,
    } = polling;
    let stall_s = params.stall_timeout_s;
    let poll = poll_cmd(iface);
    traffic.start(params);
    let t0 = clock.now_s();
    let mut monitor: Vec<MonitorSample> = Vec::new();
    let mut wedge: Option<String> = None;
    let mut next_poll = interval_s;
    let mut was_interrupted = false;
    while !traffic.finished() {
        // Short naps: notice the sender's end at once, poll once per interval.
        clock.sleep_s(nap_s);
        if interrupted(interrupt) {
            traffic.request_stop("interrupted");
            was_interrupted = true;
            break;
        }
        if traffic.finished() {
            break;
        }
        let t_s = clock.now_s() - t0;
        if t_s < next_poll {
            continue;
        }
        next_poll += interval_s;
        let s = match link.poll(&poll, Duration::from_secs(5)) {
            Ok(out) => parse_poll(t_s, &out),
            // The session dropped: this poll saw nothing (the next one
            // reconnects); not a wedge by itself.
            Err(_) => MonitorSample {
                t_s,
                rx_bytes: None,
                listener_alive: None,
            },
        };
        // The listener exits when the sender closes the connection at the
        // end: a "gone" answer that arrives after the sender has finished
        // is that normal end racing the poll, not a wedge.
        if s.listener_alive == Some(false) && traffic.finished() {
            break;
        }
        observer.sending(t_s, s.rx_bytes);
        monitor.push(s);
        if wedge.is_none() {
            if let Some(w) = analysis::wedge_reason(&monitor, stall_s) {
                traffic.request_stop(&format!("wedge: {w}"));
                wedge = Some(w);
            }
        }
    }
    Ok(TrafficOutcome {
        sender: traffic.join()?,
        monitor,
        wedge,
        interrupted: was_interrupted,
    })
}

/// The real sender: [`sender::send`] on a thread.
#[derive(Default)]
pub struct SenderThread {
    ctl: Arc<SendControl>,
    handle: Option<std::thread::JoinHandle<SendRecord>>,
}

impl Traffic for SenderThread {
    fn start(&mut self, p: SendParams) {
        let ctl = self.ctl.clone();
        self.handle = Some(std::thread::spawn(move || sender::send(&p, &ctl)));
    }
    fn finished(&self) -> bool {
        self.handle.as_ref().is_none_or(|h| h.is_finished())
    }
    fn request_stop(&self, reason: &str) {
        self.ctl.request_stop(reason);
    }
    fn join(&mut self) -> Result<SendRecord> {
        self.handle
            .take()
            .ok_or_else(|| anyhow!("the sender was never started"))?
            .join()
            .map_err(|_| anyhow!("sender thread panicked"))
    }
}

/// One look at the device after a reboot was started.
pub enum BootProbe {
    /// It answered with this boot_id.
    Booted(String),
    /// No answer (yet): why, for the error if it never comes.
    NoAnswer(String),
    /// An answer that will not change by waiting (host key, auth).
    Fatal(anyhow::Error),
}

/// Why [`wait_fresh_boot`] gave up.
#[derive(Debug)]
pub enum BootWaitError {
    /// No new boot_id within the timeout; the last thing seen.
    Lost {
        last: String,
    },
    Fatal(anyhow::Error),
    /// Interrupted from outside while waiting.
    Interrupted,
}

/// Waits until `probe` sees a boot_id other than `old` (after a first
/// `settle_s`, then every `retry_s`), at most `timeout_s`. Returns the new
/// boot_id and the seconds waited.
#[allow(clippy::too_many_arguments)]
pub fn wait_fresh_boot(
    clock: &mut impl Clock,
    mut probe: impl FnMut() -> BootProbe,
    mut observer: impl FnMut(f64),
    old: &str,
    timeout_s: f64,
    settle_s: f64,
    retry_s: f64,
    interrupt: Option<&AtomicBool>,
) -> std::result::Result<(String, f64), BootWaitError> {
    let t0 = clock.now_s();
    clock.sleep_s(settle_s);
    let mut last = String::from("no answer yet");
    loop {
        if interrupted(interrupt) {
            return Err(BootWaitError::Interrupted);
        }
        let waited = clock.now_s() - t0;
        observer(waited);
        if waited > timeout_s {
            return Err(BootWaitError::Lost { last });
        }
        match probe() {
            BootProbe::Booted(id) if !id.is_empty() && id != old => {
                return Ok((id, clock.now_s() - t0));
            }
            BootProbe::Booted(_) => last = "still the old boot (reboot not started yet)".into(),
            BootProbe::NoAnswer(why) => last = why,
            BootProbe::Fatal(e) => return Err(BootWaitError::Fatal(e)),
        }
        clock.sleep_s(retry_s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::sender::SendOutcome;
    use std::cell::Cell;
    use std::rc::Rc;

    /// Time that moves only when slept on, shared by the device, the sender
    /// and the loop.
    #[derive(Clone, Default)]
    struct SimClock(Rc<Cell<f64>>);
    impl Clock for SimClock {
        fn now_s(&self) -> f64 {
            self.0.get()
        }
        fn sleep_s(&mut self, s: f64) {
            self.0.set(self.0.get() + s);
        }
    }

    /// A device whose data link carries `rate` bytes/s until `stall_at_s`,
    /// whose listener dies at `listener_dies_at_s`, and whose SSH session
    /// fails between `ssh_down` seconds.
    struct SimDevice {
        clock: SimClock,
        rate: f64,
        stall_at_s: f64,
        listener_dies_at_s: f64,
        ssh_down: (f64, f64),
        polls: u32,
    }

    impl SimDevice {
        fn healthy(clock: &SimClock) -> Self {
            SimDevice {
                clock: clock.clone(),
                rate: 1000.0,
                stall_at_s: f64::INFINITY,
                listener_dies_at_s: f64::INFINITY,
                ssh_down: (f64::INFINITY, f64::INFINITY),
                polls: 0,
            }
        }
        fn rx_bytes(&self) -> u64 {
            (self.rate * self.clock.now_s().min(self.stall_at_s)) as u64
        }
    }

    impl PollLink for SimDevice {
        fn poll(&mut self, cmd: &str, _: Duration) -> Result<String> {
            assert!(
                cmd.contains("/sys/class/net/wlan0/statistics/rx_bytes"),
                "{cmd}"
            );
            self.polls += 1;
            let t = self.clock.now_s();
            if t >= self.ssh_down.0 && t < self.ssh_down.1 {
                return Err(anyhow!("ssh: session dropped"));
            }
            let alive = if t < self.listener_dies_at_s {
                "alive"
            } else {
                "gone"
            };
            Ok(format!("{}\n{alive}\n", self.rx_bytes()))
        }
    }

    /// A sender that sends for its duration in simulated time, or until
    /// told to stop.
    struct SimSender {
        clock: SimClock,
        start_s: f64,
        p: Option<SendParams>,
        stop: Cell<Option<(f64, String)>>,
    }

    impl SimSender {
        fn new(clock: &SimClock) -> Self {
            SimSender {
                clock: clock.clone(),
                start_s: 0.0,
                p: None,
                stop: Cell::new(None),
            }
        }
        fn end_s(&self) -> f64 {
            let p = self.p.as_ref().expect("started");
            let stop = self.stop.take();
            let end = stop
                .as_ref()
                .map_or(self.start_s + p.duration_s, |(t, _)| *t);
            self.stop.set(stop);
            end
        }
    }

    impl Traffic for SimSender {
        fn start(&mut self, p: SendParams) {
            self.start_s = self.clock.now_s();
            self.p = Some(p);
        }
        fn finished(&self) -> bool {
            self.clock.now_s() >= self.end_s()
        }
        fn request_stop(&self, reason: &str) {
            self.stop
                .set(Some((self.clock.now_s(), reason.to_string())));
        }
        fn join(&mut self) -> Result<SendRecord> {
            let end = self.end_s();
            let p = self.p.take().expect("started");
            let elapsed_s = end - self.start_s;
            let outcome = match self.stop.take() {
                Some((at_s, reason)) => SendOutcome::Stopped {
                    at_s: at_s - self.start_s,
                    reason,
                },
                None => SendOutcome::Completed,
            };
            Ok(SendRecord {
                target: p.target,
                rate_bytes_per_s: p.rate_bytes_per_s,
                duration_s: p.duration_s,
                bytes_sent: (p.rate_bytes_per_s * elapsed_s) as u64,
                elapsed_s,
                per_second: Vec::new(),
                outcome,
            })
        }
    }

    fn params(duration_s: f64) -> SendParams {
        SendParams {
            target: "127.0.0.1:5001".into(),
            rate_bytes_per_s: 1000.0,
            duration_s,
            stall_timeout_s: 10.0,
        }
    }

    fn run(dev: &mut SimDevice, clock: &SimClock, duration_s: f64) -> TrafficOutcome {
        let mut c = clock.clone();
        let mut s = SimSender::new(clock);
        let polling = Polling {
            interval_s: 1.0,
            nap_s: 0.05,
            interrupt: None,
        };
        drive_traffic(
            dev,
            &mut c,
            &mut s,
            &mut Quiet,
            params(duration_s),
            "wlan0",
            polling,
        )
        .unwrap()
    }

    #[test]
    fn a_healthy_rep_polls_once_a_second_and_completes() {
        let clock = SimClock::default();
        let mut dev = SimDevice::healthy(&clock);
        let o = run(&mut dev, &clock, 30.0);
        assert!(o.wedge.is_none());
        assert!(matches!(o.sender.outcome, SendOutcome::Completed));
        assert!((29..=30).contains(&o.monitor.len()), "{}", o.monitor.len());
        assert!(o.monitor.iter().all(|s| s.listener_alive == Some(true)));
    }

    #[test]
    fn a_listener_that_dies_wedges_the_rep_and_stops_the_sender() {
        let clock = SimClock::default();
        let mut dev = SimDevice {
            listener_dies_at_s: 12.0,
            ..SimDevice::healthy(&clock)
        };
        let o = run(&mut dev, &clock, 60.0);
        assert_eq!(o.wedge.as_deref(), Some("listener gone at 12.0 s"));
        match o.sender.outcome {
            SendOutcome::Stopped { at_s, ref reason } => {
                assert!((12.0..13.0).contains(&at_s), "{at_s}");
                assert!(reason.starts_with("wedge: listener gone"), "{reason}");
            }
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_link_that_stalls_wedges_after_the_stall_timeout() {
        let clock = SimClock::default();
        let mut dev = SimDevice {
            stall_at_s: 20.0,
            ..SimDevice::healthy(&clock)
        };
        let o = run(&mut dev, &clock, 120.0);
        let w = o.wedge.expect("a stall is a wedge");
        assert!(w.starts_with("no bytes received for 10 s (from 2"), "{w}");
        assert!(
            o.sender.elapsed_s < 32.0,
            "stopped early: {}",
            o.sender.elapsed_s
        );
    }

    #[test]
    fn an_ssh_drop_is_recorded_as_unknown_samples_not_a_wedge() {
        let clock = SimClock::default();
        let mut dev = SimDevice {
            ssh_down: (5.0, 8.0),
            ..SimDevice::healthy(&clock)
        };
        let o = run(&mut dev, &clock, 20.0);
        assert!(o.wedge.is_none(), "{:?}", o.wedge);
        let unknown = o.monitor.iter().filter(|s| s.rx_bytes.is_none()).count();
        assert_eq!(unknown, 3, "polls at 5, 6, 7 s");
        assert!(matches!(o.sender.outcome, SendOutcome::Completed));
    }

    /// Ctrl-C mid-rep: the sender is stopped at once and the loop returns,
    /// marked interrupted (the ramp keeps the rep out of the results).
    #[test]
    fn an_interrupt_stops_the_sender_and_returns() {
        struct SetAt<'a>(&'a AtomicBool);
        impl TrafficObserver for SetAt<'_> {
            fn sending(&mut self, t_s: f64, _: Option<u64>) {
                if t_s >= 7.0 {
                    self.0.store(true, Ordering::SeqCst);
                }
            }
        }
        let clock = SimClock::default();
        let mut dev = SimDevice::healthy(&clock);
        let flag = AtomicBool::new(false);
        let mut c = clock.clone();
        let mut s = SimSender::new(&clock);
        let polling = Polling {
            interval_s: 1.0,
            nap_s: 0.05,
            interrupt: Some(&flag),
        };
        let o = drive_traffic(
            &mut dev,
            &mut c,
            &mut s,
            &mut SetAt(&flag),
            params(180.0),
            "wlan0",
            polling,
        )
        .unwrap();
        assert!(o.interrupted);
        assert!(o.wedge.is_none());
        assert!(clock.now_s() < 7.2, "{}", clock.now_s());
        assert!(
            matches!(o.sender.outcome, SendOutcome::Stopped { ref reason, .. } if reason == "interrupted"),
            "{:?}",
            o.sender.outcome
        );
        let mut clock = SimClock::default();
        let r = wait_fresh_boot(
            &mut clock,
            || BootProbe::NoAnswer("x".into()),
            |_| {},
            "old",
            90.0,
            1.5,
            0.5,
            Some(&flag),
        );
        assert!(matches!(r, Err(BootWaitError::Interrupted)));
    }

    #[test]
    fn a_device_that_never_comes_back_is_lost_at_its_timeout() {
        let mut clock = SimClock::default();
        let c2 = clock.clone();
        let r = wait_fresh_boot(
            &mut clock,
            || BootProbe::NoAnswer(format!("connect refused at {:.1} s", c2.now_s())),
            |_| {},
            "old-boot",
            90.0,
            1.5,
            0.5,
            None,
        );
        match r {
            Err(BootWaitError::Lost { last }) => {
                assert!(last.starts_with("connect refused at 9"), "{last}")
            }
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!((90.0..91.5).contains(&clock.now_s()), "{}", clock.now_s());
    }

    #[test]
    fn a_fresh_boot_is_a_new_boot_id_not_the_old_one_answering() {
        let mut clock = SimClock::default();
        let c2 = clock.clone();
        let probe = || {
            let t = c2.now_s();
            if t < 3.0 {
                BootProbe::Booted("old-boot".into())
            } else if t < 20.0 {
                BootProbe::NoAnswer("timeout".into())
            } else {
                BootProbe::Booted("new-boot".into())
            }
        };
        let (id, waited) =
            wait_fresh_boot(&mut clock, probe, |_| {}, "old-boot", 90.0, 1.5, 0.5, None).unwrap();
        assert_eq!(id, "new-boot");
        assert!((20.0..20.6).contains(&waited), "{waited}");
        let mut clock = SimClock::default();
        let r = wait_fresh_boot(
            &mut clock,
            || BootProbe::Fatal(anyhow!("host key changed")),
            |_| {},
            "old",
            90.0,
            1.5,
            0.5,
            None,
        );
        assert!(matches!(r, Err(BootWaitError::Fatal(_))));
        assert!(clock.now_s() < 2.0, "no waiting on a fatal answer");
    }
}
