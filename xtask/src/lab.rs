//! `cargo xtask lab`: the test lab commands (thin CLI over the `besser-lab` crate).

use anyhow::{bail, Result};
use clap::Parser;

use crate::test::Step;

#[derive(Parser)]
pub struct Args {}

#[derive(Parser)]
pub struct BenchArgs {}

pub fn run(_args: Args) -> Result<()> {
    bail!("cargo xtask lab: not built yet (issue 2)")
}

pub fn bench(_args: BenchArgs) -> Result<()> {
    bail!("cargo xtask bench lab: not built yet (issue 2)")
}

pub fn test_steps() -> Vec<Step> {
    Vec::new()
}
