//! `cargo xtask lab`: the test lab commands (thin CLI over the `besser-lab` crate).

use std::path::PathBuf;

use anyhow::{bail, Result};
use besser_lab::appliance::Arch;
use besser_lab::assets::{self, VmImage};
use clap::{Parser, Subcommand};
use xshell::Shell;

use crate::test::Step;

#[derive(Parser)]
pub struct Args {
    #[command(subcommand)]
    cmd: LabCmd,
}

#[derive(Subcommand)]
enum LabCmd {
    /// The built-in virtual lab device (QEMU, TCG).
    Vm {
        #[command(subcommand)]
        cmd: VmCmd,
    },
}

#[derive(Subcommand)]
enum VmCmd {
    /// Boot the virtual device and leave it running (holds the VM lock).
    Up(ImageArgs),
    /// Stop the virtual device started by `up`.
    Down,
    /// Is it running, and where?
    Status,
}

/// Which kernel + initramfs the virtual device boots (default: the Debian one).
#[derive(Parser, Clone, Default)]
pub struct ImageArgs {
    /// An image directory with manifest.json (from `cargo xtask image`).
    #[arg(long, conflicts_with_all = ["kernel", "initrd"])]
    image: Option<PathBuf>,
    /// A kernel to boot (with --initrd).
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
pub struct BenchArgs {}

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

/// The image the VM boots, built/cached as needed.
pub fn vm_image(sh: &Shell, a: &ImageArgs) -> Result<VmImage> {
    let img = if let Some(dir) = &a.image {
        assets::image_from_dir(dir)?
    } else if let (Some(k), Some(i)) = (&a.kernel, &a.initrd) {
        VmImage {
            arch: Arch::parse(&a.arch)?,
            kernel: k.clone(),
            initrd: i.clone(),
            kernel_release: None,
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
    }
}

fn vm(sh: &Shell, cmd: VmCmd) -> Result<()> {
    let t = target_dir();
    match cmd {
        VmCmd::Up(a) => {
            let image = vm_image(sh, &a)?;
            let keys = assets::lab_keys(&t)?;
            let s = besser_lab::vm::up(&t, &image, &keys)?;
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
        }
        VmCmd::Down => match besser_lab::vm::down(&t)? {
            Some(s) => println!("virtual lab device (pid {}) stopped", s.pid),
            None => println!("no virtual lab device was up"),
        },
        VmCmd::Status => match besser_lab::vm::running(&t) {
            Some(s) => {
                let mut tr = besser_lab::transport::Transport::connect(&s.device().wired)?;
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

pub fn bench(_args: BenchArgs) -> Result<()> {
    bail!("cargo xtask bench lab: not built yet (issue 2)")
}

pub fn test_steps() -> Vec<Step> {
    Vec::new()
}
