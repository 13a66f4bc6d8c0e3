//! Driver tasks: the `no_std` build checks, the loom model, fuzzing and the
//! driver benchmark.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use xshell::{cmd, Shell};

use crate::test::Step;

/// cargo-fuzz release we install (pinned; cached under ~/.cache/besser/tools).
const CARGO_FUZZ_VERSION: &str = "0.13.1";
/// The cargo-fuzz crate, relative to the workspace root (its own workspace).
const FUZZ_DIR: &str = "driver/fuzz";
/// Fuzz targets (driver/fuzz/fuzz_targets/*.rs).
const FUZZ_TARGETS: &[&str] = &["wsm_decode", "sdio_extract", "bh_rx"];
/// Seconds per target in `cargo xtask test` (CI); `cargo xtask fuzz` defaults to 60.
const CI_FUZZ_TIME_S: u64 = 20;
/// cargo-mutants release we install (pinned; cached under ~/.cache/besser/tools).
const CARGO_MUTANTS_VERSION: &str = "27.1.0";
/// Files whose mutants must all be caught (the lessons' policy and
/// accounting): `cargo xtask mutants` and CI.
const MUTANTS_STRICT: &[&str] = &["driver/core/src/scan.rs", "driver/core/src/credits.rs"];
/// Further files of `cargo xtask mutants --all`; survivors are listed and
/// justified in the modules' docs.
const MUTANTS_MORE: &[&str] = &["driver/core/src/pm.rs", "driver/core/src/bh.rs"];
/// Of bh.rs, `--all` mutates the credit and sequence paths only (the rest
/// is framing, covered by vectors and fuzzing): a regex on mutant names.
const MUTANTS_RE: &str = r"(scan|credits|pm)\.rs|bh\.rs.* in (IrqLine::|BhContext::(release|tx_confirm|cmd_confirm|dispatch|check_timeouts|reset|next_deadline))";

#[derive(Parser)]
pub struct MutantsArgs {
    /// Also pm.rs and the credit/sequence paths of bh.rs.
    #[arg(long)]
    all: bool,
}

#[derive(Parser)]
pub struct FuzzArgs {
    /// Seconds per fuzz target.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Only these targets (default: all).
    #[arg(long)]
    target: Vec<String>,
}

#[derive(Parser)]
pub struct BenchArgs {}

fn shell() -> Result<Shell> {
    let sh = Shell::new()?;
    sh.change_dir(crate::project_root());
    Ok(sh)
}

/// Installs cargo-fuzz and a C++ compiler (libFuzzer is C++).
fn ensure_fuzz_tools(sh: &Shell) -> Result<PathBuf> {
    crate::deps::ensure_debs(sh, &["g++"])?;
    crate::deps::ensure_cargo_tool(sh, "cargo-fuzz", CARGO_FUZZ_VERSION, "cargo-fuzz")
}

/// Runs every target for `time_s` seconds. Only stable rustc exists here:
/// `RUSTC_BOOTSTRAP=1` lets cargo-fuzz pass its `-Z` flags (AddressSanitizer,
/// sanitizer coverage) to it.
fn run_fuzz(sh: &Shell, time_s: u64, targets: &[String]) -> Result<()> {
    let fuzz = ensure_fuzz_tools(sh)?;
    let root = crate::project_root();
    let dir = root.join(FUZZ_DIR);
    let max_time = format!("-max_total_time={time_s}");
    let _env = sh.push_env("RUSTC_BOOTSTRAP", "1");
    cmd!(sh, "{fuzz} build -O --fuzz-dir {dir}")
        .run()
        .context("building the fuzz targets")?;
    let mut summary = Vec::new();
    for t in targets {
        let corpus = dir.join("corpus").join(t);
        std::fs::create_dir_all(&corpus)?;
        eprintln!("fuzzing {t} for {time_s} s");
        let out = cmd!(
            sh,
            "{fuzz} run -O --fuzz-dir {dir} {t} {corpus} -- {max_time} -print_final_stats=1"
        )
        .ignore_status()
        .output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let runs = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("Done "))
            .filter_map(|l| l.split_whitespace().next())
            .last()
            .unwrap_or("?")
            .to_string();
        if !out.status.success() {
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            bail!(
                "fuzz target {t} failed (crash artifacts in {}/artifacts/{t})",
                dir.display()
            );
        }
        // libFuzzer's last status line: "#N DONE cov: C ft: F corp: K/Sb ..."
        let done = stderr
            .lines()
            .rfind(|l| l.split_whitespace().nth(1) == Some("DONE"))
            .map(|l| {
                let field = |name: &str| {
                    l.split_whitespace()
                        .skip_while(|w| *w != name)
                        .nth(1)
                        .unwrap_or("?")
                        .to_string()
                };
                format!(
                    ", coverage {} edges, corpus {}",
                    field("cov:"),
                    field("corp:")
                )
            })
            .unwrap_or_default();
        summary.push(format!("{t}: {runs} runs in {time_s} s{done}, 0 crashes"));
    }
    for s in summary {
        println!("{s}");
    }
    Ok(())
}

pub fn fuzz(args: FuzzArgs) -> Result<()> {
    let sh = shell()?;
    let targets: Vec<String> = if args.target.is_empty() {
        FUZZ_TARGETS.iter().map(|s| s.to_string()).collect()
    } else {
        for t in &args.target {
            if !FUZZ_TARGETS.contains(&t.as_str()) {
                bail!(
                    "unknown fuzz target {t:?}; targets: {}",
                    FUZZ_TARGETS.join(", ")
                );
            }
        }
        args.target
    };
    run_fuzz(&sh, args.time, &targets)
}

/// Runs cargo-mutants over `files`, killing with the core's and the
/// simulator's tests. Returns the survivors ("MISSED" lines) per file.
fn run_mutants(sh: &Shell, files: &[&str], re: Option<&str>) -> Result<Vec<String>> {
    let tool = crate::deps::ensure_cargo_tool(
        sh,
        "cargo-mutants",
        CARGO_MUTANTS_VERSION,
        "cargo-mutants",
    )?;
    let out = crate::project_root().join("target").join("mutants");
    let mut args: Vec<String> = vec![
        "mutants".into(),
        "--package".into(),
        "bes2600-core".into(),
        "--test-package".into(),
        "bes2600-core".into(),
        "--test-package".into(),
        "bes2600-sim".into(),
        "--output".into(),
        out.display().to_string(),
        "--no-shuffle".into(),
        "--timeout-multiplier".into(),
        "3".into(),
    ];
    for f in files {
        args.push("--file".into());
        args.push((*f).into());
    }
    if let Some(re) = re {
        args.push("--re".into());
        args.push(re.into());
    }
    // Exit status 2 means "some mutants survived": read the lists instead.
    let status = cmd!(sh, "{tool} {args...}").ignore_status().output()?;
    let dir = out.join("mutants.out");
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let caught = read("caught.txt").lines().count();
    let missed: Vec<String> = read("missed.txt").lines().map(str::to_string).collect();
    let timeout = read("timeout.txt").lines().count();
    let unviable = read("unviable.txt").lines().count();
    println!(
        "mutants over {}: {caught} caught, {} missed, {timeout} timed out (counted as caught), {unviable} unviable",
        files.join(", "),
        missed.len()
    );
    if caught + missed.len() + timeout + unviable == 0 {
        bail!(
            "cargo-mutants produced no results (exit {:?}):\n{}",
            status.status.code(),
            String::from_utf8_lossy(&status.stderr)
        );
    }
    Ok(missed)
}

/// `cargo xtask mutants [--all]`.
pub fn mutants(args: MutantsArgs) -> Result<()> {
    let sh = shell()?;
    let mut files: Vec<&str> = MUTANTS_STRICT.to_vec();
    if args.all {
        files.extend_from_slice(MUTANTS_MORE);
    }
    let missed = run_mutants(&sh, &files, args.all.then_some(MUTANTS_RE))?;
    for m in &missed {
        println!("  survived: {m}");
    }
    let strict: Vec<&String> = missed
        .iter()
        .filter(|m| MUTANTS_STRICT.iter().any(|f| m.starts_with(f)))
        .collect();
    if !strict.is_empty() {
        bail!(
            "{} mutant(s) survive in {} (must be 0)",
            strict.len(),
            MUTANTS_STRICT.join(" / ")
        );
    }
    Ok(())
}

/// Linux 6.12's `rust_common_flags` and `KBUILD_RUSTFLAGS` (top-level
/// `Makefile` 432-455, 580-586, 825, 833-834), less the `-Z` flags stable
/// rustc refuses (`-Zbinary_dep_depinfo`, `-Zfunction-sections`).
const KERNEL_RUSTFLAGS: &str = "--edition=2021 -Astable_features -Aunused_features \
    -Dnon_ascii_idents -Dunsafe_op_in_unsafe_fn -Wmissing_docs -Wrust_2018_idioms \
    -Wunreachable_pub -Wclippy::all -Aclippy::collapsible_if -Aclippy::collapsible_match \
    -Wclippy::ignored_unit_patterns -Wclippy::mut_mut -Wclippy::needless_bitwise_bool \
    -Aclippy::needless_lifetimes -Wclippy::no_mangle_with_rust_abi \
    -Wclippy::undocumented_unsafe_blocks -Aclippy::uninlined_format_args \
    -Wclippy::unnecessary_safety_comment -Wclippy::unnecessary_safety_doc \
    -Aclippy::unwrap_or_default -Wrustdoc::missing_crate_level_docs \
    -Wrustdoc::unescaped_backticks -Cpanic=abort -Cembed-bitcode=n -Clto=n \
    -Cforce-unwind-tables=n -Ccodegen-units=1 -Csymbol-mangling-version=v0 \
    -Crelocation-model=static -Wclippy::float_arithmetic -Copt-level=2 \
    -Cdebug-assertions=n -Coverflow-checks=y";

/// The core's modules, mounted as `driver/kmod` will mount them: by path,
/// inside a private module of a crate whose root is not the core's lib.rs.
const CORE_MODULES: &[&str] = &[
    "bh", "credits", "fwload", "pm", "queue", "scan", "sdio", "wsm",
];

/// Writes the kernel-shaped crate root (absolute `#[path]`s, so it can live
/// under `target/`) and returns its path.
fn write_mount_root(out: &std::path::Path) -> Result<PathBuf> {
    let src = crate::project_root().join("driver/core/src");
    let mut text = String::from(
        "//! Kernel-shaped crate root written by `cargo xtask test`: the driver\n\
         //! core mounted by path into a private module, as `driver/kmod` does.\n\
         #![no_std]\n\
         // A stand-in that uses none of the core; the module uses what it needs.\n\
         #![allow(dead_code)]\n\n\
         // The core's `pub` is its API toward the module, not the crate's.\n\
         #[allow(unreachable_pub)]\n\
         mod bes2600_core {\n",
    );
    for m in CORE_MODULES {
        text.push_str(&format!(
            "    #[path = \"{}\"]\n    pub(crate) mod {m};\n",
            src.join(format!("{m}.rs")).display()
        ));
    }
    text.push_str("}\n");
    let root = out.join("kmod_root.rs");
    std::fs::write(&root, text).with_context(|| format!("writing {}", root.display()))?;
    Ok(root)
}

pub fn bench(_args: BenchArgs) -> Result<()> {
    let sh = shell()?;
    cmd!(
        sh,
        "cargo run --quiet --release -p bes2600-sim --bin driver-bench"
    )
    .run()?;
    Ok(())
}

pub fn test_steps() -> Vec<Step> {
    vec![
        Step::new(
            "driver: core builds for a bare-metal target (no std, no alloc)",
            |sh| {
                crate::deps::ensure_rustup_target(sh, "x86_64-unknown-none")?;
                cmd!(sh, "cargo build --quiet -p bes2600-core --target x86_64-unknown-none --no-default-features").run()?;
                Ok(())
            },
        ),
        Step::new(
            "driver: core mounted in a kernel-shaped crate, Linux 6.12's Rust flags and lints, -D warnings",
            |sh| {
                crate::deps::ensure_rustup_target(sh, "x86_64-unknown-none")?;
                crate::deps::ensure_rustup_component(sh, "clippy")?;
                let out = crate::project_root().join("target").join("kbuild-check");
                std::fs::create_dir_all(&out)?;
                let root = write_mount_root(&out)?;
                let flags: Vec<&str> = KERNEL_RUSTFLAGS.split_whitespace().collect();
                // clippy-driver is rustc plus the kernel's clippy lints.
                cmd!(sh, "clippy-driver {flags...} -D warnings --crate-type rlib --crate-name bes2600 --target x86_64-unknown-none --out-dir {out} {root}").run()?;
                // And the core's own crate root, as cargo builds it.
                cmd!(sh, "rustc --edition 2021 --crate-type rlib --crate-name bes2600_core --target x86_64-unknown-none -C panic=abort -D warnings --out-dir {out} driver/core/src/lib.rs").run()?;
                Ok(())
            },
        ),
        Step::new(
            "driver: simulator firmware model builds for a bare-metal target",
            |sh| {
                crate::deps::ensure_rustup_target(sh, "x86_64-unknown-none")?;
                cmd!(sh, "cargo build --quiet -p bes2600-sim --target x86_64-unknown-none --no-default-features").run()?;
                Ok(())
            },
        ),
        Step::new(
            "driver: loom model of the IRQ -> bh hand-off and TX submit (relay caught)",
            |sh| {
                // Own target dir: `--cfg loom` rebuilds everything it touches.
                cmd!(sh, "cargo test --quiet -p bes2600-sim --test loom --release --target-dir target/loom -- --nocapture")
                    .env("RUSTFLAGS", "--cfg loom")
                    .run()?;
                Ok(())
            },
        ),
        Step::new(
            "driver: mutants in scan.rs and credits.rs all caught (cargo-mutants)",
            |sh| {
                let missed = run_mutants(sh, MUTANTS_STRICT, None)?;
                if !missed.is_empty() {
                    for m in &missed {
                        eprintln!("  survived: {m}");
                    }
                    bail!("{} mutant(s) survive", missed.len());
                }
                Ok(())
            },
        ),
        Step::new("driver: fuzz targets, briefly (0 crashes)", |sh| {
            let targets: Vec<String> = FUZZ_TARGETS.iter().map(|s| s.to_string()).collect();
            run_fuzz(sh, CI_FUZZ_TIME_S, &targets)
        }),
    ]
}
