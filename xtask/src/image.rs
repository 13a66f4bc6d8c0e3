//! `cargo xtask image`: Rust-enabled kernel images per board and flavour.
//!
//! Thin driver over the `besser-image` crate: it installs the toolchain,
//! extracts and patches the kernel source in the cache, configures
//! (`allnoconfig` + fragments, then the dropped-option check), runs make at
//! `nice 19`, and assembles `target/images/<board>-<flavour>/` with the lab
//! appliance initramfs and `manifest.json`.
//!
//! Cache layout under `~/.cache/besser/kernel/`:
//! - `tarball-sha256.json`: the source tarball's hash, keyed by path/size/mtime;
//! - `src/<sha16>/<top dir>/`: the extracted source, with the series applied
//!   (`src/<sha16>/series.json` records what is applied, with the patch texts,
//!   so a changed patch is reverted and re-applied in place — make then
//!   rebuilds only what it touched);
//! - `build/<board>-<flavour>/`: the `O=` build tree, `besser-stamp.json`
//!   records its tree key and build key (see `besser_image::cache`);
//! - `build.lock`: one kernel build at a time on this machine.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use besser_image::cache::{plan_series, CacheInputs};
use besser_image::kconfig::{check_survived, merge, parse_fragment};
use besser_image::manifest::{self, Artifacts, BuildInfo, FragmentEntry, Manifest, PatchEntry};
use besser_image::series::{load_series, Patch};
use besser_image::{board, Arch, Board, Flavour};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use xshell::{cmd, Shell};

use crate::deps;
use crate::test::Step;

/// Debian's kernel source package: the default source, available offline.
const DEBIAN_SOURCE_DEB: &str = "linux-source-6.12";
const DEBIAN_SOURCE_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";
/// Pinned bindgen (6.12 needs >= 0.65.1; 0.69.5 is proven on these machines).
const BINDGEN_CRATE: &str = "bindgen-cli";
const BINDGEN_VERSION: &str = "0.69.5";
/// 6.12's minimum rustc.
const RUSTC_MIN: (u32, u32) = (1, 78);
/// Host packages a kernel build needs (clang/lld/llvm for LLVM=1, libclang
/// for bindgen, kmod for depmod in modules_install).
const BUILD_DEBS: &[&str] = &[
    "make",
    "clang",
    "lld",
    "llvm",
    "libclang-dev",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "kmod",
    "patch",
    "xz-utils",
    "python3",
];
/// Lines of the build log shown when a step fails.
const LOG_TAIL_LINES: usize = 40;
/// Niceness of make: kernel builds share the machine with everyone else.
const MAKE_NICENESS: &str = "19";
/// Extra variables of every kernel `make`: `CLIPPY=1` compiles the kernel's
/// Rust crates with clippy-driver and the kernel's lint set, so the
/// abstractions of the series are linted by the build that ships them.
const KERNEL_MAKE_FLAGS: &[&str] = &["CLIPPY=1"];

/// Which images a command is about: `--board/--flavour`, or `--all`.
#[derive(clap::Args)]
struct Selection {
    /// qemu-x86_64 | qemu-arm64 | pinetab2
    #[arg(long, default_value = "qemu-x86_64")]
    board: String,
    /// release | prove-locking
    #[arg(long, default_value = "release")]
    flavour: String,
    /// Every board x flavour (a kernel build of about 6-10 min each).
    #[arg(long)]
    all: bool,
}

impl Selection {
    /// The board x flavour pairs named.
    fn pairs(&self) -> Result<Vec<(Board, Flavour)>> {
        if self.all {
            return Ok(Board::ALL
                .into_iter()
                .flat_map(|b| Flavour::ALL.into_iter().map(move |f| (b, f)))
                .collect());
        }
        Ok(vec![(
            self.board.parse().map_err(|e| anyhow!("--board: {e}"))?,
            self.flavour
                .parse()
                .map_err(|e| anyhow!("--flavour: {e}"))?,
        )])
    }
}

#[derive(Parser)]
pub struct Args {
    #[command(flatten)]
    which: Selection,
    /// Report what the toolchain lacks (like `make rustavailable`) and how to get it; build nothing.
    #[arg(long)]
    check_toolchain: bool,
    /// Boot each built image in QEMU on the lab's virtual device and check it.
    #[arg(long)]
    boot_test: bool,
    /// Parallel make jobs (default: number of CPUs).
    #[arg(long)]
    jobs: Option<usize>,
}

#[derive(Parser)]
pub struct BenchArgs {
    #[command(flatten)]
    which: Selection,
    /// Only the out-of-tree module loop, against the image already built in
    /// the normal cache (no cold or incremental build).
    #[arg(long)]
    module_only: bool,
}

fn patches_dir() -> PathBuf {
    crate::project_root().join("kernel-patches")
}

pub fn images_dir() -> PathBuf {
    crate::lab::target_dir().join("images")
}

fn kernel_cache() -> PathBuf {
    deps::cache_dir().join("kernel")
}

/// Where a build reads its inputs and keeps its trees and outputs; the
/// defaults are the repository and `~/.cache/besser/kernel`, the benchmark
/// uses a scratch copy.
#[derive(Clone)]
pub struct Paths {
    pub patches: PathBuf,
    pub cache: PathBuf,
    pub images: PathBuf,
}

impl Default for Paths {
    fn default() -> Paths {
        Paths {
            patches: patches_dir(),
            cache: kernel_cache(),
            images: images_dir(),
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let sh = Shell::new()?;
    if args.check_toolchain {
        return check_toolchain(&sh);
    }
    let targets = args.which.pairs()?;
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    let mut built = Vec::new();
    for (b, f) in targets {
        let dir = build_image(&sh, b, f, jobs)?;
        built.push((b, f, dir));
    }
    if args.boot_test {
        for (b, f, dir) in &built {
            if b.spec().qemu_bootable {
                boot_test(&sh, dir)?;
            } else {
                eprintln!(
                    "{}: built, not booted (real hardware only)",
                    board::image_name(*b, *f)
                );
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- toolchain

struct Toolchain {
    bindgen: PathBuf,
    versions: BTreeMap<String, String>,
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

fn tool_version(sh: &Shell, prog: &Path) -> Result<String> {
    Ok(first_line(
        &cmd!(sh, "{prog} --version")
            .quiet()
            .ignore_stderr()
            .read()
            .with_context(|| format!("{} --version", prog.display()))?,
    ))
}

fn rustc_version(sh: &Shell) -> Result<(String, (u32, u32))> {
    let v = first_line(&cmd!(sh, "rustc --version").quiet().read()?);
    let num = v.split_whitespace().nth(1).unwrap_or("");
    let mut it = num.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let mm = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    Ok((v, mm))
}

fn bindgen_path() -> PathBuf {
    deps::cache_dir()
        .join("tools")
        .join(format!("{BINDGEN_CRATE}-{BINDGEN_VERSION}"))
        .join("bin")
        .join("bindgen")
}

/// Installs what is missing and returns the toolchain with its versions.
fn ensure_toolchain(sh: &Shell) -> Result<Toolchain> {
    let mut debs: Vec<&str> = BUILD_DEBS.to_vec();
    if std::env::var_os("BESSER_KERNEL_TARBALL").is_none() {
        debs.push(DEBIAN_SOURCE_DEB);
    }
    deps::ensure_debs(sh, &debs)?;
    deps::ensure_rustup_component(sh, "rust-src")?;
    let (rustc, mm) = rustc_version(sh)?;
    if mm < RUSTC_MIN {
        bail!(
            "{rustc} is too old for Linux 6.12 (needs >= {}.{}): rustup update",
            RUSTC_MIN.0,
            RUSTC_MIN.1
        );
    }
    let bindgen = deps::ensure_cargo_tool(sh, BINDGEN_CRATE, BINDGEN_VERSION, "bindgen")?;
    let mut versions = BTreeMap::new();
    versions.insert("rustc".to_string(), rustc);
    versions.insert("bindgen".to_string(), tool_version(sh, &bindgen)?);
    versions.insert("clang".to_string(), tool_version(sh, Path::new("clang"))?);
    versions.insert("ld.lld".to_string(), tool_version(sh, Path::new("ld.lld"))?);
    versions.insert("make".to_string(), tool_version(sh, Path::new("make"))?);
    Ok(Toolchain { bindgen, versions })
}

/// `--check-toolchain`: what is there, what is missing and how to get it.
fn check_toolchain(sh: &Shell) -> Result<()> {
    let mut missing = Vec::new();
    let installed = |p: &str| deps::deb_installed(sh, p);
    let mut debs: Vec<&str> = BUILD_DEBS.to_vec();
    debs.push(DEBIAN_SOURCE_DEB);
    let lacking: Vec<&str> = debs.iter().copied().filter(|p| !installed(p)).collect();
    if lacking.is_empty() {
        println!("ok       Debian packages: {}", debs.join(" "));
    } else {
        println!("MISSING  Debian packages: {}", lacking.join(" "));
        missing.push(format!("apt-get install -y {}", lacking.join(" ")));
    }
    match rustc_version(sh) {
        Ok((v, mm)) if mm >= RUSTC_MIN => println!("ok       {v}"),
        Ok((v, _)) => {
            println!(
                "TOO OLD  {v} (Linux 6.12 needs >= {}.{})",
                RUSTC_MIN.0, RUSTC_MIN.1
            );
            missing.push("rustup update".into());
        }
        Err(_) => {
            println!("MISSING  rustc");
            missing.push("install rustup: https://rustup.rs".into());
        }
    }
    let comps = cmd!(sh, "rustup component list --installed")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    if comps.lines().any(|l| l.starts_with("rust-src")) {
        println!("ok       rust-src (rustup component)");
    } else {
        println!("MISSING  rust-src (rustup component)");
        missing.push("rustup component add rust-src".into());
    }
    let bg = bindgen_path();
    if bg.exists() {
        println!("ok       {} ({})", tool_version(sh, &bg)?, bg.display());
    } else {
        println!("MISSING  bindgen-cli {BINDGEN_VERSION} at {}", bg.display());
        let root = bg
            .parent()
            .and_then(Path::parent)
            .unwrap_or(&bg)
            .display()
            .to_string();
        missing.push(format!(
            "cargo install --locked --root {root} {BINDGEN_CRATE}@{BINDGEN_VERSION}   (cargo xtask image does this itself)"
        ));
    }
    // The kernel's own verdict, if a source tree is already extracted.
    if let Some(tree) = extracted_trees().into_iter().next() {
        if bg.exists() {
            let path = path_with(bg.parent().expect("bin dir"));
            let out = Command::new("make")
                .current_dir(&tree)
                .args(["LLVM=1", "rustavailable"])
                .env("PATH", path)
                .output();
            if let Ok(o) = out {
                println!(
                    "make LLVM=1 rustavailable ({}):\n{}{}",
                    tree.display(),
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                if !o.status.success() {
                    missing.push("see make rustavailable above".into());
                }
            }
        }
    } else {
        println!(
            "(no kernel source extracted yet; `make rustavailable` runs after the first build)"
        );
    }
    if missing.is_empty() {
        println!("toolchain complete");
        Ok(())
    } else {
        println!("\nto get what is missing:");
        for m in &missing {
            println!("  {m}");
        }
        bail!("toolchain incomplete ({} item(s))", missing.len())
    }
}

fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut p = std::ffi::OsString::from(dir);
    if let Some(old) = std::env::var_os("PATH") {
        p.push(":");
        p.push(old);
    }
    p
}

// ------------------------------------------------------------------ source

#[derive(Serialize, Deserialize, Default)]
struct TarballHashes(BTreeMap<String, (u64, i64, String)>);

struct Source {
    tarball: PathBuf,
    sha256: String,
    /// The extracted, patched tree.
    tree: PathBuf,
    /// `src/<sha16>/`
    dir: PathBuf,
}

/// The kernel tarball and the sha256 it is pinned to: `BESSER_KERNEL_TARBALL`
/// (+ `BESSER_KERNEL_SHA256`) if set, else the board's `source` pin (fetched
/// into the cache and verified), else Debian's `linux-source-6.12`.
fn tarball(sh: &Shell, spec: &board::BoardSpec) -> Result<(PathBuf, Option<String>)> {
    match std::env::var_os("BESSER_KERNEL_TARBALL") {
        Some(p) => {
            let pinned = std::env::var("BESSER_KERNEL_SHA256").map_err(|_| {
                anyhow!("BESSER_KERNEL_TARBALL is set: set BESSER_KERNEL_SHA256 to its pinned sha256 too")
            })?;
            Ok((PathBuf::from(p), Some(pinned.to_lowercase())))
        }
        None => match spec.source {
            Some(pin) => Ok((
                fetch_pinned(sh, &pin, &kernel_cache().join("sources"))?,
                Some(pin.sha256.to_lowercase()),
            )),
            None => Ok((PathBuf::from(DEBIAN_SOURCE_TARBALL), None)),
        },
    }
}

/// Brings a board's pinned tarball into `dir` (once): `file://` URLs and
/// plain paths are copied, `https://` ones downloaded with curl. The copy is
/// hashed before it gets its final name; a wrong sha256 is an error and leaves
/// nothing behind.
fn fetch_pinned(sh: &Shell, pin: &board::SourcePin, dir: &Path) -> Result<PathBuf> {
    let dest = dir.join(pin.cache_name());
    if dest.exists() {
        let got =
            besser_image::sha256_file(&dest).with_context(|| format!("{}", dest.display()))?;
        if pin.verify(&got).is_ok() {
            return Ok(dest);
        }
        fs::remove_file(&dest)?;
    }
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let part = dir.join(format!("{}.part", pin.cache_name()));
    let url = pin.url;
    if url.starts_with("https://") {
        deps::ensure_debs(sh, &["curl"])?;
        cmd!(sh, "curl -fL --proto =https -o {part} {url}")
            .run()
            .with_context(|| format!("downloading {url}"))?;
    } else if url.contains("://") && !url.starts_with("file://") {
        bail!("{url}: a board source must be https://, file:// or a local path");
    } else {
        let from = url.strip_prefix("file://").unwrap_or(url);
        fs::copy(from, &part).with_context(|| format!("copying {from}"))?;
    }
    let got = besser_image::sha256_file(&part).with_context(|| format!("{}", part.display()))?;
    if let Err(e) = pin.verify(&got) {
        let _ = fs::remove_file(&part);
        return Err(e.into());
    }
    fs::rename(&part, &dest)?;
    Ok(dest)
}

/// The tarball's sha256, remembered by path, size and mtime.
fn tarball_sha256(path: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::metadata(path).with_context(|| format!("kernel source {}", path.display()))?;
    let memo = kernel_cache().join("tarball-sha256.json");
    let mut hashes: TarballHashes = fs::read_to_string(&memo)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let key = path.display().to_string();
    if let Some((size, mtime, h)) = hashes.0.get(&key) {
        if *size == md.size() && *mtime == md.mtime() {
            return Ok(h.clone());
        }
    }
    let h = besser_image::sha256_file(path)?;
    hashes.0.insert(key, (md.size(), md.mtime(), h.clone()));
    fs::create_dir_all(kernel_cache())?;
    fs::write(&memo, serde_json::to_string_pretty(&hashes)?)?;
    Ok(h)
}

fn extracted_trees() -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(kernel_cache().join("src")) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter_map(|e| {
            let top = fs::read_to_string(e.path().join("extracted")).ok()?;
            Some(e.path().join(top.trim()))
        })
        .collect()
}

fn prepare_source(
    sh: &Shell,
    spec: &board::BoardSpec,
    paths: &Paths,
    pb: &ProgressBar,
) -> Result<Source> {
    let (tarball, pinned) = pb.suspend(|| tarball(sh, spec))?;
    step(pb, format!("hashing {}", tarball.display()));
    let sha256 = tarball_sha256(&tarball)?;
    if let Some(p) = pinned {
        if p != sha256 {
            bail!(
                "{}: sha256 is {sha256}, but BESSER_KERNEL_SHA256 pins {p}: refusing to build from it",
                tarball.display()
            );
        }
    }
    let dir = paths.cache.join("src").join(&sha256[..16]);
    let stamp = dir.join("extracted");
    if !stamp.exists() {
        step(pb, format!("extracting {}", tarball.display()));
        let _ = fs::remove_dir_all(&dir);
        let tmp = paths
            .cache
            .join("src")
            .join(format!("{}.tmp", &sha256[..16]));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp)?;
        let st = Command::new("nice")
            .args(["-n", MAKE_NICENESS, "tar", "-xf"])
            .arg(&tarball)
            .arg("-C")
            .arg(&tmp)
            .status()
            .context("running tar")?;
        if !st.success() {
            bail!("tar -xf {} failed ({st})", tarball.display());
        }
        let tops: Vec<String> = fs::read_dir(&tmp)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let [top] = tops.as_slice() else {
            bail!(
                "{}: expected one top-level directory, found {tops:?}",
                tarball.display()
            );
        };
        fs::write(tmp.join("extracted"), format!("{top}\n"))?;
        fs::rename(&tmp, &dir)?;
    }
    let top = fs::read_to_string(&stamp)?;
    let tree = dir.join(top.trim());
    Ok(Source {
        tarball,
        sha256,
        tree,
        dir,
    })
}

/// What is applied to a source tree, with the texts to revert it.
#[derive(Serialize, Deserialize, Default)]
struct Applied {
    patches: Vec<AppliedPatch>,
}

#[derive(Serialize, Deserialize, Clone)]
struct AppliedPatch {
    name: String,
    sha256: String,
    text: String,
}

/// Brings the source tree to exactly `series`: reverts what differs (last
/// first), applies the rest. The record is updated after every step.
fn sync_series(src: &Source, series: &[Patch], pb: &ProgressBar) -> Result<()> {
    use besser_image::apply::{apply_patch, Direction};
    let record = src.dir.join("series.json");
    let mut applied: Applied = match fs::read_to_string(&record) {
        Ok(s) => serde_json::from_str(&s).with_context(|| format!("{}", record.display()))?,
        Err(_) => Applied::default(),
    };
    let have: Vec<(String, String)> = applied
        .patches
        .iter()
        .map(|p| (p.name.clone(), p.sha256.clone()))
        .collect();
    let want: Vec<(String, String)> = series
        .iter()
        .map(|p| (p.name.clone(), p.sha256.clone()))
        .collect();
    let plan = plan_series(&have, &want);
    let tree_name = src
        .tree
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let save = |a: &Applied| -> Result<()> {
        fs::write(&record, serde_json::to_string_pretty(a)?)?;
        Ok(())
    };
    for i in plan.revert {
        let p = &applied.patches[i];
        step(pb, format!("reverting {}", p.name));
        let patch = besser_image::series::make_patch(&p.name, p.text.clone())?;
        apply_patch(&src.tree, &tree_name, &patch, Direction::Revert)?;
        applied.patches.truncate(i);
        save(&applied)?;
    }
    for i in plan.apply {
        let p = &series[i];
        step(pb, format!("applying {}", p.name));
        apply_patch(&src.tree, &tree_name, p, Direction::Apply).map_err(|e| {
            anyhow!(
                "{e}(kernel-patches/series, source {})",
                src.tarball.display()
            )
        })?;
        applied.patches.push(AppliedPatch {
            name: p.name.clone(),
            sha256: p.sha256.clone(),
            text: p.text.clone(),
        });
        save(&applied)?;
    }
    Ok(())
}

// ------------------------------------------------------------------- build

#[derive(Serialize, Deserialize, PartialEq)]
struct Stamp {
    tree_key: String,
    build_key: String,
    /// Size and mtime of the build's outputs when besser last finished
    /// `make` in this tree. A tree touched behind besser's back (a hand-run
    /// `make CLIPPY=1 rust/` rebuilds `rust/kernel.o` without relinking
    /// `vmlinux`, so modules then link against symbols `vmlinux` does not
    /// export) no longer matches and gets an incremental build, not trust.
    #[serde(default)]
    outputs: String,
}

/// The files whose change means `make` must run again before modules are
/// built against this tree.
const TREE_OUTPUTS: &[&str] = &[
    ".config",
    "vmlinux",
    "Module.symvers",
    "rust/libkernel.rmeta",
    "rust/kernel.o",
];

/// Size and mtime (ns) of each of `TREE_OUTPUTS` plus the kernel image;
/// a missing file is recorded as missing.
fn tree_outputs(out: &Path, kernel_image: &str) -> String {
    let mut s = String::new();
    for f in TREE_OUTPUTS.iter().copied().chain([kernel_image]) {
        let md = fs::metadata(out.join(f));
        let line = match md {
            Ok(md) => {
                let mtime = md
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{f} {} {mtime}\n", md.len())
            }
            Err(_) => format!("{f} missing\n"),
        };
        s.push_str(&line);
    }
    s
}

/// A make invocation whose output goes to the build log, with the current
/// step on the progress bar; on failure, the log's tail.
struct Make<'a> {
    src: &'a Path,
    out: &'a Path,
    arch: Arch,
    jobs: usize,
    path: std::ffi::OsString,
    log: PathBuf,
}

impl Make<'_> {
    fn run(&self, pb: &ProgressBar, what: &str, extra: &[String]) -> Result<()> {
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut args: Vec<String> = vec![
            "-n".into(),
            MAKE_NICENESS.into(),
            "make".into(),
            "-C".into(),
            self.src.display().to_string(),
            format!("O={}", self.out.display()),
            format!("ARCH={}", self.arch.kernel_arch()),
            "LLVM=1".into(),
            format!("-j{}", self.jobs),
        ];
        args.extend(extra.iter().cloned());
        writeln!(log, "\n### besser: {what}: nice {}", args.join(" "))?;
        step(pb, what);
        let mut child = Command::new("nice")
            .args(&args)
            .env("PATH", &self.path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running make")?;
        // stderr goes to the log through a thread; stdout drives the bar.
        let stderr = child.stderr.take().expect("piped");
        let mut log2 = log.try_clone()?;
        let t = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(log2, "{line}");
            }
        });
        for line in BufReader::new(child.stdout.take().expect("piped"))
            .lines()
            .map_while(Result::ok)
        {
            writeln!(log, "{line}")?;
            let l = line.trim();
            if !l.is_empty() {
                pb.set_message(format!("{what}: {}", truncate(l, 70)));
            }
        }
        let st = child.wait()?;
        let _ = t.join();
        if !st.success() {
            bail!(
                "{what} failed ({st}); last {LOG_TAIL_LINES} lines of {}:\n{}",
                self.log.display(),
                tail(&self.log, LOG_TAIL_LINES)
            );
        }
        Ok(())
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n).collect::<String>() + "…"
    }
}

fn tail(path: &Path, n: usize) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// Shows a build step: on the bar, or as a log line when there is no
/// terminal (CI), where the bar is hidden.
fn step(pb: &ProgressBar, msg: impl Into<String>) {
    let msg = msg.into();
    if pb.is_hidden() {
        eprintln!("[{}] {msg}", pb.prefix());
    }
    pb.set_message(msg);
}

fn progress(name: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {prefix}: {wide_msg}")
            .expect("valid template"),
    );
    pb.set_prefix(name.to_string());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

fn utc_now(sh: &Shell) -> String {
    cmd!(sh, "date -u +%Y-%m-%dT%H:%M:%SZ")
        .quiet()
        .read()
        .unwrap_or_default()
}

/// Builds one image (or finds it up to date) and returns its directory.
pub fn build_image(sh: &Shell, b: Board, f: Flavour, jobs: usize) -> Result<PathBuf> {
    build_image_with(sh, &Paths::default(), b, f, jobs).map(|(dir, _)| dir)
}

/// [`build_image`] with explicit paths; also returns the manifest's build kind.
pub fn build_image_with(
    sh: &Shell,
    paths: &Paths,
    b: Board,
    f: Flavour,
    jobs: usize,
) -> Result<(PathBuf, String)> {
    let name = board::image_name(b, f);
    let spec = b.spec();
    let t0 = Instant::now();
    let pb = progress(&name);
    step(&pb, "toolchain");
    let tc = pb.suspend(|| ensure_toolchain(sh))?;

    // One kernel build at a time on this machine.
    fs::create_dir_all(kernel_cache())?;
    let lock = fs::File::create(kernel_cache().join("build.lock"))?;
    step(&pb, "waiting for the kernel build lock");
    lock.lock().context("locking the kernel build cache")?;

    let series = load_series(&paths.patches)?;
    let frag_paths = board::fragment_order(b, f);
    let mut fragments = Vec::new();
    let mut frag_entries = Vec::new();
    for p in &frag_paths {
        let full = paths.patches.join("config").join(p);
        let text = fs::read_to_string(&full).with_context(|| format!("{}", full.display()))?;
        frag_entries.push(FragmentEntry {
            path: p.clone(),
            sha256: besser_image::sha256_hex(text.as_bytes()),
        });
        fragments.push(parse_fragment(
            &format!("kernel-patches/config/{p}"),
            &text,
        )?);
    }
    let merged = merge(&fragments);

    let src = prepare_source(sh, &spec, paths, &pb)?;
    let inputs = CacheInputs {
        board: b.name().into(),
        flavour: f.name().into(),
        source_sha256: src.sha256.clone(),
        patches: series
            .iter()
            .map(|p| (p.name.clone(), p.sha256.clone()))
            .collect(),
        fragments: frag_entries
            .iter()
            .map(|e| (e.path.clone(), e.sha256.clone()))
            .collect(),
        toolchain: tc.versions.clone(),
        make_flags: KERNEL_MAKE_FLAGS.iter().map(|s| s.to_string()).collect(),
    };
    let out = paths.cache.join("build").join(&name);
    let mut stamp_now = Stamp {
        tree_key: inputs.tree_key(),
        build_key: inputs.build_key(),
        outputs: tree_outputs(&out, spec.kernel_image),
    };
    let stamp_path = out.join("besser-stamp.json");
    let old: Option<Stamp> = fs::read_to_string(&stamp_path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let kind = match &old {
        Some(s) if *s == stamp_now && out.join(spec.kernel_image).exists() => "cached",
        Some(s) if s.tree_key == stamp_now.tree_key && s.build_key == stamp_now.build_key => {
            step(
                &pb,
                "build tree changed since besser's last make: rebuilding",
            );
            "incremental"
        }
        Some(s) if s.tree_key == stamp_now.tree_key => "incremental",
        _ => "cold",
    };
    let image_dir = paths.images.join(&name);
    if kind == "cached" {
        if let Ok(m) = Manifest::load(&image_dir) {
            let driver_now = driver_sources_sha256(spec.qemu_bootable)?;
            if m.build_key == stamp_now.build_key
                && m.verify(&image_dir).is_empty()
                && m.driver.as_ref().map(|d| d.sources_sha256.as_str()) == Some(driver_now.as_str())
                && m.assembly == assembly_key()
            {
                pb.finish_and_clear();
                eprintln!("{name}: up to date ({})", image_dir.display());
                return Ok((image_dir, "up-to-date".into()));
            }
        }
    }
    let log = out.join("besser-build.log");
    if kind == "cold" {
        step(&pb, "new build tree");
        let _ = fs::remove_dir_all(&out);
    }
    fs::create_dir_all(&out)?;
    let make = Make {
        src: &src.tree,
        out: &out,
        arch: spec.arch,
        jobs,
        path: path_with(tc.bindgen.parent().expect("bin dir")),
        log: log.clone(),
    };
    if kind != "cached" {
        // Invalidate the stamp first: an interrupted or failed build is
        // never "cached", but its tree is still good for an incremental
        // `make` (Kbuild resumes), so the tree key stays.
        let pending = Stamp {
            tree_key: stamp_now.tree_key.clone(),
            build_key: "unfinished".into(),
            outputs: String::new(),
        };
        fs::write(&stamp_path, serde_json::to_string_pretty(&pending)?)?;
        fs::write(&log, format!("### besser: {name}: {kind} build\n"))?;
        sync_series(&src, &series, &pb)?;
        let allconfig = out.join("besser.config");
        fs::write(&allconfig, merged.render())?;
        for (sym, old, new) in &merged.overrides {
            fs::OpenOptions::new().append(true).open(&log)?.write_all(
                format!("### besser: CONFIG_{sym}: {new} overrides {old}\n").as_bytes(),
            )?;
        }
        make.run(
            &pb,
            "allnoconfig + fragments",
            &[
                format!("KCONFIG_ALLCONFIG={}", allconfig.display()),
                "allnoconfig".into(),
            ],
        )?;
        make.run(&pb, "olddefconfig", &["olddefconfig".into()])?;
        let config = fs::read_to_string(out.join(".config"))?;
        check_survived(&merged, &config).map_err(|e| {
            anyhow!(
                "{name}: {e}(merged fragment: {}, log: {})",
                allconfig.display(),
                log.display()
            )
        })?;
        let mut targets: Vec<String> = spec.make_targets.iter().map(|s| s.to_string()).collect();
        targets.extend(KERNEL_MAKE_FLAGS.iter().map(|s| s.to_string()));
        let before = fs::metadata(&log).map_or(0, |md| md.len()) as usize;
        make.run(&pb, "make", &targets)?;
        // Clippy ran on every Rust crate of the kernel: the series' own
        // files must be clean. Upstream files are not ours to fix.
        let files: Vec<String> = series
            .iter()
            .flat_map(|p| besser_image::clippy::rust_files(&p.text))
            .collect();
        let text = fs::read_to_string(&log).unwrap_or_default();
        let found = besser_image::clippy::findings(text.get(before..).unwrap_or(""), &files);
        if !found.is_empty() {
            // The next make must compile the kernel crate again, or a rerun
            // would pass on a log with nothing to say.
            let _ = fs::remove_file(out.join("rust/kernel.o"));
            bail!(
                "{name}: clippy with the kernel's lints reports {} finding(s) in the series' Rust files (log: {}):\n{}",
                found.len(),
                log.display(),
                found
                    .iter()
                    .map(|f| format!("  {}: {}", f.location, f.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        stamp_now.outputs = tree_outputs(&out, spec.kernel_image);
        fs::write(&stamp_path, serde_json::to_string_pretty(&stamp_now)?)?;
    }

    // Assemble the image directory from the build tree.
    step(&pb, "assembling the image directory");
    let _ = fs::remove_dir_all(&image_dir);
    fs::create_dir_all(&image_dir)?;
    let release = fs::read_to_string(out.join("include/config/kernel.release"))
        .context("reading kernel.release")?
        .trim()
        .to_string();
    let kernel_name = Path::new(spec.kernel_image)
        .file_name()
        .expect("image has a file name")
        .to_string_lossy()
        .into_owned();
    fs::copy(out.join(spec.kernel_image), image_dir.join(&kernel_name))?;
    fs::copy(out.join(".config"), image_dir.join("config"))?;
    let modules_dir = image_dir.join("modules");
    make.run(
        &pb,
        "modules_install",
        &[
            format!("INSTALL_MOD_PATH={}", modules_dir.display()),
            "INSTALL_MOD_STRIP=1".into(),
            "modules_install".into(),
        ],
    )?;
    let mut dtbs = Vec::new();
    for d in spec.dtbs {
        let from = out
            .join("arch")
            .join(spec.arch.kernel_arch())
            .join("boot/dts")
            .join(d);
        let base = Path::new(d).file_name().expect("dtb file name");
        fs::create_dir_all(image_dir.join("dtbs"))?;
        fs::copy(&from, image_dir.join("dtbs").join(base))
            .with_context(|| format!("copying {}", from.display()))?;
        dtbs.push(format!("dtbs/{}", base.to_string_lossy()));
    }
    let (boot_script, boot_env) = match spec.uboot {
        Some(u) => {
            let (scr, env) = write_uboot_files(sh, &image_dir, &u)
                .with_context(|| format!("{name}: the A/B boot script"))?;
            (Some(scr), Some(env))
        }
        None => (None, None),
    };
    let driver = build_driver(&make, &pb, &out, &modules_dir, &release, spec.qemu_bootable)
        .with_context(|| format!("{name}: building bes2600.ko"))?;
    let mut boot_modules = vec![DRIVER_MODULE];
    let mut firmware = Vec::new();
    if spec.qemu_bootable {
        // The simulated SDIO host loads first; its card then probes bes2600.
        boot_modules.insert(0, SDIO_SIM_MODULE);
        // Test-only, never loaded at boot: the lab's lockdep receipt test
        // loads it during a rep.
        let plant = modules_dir
            .join("lib/modules")
            .join(&release)
            .join("extra")
            .join(format!("{LOCK_PLANT_MODULE}.ko"));
        firmware.push(besser_lab::appliance::ExtraFile {
            guest_path: besser_lab::appliance::LOCK_PLANT_KO.into(),
            mode: 0o644,
            contents: fs::read(&plant).with_context(|| format!("reading {}", plant.display()))?,
        });
        let pktgen = modules_dir
            .join("lib/modules")
            .join(&release)
            .join("kernel/net/core/pktgen.ko");
        firmware.push(besser_lab::appliance::ExtraFile {
            guest_path: besser_lab::appliance::PKTGEN_KO.into(),
            mode: 0o644,
            contents: fs::read(&pktgen).with_context(|| format!("reading {}", pktgen.display()))?,
        });
        for (path, bytes) in besser_image::testfw::images() {
            firmware.push(besser_lab::appliance::ExtraFile {
                guest_path: format!("/{path}"),
                mode: 0o644,
                contents: bytes,
            });
        }
    }
    let initramfs = "initramfs.cpio";
    make_initramfs(
        sh,
        spec.arch,
        &modules_dir,
        &boot_modules,
        firmware,
        &image_dir.join(initramfs),
    )
    .with_context(|| format!("{name}: building the lab appliance initramfs"))?;
    fs::copy(&log, image_dir.join("build.log"))?;
    let config_sha256 = besser_image::sha256_file(&image_dir.join("config"))?;
    let version = release.split('-').next().unwrap_or(&release).to_string();
    let m = Manifest {
        schema: manifest::SCHEMA_VERSION,
        board: b.name().into(),
        flavour: f.name().into(),
        arch: spec.arch.name().into(),
        kernel_release: release,
        kernel_version: version,
        source: manifest::Source {
            tarball: src.tarball.display().to_string(),
            sha256: src.sha256.clone(),
        },
        patches: series
            .iter()
            .map(|p| PatchEntry {
                name: p.name.clone(),
                subject: p.subject.clone(),
                sha256: p.sha256.clone(),
            })
            .collect(),
        fragments: frag_entries,
        config_sha256,
        toolchain: tc.versions.clone(),
        tree_key: stamp_now.tree_key.clone(),
        build_key: stamp_now.build_key.clone(),
        artifacts: Artifacts {
            kernel: kernel_name,
            initramfs: initramfs.into(),
            config: "config".into(),
            modules: "modules".into(),
            dtbs,
            build_log: "build.log".into(),
            boot_script,
            boot_env,
        },
        sha256: manifest::hash_tree(&image_dir, &[manifest::MANIFEST_FILE])?,
        driver: Some(manifest::DriverModule {
            module: rel_to(&image_dir, &driver.module)?,
            srcversion: driver.srcversion,
            sha256: besser_image::sha256_file(&driver.module)?,
            sources_sha256: driver.sources_sha256,
            sdio_sim: driver
                .sdio_sim
                .map(|p| rel_to(&image_dir, &p))
                .transpose()?,
        }),
        assembly: assembly_key(),
        build: BuildInfo {
            finished_utc: utc_now(sh),
            build_time_s: (t0.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            kind: kind.into(),
        },
    };
    fs::write(image_dir.join(manifest::MANIFEST_FILE), m.to_json())?;
    pb.finish_and_clear();
    eprintln!(
        "{name}: {} ({kind}, {:.0} s): {}",
        m.kernel_release,
        t0.elapsed().as_secs_f64(),
        image_dir.display()
    );
    drop(lock);
    Ok((image_dir, kind.to_string()))
}

/// The Rust driver module, and the test-only simulated SDIO host (QEMU boards).
const DRIVER_MODULE: &str = "bes2600";
const SDIO_SIM_MODULE: &str = "besser_sdio_sim";
/// bes2600's module alias (`module!` in driver/kmod/bes2600.rs).
const DRIVER_SDIO_ALIAS: &str = besser_image::bootcheck::BES2600_SDIO_ALIAS;
const LOCK_PLANT_MODULE: &str = "besser_lock_plant";

/// The driver's sources, relative to the repository: what bes2600.ko (and on
/// QEMU boards the simulated host) is built from, copied as they lie so the
/// modules' `#[path]` mounts resolve.
fn driver_source_dirs(sim: bool) -> Vec<&'static str> {
    let mut v = besser_image::packaging::DRIVER_SOURCES.to_vec();
    if sim {
        v.extend(["driver/sdiosim", "driver/sim/src"]);
    }
    v
}

fn driver_files(sim: bool) -> Result<Vec<PathBuf>> {
    let root = crate::project_root();
    let mut files = Vec::new();
    for d in driver_source_dirs(sim) {
        for e in walkdir(&root.join(d))? {
            files.push(e.strip_prefix(&root).expect("under the root").to_path_buf());
        }
    }
    files.sort();
    Ok(files)
}

fn walkdir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walkdir(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// SHA-256 over the driver's source files (path and contents).
fn driver_sources_sha256(sim: bool) -> Result<String> {
    let root = crate::project_root();
    let mut all = Vec::new();
    for f in driver_files(sim)? {
        all.extend_from_slice(f.to_string_lossy().as_bytes());
        all.push(0);
        all.extend_from_slice(&fs::read(root.join(&f))?);
        all.push(0);
    }
    Ok(besser_image::sha256_hex(&all))
}

struct BuiltDriver {
    module: PathBuf,
    srcversion: String,
    sources_sha256: String,
    sdio_sim: Option<PathBuf>,
}

/// Builds bes2600.ko (and on QEMU boards the simulated SDIO host) against
/// the kernel tree `out`, and installs them into the image's modules tree
/// under `extra/`, with a fresh `depmod`.
fn build_driver(
    make: &Make<'_>,
    pb: &ProgressBar,
    out: &Path,
    modules_dir: &Path,
    release: &str,
    sim: bool,
) -> Result<BuiltDriver> {
    let root = crate::project_root();
    // Kbuild writes objects next to the sources: build in a copy.
    let staging = out.join("besser-driver");
    let _ = fs::remove_dir_all(&staging);
    for f in driver_files(sim)? {
        let to = staging.join(&f);
        fs::create_dir_all(to.parent().expect("a file has a parent"))?;
        fs::copy(root.join(&f), &to)?;
    }
    let mut dirs = vec![("bes2600.ko", staging.join("driver/kmod"))];
    if sim {
        dirs.push(("the simulated SDIO host", staging.join("driver/sdiosim")));
    }
    for (what, dir) in &dirs {
        let m = format!("M={}", dir.display());
        // Clippy with the kernel's lints first (CLIPPY=1 runs clippy-driver
        // in place of rustc): a warning fails the build, as -D warnings would.
        let before = fs::metadata(&make.log).map_or(0, |md| md.len()) as usize;
        make.run(
            pb,
            &format!("clippy on {what}"),
            &[m.clone(), "CLIPPY=1".into(), "modules".into()],
        )?;
        let log = fs::read_to_string(&make.log).unwrap_or_default();
        let warnings: Vec<&str> = log
            .get(before..)
            .unwrap_or("")
            .lines()
            .filter(|l| l.starts_with("warning:") || l.starts_with("error:"))
            .collect();
        if !warnings.is_empty() {
            bail!(
                "{what}: clippy with the kernel's lints reports {} line(s) (see {}):\n{}",
                warnings.len(),
                make.log.display(),
                warnings.join("\n")
            );
        }
        // Then the objects that go into the image, built by rustc as always.
        for o in ["bes2600.o", "besser_sdio_sim.o", "sim_chip.o"] {
            let _ = fs::remove_file(dir.join(o));
        }
        make.run(
            pb,
            &format!("building {what}"),
            &[m.clone(), "modules".into()],
        )?;
        make.run(
            pb,
            &format!("installing {what}"),
            &[
                m,
                format!("INSTALL_MOD_PATH={}", modules_dir.display()),
                "INSTALL_MOD_DIR=extra".into(),
                "INSTALL_MOD_STRIP=1".into(),
                "modules_install".into(),
            ],
        )?;
    }
    let sh = Shell::new()?;
    // No Rust stack frame over C's CONFIG_FRAME_WARN (see stackcheck).
    for (obj, dir) in [
        ("bes2600.o", staging.join("driver/kmod")),
        ("besser_sdio_sim.o", staging.join("driver/sdiosim")),
    ] {
        let o = dir.join(obj);
        if !o.exists() {
            continue;
        }
        let o_s = o.display().to_string();
        let dis = cmd!(sh, "llvm-objdump -d --no-show-raw-insn {o_s}")
            .quiet()
            .read()?;
        let big = besser_image::stackcheck::frames_over(&dis, besser_image::stackcheck::FRAME_MAX);
        if !big.is_empty() {
            let list: Vec<String> = big.iter().map(|(n, f)| format!("{f}: {n} bytes")).collect();
            bail!(
                "{obj}: stack frames over {} bytes (a 16 KiB kernel stack overflows silently): {}",
                besser_image::stackcheck::FRAME_MAX,
                list.join("; ")
            );
        }
    }
    let base = modules_dir.display().to_string();
    cmd!(sh, "depmod -b {base} {release}").quiet().run()?;
    let aliases = fs::read_to_string(
        modules_dir
            .join("lib/modules")
            .join(release)
            .join("modules.alias"),
    )
    .context("reading depmod's modules.alias")?;
    if !aliases
        .lines()
        .any(|l| l.trim() == format!("alias {DRIVER_SDIO_ALIAS} bes2600"))
    {
        bail!("depmod's modules.alias has no `alias {DRIVER_SDIO_ALIAS} bes2600`: the card would not autoload the driver");
    }
    let extra = modules_dir.join("lib/modules").join(release).join("extra");
    let module = extra.join("bes2600.ko");
    let path = module.display().to_string();
    let srcversion = cmd!(sh, "modinfo -F srcversion {path}")
        .quiet()
        .read()?
        .trim()
        .to_string();
    if srcversion.is_empty() {
        bail!("{path}: no srcversion in its modinfo (CONFIG_MODULE_SRCVERSION_ALL off?)");
    }
    Ok(BuiltDriver {
        module,
        srcversion,
        sources_sha256: driver_sources_sha256(sim)?,
        sdio_sim: sim.then(|| extra.join("besser_sdio_sim.ko")),
    })
}

fn rel_to(base: &Path, p: &Path) -> Result<String> {
    Ok(p.strip_prefix(base)
        .with_context(|| format!("{} is not under {}", p.display(), base.display()))?
        .to_string_lossy()
        .into_owned())
}

/// Bump when what the image directory is assembled from changes (files put
/// into the initramfs, the manifest's contents) without the kernel or the
/// driver's sources changing.
const ASSEMBLY_VERSION: u32 = 3;

/// U-Boot boards: `boot.scr` compiled from `images/boot/besser-ab.cmd`
/// (`mkimage`, with `SOURCE_DATE_EPOCH=0` so the file is the same every
/// build) and the environment defaults beside it. Returns their names in
/// the image directory.
fn write_uboot_files(
    sh: &Shell,
    image_dir: &Path,
    u: &besser_image::board::UBoot,
) -> Result<(String, String)> {
    use besser_image::uboot;
    deps::ensure_debs(sh, &["u-boot-tools"])?;
    let src = image_dir.join(uboot::BOOT_SCRIPT_SRC_FILE);
    fs::write(&src, uboot::BOOT_SCRIPT_SRC)?;
    let scr = image_dir.join(uboot::BOOT_SCRIPT_FILE);
    cmd!(
        sh,
        "mkimage -A arm64 -O linux -T script -C none -n besser-ab -d {src} {scr}"
    )
    .env("SOURCE_DATE_EPOCH", "0")
    .quiet()
    .ignore_stdout()
    .run()
    .context("mkimage (u-boot-tools)")?;
    fs::write(image_dir.join(uboot::BOOT_ENV_FILE), uboot::env_defaults(u))?;
    Ok((uboot::BOOT_SCRIPT_FILE.into(), uboot::BOOT_ENV_FILE.into()))
}

/// The manifest's `assembly`: this assembly and the appliance it packs.
fn assembly_key() -> String {
    format!(
        "assembly-{ASSEMBLY_VERSION}+appliance-{}",
        besser_lab::assets::APPLIANCE_VERSION
    )
}

/// Modules the appliance loads at boot on a besser kernel: the Rust sample
/// (proof that Rust modules run) and the lab's qdiscs (virtio is built in).
const APPLIANCE_MODULES: &[&str] = &[
    besser_image::bootcheck::RUST_SAMPLE_MODULE,
    "sch_tbf",
    "sch_netem",
];
/// The driver's interface (the first that mac80211's phy has), in `$w`.
const WLAN: &str = "w=$(iw dev | awk '/Interface/ {print $2; exit}')";
/// The chip model's counters (the simulated host's debugfs file).
const CHIP_STATS: &str = "mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null; cat /sys/kernel/debug/besser_sdio_sim/chip";
/// Per remote command of the boot test.
const BOOT_TEST_CMD_TIMEOUT_S: u64 = 30;
/// Lines of the guest's log a failed boot test prints.
const BOOT_TEST_LOG_TAIL: usize = 40;

/// Debian arm64 packages the arm64 appliance is made of: a static busybox,
/// dropbear and the libraries dropbear links (its ELF interpreter included).
const ARM64_APPLIANCE_DEBS: &[&str] = &[
    "busybox-static",
    "dropbear-bin",
    "libc6",
    "libcrypt1",
    "libtomcrypt1",
    "libtommath1",
    "zlib1g",
    "libgmp10",
    "iw",
    "libnl-3-200",
    "libnl-genl-3-200",
];
/// What arm64 `iw` needs besides dropbear's libraries.
const ARM64_IW_LIBS: &[&str] = &["libnl-3.so.200", "libnl-genl-3.so.200"];
/// What arm64 dropbear needs at run time (sonames, and the interpreter).
const ARM64_DROPBEAR_LIBS: &[&str] = &[
    "ld-linux-aarch64.so.1",
    "libc.so.6",
    "libcrypt.so.1",
    "libtomcrypt.so.1",
    "libtommath.so.1",
    "libz.so.1",
    "libgmp.so.10",
];

/// An arm64 root with busybox and dropbear from Debian's arm64 packages
/// (downloaded with apt-get, unpacked with dpkg-deb; nothing is installed),
/// cached under `~/.cache/besser/arm64-appliance/root`.
fn arm64_sysroot(sh: &Shell) -> Result<PathBuf> {
    let base = deps::cache_dir().join("arm64-appliance");
    let root = base.join("root");
    // The marker holds the candidate versions it was made from, so a new
    // Debian package version remakes the root.
    let done = base.join("done");
    let versions = || -> String {
        ARM64_APPLIANCE_DEBS
            .iter()
            .map(|p| {
                let v = deps::deb_version(sh, &format!("{p}:arm64"), "Candidate:");
                format!("{p}:arm64={}\n", v.unwrap_or_default())
            })
            .collect()
    };
    if fs::read_to_string(&done).is_ok_and(|made_from| made_from == versions()) {
        return Ok(root);
    }
    let foreign = cmd!(sh, "dpkg --print-foreign-architectures")
        .quiet()
        .read()?;
    if !foreign.lines().any(|l| l.trim() == "arm64") {
        if !deps::is_root(sh) {
            bail!("arm64 appliance: run as root: dpkg --add-architecture arm64 && apt-get update");
        }
        cmd!(sh, "dpkg --add-architecture arm64").run()?;
        cmd!(sh, "apt-get update -q").run()?;
    }
    let dl = base.join("debs");
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&dl)?;
    let pkgs: Vec<String> = ARM64_APPLIANCE_DEBS
        .iter()
        .map(|p| format!("{p}:arm64"))
        .collect();
    {
        let _d = sh.push_dir(&dl);
        cmd!(sh, "apt-get download -q {pkgs...}")
            .run()
            .context("apt-get download (arm64 appliance packages)")?;
    }
    fs::create_dir_all(&root)?;
    for e in fs::read_dir(&dl)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "deb") {
            cmd!(sh, "dpkg-deb -x {p} {root}").run()?;
        }
    }
    fs::write(&done, versions())?;
    Ok(root)
}

/// Finds `name` under `root` (following the unpacked package layout).
fn find_in(root: &Path, name: &str) -> Option<PathBuf> {
    for dir in [
        "lib",
        "lib/aarch64-linux-gnu",
        "usr/lib/aarch64-linux-gnu",
        "usr/lib",
    ] {
        let p = root.join(dir).join(name);
        if p.exists() {
            return Some(p);
        }
    }
    None
}

/// The lab appliance (besser-lab's one init, dropbear, lab keys) with this
/// kernel's modules; for arm64 with Debian's arm64 busybox and dropbear.
pub fn make_initramfs(
    sh: &Shell,
    arch: Arch,
    modules: &Path,
    extra_modules: &[&str],
    extra_files: Vec<besser_lab::appliance::ExtraFile>,
    out: &Path,
) -> Result<()> {
    use besser_lab::appliance::{ApplianceSpec, Dropbear, ExtraFile};
    deps::ensure_debs(sh, besser_lab::assets::HOST_DEBS)?;
    let keys = besser_lab::assets::lab_keys(&crate::lab::target_dir())?;
    let wanted: Vec<String> = APPLIANCE_MODULES
        .iter()
        .chain(extra_modules)
        .map(|m| m.to_string())
        .collect();
    let spec = match arch {
        Arch::X86_64 => {
            let mut spec = besser_lab::assets::host_appliance_spec(
                &keys,
                arch,
                Some(modules.to_path_buf()),
                wanted,
            )?;
            spec.extra_files
                .extend(besser_lab::assets::host_iw_files()?);
            spec
        }
        Arch::Aarch64 => {
            let root = arm64_sysroot(sh)?;
            let mut libs = Vec::new();
            for l in ARM64_DROPBEAR_LIBS.iter().chain(ARM64_IW_LIBS) {
                let p = find_in(&root, l).ok_or_else(|| {
                    anyhow!("arm64 appliance: {l} not found under {}", root.display())
                })?;
                let guest = format!("/{}", p.strip_prefix(&root).expect("under root").display());
                libs.push(ExtraFile {
                    guest_path: guest,
                    mode: 0o755,
                    contents: fs::read(&p)?,
                });
            }
            libs.push(ExtraFile {
                guest_path: besser_lab::assets::GUEST_IW.into(),
                mode: 0o755,
                // The package ships /sbin/iw; the extracted root has no
                // merged /usr, so look in both.
                contents: ["sbin/iw", "usr/sbin/iw"]
                    .iter()
                    .find_map(|p| fs::read(root.join(p)).ok())
                    .context("arm64 appliance: sbin/iw (Debian's iw:arm64)")?,
            });
            ApplianceSpec {
                arch: arch,
                busybox: root.join("bin/busybox"),
                dropbear: Some(Dropbear {
                    binary: root.join("usr/sbin/dropbear"),
                    libs: Vec::new(),
                    host_key: keys.host_key.clone(),
                    authorized_key: keys.client_pub.clone(),
                }),
                modules_root: Some(modules.to_path_buf()),
                modules: wanted,
                extra_files: libs,
            }
        }
    };
    let mut spec = spec;
    spec.extra_files.extend(extra_files);
    besser_lab::appliance::build_initramfs(&spec, out)
}

/// Waits (at most the lab's own lock limit) until no one holds the VM lock,
/// so a boot time measured next is the boot and not someone else's VM.
/// Returns how long it waited.
fn wait_vm_lock_free() -> Duration {
    let path = Path::new(besser_lab::lock::VM_LOCK_PATH);
    let t0 = Instant::now();
    while besser_lab::lock::holder_pid(path).is_some()
        && t0.elapsed() < Duration::from_secs(besser_lab::lock::VM_LOCK_WAIT_MAX_S)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    t0.elapsed()
}

/// Boots the image on the lab's virtual device and checks it against its
/// manifest (see `besser_image::bootcheck`).
pub fn boot_test(sh: &Shell, dir: &Path) -> Result<()> {
    use besser_image::bootcheck::{evaluate, Observed};
    use besser_lab::device::transport::Transport;
    let m = Manifest::load(dir)?;
    let qemu = if m.arch == "aarch64" {
        "qemu-system-arm"
    } else {
        "qemu-system-x86"
    };
    deps::ensure_debs(sh, &[qemu])?;
    let name = format!("{}-{}", m.board, m.flavour);
    let changed = m.verify(dir);
    if !changed.is_empty() {
        bail!(
            "{}: files differ from manifest.json: {}",
            dir.display(),
            changed.join(", ")
        );
    }
    let image_config = fs::read_to_string(dir.join(&m.artifacts.config))?;
    let mut image = besser_lab::assets::image_from_dir(dir)?;
    // The checks below scan, associate and re-key the radio themselves:
    // boot with the data NIC as the data link (the 1-rep ramp step runs
    // the data link over the simulated air).
    image.data_link = besser_lab::assets::DataLink::Virtio;
    let keys = besser_lab::assets::lab_keys(&crate::lab::target_dir())?;
    let vm_dir = crate::lab::target_dir().join("image-boot-test").join(&name);
    fs::create_dir_all(&vm_dir)?;
    eprintln!(
        "{name}: booting on the virtual lab device (waits for {})",
        besser_lab::lock::VM_LOCK_PATH
    );
    let waited = wait_vm_lock_free();
    let t0 = Instant::now();
    let vm = besser_lab::vm::Vm::boot(&besser_lab::vm::VmOptions {
        image: &image,
        keys: &keys,
        dir: &vm_dir,
        detached: false,
    })
    .with_context(|| format!("{name}: boot test"))?;
    let boot_s = t0.elapsed().as_secs_f64();
    let dev = vm.device();
    let log = vm_dir.join("dmesg.txt");
    let to = Duration::from_secs(BOOT_TEST_CMD_TIMEOUT_S);
    let sim = m.driver.as_ref().is_some_and(|d| d.sdio_sim.is_some());
    let observed = (|| -> Result<Observed> {
        let mut t = Transport::connect(&dev.wired)?;
        let mut run = |c: &str| -> Result<String> { Ok(t.exec(c, to)?.stdout_str()) };
        Ok(Observed {
        uname_r: run("uname -r")?,
        proc_config: run("zcat /proc/config.gz")?,
        proc_lockdep: run("test -e /proc/lockdep && echo yes")?.trim() == "yes",
        lockdep_stats: run("cat /proc/lockdep_stats 2>/dev/null")?,
        dmesg: run("dmesg")?,
        modules: run("cat /proc/modules")?,
        sdio_ids: run("for d in /sys/bus/sdio/devices/*; do [ -e $d/vendor ] && echo $(cat $d/vendor) $(cat $d/device); done")?,
        sdio_modalias: run("cat /sys/bus/sdio/devices/*/modalias 2>/dev/null")?,
        driver_srcversion: run("cat /sys/module/bes2600/srcversion 2>/dev/null")?,
        scan_2ghz: when(sim, || run(&format!("{WLAN}; ip link set $w up; sleep 1; iw dev $w scan 2>&1")))?,
        chip_before: when(sim, || run(CHIP_STATS))?,
        chip_after_5ghz_multi: when(sim, || run(&format!("{WLAN}; iw dev $w scan freq 5180 5200 >/dev/null 2>&1; {CHIP_STATS}")))?,
        chip_after_5ghz_single: when(sim, || run(&format!("{WLAN}; iw dev $w scan freq 5180 >/dev/null 2>&1; {CHIP_STATS}")))?,
        scan_withheld: when(sim, || run(&format!(
                "{WLAN}; F=/sys/kernel/debug/besser_sdio_sim/fault; echo drop_scan_complete_every 1 > $F; \
                 timeout 20 iw dev $w scan >/dev/null 2>&1; echo rc=$?; echo clear 0 > $F; \
                 iw dev $w scan 2>&1 | grep 'SSID: '; {CHIP_STATS}"
            )))?,
        link_open: when(sim, || run(&format!("{WLAN}; iw dev $w connect besser; sleep 4; iw dev $w link")))?,
        link_wep: when(sim, || run(&format!(
                "{WLAN}; iw dev $w disconnect; {CHIP_STATS} >/dev/null; echo 1 > /sys/kernel/debug/besser_sdio_sim/ap_privacy; \
                 sleep 1; iw dev $w scan >/dev/null 2>&1; iw dev $w connect besser key 0:abcde; sleep 4; iw dev $w link"
            )))?,
        chip_after_wep: when(sim, || run(CHIP_STATS))?,
        tx_flood: when(sim, || run(&format!(
                "{WLAN}; insmod {}; P=/proc/net/pktgen; echo rem_device_all > $P/kpktgend_0; \
                 echo add_device $w > $P/kpktgend_0; for c in 'count 20000' 'pkt_size 600' 'delay 0' \
                 'dst {}' 'dst_mac 02:be:57:00:00:01'; do echo $c > $P/$w; done; \
                 {CHIP_STATS} | grep '^tx_frames '; timeout 120 sh -c \"echo start > $P/pgctrl\"; \
                 grep 'Result:' $P/$w; {CHIP_STATS} | grep '^tx_frames '; rmmod pktgen",
                besser_lab::appliance::PKTGEN_KO,
                besser_lab::vm::net::DATA_GATEWAY_ADDR
            )))?,
        chip_after_ps_on: when(sim, || run(&format!("{WLAN}; iw dev $w set power_save on; sleep 1; {CHIP_STATS}")))?,
        chip_after_ps_off: when(sim, || run(&format!("{WLAN}; iw dev $w set power_save off; sleep 1; {CHIP_STATS}")))?,
        chip_after_ps_refused: when(sim, || run(&format!(
                "{WLAN}; F=/sys/kernel/debug/besser_sdio_sim/fault; echo pm_refused 1 > $F; \
                 iw dev $w set power_save on; sleep 1; iw dev $w set power_save off; sleep 1; \
                 iw dev $w set power_save on; sleep 1; echo clear 0 > $F; {CHIP_STATS}"
            )))?,
        dmesg_after_rmmod: when(sim, || run("rmmod bes2600; rmmod besser_sdio_sim; sleep 1; dmesg"))?,
    })
    })();
    let obs = match observed {
        Ok(obs) => obs,
        // A check that hung or failed: what the guest logged up to here is
        // the evidence, so keep it (a fresh connection: the failed one may
        // still wait for the hung command) before the VM goes.
        Err(e) => {
            let dmesg = Transport::connect(&dev.wired)
                .ok()
                .and_then(|mut t| t.exec(&format!("dmesg; {CHIP_STATS}"), to).ok())
                .map(|o| o.stdout_str());
            drop(vm);
            return Err(match dmesg {
                Some(d) => {
                    fs::write(&log, &d)?;
                    let tail: Vec<&str> = d.lines().rev().take(BOOT_TEST_LOG_TAIL).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    e.context(format!(
                        "{name}: boot test; the guest's dmesg and chip counters are in {}, their last {} lines:\n{}",
                        log.display(),
                        tail.len(),
                        tail.join("\n")
                    ))
                }
                None => e.context(format!(
                    "{name}: boot test (the guest no longer answered for its dmesg)"
                )),
            });
        }
    };
    drop(vm);
    fs::write(&log, &obs.dmesg)?;
    let checks = evaluate(&m, &image_config, &obs);
    println!(
        "{name}: boot test (boot to SSH {boot_s:.1} s after {:.1} s waiting for another VM; guest dmesg: {})",
        waited.as_secs_f64(),
        log.display()
    );
    for c in &checks {
        println!(
            "  {} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed > 0 {
        bail!("{name}: {failed} boot check(s) failed");
    }
    Ok(())
}

/// `f()` on images with the simulated SDIO host; nothing (an empty
/// observation) on the others.
fn when(sim: bool, f: impl FnOnce() -> Result<String>) -> Result<String> {
    if sim {
        f()
    } else {
        Ok(String::new())
    }
}

/// The benchmark's out-of-tree module and the line it prints when loaded.
const BENCH_MODULE: &str = "besser_bench_hello";
const BENCH_MODULE_MARKER: &str = "besser bench module loaded";
/// The issue's goals, for the printed ratios.
const COLD_BUILD_GOAL_S: f64 = 600.0;
const MODULE_BOOT_GOAL_S: f64 = 60.0;

/// `cargo xtask bench image`: per image, in one run and a scratch cache:
/// a cold build, an incremental rebuild after touching one patch, and the
/// edit-build-boot loop of an out-of-tree Rust module (module build +
/// initramfs + boot to SSH + module loaded).
pub fn bench(args: BenchArgs) -> Result<()> {
    let sh = Shell::new()?;
    let targets = args.which.pairs()?;
    let scratch = crate::lab::target_dir().join("bench-image");
    if args.module_only {
        for (b, f) in targets {
            if !b.spec().qemu_bootable {
                bail!("{b}: the module loop boots the image; {b} is not bootable in QEMU");
            }
            let dir = images_dir().join(board::image_name(b, f));
            let m = Manifest::load(&dir).with_context(|| {
                format!("build it first: cargo xtask image --board {b} --flavour {f}")
            })?;
            let changed = m.verify(&dir);
            if !changed.is_empty() {
                bail!(
                    "{}: files differ from manifest.json: {}",
                    dir.display(),
                    changed.join(", ")
                );
            }
            let _ = fs::remove_dir_all(&scratch);
            fs::create_dir_all(&scratch)?;
            let (build_s, boot_s) = bench_module_loop(&Paths::default(), b, f, &dir, &scratch)?;
            let total = build_s + boot_s;
            println!(
                "{}: out-of-tree module {build_s:.1} s build + {boot_s:.1} s initramfs, boot to SSH, module loaded = {total:.1} s = {:.2} x the {MODULE_BOOT_GOAL_S:.0} s goal",
                board::image_name(b, f),
                total / MODULE_BOOT_GOAL_S
            );
        }
        let _ = fs::remove_dir_all(&scratch);
        return Ok(());
    }
    let mut rows = Vec::new();
    for (b, f) in targets {
        let _ = fs::remove_dir_all(&scratch);
        fs::create_dir_all(&scratch)?;
        let paths = Paths {
            patches: scratch.join("kernel-patches"),
            cache: scratch.join("cache"),
            images: scratch.join("images"),
        };
        let st = Command::new("cp")
            .arg("-a")
            .arg(patches_dir())
            .arg(&paths.patches)
            .status()?;
        if !st.success() {
            bail!("copying kernel-patches to {}", paths.patches.display());
        }
        let name = board::image_name(b, f);
        let t0 = Instant::now();
        let (dir, kind) = build_image_with(&sh, &paths, b, f, default_jobs())?;
        let cold_s = t0.elapsed().as_secs_f64();
        if kind != "cold" {
            bail!("{name}: expected a cold build in the scratch cache, got {kind}");
        }
        // Change one patch the way a developer does: one line inside a hunk
        // of a helper `.c` (a comment the patch adds). The patch's hash
        // changes, so it is reverted and re-applied, and make rebuilds that
        // file. The scratch copy of kernel-patches/ goes away afterwards.
        let first = load_series(&paths.patches)?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("the series is empty"))?;
        let ppath = paths.patches.join(&first.name);
        let text = fs::read_to_string(&ppath)?;
        let (line, touched) = besser_image::series::touch_c_hunk_line(&text, "(besser bench)")
            .ok_or_else(|| {
                anyhow!(
                    "{}: no one-line /* */ comment added to a .c file to touch",
                    first.name
                )
            })?;
        fs::write(&ppath, touched)?;
        let first_name = format!("{}:{line}", first.name);
        let t1 = Instant::now();
        let (_, kind) = build_image_with(&sh, &paths, b, f, default_jobs())?;
        let incr_s = t1.elapsed().as_secs_f64();
        if kind != "incremental" {
            bail!("{name}: expected an incremental build after touching {first_name}, got {kind}");
        }
        let module = if b.spec().qemu_bootable {
            Some(bench_module_loop(&paths, b, f, &dir, &scratch)?)
        } else {
            None
        };
        rows.push((name, cold_s, incr_s, first_name, module));
        let _ = fs::remove_dir_all(&scratch);
    }
    println!("\ncargo xtask bench image ({} jobs, make at nice {MAKE_NICENESS}; the machine is shared, so times include others' load)", default_jobs());
    for (name, cold, incr, patch, module) in &rows {
        println!("{name}:");
        println!(
            "  cold build            {cold:7.1} s   = {:.2} x the {COLD_BUILD_GOAL_S:.0} s goal",
            cold / COLD_BUILD_GOAL_S
        );
        println!(
            "  touch {patch}: incremental {incr:7.1} s   = {:.3} x cold",
            incr / cold
        );
        if let Some((build_s, boot_s)) = module {
            let total = build_s + boot_s;
            println!(
                "  out-of-tree module    {build_s:7.1} s build + {boot_s:.1} s initramfs, boot to SSH, module loaded = {total:.1} s = {:.2} x the {MODULE_BOOT_GOAL_S:.0} s goal",
                total / MODULE_BOOT_GOAL_S
            );
        }
    }
    Ok(())
}

/// Module build against the scratch build tree, then initramfs + boot +
/// check it loaded. Returns (build s, initramfs + boot + check s).
fn bench_module_loop(
    paths: &Paths,
    b: Board,
    f: Flavour,
    image_dir: &Path,
    scratch: &Path,
) -> Result<(f64, f64)> {
    use besser_lab::device::transport::Transport;
    let name = board::image_name(b, f);
    let spec = b.spec();
    let build = paths.cache.join("build").join(&name);
    let m = Manifest::load(image_dir)?;
    let mdir = scratch.join("module");
    let _ = fs::remove_dir_all(&mdir);
    fs::create_dir_all(&mdir)?;
    let src = crate::project_root().join("images/bench-module");
    for e in fs::read_dir(&src)? {
        let e = e?;
        fs::copy(e.path(), mdir.join(e.file_name()))?;
    }
    let tc = ensure_toolchain(&Shell::new()?)?;
    let t0 = Instant::now();
    let out = Command::new("nice")
        .args(["-n", MAKE_NICENESS, "make", "-C"])
        .arg(&build)
        .arg(format!("ARCH={}", spec.arch.kernel_arch()))
        .args(["LLVM=1"])
        .arg(format!("M={}", mdir.display()))
        .arg("modules")
        .env("PATH", path_with(tc.bindgen.parent().expect("bin dir")))
        .output()?;
    if !out.status.success() {
        bail!(
            "building the bench module failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let build_s = t0.elapsed().as_secs_f64();
    let t_copy = Instant::now();
    let root = scratch.join("modroot");
    let _ = fs::remove_dir_all(&root);
    let st = Command::new("cp")
        .arg("-a")
        .arg(image_dir.join(&m.artifacts.modules))
        .arg(&root)
        .status()?;
    if !st.success() {
        bail!("copying the image's modules");
    }
    let extra = root
        .join("lib/modules")
        .join(&m.kernel_release)
        .join("extra");
    fs::create_dir_all(&extra)?;
    let ko = format!("{BENCH_MODULE}.ko");
    fs::copy(mdir.join(&ko), extra.join(&ko))?;
    let copy_s = t_copy.elapsed().as_secs_f64();
    let initrd = scratch.join("initramfs.cpio");
    let sh = Shell::new()?;
    deps::ensure_debs(&sh, besser_lab::assets::HOST_DEBS)?;
    // Not part of the loop: another engineer's VM.
    let waited = wait_vm_lock_free();
    if waited.as_secs_f64() > 1.0 {
        eprintln!(
            "{name}: waited {:.1} s for another VM (not counted)",
            waited.as_secs_f64()
        );
    }
    let t1 = Instant::now();
    make_initramfs(&sh, spec.arch, &root, &[BENCH_MODULE], Vec::new(), &initrd)?;
    let image = besser_lab::assets::VmImage {
        arch: spec.arch,
        kernel: image_dir.join(&m.artifacts.kernel),
        initrd,
        kernel_release: Some(m.kernel_release.clone()),
        data_link: besser_lab::assets::DataLink::Virtio,
    };
    let keys = besser_lab::assets::lab_keys(&crate::lab::target_dir())?;
    let vm = besser_lab::vm::Vm::boot(&besser_lab::vm::VmOptions {
        image: &image,
        keys: &keys,
        dir: &scratch.join("vm"),
        detached: false,
    })?;
    let mut t = Transport::connect(&vm.device().wired)?;
    let dmesg = t
        .exec("dmesg", Duration::from_secs(BOOT_TEST_CMD_TIMEOUT_S))?
        .stdout_str();
    drop(vm);
    let boot_s = copy_s + t1.elapsed().as_secs_f64();
    if !dmesg.contains(BENCH_MODULE_MARKER) {
        bail!("{name}: the bench module did not load (no `{BENCH_MODULE_MARKER}` in dmesg)");
    }
    Ok((build_s, boot_s))
}

fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// `cargo xtask test --all`: the arm64 boards. qemu-arm64 in both flavours
/// is built and boot-tested under TCG arm64 (the same driver checks as
/// x86_64) and ramps one rep through bes2600 over the simulated air; the
/// pinetab2 images are built (bes2600.ko for the tablet; nothing boots them
/// here).
pub fn matrix_steps() -> Vec<Step> {
    let boot = |name: &'static str, f: Flavour| {
        Step::new(name, move |sh| {
            let dir = build_image(sh, Board::QemuArm64, f, default_jobs())?;
            boot_test(sh, &dir)
        })
    };
    let build = |name: &'static str, f: Flavour| {
        Step::new(name, move |sh| {
            let dir = build_image(sh, Board::Pinetab2, f, default_jobs())?;
            let m = Manifest::load(&dir)?;
            let d = m.driver.as_ref().context("no bes2600.ko in the manifest")?;
            ensure!(
                d.sdio_sim.is_none(),
                "the simulated host is for QEMU boards only"
            );
            ensure!(
                m.verify(&dir).is_empty(),
                "{}: files differ from manifest.json",
                dir.display()
            );
            eprintln!("{}: bes2600.ko srcversion {}", dir.display(), d.srcversion);
            Ok(())
        })
    };
    vec![
        boot(
            "image: qemu-arm64 release: build + boot test",
            Flavour::Release,
        ),
        boot(
            "image: qemu-arm64 prove-locking: build + boot test",
            Flavour::ProveLocking,
        ),
        Step::new(
            "image: qemu-arm64 release: 1-rep 5-s lab ramp through bes2600",
            |sh| {
                let dir = build_image(sh, Board::QemuArm64, Flavour::Release, default_jobs())?;
                let image = besser_lab::assets::image_from_dir(&dir)?;
                let run = besser_lab_e2e::ramp::fresh_boot_ramp(
                    &crate::lab::target_dir(),
                    &image,
                    1,
                    5.0,
                )?;
                let _ = fs::remove_dir_all(run.parent().unwrap_or(&run));
                Ok(())
            },
        ),
        build(
            "image: pinetab2 release: build (bes2600.ko for the tablet)",
            Flavour::Release,
        ),
        build(
            "image: pinetab2 prove-locking: build",
            Flavour::ProveLocking,
        ),
    ]
}

/// The flash cases on the A/B virtual device, booted from the qemu-arm64
/// release image (built if needed).
pub fn flash_e2e(sh: &Shell) -> Result<besser_lab_e2e::flash::FlashE2e> {
    let (dir, image, keys, _) = ab_vm_inputs(sh)?;
    besser_lab_e2e::flash::flash_cases_on_the_ab_vm(&crate::lab::target_dir(), &dir, &image, &keys)
}

/// What the A/B virtual device boots: the qemu-arm64 release image (built
/// if needed), the lab keys, and the host tools; and the seconds waited for
/// another VM first.
fn ab_vm_inputs(
    sh: &Shell,
) -> Result<(
    PathBuf,
    besser_lab::assets::VmImage,
    besser_lab::assets::LabKeys,
    f64,
)> {
    deps::ensure_debs(
        sh,
        &[
            "u-boot-qemu",
            "u-boot-tools",
            "fdisk",
            "dosfstools",
            "mtools",
            "qemu-system-arm",
        ],
    )?;
    let dir = build_image(sh, Board::QemuArm64, Flavour::Release, default_jobs())?;
    let image = besser_lab::assets::image_from_dir(&dir)?;
    let keys = besser_lab::assets::lab_keys(&crate::lab::target_dir())?;
    let waited = wait_vm_lock_free().as_secs_f64();
    if waited > 1.0 {
        eprintln!("waited {waited:.1} s for another VM");
    }
    Ok((dir, image, keys, waited))
}

/// `cargo xtask bench flash`: the qemu-arm64 release image flashed whole
/// and `--module-only` onto a fresh A/B virtual device, one run.
pub fn bench_flash() -> Result<()> {
    let sh = Shell::new()?;
    let (dir, image, keys, waited) = ab_vm_inputs(&sh)?;
    let b = besser_lab_e2e::flash::bench_flash(&crate::lab::target_dir(), &dir, &image, &keys)?;
    println!(
        "\nflash on the A/B virtual device (qemu-arm64 under TCG, U-Boot; waited {:.1} s for another VM, not counted; boot to SSH through U-Boot {:.1} s)",
        waited,
        b.boot_to_ssh_s
    );
    println!("\n| flash | copy (s) | reboot (s) | verify (s) | total (s) | bytes copied | image bytes | copied / image |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, r) in [("whole image", &b.full), ("--module-only", &b.module)] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {:.4} |",
            r.copy_s,
            r.reboot_s,
            r.verify_s,
            r.copy_s + r.reboot_s + r.verify_s,
            r.bytes_copied,
            b.image_bytes,
            r.bytes_copied as f64 / b.image_bytes.max(1) as f64
        );
    }
    println!(
        "--module-only copied {} bytes for a {}-byte module: {}",
        b.module.bytes_copied,
        b.module_file_bytes,
        if b.module.bytes_copied == b.module_file_bytes {
            "only the module"
        } else {
            "MORE than the module"
        }
    );
    println!(
        "Not measured: a real device's storage and wired link (the virtual device's disk is a host file, its link loopback); \
         the whole-image copy includes the modules tree, which the appliance does not load from the slot."
    );
    Ok(())
}

/// CI builds and boot-tests the virtual lab board in both flavours (cached
/// across runs on one machine, cold on a fresh one); the full matrix is
/// `cargo xtask image --all --boot-test`.
pub fn test_steps() -> Vec<Step> {
    let step = |name: &'static str, f: Flavour| {
        Step::new(name, move |sh| {
            let dir = build_image(sh, Board::QemuX86_64, f, default_jobs())?;
            boot_test(sh, &dir)
        })
    };
    vec![
        step(
            "image: qemu-x86_64 release: build + boot test",
            Flavour::Release,
        ),
        step(
            "image: qemu-x86_64 prove-locking: build + boot test",
            Flavour::ProveLocking,
        ),
        // Issue 4's `lab ramp --image target/images/qemu-x86_64-prove-locking`:
        // the lab's own e2e ramp (fresh boot under the VM lock, 1 rep of 5 s)
        // on our kernel. It fails unless bytes arrive, the workqueue ftrace
        // event was enabled and traced, boot_id/uptime read, and the kernel
        // log shows no splat (the same classifier as the boot test).
        Step::new(
            "image: qemu-x86_64 prove-locking: 1-rep 5-s lab ramp on the built image",
            |sh| {
                let dir =
                    build_image(sh, Board::QemuX86_64, Flavour::ProveLocking, default_jobs())?;
                let image = besser_lab::assets::image_from_dir(&dir)?;
                ensure!(
                    image.data_link == besser_lab::assets::DataLink::SimulatedAir,
                    "{}: no simulated SDIO host in the manifest, so no ramp through bes2600",
                    dir.display()
                );
                let run =
                    besser_lab_e2e::ramp::fresh_boot_ramp(&crate::lab::target_dir(), &image, 1, 5.0)
                        .with_context(|| format!("lab ramp on {}", dir.display()))?;
                // The bytes the e2e counted crossed bes2600: the rep's kernel
                // log says wlan0 associated over the simulated air.
                let dmesg = fs::read_to_string(run.join("rep-1").join("dmesg.txt"))?;
                let air = dmesg
                    .lines()
                    .find(|l| l.contains(besser_lab::appliance::AIR_MARKER))
                    .unwrap_or("");
                ensure!(
                    air.contains("Connected to 02:be:57:00:00:01 (on wlan0)"),
                    "rep 1: wlan0 did not associate over the simulated air (kernel log: {air:?})"
                );
                eprintln!("{}", air.trim());
                eprintln!(
                    "{}",
                    fs::read_to_string(run.join("report.md"))?
                        .lines()
                        .take(16)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                let _ = fs::remove_dir_all(run.parent().unwrap_or(&run));
                Ok(())
            },
        ),
        Step::new(
            "image: qemu-x86_64 release: chip-model faults from the lab (CRC, stale control byte, lost confirm, firmware exception, Bug #5) recovered or failed cleanly, recorded",
            |sh| {
                let dir = build_image(sh, Board::QemuX86_64, Flavour::Release, default_jobs())?;
                let image = besser_lab::assets::image_from_dir(&dir)?;
                for l in besser_lab_e2e::ramp::chip_faults(&crate::lab::target_dir(), &image)? {
                    eprintln!("  {l}");
                }
                Ok(())
            },
        ),
        // The report's no-splat receipt on a lockdep kernel is only worth
        // something if it unticks: plant the pending_record_lock shape.
        Step::new(
            "image: qemu-x86_64 prove-locking: a planted SOFTIRQ-safe -> SOFTIRQ-unsafe inversion unticks the report's no-splat receipt",
            |sh| {
                let dir =
                    build_image(sh, Board::QemuX86_64, Flavour::ProveLocking, default_jobs())?;
                let image = besser_lab::assets::image_from_dir(&dir)?;
                let run = besser_lab_e2e::ramp::planted_inversion_is_reported(
                    &crate::lab::target_dir(),
                    &image,
                    besser_lab::appliance::LOCK_PLANT_KO,
                )?;
                let md = fs::read_to_string(run.join("report.md"))?;
                for l in md.lines().filter(|l| l.contains("SOFTIRQ") || l.contains("no WARN/BUG")) {
                    eprintln!("{l}");
                }
                let _ = fs::remove_dir_all(run.parent().unwrap_or(&run));
                Ok(())
            },
        ),
        Step::new(
            "image: qemu-arm64 release: flash on the A/B virtual device (U-Boot): good image, panicking kernel falls back, interrupted copy, tampered manifest, no space",
            |sh| {
                let e = flash_e2e(sh)?;
                eprintln!(
                    "A/B virtual device: boot to SSH through U-Boot {:.1} s; good flash: copy {:.1} s, reboot {:.1} s, verify {:.1} s, {} of the image's {} bytes copied",
                    e.boot_to_ssh_s, e.good.copy_s, e.good.reboot_s, e.good.verify_s, e.good.bytes_copied, e.image_bytes
                );
                Ok(())
            },
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build tree's output rewritten after besser's last `make` (what a
    /// hand-run `make CLIPPY=1 rust/` does to `rust/kernel.o`) changes the
    /// fingerprint the stamp keeps; an untouched tree keeps it.
    #[test]
    fn a_tree_touched_behind_bessers_back_is_not_cached() -> Result<()> {
        let root = std::env::temp_dir().join(format!("besser-tree-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("rust"))?;
        for f in TREE_OUTPUTS {
            fs::write(root.join(f), b"built")?;
        }
        let before = tree_outputs(&root, "bzImage");
        assert!(before.contains("bzImage missing"), "{before}");
        assert_eq!(tree_outputs(&root, "bzImage"), before);
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(root.join("rust/kernel.o"), b"built")?;
        assert_ne!(
            tree_outputs(&root, "bzImage"),
            before,
            "same size, new mtime"
        );
        fs::remove_dir_all(&root)?;
        Ok(())
    }

    /// A board's pinned source, from a local `file://` URL and a plain path:
    /// the right sha256 puts it in the cache (and a second fetch reuses it),
    /// a wrong one is refused naming both sums and leaves no file behind.
    #[test]
    fn pinned_source_is_verified_before_use() -> Result<()> {
        let root = std::env::temp_dir().join(format!("besser-pin-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root)?;
        let tarball = root.join("linux-test.tar.xz");
        fs::write(&tarball, b"not really a kernel")?;
        let right = besser_image::sha256_hex(b"not really a kernel");
        let url = format!("file://{}", tarball.display());
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        let sh = Shell::new()?;
        let cache = root.join("cache");

        let wrong = board::SourcePin {
            url: leak(url.clone()),
            sha256: leak("0".repeat(64)),
        };
        let e = fetch_pinned(&sh, &wrong, &cache).unwrap_err().to_string();
        assert!(e.contains(&right) && e.contains(&"0".repeat(64)), "{e}");
        assert_eq!(fs::read_dir(&cache)?.count(), 0, "a refused tarball stays");

        for u in [url.as_str(), tarball.to_str().unwrap()] {
            let pin = board::SourcePin {
                url: leak(u.to_string()),
                sha256: leak(right.to_uppercase()),
            };
            let got = fetch_pinned(&sh, &pin, &cache)?;
            assert_eq!(got, cache.join(pin.cache_name()));
            assert_eq!(fs::read(&got)?, b"not really a kernel");
            assert_eq!(fetch_pinned(&sh, &pin, &cache)?, got);
        }
        let ftp = board::SourcePin {
            url: "ftp://example.invalid/linux.tar.xz",
            sha256: leak(right.clone()),
        };
        assert!(fetch_pinned(&sh, &ftp, &cache).is_err());
        fs::remove_dir_all(&root)?;
        Ok(())
    }
}
