//! `--place`/`--labgrid-tags` for the lab's commands, `lab farm export|status`
//! and `lab vm up --labgrid`: the CLI side of `besser_lab::farm`. labgrid
//! itself (PyPI, pinned) lives in a venv under the cache.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use besser_lab::device::inventory::{Auth, Device, HostKeyPolicy, Inventory};
use besser_lab::farm::{self, Labgrid, Lease, Want};
use clap::{Args, Subcommand};
use xshell::Shell;

/// labgrid, pinned: its coordinator speaks gRPC since 25.0.
pub const LABGRID_PIN: &str = "labgrid==26.0.1";

/// The venv's `bin/` with labgrid-client, -exporter and -coordinator.
pub fn labgrid_bin(sh: &Shell) -> Result<PathBuf> {
    crate::deps::ensure_venv(sh, "labgrid", &[LABGRID_PIN])
}

/// Where this host keeps its lease files (what a killed besser held).
pub fn lease_dir() -> PathBuf {
    crate::deps::cache_dir().join("farm")
}

/// Taking a device from the farm instead of the inventory.
#[derive(Args, Clone, Debug, Default)]
pub struct FarmOpts {
    /// Reserve and lock this labgrid place (instead of --device).
    #[arg(long, conflicts_with = "device")]
    pub place: Option<String>,
    /// Reserve any labgrid place with these tags (`board=pinetab2`, repeatable).
    #[arg(long = "labgrid-tags", value_name = "KEY=VALUE", conflicts_with_all = ["device", "place"])]
    pub labgrid_tags: Vec<String>,
    /// Queue for the place when someone else holds it (default: refuse, naming the holder).
    #[arg(long)]
    pub wait: bool,
    /// The labgrid coordinator, host:port (default: $LG_COORDINATOR, else 127.0.0.1:20408).
    #[arg(long)]
    pub coordinator: Option<String>,
}

impl FarmOpts {
    pub fn want(&self) -> Option<Want> {
        match (&self.place, self.labgrid_tags.is_empty()) {
            (Some(p), _) => Some(Want::Place(p.clone())),
            (None, false) => Some(Want::Tags(self.labgrid_tags.clone())),
            (None, true) => None,
        }
    }
}

/// A held place and the device it stands for.
pub struct Held {
    pub lease: Lease,
    pub device: Device,
    /// Set by the lease watch when the lease is lost.
    pub lost: Arc<Mutex<Option<String>>>,
    stop: Arc<AtomicBool>,
    watch: Option<std::thread::JoinHandle<()>>,
}

impl Held {
    /// Says on the place what ran (`lab farm status` shows it), then releases.
    pub fn finish(mut self, what: &str) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(w) = self.watch.take() {
            let _ = w.join();
        }
        let comment = format!(
            "besser: last ran {what} as {} at {}",
            self.lease.labgrid().identity(),
            besser_lab::rundir::now_unix()
        );
        let _ = self
            .lease
            .labgrid()
            .set_comment(&self.lease.place, &comment);
        if let Err(e) = self.lease.release() {
            eprintln!("warning: {e:#}");
        }
    }
}

/// How often a held lease is checked (`BESSER_FARM_WATCH_S`, default 10 s).
fn watch_every() -> Duration {
    Duration::from_secs_f64(
        std::env::var("BESSER_FARM_WATCH_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10.0),
    )
}

/// Reserves, acquires and resolves what `opts` asks for (`None` when it asks
/// for nothing). `inventory`: where a local entry of the place's name (keys,
/// reboot, boot storage) may be.
pub fn take(
    sh: &Shell,
    opts: &FarmOpts,
    inventory: Option<&Path>,
    target_dir: &Path,
) -> Result<Option<Held>> {
    let Some(want) = opts.want() else {
        return Ok(None);
    };
    let bin = labgrid_bin(sh)?;
    let lg = Labgrid::new(
        &bin,
        &farm::coordinator_address(opts.coordinator.as_deref()),
    );
    let lease = Lease::take(&lg, &want, opts.wait, &lease_dir(), &mut |m| {
        besser_lab::progress::note(m)
    })?;
    let place = lg.show(&lease.place)?;
    let resources = lg.resources(&lease.place)?;
    let inv_path = inventory
        .map(Path::to_path_buf)
        .unwrap_or_else(besser_lab::ramp::command::default_inventory);
    let local = if inv_path.is_file() {
        Inventory::load(&inv_path)?.device(&lease.place).ok()
    } else {
        None
    };
    let mut device = farm::export::device_from_place(
        &place,
        &resources,
        local,
        &lg.power_cycle_command(&lease.place),
    )?;
    if place.tags.get(farm::vm::TAG_VM).map(String::as_str) == Some("1") {
        // The virtual device's own key and host key (this host made them).
        let keys = besser_lab::assets::lab_keys(target_dir)?;
        device.wired.auth = Auth::Key(keys.client_key.clone());
        let vm = besser_lab::vm::running(target_dir)
            .context("place is the virtual device, but no `lab vm up` device runs on this host")?;
        device.wired.known_hosts = vm.known_hosts;
        // An A/B virtual device (`lab vm up --ab`) is flashable.
        device.boot = device.boot.or(vm.boot);
        device.wired.host_key_policy = HostKeyPolicy::Strict;
        device.boot_timeout_s = besser_lab::vm::VM_DEVICE_BOOT_TIMEOUT_S;
    }
    let lost = Arc::new(Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let watch = Some(lease.watch(watch_every(), lost.clone(), stop.clone()));
    Ok(Some(Held {
        lease,
        device,
        lost,
        stop,
        watch,
    }))
}

#[derive(Subcommand)]
pub enum FarmCmd {
    /// Print a labgrid exporter YAML (and the place's set-up) for an inventory device.
    Export {
        #[arg(long)]
        device: String,
        /// Inventory file (default: $BESSER_INVENTORY or ~/.config/besser/inventory.yaml).
        #[arg(long)]
        inventory: Option<PathBuf>,
        /// The board tag of the place.
        #[arg(long, default_value = "pinetab2")]
        board: String,
    },
    /// List the coordinator's places: holder, since when, board, what besser last ran there.
    Status {
        #[arg(long)]
        coordinator: Option<String>,
    },
}

pub fn run(sh: &Shell, cmd: FarmCmd) -> Result<()> {
    match cmd {
        FarmCmd::Export {
            device,
            inventory,
            board,
        } => {
            let path = inventory.unwrap_or_else(besser_lab::ramp::command::default_inventory);
            let dev = Inventory::load(&path)?.device(&device)?;
            print!("{}", farm::export::exporter_yaml(&dev, &board));
            Ok(())
        }
        FarmCmd::Status { coordinator } => {
            let bin = labgrid_bin(sh)?;
            let lg = Labgrid::new(&bin, &farm::coordinator_address(coordinator.as_deref()));
            let places = lg.places()?;
            println!("{} place(s) at {}", places.len(), lg.coordinator);
            for p in places {
                let i = lg.show(&p)?;
                println!(
                    "{:<20} {:<28} board={:<12} {}",
                    i.name,
                    i.acquired
                        .map(|h| format!(
                            "held by {h} since {}",
                            i.changed.as_deref().unwrap_or("?")
                        ))
                        .unwrap_or_else(|| "free".into()),
                    i.tags.get("board").map(String::as_str).unwrap_or("?"),
                    i.comment.unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}
