//! The kernel-log lines of the BES2600 5 GHz scan-reject storm, and the one
//! rule that turns them into scan-failure events.
//!
//! One failed attempt prints two lines, the firmware's reject and mac80211's
//! verdict (`wsm_generic_confirm failed for request 0x0007.` then `[SCAN]
//! Scan failed (-22).`, DOMAIN.md finding 4 and the maintainers' Phase 7
//! notes): counting lines counted every attempt twice. An **event** is a run
//! of matching lines, each within [`SCAN_EVENT_GAP_S`] of the one before;
//! the ramp, its predictions and the capture all count events.

use crate::dmesg::dmesg_time;

/// Kernel log lines that mark the 5 GHz scan-reject storm (DOMAIN.md, finding 4).
pub const SCAN_FAILURE_PATTERNS: &[&str] = &[
    "wsm_generic_confirm failed for request 0x0007",
    "Scan failed (-22)",
];

/// Matching lines closer than this (seconds) belong to one event. The two
/// lines of one attempt are microseconds apart; attempts are minutes apart
/// (every ~300 s in Bug #5, ~14/h in the 5 GHz storm).
pub const SCAN_EVENT_GAP_S: f64 = 5.0;

/// Is this kernel-log text one of the scan-failure lines?
pub fn is_scan_failure(text: &str) -> bool {
    SCAN_FAILURE_PATTERNS.iter().any(|p| text.contains(p))
}

/// One scan-failure event: when it started and how many lines it printed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScanFailureEvent {
    /// Kernel time of its first line, when the log is stamped.
    pub uptime_s: Option<f64>,
    pub lines: usize,
}

/// Groups `(kernel time, text)` lines into scan-failure events. Lines
/// without a time join the event of the matching line just before them
/// (adjacent lines of one attempt), else start one.
pub fn scan_failure_events<'a>(
    lines: impl IntoIterator<Item = (Option<f64>, &'a str)>,
) -> Vec<ScanFailureEvent> {
    let mut out: Vec<ScanFailureEvent> = Vec::new();
    // The time of the last matching line, and whether it was the line just
    // before this one.
    let mut last: Option<Option<f64>> = None;
    let mut adjacent = false;
    for (t, text) in lines {
        if !is_scan_failure(text) {
            adjacent = false;
            continue;
        }
        let joins = match (last, t) {
            (Some(Some(prev)), Some(now)) => now - prev <= SCAN_EVENT_GAP_S,
            (Some(_), _) => adjacent,
            (None, _) => false,
        };
        match out.last_mut() {
            Some(ev) if joins => ev.lines += 1,
            _ => out.push(ScanFailureEvent {
                uptime_s: t,
                lines: 1,
            }),
        }
        last = Some(t.or(last.flatten()));
        adjacent = true;
    }
    out
}

/// Scan-failure events in dmesg lines (`[seconds] text`).
pub fn count_scan_failures(lines: &[&str]) -> u64 {
    scan_failure_events(lines.iter().map(|l| (dmesg_time(l), *l))).len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of the maintainers' notes: one attempt, two lines.
    #[test]
    fn one_failed_attempt_is_one_event() {
        let log = [
            "[  217.700000] bes2600_wlan: wsm_generic_confirm failed for request 0x0007.",
            "[  217.700000] bes2600_wlan: [SCAN] Scan failed (-22).",
            "[  300.000000] wlan0: associated",
            "[  517.700100] bes2600_wlan: wsm_generic_confirm failed for request 0x0007.",
            "[  517.700150] bes2600_wlan: [SCAN] Scan failed (-22).",
        ];
        assert_eq!(count_scan_failures(&log), 2);
        let ev = scan_failure_events(log.iter().map(|l| (dmesg_time(l), *l)));
        assert_eq!(
            ev[1],
            ScanFailureEvent {
                uptime_s: Some(517.7001),
                lines: 2
            }
        );
    }

    #[test]
    fn untimed_lines_group_by_adjacency() {
        let log = [
            "bes2600_wlan: wsm_generic_confirm failed for request 0x0007.",
            "bes2600_wlan: [SCAN] Scan failed (-22).",
            "wlan0: associated",
            "bes2600_wlan: [SCAN] Scan failed (-22).",
        ];
        assert_eq!(count_scan_failures(&log), 2);
        assert_eq!(count_scan_failures(&[]), 0);
    }
}
