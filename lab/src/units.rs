//! Units the lab speaks: rates in MiB/s (the maintainers' "MB/s"), durations.

use anyhow::{bail, Result};

pub const MIB: f64 = 1024.0 * 1024.0;

/// Parses a rate into bytes per second. `M`/`MB`/`MiB` all mean 2^20 bytes,
/// as in the maintainers' notes and `pv -L 4m`: "4MB/s" = 4 MiB/s.
/// Accepted: `4MB/s`, `4MiB/s`, `4m`, `512KB/s`, `1000000B/s`, `1.5MB/s`.
pub fn parse_rate(s: &str) -> Result<f64> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = match num.parse() {
        Ok(n) => n,
        Err(_) => bail!("rate {s:?}: expected a number with a unit, e.g. 4MB/s"),
    };
    let mult = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => MIB,
        "g" | "gb" | "gib" => MIB * 1024.0,
        u => bail!("rate {s:?}: unknown unit {u:?} (use B, KB, MB or GB per second; binary)"),
    };
    if n.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !n.is_finite() {
        bail!("rate {s:?} must be positive");
    }
    Ok(n * mult)
}

/// Parses a duration in seconds: `180s`, `3m`, `180`, `1.5s`.
pub fn parse_duration_s(s: &str) -> Result<f64> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    match num.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok(n * mult),
        _ => bail!("duration {s:?}: expected e.g. 180s, 3m"),
    }
}

/// Bytes per second as MiB/s.
pub fn mib_per_s(bytes: f64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes / MIB / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_binary() {
        assert_eq!(parse_rate("4MB/s").unwrap(), 4.0 * MIB);
        assert_eq!(parse_rate("4m").unwrap(), 4.0 * MIB);
        assert_eq!(parse_rate("4MiB/s").unwrap(), 4.0 * MIB);
        assert_eq!(parse_rate("512KB/s").unwrap(), 512.0 * 1024.0);
        assert_eq!(parse_rate("1000B/s").unwrap(), 1000.0);
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("4XB/s")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_rate("0MB/s").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_s("180s").unwrap(), 180.0);
        assert_eq!(parse_duration_s("3m").unwrap(), 180.0);
        assert_eq!(parse_duration_s("5").unwrap(), 5.0);
        assert!(parse_duration_s("-1s").is_err());
    }

    #[test]
    fn maintainers_rep_1_is_2_363_mib_s() {
        // Patch C v3 rep 1: 447,758,333 bytes in 180.72 s = 2.363 "MB/s".
        assert_eq!(format!("{:.3}", mib_per_s(447_758_333.0, 180.72)), "2.363");
    }
}
