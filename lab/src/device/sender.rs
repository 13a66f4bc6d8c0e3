//! The rate-capped TCP sender (what `pv -L 4m | nc` did by hand).
//!
//! [`TokenBucket`] is the sans-I/O core: time in, allowance out. [`send`] is
//! the I/O shell around it: one TCP connection, fixed-size writes when the
//! bucket allows, a per-second record of what the socket accepted, and stall
//! detection (no byte accepted for `stall_timeout_s`).

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Size of one write to the socket: 16 writes/s at 4 MiB/s. Fewer, larger
/// writes cost less CPU (`cargo xtask bench lab`: 16 KiB writes cost 2x
/// `pv | nc`, 128 KiB par, 256 KiB ~0.7x); pv -L itself sends in 0.1-s slices.
pub const CHUNK_BYTES: usize = 256 * 1024;
/// Burst the bucket may hold: two chunks (512 KiB, 1/8 s at 4 MiB/s), so a
/// late wake-up or a briefly full socket loses no tokens while the rate
/// stays smooth at the 1-s scale.
pub const BURST_BYTES: f64 = 2.0 * CHUNK_BYTES as f64;
/// Connect timeout of the data connection.
pub const CONNECT_TIMEOUT_S: u64 = 5;

/// Token bucket: `rate` bytes/s, capacity `burst` bytes. Time is an input.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_s: f64,
}

impl TokenBucket {
    pub fn new(rate_bytes_per_s: f64, burst_bytes: f64, now_s: f64) -> Self {
        TokenBucket {
            rate: rate_bytes_per_s,
            burst: burst_bytes,
            tokens: 0.0,
            last_s: now_s,
        }
    }

    fn refill(&mut self, now_s: f64) {
        if now_s > self.last_s {
            self.tokens = (self.tokens + (now_s - self.last_s) * self.rate).min(self.burst);
            self.last_s = now_s;
        }
    }

    /// May `n` bytes go now? If so they are taken from the bucket.
    pub fn try_take(&mut self, n: usize, now_s: f64) -> bool {
        self.refill(now_s);
        if self.tokens >= n as f64 {
            self.tokens -= n as f64;
            true
        } else {
            false
        }
    }

    /// Seconds until `n` bytes will be available.
    pub fn wait_for(&mut self, n: usize, now_s: f64) -> f64 {
        self.refill(now_s);
        ((n as f64 - self.tokens) / self.rate).max(0.0)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SendOutcome {
    /// Sent for the whole duration.
    Completed,
    /// The socket accepted nothing for `stall_timeout_s`.
    Stalled { at_s: f64 },
    /// Stopped from outside (wedge detected on the device side, Ctrl-C).
    Stopped { at_s: f64, reason: String },
    /// Connect or write error.
    Error { at_s: f64, msg: String },
}

/// What the sender did: the raw record of one rep's traffic (`sender.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendRecord {
    pub target: String,
    pub rate_bytes_per_s: f64,
    pub duration_s: f64,
    pub bytes_sent: u64,
    pub elapsed_s: f64,
    /// Bytes accepted by the socket in each whole second since the start.
    pub per_second: Vec<u64>,
    pub outcome: SendOutcome,
}

/// Shared with the thread that watches the device.
#[derive(Default)]
pub struct SendControl {
    pub stop: AtomicBool,
    pub stop_reason: std::sync::Mutex<Option<String>>,
    pub bytes_sent: AtomicU64,
}

impl SendControl {
    pub fn request_stop(&self, reason: &str) {
        *self.stop_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
        self.stop.store(true, Ordering::SeqCst);
    }
}

pub struct SendParams {
    pub target: String,
    pub rate_bytes_per_s: f64,
    pub duration_s: f64,
    pub stall_timeout_s: f64,
}

/// Sends rate-capped traffic to `target` for `duration_s`.
pub fn send(p: &SendParams, ctl: &SendControl) -> SendRecord {
    let t0 = Instant::now();
    let mut rec = SendRecord {
        target: p.target.clone(),
        rate_bytes_per_s: p.rate_bytes_per_s,
        duration_s: p.duration_s,
        bytes_sent: 0,
        elapsed_s: 0.0,
        per_second: Vec::new(),
        outcome: SendOutcome::Completed,
    };
    let connect = || -> std::io::Result<TcpStream> {
        let addr = p
            .target
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(CONNECT_TIMEOUT_S))?;
        s.set_write_timeout(Some(Duration::from_millis(200)))?;
        Ok(s)
    };
    let mut sock = match connect() {
        Ok(s) => s,
        Err(e) => {
            rec.outcome = SendOutcome::Error {
                at_s: 0.0,
                msg: format!("connect {}: {e}", p.target),
            };
            return rec;
        }
    };
    let chunk = vec![0x5au8; CHUNK_BYTES];
    let start = Instant::now();
    let mut bucket = TokenBucket::new(p.rate_bytes_per_s, BURST_BYTES, 0.0);
    let mut pending = 0usize; // bytes of the current chunk not yet written
    let mut last_progress_s = 0.0;
    loop {
        let now = start.elapsed().as_secs_f64();
        if now >= p.duration_s {
            break;
        }
        if ctl.stop.load(Ordering::SeqCst) {
            let reason = ctl
                .stop_reason
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            rec.outcome = SendOutcome::Stopped {
                at_s: now,
                reason: reason.unwrap_or_default(),
            };
            break;
        }
        if now - last_progress_s > p.stall_timeout_s {
            rec.outcome = SendOutcome::Stalled { at_s: now };
            break;
        }
        if pending == 0 {
            if bucket.try_take(CHUNK_BYTES, now) {
                pending = CHUNK_BYTES;
            } else {
                let w = bucket
                    .wait_for(CHUNK_BYTES, now)
                    .min(p.duration_s - now)
                    .min(0.05);
                std::thread::sleep(Duration::from_secs_f64(w.max(0.0005)));
                continue;
            }
        }
        match sock.write(&chunk[CHUNK_BYTES - pending..]) {
            Ok(0) => {
                rec.outcome = SendOutcome::Error {
                    at_s: now,
                    msg: "connection closed".into(),
                };
                break;
            }
            Ok(n) => {
                pending -= n;
                rec.bytes_sent += n as u64;
                ctl.bytes_sent.store(rec.bytes_sent, Ordering::Relaxed);
                let sec = start.elapsed().as_secs() as usize;
                if rec.per_second.len() <= sec {
                    rec.per_second.resize(sec + 1, 0);
                }
                rec.per_second[sec] += n as u64;
                last_progress_s = start.elapsed().as_secs_f64();
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => {
                rec.outcome = SendOutcome::Error {
                    at_s: now,
                    msg: e.to_string(),
                };
                break;
            }
        }
    }
    let _ = sock.flush();
    let _ = sock.shutdown(std::net::Shutdown::Write);
    rec.elapsed_s = start.elapsed().as_secs_f64();
    let _ = t0;
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_rate_times_time() {
        let rate = 4.0 * 1024.0 * 1024.0;
        let mut b = TokenBucket::new(rate, BURST_BYTES, 0.0);
        let mut sent = 0usize;
        let mut t = 0.0;
        while t < 10.0 {
            while b.try_take(CHUNK_BYTES, t) {
                sent += CHUNK_BYTES;
            }
            t += 0.001;
        }
        // Exact up to one chunk of quantisation at the end.
        let err = (sent as f64 - rate * 10.0).abs();
        assert!(err <= CHUNK_BYTES as f64, "sent {sent}, off by {err} bytes");
    }

    #[test]
    fn bucket_never_bursts_beyond_capacity() {
        let mut b = TokenBucket::new(1000.0, 100.0, 0.0);
        assert!(!b.try_take(101, 1000.0));
        assert!(b.try_take(100, 1000.0));
        assert!(!b.try_take(1, 1000.0));
        assert!((b.wait_for(50, 1000.0) - 0.05).abs() < 1e-9);
    }

    #[test]
    fn sends_to_a_loopback_listener_at_the_cap() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut n = 0u64;
            let mut buf = [0u8; 65536];
            loop {
                match std::io::Read::read(&mut s, &mut buf) {
                    Ok(0) | Err(_) => return n,
                    Ok(k) => n += k as u64,
                }
            }
        });
        let p = SendParams {
            target: addr.to_string(),
            rate_bytes_per_s: 1024.0 * 1024.0,
            duration_s: 1.0,
            stall_timeout_s: 5.0,
        };
        let rec = send(&p, &SendControl::default());
        let got = h.join().unwrap();
        assert_eq!(rec.outcome, SendOutcome::Completed);
        assert_eq!(got, rec.bytes_sent);
        // A functional bound, not a timing claim: never more than the cap
        // plus one chunk.
        assert!(
            rec.bytes_sent as f64 <= 1024.0 * 1024.0 + BURST_BYTES,
            "{}",
            rec.bytes_sent
        );
        assert!(rec.bytes_sent > 0);
    }
}
