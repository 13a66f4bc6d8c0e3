//! `cargo xtask bench kmod`: TCP throughput into the virtual device's
//! `wlan0` through the Rust driver, through mac80211_hwsim (the kernel's own
//! simulated radio) and through the plain virtio data NIC, side by side in
//! one run on the same kernel and QEMU machine; plus the bh kthread's CPU
//! time per MiB, its wake-ups per RX batch and the unsafe lines of the
//! abstractions vs the driver.
//!
//! Two boots of besser's qemu-x86_64 release image: one with the image's
//! own initramfs (`wlan0` = bes2600 on the simulated air), one with a bench
//! initramfs that loads neither bes2600 nor the simulated host (`wlan0` =
//! the virtio data NIC; then mac80211_hwsim with two radios, hostapd on one,
//! bridged with the data NIC, the other associated as `wlan1`).

use std::fs;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use besser_image::manifest::Manifest;
use besser_image::{Arch, Board, Flavour};
use besser_lab::assets::{DataLink, VmImage};
use besser_lab::device::commands::{listener_drain_cmd, listener_start_cmd, listening_test_cmd};
use besser_lab::device::inventory::Device;
use besser_lab::device::sender::{send, SendControl, SendParams};
use besser_lab::device::transport::Transport;
use clap::Parser;
use xshell::Shell;

#[derive(Parser)]
pub struct BenchArgs {
    /// Seconds of traffic per path.
    #[arg(long, default_value_t = 15.0)]
    duration: f64,
    /// Offered load per path (far above what TCG moves: the paths are
    /// measured at saturation); MB = MiB.
    #[arg(long, default_value = "256MB/s")]
    rate: String,
}

const HOSTAPD: &str = "/usr/sbin/hostapd";
const HWSIM_KO: &str = "/lib/modules/besser/test/mac80211_hwsim.ko";
const CMD_TIMEOUT: Duration = Duration::from_secs(60);
/// The bh kthread's name (`kthread::Thread::spawn` in driver/kmod/bes2600.rs).
const BH_COMM: &str = "bes2600_bh";

/// One path's measurement.
struct Measured {
    name: &'static str,
    bytes: u64,
    elapsed_s: f64,
    /// bh CPU time (ns), voluntary context switches (= sleeps ended by a
    /// wake-up) and the chip model's RX batches over the window (bes2600 only).
    bh: Option<(u64, u64, u64)>,
}

impl Measured {
    fn mib_s(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed_s.max(1e-9)
    }
}

/// The bh kthread's CPU time (`utime + stime` of /proc/PID/stat, in ns:
/// USER_HZ is 100, so 10-ms resolution; besser's kernels have no
/// schedstat), `voluntary_ctxt_switches`, and the chip model's
/// `rx_batches`, in one remote command.
fn bh_snapshot(t: &mut Transport) -> Result<(u64, u64, u64)> {
    let out = t.exec_ok(
        &format!(
            "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = {BH_COMM} ] && \
             {{ set -- $(cut -d' ' -f14,15 $p/stat); echo cpu_ticks $(($1 + $2)); grep '^voluntary_ctxt_switches' $p/status; }}; done; \
             grep '^rx_batches ' {}/chip",
            besser_lab::chip_fault::SIM_DEBUGFS
        ),
        CMD_TIMEOUT,
    )?;
    let get = |k: &str| -> Result<u64> {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim_start_matches(':').trim().parse().ok())
            .with_context(|| format!("no `{k}` for the bh kthread / chip model in {out:?}"))
    };
    Ok((
        get("cpu_ticks")? * 10_000_000,
        get("voluntary_ctxt_switches")?,
        get("rx_batches")?,
    ))
}

/// Saturating TCP into the device's data port for `duration_s`.
fn measure(
    t: &mut Transport,
    dev: &Device,
    name: &'static str,
    rate: f64,
    duration_s: f64,
    bh: bool,
) -> Result<Measured> {
    let port = dev.data.listen_port;
    // One command, as the ramp does: the listener lives in this exec's
    // session.
    t.exec_ok(
        &format!(
            "{}\ni=0; until {}; do i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.05; done",
            listener_start_cmd(port),
            listening_test_cmd(port)
        ),
        CMD_TIMEOUT,
    )
    .with_context(|| format!("{name}: the listener did not come up"))?;
    let before = if bh { Some(bh_snapshot(t)?) } else { None };
    let rec = send(
        &SendParams {
            target: format!("{}:{}", dev.data.connect_host, dev.data.connect_port),
            rate_bytes_per_s: rate,
            duration_s,
            stall_timeout_s: 10.0,
        },
        &SendControl::default(),
    );
    let count = t.exec_ok(&listener_drain_cmd(10), CMD_TIMEOUT)?;
    let after = if bh { Some(bh_snapshot(t)?) } else { None };
    let bytes: u64 = count
        .trim()
        .parse()
        .with_context(|| format!("{name}: listener count {count:?}"))?;
    ensure!(bytes > 0, "{name}: no bytes arrived ({:?})", rec.outcome);
    Ok(Measured {
        name,
        bytes,
        elapsed_s: rec.elapsed_s,
        bh: before.zip(after).map(|(b, a)| {
            (
                a.0.saturating_sub(b.0),
                a.1.saturating_sub(b.1),
                a.2.saturating_sub(b.2),
            )
        }),
    })
}

/// The hwsim path on a booted bench VM: the data NIC becomes the AP's wired
/// side, hostapd runs on hwsim's first radio (bridged), the second radio
/// associates as `wlan1` and takes the data address.
fn hwsim_up(t: &mut Transport) -> Result<()> {
    let addr = format!(
        "{}/{}",
        besser_lab::vm::net::DATA_GUEST_ADDR,
        besser_lab::vm::net::PREFIX_LEN
    );
    let cmd = format!(
        "set -e; ip addr flush dev wlan0; ip link set wlan0 down; ip link set wlan0 name apwire0; \
         insmod {HWSIM_KO} radios=2; \
         brctl addbr apbr0; brctl addif apbr0 apwire0; ip link set apwire0 up; ip link set apbr0 up; \
         printf 'interface=wlan0\\nbridge=apbr0\\ndriver=nl80211\\nssid=hwsim\\nhw_mode=g\\nchannel=6\\n' > /tmp/hostapd.conf; \
         {HOSTAPD} -B /tmp/hostapd.conf >/tmp/hostapd.log 2>&1; \
         ip link set wlan1 up; i=0; \
         until iw dev wlan1 link | grep -q Connected; do \
           [ $((i % 30)) = 0 ] && iw dev wlan1 connect hwsim; i=$((i+1)); [ $i -gt 200 ] && exit 1; sleep 0.1; done; \
         ip addr add {addr} dev wlan1; iw dev wlan1 link | head -1"
    );
    let out = t
        .exec_ok(&cmd, CMD_TIMEOUT)
        .context("setting up mac80211_hwsim + hostapd (see /tmp/hostapd.log in the guest)")?;
    eprintln!("hwsim: {}", out.trim());
    Ok(())
}

pub fn bench(a: BenchArgs) -> Result<()> {
    let sh = Shell::new()?;
    let rate = besser_lab::units::parse_rate(&a.rate)?;
    crate::lab::ensure_vm_deps(&sh, besser_lab::appliance::Arch::X86_64)?;
    crate::deps::ensure_debs(&sh, &["hostapd"])?;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = crate::image::build_image(&sh, Board::QemuX86_64, Flavour::Release, jobs)?;
    let m = Manifest::load(&dir)?;
    let air = besser_lab::assets::image_from_dir(&dir)?;
    ensure!(
        air.data_link == DataLink::SimulatedAir,
        "{}: no simulated SDIO host",
        dir.display()
    );

    // The bench initramfs: the image's kernel and modules, no boot module,
    // hostapd and mac80211_hwsim.ko on board.
    let scratch = crate::lab::target_dir().join("bench-kmod");
    fs::create_dir_all(&scratch)?;
    let modules_root = dir.join(&m.artifacts.modules);
    let hwsim = fs::read_dir(modules_root.join("lib/modules"))?
        .filter_map(|e| e.ok())
        .map(|e| {
            e.path()
                .join("kernel/drivers/net/wireless/virtual/mac80211_hwsim.ko")
        })
        .find(|p| p.exists())
        .context("mac80211_hwsim.ko is not in the image's modules")?;
    let mut extra = besser_lab::assets::host_tool_files(HOSTAPD, HOSTAPD)?;
    extra.push(besser_lab::appliance::ExtraFile {
        guest_path: HWSIM_KO.into(),
        mode: 0o644,
        contents: fs::read(&hwsim)?,
    });
    let initrd = scratch.join("initrd.cpio");
    crate::image::make_initramfs(&sh, Arch::X86_64, &modules_root, &[], extra, &initrd)?;
    let plain = VmImage {
        initrd,
        data_link: DataLink::Virtio,
        ..air.clone()
    };
    let keys = besser_lab::assets::lab_keys(&crate::lab::target_dir())?;
    let boot = |img: &VmImage, sub: &str| {
        besser_lab::vm::Vm::boot(&besser_lab::vm::VmOptions {
            image: img,
            keys: &keys,
            dir: &scratch.join(sub),
            detached: false,
        })
    };

    eprintln!("bench kmod: boot 1 (bench initramfs): virtio, then mac80211_hwsim ...");
    let vm = boot(&plain, "vm-plain")?;
    let dev = vm.device();
    let mut t = Transport::connect(&dev.wired)?;
    let virtio = measure(&mut t, &dev, "virtio data NIC", rate, a.duration, false)?;
    hwsim_up(&mut t)?;
    let hw = measure(
        &mut t,
        &dev,
        "mac80211_hwsim + hostapd",
        rate,
        a.duration,
        false,
    )?;
    drop(t);
    drop(vm);

    eprintln!("bench kmod: boot 2 (the image): bes2600 over the simulated air ...");
    let vm = boot(&air, "vm-air")?;
    let dev = vm.device();
    let mut t = Transport::connect(&dev.wired)?;
    let link = t.exec_ok("iw dev wlan0 link | head -1", CMD_TIMEOUT)?;
    if !link.contains("Connected") {
        bail!("bes2600's wlan0 is not associated: {link:?}");
    }
    let bes = measure(
        &mut t,
        &dev,
        "bes2600 (Rust) + chip model",
        rate,
        a.duration,
        true,
    )?;
    drop(t);
    drop(vm);

    println!("\n| path into wlan0 | MiB/s | ÷ virtio | bytes | window (s) |");
    println!("|---|---:|---:|---:|---:|");
    for p in [&bes, &hw, &virtio] {
        println!(
            "| {} | {:.3} | {:.3} | {} | {:.1} |",
            p.name,
            p.mib_s(),
            p.mib_s() / virtio.mib_s(),
            p.bytes,
            p.elapsed_s
        );
    }
    println!(
        "\nratio Rust driver / mac80211_hwsim: {:.3}x; Rust driver / virtio: {:.3}x",
        bes.mib_s() / hw.mib_s(),
        bes.mib_s() / virtio.mib_s()
    );
    if let Some((cpu_ns, wakeups, batches)) = bes.bh {
        let mib = bes.bytes as f64 / (1024.0 * 1024.0);
        println!(
            "bh kthread ({BH_COMM}): {:.2} ms CPU per MiB ({:.3} s over {mib:.1} MiB); \
             {:.2} wake-ups per RX batch ({wakeups} voluntary switches, {batches} RX batches the chip model published)",
            cpu_ns as f64 / 1e6 / mib.max(1e-9),
            cpu_ns as f64 / 1e9,
            wakeups as f64 / batches.max(1) as f64
        );
    }
    let (abstractions, driver) = crate::tidy::unsafe_totals(&crate::project_root())?;
    println!(
        "unsafe lines: abstractions (kernel-patches) {abstractions}, driver (driver/kmod) {driver}"
    );
    println!(
        "\nNot measured: what the driver would do on a PineTab2. All three paths enter the guest through \
         QEMU's user-mode networking, and the virtio figure is that path's ceiling here, so the ratios say \
         what each radio path costs on top of it, not a radio's own speed. All three run under TCG on one \
         emulated CPU, so the figures are emulation-bound; the bes2600 path includes the chip model and \
         the simulated host (their copies, work items and the bridge) on the same CPU, so its ratio bounds \
         the driver's cost from above. Wake-ups are voluntary context switches of the bh kthread (its idle \
         timeouts count too); RX batches are the chip model's own count."
    );
    Ok(())
}
