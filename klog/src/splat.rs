//! The reports a kernel prints when something went wrong (WARN, BUG, oops,
//! lockdep, panic, hung task), found in log lines with their call site.

use serde::{Deserialize, Serialize};

use crate::dmesg::{dmesg_time, strip_dmesg_prefix};

/// How many lines after a splat's first line to search for its call site.
pub const SPLAT_CONTEXT_LINES: usize = 40;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum SplatKind {
    Warn,
    Bug,
    Oops,
    Lockdep,
    Panic,
    /// The hung-task detector: `INFO: task NAME:PID blocked for more than N seconds.`
    Hung,
}

impl SplatKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SplatKind::Warn => "WARN",
            SplatKind::Bug => "BUG",
            SplatKind::Oops => "Oops",
            SplatKind::Lockdep => "lockdep",
            SplatKind::Panic => "panic",
            SplatKind::Hung => "hung task",
        }
    }
}

/// A WARN/BUG/oops/lockdep report found in the kernel log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Splat {
    pub kind: SplatKind,
    /// The splat's first line, timestamp stripped.
    pub first_line: String,
    /// Where it fired: `file:line` and/or `function+off/len [module]`.
    pub call_site: Option<String>,
    /// Kernel time of the first line, if stamped.
    pub time_s: Option<f64>,
}

fn classify(msg: &str) -> Option<SplatKind> {
    if msg.starts_with("WARNING: CPU:") || msg.starts_with("WARNING: at ") {
        Some(SplatKind::Warn)
    } else if msg.starts_with("WARNING: ")
        && (msg.contains("lock")
            || msg.contains("dependency")
            || msg.contains("recursive")
            || msg.contains("-safe ->")
            || msg.contains("RCU usage"))
    {
        Some(SplatKind::Lockdep)
    } else if msg.starts_with("turning off the locking correctness validator") {
        // Lockdep's own "I am now blind" line (after e.g. MAX_LOCKDEP_ENTRIES
        // ran out): every later locking bug of the run goes unreported.
        Some(SplatKind::Lockdep)
    } else if msg.starts_with("INFO: task ") {
        Some(SplatKind::Hung)
    } else if msg.starts_with("kernel BUG at ") || msg.starts_with("BUG: ") {
        Some(SplatKind::Bug)
    } else if msg.starts_with("Oops")
        || msg.starts_with("Internal error: Oops")
        || msg.starts_with("general protection fault")
        || msg.starts_with("Unable to handle kernel")
    {
        Some(SplatKind::Oops)
    } else if msg.starts_with("Kernel panic") {
        Some(SplatKind::Panic)
    } else {
        None
    }
}

/// A site in a stack/register line: `RIP: 0010:func+0x1/0x2 [mod]`, `pc : func+0x…`, `… at: func+0x…`.
fn site_in(msg: &str) -> Option<String> {
    for key in ["RIP: 0010:", "RIP: ", "pc : ", ", at: ", " at: "] {
        if let Some(i) = msg.find(key) {
            let s = msg[i + key.len()..].trim();
            if s.contains("+0x") {
                return Some(s.to_string());
            }
        }
    }
    None
}

/// Finds splats in kernel log lines (as returned by [`dmesg_since_marker`]).
pub fn find_splats(lines: &[&str]) -> Vec<Splat> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let msg = strip_dmesg_prefix(lines[i]);
        let Some(kind) = classify(msg) else {
            i += 1;
            continue;
        };
        // Call site: on the first line for WARN ("at file:line func") and
        // "kernel BUG at file:line!", else from the register dump / lockdep
        // "at:" lines that follow.
        let mut site = match kind {
            SplatKind::Warn => msg.split_once(" at ").map(|(_, s)| s.trim().to_string()),
            SplatKind::Bug if msg.starts_with("kernel BUG at ") => Some(
                msg["kernel BUG at ".len()..]
                    .trim_end_matches('!')
                    .to_string(),
            ),
            _ => None,
        };
        let mut j = i + 1;
        while j < lines.len() && j <= i + SPLAT_CONTEXT_LINES {
            let m = strip_dmesg_prefix(lines[j]);
            // "Internal error: Oops" / "Oops:" continue a BUG or an oops
            // report; any other splat start begins a new one.
            let continues = matches!(kind, SplatKind::Bug | SplatKind::Oops)
                && (m.starts_with("Internal error: Oops") || m.starts_with("Oops"));
            if classify(m).is_some() && !continues {
                break;
            }
            if m.starts_with("---[ end trace") {
                j += 1;
                break;
            }
            if site.is_none() {
                site = site_in(m);
            } else if kind == SplatKind::Bug && !site.as_deref().unwrap_or("").contains("+0x") {
                if let Some(s) = site_in(m) {
                    site = Some(format!("{} ({s})", site.unwrap_or_default()));
                }
            }
            j += 1;
        }
        out.push(Splat {
            kind,
            first_line: msg.to_string(),
            call_site: site,
            time_s: dmesg_time(lines[i]),
        });
        i = j.max(i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hung_tasks_and_lockdep_turning_off_are_splats() {
        let log = [
            "[  240.1] INFO: task kworker/0:1:42 blocked for more than 120 seconds.",
            "[  240.1]       Not tainted 6.12.0 #1",
            "[  300.0] BUG: MAX_LOCKDEP_ENTRIES too low!",
            "[  300.0] turning off the locking correctness validator.",
            "[  300.1] bes2600: ok",
        ];
        let kinds: Vec<_> = find_splats(&log)
            .into_iter()
            .map(|s| (s.kind, s.time_s))
            .collect();
        assert_eq!(
            kinds,
            [
                (SplatKind::Hung, Some(240.1)),
                (SplatKind::Bug, Some(300.0)),
                (SplatKind::Lockdep, Some(300.0)),
            ]
        );
        assert!(find_splats(&["[ 1.0] INFO: lockdep is turned on."]).is_empty());
    }
}
