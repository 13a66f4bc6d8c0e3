//! The virtual lab device as a labgrid place (`lab vm up --labgrid`), so
//! every farm path runs without hardware: a `labgrid-exporter` (bound to
//! 127.0.0.1) exports the VM's forwarded SSH and data ports as the two
//! `NetworkService`s, and the place `besser-vm` matches them, tagged
//! `besser_vm=1` (the lab then uses the VM's own key and known_hosts).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::client::Labgrid;
use super::export::{exporter_yaml, place_tags};
use crate::vm::VmState;

pub const VM_PLACE: &str = "besser-vm";
pub const TAG_VM: &str = "besser_vm";

fn pid_file(target_dir: &Path) -> PathBuf {
    target_dir.join("lab-vm/labgrid-exporter.pid")
}

/// Exports the running VM and makes sure the place exists and matches it.
/// The exporter runs detached (its log beside the VM's); [`unregister`]
/// stops it. Returns the exporter's pid.
pub fn register(target_dir: &Path, lg: &Labgrid, exporter: &Path, vm: &VmState) -> Result<u32> {
    unregister(target_dir);
    let mut dev = vm.device();
    dev.name = VM_PLACE.into();
    let dir = target_dir.join("lab-vm");
    std::fs::create_dir_all(&dir)?;
    let cfg = dir.join("labgrid-exporter.yaml");
    std::fs::write(&cfg, exporter_yaml(&dev, vm.arch_board()))?;
    let log = std::fs::File::create(dir.join("labgrid-exporter.log"))?;
    let child = Command::new(exporter)
        .arg("-c")
        .arg(&lg.coordinator)
        .arg("--name")
        .arg(format!("{VM_PLACE}-exporter"))
        .arg("--hostname")
        .arg("127.0.0.1")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", exporter.display()))?;
    let pid = child.id();
    std::fs::write(pid_file(target_dir), pid.to_string())?;
    // The exporter is not waited for: it lives until `lab vm down`.
    std::mem::forget(child);
    if !lg.places()?.iter().any(|p| p == VM_PLACE) {
        lg.run(&["-p", VM_PLACE, "create"])?;
        lg.run(&["-p", VM_PLACE, "add-match", &format!("*/{VM_PLACE}/*")])?;
    }
    let mut tags: Vec<String> = place_tags(&dev, vm.arch_board())
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    tags.push(format!("{TAG_VM}=1"));
    let mut args = vec!["-p", VM_PLACE, "set-tags"];
    args.extend(tags.iter().map(String::as_str));
    lg.run(&args)?;
    // The exporter's resources show up once it has registered.
    let t0 = Instant::now();
    loop {
        let out = lg.run(&["resources"])?;
        if out
            .lines()
            .any(|l| l.contains(&format!("/{VM_PLACE}/NetworkService")))
        {
            return Ok(pid);
        }
        if t0.elapsed() > Duration::from_secs(20) {
            bail!(
                "labgrid-exporter did not register the VM's resources with {} in 20 s (see {})",
                lg.coordinator,
                dir.join("labgrid-exporter.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Stops the exporter `register` started, if it runs.
pub fn unregister(target_dir: &Path) {
    let path = pid_file(target_dir);
    if let Some(pid) = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        if crate::lock::cmdline(pid.as_raw_nonzero().get() as u32).contains("labgrid-exporter") {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
    let _ = std::fs::remove_file(path);
}

impl VmState {
    /// The board name a place for this VM is tagged with.
    pub fn arch_board(&self) -> &'static str {
        match self.arch {
            besser_image::Arch::X86_64 => "qemu-x86_64",
            besser_image::Arch::Aarch64 => "qemu-arm64",
        }
    }
}
