//! The virtual lab device's parts, built once from Debian packages and cached
//! under `target/lab-vm/<key>/`, where the key names the package versions
//! (kernel, busybox-static, dropbear-bin) and the appliance's own version.
//!
//! - The kernel: `apt-get download linux-image-<abi>-amd64` (no install), the
//!   bzImage's payload decompressed to an ELF `vmlinux`, which QEMU boots
//!   directly through PVH (much faster than the compressed image under TCG).
//! - The initramfs: [`crate::appliance::build_initramfs`] with the host's
//!   static busybox, dropbear (+ its shared libraries) and the virtio modules.
//! - Keys under `target/lab-vm/keys/` (stable across cache keys): the client
//!   key the lab logs in with, and the device's fixed host key, which the lab
//!   pins in a known_hosts file it writes per VM boot.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

use crate::appliance::{self, ApplianceSpec, Arch, Dropbear};

/// Debian packages the host needs for the default virtual device.
pub const HOST_DEBS: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "dropbear-bin",
    "xz-utils",
    "cpio",
    "iproute2",
    "iw",
];
/// Modules the default appliance loads (dependencies are added): virtio, and
/// the traffic-control pieces a test uses to degrade the data link on purpose
/// (ingress policing: `clsact` + `matchall` + `police`).
pub const VM_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_net",
    "sch_ingress",
    "cls_matchall",
    "act_police",
];
/// iproute2's `tc` inside the guest (busybox's `tc` applet cannot police),
/// off PATH so busybox's applets stay what they are.
pub const GUEST_TC: &str = "/usr/lib/besser/tc";
/// iproute2's `tc` on the host, copied into the appliance with its libraries.
const HOST_TC: &str = "/sbin/tc";
/// `iw` (Debian's), for the Rust driver's wlan interface: scan, connect.
pub const GUEST_IW: &str = "/usr/sbin/iw";
const HOST_IW: &str = "/usr/sbin/iw";
/// Bump when the appliance's contents change in a way the cache must see.
pub const APPLIANCE_VERSION: u32 = 7;

/// What a VM boots.
#[derive(Clone, Debug)]
pub struct VmImage {
    pub arch: Arch,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    /// `uname -r` of the kernel, if known.
    pub kernel_release: Option<String>,
    /// What carries the data link inside the guest.
    pub data_link: DataLink,
}

/// What the guest's data link (`wlan0`) is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataLink {
    /// The data NIC itself (virtio), renamed `wlan0`: no Wi-Fi driver.
    #[default]
    Virtio,
    /// bes2600's interface, associated with the simulated AP of the
    /// simulated SDIO host, whose wired side is bridged to the data NIC
    /// (`besser.air=`, see [`crate::appliance`]). Images whose manifest
    /// records the simulated host boot this way.
    SimulatedAir,
}

/// The SSID of the chip model's AP (`driver/sim/src/ap.rs`).
pub const SIM_AP_SSID: &str = "besser";

/// The lab's SSH keys for virtual devices.
#[derive(Clone, Debug)]
pub struct LabKeys {
    /// Client private key, OpenSSH format.
    pub client_key: PathBuf,
    /// Client public key, one `authorized_keys` line.
    pub client_pub: String,
    /// Device host key, dropbear format (goes into the initramfs).
    pub host_key: PathBuf,
    /// Device host public key: `ssh-ed25519 AAAA…`.
    pub host_pub: String,
}

fn run(cmd: &mut Command) -> Result<String> {
    let what = format!("{cmd:?}");
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pubkey_line(dropbear_key: &Path) -> Result<String> {
    let out = run(Command::new("dropbearkey")
        .arg("-y")
        .arg("-f")
        .arg(dropbear_key))?;
    out.lines()
        .find(|l| l.starts_with("ssh-"))
        .map(|l| {
            // "ssh-ed25519 AAAA… user@host": keep type and key.
            l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
        })
        .ok_or_else(|| {
            anyhow!(
                "dropbearkey -y printed no public key for {}",
                dropbear_key.display()
            )
        })
}

/// Makes (once) and returns the lab keys under `target/lab-vm/keys/`.
pub fn lab_keys(target_dir: &Path) -> Result<LabKeys> {
    let dir = target_dir.join("lab-vm/keys");
    fs::create_dir_all(&dir)?;
    let host_key = dir.join("host_ed25519.dropbear");
    let client_db = dir.join("client_ed25519.dropbear");
    let client_key = dir.join("client_ed25519");
    for k in [&host_key, &client_db] {
        if !k.exists() {
            let tmp = k.with_extension("tmp");
            let _ = fs::remove_file(&tmp);
            run(Command::new("dropbearkey")
                .args(["-t", "ed25519", "-f"])
                .arg(&tmp))?;
            fs::rename(&tmp, k)?;
        }
    }
    if !client_key.exists() {
        let tmp = dir.join("client_ed25519.tmp");
        let _ = fs::remove_file(&tmp);
        run(Command::new("dropbearconvert")
            .args(["dropbear", "openssh"])
            .arg(&client_db)
            .arg(&tmp))?;
        fs::rename(&tmp, &client_key)?;
    }
    Ok(LabKeys {
        client_pub: pubkey_line(&client_db)?,
        host_pub: pubkey_line(&host_key)?,
        client_key,
        host_key,
    })
}

fn dpkg_version(pkg: &str) -> Result<String> {
    let v = run(Command::new("dpkg-query").args(["-W", "-f=${Version}", pkg]))
        .with_context(|| format!("{pkg} is not installed"))?;
    Ok(v.trim().to_string())
}

/// The Debian kernel package the `linux-image-amd64` meta package points at.
fn kernel_package() -> Result<(String, String)> {
    kernel_package_once().or_else(|_| {
        // A fresh machine may have no package lists yet.
        run(Command::new("apt-get").args(["update", "-q"]))?;
        kernel_package_once()
    })
}

fn kernel_package_once() -> Result<(String, String)> {
    let deps = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    let pkg = deps
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .map(|s| s.trim().to_string())
        .ok_or_else(|| anyhow!("apt-cache knows no linux-image-amd64 (run apt-get update)"))?;
    let pol = run(Command::new("apt-cache").args(["policy", &pkg]))?;
    let ver = pol
        .lines()
        .find_map(|l| l.trim().strip_prefix("Candidate: "))
        .map(|s| s.trim().to_string())
        .filter(|v| v != "(none)")
        .ok_or_else(|| anyhow!("no candidate version for {pkg}"))?;
    Ok((pkg, ver))
}

/// The shared libraries a host binary needs (incl. the dynamic loader), from `ldd`.
fn shared_libs(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = run(Command::new("ldd").arg(bin))?;
    let mut libs = Vec::new();
    for l in out.lines() {
        let path = if let Some((_, rhs)) = l.split_once("=>") {
            rhs.split_whitespace().next()
        } else {
            l.split_whitespace().next().filter(|p| p.starts_with('/'))
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The x86_64 appliance spec on this host: its busybox-static, dropbear and
/// the lab keys. `modules_root`/`modules` are the caller's (the image
/// engineer passes its own kernel's modules).
pub fn host_appliance_spec(
    keys: &LabKeys,
    arch: Arch,
    modules_root: Option<PathBuf>,
    modules: Vec<String>,
) -> Result<ApplianceSpec> {
    if arch != Arch::X86_64 {
        bail!(
            "the host's busybox/dropbear are x86_64; for {} pass an ApplianceSpec with that \
             architecture's static busybox (dropbear: None gives a boot-only appliance)",
            arch.name()
        );
    }
    let busybox = PathBuf::from("/bin/busybox");
    if !busybox.exists() {
        bail!("/bin/busybox missing: install busybox-static");
    }
    let dropbear_bin = PathBuf::from("/usr/sbin/dropbear");
    if !dropbear_bin.exists() {
        bail!("/usr/sbin/dropbear missing: install dropbear-bin");
    }
    let mut extra_files = Vec::new();
    if Path::new(HOST_TC).exists() {
        extra_files.extend(host_tool_files(HOST_TC, GUEST_TC)?);
    }
    Ok(ApplianceSpec {
        arch,
        busybox,
        dropbear: Some(Dropbear {
            libs: shared_libs(&dropbear_bin)?,
            binary: dropbear_bin,
            host_key: keys.host_key.clone(),
            authorized_key: keys.client_pub.clone(),
        }),
        modules_root,
        modules,
        extra_files,
    })
}

/// A host binary for the appliance at `guest`, with its shared libraries at
/// their host paths (dropbear's layout).
pub fn host_tool_files(host: &str, guest: &str) -> Result<Vec<appliance::ExtraFile>> {
    let tool = PathBuf::from(host);
    let mut out = vec![appliance::ExtraFile {
        guest_path: guest.into(),
        mode: 0o755,
        contents: fs::read(&tool).with_context(|| format!("reading {host}"))?,
    }];
    for lib in shared_libs(&tool)? {
        out.push(appliance::ExtraFile {
            guest_path: lib.to_string_lossy().into_owned(),
            mode: 0o755,
            contents: fs::read(&lib).with_context(|| format!("reading {}", lib.display()))?,
        });
    }
    Ok(out)
}

/// `iw` for a besser image's appliance (the driver's interface); the
/// default VM's Debian kernel has no cfg80211, so it gets none.
pub fn host_iw_files() -> Result<Vec<appliance::ExtraFile>> {
    if !Path::new(HOST_IW).exists() {
        bail!("{HOST_IW} missing: install iw");
    }
    host_tool_files(HOST_IW, GUEST_IW)
}

/// Builds (or finds in the cache) the default virtual device: Debian kernel +
/// appliance initramfs. Needs [`HOST_DEBS`] installed.
pub fn default_vm_image(target_dir: &Path) -> Result<VmImage> {
    let (kpkg, kver) = kernel_package()?;
    let key = format!(
        "{}_{}+busybox-{}+dropbear-{}+appliance-{}",
        kpkg,
        kver,
        dpkg_version("busybox-static")?,
        dpkg_version("dropbear-bin")?,
        APPLIANCE_VERSION
    );
    let dir = target_dir.join("lab-vm").join(sanitize(&key));
    let kernel = dir.join("vmlinux");
    let initrd = dir.join("initrd.cpio");
    let release_file = dir.join("kernel_release");
    let done = dir.join("complete");
    let keys = lab_keys(target_dir)?;
    if done.exists() {
        return Ok(VmImage {
            arch: Arch::X86_64,
            kernel,
            initrd,
            kernel_release: fs::read_to_string(&release_file)
                .ok()
                .map(|s| s.trim().to_string()),
            data_link: DataLink::Virtio,
        });
    }
    let pb = crate::progress::spinner(format!("building the virtual lab device ({key})"));
    let work = dir.join("work");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    pb.set_message(format!("apt-get download {kpkg}={kver}"));
    run(Command::new("apt-get")
        .arg("download")
        .arg(format!("{kpkg}={kver}"))
        .current_dir(&work))?;
    let deb = fs::read_dir(&work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| anyhow!("apt-get download left no .deb in {}", work.display()))?;
    pb.set_message("extracting the kernel package");
    let root = work.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let vmlinuz = fs::read_dir(root.join("boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| anyhow!("no boot/vmlinuz-* in {}", deb.display()))?;
    let release = vmlinuz.file_name().unwrap().to_string_lossy()["vmlinuz-".len()..].to_string();
    pb.set_message("decompressing vmlinux for a PVH boot");
    extract_vmlinux(&vmlinuz, &kernel.with_extension("tmp"))?;
    fs::rename(kernel.with_extension("tmp"), &kernel)?;
    pb.set_message("building the appliance initramfs");
    let spec = host_appliance_spec(
        &keys,
        Arch::X86_64,
        Some(root.clone()),
        VM_MODULES.iter().map(|s| s.to_string()).collect(),
    )?;
    appliance::build_initramfs(&spec, &initrd)?;
    fs::write(&release_file, format!("{release}\n"))?;
    fs::remove_dir_all(&work)?;
    fs::write(&done, format!("{key}\n"))?;
    pb.finish_and_clear();
    crate::progress::note(format!("virtual lab device built: {}", dir.display()));
    Ok(VmImage {
        arch: Arch::X86_64,
        kernel,
        initrd,
        kernel_release: Some(release),
        data_link: DataLink::Virtio,
    })
}

/// Where the compressed payload sits in an x86 bzImage: `(offset, length)`.
/// Boot protocol: setup sectors at 0x1f1, `payload_offset`/`payload_length`
/// at 0x248/0x24c, relative to the protected-mode code after the setup.
pub fn bzimage_payload(img: &[u8]) -> Result<(usize, usize)> {
    if img.len() < 0x250 || &img[0x202..0x206] != b"HdrS" {
        bail!("not a bzImage (no HdrS header)");
    }
    let setup_sects = match img[0x1f1] {
        0 => 4,
        n => n as usize,
    };
    let pm_start = (setup_sects + 1) * 512;
    let off = u32::from_le_bytes(img[0x248..0x24c].try_into().unwrap()) as usize;
    let len = u32::from_le_bytes(img[0x24c..0x250].try_into().unwrap()) as usize;
    let start = pm_start + off;
    if start + len > img.len() {
        bail!(
            "bzImage payload {start}+{len} runs past the file ({} bytes)",
            img.len()
        );
    }
    Ok((start, len))
}

/// Decompresses a bzImage's payload (xz, gzip or zstd) to an ELF vmlinux.
pub fn extract_vmlinux(bzimage: &Path, out: &Path) -> Result<()> {
    let img = fs::read(bzimage).with_context(|| format!("reading {}", bzimage.display()))?;
    let (start, len) = bzimage_payload(&img)?;
    let payload = &img[start..start + len];
    let tool: &[&str] = if payload.starts_with(b"\xfd7zXZ\x00") {
        &["xz", "-dc", "--single-stream"]
    } else if payload.starts_with(b"\x1f\x8b") {
        &["gzip", "-dc"]
    } else if payload.starts_with(b"\x28\xb5\x2f\xfd") {
        &["zstd", "-dcq"]
    } else {
        bail!(
            "{}: unsupported kernel compression (magic {:02x?})",
            bzimage.display(),
            &payload[..4.min(payload.len())]
        );
    };
    let pin = out.with_extension("payload");
    fs::write(&pin, payload)?;
    let f = fs::File::create(out)?;
    let st = Command::new(tool[0])
        .args(&tool[1..])
        .stdin(fs::File::open(&pin)?)
        .stdout(f)
        .status()
        .with_context(|| format!("running {}", tool[0]))?;
    let _ = fs::remove_file(&pin);
    // gzip/xz may complain about the size trailer after the stream; judge by the result.
    let elf = fs::read(out)
        .map(|d| d.starts_with(b"\x7fELF"))
        .unwrap_or(false);
    if !elf {
        bail!("{} did not produce an ELF vmlinux ({st})", tool.join(" "));
    }
    Ok(())
}

/// Hex sha256 of a file.
fn sha256_hex(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads an image directory through `besser_image::manifest::Manifest` (`arch`,
/// `kernel_release`, `artifacts.kernel` / `artifacts.initramfs` and their
/// `sha256`). The kernel and initramfs must match the manifest's sha256s:
/// a lab run never boots an image other than the one its manifest names.
pub fn image_from_dir(dir: &Path) -> Result<VmImage> {
    let m = besser_image::manifest::Manifest::load(dir)?;
    let mpath = dir.join(besser_image::manifest::MANIFEST_FILE);
    let arch = Arch::parse(&m.arch).map_err(|e| anyhow!("{}: arch: {e}", mpath.display()))?;
    let kernel = dir.join(&m.artifacts.kernel);
    let initrd = dir.join(&m.artifacts.initramfs);
    for (name, p) in [
        (&m.artifacts.kernel, &kernel),
        (&m.artifacts.initramfs, &initrd),
    ] {
        if !p.exists() {
            bail!("{}: {} does not exist", mpath.display(), p.display());
        }
        let want = m
            .sha256
            .get(name)
            .ok_or_else(|| anyhow!("{}: no sha256 for {name}", mpath.display()))?;
        let got = sha256_hex(p)?;
        if &got != want {
            bail!(
                "{}: {} has sha256 {got}, the manifest says {want} (rebuild the image or fix the manifest)",
                mpath.display(),
                p.display()
            );
        }
    }
    // An image with the simulated SDIO host has the simulated AP: its
    // data link goes through bes2600 over the simulated air.
    let sim = m.driver.as_ref().is_some_and(|d| d.sdio_sim.is_some());
    Ok(VmImage {
        arch,
        kernel,
        initrd,
        kernel_release: Some(m.kernel_release.clone()),
        data_link: if sim {
            DataLink::SimulatedAir
        } else {
            DataLink::Virtio
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_dir_must_match_its_manifest_sha256s() {
        let d = std::env::temp_dir().join(format!("besser-image-dir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("bzImage"), b"kernel").unwrap();
        fs::write(d.join("initramfs.cpio"), b"").unwrap();
        // A whole manifest.json as `cargo xtask image` writes it.
        let manifest = |kernel_sha: &str| {
            format!(
                "{{\"schema\": 1, \"board\": \"qemu-x86_64\", \"flavour\": \"release\", \"arch\": \"x86_64\", \
                 \"kernel_release\": \"6.12.0-besser\", \"kernel_version\": \"6.12.0\", \
                 \"source\": {{\"tarball\": \"linux.tar.xz\", \"sha256\": \"00\"}}, \"patches\": [], \"fragments\": [], \
                 \"config_sha256\": \"33\", \"toolchain\": {{}}, \"tree_key\": \"44\", \"build_key\": \"55\", \
                 \"artifacts\": {{\"kernel\": \"bzImage\", \"initramfs\": \"initramfs.cpio\", \"config\": \"config\", \
                 \"modules\": \"modules\", \"build_log\": \"build.log\"}}, \
                 \"sha256\": {{\"bzImage\": \"{kernel_sha}\", \
                 \"initramfs.cpio\": \"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\"}}, \
                 \"build\": {{\"finished_utc\": \"2026-11-22T04:00:00Z\", \"build_time_s\": 1.0, \"kind\": \"cold\"}}}}"
            )
        };
        // Some other file's hash: the manifest no longer matches.
        let wrong = "1cfc2f37ff8d8a2dc9d1e5e1a8c80a7d6ac7a0a3c4b3e6a0e4f0c0a0f4b0c0a0";
        let real = sha256_hex(&d.join("bzImage")).unwrap();
        assert_ne!(real, wrong);
        fs::write(d.join("manifest.json"), manifest(&real)).unwrap();
        let img = image_from_dir(&d).unwrap();
        assert!(img.kernel.ends_with("bzImage"));
        fs::write(d.join("manifest.json"), manifest(wrong)).unwrap();
        let e = format!("{:#}", image_from_dir(&d).unwrap_err());
        assert!(e.contains("bzImage has sha256") && e.contains(wrong), "{e}");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bzimage_payload_reads_the_boot_header() {
        let mut img = vec![0u8; 8192];
        img[0x1f1] = 3;
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x248..0x24c].copy_from_slice(&100u32.to_le_bytes());
        img[0x24c..0x250].copy_from_slice(&50u32.to_le_bytes());
        assert_eq!(bzimage_payload(&img).unwrap(), (4 * 512 + 100, 50));
        img[0x24c..0x250].copy_from_slice(&9000u32.to_le_bytes());
        assert!(bzimage_payload(&img)
            .unwrap_err()
            .to_string()
            .contains("runs past"));
        assert!(bzimage_payload(&[0u8; 10]).is_err());
    }
}
