//! The kernel-log lines of the BES2600 5 GHz scan-reject storm.

/// Kernel log lines that mark the 5 GHz scan-reject storm (DOMAIN.md, finding 4).
pub const SCAN_FAILURE_PATTERNS: &[&str] = &[
    "wsm_generic_confirm failed for request 0x0007",
    "Scan failed (-22)",
];
/// How many kernel log lines match the scan-failure patterns.
pub fn count_scan_failures(lines: &[&str]) -> u64 {
    lines
        .iter()
        .filter(|l| SCAN_FAILURE_PATTERNS.iter().any(|p| l.contains(p)))
        .count() as u64
}
