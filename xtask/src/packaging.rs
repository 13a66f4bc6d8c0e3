//! `cargo xtask packaging sync|check`: the flake and the Yocto layer, kept in
//! step with `kernel-patches/` and the board table.
//!
//! `sync` writes what is derived ([`besser_image::packaging::derived_files`]).
//! `check` fails with a list when anything drifted, then checks what can be
//! checked on a machine without nixpkgs or openembedded-core:
//! - Nix (Debian's nix 2.8, real): every `.nix` file parses; `nix/lib.nix`,
//!   evaluated with `--store dummy://`, yields exactly the patch list,
//!   fragments and merged config `cargo xtask image` computes, for every
//!   board × flavour; `flake.lock` pins nixos-25.05.
//! - Yocto: `oelint-adv --release wrynose` on every recipe (0 errors); every
//!   `file://` in the layer resolves; the kas files validate against kas's
//!   own schema; bitbake's own parser (the `bb` library the `bitbake-setup`
//!   wheel ships) reads every recipe with the layer's includes, and the
//!   openembedded-core classes it inherits as *empty stubs*: a syntax and
//!   include check, not a build, and it says so.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use besser_image::packaging::{self as pk, Drift};
use clap::{Parser, Subcommand};
use serde_json::Value as Json;
use xshell::{cmd, Shell};

use crate::test::Step;

#[derive(Parser)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Regenerate what the flake and the layer derive from kernel-patches/
    /// and the board table (nix/boards.json, the .cfg copies, the recipes'
    /// patch and source lists, version strings).
    Sync,
    /// Fail, with a list, when the flake, the layer and kernel-patches/
    /// disagree; then evaluate and lint them (installs nix-bin and a pinned
    /// PyPI venv on first use).
    Check {
        /// Only compare the derived files (no Nix, no PyPI tools).
        #[arg(long)]
        drift_only: bool,
    },
}

/// PyPI tools of the Yocto checks, pinned (one venv under the cache).
pub const PYPI_PINS: &[&str] = &["oelint-adv==9.11.2", "kas==5.5", "bitbake-setup==2.19.0"];

/// The besser CLI's version: what the flake and the layer carry.
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

pub fn run(args: Args) -> Result<()> {
    let sh = Shell::new()?;
    let root = crate::project_root();
    sh.change_dir(&root);
    match args.cmd {
        Cmd::Sync => sync(&root),
        Cmd::Check { drift_only } => {
            check_drift(&root)?;
            if !drift_only {
                check_nix(&sh, &root)?;
                check_yocto(&sh, &root)?;
            }
            Ok(())
        }
    }
}

fn sync(root: &Path) -> Result<()> {
    let derived = pk::derived_files(root, version())?;
    let mut drifted = pk::drift(root, &derived);
    drifted.extend(pk::misnamed_recipes(root, version()));
    for d in &derived {
        let path = root.join(&d.path);
        if std::fs::read(&path).ok().as_deref() == Some(&d.contents[..]) {
            continue;
        }
        std::fs::create_dir_all(path.parent().expect("a file has a parent"))?;
        std::fs::write(&path, &d.contents).with_context(|| d.path.clone())?;
        println!("wrote {}", d.path);
    }
    for d in drifted {
        match d {
            Drift::Stale { path } => {
                std::fs::remove_file(root.join(&path)).with_context(|| path.clone())?;
                println!("removed {path}");
            }
            Drift::Misnamed { path, want } => {
                std::fs::rename(root.join(&path), root.join(&want))
                    .with_context(|| path.clone())?;
                println!("renamed {path} to {want}");
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_drift(root: &Path) -> Result<()> {
    let derived = pk::derived_files(root, version())?;
    let mut drifted = pk::drift(root, &derived);
    drifted.extend(pk::misnamed_recipes(root, version()));
    if drifted.is_empty() {
        println!(
            "packaging: {} derived files match kernel-patches/ and the board table",
            derived.len()
        );
        return Ok(());
    }
    let list: Vec<String> = drifted.iter().map(|d| format!("  {d}")).collect();
    bail!(
        "the flake or the layer disagrees with kernel-patches/ and the board table \
         (run `cargo xtask packaging sync`):\n{}",
        list.join("\n")
    )
}

/// Every `.nix` file of the repository (outside `target/`).
fn nix_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![root.join("flake.nix")];
    for e in std::fs::read_dir(root.join("nix")).context("nix/")? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "nix") {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn check_nix(sh: &Shell, root: &Path) -> Result<()> {
    crate::deps::ensure_debs(sh, &["nix-bin"])?;
    for f in nix_files(root)? {
        cmd!(sh, "nix-instantiate --parse {f}")
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| format!("{}: does not parse", f.display()))?;
    }
    let got = nix_summary(sh, root)?;
    let want = pk::expected_summary(root)?;
    let diffs = json_diff("summary", &got, &want);
    if !diffs.is_empty() {
        bail!(
            "nix/lib.nix (evaluated by nix-instantiate) disagrees with cargo xtask image:\n  {}",
            diffs.join("\n  ")
        );
    }
    let images = want["images"].as_array().map_or(0, |a| a.len());
    println!(
        "nix: {} files parse; nix/lib.nix yields the series and the config of all {images} images",
        nix_files(root)?.len()
    );
    check_flake_lock(root)
}

/// `(import nix/lib.nix {}).summary`, evaluated by real Nix with a store
/// that cannot hold anything (so no path sneaks into the values).
pub fn nix_summary(sh: &Shell, root: &Path) -> Result<Json> {
    let lib = root.join("nix/lib.nix");
    let expr = format!("(import {} {{}}).summary", lib.display());
    let out = cmd!(
        sh,
        "nix-instantiate --eval --strict --json --store dummy:// -E {expr}"
    )
    .quiet()
    .read()
    .context("nix-instantiate --eval nix/lib.nix")?;
    serde_json::from_str(&out).context("nix-instantiate printed something that is not JSON")
}

/// Where two JSON values differ, as `path: got X, want Y` lines (at most 20).
pub fn json_diff(path: &str, got: &Json, want: &Json) -> Vec<String> {
    let mut out = Vec::new();
    diff_into(path, got, want, &mut out);
    if out.len() > 20 {
        let n = out.len() - 20;
        out.truncate(20);
        out.push(format!("… and {n} more"));
    }
    out
}

fn diff_into(path: &str, got: &Json, want: &Json, out: &mut Vec<String>) {
    match (got, want) {
        (Json::Object(g), Json::Object(w)) => {
            let keys: std::collections::BTreeSet<&String> = g.keys().chain(w.keys()).collect();
            for k in keys {
                let p = format!("{path}.{k}");
                match (g.get(k), w.get(k)) {
                    (Some(a), Some(b)) => diff_into(&p, a, b, out),
                    (Some(a), None) => out.push(format!("{p}: Nix has {a}, xtask has nothing")),
                    (None, Some(b)) => out.push(format!("{p}: Nix has nothing, xtask has {b}")),
                    (None, None) => unreachable!(),
                }
            }
        }
        (Json::Array(g), Json::Array(w)) if g.len() == w.len() => {
            for (i, (a, b)) in g.iter().zip(w).enumerate() {
                // Name list items by their `name` where they have one.
                let label = b
                    .get("name")
                    .and_then(|n| n.as_str())
                    .map_or_else(|| i.to_string(), |n| n.to_string());
                diff_into(&format!("{path}[{label}]"), a, b, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: Nix has {a}, xtask has {b}")),
    }
}

/// The flake's nixpkgs is pinned to nixos-25.05: the last release whose
/// `lib/minfeatures.nix` accepts Debian's nix 2.8, with 6.12 as its kernel.
fn check_flake_lock(root: &Path) -> Result<()> {
    let text = std::fs::read_to_string(root.join("flake.lock")).context("flake.lock")?;
    let lock: Json = serde_json::from_str(&text).context("flake.lock: not JSON")?;
    let node = &lock["nodes"]["nixpkgs"];
    let reference = node["original"]["ref"].as_str().unwrap_or("");
    if reference != "nixos-25.05" {
        bail!("flake.lock: nixpkgs follows `{reference}`, not nixos-25.05");
    }
    for field in ["rev", "narHash", "lastModified"] {
        if node["locked"][field].is_null() {
            bail!("flake.lock: nixpkgs is not locked (no locked.{field})");
        }
    }
    println!(
        "nix: flake.lock pins nixpkgs nixos-25.05 at {}",
        node["locked"]["rev"].as_str().unwrap_or("?")
    );
    Ok(())
}

/// Every recipe, append, include and conf file of the layer.
fn layer_files(root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for e in std::fs::read_dir(d).with_context(|| d.display().to_string())? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p
                .extension()
                .is_some_and(|x| ["bb", "bbappend", "inc", "conf"].iter().any(|y| x == *y))
            {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&root.join("meta-besser"), &mut out)?;
    out.sort();
    Ok(out)
}

fn check_yocto(sh: &Shell, root: &Path) -> Result<()> {
    let files = layer_files(root)?;
    let unresolved = unresolved_file_uris(root, &files)?;
    if !unresolved.is_empty() {
        bail!(
            "meta-besser: file:// URIs that resolve nowhere:\n  {}",
            unresolved.join("\n  ")
        );
    }
    let bin = crate::deps::ensure_venv(sh, "packaging", PYPI_PINS)?;
    oelint(sh, root, &bin, &files)?;
    kas_schema(sh, root, &bin)?;
    bb_parse(sh, root, &bin)?;
    Ok(())
}

/// `file://` URIs of the layer that resolve in none of the directories
/// bitbake would search: the recipe's `<name>/`, `files/` and own directory,
/// and the `FILESEXTRAPATHS` the file adds (`${THISDIR}` expanded).
/// `${BESSER_FLAVOUR}` is tried with every flavour.
pub fn unresolved_file_uris(root: &Path, files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)?;
        let dir = f.parent().expect("a file has a parent");
        let mut search: Vec<PathBuf> = Vec::new();
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let pn = stem.split('_').next().unwrap_or(&stem).to_string();
        search.push(dir.join(&pn));
        search.push(dir.join("files"));
        search.push(dir.to_path_buf());
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("FILESEXTRAPATHS:prepend := \"") {
                for p in rest
                    .trim_end_matches('"')
                    .split(':')
                    .filter(|p| !p.is_empty())
                {
                    let p = p.replace("${THISDIR}", &dir.display().to_string());
                    search.push(PathBuf::from(p));
                }
            }
        }
        let rel = f.strip_prefix(root).unwrap_or(f).display().to_string();
        for (n, line) in text.lines().enumerate() {
            for tok in line.split(|c: char| c.is_whitespace() || c == '"') {
                let Some(uri) = tok.strip_prefix("file://") else {
                    continue;
                };
                let path = uri.split(';').next().unwrap_or(uri);
                if path.starts_with("${COMMON_LICENSE_DIR}") {
                    continue;
                }
                let candidates: Vec<String> = if path.contains("${BESSER_FLAVOUR}") {
                    besser_image::Flavour::ALL
                        .iter()
                        .map(|fl| path.replace("${BESSER_FLAVOUR}", fl.name()))
                        .collect()
                } else {
                    vec![path.to_string()]
                };
                // LIC_FILES_CHKSUM names files of the fetched source tree.
                if line.contains("LIC_FILES_CHKSUM") {
                    continue;
                }
                for c in candidates {
                    if c.contains("${") {
                        out.push(format!("{rel}:{}: file://{c}: cannot expand", n + 1));
                    } else if !search.iter().any(|d| d.join(&c).exists()) {
                        out.push(format!("{rel}:{}: file://{c}", n + 1));
                    }
                }
            }
        }
    }
    Ok(out)
}

fn oelint(sh: &Shell, root: &Path, bin: &Path, files: &[PathBuf]) -> Result<()> {
    let recipes: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|x| x == "bb" || x == "bbappend"))
        .collect();
    let oelint = bin.join("oelint-adv");
    let n_recipes = recipes.len();
    let out = cmd!(
        sh,
        "{oelint} --release wrynose --quiet --nobackup {recipes...}"
    )
    .quiet()
    .ignore_status()
    .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = text.replace(&format!("{}/", root.display()), "");
    let errors: Vec<&str> = shown.lines().filter(|l| l.contains(":error:")).collect();
    let warnings = shown.lines().filter(|l| l.contains(":warning:")).count();
    if !errors.is_empty() {
        bail!(
            "oelint-adv --release wrynose: {} error(s):\n  {}",
            errors.len(),
            errors.join("\n  ")
        );
    }
    for l in shown.lines().filter(|l| l.contains(":warning:")) {
        println!("  {l}");
    }
    println!(
        "yocto: oelint-adv --release wrynose: {} recipes, 0 errors, {warnings} warnings",
        n_recipes
    );
    Ok(())
}

/// The kas files, validated against the schema kas itself ships (what
/// `kas build` checks first; the repos are not fetched).
fn kas_schema(sh: &Shell, root: &Path, bin: &Path) -> Result<()> {
    let py = bin.join("python3");
    let script = root.join("xtask/scripts/kas_schema.py");
    let kas_dir = root.join("meta-besser/kas");
    cmd!(sh, "{py} {script} {kas_dir}")
        .run()
        .context("kas files against kas's schema")?;
    Ok(())
}

/// bitbake's own parser over every recipe (see the module doc for what
/// that covers and what it does not).
fn bb_parse(sh: &Shell, root: &Path, bin: &Path) -> Result<()> {
    let py = bin.join("python3");
    let script = root.join("xtask/scripts/bb_parse.py");
    let layer = root.join("meta-besser");
    let expected = pk::expected_yocto(root)?.to_string();
    cmd!(sh, "{py} {script} {layer}")
        .stdin(expected)
        .run()
        .context("bitbake's parser on meta-besser")?;
    Ok(())
}

pub fn test_steps() -> Vec<Step> {
    vec![Step::new(
        "packaging: flake and layer in step with kernel-patches (Nix eval, oelint, kas schema, bb parse)",
        |_sh| {
            run(Args {
                cmd: Cmd::Check { drift_only: false },
            })
        },
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_diff_names_the_image_and_the_option() {
        let want = json!({"images": [{"name": "qemu-x86_64-release", "config": {"RUST": "y"}}]});
        let got =
            json!({"images": [{"name": "qemu-x86_64-release", "config": {"RUST": "n", "X": "y"}}]});
        let d = json_diff("summary", &got, &want);
        assert_eq!(
            d,
            vec![
                "summary.images[qemu-x86_64-release].config.RUST: Nix has \"n\", xtask has \"y\"",
                "summary.images[qemu-x86_64-release].config.X: Nix has \"y\", xtask has nothing",
            ]
        );
        assert!(json_diff("s", &want, &want).is_empty());
    }

    fn agent(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let script = crate::project_root().join("lab/agent/besser-lab-agent");
        let mut c = std::process::Command::new("sh");
        c.arg(script).args(args);
        c.env("BESSER_AGENT_DEFAULTS", "/dev/null")
            .env("BESSER_AGENT_DRY_RUN", "1");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    #[test]
    fn the_lab_agent_brings_up_what_the_lab_needs_in_order() {
        let out = agent(
            &["start"],
            &[("BESSER_WIRED_IF", "enu1"), ("BESSER_WIRED_ADDR", "none")],
        );
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("mount ")).collect();
        assert_eq!(
            lines,
            [
                "mkdir -p /run/besser",
                "ip link set enu1 up",
                "modprobe bes2600",
                "touch /run/besser/agent.ready"
            ]
        );
        let dhcp = agent(&["start"], &[]);
        assert!(String::from_utf8_lossy(&dhcp.stdout).contains("udhcpc -i eth0"));
        let fixed = agent(&["start"], &[("BESSER_WIRED_ADDR", "192.0.2.7/24")]);
        assert!(String::from_utf8_lossy(&fixed.stdout)
            .contains("ip addr replace 192.0.2.7/24 dev eth0"));
    }

    #[test]
    fn the_lab_agent_refuses_an_interface_name_a_shell_would_split() {
        let out = agent(&["start"], &[("BESSER_WIRED_IF", "eth0;reboot")]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not an interface name"));
        assert!(out.stdout.is_empty(), "nothing ran");
        assert_eq!(agent(&["bogus"], &[]).status.code(), Some(2));
    }

    #[test]
    fn a_file_uri_that_resolves_nowhere_is_named_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("layer/recipes-x/foo/files")).unwrap();
        std::fs::write(r.join("layer/recipes-x/foo/files/a.patch"), "").unwrap();
        std::fs::create_dir_all(r.join("extra")).unwrap();
        std::fs::write(r.join("extra/flavour-release.cfg"), "").unwrap();
        let recipe = r.join("layer/recipes-x/foo/foo_1.0.bb");
        std::fs::write(
            &recipe,
            "FILESEXTRAPATHS:prepend := \"${THISDIR}/../../../extra:\"\n\
             SRC_URI = \"file://a.patch file://b.patch;subdir=x\"\n\
             SRC_URI += \"file://flavour-${BESSER_FLAVOUR}.cfg\"\n",
        )
        .unwrap();
        let bad = unresolved_file_uris(r, &[recipe]).unwrap();
        assert_eq!(
            bad,
            vec![
                "layer/recipes-x/foo/foo_1.0.bb:2: file://b.patch",
                "layer/recipes-x/foo/foo_1.0.bb:3: file://flavour-prove-locking.cfg",
            ]
        );
    }
}
