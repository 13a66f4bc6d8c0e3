//! The reports a kernel prints when something went wrong, found in log lines
//! with their call site: WARN (both header forms), BUG (incl. KASAN and
//! scheduling while atomic), oops and aborts, lockdep reports (with the lock
//! names), panics, hung tasks, RCU stalls and soft/hard lockups.
//!
//! One report is one splat: an oops and the `Kernel panic - not syncing:
//! Fatal exception` it ends in, or a lockdep report and its closing
//! `turning off the locking correctness validator.`, are one event each.
//! The rules were checked against published kernel logs
//! (`klog/tests/data/published/`, each citing its source).

use serde::{Deserialize, Serialize};

use crate::dmesg::{dmesg_time, strip_dmesg_prefix};

/// How many lines after a splat's first line to search for its call site.
pub const SPLAT_CONTEXT_LINES: usize = 40;
/// How far a report may run (to its `---[ end trace ]---` or the next
/// report), so the panic an oops ends in is found after a long dump.
const REPORT_LINES_MAX: usize = 200;
/// After a report's `---[ end trace … ]---`, how many lines may pass before
/// the panic it ends in (`Kernel panic - not syncing: Fatal exception`).
const PANIC_AFTER_END_LINES: usize = 3;

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
    /// An RCU stall (`rcu: INFO: rcu_sched self-detected stall on CPU`).
    Stall,
    /// A soft or hard lockup (`watchdog: BUG: soft lockup - CPU#0 stuck for 22s!`,
    /// `Watchdog detected hard LOCKUP on cpu N`).
    Lockup,
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
            SplatKind::Stall => "RCU stall",
            SplatKind::Lockup => "lockup",
        }
    }
}

/// A WARN/BUG/oops/lockdep report found in the kernel log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Splat {
    pub kind: SplatKind,
    /// The splat's first line, timestamp stripped.
    pub first_line: String,
    /// Where it fired: `file:line` and/or `function+off/len [module]`; for
    /// hung tasks, scheduling while atomic and KASAN, the first driver frame
    /// of the trace.
    pub call_site: Option<String>,
    /// Kernel time of the first line, if stamped.
    pub time_s: Option<f64>,
    /// Lockdep reports: the locks named, in the order printed (`&tz->lock`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<String>,
}

/// `WARNING: FILE:LINE at FUNC+off/len, CPU#N: comm/pid` (kernels from 6.14
/// on print this instead of `WARNING: CPU: N PID: P at FILE:LINE FUNC`).
fn new_warn_header(msg: &str) -> Option<(&str, &str)> {
    let rest = msg.strip_prefix("WARNING: ")?;
    let (file_line, after) = rest.split_once(" at ")?;
    let (file, line) = file_line.rsplit_once(':')?;
    let ok = !file.is_empty()
        && !file.contains(' ')
        && !line.is_empty()
        && line.chars().all(|c| c.is_ascii_digit());
    ok.then(|| {
        (
            file_line,
            after.split(", CPU#").next().unwrap_or(after).trim(),
        )
    })
}

/// Lockdep's own BUG lines: its tables ran out or it was misused.
const LOCKDEP_BUGS: &[&str] = &[
    "BUG: MAX_LOCKDEP",
    "BUG: MAX_STACK_TRACE_ENTRIES",
    "BUG: MAX_LOCK_DEPTH",
    "BUG: looking up invalid subclass",
];

fn classify(msg: &str) -> Option<SplatKind> {
    if msg.starts_with("WARNING: CPU:")
        || msg.starts_with("WARNING: at ")
        || new_warn_header(msg).is_some()
    {
        Some(SplatKind::Warn)
    } else if msg.starts_with("WARNING: ")
        && (msg.contains("lock")
            || msg.contains("dependency")
            || msg.contains("recursive")
            || msg.contains("-safe ->")
            || msg.contains("RCU usage"))
    {
        Some(SplatKind::Lockdep)
    } else if (msg.starts_with("[ BUG: ") && msg.ends_with(']'))
        || msg.starts_with("INFO: trying to register non-static key")
        || LOCKDEP_BUGS.iter().any(|p| msg.starts_with(p))
        || msg.starts_with("turning off the locking correctness validator")
    {
        // Lockdep's banners (`[ BUG: Invalid wait context ]`), its
        // non-static key report, its own table overflows, and its "I am now
        // blind" line on its own: every later locking bug goes unreported.
        Some(SplatKind::Lockdep)
    } else if msg.starts_with("INFO: task ") {
        Some(SplatKind::Hung)
    } else if (msg.starts_with("rcu: INFO: ") || msg.starts_with("INFO: rcu_"))
        && msg.contains("stall")
    {
        Some(SplatKind::Stall)
    } else if msg.starts_with("watchdog: BUG: soft lockup")
        || msg.starts_with("BUG: soft lockup")
        || msg.contains("Watchdog detected hard LOCKUP")
    {
        Some(SplatKind::Lockup)
    } else if msg.starts_with("kernel BUG at ") || msg.starts_with("BUG: ") {
        Some(SplatKind::Bug)
    } else if msg.starts_with("Oops")
        || msg.starts_with("Internal error: ")
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

/// Functions a stack trace passes through on its way to whoever caused the
/// report: the reporting machinery, the scheduler, sleeping and locking
/// primitives, KASAN's checks, and the entry/worker frames at the bottom.
const CORE_FRAMES: &[&str] = &[
    "dump_backtrace",
    "show_stack",
    "dump_stack",
    "__dump_stack",
    "__warn",
    "warn_slowpath",
    "report_bug",
    "__schedule_bug",
    "__schedule",
    "schedule",
    "preempt_schedule",
    "io_schedule",
    "msleep",
    "usleep_range",
    "__might_sleep",
    "__might_resched",
    "__might_fault",
    "mutex_lock",
    "__mutex_lock",
    "mutex_lock_nested",
    "down_",
    "__down",
    "rwsem_",
    "wait_for_completion",
    "__wait_for_common",
    "wait_for_common",
    "folio_wait",
    "__folio_lock",
    "wait_on_page",
    "out_of_line_wait_on_bit",
    "__wait_on_bit",
    "bit_wait",
    "print_report",
    "kasan_",
    "__kasan_",
    "__asan_",
    "check_memory_region",
    "print_address_description",
    "lock_acquire",
    "__lock_acquire",
    "lock_release",
    "register_lock_class",
    "lockdep_",
    "_raw_spin_",
    "_raw_read_",
    "_raw_write_",
    "do_raw_spin",
    "rt_mutex",
    "lockref_",
    "kthread",
    "worker_thread",
    "process_one_work",
    "ret_from_fork",
    "__switch_to",
    "__cond_resched",
    "asm_",
    "el0_",
    "el1_",
    "do_syscall",
    "entry_SYSCALL",
];

fn is_core_frame(func: &str) -> bool {
    // `down()` itself, but not a driver's `download_fw`.
    func == "down" || CORE_FRAMES.iter().any(|p| func.starts_with(p))
}

/// A stack frame on a line: `func+0x1a/0x30 [mod]` (x86, arm64; `? ` marks
/// an unreliable frame and is skipped) or arm32's `[<pc>] (func) from [<lr>]
/// (caller+0x1a/0x30)`. Returns `(function, the frame as printed)`.
fn frame_in(msg: &str) -> Option<(&str, &str)> {
    let t = msg.trim();
    if t.starts_with("? ") || t.starts_with('<') {
        return None;
    }
    let t = match t.split_once(") from [<") {
        // arm32 prints `(callee) from [<lr>] (caller+off/len)`: the caller
        // carries the offset, and the callers in order are the trace.
        Some((_, caller)) => caller.split_once("] (")?.1.trim_end_matches(')'),
        None => t,
    };
    let (func, rest) = t.split_once("+0x")?;
    let ok = !func.is_empty()
        && func
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$'))
        && rest.contains("/0x");
    ok.then_some((func, t))
}

/// The first frame of the trace after the report's first line that belongs
/// to a module (`[mod]`), else the first that is not a core frame.
fn first_driver_frame(lines: &[&str]) -> Option<String> {
    let frames: Vec<(&str, &str)> = lines
        .iter()
        .filter_map(|l| frame_in(strip_dmesg_prefix(l)))
        .collect();
    frames
        .iter()
        .find(|(_, f)| f.trim_end().ends_with(']'))
        .or_else(|| frames.iter().find(|(func, _)| !is_core_frame(func)))
        .map(|(_, f)| f.to_string())
}

/// The lock names of a lockdep line: `(&tz->lock){+.+.}-{4:4}` -> `&tz->lock`
/// (names may nest parentheses: `(rn5t618:170:(&cfg)->lock){+.+.}`).
fn locks_in(msg: &str, out: &mut Vec<String>) {
    let b = msg.as_bytes();
    let mut from = 0;
    while let Some(k) = msg[from..].find("){") {
        let close = from + k;
        let mut depth = 0usize;
        let mut open = None;
        for i in (0..close).rev() {
            match b[i] {
                b')' => depth += 1,
                b'(' if depth == 0 => {
                    open = Some(i);
                    break;
                }
                b'(' => depth -= 1,
                _ => {}
            }
        }
        if let Some(o) = open {
            let name = msg[o + 1..close].trim();
            if !name.is_empty() && !out.iter().any(|n| n == name) {
                out.push(name.to_string());
            }
        }
        from = close + 2;
    }
}

/// Does `m` continue the report of `kind` rather than start a new one?
fn continues(kind: &SplatKind, m: &str) -> bool {
    match classify(m) {
        None => false,
        // An oops's "Internal error: Oops" after "Unable to handle …", or a
        // BUG's: the same report.
        Some(SplatKind::Oops) => {
            matches!(kind, SplatKind::Bug | SplatKind::Oops)
                && (m.starts_with("Internal error: ") || m.starts_with("Oops"))
        }
        // Lockdep ends its report by switching itself off.
        Some(SplatKind::Lockdep) => {
            *kind == SplatKind::Lockdep
                && m.starts_with("turning off the locking correctness validator")
        }
        // The panic a report ends in (`Fatal exception`, panic_on_warn, …).
        Some(SplatKind::Panic) => *kind != SplatKind::Panic,
        Some(_) => false,
    }
}

/// Finds splats in kernel log lines (as returned by [`crate::dmesg::dmesg_since_marker`]).
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
        // "at:" lines that follow, or the trace's first driver frame.
        let mut site = match kind {
            SplatKind::Warn => match new_warn_header(msg) {
                Some((file_line, func)) => Some(format!("{file_line} {func}")),
                None => msg.split_once(" at ").map(|(_, s)| s.trim().to_string()),
            },
            SplatKind::Bug if msg.starts_with("kernel BUG at ") => Some(
                msg["kernel BUG at ".len()..]
                    .trim_end_matches('!')
                    .to_string(),
            ),
            _ => None,
        };
        let by_frame = kind == SplatKind::Hung
            || msg.starts_with("BUG: scheduling while atomic")
            || msg.starts_with("BUG: KASAN: ");
        let mut locks = Vec::new();
        let mut panicked = kind == SplatKind::Panic;
        let mut j = i + 1;
        let mut ended = false;
        while j < lines.len() && j <= i + REPORT_LINES_MAX {
            let m = strip_dmesg_prefix(lines[j]);
            let in_context = j <= i + SPLAT_CONTEXT_LINES;
            if classify(m).is_some() && !continues(&kind, m) {
                break;
            }
            panicked |= m.starts_with("Kernel panic");
            if m.starts_with("---[ end trace") || m.starts_with("---[ end Kernel panic") {
                j += 1;
                ended = true;
                break;
            }
            if kind == SplatKind::Lockdep && in_context {
                locks_in(m, &mut locks);
            }
            if by_frame || !in_context {
                // Decided from the whole trace below.
            } else if site.is_none() {
                site = site_in(m);
            } else if kind == SplatKind::Bug && !site.as_deref().unwrap_or("").contains("+0x") {
                if let Some(s) = site_in(m) {
                    site = Some(format!("{} ({s})", site.unwrap_or_default()));
                }
            }
            j += 1;
        }
        let context = &lines[i + 1..j.min(lines.len()).min(i + 1 + SPLAT_CONTEXT_LINES)];
        if by_frame || (kind == SplatKind::Lockdep && site.is_none()) {
            site = first_driver_frame(context);
        }
        // `---[ end trace ]---` then the panic the oops ends in: one event.
        if ended && !panicked {
            let look = (j..lines.len().min(j + PANIC_AFTER_END_LINES)).find(|&k| {
                let m = strip_dmesg_prefix(lines[k]);
                m.starts_with("Kernel panic") || classify(m).is_some()
            });
            if let Some(k) =
                look.filter(|&k| strip_dmesg_prefix(lines[k]).starts_with("Kernel panic"))
            {
                // Through the panic's own end marker, when it printed one.
                j = (k + 1..lines.len().min(k + 1 + SPLAT_CONTEXT_LINES))
                    .find(|&e| strip_dmesg_prefix(lines[e]).starts_with("---[ end Kernel panic"))
                    .map_or(k + 1, |e| e + 1);
            }
        }
        out.push(Splat {
            kind,
            first_line: msg.to_string(),
            call_site: site,
            time_s: dmesg_time(lines[i]),
            locks,
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
        // Lockdep's table overflow and its switch-off are one report.
        assert_eq!(
            kinds,
            [
                (SplatKind::Hung, Some(240.1)),
                (SplatKind::Lockdep, Some(300.0)),
            ]
        );
        assert!(find_splats(&["[ 1.0] INFO: lockdep is turned on."]).is_empty());
        // On its own, the switch-off is still a report.
        let alone = find_splats(&["[ 9.0] turning off the locking correctness validator."]);
        assert_eq!(alone.len(), 1);
    }

    #[test]
    fn frames_of_three_architectures() {
        assert_eq!(
            frame_in(" extent_write_cache_pages+0x78c/0xba0 [btrfs]"),
            Some((
                "extent_write_cache_pages",
                "extent_write_cache_pages+0x78c/0xba0 [btrfs]"
            ))
        );
        assert_eq!(frame_in(" ? __kasan_check_read+0x11/0x20"), None);
        assert_eq!(
            frame_in("[<c07593ec>] (regmap_update_bits_base) from [<c076b838>] (rn5t618_trigger_poweroff_sequence+0x34/0x64)"),
            Some((
                "rn5t618_trigger_poweroff_sequence",
                "rn5t618_trigger_poweroff_sequence+0x34/0x64"
            )),
            "arm32: the caller, with its offset"
        );
        assert!(is_core_frame("down") && is_core_frame("down_interruptible"));
        assert!(
            !is_core_frame("download_fw"),
            "a driver's function is not a semaphore"
        );
        let mut l = Vec::new();
        locks_in(
            "d85b4438 (rn5t618:170:(&rn5t618_regmap_config)->lock){+.+.}-{3:3}, at: regmap_update_bits_base+0x30/0x70",
            &mut l,
        );
        assert_eq!(l, ["rn5t618:170:(&rn5t618_regmap_config)->lock"]);
    }
}
