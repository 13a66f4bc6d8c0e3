//! Benchmarks behind `cargo xtask bench lab` (figures printed side by side,
//! measured in one run; never asserted in tests).

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::device::sender::{self, SendControl, SendParams};

/// What a loopback sink saw.
pub struct SinkResult {
    /// Bytes that arrived after the first read: N arrivals span N-1
    /// intervals, so the first read's bytes are not part of the rate (with
    /// them, a 10-s run at 16 writes/s read 0.62 % fast for any sender).
    pub bytes: u64,
    /// First to last byte, seconds.
    pub span_s: f64,
}

/// A TCP sink on 127.0.0.1 that counts bytes for at most `window_s` after the first byte.
fn sink(window_s: f64) -> Result<(u16, std::thread::JoinHandle<SinkResult>)> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    let port = l.local_addr()?.port();
    let h = std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else {
            return SinkResult {
                bytes: 0,
                span_s: 0.0,
            };
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        let mut buf = vec![0u8; 256 * 1024];
        let mut bytes = 0u64;
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        loop {
            if first.is_some_and(|f| f.elapsed().as_secs_f64() >= window_s) {
                break;
            }
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let now = Instant::now();
                    if first.is_none() {
                        first = Some(now);
                    } else {
                        bytes += n as u64;
                    }
                    last = now;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        SinkResult {
            bytes,
            span_s: first.map(|f| (last - f).as_secs_f64()).unwrap_or(0.0),
        }
    });
    Ok((port, h))
}

/// Linux reports these times in USER_HZ ticks, fixed at 100 for user space.
const USER_HZ: f64 = 100.0;

/// Fields 14.. of a `/proc/.../stat` line (after the command name), summed.
fn stat_ticks(path: &str, fields: &[usize]) -> f64 {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let Some(i) = s.rfind(')') else { return 0.0 };
    // field 3 is the first after ')'
    let v: Vec<&str> = s[i + 2..].split_whitespace().collect();
    fields
        .iter()
        .filter_map(|f| v.get(f - 3)?.parse::<f64>().ok())
        .sum::<f64>()
        / USER_HZ
}

/// CPU seconds (user + system) of the calling thread, from the scheduler's
/// nanosecond run-time account.
fn thread_cpu_s() -> f64 {
    schedstat_s("/proc/thread-self/schedstat")
}

/// First field of a `schedstat` file: nanoseconds on the CPU.
fn schedstat_s(path: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ns| ns * 1e-9)
        .unwrap_or(0.0)
}

/// CPU seconds of this process's waited-for children.
fn children_cpu_s() -> f64 {
    stat_ticks("/proc/self/stat", &[16, 17])
}

pub struct SenderBench {
    pub rate_bytes_per_s: f64,
    pub seconds: f64,
    pub ours_bytes: u64,
    pub ours_span_s: f64,
    pub ours_cpu_s: f64,
    pub pv_bytes: u64,
    pub pv_span_s: f64,
    pub pv_cpu_s: f64,
}

impl SenderBench {
    pub fn rate_error(bytes: u64, span_s: f64, rate: f64) -> f64 {
        if span_s <= 0.0 {
            return 1.0;
        }
        (bytes as f64 / span_s - rate).abs() / rate
    }
}

/// Our sender vs `pv -L <rate> /dev/zero | nc` into loopback sinks, one after the other.
pub fn sender_vs_pv(rate_bytes_per_s: f64, seconds: f64) -> Result<SenderBench> {
    // Ours
    let (port, h) = sink(seconds)?;
    let p = SendParams {
        target: format!("127.0.0.1:{port}"),
        rate_bytes_per_s,
        duration_s: seconds + 0.5,
        stall_timeout_s: 10.0,
    };
    let ctl = Arc::new(SendControl::default());
    let ours = std::thread::spawn(move || {
        let c0 = thread_cpu_s();
        let rec = sender::send(&p, &ctl);
        (rec, thread_cpu_s() - c0)
    });
    let sres = h.join().map_err(|_| anyhow::anyhow!("sink panicked"))?;
    let (_rec, ours_cpu) = ours
        .join()
        .map_err(|_| anyhow::anyhow!("sender panicked"))?;

    // pv | nc
    let (port, h) = sink(seconds)?;
    let c0 = children_cpu_s();
    let rate_arg = format!("{}", rate_bytes_per_s.round() as u64);
    let mut pv = Command::new("pv")
        .args(["-q", "-L", &rate_arg, "/dev/zero"])
        .stdout(Stdio::piped())
        .spawn()
        .context("running pv (install pv)")?;
    let mut nc = Command::new("nc")
        .args(["-N", "127.0.0.1", &port.to_string()])
        .stdin(pv.stdout.take().context("pv stdout")?)
        .stdout(Stdio::null())
        .spawn()
        .context("running nc (install netcat-openbsd)")?;
    let pres = h.join().map_err(|_| anyhow::anyhow!("sink panicked"))?;
    // Their CPU time so far, at nanosecond resolution, before they exit.
    let live = schedstat_s(&format!("/proc/{}/schedstat", pv.id()))
        + schedstat_s(&format!("/proc/{}/schedstat", nc.id()));
    let _ = pv.kill();
    let _ = nc.kill();
    let _ = pv.wait();
    let _ = nc.wait();
    // Prefer the nanosecond figure; the tick-based one if /proc had none.
    let pv_cpu = if live > 0.0 {
        live
    } else {
        children_cpu_s() - c0
    };
    if pres.bytes == 0 {
        bail!("pv | nc delivered nothing");
    }
    Ok(SenderBench {
        rate_bytes_per_s,
        seconds,
        ours_bytes: sres.bytes,
        ours_span_s: sres.span_s,
        ours_cpu_s: ours_cpu,
        pv_bytes: pres.bytes,
        pv_span_s: pres.span_s,
        pv_cpu_s: pv_cpu,
    })
}
