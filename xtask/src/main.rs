//! `cargo xtask`: besser's one entry point (matklad's cargo-xtask convention).
//!
//! Every user-facing command lives here as Rust code; shell commands go
//! through `xshell::cmd!`, where each `{arg}` is one argv item (no shell).

mod bench;
mod bench_kmod;
mod deps;
mod driver;
mod farm;
mod flash;
mod image;
mod lab;
mod maskrom;
mod packaging;
mod progress;
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
    /// Put a built image on a lab device's inactive A/B slot (one try, falls back by itself).
    Flash(flash::Args),
    /// The test lab: virtual device, stress ramps, captures, reports.
    Lab(lab::Args),
    /// Keep the Nix flake and the Yocto layer in step with kernel-patches/.
    Packaging(packaging::Args),
    /// Run every test (what CI runs).
    Test(test::Args),
    /// Benchmarks that print side-by-side ratios measured in one run.
    Bench(bench::Args),
    /// Run the driver's fuzz targets briefly.
    Fuzz(driver::FuzzArgs),
    /// Mutation testing of the driver core's policy and accounting code.
    Mutants(driver::MutantsArgs),
}

fn main() -> std::process::ExitCode {
    // A user-facing error is its cause chain; a backtrace only when asked
    // (RUST_BACKTRACE may be set machine-wide for other reasons).
    if std::env::var_os("BESSER_BACKTRACE").is_some() {
        std::env::set_var("RUST_LIB_BACKTRACE", "1");
    } else {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    // The lab's waits are drawn for the interactive commands; the test
    // steps keep the lab silent (their own step lines are the output).
    if !matches!(cli.cmd, Cmd::Test(_)) {
        progress::install();
    }
    let r = match cli.cmd {
        Cmd::Image(a) => image::run(a),
        Cmd::Flash(a) => flash::run(a),
        Cmd::Lab(a) => lab::run(a),
        Cmd::Packaging(a) => packaging::run(a),
        Cmd::Test(a) => test::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Fuzz(a) => driver::fuzz(a),
        Cmd::Mutants(a) => driver::mutants(a),
    };
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `Error: …` and its causes, one per line (anyhow's layout), then the
/// backtrace if one was captured (`BESSER_BACKTRACE=1`).
fn error_text(e: &anyhow::Error) -> String {
    let mut s = format!("Error: {e}");
    let causes: Vec<String> = e.chain().skip(1).map(|c| c.to_string()).collect();
    if !causes.is_empty() {
        s.push_str("\n\nCaused by:");
        for (i, c) in causes.iter().enumerate() {
            s.push_str(&format!("\n    {i}: {c}"));
        }
    }
    let bt = e.backtrace();
    if bt.status() == std::backtrace::BacktraceStatus::Captured {
        s.push_str(&format!("\n\nBacktrace:\n{bt}"));
    }
    s
}

/// The workspace root (parent of `xtask/`).
/// The besser tree the commands work on: `$BESSER_ROOT` (the Nix package
/// sets it to the sources it ships), else the checkout xtask was built in.
pub fn project_root() -> std::path::PathBuf {
    if let Some(r) = std::env::var_os("BESSER_ROOT") {
        return std::path::PathBuf::from(r);
    }
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_is_its_cause_chain() {
        let e = anyhow::anyhow!("ssh: session dropped")
            .context("rep 3: collecting over the wired link");
        let t = super::error_text(&e);
        assert!(t.starts_with("Error: rep 3: collecting over the wired link\n\nCaused by:\n    0: ssh: session dropped"), "{t}");
    }
}
