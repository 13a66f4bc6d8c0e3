//! The lab appliance: the guest side of the virtual lab device, as one initramfs.
//!
//! [`build_initramfs`] is THE place that defines what runs on a virtual lab
//! device (CONTRACTS.md: "No second init script anywhere"): busybox init, the
//! mounts the lab's telemetry needs (proc, sys, devtmpfs, tracefs), kernel
//! modules (with their dependencies, loaded in order), the two NICs — "wired"
//! (SSH, the fallback link) and "data" renamed to `wlan0` —, dropbear with one
//! authorized key and a fixed host key. The image engineer calls it with its
//! own kernel's modules directory and architecture.
//!
//! Network addresses are not baked in: the VM passes them on the kernel
//! command line (`besser.wired=MAC,ADDR/PREFIX besser.data=MAC,ADDR/PREFIX`), so
//! the one place that knows QEMU's user-net subnets is `vm.rs`.
//!
//! **The simulated air** (`besser.air=SSID`, images with bes2600 and the
//! simulated SDIO host): the data NIC is not the data link but the AP's
//! wired side: it becomes `apwire0`, bridged (`apbr0`) with the simulated
//! AP's `besserap0`; the bes2600 interface becomes `wlan0`, associates with
//! SSID and takes the data address. Host traffic then crosses the chip
//! model's air and the Rust driver to reach `wlan0`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::cpio::{Entry, Writer};

/// Name of the data interface inside the guest (the link under test).
pub const DATA_IFACE: &str = "wlan0";
/// Name of the wired (fallback, SSH) interface inside the guest.
pub const WIRED_IFACE: &str = "enu1";
/// TCP port of the SSH server inside the guest.
pub const GUEST_SSH_PORT: u16 = 22;
/// TCP port the per-rep listener uses inside the guest.
pub const GUEST_DATA_PORT: u16 = 5001;
/// What the appliance writes to the kernel log once `wlan0` associated over
/// the simulated air (`besser.air=`), followed by `iw`'s `Connected to …`.
pub const AIR_MARKER: &str = "besser-appliance: wlan0 on the simulated air:";
/// Where QEMU boards' besser images keep the test-only module that plants a
/// SOFTIRQ-safe -> SOFTIRQ-unsafe lock inversion (`driver/sdiosim`).
pub const LOCK_PLANT_KO: &str = "/lib/modules/besser/test/besser_lock_plant.ko";
/// The kernel's packet generator, never loaded at boot: the boot test's TX
/// flood loads it on QEMU boards.
pub const PKTGEN_KO: &str = "/lib/modules/besser/test/pktgen.ko";
/// Line the appliance writes to the kernel log (and console) when it is up.
pub const READY_MARKER: &str = "besser-appliance: ready";

/// The architecture of a guest: the image crate's, one enum for both.
pub use besser_image::board::Arch;

/// A file put into the image as is.
#[derive(Clone, Debug)]
pub struct ExtraFile {
    /// Absolute path inside the guest.
    pub guest_path: String,
    pub mode: u32,
    pub contents: Vec<u8>,
}

/// Everything the appliance is made of.
#[derive(Clone, Debug)]
pub struct ApplianceSpec {
    pub arch: Arch,
    /// A static busybox for `arch`.
    pub busybox: PathBuf,
    /// dropbear and the shared libraries it needs (host path = guest path), or
    /// `None` for a boot-only appliance without SSH (it still prints [`READY_MARKER`]).
    pub dropbear: Option<Dropbear>,
    /// A tree that contains `lib/modules/<release>/…` (an extracted kernel
    /// package or a `make modules_install INSTALL_MOD_PATH=` root), if any.
    pub modules_root: Option<PathBuf>,
    /// Modules to load at boot, by name; their dependencies are added and
    /// loaded first. Names missing from `modules_root` are an error.
    pub modules: Vec<String>,
    pub extra_files: Vec<ExtraFile>,
}

#[derive(Clone, Debug)]
pub struct Dropbear {
    pub binary: PathBuf,
    /// Shared libraries (and the dynamic loader) as absolute paths; each is
    /// stored at the same path in the guest.
    pub libs: Vec<PathBuf>,
    /// dropbear-format host key (fixed, so the host can pin it).
    pub host_key: PathBuf,
    /// One `authorized_keys` line for root.
    pub authorized_key: String,
}

/// The init configuration (busybox init's inittab).
fn inittab(with_ssh: bool) -> String {
    let mut s = String::from("::sysinit:/etc/besser/rcS\n");
    if with_ssh {
        s.push_str(&format!(
            "::respawn:/usr/sbin/dropbear -F -E -s -p {GUEST_SSH_PORT} -r /etc/dropbear/host_key\n"
        ));
    }
    s.push_str("::ctrlaltdel:/bin/busybox reboot -f\n");
    s
}

/// The one boot script of the lab appliance (`appliance/rcS.sh`, plain
/// shell; `@NAME@` stands for the constant of that name).
fn rcs() -> String {
    include_str!("appliance/rcS.sh")
        .replace("@DATA_IFACE@", DATA_IFACE)
        .replace("@WIRED_IFACE@", WIRED_IFACE)
        .replace("@AIR_MARKER@", AIR_MARKER)
        .replace("@READY_MARKER@", READY_MARKER)
}

/// Builds the appliance initramfs (uncompressed cpio newc) at `out`.
pub fn build_initramfs(spec: &ApplianceSpec, out: &Path) -> Result<()> {
    let busybox = fs::read(&spec.busybox)
        .with_context(|| format!("reading busybox {}", spec.busybox.display()))?;
    let modules = match &spec.modules_root {
        Some(root) => resolve_modules(root, &spec.modules)?,
        None if spec.modules.is_empty() => Vec::new(),
        None => bail!(
            "modules {:?} requested but no modules directory given",
            spec.modules
        ),
    };

    // Collect files first: directories are derived from their paths.
    let mut files: BTreeMap<String, (u32, Vec<u8>)> = BTreeMap::new();
    files.insert("/bin/busybox".into(), (0o755, busybox));
    files.insert(
        "/etc/inittab".into(),
        (0o644, inittab(spec.dropbear.is_some()).into_bytes()),
    );
    files.insert("/etc/besser/rcS".into(), (0o755, rcs().into_bytes()));
    let order: String = modules.iter().map(|(n, _)| format!("{n}\n")).collect();
    files.insert(
        "/etc/besser/modules.order".into(),
        (0o644, order.into_bytes()),
    );
    for (name, path) in &modules {
        let data = fs::read(path).with_context(|| format!("reading module {}", path.display()))?;
        files.insert(format!("/lib/modules/besser/{name}.ko"), (0o644, data));
    }
    files.insert(
        "/etc/passwd".into(),
        (0o644, b"root:x:0:0:root:/root:/bin/sh\n".to_vec()),
    );
    files.insert("/etc/group".into(), (0o644, b"root:x:0:\n".to_vec()));
    files.insert("/etc/shells".into(), (0o644, b"/bin/sh\n".to_vec()));
    if let Some(db) = &spec.dropbear {
        let bin = fs::read(&db.binary)
            .with_context(|| format!("reading dropbear {}", db.binary.display()))?;
        files.insert("/usr/sbin/dropbear".into(), (0o755, bin));
        for lib in &db.libs {
            let data = fs::read(lib).with_context(|| format!("reading {}", lib.display()))?;
            let p = lib
                .to_str()
                .ok_or_else(|| anyhow!("non-UTF-8 path {}", lib.display()))?;
            files.insert(p.to_string(), (0o755, data));
        }
        let key = fs::read(&db.host_key)
            .with_context(|| format!("reading host key {}", db.host_key.display()))?;
        files.insert("/etc/dropbear/host_key".into(), (0o600, key));
        let mut ak = db.authorized_key.trim().to_string();
        ak.push('\n');
        files.insert(
            "/root/.ssh/authorized_keys".into(),
            (0o600, ak.into_bytes()),
        );
    }
    for f in &spec.extra_files {
        if !f.guest_path.starts_with('/') {
            bail!("extra file path {:?} must be absolute", f.guest_path);
        }
        files.insert(f.guest_path.clone(), (f.mode, f.contents.clone()));
    }

    let mut dirs: BTreeSet<String> = [
        "/bin",
        "/sbin",
        "/usr/bin",
        "/usr/sbin",
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/run",
        "/root",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for p in files.keys() {
        let mut d = Path::new(p).parent();
        while let Some(x) = d {
            let s = x.to_string_lossy().to_string();
            if s == "/" || s.is_empty() {
                break;
            }
            dirs.insert(s);
            d = x.parent();
        }
    }

    let tmp = out.with_extension("tmp");
    let f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = Writer::new(BufWriter::new(f));
    for d in &dirs {
        let mode = if d == "/root" || d == "/root/.ssh" {
            0o700
        } else if d == "/tmp" {
            0o1777
        } else {
            0o755
        };
        w.add(&Entry::Dir { path: d, mode })?;
    }
    w.add(&Entry::CharDev {
        path: "/dev/console",
        mode: 0o600,
        major: 5,
        minor: 1,
    })?;
    w.add(&Entry::CharDev {
        path: "/dev/null",
        mode: 0o666,
        major: 1,
        minor: 3,
    })?;
    w.add(&Entry::Symlink {
        path: "/init",
        target: "/bin/busybox",
    })?;
    w.add(&Entry::Symlink {
        path: "/bin/sh",
        target: "busybox",
    })?;
    w.add(&Entry::Symlink {
        path: "/sbin/init",
        target: "/bin/busybox",
    })?;
    for (p, (mode, data)) in &files {
        w.add(&Entry::File {
            path: p,
            mode: *mode,
            data,
        })?;
    }
    let mut bw = w.finish()?;
    std::io::Write::flush(&mut bw)?;
    drop(bw);
    fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// Finds the requested modules under `root/lib/modules/*/` and orders them so
/// that every module comes after its dependencies (from `.modinfo` `depends=`).
pub fn resolve_modules(root: &Path, wanted: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let mut index: BTreeMap<String, PathBuf> = BTreeMap::new();
    let base = root.join("lib/modules");
    let search = if base.is_dir() {
        base
    } else {
        root.to_path_buf()
    };
    walk(&search, &mut |p| {
        if let Some(name) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            index.entry(norm(name)).or_insert_with(|| p.to_path_buf());
        }
    })?;
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for w in wanted {
        visit(&norm(w), &index, &mut seen, &mut order, 0)?;
    }
    Ok(order)
}

fn norm(n: &str) -> String {
    n.replace('-', "_")
}

/// Nesting limit of module dependencies (a cycle or a broken tree beyond that).
const MODULE_DEPTH_MAX: usize = 16;

fn visit(
    name: &str,
    index: &BTreeMap<String, PathBuf>,
    seen: &mut BTreeSet<String>,
    order: &mut Vec<(String, PathBuf)>,
    depth: usize,
) -> Result<()> {
    if seen.contains(name) {
        return Ok(());
    }
    if depth > MODULE_DEPTH_MAX {
        bail!("module dependencies nest deeper than {MODULE_DEPTH_MAX} at {name}");
    }
    let path = index
        .get(name)
        .ok_or_else(|| anyhow!("kernel module {name}.ko not found in the modules directory"))?;
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    for dep in modinfo_depends(&data) {
        visit(&norm(&dep), index, seen, order, depth + 1)?;
    }
    seen.insert(name.to_string());
    order.push((name.to_string(), path.clone()));
    Ok(())
}

/// The `depends=` list of a module's `.modinfo` (NUL-separated `key=value` strings).
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"depends=";
    let mut i = 0;
    while let Some(pos) = find(&ko[i..], KEY) {
        let start = i + pos;
        // Must start a modinfo string: preceded by NUL.
        if start == 0 || ko[start - 1] == 0 {
            let v = &ko[start + KEY.len()..];
            let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
            let s = String::from_utf8_lossy(&v[..end]);
            return s
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_string)
                .collect();
        }
        i = start + 1;
    }
    Vec::new()
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let p = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&p, f)?;
        } else if ft.is_file() {
            f(&p);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modinfo_depends_reads_the_list() {
        let blob = b"\x7fELF junk\0license=GPL\0depends=net_failover,virtio\0vermagic=6.1\0";
        assert_eq!(modinfo_depends(blob), vec!["net_failover", "virtio"]);
        let none = b"\0license=GPL\0depends=\0";
        assert!(modinfo_depends(none).is_empty());
        // "xdepends=" inside another string does not count
        assert!(modinfo_depends(b"\0xdepends=a\0").is_empty());
    }

    #[test]
    fn rcs_configures_both_links_from_the_command_line() {
        let s = rcs();
        assert!(s.contains("besser.wired=*) setup_if enu1"));
        assert!(s.contains("else setup_if wlan0 \"${kv#besser.data=}\""));
        assert!(s.contains("if [ -n \"$air\" ]; then setup_air \"${kv#besser.data=}\""));
        assert!(s.contains("brctl addif apbr0 besserap0"));
        assert!(s.contains("mount -t tracefs"));
    }

    /// The boot script parses as POSIX sh (busybox's ash runs it).
    #[test]
    fn rcs_has_every_placeholder_filled() {
        let s = rcs();
        assert!(
            !s.contains('@'),
            "{}",
            s.lines().find(|l| l.contains('@')).unwrap_or("")
        );
        assert!(s.contains(READY_MARKER));
    }

    #[test]
    fn rcs_is_valid_shell() {
        let p = std::env::temp_dir().join(format!("besser-rcs-{}.sh", std::process::id()));
        fs::write(&p, rcs()).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-n")
            .arg(&p)
            .output()
            .unwrap();
        let _ = fs::remove_file(&p);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
