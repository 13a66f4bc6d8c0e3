//! What the boot test concludes from what a booted image reports: pure
//! functions over the guest's `uname -r`, `/proc/config.gz`, `/proc/lockdep_stats`
//! and `dmesg`, so every verdict is testable without a VM.

use crate::kconfig::{parse_dot_config, Value};
use crate::manifest::Manifest;

/// The splats in `dmesg` (with their 1-based line numbers), judged by the
/// one classifier ([`besser_klog::splat::find_splats`]) so a boot test
/// and a ramp reach the same verdict on the same kernel log: WARN/BUG/oops/
/// panic, lockdep reports (lockdep turns itself off after its first, so one
/// in a prove-locking boot also means the rest of the run is blind), "turning
/// off the locking correctness validator" and hung tasks.
pub fn find_splats(dmesg: &str) -> Vec<(usize, String)> {
    use besser_klog::{dmesg::strip_dmesg_prefix, splat::find_splats as classify};
    let lines: Vec<&str> = dmesg.lines().collect();
    // The classifier reports splats in log order; find each one's first line
    // after the previous one's, so a repeated message gets its own number.
    let mut from = 0;
    classify(&lines)
        .into_iter()
        .map(|s| {
            let i = (from..lines.len())
                .find(|&i| strip_dmesg_prefix(lines[i]) == s.first_line)
                .unwrap_or(from.min(lines.len().saturating_sub(1)));
            from = i + 1;
            (i + 1, format!("{} [{}]", lines[i].trim(), s.kind.as_str()))
        })
        .collect()
}

/// `debug_locks` from `/proc/lockdep_stats` (1 while lockdep is active).
pub fn debug_locks(lockdep_stats: &str) -> Option<u32> {
    lockdep_stats.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == "debug_locks").then(|| v.trim().parse().ok())?
    })
}

/// One check of the boot test and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// What the guest reported.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub uname_r: String,
    /// `zcat /proc/config.gz`
    pub proc_config: String,
    /// `/proc/lockdep` exists
    pub proc_lockdep: bool,
    /// `/proc/lockdep_stats`, empty if absent
    pub lockdep_stats: String,
    pub dmesg: String,
    /// `/proc/modules`
    pub modules: String,
    /// `vendor device` of every SDIO function (`/sys/bus/sdio/devices/*`),
    /// one per line.
    pub sdio_ids: String,
    /// `/sys/bus/sdio/devices/*/modalias`, one per line.
    pub sdio_modalias: String,
    /// `/sys/module/bes2600/srcversion`, empty if absent.
    pub driver_srcversion: String,
    /// `iw dev <wlan> scan` through the driver (QEMU boards).
    pub scan_2ghz: String,
    /// The chip model's counters (debugfs `besser_sdio_sim/chip`) before and
    /// after a multi-channel 5 GHz scan, and after a single-channel one.
    pub chip_before: String,
    pub chip_after_5ghz_multi: String,
    pub chip_after_5ghz_single: String,
    /// A scan while the chip model withholds scan-completes (fault
    /// `drop_scan_complete_every 1`): `rc=N` of a `timeout 20 iw … scan`,
    /// then, the fault cleared, a normal scan's output and the chip's
    /// counters.
    pub scan_withheld: String,
    /// `iw dev <wlan> link` after `iw … connect besser` (open network).
    pub link_open: String,
    /// `iw dev <wlan> link` after connecting with a static WEP key to the
    /// AP made a privacy network, and the chip's counters then.
    pub link_wep: String,
    pub chip_after_wep: String,
    /// A pktgen TX flood on the associated interface: the chip's
    /// `tx_frames` line before and after, and pktgen's `Result:` line.
    pub tx_flood: String,
    /// The chip's counters after `iw … set power_save on`, then `off`, then
    /// with the model refusing set-PM (fault `pm_refused 1`): `on` (refused,
    /// latches), `off` and `on` again (the latch holds both back).
    pub chip_after_ps_on: String,
    pub chip_after_ps_off: String,
    pub chip_after_ps_refused: String,
    /// `dmesg` after `rmmod bes2600` (and the simulated host), empty if the
    /// image has no driver.
    pub dmesg_after_rmmod: String,
}

/// A counter of the chip model's debugfs dump (`name value` lines).
pub fn chip_counter(dump: &str, name: &str) -> Option<u64> {
    dump.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok())?
    })
}

/// `keys_by_type [a, b, …]` of the chip's dump: keys installed per WSM type.
pub fn chip_keys(dump: &str) -> Option<Vec<u64>> {
    let l = dump.lines().find_map(|l| l.strip_prefix("keys_by_type "))?;
    l.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|v| v.trim().parse().ok())
        .collect()
}

/// `NAME a b c d` of the chip's dump: four numbers (per queue, VO..BK).
pub fn chip_quad(dump: &str, name: &str) -> Option<[u64; 4]> {
    let l = dump
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?;
    let v: Vec<u64> = l
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

/// What `iw … link` prints when associated with the simulated AP.
pub const SIM_AP_LINK: &str = "Connected to 02:be:57:00:00:01";

/// The simulated AP (`driver/sim/src/ap.rs`): its SSID and channel 6.
pub const SIM_AP_SSID: &str = "SSID: besser";
pub const SIM_AP_FREQ: &str = "freq: 2437";

/// What the MMC core prints when it enumerates an SDIO card.
pub const SDIO_CARD_MARKER: &str = ": new SDIO card at address";
/// What bes2600.ko prints once the firmware's startup indication arrived.
pub const DRIVER_UP_MARKER: &str = "bes2600: firmware up,";
/// The BES2600's SDIO ids as sysfs prints them.
pub const BES2600_SDIO_IDS: &str = "0xbe57 0x2002";
/// bes2600's module alias, as `file2alias.c` `do_sdio_entry` writes one for
/// an id table entry with any class (`module!` in driver/kmod/bes2600.rs).
pub const BES2600_SDIO_ALIAS: &str = "sdio:c*vBE57d2002*";

/// fnmatch-style matching with `*` only (what module aliases use; modprobe
/// matches a device's modalias against them with fnmatch(3)).
pub fn glob_match(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, rest)) => {
            let Some(tail) = s.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

/// The line of dmesg the kernel's `rust_minimal` sample prints when loaded.
pub const RUST_SAMPLE_MODULE: &str = "rust_minimal";
pub const RUST_SAMPLE_MARKER: &str = "Rust minimal sample (init)";

/// Every check for one image; `image_config` is the image's `.config`.
pub fn evaluate(m: &Manifest, image_config: &str, o: &Observed) -> Vec<Check> {
    let mut checks = Vec::new();
    let uname = o.uname_r.trim();
    checks.push(Check {
        name: "uname -r matches the manifest",
        ok: uname == m.kernel_release,
        detail: format!("guest `{uname}`, manifest `{}`", m.kernel_release),
    });
    let want = parse_dot_config(image_config);
    let got = parse_dot_config(&o.proc_config);
    let mut diffs: Vec<String> = want
        .iter()
        .filter(|(k, v)| got.get(*k).unwrap_or(&Value::No) != *v)
        .map(|(k, v)| {
            format!(
                "CONFIG_{k}: image {v}, guest {}",
                got.get(k).unwrap_or(&Value::No)
            )
        })
        .chain(
            got.iter()
                .filter(|(k, v)| **v != Value::No && !want.contains_key(*k))
                .map(|(k, v)| format!("CONFIG_{k}: image not set, guest {v}")),
        )
        .collect();
    let ndiff = diffs.len();
    diffs.truncate(5);
    checks.push(Check {
        name: "/proc/config.gz equals the image's .config",
        ok: ndiff == 0 && !got.is_empty(),
        detail: if got.is_empty() {
            "guest /proc/config.gz is empty or missing".into()
        } else if ndiff == 0 {
            format!("{} options equal", want.len())
        } else {
            format!("{ndiff} differ: {}", diffs.join("; "))
        },
    });
    checks.push(Check {
        name: "guest kernel has Rust",
        ok: got.get("RUST") == Some(&Value::Yes),
        detail: format!("CONFIG_RUST {}", got.get("RUST").unwrap_or(&Value::No)),
    });
    let loaded = o
        .modules
        .lines()
        .any(|l| l.split_whitespace().next() == Some(RUST_SAMPLE_MODULE));
    let said = o.dmesg.contains(RUST_SAMPLE_MARKER);
    checks.push(Check {
        name: "a Rust module loads and runs",
        ok: loaded && said,
        detail: format!(
            "{RUST_SAMPLE_MODULE} in /proc/modules: {loaded}; `{RUST_SAMPLE_MARKER}` in dmesg: {said}"
        ),
    });
    if let Some(d) = &m.driver {
        driver_checks(d, o, &mut checks);
    }
    let prove = m.flavour == "prove-locking";
    if prove {
        let dl = debug_locks(&o.lockdep_stats);
        checks.push(Check {
            name: "lockdep is active",
            ok: o.proc_lockdep && dl == Some(1),
            detail: format!(
                "/proc/lockdep present: {}, debug_locks = {dl:?}",
                o.proc_lockdep
            ),
        });
    } else {
        checks.push(Check {
            name: "release has no lockdep",
            ok: !o.proc_lockdep,
            detail: format!("/proc/lockdep present: {}", o.proc_lockdep),
        });
    }
    let splats = find_splats(&o.dmesg);
    checks.push(Check {
        name: "no splat in dmesg",
        ok: splats.is_empty(),
        detail: if splats.is_empty() {
            format!("{} lines scanned", o.dmesg.lines().count())
        } else {
            splats
                .iter()
                .take(5)
                .map(|(n, l)| format!("line {n}: {l}"))
                .collect::<Vec<_>>()
                .join("; ")
        },
    });
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel's SDIO uevent is `sdio:c%02Xv%04Xd%04X`
    /// (drivers/mmc/core/sdio_bus.c, sdio_bus_uevent).
    #[test]
    fn the_module_alias_matches_the_cards_modalias_only() {
        assert!(glob_match(BES2600_SDIO_ALIAS, "sdio:c00vBE57d2002"));
        assert!(glob_match(BES2600_SDIO_ALIAS, "sdio:c07vBE57d2002"));
        assert!(!glob_match(BES2600_SDIO_ALIAS, "sdio:c00vBE57d2003"));
        assert!(!glob_match(BES2600_SDIO_ALIAS, "sdio:c00v0271d0301"));
        assert!(!glob_match(BES2600_SDIO_ALIAS, "pci:c00vBE57d2002"));
        assert!(glob_match("a*", "a") && !glob_match("a", "ab"));
    }

    #[test]
    fn lockdep_stats_debug_locks() {
        let s = " lock-classes:                          512 [max: 8192]\n debug_locks:                             1\n";
        assert_eq!(debug_locks(s), Some(1));
        assert_eq!(debug_locks(" debug_locks:  0\n"), Some(0));
        assert_eq!(debug_locks(""), None);
    }

    #[test]
    fn splats_are_found_with_line_numbers() {
        let d = "[    0.0] Linux version 6.12\n\
                 [ 5140.1] ======================================================\n\
                 [ 5140.1] WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected\n\
                 [ 5140.2] bes2600: ok\n";
        assert_eq!(
            find_splats(d),
            [(
                3,
                "[ 5140.1] WARNING: SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected [lockdep]"
                    .to_string()
            )]
        );
        assert!(find_splats("[ 1.0] besser-appliance: ready\n").is_empty());
    }

    /// The boot test and the lab's ramp judge a kernel log with one
    /// classifier: what the lab calls a splat (an x86 general protection
    /// fault, an arm64 "Unable to handle kernel") the boot test does too, and
    /// the hung-task and lockdep-off lines count in both.
    #[test]
    fn splats_are_the_labs_splats() {
        let d = "[ 1.0] general protection fault, probably for non-canonical address 0xdead: 0000 [#1] SMP\n\
                 [ 1.0] RIP: 0010:bes2600_tx+0x12/0x80 [bes2600]\n\
                 [ 2.0] Unable to handle kernel NULL pointer dereference at virtual address 0000000000000008\n\
                 [ 3.0] INFO: task kworker/0:1:42 blocked for more than 120 seconds.\n\
                 [ 4.0] turning off the locking correctness validator.\n\
                 [ 5.0] INFO: task kworker/0:1:42 blocked for more than 120 seconds.\n";
        let got: Vec<usize> = find_splats(d).into_iter().map(|(n, _)| n).collect();
        assert_eq!(got, [1, 3, 4, 5, 6]);
        let lab: Vec<&str> = d.lines().collect();
        assert_eq!(besser_klog::splat::find_splats(&lab).len(), got.len());
    }
}

/// The driver's part of the boot test: the card enumerated by the real MMC
/// core, bes2600.ko bound to it with the manifest's srcversion, the firmware
/// up, and a clean `rmmod`.
fn driver_checks(d: &crate::manifest::DriverModule, o: &Observed, checks: &mut Vec<Check>) {
    if d.sdio_sim.is_some() {
        let card = o.dmesg.lines().find(|l| l.contains(SDIO_CARD_MARKER));
        checks.push(Check {
            name: "the MMC core enumerates the SDIO card",
            ok: card.is_some(),
            detail: card.map_or_else(
                || format!("no `{SDIO_CARD_MARKER}` in dmesg"),
                |l| l.trim().to_string(),
            ),
        });
        let ids: Vec<&str> = o
            .sdio_ids
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        checks.push(Check {
            name: "the card is a BES2600 (vendor 0xbe57, device 0x2002)",
            ok: ids.contains(&BES2600_SDIO_IDS),
            detail: format!("/sys/bus/sdio/devices: {ids:?}"),
        });
        let aliases: Vec<&str> = o.sdio_modalias.split_whitespace().collect();
        checks.push(Check {
            name: "the card's modalias matches bes2600's module alias (autoload)",
            ok: aliases.iter().any(|a| glob_match(BES2600_SDIO_ALIAS, a)),
            detail: format!("card {aliases:?}, module `{BES2600_SDIO_ALIAS}`"),
        });
        let up = o.dmesg.lines().find(|l| l.contains(DRIVER_UP_MARKER));
        checks.push(Check {
            name: "bes2600.ko binds and its firmware starts",
            ok: up.is_some(),
            detail: up.map_or_else(
                || format!("no `{DRIVER_UP_MARKER}` in dmesg"),
                |l| l.trim().to_string(),
            ),
        });
    }
    if d.sdio_sim.is_some() {
        let seen = o.scan_2ghz.contains(SIM_AP_SSID) && o.scan_2ghz.contains(SIM_AP_FREQ);
        checks.push(Check {
            name: "iw scan lists the simulated AP on 2.4 GHz",
            ok: seen,
            detail: if seen {
                format!("`{SIM_AP_SSID}`, `{SIM_AP_FREQ}`")
            } else {
                format!(
                    "scan output: {:?}",
                    o.scan_2ghz.lines().take(4).collect::<Vec<_>>()
                )
            },
        });
        let c = |dump: &str, k: &str| chip_counter(dump, k);
        let (r0, j0) = (
            c(&o.chip_before, "scan_requests"),
            c(&o.chip_before, "scan_rejects"),
        );
        let (r1, j1) = (
            c(&o.chip_after_5ghz_multi, "scan_requests"),
            c(&o.chip_after_5ghz_multi, "scan_rejects"),
        );
        let (r2, j2) = (
            c(&o.chip_after_5ghz_single, "scan_requests"),
            c(&o.chip_after_5ghz_single, "scan_rejects"),
        );
        let guard_said = o.dmesg_after_rmmod.contains("Ghz5 leg refused")
            || o.dmesg.contains("Ghz5 leg refused");
        checks.push(Check {
            name: "a multi-channel 5 GHz scan is refused before the chip (no firmware reject)",
            ok: r0.is_some() && r1 == r0 && j1 == j0 && guard_said,
            detail: format!("chip scan requests {r0:?} -> {r1:?}, rejects {j0:?} -> {j1:?}, guard logged: {guard_said}"),
        });
        checks.push(Check {
            name: "a single-channel 5 GHz scan reaches the chip and passes",
            ok: matches!((r1, r2), (Some(a), Some(b)) if b == a + 1) && j2 == j1,
            detail: format!("chip scan requests {r1:?} -> {r2:?}, rejects {j1:?} -> {j2:?}"),
        });
    }
    if d.sdio_sim.is_some() {
        // Without the watchdog mac80211 waits for scan_completed forever:
        // the first `iw scan` never returns (rc 124 from `timeout`) and
        // every later scan is refused busy.
        let rc = o
            .scan_withheld
            .lines()
            .find_map(|l| l.strip_prefix("rc="))
            .map(str::trim);
        let said = o.dmesg_after_rmmod.contains("scan: timeout waiting for");
        let dropped = chip_counter(&o.scan_withheld, "scan_completes_dropped");
        let again = o.scan_withheld.contains(SIM_AP_SSID);
        checks.push(Check {
            name: "a scan whose completion never comes is ended by the watchdog (delayed work), the next scan works",
            ok: rc.is_some_and(|r| r != "124") && said && dropped.is_some_and(|n| n >= 1) && again,
            detail: format!(
                "iw scan rc {rc:?} (124: hung), watchdog logged: {said}, chip withheld {dropped:?}, next scan lists `{SIM_AP_SSID}`: {again}"
            ),
        });
        let open = o.link_open.contains(SIM_AP_LINK);
        checks.push(Check {
            name: "associates with the open network (iw connect)",
            ok: open,
            detail: o
                .link_open
                .lines()
                .next()
                .unwrap_or("no output")
                .trim()
                .to_string(),
        });
        let keys = chip_keys(&o.chip_after_wep);
        let wep = o.link_wep.contains(SIM_AP_LINK);
        let ok =
            wep && matches!(&keys, Some(k) if k.len() >= 4 && k[0] >= 1 && k[2] == 0 && k[3] == 0);
        checks.push(Check {
            name: "a static WEP key reaches the chip as WSM type 0 (WEP default), no TKIP type",
            ok,
            detail: format!(
                "associated: {wep}; chip keys by type: {keys:?} (0 WEP default, 1 WEP pairwise, 2/3 TKIP, 4/5 AES)"
            ),
        });
        // mac80211 sets EDCA defaults for every AC when it associates
        // (`ieee80211_set_wmm_default`): conf_tx must carry them to the chip
        // in the firmware's layout, so the model reads sane contention windows.
        let n = chip_counter(&o.chip_after_wep, "edca_requests");
        let (cmin, cmax) = (
            chip_quad(&o.chip_after_wep, "edca_cwmin"),
            chip_quad(&o.chip_after_wep, "edca_cwmax"),
        );
        let sane = matches!((cmin, cmax), (Some(a), Some(b))
            if a.iter().zip(&b).all(|(lo, hi)| *lo > 0 && lo <= hi && (lo + 1).is_power_of_two()));
        checks.push(Check {
            name: "mac80211's EDCA parameters reach the chip (conf_tx)",
            ok: n.is_some_and(|n| n >= 4) && sane,
            detail: format!(
                "chip EDCA requests {n:?}, cwmin {cmin:?}, cwmax {cmax:?} (VO, VI, BE, BK)"
            ),
        });
    }
    if d.sdio_sim.is_some() {
        // pktgen outruns the bh: `Radio::tx` must stop mac80211's queue when
        // an AC is full and the bh must wake it again (a queue left stopped
        // is a wedged link). bes2600 logs both counts when it is removed.
        let tx: Vec<u64> = o
            .tx_flood
            .lines()
            .filter_map(|l| l.strip_prefix("tx_frames "))
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        let moved = match tx.as_slice() {
            [a, b] => b.saturating_sub(*a),
            _ => 0,
        };
        let pktgen_ok = o.tx_flood.contains("Result: OK");
        let counts = o.dmesg_after_rmmod.lines().find_map(|l| {
            let rest = l.split_once("bes2600: removed (tx queue stops ")?.1;
            let (stops, rest) = rest.split_once(", wakes ")?;
            let wakes = rest.trim_end().strip_suffix(')')?;
            Some((stops.parse::<u64>().ok()?, wakes.parse::<u64>().ok()?))
        });
        checks.push(Check {
            name: "a TX flood (pktgen) fills bes2600's queues: mac80211's queue stopped, woken again, frames reach the chip",
            ok: pktgen_ok
                && moved >= 1000
                && matches!(counts, Some((s, w)) if s >= 1 && w == s),
            detail: format!(
                "pktgen finished: {pktgen_ok}; chip took {moved} frames; (stops, wakes) {counts:?}"
            ),
        });
    }
    if d.sdio_sim.is_some() {
        // bes2600 `ap.c` 988-1019 via the core's `pm::set_pm_request`:
        // power save on -> WSM_PSM_PS (mac80211 leaves dynamic_ps_timeout 0
        // for SUPPORTS_DYNAMIC_PS hardware), off -> WSM_PSM_ACTIVE.
        let c = |dump: &str| {
            (
                chip_counter(dump, "pm_requests"),
                chip_counter(dump, "last_pm_mode"),
                chip_counter(dump, "pm_refused"),
            )
        };
        let (on, off, refused) = (
            c(&o.chip_after_ps_on),
            c(&o.chip_after_ps_off),
            c(&o.chip_after_ps_refused),
        );
        let carried = matches!((on, off), ((Some(n1), Some(1), _), (Some(n2), Some(0), _)) if n1 >= 1 && n2 == n1 + 1);
        checks.push(Check {
            name: "iw power_save on/off reaches the chip as WSM PS / active (set_pm)",
            ok: carried,
            detail: format!(
                "chip (set-PM requests, last mode): on {:?}, off {:?}",
                (on.0, on.1),
                (off.0, off.1)
            ),
        });
        // The core's latch in the kernel: the refused request is the last
        // one the chip sees; the next is held back and said so.
        let suppressed = o
            .dmesg_after_rmmod
            .contains("suppressed, the firmware refused power save");
        let latched = matches!((off, refused), ((Some(n2), _, Some(r0)), (Some(n3), _, Some(r1))) if n3 == n2 + 1 && r1 == r0 + 1);
        checks.push(Check {
            name: "a refused set_pm latches power save off (the core's PM policy)",
            ok: latched && suppressed,
            detail: format!(
                "chip set-PM requests {:?} -> {:?}, refused {:?} -> {:?}; bes2600 logged the suppression: {suppressed}",
                off.0, refused.0, off.2, refused.2
            ),
        });
    }
    let sv = o.driver_srcversion.trim();
    checks.push(Check {
        name: "the running bes2600 is the manifest's (srcversion)",
        ok: sv == d.srcversion,
        detail: format!("guest `{sv}`, manifest `{}`", d.srcversion),
    });
    if d.sdio_sim.is_some() {
        let before = o.dmesg.lines().count();
        let tail: String = o
            .dmesg_after_rmmod
            .lines()
            .skip(before)
            .map(|l| format!("{l}\n"))
            .collect();
        let splats = find_splats(&tail);
        let removed = o.dmesg_after_rmmod.contains("card 0001 removed");
        checks.push(Check {
            name: "rmmod bes2600 and the simulated host: clean",
            ok: removed && splats.is_empty(),
            detail: if splats.is_empty() {
                format!("card removed: {removed}, no splat")
            } else {
                splats
                    .iter()
                    .map(|(_, s)| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
                    .to_string()
            },
        });
    }
}
