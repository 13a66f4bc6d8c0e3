//! Driver tasks: the `no_std` build check, fuzzing and the driver benchmark.

use anyhow::{bail, Result};
use clap::Parser;
use xshell::cmd;

use crate::test::Step;

#[derive(Parser)]
pub struct FuzzArgs {
    /// Seconds per fuzz target.
    #[arg(long, default_value_t = 60)]
    time: u64,
}

#[derive(Parser)]
pub struct BenchArgs {}

pub fn fuzz(_args: FuzzArgs) -> Result<()> {
    bail!("cargo xtask fuzz: not built yet (issue 3)")
}

pub fn bench(_args: BenchArgs) -> Result<()> {
    bail!("cargo xtask bench driver: not built yet (issue 3)")
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
            "driver: simulator firmware model builds for a bare-metal target",
            |sh| {
                crate::deps::ensure_rustup_target(sh, "x86_64-unknown-none")?;
                cmd!(sh, "cargo build --quiet -p bes2600-sim --target x86_64-unknown-none --no-default-features").run()?;
                Ok(())
            },
        ),
    ]
}
