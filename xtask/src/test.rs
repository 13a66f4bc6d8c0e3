//! `cargo xtask test`: every test of the project, in the order CI runs them.
//!
//! Each area contributes its steps (`driver::test_steps`, `lab::test_steps`,
//! `image::test_steps`); this module only filters, runs and tallies them.

use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use xshell::{cmd, Shell};

#[derive(Parser)]
pub struct Args {
    /// Run only the steps whose name contains one of these strings.
    #[arg(long)]
    only: Vec<String>,
    /// Skip the steps whose name contains one of these strings.
    #[arg(long)]
    skip: Vec<String>,
    /// List the steps and exit.
    #[arg(long)]
    list: bool,
    /// Stop at the first failing step.
    #[arg(long)]
    fail_fast: bool,
    /// Also the long matrix: arm64 images (qemu-arm64 built and booted
    /// under TCG with a ramp through bes2600, pinetab2 built), about 15 min
    /// more on 2 cores, cold.
    #[arg(long)]
    all: bool,
}

/// One named step of the test run.
pub struct Step {
    pub name: &'static str,
    pub run: Box<dyn Fn(&Shell) -> Result<()>>,
}

impl Step {
    pub fn new(name: &'static str, run: impl Fn(&Shell) -> Result<()> + 'static) -> Step {
        Step {
            name,
            run: Box::new(run),
        }
    }
}

fn workspace_steps() -> Vec<Step> {
    vec![
        Step::new("workspace: fmt", |sh| {
            cmd!(sh, "cargo fmt --all -- --check").run()?;
            Ok(())
        }),
        Step::new(
            "workspace: tidy (stubs, SAFETY comments, addresses, code map)",
            |sh| crate::tidy::run(sh),
        ),
        Step::new("workspace: unit and integration tests", |sh| {
            cmd!(sh, "cargo test --workspace --all-targets --quiet").run()?;
            Ok(())
        }),
    ]
}

fn all_steps(long: bool) -> Vec<Step> {
    let mut steps = workspace_steps();
    steps.extend(crate::driver::test_steps());
    steps.extend(crate::packaging::test_steps());
    steps.extend(crate::lab::test_steps());
    steps.extend(crate::image::test_steps());
    if long {
        steps.extend(crate::image::matrix_steps());
    }
    steps
}

pub fn run(args: Args) -> Result<()> {
    let sh = Shell::new()?;
    sh.change_dir(crate::project_root());
    let steps: Vec<Step> = all_steps(args.all)
        .into_iter()
        .filter(|s| args.only.is_empty() || args.only.iter().any(|o| s.name.contains(o.as_str())))
        .filter(|s| !args.skip.iter().any(|o| s.name.contains(o.as_str())))
        .collect();
    if args.list {
        for s in &steps {
            println!("{}", s.name);
        }
        return Ok(());
    }
    let (mut passed, mut failed) = (0usize, Vec::new());
    for step in &steps {
        eprintln!("\n==> {}", step.name);
        let t0 = Instant::now();
        match (step.run)(&sh) {
            Ok(()) => {
                passed += 1;
                eprintln!(
                    "==> ok: {} ({:.1} s)",
                    step.name,
                    t0.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                eprintln!(
                    "==> FAILED: {} ({:.1} s): {e:#}",
                    step.name,
                    t0.elapsed().as_secs_f64()
                );
                failed.push(step.name);
                if args.fail_fast {
                    break;
                }
            }
        }
    }
    println!();
    for f in &failed {
        println!("failed step: {f}");
    }
    println!("steps: {} passed, {} failed", passed, failed.len());
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("{} test step(s) failed", failed.len())
    }
}
