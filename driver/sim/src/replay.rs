//! Replay of a recorded WSM trace through the real bh.
//!
//! Trace format (text, one message per line, `#` starts a comment):
//!
//! ```text
//! <time_ms> rx <hex>   # a message the chip sent (header included)
//! <time_ms> tx <hex>   # a request the host sent (header included)
//! ```
//!
//! `rx` messages are queued in the simulated chip at their time (its own
//! firmware model is muted, so only recorded messages reach the host; the
//! chip re-stamps sequence numbers so they stay contiguous). `tx` requests
//! are handed to the bh as the host's commands or, for `0x0004`, as data
//! frames. The result is a plain-text summary of what the driver did,
//! compared by tests with an expected file beside the trace.

use std::fmt::Write as _;
use std::string::String;
use std::vec::Vec;

use bes2600_core::bh::BhError;
use bes2600_core::queue::Ac;
use bes2600_core::wsm::{self, WsmError};

use crate::chip::ChipConfig;
use crate::harness::{Harness, Ind};
use crate::wire;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Rx,
    Tx,
}

/// One trace line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub line: usize,
    pub time_ms: u64,
    pub dir: Dir,
    pub msg: Vec<u8>,
}

/// A bad trace line: where and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    pub line: usize,
    pub what: String,
}

impl core::fmt::Display for TraceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "trace line {}: {}", self.line, self.what)
    }
}

impl std::error::Error for TraceError {}

fn hex(s: &str, line: usize) -> Result<Vec<u8>, TraceError> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
        return Err(TraceError {
            line,
            what: std::format!("odd number of hex digits ({})", s.len()),
        });
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&s[i..i + 2], 16).map_err(|_| TraceError {
                line,
                what: std::format!("not a hex byte: {:?} at column {}", &s[i..i + 2], i),
            })
        })
        .collect()
}

/// Parses a trace; every message must have a valid WSM header.
pub fn parse(text: &str) -> Result<Vec<Entry>, TraceError> {
    let mut out = Vec::new();
    let mut last_t = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        let mut parts = l.splitn(3, char::is_whitespace);
        let t = parts.next().unwrap_or("");
        let time_ms: u64 = t.parse().map_err(|_| TraceError {
            line,
            what: std::format!("expected a time in ms, found {t:?}"),
        })?;
        if time_ms < last_t {
            return Err(TraceError {
                line,
                what: std::format!("time goes backwards ({time_ms} ms after {last_t} ms)"),
            });
        }
        last_t = time_ms;
        let dir = match parts.next().unwrap_or("") {
            "rx" => Dir::Rx,
            "tx" => Dir::Tx,
            d => {
                return Err(TraceError {
                    line,
                    what: std::format!("expected direction rx or tx, found {d:?}"),
                })
            }
        };
        let msg = hex(parts.next().unwrap_or(""), line)?;
        let (len, _) = wsm::parse_header(&msg).map_err(|e: WsmError| TraceError {
            line,
            what: std::format!("bad WSM message: {e:?}"),
        })?;
        if len != msg.len() {
            return Err(TraceError {
                line,
                what: std::format!("header says {len} bytes, line has {}", msg.len()),
            });
        }
        out.push(Entry {
            line,
            time_ms,
            dir,
            msg,
        });
    }
    Ok(out)
}

/// Replays `entries` and returns the summary text.
pub fn replay(entries: &[Entry], input_buffers: u16) -> String {
    // The recorded firmware speaks; the model is muted (a fresh boot with
    // nothing queued: the recorded startup indication comes from the trace).
    let mut h = Harness::new(ChipConfig {
        input_buffers,
        mute: true,
        ..ChipConfig::default()
    });
    let mut out = String::new();
    for (i, e) in entries.iter().enumerate() {
        if e.time_ms > h.now_ms {
            if let Err(BhError::Halted(r)) = h.advance(e.time_ms - h.now_ms) {
                let _ = writeln!(out, "halted before line {}: {r:?}", e.line);
                break;
            }
        }
        match e.dir {
            Dir::Rx => {
                h.chip.inject(&e.msg);
            }
            Dir::Tx => match wire::Req::parse(&e.msg)
                .filter(|r| r.base() == wire::ids::TX)
                .and_then(|r| wire::tx_req(r.body))
            {
                Some(t) => {
                    let ac = Ac::from_index(usize::from(t.queue_id)).unwrap_or(Ac::Be);
                    let _ = h.send_frame(ac, t.frame.to_vec());
                }
                _ => {
                    if h.shared.cmd.put_raw(&e.msg, 0).is_err() {
                        let _ =
                            writeln!(out, "line {}: command dropped (another is waiting)", e.line);
                    } else {
                        h.line.kick_tx();
                    }
                }
            },
        }
        // Messages recorded at the same time reach the bh together (one
        // SDIO batch), as they did on the chip.
        if entries.get(i + 1).is_some_and(|n| n.time_ms == e.time_ms) {
            continue;
        }
        if let Err(BhError::Halted(r)) = h.pump() {
            let _ = writeln!(out, "halted after line {}: {r:?}", e.line);
            break;
        }
    }
    let s = h.bh.stats();
    let c = h.bh.credits();
    let _ = writeln!(out, "state: {:?}", h.bh.state());
    let _ = writeln!(
        out,
        "credits: input_buffers {} hw_bufs_used {} (consistent: {})",
        c.input_buffers,
        c.hw_bufs_used,
        h.bh.ledger_consistent()
    );
    let _ = writeln!(
        out,
        "rx: {} frames, {} bytes, {} deliveries {:?}",
        h.up.rx_frames,
        h.up.rx_bytes,
        h.up.rx_deliveries.len(),
        h.up.rx_deliveries
    );
    for (req, st) in &h.up.cmd_done {
        let _ = writeln!(out, "cmd 0x{req:04x} -> status {st}");
    }
    for (f, st) in &h.up.tx_done {
        let _ = writeln!(out, "tx frame of {} bytes -> status {st}", f.len());
    }
    for i in &h.up.indications {
        let _ = match i {
            Ind::Exception(d) => {
                writeln!(out, "indication: firmware exception ({} bytes)", d.len())
            }
            other => writeln!(out, "indication: {other:?}"),
        };
    }
    let _ = writeln!(
        out,
        "counters: decode_errors {} unexpected_confirms {} stale_confirms {} credit_errors {}",
        s.decode_errors, s.unexpected_confirms, s.stale_confirms, s.credit_errors
    );
    out
}
