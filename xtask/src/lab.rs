//! `cargo xtask lab`: the test lab commands (thin CLI over the `besser-lab` crate).

use std::path::PathBuf;

use anyhow::{bail, Result};
use besser_lab::appliance::Arch;
use besser_lab::assets::{self, VmImage};
use clap::{Parser, Subcommand};
use xshell::Shell;

use crate::test::Step;

#[path = "lab_capture.rs"]
mod capture;

#[derive(Parser)]
pub struct Args {
    #[command(subcommand)]
    cmd: LabCmd,
}

#[derive(Subcommand)]
enum LabCmd {
    /// N fresh-boot stress reps over the wired link; raw data + report.md.
    Ramp(RampArgs),
    /// Phase 0 long capture: always-on streams, probes on a schedule, throughput vs uptime.
    Capture(capture::CaptureArgs),
    /// Re-make report.md + summary.json of a run directory from its raw data.
    Report {
        run_dir: PathBuf,
        /// Compare with this baseline run; repeat to compare with several
        /// (default: the ones recorded in run.json).
        #[arg(long)]
        baseline: Vec<PathBuf>,
    },
    /// The built-in virtual lab device (QEMU, TCG).
    Vm {
        #[command(subcommand)]
        cmd: VmCmd,
    },
    /// Devices shared through a labgrid coordinator.
    Farm {
        #[command(subcommand)]
        cmd: crate::farm::FarmCmd,
    },
}

#[derive(Subcommand)]
enum VmCmd {
    /// Boot the virtual device and leave it running (holds the VM lock).
    Up {
        #[command(flatten)]
        image: ImageArgs,
        /// Boot it through U-Boot from A/B slots (the image must be a
        /// qemu-arm64 one), so `cargo xtask flash --device vm` can flash it.
        #[arg(long, requires = "image")]
        ab: bool,
        /// Also register it with a labgrid coordinator as the place
        /// `besser-vm` (an exporter on 127.0.0.1 until `lab vm down`).
        #[arg(long)]
        labgrid: bool,
        /// The coordinator for --labgrid (default: $LG_COORDINATOR, else 127.0.0.1:20408).
        #[arg(long, requires = "labgrid")]
        coordinator: Option<String>,
    },
    /// Stop the virtual device started by `up`.
    Down,
    /// Is it running, and where?
    Status,
}

/// Which kernel + initramfs the virtual device boots. Default: besser's
/// qemu-x86_64 release image (built and cached on first use), with the
/// data link through bes2600 over the simulated air.
#[derive(Parser, Clone, Default)]
pub struct ImageArgs {
    /// An image directory with manifest.json (from `cargo xtask image`).
    #[arg(long, conflicts_with_all = ["kernel", "initrd", "debian_kernel"])]
    image: Option<PathBuf>,
    /// Boot Debian's own kernel with the data NIC (virtio) as the data
    /// link: no Rust driver (the lab's default before bes2600 ran in a kernel).
    #[arg(long, conflicts_with_all = ["kernel", "initrd"])]
    debian_kernel: bool,
    /// A kernel to boot (with --initrd; the data NIC is the data link).
    #[arg(long, requires = "initrd")]
    kernel: Option<PathBuf>,
    /// An initramfs to boot (with --kernel).
    #[arg(long, requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Architecture of --kernel.
    #[arg(long, default_value = "x86_64")]
    arch: String,
}

#[derive(Parser)]
pub struct RampArgs {
    /// Number of reps [default: 3; with --resume: the run's own].
    #[arg(long)]
    reps: Option<u32>,
    /// Offered load; MB = MiB as in `pv -L 4m` (4MB/s = 4 MiB/s).
    #[arg(long, default_value = "4MB/s")]
    rate: String,
    /// Stress window per rep (e.g. 180s, 3m).
    #[arg(long, default_value = "180s")]
    duration: String,
    /// Device name in the inventory (default, or `vm`: the built-in virtual device).
    #[arg(long)]
    device: Option<String>,
    /// Inventory file (default: $BESSER_INVENTORY or ~/.config/besser/inventory.yaml).
    #[arg(long)]
    inventory: Option<PathBuf>,
    /// Label of the run directory.
    #[arg(long, default_value = "ramp")]
    label: String,
    /// Where run directories go.
    #[arg(long, default_value = "lab-runs")]
    runs_dir: PathBuf,
    /// A baseline run directory to compare with; repeat to compare with
    /// several (e.g. the previous patch and the Bug #5 floor).
    #[arg(long)]
    baseline: Vec<PathBuf>,
    /// Don't reboot before each rep (reps must still be inside the uptime window).
    #[arg(long)]
    no_reboot: bool,
    /// Predictions file (YAML: metric, min/max) checked against observations.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Work functions to show as columns (default: the three most dispatched).
    #[arg(long = "work-fn")]
    work_fns: Vec<String>,
    /// ftrace events to arm, `system/event` (or `system:event`, as
    /// `set_event` takes them; default: workqueue/workqueue_execute_start
    /// and sched/sched_wakeup, the latter filtered to the driver's threads).
    #[arg(long = "event")]
    events: Vec<String>,
    /// No bytes for this long = wedged data link.
    #[arg(long, default_value = "10s")]
    stall_timeout: String,
    /// Stop the ramp at the first wedged rep.
    #[arg(long)]
    stop_on_wedge: bool,
    /// Continue an interrupted run directory (runs its missing reps).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Record an unknown host key on first use (a changed key is still refused).
    #[arg(long)]
    trust_new_host_key: bool,
    /// Seconds to wait for the device after a reboot (default: inventory's).
    #[arg(long)]
    boot_timeout: Option<u64>,
    /// Fault injection (tests): device command run right after the listener starts.
    #[arg(long, hide = true, conflicts_with = "chip_fault")]
    fault_cmd: Option<String>,
    /// A fault for the chip model of a virtual device on a besser image
    /// (`NAME VALUE`, repeatable), injected right after each rep's listener
    /// starts: ctrl_crc_every, data_crc_every, stale_ctrl_every,
    /// requeue_every, drop_confirm_every, exception_in_ms, degrade_in_ms,
    /// degraded_keep_one_in, clear. The chip's counters go to rep-N/fault.txt.
    #[arg(long = "chip-fault", value_name = "SPEC")]
    chip_fault: Vec<String>,
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    farm: crate::farm::FarmOpts,
}

#[derive(Parser)]
pub struct BenchArgs {
    /// Seconds per sender run (sender vs `pv -L | nc`).
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Offered load for the sender comparison.
    #[arg(long, default_value = "4MB/s")]
    rate: String,
    /// Reps of the ramp-overhead measurement on the virtual device (0: skip).
    #[arg(long, default_value_t = 3)]
    overhead_reps: u32,
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::project_root().join("target"))
}

/// Installs what the virtual device needs on this host.
pub fn ensure_vm_deps(sh: &Shell, arch: Arch) -> Result<()> {
    let mut debs: Vec<&str> = assets::HOST_DEBS.to_vec();
    if arch == Arch::Aarch64 {
        debs.push("qemu-system-arm");
    }
    crate::deps::ensure_debs(sh, &debs)
}

impl ImageArgs {
    /// Debian's kernel, virtio data link: what the lab's own tests boot
    /// (they test the lab, not the driver).
    pub fn debian() -> Self {
        ImageArgs {
            debian_kernel: true,
            ..Default::default()
        }
    }
}

/// The image the VM boots, built/cached as needed.
pub fn vm_image(sh: &Shell, a: &ImageArgs) -> Result<VmImage> {
    let img = if let Some(dir) = &a.image {
        assets::image_from_dir(dir)?
    } else if !a.debian_kernel && a.kernel.is_none() {
        let dir = crate::image::build_image(
            sh,
            besser_image::board::Board::QemuX86_64,
            besser_image::board::Flavour::Release,
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        )?;
        assets::image_from_dir(&dir)?
    } else if let (Some(k), Some(i)) = (&a.kernel, &a.initrd) {
        VmImage {
            arch: Arch::parse(&a.arch).map_err(anyhow::Error::msg)?,
            kernel: k.clone(),
            initrd: i.clone(),
            kernel_release: None,
            data_link: besser_lab::assets::DataLink::Virtio,
        }
    } else {
        ensure_vm_deps(sh, Arch::X86_64)?;
        return assets::default_vm_image(&target_dir());
    };
    ensure_vm_deps(sh, img.arch)?;
    Ok(img)
}

pub fn run(args: Args) -> Result<()> {
    let sh = Shell::new()?;
    match args.cmd {
        LabCmd::Vm { cmd } => vm(&sh, cmd),
        LabCmd::Ramp(a) => ramp(&sh, a),
        LabCmd::Capture(a) => capture::run(&sh, a),
        LabCmd::Report { run_dir, baseline } => report(&run_dir, &baseline),
        LabCmd::Farm { cmd } => crate::farm::run(&sh, cmd),
    }
}

/// `lab report`: dispatches on run.json's kind.
fn report(dir: &std::path::Path, baseline: &[PathBuf]) -> Result<()> {
    let p = dir.join("run.json");
    let text =
        std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("parsing {}: {e}", p.display()))?;
    match v.get("kind").and_then(|k| k.as_str()) {
        Some("ramp") => {
            let r = besser_lab::ramp::command::remake_ramp_report(dir, baseline)?;
            print!("{}", r.screen);
        }
        Some("capture") => {
            besser_lab::capture::remake_report(dir)?;
        }
        k => bail!(
            "{}: unknown run kind {k:?} (expected \"ramp\" or \"capture\")",
            p.display()
        ),
    }
    println!(
        "wrote {} and {}",
        dir.join("report.md").display(),
        dir.join("summary.json").display()
    );
    Ok(())
}

pub fn ramp_config(a: &RampArgs) -> Result<besser_lab::ramp::RampConfig> {
    use besser_lab::units::{parse_duration_s, parse_rate};
    let mut c = besser_lab::ramp::RampConfig::new(&a.label);
    c.reps = match (&a.resume, a.reps) {
        (_, Some(n)) => n,
        (Some(dir), None) => {
            let dir = besser_lab::ramp::command::resolve_resume(dir, &a.runs_dir)?;
            besser_lab::ramp::load_run(&dir)?.config.reps
        }
        (None, None) => 3,
    };
    c.rate_bytes_per_s = parse_rate(&a.rate)?;
    c.duration_s = parse_duration_s(&a.duration)?;
    c.reboot = !a.no_reboot;
    if !a.events.is_empty() {
        c.events = a
            .events
            .iter()
            .map(|e| besser_lab::device::commands::event_path(e))
            .collect::<Result<_>>()?;
    }
    c.work_fns = a.work_fns.clone();
    c.stall_timeout_s = parse_duration_s(&a.stall_timeout)?;
    c.stop_on_wedge = a.stop_on_wedge;
    c.baseline = a.baseline.first().cloned();
    c.more_baselines = a.baseline.iter().skip(1).cloned().collect();
    c.fault_cmd = a.fault_cmd.clone();
    if !a.chip_fault.is_empty() {
        c.fault_cmd = Some(besser_lab::chip_fault::chip_fault_cmd(&a.chip_fault)?);
    }
    Ok(c)
}

/// `--device NAME` / `--inventory FILE` (shared by ramp and capture): an
/// inventory device, or the built-in virtual device (`--device vm` or none).
pub fn device_choice(
    sh: &Shell,
    device: Option<&str>,
    inventory: Option<&std::path::Path>,
    image: &ImageArgs,
) -> Result<besser_lab::ramp::command::DeviceChoice> {
    Ok(match (device, inventory) {
        (Some("vm"), None) | (None, None) => besser_lab::ramp::command::DeviceChoice::Vm {
            image: vm_image(sh, image)?,
            fresh: false,
        },
        (Some(name), inv) => besser_lab::ramp::command::DeviceChoice::Inventory {
            path: inv
                .map(|p| p.to_path_buf())
                .unwrap_or_else(besser_lab::ramp::command::default_inventory),
            name: name.to_string(),
        },
        (None, Some(inv)) => bail!("--inventory {} given without --device NAME", inv.display()),
    })
}

fn ramp(sh: &Shell, a: RampArgs) -> Result<()> {
    let mut config = ramp_config(&a)?;
    // A farm place (reserved and locked until the ramp ends), else the
    // inventory or the virtual device.
    let held = crate::farm::take(sh, &a.farm, a.inventory.as_deref(), &target_dir())?;
    let device = match &held {
        Some(h) => besser_lab::ramp::command::DeviceChoice::Given(Box::new(h.device.clone())),
        None => device_choice(sh, a.device.as_deref(), a.inventory.as_deref(), &a.image)?,
    };
    // A real device and an image: the device runs that image first
    // (flashed into its other slot unless its booted slot holds it).
    let flash_target = match (&device, &a.image.image) {
        (besser_lab::ramp::command::DeviceChoice::Inventory { path, name }, Some(_)) => {
            let inv = besser_lab::device::inventory::Inventory::load(path)?;
            Some(inv.device(name)?)
        }
        (besser_lab::ramp::command::DeviceChoice::Given(d), Some(_)) => Some((**d).clone()),
        _ => None,
    };
    if let (Some(dev), Some(dir)) = (flash_target, &a.image.image) {
        if a.resume.is_none() {
            let name = dev.name.clone();
            let (img, flashed) = besser_lab::flash::ensure_image(&dev, dir)?;
            eprintln!(
                "{name}: {} {}",
                img.name,
                if flashed {
                    "flashed and verified"
                } else {
                    "already running (its booted slot holds this manifest)"
                }
            );
            config.image = Some(img);
        }
    }
    // Ctrl-C: the terminal signals the whole foreground process group. The
    // virtual device's QEMU runs in a group of its own (it lives until the
    // ramp has saved everything and stops it); the first Ctrl-C stops the
    // rep in flight, keeps the finished ones and says how to resume; a
    // second one exits at once.
    let interrupt = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let flag = interrupt.clone();
        // A farm place is released also on the second Ctrl-C.
        let release = held.as_ref().map(|h| h.lease.releaser());
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, std::sync::atomic::Ordering::SeqCst) {
                if let Some(r) = &release {
                    r();
                }
                std::process::exit(130);
            }
            eprintln!("\ninterrupted: stopping the rep in flight (Ctrl-C again to exit at once)");
        });
    }
    let out = besser_lab::ramp::command::run_ramp(besser_lab::ramp::command::RampOptions {
        config,
        runs_dir: a.runs_dir.clone(),
        resume: a.resume.clone(),
        predictions: a.predictions.clone(),
        device,
        target_dir: target_dir(),
        trust_new_host_key: a.trust_new_host_key,
        boot_timeout_s: a.boot_timeout,
        reboot_override: None,
        interrupt: Some(interrupt),
        stop_before_next: held.as_ref().map(|h| h.lost.clone()),
    })?;
    if let Some(h) = held {
        let image = a
            .image
            .image
            .as_ref()
            .and_then(|d| d.file_name())
            .map_or_else(
                || "the running kernel".into(),
                |n| n.to_string_lossy().into_owned(),
            );
        let run = out
            .run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        h.finish(&format!("{image} ({run})"));
    }
    if let Some(s) = &out.screen {
        print!("{s}");
    }
    println!(
        "run directory: {} (report.md, summary.json)",
        out.run_dir.display()
    );
    out.result
}

fn vm(sh: &Shell, cmd: VmCmd) -> Result<()> {
    let t = target_dir();
    match cmd {
        VmCmd::Up {
            image: a,
            ab,
            labgrid,
            coordinator,
        } => {
            let image = vm_image(sh, &a)?;
            let keys = assets::lab_keys(&t)?;
            if ab {
                crate::deps::ensure_debs(sh, &["u-boot-qemu", "fdisk", "dosfstools", "mtools"])?;
            }
            let ab_dir = if ab { a.image.as_deref() } else { None };
            let s = besser_lab::vm::up_with(&t, &image, &keys, ab_dir)?;
            println!(
                "virtual lab device up: pid {} (holds {}), ssh root@127.0.0.1 -p {} -i {}, data 127.0.0.1:{} -> wlan0:{}\nconsole: {}",
                s.pid,
                besser_lab::lock::VM_LOCK_PATH,
                s.ssh_port,
                s.client_key.display(),
                s.data_port,
                besser_lab::appliance::GUEST_DATA_PORT,
                s.console_log.display()
            );
            if labgrid {
                let bin = crate::farm::labgrid_bin(sh)?;
                let lg = besser_lab::farm::Labgrid::new(
                    &bin,
                    &besser_lab::farm::coordinator_address(coordinator.as_deref()),
                );
                let pid =
                    besser_lab::farm::vm::register(&t, &lg, &bin.join("labgrid-exporter"), &s)?;
                println!(
                    "registered with the labgrid coordinator at {} as place {} (exporter pid {pid}): `--place {}`",
                    lg.coordinator,
                    besser_lab::farm::vm::VM_PLACE,
                    besser_lab::farm::vm::VM_PLACE
                );
            }
        }
        VmCmd::Down => match besser_lab::vm::down(&t)? {
            Some(s) => println!("virtual lab device (pid {}) stopped", s.pid),
            None => println!("no virtual lab device was up"),
        },
        VmCmd::Status => match besser_lab::vm::running(&t) {
            Some(s) => {
                let mut tr = besser_lab::device::transport::Transport::connect(&s.device().wired)?;
                let up = tr.exec_ok(
                    "cat /proc/uptime /proc/sys/kernel/random/boot_id; uname -r",
                    std::time::Duration::from_secs(10),
                )?;
                let mut l = up.lines();
                println!(
                    "up: pid {}, ssh 127.0.0.1:{}, data 127.0.0.1:{}; uptime {} s, boot_id {}, kernel {}",
                    s.pid,
                    s.ssh_port,
                    s.data_port,
                    l.next().unwrap_or("?").split_whitespace().next().unwrap_or("?"),
                    l.next().unwrap_or("?"),
                    l.next().unwrap_or("?")
                );
            }
            None => println!("down"),
        },
    }
    Ok(())
}

pub fn bench(a: BenchArgs) -> Result<()> {
    let sh = Shell::new()?;
    crate::deps::ensure_debs(&sh, &["pv", "netcat-openbsd"])?;
    let rate = besser_lab::units::parse_rate(&a.rate)?;
    let mib = besser_lab::units::MIB;
    eprintln!(
        "sender vs pv -L | nc on loopback, {:.0} s each at {:.3} MiB/s ...",
        a.seconds,
        rate / mib
    );
    let b = besser_lab::bench::sender_vs_pv(rate, a.seconds)?;
    let err = besser_lab::bench::SenderBench::rate_error;
    let (eo, ep) = (
        err(b.ours_bytes, b.ours_span_s, rate),
        err(b.pv_bytes, b.pv_span_s, rate),
    );
    println!("\n| sender (loopback, {:.0} s, target {:.3} MiB/s) | MiB/s | rate error | CPU s | CPU % of one core |", a.seconds, rate / mib);
    println!("|---|---:|---:|---:|---:|");
    for (name, bytes, span, cpu, e) in [
        (
            "besser sender (token bucket)",
            b.ours_bytes,
            b.ours_span_s,
            b.ours_cpu_s,
            eo,
        ),
        ("pv -L | nc", b.pv_bytes, b.pv_span_s, b.pv_cpu_s, ep),
    ] {
        println!(
            "| {name} | {:.4} | {:.3} % | {:.2} | {:.2} % |",
            bytes as f64 / mib / span,
            e * 100.0,
            cpu,
            cpu / span * 100.0
        );
    }
    println!(
        "ratio besser/pv: rate error {:.2}x, CPU {:.2}x (goals: error <= pv's own in this run, {:.3} %: {}; CPU <= pv + nc: {})",
        if ep > 0.0 { eo / ep } else { f64::NAN },
        if b.pv_cpu_s > 0.0 { b.ours_cpu_s / b.pv_cpu_s } else { f64::NAN },
        ep * 100.0,
        if eo <= ep { "met" } else { "NOT met" },
        if b.ours_cpu_s <= b.pv_cpu_s { "met" } else { "NOT met" }
    );
    if a.overhead_reps == 0 {
        return Ok(());
    }
    let image = vm_image(&sh, &ImageArgs::debian())?;
    let dur = 10.0;
    eprintln!(
        "\nramp overhead: {} fresh-boot reps of {dur:.0} s on the virtual device ...",
        a.overhead_reps
    );
    let runs = std::env::temp_dir().join(format!("besser-bench-{}", std::process::id()));
    let mut cfg = besser_lab::ramp::RampConfig::new("bench");
    cfg.reps = a.overhead_reps;
    cfg.duration_s = dur;
    let out = besser_lab::ramp::command::run_ramp(besser_lab::ramp::command::RampOptions {
        config: cfg,
        runs_dir: runs.clone(),
        resume: None,
        predictions: None,
        device: besser_lab::ramp::command::DeviceChoice::Vm { image, fresh: true },
        target_dir: target_dir(),
        trust_new_host_key: false,
        boot_timeout_s: None,
        reboot_override: None,
        interrupt: None,
        stop_before_next: None,
    })?;
    out.result?;
    println!(
        "\n| rep | rep wall time (s) | boot wait (s) | stress window (s) | overhead (s) | of it: boot besides the wait | start cmd | traffic besides the window | collect cmd | the rest |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut over = Vec::new();
    for rep in 1..=a.overhead_reps {
        let m = besser_lab::ramp::load_meta(&out.run_dir, rep)?;
        let s = besser_lab::ramp::load_sender(&out.run_dir, rep)?;
        let o = m.total_s - m.boot_wait_s - s.elapsed_s;
        over.push(o);
        let p = m.phases.clone().unwrap_or_default();
        let tail = p.traffic_s - s.elapsed_s;
        let rest = o - p.boot_other_s - p.start_s - tail - p.collect_s;
        println!(
            "| {rep} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            m.total_s,
            m.boot_wait_s,
            s.elapsed_s,
            o,
            p.boot_other_s,
            p.start_s,
            tail,
            p.collect_s,
            rest
        );
    }
    let mean = over.iter().sum::<f64>() / over.len() as f64;
    println!(
        "ramp overhead per rep beyond stress window and boot: mean {mean:.2} s (goal <= 0.5 s: {}); the last rep ran {} remote commands on its one SSH session (one session per boot)",
        if mean <= 0.5 { "met" } else { "NOT met" },
        out.commands_run
    );
    let _ = std::fs::remove_dir_all(&runs);
    Ok(())
}

pub fn test_steps() -> Vec<Step> {
    vec![
        Step::new(
            "lab e2e: 3-rep fresh-boot ramp on the virtual device, bytes arrive, report re-made byte-identical",
            |sh| {
                let image = vm_image(sh, &ImageArgs::debian())?;
                let dir = besser_lab_e2e::ramp::fresh_boot_ramp(&target_dir(), &image, 3, 5.0)?;
                eprintln!("{}", std::fs::read_to_string(dir.join("report.md"))?.lines().take(16).collect::<Vec<_>>().join("\n"));
                let _ = std::fs::remove_dir_all(dir.parent().unwrap_or(&dir));
                Ok(())
            },
        ),
        Step::new(
            "lab farm: real labgrid coordinator + exporter on 127.0.0.1: --place ramp, two ramps on one place (refuse / --wait), besser killed + resume, power port cycled, coordinator lost mid-run",
            |sh| {
                let image = vm_image(sh, &ImageArgs::debian())?;
                let bin = crate::farm::labgrid_bin(sh)?;
                let exe = std::env::current_exe()?;
                besser_lab_e2e::farm::farm_cases(&besser_lab_e2e::farm::FarmSetup {
                    target_dir: &target_dir(),
                    image: &image,
                    labgrid_bin: &bin,
                    besser: &exe,
                })
            },
        ),
        Step::new(
            "lab faults: unwritable run dir, host keys, injected WARN, link cut -> wedged, device never comes back, resume",
            |sh| {
                let image = vm_image(sh, &ImageArgs::debian())?;
                besser_lab_e2e::ramp::faults(&target_dir(), &image)
            },
        ),
    ]
    .into_iter()
    .chain(capture::test_steps())
    .collect()
}
