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
            "driver: core compiles with bare rustc, no cargo (as Kbuild will include it)",
            |sh| {
                crate::deps::ensure_rustup_target(sh, "x86_64-unknown-none")?;
                let out = crate::project_root().join("target").join("kbuild-check");
                std::fs::create_dir_all(&out)?;
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
        Step::new("driver: fuzz targets, briefly (0 crashes)", |sh| {
            let targets: Vec<String> = FUZZ_TARGETS.iter().map(|s| s.to_string()).collect();
            run_fuzz(sh, CI_FUZZ_TIME_S, &targets)
        }),
    ]
}
