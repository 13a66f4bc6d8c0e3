//! The capture end to end on the virtual lab device, compressed: a 2-minute
//! capture from boot, probes every 20 s of 5 s each, scan-failure lines
//! written to the kernel log from a set uptime on, and the data link degraded
//! at a set uptime by ingress policing on `wlan0` (iproute2's `tc` in the
//! appliance). The report must place the first failure and the collapse at
//! those uptimes. Part-way the SSH connection is cut (every dropbear killed):
//! the capture must reconnect, record the gap and lose nothing it can
//! re-read. Boots QEMU (under the VM lock, taken by the VM code), so it
//! is an xtask test step, not a `cargo test` test.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};

use besser_lab::assets::{VmImage, GUEST_TC};
use besser_lab::capture::analysis::{Analysis, DropVerdict, Status};
use besser_lab::capture::command::{run_capture, CaptureOptions};
use besser_lab::capture::{
    CaptureConfig, Injection, RawCapture, COLLAPSE_FRACTION_DEFAULT, GOOD_FRACTION_DEFAULT,
};
use besser_lab::ramp::command::DeviceChoice;

pub const DURATION_S: f64 = 120.0;
pub const PROBES_S: [f64; 5] = [20.0, 40.0, 60.0, 80.0, 100.0];
pub const PROBE_LEN_S: f64 = 5.0;
/// Offered load: a rate the TCG guest keeps up with on a shared machine.
pub const RATE_BYTES_PER_S: u64 = 2 * 1024 * 1024;
pub const SNAP_EVERY_S: f64 = 5.0;
/// Scan-failure lines go into the kernel log at these uptimes.
pub const SCAN_FAILURES_AT_S: [f64; 3] = [50.0, 80.0, 110.0];
/// The data link is policed from this uptime on (between probes 3 and 4).
pub const DEGRADE_AT_S: f64 = 70.0;
/// The SSH connection is cut at this uptime (every dropbear killed; init
/// respawns the server): the capture must reconnect and record the gap.
pub const CUT_SSH_AT_S: f64 = 30.0;
/// ... and be back within this long.
pub const RECONNECT_MAX_S: f64 = 10.0;
/// Ingress policing rate after the degradation (~25 KiB/s).
pub const POLICE_RATE: &str = "200kbit";
/// How late an injected or scheduled event may land on a busy 2-core host.
pub const LATENESS_MAX_S: f64 = 5.0;
/// How early it may land: the capture schedules by its estimate of the
/// device's uptime (host clock + an offset measured once at the start).
pub const EARLINESS_MAX_S: f64 = 1.0;

/// What a failed scan prints on the PineTab2 (two lines per failure).
pub const SCAN_FAILURE_LINES: [&str; 2] = [
    "bes2600_wlan: wsm_generic_confirm failed for request 0x0007.",
    "ieee80211 phy0: [SCAN] Scan failed (-22)",
];

fn scan_failure_cmd() -> String {
    SCAN_FAILURE_LINES
        .iter()
        .map(|l| format!("echo '<3>{l}' > /dev/kmsg"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn degrade_cmd() -> String {
    format!(
        "{GUEST_TC} qdisc add dev wlan0 clsact && \
         {GUEST_TC} filter add dev wlan0 ingress matchall action police rate {POLICE_RATE} burst 16k drop"
    )
}

pub fn config() -> CaptureConfig {
    let mut injections: Vec<Injection> = SCAN_FAILURES_AT_S
        .iter()
        .map(|&t| Injection {
            at_uptime_s: t,
            cmd: scan_failure_cmd(),
        })
        .collect();
    injections.push(Injection {
        at_uptime_s: DEGRADE_AT_S,
        cmd: degrade_cmd(),
    });
    injections.push(Injection {
        at_uptime_s: CUT_SSH_AT_S,
        // detached, so the injecting command itself still returns
        cmd: "(sleep 1; killall -9 dropbear) </dev/null >/dev/null 2>&1 &".into(),
    });
    CaptureConfig {
        duration_s: DURATION_S,
        probes_s: PROBES_S.to_vec(),
        probe_len_s: PROBE_LEN_S,
        rate_bytes_per_s: RATE_BYTES_PER_S,
        events: besser_lab::capture::DEFAULT_EVENTS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        data_iface: besser_lab::appliance::DATA_IFACE.into(),
        injections,
        collapse_fraction: COLLAPSE_FRACTION_DEFAULT,
        good_fraction: GOOD_FRACTION_DEFAULT,
    }
}

/// Checks the analysis of the compressed capture against what was injected.
pub fn check(raw: &RawCapture, a: &Analysis) -> Result<()> {
    // the cut connection: one gap, ridden out, nothing doubled or lost after it
    let gaps: Vec<&besser_lab::capture::raw::GapRecord> =
        raw.gaps.iter().filter(|g| g.stream == "all").collect();
    ensure!(
        gaps.len() == 1,
        "expected one connection gap, got {:?}",
        raw.gaps
    );
    let g = gaps[0];
    let back = g.to_uptime_s.context("the capture never reconnected")?;
    ensure!(
        g.from_uptime_s >= CUT_SSH_AT_S - EARLINESS_MAX_S
            && back <= CUT_SSH_AT_S + RECONNECT_MAX_S + LATENESS_MAX_S,
        "connection gap {:.1}–{back:.1} s, cut at {CUT_SSH_AT_S:.0} s",
        g.from_uptime_s
    );
    let kmsg = raw.kmsg.as_ref().context("no kernel log recorded")?;
    ensure!(
        kmsg.replayed > 0,
        "the re-opened kernel log replayed nothing"
    );
    let armed = kmsg
        .lines
        .iter()
        .filter(|l| l.text.ends_with("besser-capture: armed"))
        .count();
    ensure!(
        armed == 1,
        "the armed marker appears {armed} times after the replay"
    );
    let trace_after = raw
        .trace
        .as_ref()
        .map(|t| t.events.iter().filter(|e| e.uptime_s > back).count())
        .unwrap_or(0);
    ensure!(trace_after > 0, "no ftrace record after the reconnect");
    let first = a
        .markers
        .first_scan_failure_s
        .context("no scan failure found in the kernel log")?;
    let want = SCAN_FAILURES_AT_S[0];
    ensure!(
        first >= want - EARLINESS_MAX_S && first <= want + LATENESS_MAX_S,
        "first scan failure at {first:.1} s, injected at {want:.0} s"
    );
    ensure!(
        a.scan_failures.len() == SCAN_FAILURES_AT_S.len(),
        "{} scan failures found, {} injected",
        a.scan_failures.len(),
        SCAN_FAILURES_AT_S.len()
    );
    // the first probe after the degradation is the collapse
    let expect = PROBES_S
        .iter()
        .position(|&p| p > DEGRADE_AT_S)
        .expect("a probe after the degradation") as u32
        + 1;
    ensure!(
        a.markers.first_low_probe == Some(expect),
        "first probe below {:.0}% of the first: {:?}, expected probe {expect} (probes: {:?})",
        a.collapse_fraction * 100.0,
        a.markers.first_low_probe,
        a.probes
            .iter()
            .map(|p| (p.index, p.mib_s))
            .collect::<Vec<_>>()
    );
    let at = a.markers.first_low_probe_uptime_s.unwrap_or(f64::NAN);
    let sched = PROBES_S[expect as usize - 1];
    ensure!(
        at >= sched - EARLINESS_MAX_S && at <= sched + LATENESS_MAX_S,
        "collapse probe started at {at:.1} s, scheduled at {sched:.0} s"
    );
    ensure!(
        matches!(a.drop, DropVerdict::Abrupt { last_good, collapse, .. } if last_good + 1 == expect && collapse == expect),
        "expected an abrupt drop between probes {} and {expect}, got {:?}",
        expect - 1,
        a.drop
    );
    for p in &a.probes[..expect as usize - 1] {
        let v = p.mib_s.unwrap_or(0.0);
        ensure!(
            v > 1.0,
            "probe {} before the degradation: {v:.3} MiB/s",
            p.index
        );
    }
    for r in &a.receipts {
        if r.check.starts_with("ftrace events actually fired")
            || r.check.starts_with("every probe bracketed")
            || r.check.starts_with("netdev counters monotonic")
            || r.check.starts_with("kernel log captured")
            || r.check.starts_with("at least one probe after")
            || r.check.starts_with("no WARN/BUG/lockdep splat")
        {
            ensure!(
                r.status == Status::Pass,
                "receipt failed: {} — {}",
                r.check,
                r.detail
            );
        }
    }
    Ok(())
}

/// Runs the compressed capture on a virtual device booted for it; checks the
/// report; re-makes it from raw data and checks it is byte-identical.
pub fn compressed_capture(target: &Path, image: &VmImage, runs_dir: &Path) -> Result<PathBuf> {
    let out = run_capture(CaptureOptions {
        config: config(),
        label: "e2e-capture".into(),
        runs_dir: runs_dir.to_path_buf(),
        device: DeviceChoice::Vm {
            image: image.clone(),
            fresh: true,
        },
        target_dir: target.to_path_buf(),
        trust_new_host_key: false,
        boot_timeout_s: None,
        snap_every_s: SNAP_EVERY_S,
        stall_timeout_s: besser_lab::ramp::STALL_TIMEOUT_S_DEFAULT,
    })?;
    let dir = out.run_dir;
    let a = out.result?;
    let raw = besser_lab::capture::load_run(&dir)?;
    check(&raw, &a).with_context(|| format!("run directory {}", dir.display()))?;
    let files = [
        besser_lab::capture::layout::REPORT_MD,
        besser_lab::capture::layout::SUMMARY_JSON,
        besser_lab::capture::layout::PLOT_SVG,
    ];
    let before: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(dir.join(f)))
        .collect::<std::io::Result<_>>()?;
    besser_lab::capture::remake_report(&dir)?;
    for (f, b) in files.iter().zip(&before) {
        ensure!(
            &std::fs::read(dir.join(f))? == b,
            "{f} re-made from raw data differs from the one the capture wrote"
        );
    }
    Ok(dir)
}
