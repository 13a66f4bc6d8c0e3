//! Reading what a Linux kernel prints: kernel-log lines (dmesg and
//! `/dev/kmsg`), the reports in them (WARN, BUG, oops, lockdep, panics, hung
//! tasks), ftrace records, `/proc/uptime`, and the scan-failure lines of the
//! BES2600 findings.
//!
//! Pure: text in, values out, no I/O, no clocks. The image boot test, the
//! lab's ramp and its capture all judge a kernel log with this one crate, so
//! the three can never disagree about what a splat is. A line that does not
//! read is never fatal: it becomes a [`ParseError`] (file, line, what).

pub mod dmesg;
pub mod ftrace;
pub mod scan;
pub mod splat;

use std::fmt;

use serde::{Deserialize, Serialize};

/// A line of device output that could not be read: where and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParseError {
    /// Path relative to the run directory, e.g. `streams/trace.txt`.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What was expected and what was found.
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

impl std::error::Error for ParseError {}

/// Shortens a device line for an error message (device output can be huge).
pub fn excerpt(line: &str) -> String {
    const EXCERPT_CHARS_MAX: usize = 80;
    let mut s: String = line.chars().take(EXCERPT_CHARS_MAX).collect();
    if line.chars().count() > EXCERPT_CHARS_MAX {
        s.push('…');
    }
    format!("{s:?}")
}

pub fn parse_f64(s: &str) -> Option<f64> {
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}
