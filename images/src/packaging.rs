//! Packaging: the Nix flake (`flake.nix`, `nix/`) and the Yocto layer
//! (`meta-besser/`) are fed by the same patch series, Kconfig fragments and
//! board table as `cargo xtask image`.
//!
//! Two things live here, both pure:
//! - [`derived_files`]: every file in `nix/` and `meta-besser/` that is
//!   *derived* (the board table as JSON, the fragments as byte-identical
//!   `.cfg` copies, the patch and fragment lists of the kernel recipe, the
//!   driver's source list, the version), so `packaging sync` can write them
//!   and `packaging check` can list what drifted ([`drift`]);
//! - [`expected_summary`]: the patch list and merged config of every
//!   board × flavour, as `cargo xtask image` computes them, for comparison
//!   with what the flake's pure Nix logic (`nix/lib.nix`) yields.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value as Json};

use crate::board::{fragment_order, image_name, Arch, Board, Flavour};
use crate::kconfig::{self, Value};
use crate::series;

/// The driver's sources, relative to the repository, that bes2600.ko is
/// built from (the module mounts the core's files by `#[path]`, so the two
/// directories travel together, in this layout).
pub const DRIVER_SOURCES: &[&str] = &["driver/kmod", "driver/core/src"];

/// The kernel recipe's directory and the directory of its `.cfg` copies.
pub const YOCTO_KERNEL_DIR: &str = "meta-besser/recipes-kernel/linux";
pub const YOCTO_CFG_DIR: &str = "meta-besser/recipes-kernel/linux/linux-besser";
pub const YOCTO_MODULE_DIR: &str = "meta-besser/recipes-kernel/bes2600-rs";

/// The layer's own recipes, without `_<version>.bb`: their file names
/// carry besser's version (`packaging sync` renames them).
pub const VERSIONED_RECIPES: &[&str] = &[
    "meta-besser/recipes-kernel/bes2600-rs/bes2600-rs",
    "meta-besser/recipes-besser/besser-lab-agent/besser-lab-agent",
    "meta-besser/recipes-besser/bes2600-firmware/bes2600-firmware",
];

/// Nix's name of a board's platform.
pub fn nix_system(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "x86_64-linux",
        Arch::Aarch64 => "aarch64-linux",
    }
}

/// The Yocto `MACHINE` a board is built as: openembedded-core's QEMU
/// machines, and meta-pine64-luneos's `pinetab2`.
pub fn yocto_machine(board: Board) -> &'static str {
    match board {
        Board::QemuX86_64 => "qemux86-64",
        Board::QemuArm64 => "qemuarm64",
        Board::Pinetab2 => "pinetab2",
    }
}

/// A fragment's `.cfg` name in the layer: `board/arm64.config` →
/// `board-arm64.cfg` (kernel-yocto takes only `*.cfg` as fragments).
pub fn cfg_name(fragment: &str) -> String {
    let stem = fragment.strip_suffix(".config").unwrap_or(fragment);
    format!("{}.cfg", stem.replace('/', "-"))
}

/// One derived file: its path relative to the repository and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Derived {
    pub path: String,
    pub contents: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum PackagingError {
    #[error(transparent)]
    Series(#[from] series::SeriesError),
    #[error(transparent)]
    Fragment(#[from] kconfig::FragmentError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn read(root: &Path, rel: &str) -> Result<Vec<u8>, PackagingError> {
    std::fs::read(root.join(rel)).map_err(|source| PackagingError::Io {
        path: rel.to_string(),
        source,
    })
}

/// Every fragment any image uses, in first-use order, relative to
/// `kernel-patches/config/`.
pub fn all_fragments() -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for b in Board::ALL {
        for f in Flavour::ALL {
            for frag in fragment_order(b, f) {
                if seen.insert(frag.clone()) {
                    out.push(frag);
                }
            }
        }
    }
    out
}

/// The driver's source files, relative to the repository, sorted.
pub fn driver_files(root: &Path) -> Result<Vec<String>, PackagingError> {
    fn walk(root: &Path, rel: &str, out: &mut Vec<String>) -> Result<(), PackagingError> {
        let dir = root.join(rel);
        let entries = std::fs::read_dir(&dir).map_err(|source| PackagingError::Io {
            path: rel.to_string(),
            source,
        })?;
        for e in entries {
            let e = e.map_err(|source| PackagingError::Io {
                path: rel.to_string(),
                source,
            })?;
            let name = e.file_name().to_string_lossy().into_owned();
            let child = format!("{rel}/{name}");
            if e.path().is_dir() {
                walk(root, &child, out)?;
            } else {
                out.push(child);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for d in DRIVER_SOURCES {
        walk(root, d, &mut out)?;
    }
    out.sort();
    Ok(out)
}

/// `nix/boards.json`: the board table, as the flake reads it.
pub fn boards_json(version: &str) -> String {
    let mut boards = serde_json::Map::new();
    for b in Board::ALL {
        let s = b.spec();
        boards.insert(
            b.name().to_string(),
            json!({
                "system": nix_system(s.arch),
                "kernelArch": s.arch.kernel_arch(),
                "fragments": s.fragments,
                "makeTargets": s.make_targets,
                "kernelImage": s.kernel_image,
                "dtbs": s.dtbs,
                "qemuBootable": s.qemu_bootable,
                "yoctoMachine": yocto_machine(b),
                "uboot": s.uboot.map(|u| json!({"bootDev": u.boot_dev, "fdt": u.fdt})),
            }),
        );
    }
    let mut flavours = serde_json::Map::new();
    for f in Flavour::ALL {
        flavours.insert(f.name().to_string(), json!({ "fragment": f.fragment() }));
    }
    let v = json!({
        "_generated": "by `cargo xtask packaging sync` from images/src/board.rs: do not edit",
        "version": version,
        "boards": boards,
        "flavours": flavours,
        "driver": { "module": "bes2600", "sources": DRIVER_SOURCES },
    });
    let mut s = serde_json::to_string_pretty(&v).expect("JSON values serialize");
    s.push('\n');
    s
}

const YOCTO_HEADER: &str = "\
# Generated by `cargo xtask packaging sync` from kernel-patches/ and the board
# table (images/src/board.rs): do not edit. `cargo xtask packaging check`
# fails when this file and its sources disagree.
";

/// `linux-besser-series.inc`: the series as `SRC_URI` patches (in order), the
/// fragments as `.cfg`s in merge order (common, the machine's, the flavour's),
/// and the machines the kernel is for.
pub fn kernel_series_inc(patches: &[String], version: &str) -> String {
    let mut s = String::from(YOCTO_HEADER);
    s.push_str(&format!("\nBESSER_VERSION = \"{version}\"\n"));
    s.push_str(
        "\n# The patches come from the repository's kernel-patches/, the .cfg copies\n\
         # from linux-besser/ next to this file.\n\
         FILESEXTRAPATHS:prepend := \"${THISDIR}/../../../kernel-patches:${THISDIR}/linux-besser:\"\n",
    );
    s.push_str("\n# kernel-patches/series, in order.\nSRC_URI += \"\\\n");
    for p in patches {
        s.push_str(&format!("    file://{p} \\\n"));
    }
    s.push_str("\"\n");
    s.push_str(
        "\n# Each machine's board fragments (images/src/board.rs), between common.cfg\n\
         # and the flavour's, as `cargo xtask image` merges them.\n\
         BESSER_BOARD_CFGS = \"\"\n",
    );
    let mut machines = Vec::new();
    for b in Board::ALL {
        let m = yocto_machine(b);
        machines.push(m);
        let cfgs: Vec<String> = b
            .spec()
            .fragments
            .iter()
            .map(|f| format!("file://{}", cfg_name(f)))
            .collect();
        s.push_str(&format!("BESSER_BOARD_CFGS:{m} = \"{}\"\n", cfgs.join(" ")));
    }
    let flavours: Vec<&str> = Flavour::ALL.iter().map(|f| f.name()).collect();
    s.push_str(&format!(
        "\n# One of: {}. Set it in local.conf or a kas file.\n\
         BESSER_FLAVOUR ??= \"release\"\n\
         SRC_URI += \"file://common.cfg ${{BESSER_BOARD_CFGS}} file://flavour-${{BESSER_FLAVOUR}}.cfg\"\n",
        flavours.join(", ")
    ));
    s.push_str(&format!(
        "\nCOMPATIBLE_MACHINE = \"^({})$\"\n",
        machines.join("|")
    ));
    s
}

/// `bes2600-rs-sources.inc`: the driver's files, fetched from the repository
/// in the layout the module's `#[path]` mounts expect.
pub fn module_sources_inc(files: &[String], version: &str) -> String {
    let mut s = String::from(YOCTO_HEADER);
    s.push_str(&format!("\nBESSER_VERSION = \"{version}\"\n"));
    s.push_str(
        "\n# The repository's root: the driver is built from the sources next to this layer.\n\
         FILESEXTRAPATHS:prepend := \"${THISDIR}/../../..:\"\n\
         SRC_URI = \"\\\n",
    );
    for f in files {
        s.push_str(&format!("    file://{f} \\\n"));
    }
    s.push_str("\"\nS = \"${UNPACKDIR}/driver/kmod\"\n");
    s
}

/// The series' patches, in order, relative to `kernel-patches/`.
fn patch_names(root: &Path) -> Result<Vec<String>, PackagingError> {
    Ok(series::load_series(&root.join("kernel-patches"))?
        .into_iter()
        .map(|p| p.name)
        .collect())
}

/// Every derived file, as `packaging sync` writes it.
pub fn derived_files(root: &Path, version: &str) -> Result<Vec<Derived>, PackagingError> {
    let patches = patch_names(root)?;
    let mut out = vec![Derived {
        path: "nix/boards.json".into(),
        contents: boards_json(version).into_bytes(),
    }];
    for frag in all_fragments() {
        out.push(Derived {
            path: format!("{YOCTO_CFG_DIR}/{}", cfg_name(&frag)),
            contents: read(root, &format!("kernel-patches/config/{frag}"))?,
        });
    }
    out.push(Derived {
        path: format!("{YOCTO_KERNEL_DIR}/linux-besser-series.inc"),
        contents: kernel_series_inc(&patches, version).into_bytes(),
    });
    out.push(Derived {
        path: format!("{YOCTO_MODULE_DIR}/bes2600-rs-sources.inc"),
        contents: module_sources_inc(&driver_files(root)?, version).into_bytes(),
    });
    Ok(out)
}

/// How the repository differs from what `packaging sync` would write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    Missing {
        path: String,
    },
    /// `line`: the first line (from 1) that differs.
    Differs {
        path: String,
        line: usize,
    },
    /// A `.cfg` in the layer that no fragment of `kernel-patches/` yields.
    Stale {
        path: String,
    },
    /// A recipe whose file name does not carry besser's version.
    Misnamed {
        path: String,
        want: String,
    },
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drift::Missing { path } => write!(f, "{path}: missing"),
            Drift::Differs { path, line } => {
                write!(f, "{path}:{line}: differs from what its sources yield")
            }
            Drift::Stale { path } => {
                write!(f, "{path}: no fragment in kernel-patches/config yields it")
            }
            Drift::Misnamed { path, want } => {
                write!(f, "{path}: should be {want} (besser's version)")
            }
        }
    }
}

fn first_differing_line(a: &[u8], b: &[u8]) -> usize {
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    let (mut al, mut bl) = (a.lines(), b.lines());
    let mut n = 1;
    loop {
        match (al.next(), bl.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            (None, None) => return n, // differ only in a trailing newline
            _ => return n,
        }
    }
}

/// Recipes of [`VERSIONED_RECIPES`] not named `<pn>_<version>.bb`
/// (`Missing` when there is none at all).
pub fn misnamed_recipes(root: &Path, version: &str) -> Vec<Drift> {
    let mut out = Vec::new();
    for base in VERSIONED_RECIPES {
        let want = format!("{base}_{version}.bb");
        let (dir, pn) = base.rsplit_once('/').expect("recipes live in a directory");
        let mut have: Vec<String> = std::fs::read_dir(root.join(dir))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("{pn}_")) && n.ends_with(".bb"))
                    .map(|n| format!("{dir}/{n}"))
                    .collect()
            })
            .unwrap_or_default();
        have.sort();
        if have.contains(&want) {
            continue;
        }
        match have.into_iter().next() {
            Some(path) => out.push(Drift::Misnamed { path, want }),
            None => out.push(Drift::Missing { path: want }),
        }
    }
    out
}

/// Compares the repository with `derived` (from [`derived_files`]).
pub fn drift(root: &Path, derived: &[Derived]) -> Vec<Drift> {
    let mut out = Vec::new();
    for d in derived {
        match std::fs::read(root.join(&d.path)) {
            Err(_) => out.push(Drift::Missing {
                path: d.path.clone(),
            }),
            Ok(have) if have != d.contents => out.push(Drift::Differs {
                path: d.path.clone(),
                line: first_differing_line(&have, &d.contents),
            }),
            Ok(_) => {}
        }
    }
    let wanted: BTreeSet<&str> = derived.iter().map(|d| d.path.as_str()).collect();
    if let Ok(rd) = std::fs::read_dir(root.join(YOCTO_CFG_DIR)) {
        let mut stale: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| format!("{YOCTO_CFG_DIR}/{}", e.file_name().to_string_lossy()))
            .filter(|p| p.ends_with(".cfg") && !wanted.contains(p.as_str()))
            .collect();
        stale.sort();
        out.extend(stale.into_iter().map(|path| Drift::Stale { path }));
    }
    out
}

/// A merged value as `nix/lib.nix` spells it: `y`, `m`, `n`, or the raw text.
pub fn nix_value(v: &Value) -> String {
    match v {
        Value::Yes => "y".into(),
        Value::Module => "m".into(),
        Value::No => "n".into(),
        Value::Raw(s) => s.clone(),
    }
}

/// What `(import nix/lib.nix {}).summary` must evaluate to: the series and,
/// per image, its platform, fragments and merged config, computed by the
/// same code `cargo xtask image` uses.
pub fn expected_summary(root: &Path) -> Result<Json, PackagingError> {
    let patches = patch_names(root)?;
    let mut images = Vec::new();
    // Nix lists attribute names sorted; so does this.
    let mut boards: Vec<Board> = Board::ALL.to_vec();
    boards.sort_by_key(|b| b.name());
    let mut flavours: Vec<Flavour> = Flavour::ALL.to_vec();
    flavours.sort_by_key(|f| f.name());
    for b in boards {
        for &f in &flavours {
            let order = fragment_order(b, f);
            let mut frags = Vec::new();
            for rel in &order {
                let path = format!("kernel-patches/config/{rel}");
                let text = String::from_utf8_lossy(&read(root, &path)?).into_owned();
                frags.push(kconfig::parse_fragment(&path, &text)?);
            }
            let merged = kconfig::merge(&frags);
            let config: serde_json::Map<String, Json> = merged
                .settings
                .iter()
                .map(|s| (s.name.clone(), Json::String(nix_value(&s.value))))
                .collect();
            images.push(json!({
                "name": image_name(b, f),
                "board": b.name(),
                "flavour": f.name(),
                "system": nix_system(b.spec().arch),
                "kernelArch": b.spec().arch.kernel_arch(),
                "fragments": order,
                "config": config,
            }));
        }
    }
    Ok(json!({ "patches": patches, "images": images }))
}

/// What linux-besser's `SRC_URI` must fetch, per Yocto machine × flavour:
/// the series in order, then each fragment's `.cfg` in merge order.
pub fn expected_yocto(root: &Path) -> Result<Json, PackagingError> {
    let patches = patch_names(root)?;
    let mut images = Vec::new();
    for b in Board::ALL {
        for f in Flavour::ALL {
            let mut files = patches.clone();
            files.extend(fragment_order(b, f).iter().map(|x| cfg_name(x)));
            images.push(json!({
                "name": image_name(b, f),
                "machine": yocto_machine(b),
                "flavour": f.name(),
                "files": files,
            }));
        }
    }
    Ok(json!({ "images": images }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfg_names_flatten_the_fragment_path() {
        assert_eq!(cfg_name("common.config"), "common.cfg");
        assert_eq!(cfg_name("board/arm64.config"), "board-arm64.cfg");
        assert_eq!(
            cfg_name("flavour/prove-locking.config"),
            "flavour-prove-locking.cfg"
        );
    }

    #[test]
    fn every_fragment_is_listed_once_and_common_first() {
        let all = all_fragments();
        assert_eq!(all[0], "common.config");
        let set: BTreeSet<&String> = all.iter().collect();
        assert_eq!(set.len(), all.len());
        for b in Board::ALL {
            for f in Flavour::ALL {
                for frag in fragment_order(b, f) {
                    assert!(all.contains(&frag), "{frag}");
                }
            }
        }
    }

    #[test]
    fn the_kernel_inc_keeps_the_series_order_and_names_every_machine() {
        let inc = kernel_series_inc(&["0002-b.patch".into(), "0001-a.patch".into()], "9.9");
        let b = inc.find("file://0002-b.patch").unwrap();
        let a = inc.find("file://0001-a.patch").unwrap();
        assert!(b < a, "series order, not name order");
        for board in Board::ALL {
            assert!(inc.contains(&format!("BESSER_BOARD_CFGS:{} =", yocto_machine(board))));
        }
        assert!(inc.contains("BESSER_VERSION = \"9.9\""));
        assert!(inc.contains(
            "file://common.cfg ${BESSER_BOARD_CFGS} file://flavour-${BESSER_FLAVOUR}.cfg"
        ));
    }

    #[test]
    fn a_changed_or_missing_or_stale_file_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(YOCTO_CFG_DIR)).unwrap();
        std::fs::write(root.join(YOCTO_CFG_DIR).join("common.cfg"), "a\nb\nX\n").unwrap();
        std::fs::write(root.join(YOCTO_CFG_DIR).join("old.cfg"), "").unwrap();
        let derived = vec![
            Derived {
                path: format!("{YOCTO_CFG_DIR}/common.cfg"),
                contents: b"a\nb\nc\n".to_vec(),
            },
            Derived {
                path: "nix/boards.json".into(),
                contents: b"{}".to_vec(),
            },
        ];
        let d = drift(root, &derived);
        assert_eq!(
            d,
            vec![
                Drift::Differs {
                    path: format!("{YOCTO_CFG_DIR}/common.cfg"),
                    line: 3
                },
                Drift::Missing {
                    path: "nix/boards.json".into()
                },
                Drift::Stale {
                    path: format!("{YOCTO_CFG_DIR}/old.cfg")
                },
            ]
        );
        std::fs::write(root.join(YOCTO_CFG_DIR).join("common.cfg"), "a\nb\nc\n").unwrap();
        assert_eq!(
            drift(root, &derived[..1]).len(),
            1,
            "only the stale .cfg is left"
        );
    }
}
