//! `cargo xtask image`: Rust-enabled kernel images per board and flavour.

use anyhow::{bail, Result};
use clap::Parser;

use crate::test::Step;

#[derive(Parser)]
pub struct Args {}

#[derive(Parser)]
pub struct BenchArgs {}

pub fn run(_args: Args) -> Result<()> {
    bail!("cargo xtask image: not built yet (issue 4)")
}

pub fn bench(_args: BenchArgs) -> Result<()> {
    bail!("cargo xtask bench image: not built yet (issue 4)")
}

pub fn test_steps() -> Vec<Step> {
    Vec::new()
}
