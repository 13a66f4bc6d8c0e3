//! Device shell commands shared by the ramp and the capture, with their
//! replies' parsers.

use anyhow::{bail, Context, Result};

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

/// A configured ftrace event (`system:event`, as `set_event` takes it, or
/// `system/event`) as the `system/event` path under `$T/events/`.
pub fn event_path(e: &str) -> Result<String> {
    let p = e.replacen(':', "/", 1);
    validate_event(&p).with_context(|| format!("ftrace event {e:?}"))?;
    Ok(p)
}

/// Which of `configured` the start command's `events` section says were
/// enabled; every other one is missing (absent, or enabling it failed).
pub fn enabled_events(configured: &[String], section: &str) -> Result<(Vec<String>, Vec<String>)> {
    let states = parse_event_states(section);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for e in configured {
        let p = event_path(e)?;
        if states
            .iter()
            .any(|(s, st)| *s == p && *st == EventState::Enabled)
        {
            on.push(e.clone());
        } else {
            off.push(e.clone());
        }
    }
    Ok((on, off))
}

/// Shell that sets `$T` to the device's tracefs directory (newer kernels mount
/// it at /sys/kernel/tracing, older ones only under debugfs).
pub fn tracefs() -> &'static str {
    "T=/sys/kernel/tracing; [ -e $T/trace ] || T=/sys/kernel/debug/tracing"
}

/// The data interface's counters, `name value` per line (a counter that
/// cannot be read prints its name alone, which the reader lists as not
/// understood). Read with the shell's own `read`: a `$(cat …)` per counter
/// costs a fork each, ~50 ms a snapshot on the virtual device.
pub fn counters_cmd(iface: &str) -> String {
    format!(
        "for f in rx_bytes rx_packets rx_dropped rx_errors tx_bytes tx_packets; do \
         v=; {{ read -r v < /sys/class/net/{iface}/statistics/$f; }} 2>/dev/null; echo \"$f $v\"; done"
    )
}

pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Starts a fresh listener on the device's data port (any old one killed) that
/// counts what it receives into `/run/besser/rx.count` when its connection
/// closes. Shared by the ramp and the capture. `nc -l -p PORT` is busybox's
/// and traditional netcat's form; OpenBSD netcat (e.g. on Arch/DanctNIX)
/// refuses `-p` with `-l` (exit status 1) and gets `nc -l PORT` instead; a
/// listener stopped by a signal (the drain's `killall`) is not retried.
pub fn listener_start_cmd(port: u16) -> String {
    format!(
        "killall nc 2>/dev/null; mkdir -p /run/besser; rm -f /run/besser/rx.count /run/besser/rx.tmp; \
         ((nc -l -p {port} || {{ [ $? -eq 1 ] && nc -l {port}; }}) 2>/dev/null | wc -c > /run/besser/rx.tmp; mv /run/besser/rx.tmp /run/besser/rx.count) \
         </dev/null >/dev/null 2>&1 &"
    )
}

/// Waits up to `wait_s` for the listener's count, then stops it (what it had
/// received is still counted) and prints the count.
pub fn listener_drain_cmd(wait_s: u64) -> String {
    format!(
        "{wait}; [ -e /run/besser/rx.count ] || {{ killall nc 2>/dev/null; sleep 1; }}; \
         cat /run/besser/rx.count 2>/dev/null",
        wait = wait_cmd("[ -e /run/besser/rx.count ]", wait_s)
    )
}

/// Shell that waits until `cond` holds or `timeout_s` seconds (to one more)
/// have passed on the device's clock (`/proc/uptime`, read with the shell's
/// own `read`), checking every 10 ms. Time, not a count of tries: a try costs a fork or
/// two, which on a slow device is more than the 10 ms between them.
pub fn wait_cmd(cond: &str, timeout_s: u64) -> String {
    format!(
        "read _t0 _x < /proc/uptime; _t0=${{_t0%.*}}; until {cond}; do read _t _x < /proc/uptime; \
         [ \"${{_t%.*}}\" -gt $((_t0 + {timeout_s})) ] && break; sleep 0.01; done"
    )
}

/// A device-side test (exit status) that something listens on TCP `port`;
/// the host still judges the TCP table itself with [`analysis::tcp_listening`].
pub fn listening_test_cmd(port: u16) -> String {
    format!(
        "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk '$4==\"0A\" && $2 ~ /:{port:04X}$/ {{f=1}} END {{exit !f}}'"
    )
}

pub const SECTION_TAG: &str = "@@besser-section:";

/// A shell command printing the line that opens section `name` of a
/// combined command's output.
pub fn section(name: &str) -> String {
    format!("echo '{SECTION_TAG}{name}@@'")
}

/// Splits a combined command's output into its sections (text before the
/// first tag is dropped). Each section keeps its text byte for byte.
pub fn split_sections(out: &str) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    let mut cur: Option<(String, String)> = None;
    for line in out.split_inclusive('\n') {
        let t = line.trim_end_matches('\n');
        if let Some(name) = t
            .strip_prefix(SECTION_TAG)
            .and_then(|r| r.strip_suffix("@@"))
        {
            if let Some((n, body)) = cur.take() {
                m.insert(n, body);
            }
            cur = Some((name.to_string(), String::new()));
        } else if let Some((_, body)) = cur.as_mut() {
            body.push_str(line);
        }
    }
    if let Some((n, body)) = cur {
        m.insert(n, body);
    }
    m
}

/// The command that tells whether something listens on a port (for
/// [`analysis::tcp_listening`]).
pub const LISTENING_CHECK_CMD: &str = "cat /proc/net/tcp /proc/net/tcp6 2>/dev/null; true";

/// The device poll of the traffic phase: the data interface's `rx_bytes`
/// and whether the rep's listener still runs ([`parse_poll`]).
pub fn poll_cmd(iface: &str) -> String {
    format!(
        "cat /sys/class/net/{iface}/statistics/rx_bytes; pidof nc >/dev/null && echo {} || echo {}",
        Listener::Alive.word(),
        Listener::Gone.word()
    )
}

/// Whether the rep's listener (`nc`) still runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    Alive,
    Gone,
}

impl Listener {
    fn word(self) -> &'static str {
        match self {
            Listener::Alive => "alive",
            Listener::Gone => "gone",
        }
    }
}

/// [`poll_cmd`]'s reply; a line that does not read is `None` (the poll
/// saw nothing, which is not a wedge by itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollReply {
    pub rx_bytes: Option<u64>,
    pub listener: Option<Listener>,
}

pub fn parse_poll(out: &str) -> PollReply {
    let mut l = out.lines();
    let rx_bytes = l.next().and_then(|x| x.trim().parse().ok());
    let listener = l.next().and_then(|x| match x.trim() {
        "alive" => Some(Listener::Alive),
        "gone" => Some(Listener::Gone),
        _ => None,
    });
    PollReply { rx_bytes, listener }
}

/// What [`enable_events_cmd`] printed for one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventState {
    Enabled,
    /// Absent on the device, or enabling it failed.
    Missing,
}

/// [`enable_events_cmd`]'s reply: each `system/event` path it reported.
pub fn parse_event_states(out: &str) -> Vec<(String, EventState)> {
    out.lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(p) = l.strip_prefix("enabled ") {
                Some((p.to_string(), EventState::Enabled))
            } else {
                l.strip_prefix("missing ")
                    .map(|p| (p.to_string(), EventState::Missing))
            }
        })
        .collect()
}

/// The rep's start, one remote command: a fresh listener (first, so it
/// comes up while the rest runs: resizing the ftrace buffer alone takes
/// ~0.1 s on the virtual device), boot identity, ftrace armed, the
/// kernel-log marker, the data interface's counters, and the TCP table once
/// the listener shows up; one section each ([`REP_START_SECTIONS`]).
pub struct RepStart<'a> {
    pub marker: &'a str,
    pub iface: &'a str,
    pub port: u16,
    /// `system/event` paths ([`event_path`]).
    pub events: &'a [String],
    pub trace_buffer_kb: u32,
    /// How long the device waits for its listener before it answers.
    pub listen_timeout_s: u64,
}

/// The sections of [`rep_start_cmd`]'s reply and what each holds.
pub const REP_START_SECTIONS: &[(&str, &str)] = &[
    ("boot", "the boot_id and /proc/uptime"),
    ("events", "`enabled`/`missing` per ftrace event"),
    ("counters", "the data interface's counters"),
    ("tcp", "the TCP table"),
];

pub fn rep_start_cmd(s: &RepStart<'_>) -> String {
    format!(
        "{listen}\n\
         {boot}; cat /proc/sys/kernel/random/boot_id /proc/uptime; \
         {tf}; echo 0 > $T/tracing_on; echo > $T/set_event; {evs}; {enable}\
         echo {kb} > $T/buffer_size_kb; echo > $T/trace; echo 1 > $T/tracing_on; \
         echo {m} > /dev/kmsg; {cnt}; {counters}; \
         {wait}; {tcp}; {LISTENING_CHECK_CMD}",
        boot = section("boot"),
        evs = section("events"),
        enable = enable_events_cmd(s.events),
        tf = tracefs(),
        kb = s.trace_buffer_kb,
        m = sh_quote(s.marker),
        cnt = section("counters"),
        counters = counters_cmd(s.iface),
        listen = listener_start_cmd(s.port),
        wait = wait_cmd(&listening_test_cmd(s.port), s.listen_timeout_s),
        tcp = section("tcp"),
    )
}

/// The rep's collection, one remote command: the listener's count,
/// counters, uptime, kernel log, the chip model's counters and the trace;
/// each section saved as its file ([`REP_COLLECT_FILES`]).
pub fn rep_collect_cmd(iface: &str, drain_s: u64) -> String {
    format!(
        "{l}; {drain}; {tf}; echo 0 > $T/tracing_on; {c}; {counters}; {u}; cat /proc/uptime; \
         {d}; dmesg; {ch}; cat {chip}/chip 2>/dev/null; {t}; cat $T/trace",
        l = section("listener"),
        drain = listener_drain_cmd(drain_s),
        tf = tracefs(),
        c = section("counters"),
        counters = counters_cmd(iface),
        u = section("uptime"),
        d = section("dmesg"),
        ch = section("chip"),
        chip = crate::chip_fault::SIM_DEBUGFS,
        t = section("trace"),
    )
}

/// (section, file in the rep directory, what it holds) of [`rep_collect_cmd`].
pub const REP_COLLECT_FILES: [(&str, &str, &str); 6] = [
    ("listener", "listener.txt", "the listener's byte count"),
    (
        "counters",
        "counters-after.txt",
        "the data interface's counters",
    ),
    ("uptime", "uptime-end.txt", "/proc/uptime"),
    ("dmesg", "dmesg.txt", "the kernel log"),
    (
        "chip",
        "chip-after.txt",
        "the chip model's counters (empty without the simulated host)",
    ),
    ("trace", "trace.txt", "the ftrace buffer"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The device-side listening test as a shell runs it: true for a port
    /// something listens on, false for one nothing does. (besser's kernels
    /// have no IPv6: `awk` given a missing /proc/net/tcp6 exits non-zero, so
    /// the test reads the tables through `cat` and only judges the rows.)
    #[test]
    fn the_listening_test_judges_the_tcp_table_not_the_files() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let run = |p: u16| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(listening_test_cmd(p))
                .status()
                .unwrap()
                .success()
        };
        assert!(run(port));
        drop(l);
        assert!(!run(port));
    }

    #[test]
    fn sections_split_byte_for_byte() {
        let out = format!(
            "noise\n{t}a@@\nline 1\n\nline 3\n{t}b@@\n{t}c@@\nno newline",
            t = SECTION_TAG
        );
        let m = split_sections(&out);
        assert_eq!(m["a"], "line 1\n\nline 3\n");
        assert_eq!(m["b"], "");
        assert_eq!(m["c"], "no newline");
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn enabled_and_missing_events_from_the_start_output() {
        let cfg: Vec<String> = ["workqueue:workqueue_execute_start", "bes2600/bh_rx"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cmd = crate::device::commands::enable_events_cmd(&[event_path(&cfg[0]).unwrap()]);
        assert!(
            cmd.contains("$T/events/workqueue/workqueue_execute_start/enable"),
            "{cmd}"
        );
        // bh_rx absent on this kernel; nothing printed at all counts as missing too.
        let (on, off) = enabled_events(
            &cfg,
            "enabled workqueue/workqueue_execute_start\nmissing bes2600/bh_rx\n",
        )
        .unwrap();
        assert_eq!((on.as_slice(), off.as_slice()), (&cfg[..1], &cfg[1..]));
        let (on, off) = enabled_events(&cfg, "").unwrap();
        assert!(on.is_empty() && off == cfg);
        assert!(event_path("workqueue:x; reboot").is_err());
    }

    #[test]
    fn section_command_prints_the_tag() {
        assert_eq!(section("dmesg"), "echo '@@besser-section:dmesg@@'");
        assert!(listening_test_cmd(5001).contains(":1389$/"));
    }

    #[test]
    fn a_poll_reply_reads_alive_gone_and_nothing_else() {
        assert_eq!(
            parse_poll("1234\nalive\n"),
            PollReply {
                rx_bytes: Some(1234),
                listener: Some(Listener::Alive)
            }
        );
        assert_eq!(parse_poll("99\ngone\n").listener, Some(Listener::Gone));
        // A cut or garbled reply is "not seen", never "gone" (which would
        // wedge the rep) nor "alive".
        assert_eq!(
            parse_poll("12"),
            PollReply {
                rx_bytes: Some(12),
                listener: None
            }
        );
        assert_eq!(
            parse_poll("cat: x: No such file\nalivex\n"),
            PollReply {
                rx_bytes: None,
                listener: None
            }
        );
        let cmd = poll_cmd("wlan0");
        assert!(cmd.contains("echo alive || echo gone"), "{cmd}");
    }

    #[test]
    fn event_states_are_read_per_line() {
        let s = parse_event_states(
            "enabled workqueue/workqueue_execute_start\nmissing bes2600/bh_rx\nnoise\n",
        );
        assert_eq!(
            s,
            [
                (
                    "workqueue/workqueue_execute_start".to_string(),
                    EventState::Enabled
                ),
                ("bes2600/bh_rx".to_string(), EventState::Missing)
            ]
        );
    }

    #[test]
    fn the_rep_commands_open_every_section_their_readers_require() {
        let start = rep_start_cmd(&RepStart {
            marker: "m'1",
            iface: "wlan0",
            port: 5001,
            events: &["sched/sched_wakeup".into()],
            trace_buffer_kb: 1024,
            listen_timeout_s: 10,
        });
        for (name, _) in REP_START_SECTIONS {
            assert!(start.contains(&section(name)), "{name}");
        }
        assert!(start.contains("echo 'm'\\''1' > /dev/kmsg"), "{start}");
        let collect = rep_collect_cmd("wlan0", 10);
        for (name, _, _) in REP_COLLECT_FILES {
            assert!(collect.contains(&section(name)), "{name}");
        }
    }

    /// The wait runs in a POSIX shell (here the host's `sh`; the devices'
    /// busybox ash reads it the same): a condition that never holds ends it
    /// after its timeout, not before and not a try count later; one that
    /// holds ends it at once.
    #[test]
    fn the_device_wait_is_timed_not_counted() {
        let run = |cond: &str, t: u64| {
            let t0 = std::time::Instant::now();
            let st = std::process::Command::new("sh")
                .arg("-c")
                .arg(wait_cmd(cond, t))
                .status()
                .unwrap();
            assert!(st.success());
            t0.elapsed().as_secs_f64()
        };
        let waited = run("false", 1);
        assert!(
            (1.0..3.0).contains(&waited),
            "waited {waited} s for a 1-s timeout"
        );
        assert!(run("true", 5) < 0.5);
    }
}
