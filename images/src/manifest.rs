//! `manifest.json`: what an image is and what went into it (see
//! CONTRACTS.md: `board`, `flavour`, `arch`, `kernel_release`, and
//! `artifacts.kernel`/`artifacts.initramfs` relative to the image directory).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const MANIFEST_FILE: &str = "manifest.json";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    pub board: String,
    pub flavour: String,
    /// `x86_64` | `aarch64`
    pub arch: String,
    /// What `uname -r` prints on the booted kernel.
    pub kernel_release: String,
    /// `VERSION.PATCHLEVEL.SUBLEVEL` of the source.
    pub kernel_version: String,
    pub source: Source,
    /// Every patch applied, in order.
    pub patches: Vec<PatchEntry>,
    /// Every Kconfig fragment, in merge order.
    pub fragments: Vec<FragmentEntry>,
    /// SHA-256 of the final `.config`.
    pub config_sha256: String,
    /// Tool -> version line (rustc, bindgen, clang, ld.lld, …).
    pub toolchain: BTreeMap<String, String>,
    /// Cache keys the build was made under (see `cache`).
    pub tree_key: String,
    pub build_key: String,
    pub artifacts: Artifacts,
    /// File (relative to the image directory) -> SHA-256, for every file
    /// of the image except the manifest itself.
    pub sha256: BTreeMap<String, String>,
    pub build: BuildInfo,
    /// The Rust BES2600 driver built against this kernel (absent in images
    /// from before the driver existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<DriverModule>,
    /// What assembled the image directory from the build tree (the
    /// appliance's and the assembly's versions): a change re-assembles an
    /// image whose kernel is still up to date. Empty in older manifests.
    #[serde(default)]
    pub assembly: String,
}

/// `bes2600.ko` in the image, and what it was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverModule {
    /// The module, relative to the image directory.
    pub module: String,
    /// `modinfo -F srcversion` (modpost's hash of the sources; the running
    /// module shows it in `/sys/module/bes2600/srcversion`).
    pub srcversion: String,
    /// SHA-256 of the module file.
    pub sha256: String,
    /// SHA-256 over the driver's sources (`driver/kmod`, `driver/core/src`,
    /// and for QEMU boards `driver/sdiosim`, `driver/sim/src`): decides
    /// whether an image is up to date.
    pub sources_sha256: String,
    /// The simulated SDIO host with the chip model (QEMU boards only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdio_sim: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Where the tarball came from, e.g. `/usr/src/linux-source-6.12.tar.xz`.
    pub tarball: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchEntry {
    pub name: String,
    pub subject: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentEntry {
    pub path: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifacts {
    /// The bootable kernel image (`bzImage` / `Image`).
    pub kernel: String,
    /// The lab appliance initramfs with this kernel's modules.
    pub initramfs: String,
    /// The final `.config`.
    pub config: String,
    /// `modules_install` tree (`<dir>/lib/modules/<release>/…`).
    pub modules: String,
    /// Device trees, if the board has any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dtbs: Vec<String>,
    /// The full build log.
    pub build_log: String,
    /// U-Boot boards: the A/B boot script, compiled (`boot.scr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_script: Option<String>,
    /// U-Boot boards: the environment defaults the boot script expects
    /// (`uboot-env.txt`, `name=value` lines as `mkenvimage` reads them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// UTC, RFC 3339.
    pub finished_utc: String,
    /// Wall time of this invocation's build steps, in seconds.
    pub build_time_s: f64,
    /// `cold` (new tree), `incremental` (make in an existing tree) or
    /// `cached` (nothing changed, make not run).
    pub kind: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a besser image manifest: {source}")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Manifest {
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("plain data serialises");
        s.push('\n');
        s
    }

    pub fn load(image_dir: &Path) -> Result<Manifest, ManifestError> {
        let path = image_dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| ManifestError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ManifestError::Parse {
            path: path.display().to_string(),
            source,
        })
    }

    /// Files whose recorded SHA-256 does not match what is on disk (or that
    /// are missing), relative to the image directory.
    pub fn verify(&self, image_dir: &Path) -> Vec<String> {
        self.sha256
            .iter()
            .filter(|(f, want)| {
                crate::sha256_file(&image_dir.join(f)).map_or(true, |got| &got != *want)
            })
            .map(|(f, _)| f.clone())
            .collect()
    }
}

/// SHA-256 of every regular file under `dir` (relative, `/`-separated,
/// sorted), skipping `skip` names at the top level.
pub fn hash_tree(dir: &Path, skip: &[&str]) -> std::io::Result<BTreeMap<String, String>> {
    fn walk(
        root: &Path,
        dir: &Path,
        skip: &[&str],
        out: &mut BTreeMap<String, String>,
    ) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            let p = e.path();
            let rel = p
                .strip_prefix(root)
                .expect("walk stays under root")
                .to_string_lossy()
                .replace('\\', "/");
            if dir == root && skip.contains(&rel.as_str()) {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                walk(root, &p, skip, out)?;
            } else if ft.is_file() {
                out.insert(rel, crate::sha256_file(&p)?);
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out)?;
    Ok(out)
}
