//! The virtual lab device: QEMU (TCG) booting a kernel + appliance initramfs
//! with two virtio NICs on user-mode networking, each forwarded from a free
//! 127.0.0.1 port. It yields an inventory [`Device`] the lab uses like a real one.
//!
//! **The machine-wide VM lock**: QEMU is started holding [`crate::lock::VmLock`]
//! (the locked file is inherited by the QEMU process), so the lock lives
//! exactly as long as that QEMU: a VM left up by `lab vm up` keeps it until
//! `lab vm down`; an in-process VM dies with its owner (parent-death signal).

use std::fs;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::appliance::{Arch, DATA_IFACE, GUEST_DATA_PORT, GUEST_SSH_PORT};
use crate::assets::{DataLink, LabKeys, VmImage, SIM_AP_SSID};
use crate::device::inventory::{Auth, DataEndpoint, Device, HostKeyPolicy, Reboot, SshEndpoint};
use crate::device::transport::{known_hosts_name, Transport};
use crate::lock::VmLock;

/// QEMU user-mode networking, the one place that names guest addresses.
/// Each NIC gets its own `net=` subnet chosen here (QEMU's default is
/// 10.0.2.0/24; the data NIC uses the next one); the guest takes the
/// conventional `.15` address of each, which QEMU's hostfwd targets.
pub mod net {
    pub const WIRED_SUBNET: &str = "10.0.2.0/24";
    pub const WIRED_GUEST_ADDR: &str = "10.0.2.15";
    pub const DATA_SUBNET: &str = "10.0.3.0/24";
    pub const DATA_GUEST_ADDR: &str = "10.0.3.15";
    /// QEMU's gateway on the data subnet (its `.2`): a destination for
    /// traffic generated in the guest (the boot test's pktgen flood).
    pub const DATA_GATEWAY_ADDR: &str = "10.0.3.2";
    pub const PREFIX_LEN: u8 = 24;
    pub const WIRED_MAC: &str = "52:54:00:be:55:01";
    pub const DATA_MAC: &str = "52:54:00:be:55:02";
}

/// Guest memory.
pub const VM_MEM_MB: u32 = 512;
/// How long a cold boot may take until SSH answers.
pub const VM_BOOT_TIMEOUT_S: u64 = 120;
/// The device's boot timeout as the lab sees it (reboots under TCG take 10-20 s).
pub const VM_DEVICE_BOOT_TIMEOUT_S: u64 = 90;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VmState {
    pub pid: u32,
    pub ssh_port: u16,
    pub data_port: u16,
    pub arch: Arch,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// A/B virtual device (booted by U-Boot, [`crate::abvm`]): its slots
    /// and environment, as the device's inventory `boot:` gives them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<crate::device::inventory::BootStorage>,
    pub console_log: PathBuf,
    pub known_hosts: PathBuf,
    pub client_key: PathBuf,
}

impl VmState {
    pub fn device(&self) -> Device {
        Device {
            name: "vm".into(),
            wired: SshEndpoint {
                host: "127.0.0.1".into(),
                port: self.ssh_port,
                user: "root".into(),
                auth: Auth::Key(self.client_key.clone()),
                known_hosts: self.known_hosts.clone(),
                known_hosts_host: None,
                host_key_policy: HostKeyPolicy::Strict,
            },
            data: DataEndpoint {
                connect_host: "127.0.0.1".into(),
                connect_port: self.data_port,
                listen_port: GUEST_DATA_PORT,
                interface: DATA_IFACE.into(),
            },
            fresh_uptime_max_s: crate::device::inventory::FRESH_UPTIME_MAX_S_DEFAULT,
            boot_timeout_s: VM_DEVICE_BOOT_TIMEOUT_S,
            reboot: Reboot::Ssh {
                command: "reboot".into(),
            },
            boot: self.boot.clone(),
        }
    }

    pub fn alive(&self) -> bool {
        crate::lock::cmdline(self.pid).contains("qemu-system")
    }
}

/// A running VM owned by this process; QEMU is killed on drop.
pub struct Vm {
    child: Option<Child>,
    pub state: VmState,
    _lock: VmLock,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where a VM's files go: `dir/console.log`, `dir/known_hosts`.
pub struct VmOptions<'a> {
    pub image: &'a VmImage,
    pub keys: &'a LabKeys,
    pub dir: &'a Path,
    /// Outlive this process (`lab vm up`) instead of dying with it.
    pub detached: bool,
}

/// The guest's kernel command line: console, the appliance's addresses
/// (`vm::net`), the simulated air where the image has it.
pub fn kernel_cmdline(image: &VmImage) -> String {
    let console_dev = match image.arch {
        Arch::X86_64 => "ttyS0",
        Arch::Aarch64 => "ttyAMA0",
    };
    let mut append = format!(
        "console={console_dev} panic=5 quiet loglevel=4 besser.wired={},{}/{} besser.data={},{}/{}",
        net::WIRED_MAC,
        net::WIRED_GUEST_ADDR,
        net::PREFIX_LEN,
        net::DATA_MAC,
        net::DATA_GUEST_ADDR,
        net::PREFIX_LEN
    );
    if image.data_link == DataLink::SimulatedAir {
        append.push_str(&format!(" besser.air={SIM_AP_SSID}"));
    }
    append
}

fn qemu_command(
    image: &VmImage,
    uboot: Option<&crate::abvm::UBootBoot>,
    ssh_port: u16,
    data_port: u16,
    console: &Path,
) -> Command {
    let (bin, machine): (&str, &[&str]) = match image.arch {
        Arch::X86_64 => ("qemu-system-x86_64", &["-M", "pc", "-cpu", "max"]),
        Arch::Aarch64 => ("qemu-system-aarch64", &["-M", "virt", "-cpu", "cortex-a53"]),
    };
    let mut c = Command::new(bin);
    c.args(machine)
        .args(["-accel", "tcg", "-smp", "1", "-m", &VM_MEM_MB.to_string()])
        .args(["-nodefaults", "-no-user-config", "-display", "none"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()));
    match uboot {
        // U-Boot as the firmware, the slots on a virtio disk; the boot
        // script picks the kernel.
        Some(u) => {
            c.arg("-bios")
                .arg(&u.firmware)
                .arg("-drive")
                .arg(format!(
                    "if=none,id=boot,format=raw,file={}",
                    u.disk.display()
                ))
                .args(["-device", "virtio-blk-pci,drive=boot"]);
        }
        None => {
            c.arg("-kernel")
                .arg(&image.kernel)
                .arg("-initrd")
                .arg(&image.initrd)
                .arg("-append")
                .arg(kernel_cmdline(image));
        }
    }
    c.arg("-netdev")
        .arg(format!(
            "user,id=wired,net={},restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-{}:{GUEST_SSH_PORT}",
            net::WIRED_SUBNET,
            net::WIRED_GUEST_ADDR
        ))
        .arg("-device")
        .arg(format!("virtio-net-pci,netdev=wired,mac={}", net::WIRED_MAC))
        .arg("-netdev")
        .arg(format!(
            "user,id=data,net={},restrict=on,hostfwd=tcp:127.0.0.1:{data_port}-{}:{GUEST_DATA_PORT}",
            net::DATA_SUBNET,
            net::DATA_GUEST_ADDR
        ))
        .arg("-device")
        .arg(format!("virtio-net-pci,netdev=data,mac={}", net::DATA_MAC));
    c
}

/// The last lines of the console log, for error messages.
pub fn console_tail(path: &Path, lines: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

impl Vm {
    /// Boots a VM and waits until SSH answers. Takes the VM lock first.
    pub fn boot(opts: &VmOptions<'_>) -> Result<Vm> {
        Self::boot_with(opts, None)
    }

    /// As [`Vm::boot`], booted by U-Boot from an A/B disk ([`crate::abvm`]).
    pub fn boot_with(opts: &VmOptions<'_>, uboot: Option<&crate::abvm::UBootBoot>) -> Result<Vm> {
        let lock = VmLock::acquire()?;
        let (child, state) = spawn(opts, uboot, &lock)?;
        let mut vm = Vm {
            child: Some(child),
            state,
            _lock: lock,
        };
        if let Err(e) = vm.wait_ssh(Duration::from_secs(VM_BOOT_TIMEOUT_S)) {
            vm.kill();
            return Err(e);
        }
        Ok(vm)
    }

    pub fn device(&self) -> Device {
        self.state.device()
    }

    fn wait_ssh(&mut self, timeout: Duration) -> Result<()> {
        wait_ssh(&self.state, timeout, &mut || {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(anyhow!("QEMU exited during boot ({st})"));
                }
            }
            Ok(())
        })
    }

    /// Keeps QEMU running after this process exits (for `lab vm up`).
    pub fn detach(mut self) -> VmState {
        self.child = None;
        self.state.clone()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(
    opts: &VmOptions<'_>,
    uboot: Option<&crate::abvm::UBootBoot>,
    lock: &VmLock,
) -> Result<(Child, VmState)> {
    fs::create_dir_all(opts.dir)?;
    let ssh_port = free_port()?;
    let mut data_port = free_port()?;
    while data_port == ssh_port {
        data_port = free_port()?;
    }
    let console = opts.dir.join("console.log");
    let known_hosts = opts.dir.join("known_hosts");
    fs::write(
        &known_hosts,
        format!(
            "{} {}\n",
            known_hosts_name("127.0.0.1", ssh_port),
            opts.keys.host_pub
        ),
    )?;
    let mut cmd = qemu_command(opts.image, uboot, ssh_port, data_port, &console);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(fs::File::create(opts.dir.join("qemu.stderr"))?));
    let lock_fd = lock.fd().map(|f| f.as_raw_fd());
    let detached = opts.detached;
    if !detached {
        // Its own process group: a terminal's Ctrl-C reaches besser, which
        // saves what it has and then stops the VM, not QEMU mid-collect.
        // (Detached VMs get a session of their own below.)
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (fcntl, setsid, prctl) on values copied
    // into it; it allocates nothing and touches no locks.
    unsafe {
        cmd.pre_exec(move || {
            if let Some(fd) = lock_fd {
                // Keep the locked file open in QEMU: the lock lives as long as QEMU.
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            }
            if detached {
                rustix::process::setsid()?;
            } else {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| {
        format!(
            "starting {:?} (is qemu-system-{} installed?)",
            cmd.get_program(),
            opts.image.arch.name()
        )
    })?;
    let state = VmState {
        pid: child.id(),
        ssh_port,
        data_port,
        arch: opts.image.arch,
        kernel: opts.image.kernel.clone(),
        initrd: opts.image.initrd.clone(),
        boot: uboot.map(|u| u.storage.clone()),
        console_log: console,
        known_hosts,
        client_key: opts.keys.client_key.clone(),
    };
    Ok((child, state))
}

/// Waits until SSH on the VM answers a command.
pub fn wait_ssh(
    state: &VmState,
    timeout: Duration,
    alive: &mut dyn FnMut() -> Result<()>,
) -> Result<()> {
    let dev = state.device();
    let pb = crate::progress::spinner("booting the virtual lab device");
    let t0 = Instant::now();
    let mut last;
    loop {
        alive().map_err(|e| {
            anyhow!(
                "{e}\nconsole ({}):\n{}",
                state.console_log.display(),
                console_tail(&state.console_log, 30)
            )
        })?;
        match Transport::connect(&dev.wired) {
            Ok(mut t) => match t.exec(
                "cat /proc/sys/kernel/random/boot_id",
                Duration::from_secs(10),
            ) {
                Ok(o) if o.status == 0 => {
                    pb.finish_and_clear();
                    return Ok(());
                }
                Ok(o) => last = format!("exit {}", o.status),
                Err(e) => last = e.to_string(),
            },
            Err(e @ crate::device::transport::TransportError::HostKeyMismatch { .. }) => {
                return Err(e.into())
            }
            Err(e) => last = e.to_string(),
        }
        if t0.elapsed() > timeout {
            pb.finish_and_clear();
            bail!(
                "the virtual device did not answer SSH within {} s (last: {last})\nconsole ({}):\n{}",
                timeout.as_secs(),
                state.console_log.display(),
                console_tail(&state.console_log, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

// ---- the detached VM of `lab vm up|down|status` -----------------------------

pub fn state_path(target_dir: &Path) -> PathBuf {
    target_dir.join("lab-vm/run/state.json")
}

/// The VM left running by `lab vm up`, if it is still alive.
pub fn running(target_dir: &Path) -> Option<VmState> {
    let s: VmState =
        serde_json::from_str(&fs::read_to_string(state_path(target_dir)).ok()?).ok()?;
    s.alive().then_some(s)
}

/// `lab vm up`: boots a VM that outlives this process.
pub fn up(target_dir: &Path, image: &VmImage, keys: &LabKeys) -> Result<VmState> {
    up_with(target_dir, image, keys, None)
}

/// `lab vm up --ab`: as [`up`], booted by U-Boot from an A/B disk made from
/// `ab_image_dir` ([`crate::abvm`]), so `cargo xtask flash --device vm` can
/// flash it.
pub fn up_with(
    target_dir: &Path,
    image: &VmImage,
    keys: &LabKeys,
    ab_image_dir: Option<&Path>,
) -> Result<VmState> {
    if let Some(s) = running(target_dir) {
        bail!(
            "a virtual lab device is already up (pid {}, ssh 127.0.0.1:{}); `cargo xtask lab vm down` first",
            s.pid,
            s.ssh_port
        );
    }
    let dir = target_dir.join("lab-vm/run");
    let uboot = match ab_image_dir {
        Some(d) => Some(crate::abvm::create(
            &target_dir.join("lab-vm/ab"),
            d,
            image,
            &kernel_cmdline(image),
        )?),
        None => None,
    };
    let vm = Vm::boot_with(
        &VmOptions {
            image,
            keys,
            dir: &dir,
            detached: true,
        },
        uboot.as_ref(),
    )?;
    let state = vm.detach();
    fs::write(
        state_path(target_dir),
        serde_json::to_string_pretty(&state)?,
    )?;
    Ok(state)
}

/// `lab vm down`: stops the VM left running by `lab vm up`.
pub fn down(target_dir: &Path) -> Result<Option<VmState>> {
    // The VM's labgrid exporter (`lab vm up --labgrid`), if any, goes with it.
    crate::farm::vm::unregister(target_dir);
    let Some(s) = running(target_dir) else {
        let _ = fs::remove_file(state_path(target_dir));
        return Ok(None);
    };
    let pid =
        rustix::process::Pid::from_raw(s.pid as i32).ok_or_else(|| anyhow!("bad pid {}", s.pid))?;
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let t0 = Instant::now();
    while s.alive() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    if s.alive() {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    let _ = fs::remove_file(state_path(target_dir));
    Ok(Some(s))
}
