//! `cargo xtask`: besser's one entry point (matklad's cargo-xtask convention).
//!
//! Every user-facing command lives here as Rust code; shell commands go
//! through `xshell::cmd!`, where each `{arg}` is one argv item (no shell).

mod bench;
mod bench_kmod;
mod deps;
mod driver;
mod image;
mod lab;
mod test;
mod tidy;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "besser: build, lab and test tasks")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build Rust-enabled kernel images per board and flavour.
    Image(image::Args),
    /// The test lab: virtual device, stress ramps, captures, reports.
    Lab(lab::Args),
    /// Run every test (what CI runs).
    Test(test::Args),
    /// Benchmarks that print side-by-side ratios measured in one run.
    Bench(bench::Args),
    /// Run the driver's fuzz targets briefly.
    Fuzz(driver::FuzzArgs),
    /// Mutation testing of the driver core's policy and accounting code.
    Mutants(driver::MutantsArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Image(a) => image::run(a),
        Cmd::Lab(a) => lab::run(a),
        Cmd::Test(a) => test::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Fuzz(a) => driver::fuzz(a),
        Cmd::Mutants(a) => driver::mutants(a),
    }
}

/// The workspace root (parent of `xtask/`).
pub fn project_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
