//! The live capture loop against a scripted device in simulated time: streams
//! saved raw, probes on schedule with markers, a dropped connection recorded as
//! a gap and ridden out, and the report placing the injected failure and
//! collapse at the right uptimes. (The same loop runs against the virtual lab
//! device in `cargo xtask test`.)

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use anyhow::{bail, Result};
use besser_lab::capture::analysis::DropVerdict;
use besser_lab::capture::live::{self, DeviceLink, Prober, PushResult};
use besser_lab::capture::{self, layout, CaptureConfig, RunInfo};
use besser_lab::clock::Clock;

const MIB: f64 = 1048576.0;
/// The simulated device booted this many seconds before the capture starts.
const BOOT_LEAD_S: f64 = 8.0;
const FIRST_FAIL_S: f64 = 50.0;
const FAIL_EVERY_S: f64 = 30.0;
const COLLAPSE_AT_S: f64 = 70.0;
const DROP_AT_S: f64 = 33.0;

#[derive(Default)]
struct Dev {
    kmsg: Vec<(f64, String)>,
    trace: Vec<(f64, String)>,
    rx_bytes: u64,
    next_fail: f64,
    dropped: bool,
    reconnects: u32,
    listener_bytes: Option<u64>,
}

#[derive(Clone)]
struct Sim {
    now: Rc<Cell<f64>>,
    dev: Rc<RefCell<Dev>>,
}

impl Sim {
    fn uptime(&self) -> f64 {
        self.now.get() + BOOT_LEAD_S
    }
    /// Advances the device's own activity to the current time.
    fn tick(&self) {
        let up = self.uptime();
        let mut d = self.dev.borrow_mut();
        while d.next_fail <= up {
            let t = d.next_fail;
            d.kmsg.push((
                t,
                "bes2600_wlan: wsm_generic_confirm failed for request 0x0007.".into(),
            ));
            d.kmsg
                .push((t + 0.001, "ieee80211 phy0: [SCAN] Scan failed (-22)".into()));
            d.next_fail += FAIL_EVERY_S;
        }
    }
}

struct SimClock(Sim);
impl Clock for SimClock {
    fn now_s(&self) -> f64 {
        self.0.now.get()
    }
    fn sleep_s(&mut self, s: f64) {
        self.0.now.set(self.0.now.get() + s.max(0.001));
    }
}

enum Kind {
    Kmsg,
    Trace,
    Counters { every: f64, next: f64 },
}
struct SimStream {
    kind: Kind,
    pos: usize,
}

struct SimLink(Sim);
impl DeviceLink for SimLink {
    type Stream = SimStream;
    fn exec(&mut self, cmd: &str, _t: Duration) -> Result<String> {
        self.0.tick();
        let up = self.0.uptime();
        let mut d = self.0.dev.borrow_mut();
        if d.dropped {
            bail!("connection reset");
        }
        if cmd == "true" || cmd.starts_with("for f in /run/besser/capture-*.pid") {
            return Ok(String::new());
        }
        if cmd == "cat /proc/uptime" {
            return Ok(format!("{up:.2} {:.2}\n", up * 0.9));
        }
        if cmd.contains("tracing_on; echo > $T/trace") {
            let mut out = String::new();
            for e in cmd.split("then echo 1 > $T/events/").skip(1) {
                let e = e.split('/').take(2).collect::<Vec<_>>().join("/");
                if e.starts_with("workqueue/") {
                    out += &format!("enabled {e}\n");
                } else {
                    out += &format!("missing {e}\n");
                }
            }
            return Ok(out + &format!("iw no\nuptime {up:.2}\n"));
        }
        if let Some(m) = cmd
            .strip_prefix("echo '")
            .and_then(|c| c.strip_suffix("' > /dev/kmsg"))
        {
            d.kmsg.push((up, m.to_string()));
            return Ok(String::new());
        }
        if cmd == "cat /proc/uptime /sys/class/net/wlan0/statistics/rx_bytes" {
            return Ok(format!("{up:.2} {:.2}\n{}\n", up * 0.9, d.rx_bytes));
        }
        if cmd.ends_with("echo 0 > $T/tracing_on") && cmd.starts_with("for f in") {
            return Ok(String::new());
        }
        bail!("scripted device: unexpected command {cmd:?}")
    }
    fn open_stream(&mut self, cmd: &str) -> Result<SimStream> {
        if self.0.dev.borrow().dropped {
            bail!("connection reset");
        }
        let cmd = cmd
            .split_once(".pid; ")
            .map(|(_, body)| body)
            .expect("streams record their pid");
        let kind = if cmd == "exec cat /dev/kmsg" {
            Kind::Kmsg
        } else if cmd.ends_with("exec cat $T/trace_pipe") {
            Kind::Trace
        } else if let Some(rest) = cmd.strip_prefix("while :; do ") {
            assert!(
                rest.contains("/sys/class/net/wlan0/statistics/rx_bytes"),
                "{cmd}"
            );
            let every: f64 = rest
                .rsplit("sleep ")
                .next()
                .unwrap()
                .trim_end_matches("; done")
                .parse()
                .unwrap();
            Kind::Counters {
                every,
                next: self.0.uptime(),
            }
        } else {
            bail!("scripted device: unexpected stream {cmd:?}")
        };
        // trace_pipe is consumed: a new reader continues where the last stopped
        let pos = match kind {
            Kind::Trace => usize::MAX,
            _ => 0,
        };
        Ok(SimStream { kind, pos })
    }
    fn poll_stream(&mut self, s: &mut SimStream, out: &mut Vec<u8>) -> Result<usize> {
        self.0.tick();
        let up = self.0.uptime();
        let mut d = self.0.dev.borrow_mut();
        if !d.dropped && up >= DROP_AT_S && d.reconnects == 0 {
            d.dropped = true;
        }
        if d.dropped {
            bail!("connection reset by peer");
        }
        let before = out.len();
        match &mut s.kind {
            Kind::Kmsg => {
                d.kmsg.sort_by(|a, b| a.0.total_cmp(&b.0));
                while s.pos < d.kmsg.len() && d.kmsg[s.pos].0 <= up {
                    let (t, m) = &d.kmsg[s.pos];
                    out.extend(format!("6,{},{},-;{m}\n", s.pos + 1, (t * 1e6) as u64).bytes());
                    s.pos += 1;
                }
            }
            Kind::Trace => {
                let n = d.trace.len();
                for (t, e) in d.trace.drain(..n) {
                    out.extend(format!("  kworker/0:1-12 [000] d..1. {t:.6}: {e}\n").bytes());
                }
            }
            Kind::Counters { every, next } => {
                while *next <= up {
                    out.extend(
                        format!(
                            "snap uptime={:.2} epoch={} rx_bytes={} rx_packets={}\n",
                            *next,
                            1_700_000_000 + *next as u64,
                            d.rx_bytes,
                            d.rx_bytes / 1500
                        )
                        .bytes(),
                    );
                    *next += *every;
                }
            }
        }
        Ok(out.len() - before)
    }
    fn stream_ended(&self, _s: &SimStream) -> bool {
        false
    }
    fn close_stream(&mut self, _s: SimStream) {}
    fn reconnect(&mut self) -> Result<()> {
        let mut d = self.0.dev.borrow_mut();
        d.reconnects += 1;
        if d.reconnects < 3 {
            bail!("connection refused"); // the device takes a few attempts
        }
        d.dropped = false;
        Ok(())
    }
}

struct SimProber {
    sim: Sim,
    push: Option<(f64, f64, u64)>, // start, len, rate
    last: f64,
    listening: bool,
}
impl Prober<SimLink> for SimProber {
    fn start_listener(&mut self, _l: &mut SimLink, _i: u32) -> Result<()> {
        self.listening = true;
        self.sim.dev.borrow_mut().listener_bytes = Some(0);
        Ok(())
    }
    fn start_push(&mut self, len_s: f64, rate: u64) -> Result<()> {
        self.push = Some((self.sim.uptime(), len_s, rate));
        self.last = self.sim.uptime();
        Ok(())
    }
    fn poll_push(&mut self) -> Option<Result<PushResult>> {
        let (start, len, rate) = self.push?;
        let up = self.sim.uptime().min(start + len);
        // the link carries 2 MiB/s until the collapse, then ~200 B/s
        let link = if up < COLLAPSE_AT_S { 2.0 * MIB } else { 200.0 };
        let per_step = (link.min(rate as f64) * (up - self.last)) as u64;
        self.last = up;
        {
            let mut d = self.sim.dev.borrow_mut();
            d.rx_bytes += per_step;
            *d.listener_bytes.as_mut().unwrap() += per_step;
            d.trace.push((
                up,
                "workqueue_execute_start: work struct 00000000a1b2c3d4: function bes2600_bh_work"
                    .into(),
            ));
        }
        if up - start >= len {
            self.push = None;
            let got = self.sim.dev.borrow().listener_bytes.unwrap();
            return Some(Ok(PushResult {
                bytes_sent: got + 4096,
                elapsed_s: len,
                stalled: false,
            }));
        }
        None
    }
    fn finish_listener(&mut self, _l: &mut SimLink) -> Result<u64> {
        self.listening = false;
        Ok(self.sim.dev.borrow_mut().listener_bytes.take().unwrap_or(0))
    }
}

#[test]
fn compressed_capture_places_failure_and_collapse() {
    let sim = Sim {
        now: Rc::new(Cell::new(0.0)),
        dev: Rc::new(RefCell::new(Dev {
            next_fail: FIRST_FAIL_S,
            ..Dev::default()
        })),
    };
    sim.dev
        .borrow_mut()
        .kmsg
        .push((0.0, "Linux version 6.1.0 (sim)".into()));
    let dir = std::env::temp_dir().join(format!("besser-capture-live-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let run = RunInfo {
        kind: "capture".into(),
        label: "sim".into(),
        device: "sim".into(),
        started_utc: "2026-01-01T00:00:00Z".into(),
        boot_id: "00000000-0000-4000-8000-000000000000".into(),
        kernel_release: "sim".into(),
        config: CaptureConfig {
            duration_s: 120.0,
            probes_s: vec![20.0, 40.0, 60.0, 80.0, 100.0],
            probe_len_s: 5.0,
            rate_bytes_per_s: 4 * 1048576,
            events: capture::DEFAULT_EVENTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            data_iface: "wlan0".into(),
            injections: vec![],
            collapse_fraction: 0.5,
            good_fraction: 0.8,
        },
    };
    live::create_run_dir(&dir, &run).unwrap();
    let mut link = SimLink(sim.clone());
    let mut prober = SimProber {
        sim: sim.clone(),
        push: None,
        listening: false,
        last: 0.0,
    };
    let mut clock = SimClock(sim.clone());
    let mut updates = 0u32;
    let params = live::CaptureParams {
        run,
        snap_every_s: 5.0,
    };
    let a = live::run(
        &dir,
        &params,
        &mut link,
        &mut prober,
        &mut clock,
        &mut |_| updates += 1,
    )
    .unwrap();
    assert!(updates > 100);

    // first failure and collapse where the device put them
    let first = a.markers.first_scan_failure_s.unwrap();
    assert!((first - FIRST_FAIL_S).abs() < 0.01, "{first}");
    assert_eq!(a.markers.first_low_probe, Some(4));
    let c = a.markers.first_low_probe_uptime_s.unwrap();
    assert!((COLLAPSE_AT_S..81.0).contains(&c), "{c}");
    assert!(
        matches!(
            a.drop,
            DropVerdict::Abrupt {
                last_good: 3,
                collapse: 4,
                ..
            }
        ),
        "{:?}",
        a.drop
    );
    for p in &a.probes[..3] {
        assert!((p.mib_s.unwrap() - 2.0).abs() < 0.1, "{p:?}");
        assert!(p.marker_start_s.is_some() && p.marker_end_s.is_some());
    }
    // the dropped connection is a recorded gap, and kmsg's replay is not doubled
    let raw = capture::load_run(&dir).unwrap();
    assert_eq!(raw.gaps.len(), 1, "{:?}", raw.gaps);
    let g = &raw.gaps[0];
    assert!(
        g.from_uptime_s >= DROP_AT_S && g.to_uptime_s.unwrap() > g.from_uptime_s,
        "{g:?}"
    );
    let kmsg = raw.kmsg.as_ref().unwrap();
    assert!(kmsg.replayed > 0);
    let starts = kmsg
        .lines
        .iter()
        .filter(|l| l.text.ends_with("probe 1 start"))
        .count();
    assert_eq!(starts, 1);
    assert_eq!(raw.arm.as_ref().unwrap().enabled_events.len(), 2);
    assert!(raw.counters.as_ref().unwrap().snaps.len() >= 20);
    assert!(a.counter_violations.is_empty());
    // the report exists and was made from the saved raw data
    let md = std::fs::read_to_string(dir.join(layout::REPORT_MD)).unwrap();
    assert!(
        md.contains("**Abrupt**: probe 3 was good, probe 4 collapsed"),
        "{md}"
    );
    assert!(
        md.contains("more were the buffer replayed by a re-opened `/dev/kmsg`"),
        "{md}"
    );
    assert!(
        md.contains("connection lost (kmsg: connection reset by peer); reconnected"),
        "{md}"
    );
    if std::env::var_os("BESSER_KEEP_TEST_RUN").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
