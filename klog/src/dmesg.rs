//! Kernel log lines: the `[seconds]` prefix, the marker a run writes, the
//! `dmesg -w` / `/dev/kmsg` follow, and `/proc/uptime`.

use serde::Serialize;

use crate::{excerpt, parse_f64, ParseError};

/// Strips a `[  12.345678] ` timestamp (and a `<4>` level) from a dmesg line.
pub fn strip_dmesg_prefix(line: &str) -> &str {
    let mut l = line.trim_end();
    if l.starts_with('<') {
        if let Some(i) = l.find('>') {
            l = &l[i + 1..];
        }
    }
    if l.starts_with('[') {
        if let Some(i) = l.find(']') {
            return strip_caller(l[i + 1..].trim_start());
        }
    }
    l
}

/// `CONFIG_PRINTK_CALLER`'s `[  T123] ` (task) or `[    C0] ` (CPU) after
/// the timestamp, as syzbot's console logs print them.
fn strip_caller(l: &str) -> &str {
    let Some(inner) = l.strip_prefix('[') else {
        return l;
    };
    let Some((id, rest)) = inner.split_once(']') else {
        return l;
    };
    let id = id.trim_start();
    let is_caller = id.len() > 1
        && (id.starts_with('T') || id.starts_with('C'))
        && id[1..].chars().all(|c| c.is_ascii_digit());
    if is_caller {
        rest.trim_start()
    } else {
        l
    }
}

/// The `[seconds]` timestamp of a dmesg line.
pub fn dmesg_time(line: &str) -> Option<f64> {
    let l = line.trim_start();
    let l = if l.starts_with('<') {
        &l[l.find('>')? + 1..]
    } else {
        l
    };
    let inner = l.strip_prefix('[')?;
    inner[..inner.find(']')?].trim().parse().ok()
}

/// The kernel log after the rep's marker line (exclusive); all of it if the
/// marker is missing (then `found` is false).
pub fn dmesg_since_marker<'a>(dmesg: &'a str, marker: &str) -> (Vec<&'a str>, bool) {
    let lines: Vec<&str> = dmesg.lines().collect();
    match lines.iter().rposition(|l| l.contains(marker)) {
        Some(i) => (lines[i + 1..].to_vec(), true),
        None => (lines, false),
    }
}

/// First number of `/proc/uptime`.
pub fn parse_uptime(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// One kernel log message with its printk timestamp (seconds since boot).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KmsgLine {
    pub line: usize,
    pub uptime_s: f64,
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KmsgStream {
    pub lines: Vec<KmsgLine>,
    pub bad_lines: Vec<ParseError>,
    /// `/dev/kmsg` records seen again after a reconnect (a re-opened
    /// `/dev/kmsg` replays the buffer): skipped by sequence number.
    pub replayed: usize,
}

/// Parses a kernel log follow: either `dmesg -w` text (`[  778.123456] msg`) or
/// raw `/dev/kmsg` records (`6,1234,778123456,-;msg`, whose continuation lines
/// start with a space and are skipped). A `/dev/kmsg` record whose sequence
/// number is not above the highest seen so far is a replay after a reconnect
/// and is counted in `replayed`, not kept twice.
pub fn parse_kmsg(file: &str, text: &str) -> KmsgStream {
    let mut out = KmsgStream::default();
    let mut seq_max: Option<u64> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() || raw.starts_with(' ') && !raw.trim_start().starts_with('[') {
            continue; // blank, or a /dev/kmsg dictionary continuation line
        }
        match parse_kmsg_line(raw) {
            Some((_, _, Some(seq))) if seq_max.is_some_and(|m| seq <= m) => out.replayed += 1,
            Some((uptime_s, text, seq)) => {
                if seq.is_some() {
                    seq_max = seq;
                }
                out.lines.push(KmsgLine {
                    line,
                    uptime_s,
                    text: text.to_string(),
                })
            }
            None => out.bad_lines.push(ParseError {
                file: file.to_string(),
                line,
                what: format!(
                    "expected `[SECONDS] message` or `PRIO,SEQ,USEC,FLAGS;message`, found {}",
                    excerpt(raw)
                ),
            }),
        }
    }
    out
}

/// `(uptime_s, message, /dev/kmsg sequence number)`.
fn parse_kmsg_line(raw: &str) -> Option<(f64, &str, Option<u64>)> {
    let t = raw.trim_start();
    if let Some(rest) = t.strip_prefix('[') {
        let (ts, msg) = rest.split_once(']')?;
        let uptime_s = parse_f64(ts.trim())?;
        return Some((uptime_s, msg.strip_prefix(' ').unwrap_or(msg), None));
    }
    let (head, msg) = t.split_once(';')?;
    let mut f = head.split(',');
    let _prio: u32 = f.next()?.parse().ok()?;
    let seq: u64 = f.next()?.parse().ok()?;
    let usec: u64 = f.next()?.parse().ok()?;
    Some((usec as f64 / 1e6, msg, Some(seq)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_in_dmesg_and_dev_kmsg_form() {
        let text = "[    0.000000] Linux version 6.12\n\
                    [  778.123456] ieee80211 phy0: [SCAN] Scan failed (-22)\n\
                    6,1234,779500000,-;besser-capture: probe 1 start\n \
                    SUBSYSTEM=net\n\
                    truncated li";
        let s = parse_kmsg("streams/kmsg.txt", text);
        assert_eq!(s.lines.len(), 3);
        assert_eq!(s.lines[1].uptime_s, 778.123456);
        assert_eq!(s.lines[1].text, "ieee80211 phy0: [SCAN] Scan failed (-22)");
        assert_eq!(s.lines[2].uptime_s, 779.5);
        assert_eq!(s.lines[2].text, "besser-capture: probe 1 start");
        assert_eq!(s.bad_lines.len(), 1);
        assert_eq!(s.bad_lines[0].line, 5);
    }

    #[test]
    fn kmsg_replay_after_reconnect_is_not_doubled() {
        let text = "6,10,1000000,-;a\n6,11,2000000,-;b\n6,10,1000000,-;a\n6,11,2000000,-;b\n6,12,3000000,-;c\n";
        let s = parse_kmsg("streams/kmsg.txt", text);
        let msgs: Vec<&str> = s.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(msgs, ["a", "b", "c"]);
        assert_eq!(s.replayed, 2);
    }
}
