//! Device shell commands shared by the ramp and the capture, with their
//! replies' parsers.

use anyhow::{bail, Result};

/// The ftrace filter an event is armed with (`events/SYS/EVENT/filter`), if
/// any: `sched_wakeup` only for the driver's own threads (bes2600's bh
/// kthread is `bes2600_bh`), so the ring buffer holds the bh's wake-ups and
/// not every wake-up of the system.
pub fn event_filter(path: &str) -> Option<&'static str> {
    (path == "sched/sched_wakeup").then_some("comm ~ \"bes2600*\"")
}
/// Shell (run with `$T` set to tracefs) that enables each `system/event` and
/// prints `enabled system/event` or `missing system/event` per event. Event
/// names must have passed [`validate_event`] (no shell metacharacters).
/// Shared by the capture's arming and the ramp's.
pub fn enable_events_cmd(events: &[String]) -> String {
    events
        .iter()
        .map(|e| {
            let filter = match event_filter(e) {
                Some(f) => format!("echo '{f}' > $T/events/{e}/filter && "),
                None => String::new(),
            };
            format!(
                "if [ -e $T/events/{e}/enable ]; then {filter}echo 1 > $T/events/{e}/enable && echo 'enabled {e}'; \
                 else echo 'missing {e}'; fi; "
            )
        })
        .collect()
}

/// An ftrace event as `system/event`, letters, digits and `_` only.
pub fn validate_event(e: &str) -> Result<()> {
    let ok = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    match e.split_once('/') {
        Some((sys, ev)) if ok(sys) && ok(ev) => Ok(()),
        _ => bail!("ftrace event {e:?}: expected `system/event` (letters, digits, `_`)"),
    }
}
