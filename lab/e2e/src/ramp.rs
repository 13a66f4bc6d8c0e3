//! End-to-end and fault tests on the virtual lab device. They boot QEMU, so
//! they are not `cargo test` tests: `cargo xtask test` runs them as their own
//! steps, each under the machine-wide VM lock (taken by [`Vm::boot`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use besser_klog::splat::SplatKind;
use besser_lab::assets::{self, VmImage};
use besser_lab::device::inventory::{Device, Reboot};
use besser_lab::ramp::analysis::RepStatus;
use besser_lab::ramp::command::{self, DeviceChoice, RampOptions};
use besser_lab::ramp::report;
use besser_lab::ramp::{self, Ramp, RampConfig, RampError};
use besser_lab::rundir;
use besser_lab::vm::{Vm, VmOptions};

/// A real-looking WARN splat, written line by line to `/dev/kmsg` at
/// warning level. It is a *pattern* test of the detector: the lines enter
/// the kernel log with the user facility, not from a real `WARN_ON()`.
pub const INJECTED_WARN: &[&str] = &[
    "------------[ cut here ]------------",
    "WARNING: CPU: 0 PID: 187 at drivers/staging/bes2600/bh.c:412 bes2600_bh_rx_helper+0x1a4/0x2c0 [bes2600]",
    "Modules linked in: bes2600 mac80211 cfg80211 virtio_net",
    "CPU: 0 PID: 187 Comm: bes2600_bh Not tainted 6.1.0 #1",
    "RIP: 0010:bes2600_bh_rx_helper+0x1a4/0x2c0 [bes2600]",
    "Call Trace:",
    " <TASK>",
    " bes2600_bh+0x3c8/0x7a0 [bes2600]",
    " kthread+0xe8/0x110",
    " </TASK>",
    "---[ end trace 0000000000000000 ]---",
];

fn inject_warn_cmd() -> String {
    INJECTED_WARN
        .iter()
        .map(|l| format!("echo '<4>{}' > /dev/kmsg", l.replace('\'', "")))
        .collect::<Vec<_>>()
        .join("; ")
}

fn scratch(name: &str) -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("besser-lab-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d)?;
    Ok(d)
}

fn opts(cfg: RampConfig, runs: &Path, image: &VmImage, target: &Path) -> RampOptions {
    RampOptions {
        config: cfg,
        runs_dir: runs.to_path_buf(),
        resume: None,
        predictions: None,
        device: DeviceChoice::Vm {
            image: image.clone(),
            fresh: true,
        },
        target_dir: target.to_path_buf(),
        trust_new_host_key: false,
        boot_timeout_s: None,
        reboot_override: None,
        interrupt: None,
        stop_before_next: None,
    }
}

/// One 5-s fresh-boot rep during which the device loads `plant_ko` (a
/// module that plants a SOFTIRQ-safe -> SOFTIRQ-unsafe lock inversion):
/// the rep's analysis must name lockdep's splat and its module, and the
/// report must leave the no-splat receipt unticked. Returns the run dir.
pub fn planted_inversion_is_reported(
    target: &Path,
    image: &VmImage,
    plant_ko: &str,
) -> Result<PathBuf> {
    let runs = scratch("plant")?;
    let mut cfg = RampConfig::new("lock-plant");
    cfg.reps = 1;
    cfg.duration_s = 5.0;
    cfg.fault_cmd = Some(format!("insmod {plant_ko}"));
    let out = command::run_ramp(opts(cfg, &runs, image, target))?;
    out.result
        .with_context(|| format!("ramp in {}", out.run_dir.display()))?;
    let dir = out.run_dir;
    let run = ramp::load_run(&dir)?;
    let reps = ramp::finished_reps(&dir, &run)?;
    let r = reps.first().context("no rep finished")?;
    ensure!(r.bytes_received.unwrap_or(0) > 0, "no bytes arrived");
    let hit = r.splats.iter().find(|s| {
        s.kind == SplatKind::Lockdep
            && s.first_line
                .contains("SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected")
    });
    let hit =
        hit.with_context(|| format!("no SOFTIRQ inversion among the splats {:?}", r.splats))?;
    ensure!(
        hit.call_site
            .as_deref()
            .unwrap_or("")
            .contains("besser_lock_plant"),
        "the splat's call site {:?} does not name the planting module",
        hit.call_site
    );
    let md = fs::read_to_string(dir.join("report.md"))?;
    ensure!(
        md.contains("- [ ] no WARN/BUG/oops/lockdep splat under stress (1 found)"),
        "report.md does not untick the no-splat receipt"
    );
    ensure!(
        md.contains("SOFTIRQ-safe -> SOFTIRQ-unsafe lock order detected"),
        "report.md does not name the splat"
    );
    Ok(dir)
}

/// What a chip fault must do to a rep: the driver recovers (bytes arrive,
/// the fault was really injected), or its bh halts with this reason.
enum Expect {
    Recovers {
        injected: &'static str,
    },
    Halts {
        why: &'static str,
        counter: &'static str,
    },
    Degrades,
}

/// The chip-model faults of issue 9, one fresh-boot 5-s rep each on an image
/// with the simulated SDIO host: each is recovered from or fails cleanly
/// (bh halted with its reason), never a kernel splat, and the rep records it
/// (`chip-after.txt`, the report's chip model section). Returns one summary
/// line per fault.
pub fn chip_faults(target: &Path, image: &VmImage) -> Result<Vec<String>> {
    // A scan a second after the fault: a command whose confirm can be lost.
    const SCAN: &str = "; (sleep 1; iw dev wlan0 scan) </dev/null >/dev/null 2>&1 &";
    // (fault, what follows it, rep seconds, expectation): a lost confirm
    // halts after the core's 10-s command timeout (`bh::CMD_TIMEOUT_MS`).
    let cases: [(&str, &str, f64, Expect); 6] = [
        (
            "ctrl_crc_every 25",
            "",
            5.0,
            Expect::Recovers {
                injected: "ctrl_crc_injected",
            },
        ),
        (
            "data_crc_every 25",
            "",
            5.0,
            Expect::Recovers {
                injected: "data_crc_injected",
            },
        ),
        (
            "stale_ctrl_every 25",
            "",
            5.0,
            Expect::Recovers {
                injected: "stale_ctrl_injected",
            },
        ),
        (
            "drop_confirm_every 1",
            SCAN,
            14.0,
            Expect::Halts {
                why: "CommandTimeout",
                counter: "confirms_dropped",
            },
        ),
        (
            "exception_in_ms 1500",
            "",
            5.0,
            Expect::Halts {
                why: "FirmwareException",
                counter: "exceptions_raised",
            },
        ),
        ("degrade_in_ms 0", "", 5.0, Expect::Degrades),
    ];
    let runs = scratch("chip-faults")?;
    let mut lines = Vec::new();
    for (spec, then, duration_s, expect) in cases {
        let mut cfg = RampConfig::new("chip-fault");
        cfg.reps = 1;
        cfg.duration_s = duration_s;
        cfg.fault_cmd = Some(format!(
            "{}{then}",
            besser_lab::chip_fault::chip_fault_cmd(&[spec.to_string()])?
        ));
        let out = command::run_ramp(opts(cfg.clone(), &runs, image, target))?;
        let dir = out.run_dir.clone();
        let ctx = || format!("--chip-fault {spec:?} ({})", dir.display());
        let run = ramp::load_run(&dir).with_context(ctx)?;
        let reps = ramp::finished_reps(&dir, &run).with_context(ctx)?;
        let r = reps
            .first()
            .with_context(|| format!("{}: no rep finished", ctx()))?;
        ensure!(
            r.splats.is_empty(),
            "{}: kernel splats {:?}",
            ctx(),
            r.splats
        );
        ensure!(!r.chip.is_empty(), "{}: no chip counters recorded", ctx());
        let md = fs::read_to_string(dir.join("report.md"))?;
        ensure!(
            md.contains("## Chip model (simulated SDIO host)"),
            "{}: no chip section",
            ctx()
        );
        let got = |k: &str| r.chip.get(k).copied().unwrap_or(0);
        let line = match expect {
            Expect::Recovers { injected } => {
                ensure!(got(injected) > 0, "{}: {injected} = 0", ctx());
                ensure!(
                    r.driver_halt.is_none(),
                    "{}: bh halted: {:?}",
                    ctx(),
                    r.driver_halt
                );
                ensure!(
                    r.status == RepStatus::Ok && r.bytes_received.unwrap_or(0) > 0,
                    "{}: {:?}, {:?} bytes",
                    ctx(),
                    r.status,
                    r.bytes_received
                );
                format!(
                    "{spec}: recovered ({injected} {}, {:.3} MiB/s)",
                    got(injected),
                    r.mib_s.unwrap_or(0.0)
                )
            }
            Expect::Halts { why, counter } => {
                ensure!(
                    r.driver_halt.as_deref().is_some_and(|h| h.contains(why)),
                    "{}: expected the bh to halt with {why}, kernel log says {:?}",
                    ctx(),
                    r.driver_halt
                );
                ensure!(got(counter) > 0, "{}: {counter} = 0", ctx());
                format!(
                    "{spec}: failed cleanly (bh halted: {}, {counter} {}, rep {})",
                    why,
                    got(counter),
                    r.status.label()
                )
            }
            Expect::Degrades => {
                ensure!(
                    got("downlink_dropped") > 0,
                    "{}: nothing lost on the chip",
                    ctx()
                );
                let cap = cfg.rate_bytes_per_s / (1024.0 * 1024.0);
                ensure!(
                    r.mib_s.unwrap_or(0.0) < cap * 0.5,
                    "{}: {:?} MiB/s is not degraded (cap {cap})",
                    ctx(),
                    r.mib_s
                );
                format!(
                    "{spec}: degraded as Bug #5 ({:.3} MiB/s of {cap:.0}, {} frames lost on the chip)",
                    r.mib_s.unwrap_or(0.0),
                    got("downlink_dropped")
                )
            }
        };
        lines.push(line);
    }
    let _ = fs::remove_dir_all(&runs);
    Ok(lines)
}

/// 3 reps of `duration_s`, each on a fresh boot: bytes really arrive, the
/// report is complete, and `lab report` re-makes it byte for byte.
pub fn fresh_boot_ramp(
    target: &Path,
    image: &VmImage,
    reps: u32,
    duration_s: f64,
) -> Result<PathBuf> {
    let runs = scratch("e2e")?;
    let mut cfg = RampConfig::new("e2e");
    cfg.reps = reps;
    cfg.duration_s = duration_s;
    let out = command::run_ramp(opts(cfg, &runs, image, target))?;
    out.result
        .with_context(|| format!("ramp in {}", out.run_dir.display()))?;
    let dir = out.run_dir;
    let run = ramp::load_run(&dir)?;
    let reps_a = ramp::finished_reps(&dir, &run)?;
    ensure!(
        reps_a.len() == reps as usize,
        "{} of {reps} reps finished",
        reps_a.len()
    );
    let mut ids = Vec::new();
    for r in &reps_a {
        ensure!(r.status == RepStatus::Ok, "rep {}: {:?}", r.rep, r.status);
        let got = r.bytes_received.context("no listener count")?;
        ensure!(got > 0, "rep {}: no bytes arrived", r.rep);
        ensure!(
            got == r.bytes_sent,
            "rep {}: sent {} but the listener counted {got}",
            r.rep,
            r.bytes_sent
        );
        ensure!(
            r.rx_bytes_delta.unwrap_or(0) >= got,
            "rep {}: rx_bytes delta below the payload",
            r.rep
        );
        ensure!(
            r.uptime_start_s.unwrap_or(f64::MAX) < 120.0,
            "rep {}: not a fresh boot",
            r.rep
        );
        ensure!(
            r.marker_found,
            "rep {}: marker missing from the kernel log",
            r.rep
        );
        ensure!(
            r.trace_events > 0,
            "rep {}: no workqueue events traced",
            r.rep
        );
        ensure!(
            r.events_enabled.as_deref()
                == Some(
                    &besser_lab::ramp::DEFAULT_EVENTS
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()[..]
                )
                && r.events_missing.is_empty(),
            "rep {}: enabled events {:?}, missing {:?}",
            r.rep,
            r.events_enabled,
            r.events_missing
        );
        // The strict parsers read all of the real device's output.
        ensure!(
            r.bad_lines.is_empty(),
            "rep {}: unreadable device lines {:?}",
            r.rep,
            r.bad_lines
        );
        for raw in [ramp::START_OUT, ramp::COLLECT_OUT] {
            ensure!(
                dir.join(format!("rep-{}", r.rep)).join(raw).exists(),
                "rep {}: {raw} not kept",
                r.rep
            );
        }
        ids.push(r.boot_id.clone());
        let j: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(ramp::rep_json(&dir, r.rep))?)?;
        for k in [
            "boot_id",
            "uptime_start_s",
            "bytes_sent",
            "bytes_received",
            "analysis",
        ] {
            ensure!(!j[k].is_null(), "rep-{}.json lacks {k}", r.rep);
        }
    }
    ids.sort();
    ids.dedup();
    ensure!(
        ids.len() == reps as usize,
        "boot_ids repeat: not a fresh boot per rep"
    );
    let md = fs::read_to_string(dir.join("report.md"))?;
    for needle in [
        format!("N={reps} stats: mean").as_str(),
        "## Receipts checklist",
        "- [x] every rep on a fresh boot",
        "- [x] fresh listener per rep",
        "- [x] no WARN/BUG/oops/lockdep splat",
        "- [x] telemetry (counters, trace, kernel log) collected over the wired link",
        "MB/s = MiB/s",
    ] {
        ensure!(md.contains(needle), "report.md lacks {needle:?}");
    }
    let sum = fs::read(dir.join("summary.json"))?;
    report::write_report(&dir, None)?;
    ensure!(
        fs::read_to_string(dir.join("report.md"))? == md,
        "re-made report.md differs"
    );
    ensure!(
        fs::read(dir.join("summary.json"))? == sum,
        "re-made summary.json differs"
    );
    Ok(dir)
}

/// Fault tests, one VM: unwritable run dir; host keys and an inventory
/// device; injected WARN; link cut → wedged; a device that never comes
/// back → clear error, earlier reps kept; then resume on a second VM.
pub fn faults(target: &Path, image: &VmImage) -> Result<()> {
    let runs = scratch("faults")?;

    // 1. Unwritable run dir: an error before anything runs (no VM booted).
    let file = runs.join("a-file");
    fs::write(&file, b"")?;
    let t0 = Instant::now();
    let mut cfg = RampConfig::new("unwritable");
    cfg.reps = 1;
    let bad = runs.join("a-file/runs");
    match command::run_ramp(opts(cfg, &bad, image, target)) {
        Ok(_) => bail!("a ramp into {} did not fail", bad.display()),
        Err(e) => {
            let m = format!("{e:#}");
            ensure!(
                m.contains("a-file/runs") && m.contains("nothing was run"),
                "unclear error: {m}"
            );
        }
    }
    ensure!(
        t0.elapsed() < Duration::from_secs(5),
        "the unwritable-dir error came late"
    );

    let keys = assets::lab_keys(target)?;
    let vm = Vm::boot(&VmOptions {
        image,
        keys: &keys,
        dir: &runs.join("vm"),
        detached: false,
    })?;
    let dev = vm.device();
    host_keys_and_inventory(&runs, target, image, &dev, &keys)?;

    // 2. Injected WARN → detected with its call site; receipt unticked.
    let mut cfg = RampConfig::new("warn");
    cfg.reps = 1;
    cfg.duration_s = 3.0;
    cfg.reboot = false;
    cfg.fault_cmd = Some(inject_warn_cmd());
    // An event this kernel lacks: reported missing, not counted as 0.
    cfg.events.push("besser:no_such_event".into());
    let dir = rundir::create_run_dir(&runs, "warn", rundir::now_unix())?;
    let mut r = Ramp::start(dir.clone(), cfg, dev.clone())?;
    r.run_all()?;
    let a = &ramp::finished_reps(&dir, &r.run)?[0];
    ensure!(
        a.splats.len() == 1,
        "expected 1 splat, found {:?}",
        a.splats
    );
    let s = &a.splats[0];
    ensure!(s.kind == SplatKind::Warn, "{s:?}");
    ensure!(
        s.call_site.as_deref()
            == Some("drivers/staging/bes2600/bh.c:412 bes2600_bh_rx_helper+0x1a4/0x2c0 [bes2600]"),
        "call site {:?}",
        s.call_site
    );
    ensure!(
        a.events_missing == ["besser:no_such_event"] && a.trace_events > 0,
        "missing events {:?}, {} workqueue events",
        a.events_missing,
        a.trace_events
    );
    let md = fs::read_to_string(dir.join("report.md"))?;
    ensure!(
        md.contains("- [ ] no WARN/BUG/oops/lockdep splat under stress (1 found)"),
        "receipt not unticked"
    );
    ensure!(
        md.contains("**ftrace events missing on the device** (not enabled: their counts are not measured, not 0): rep 1: `besser:no_such_event`."),
        "missing event not in the report"
    );
    ensure!(
        md.contains("WARN `WARNING: CPU: 0 PID: 187 at drivers/staging/bes2600/bh.c:412"),
        "splat not in report"
    );

    // 3. Data link cut mid-rep → wedged, telemetry collected over the wired link.
    let mut cfg = RampConfig::new("cut");
    cfg.reps = 1;
    cfg.duration_s = 30.0;
    cfg.stall_timeout_s = 4.0;
    cfg.reboot = false;
    cfg.fault_cmd = Some("(sleep 3; ip link set wlan0 down) </dev/null >/dev/null 2>&1 &".into());
    let dir = rundir::create_run_dir(&runs, "cut", rundir::now_unix())?;
    let mut r = Ramp::start(dir.clone(), cfg, dev.clone())?;
    let t0 = Instant::now();
    r.run_all()?;
    ensure!(
        t0.elapsed() < Duration::from_secs(25),
        "the wedge was not detected early"
    );
    let a = &ramp::finished_reps(&dir, &r.run)?[0];
    ensure!(
        matches!(a.status, RepStatus::Wedged { .. }),
        "rep status {:?}",
        a.status
    );
    ensure!(
        a.marker_found && a.trace_events > 0,
        "telemetry missing after the wedge"
    );
    ensure!(
        a.rx_bytes_delta.unwrap_or(0) > 0,
        "nothing arrived before the cut"
    );
    // What arrived before the cut is still counted (the listener is stopped, not lost).
    ensure!(
        a.bytes_received.unwrap_or(0) > 0,
        "the listener's count was lost: {:?}",
        a.bytes_received
    );
    let md = fs::read_to_string(dir.join("report.md"))?;
    ensure!(
        md.contains("| 1 | wedged |") && md.contains("**wedged**"),
        "report does not show the wedge"
    );
    // Bring the link back for the next test.
    besser_lab::device::transport::Transport::connect(&dev.wired)?
        .exec_ok("ip link set wlan0 up", Duration::from_secs(10))?;

    // 4. A device that never comes back: rep 1 done, rep 2's reboot powers
    //    the VM off → clear error naming the run dir; rep 1 kept.
    let mut cfg = RampConfig::new("lost");
    cfg.reps = 2;
    cfg.duration_s = 3.0;
    let dir = rundir::create_run_dir(&runs, "lost", rundir::now_unix())?;
    let mut r = Ramp::start(dir.clone(), cfg, dev.clone())?;
    r.run_rep(1)?;
    let rep1 = fs::read(ramp::rep_json(&dir, 1))?;
    r.run.device.reboot = Reboot::Ssh {
        command: "poweroff -f".into(),
    };
    r.run.device.boot_timeout_s = 15;
    let e = r
        .run_all()
        .err()
        .context("a ramp whose device never came back succeeded")?;
    match e.downcast_ref::<RampError>() {
        Some(RampError::DeviceLost { rep: 2, .. }) => {}
        _ => bail!("unexpected error: {e:#}"),
    }
    let m = format!("{e:#}");
    ensure!(
        m.contains("did not come back within 15 s") && m.contains(&dir.display().to_string()),
        "{m}"
    );
    ensure!(
        fs::read(ramp::rep_json(&dir, 1))? == rep1,
        "rep-1.json changed"
    );
    ensure!(
        !ramp::rep_json(&dir, 2).exists(),
        "rep-2.json written for a rep that never ran"
    );
    let md = fs::read_to_string(dir.join("report.md"))?;
    ensure!(
        md.contains("**Incomplete run**: 1 of 2 reps finished"),
        "report does not say incomplete"
    );
    drop(vm);

    // 5. Resume once the device is back: a half-written rep-2/ (what Ctrl-C
    //    leaves) is set aside and redone from scratch; rep 1 is kept as it was.
    fs::create_dir_all(dir.join("rep-2"))?;
    fs::write(dir.join("rep-2/boot.txt"), "stale half-written rep\n")?;
    let vm2 = Vm::boot(&VmOptions {
        image,
        keys: &keys,
        dir: &runs.join("vm2"),
        detached: false,
    })?;
    let mut r = Ramp::resume(dir.clone(), vm2.device(), None)?;
    r.run_all()?;
    ensure!(
        fs::read(ramp::rep_json(&dir, 1))? == rep1,
        "resume changed rep-1.json"
    );
    let reps = ramp::finished_reps(&dir, &r.run)?;
    ensure!(reps.len() == 2, "resume finished {} reps", reps.len());
    ensure!(
        reps[1].status == RepStatus::Ok && reps[1].bytes_received.unwrap_or(0) > 0,
        "rep 2 after resume: {:?}",
        reps[1].status
    );
    ensure!(
        reps[1].boot_id != reps[0].boot_id && !reps[1].boot_id.contains("stale"),
        "rep 2 was not redone"
    );
    // The half-written attempt was set aside, not deleted.
    let aborted = ramp::aborted_attempts(&dir)?;
    ensure!(aborted.len() == 1, "aborted attempts: {aborted:?}");
    ensure!(
        fs::read_to_string(dir.join(&aborted[0]).join("boot.txt"))? == "stale half-written rep\n",
        "the half-written rep's data was not kept"
    );
    let md = fs::read_to_string(dir.join("report.md"))?;
    ensure!(
        !md.contains("Incomplete run")
            && md.contains("N=2 stats")
            && md.contains(&format!("`{}/`", aborted[0])),
        "report after resume incomplete"
    );
    drop(vm2);
    let _ = fs::remove_dir_all(&runs);
    Ok(())
}

/// Host-key policy and an inventory-file device, against a running VM.
fn host_keys_and_inventory(
    runs: &Path,
    target: &Path,
    image: &VmImage,
    dev: &Device,
    keys: &assets::LabKeys,
) -> Result<()> {
    use besser_lab::device::inventory::HostKeyPolicy;
    use besser_lab::device::transport::{Transport, TransportError};
    // A different key recorded for this host:port → refused.
    let kh = runs.join("known_hosts-wrong");
    fs::write(
        &kh,
        format!("[127.0.0.1]:{} {}\n", dev.wired.port, keys.client_pub),
    )?;
    let mut ep = dev.wired.clone();
    ep.known_hosts = kh;
    match Transport::connect(&ep) {
        Err(e @ TransportError::HostKeyMismatch { .. }) => {
            ensure!(e.to_string().contains("HOST KEY MISMATCH"), "{e}")
        }
        Err(e) => bail!("wrong host key: unexpected error {e}"),
        Ok(_) => bail!("a wrong host key was accepted"),
    }
    // Unknown host, strict → refused, naming the TOFU flag.
    let kh = runs.join("known_hosts-empty");
    fs::write(&kh, "")?;
    ep.known_hosts = kh.clone();
    match Transport::connect(&ep) {
        Err(e @ TransportError::HostKeyUnknown { .. }) => {
            ensure!(e.to_string().contains("--trust-new-host-key"), "{e}")
        }
        Err(e) => bail!("unknown host key: unexpected error {e}"),
        Ok(_) => bail!("an unknown host key was accepted without trust-on-first-use"),
    }
    // Trust on first use records the key; strict then accepts it.
    ep.host_key_policy = HostKeyPolicy::TrustOnFirstUse;
    Transport::connect(&ep)?;
    ensure!(
        fs::read_to_string(&kh)?.contains(&keys.host_pub),
        "TOFU did not record the host key"
    );
    ep.host_key_policy = HostKeyPolicy::Strict;
    Transport::connect(&ep)?;

    // The same VM described by an inventory file, as a real device would be.
    let inv = runs.join("inventory.yaml");
    let key = match &dev.wired.auth {
        besser_lab::device::inventory::Auth::Key(k) => k.display().to_string(),
        besser_lab::device::inventory::Auth::Agent => bail!("VM device uses a key"),
    };
    fs::write(
        &inv,
        format!(
            "devices:\n  bench-vm:\n    wired:\n      host: 127.0.0.1\n      port: {}\n      key: {key}\n      known_hosts: {}\n    data:\n      connect: 127.0.0.1:{}\n      listen_port: {}\n      interface: {}\n",
            dev.wired.port,
            kh.display(),
            dev.data.connect_port,
            dev.data.listen_port,
            dev.data.interface
        ),
    )?;
    let mut cfg = RampConfig::new("inventory");
    cfg.reps = 1;
    cfg.duration_s = 2.0;
    cfg.reboot = false;
    let mut o = opts(cfg, runs, image, target);
    o.device = DeviceChoice::Inventory {
        path: inv,
        name: "bench-vm".into(),
    };
    let out = command::run_ramp(o)?;
    out.result?;
    let run = ramp::load_run(&out.run_dir)?;
    let a = &ramp::finished_reps(&out.run_dir, &run)?[0];
    ensure!(
        a.status == RepStatus::Ok && a.bytes_received.unwrap_or(0) > 0,
        "inventory ramp: {a:?}"
    );
    Ok(())
}
