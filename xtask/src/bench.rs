//! `cargo xtask bench <what>`: dispatch only; each area owns its benchmark.

use clap::{Parser, Subcommand};

#[derive(Parser)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Driver core: RX cost vs memcpy, wake-ups per batch, simulated throughput vs bus limit.
    Driver(crate::driver::BenchArgs),
    /// Lab: sender accuracy/CPU vs `pv | nc`, ramp overhead per rep.
    Lab(crate::lab::BenchArgs),
    /// Images: cold/incremental build times, module rebuild + boot.
    Image(crate::image::BenchArgs),
    /// The kernel module: TCP into wlan0 through bes2600 vs mac80211_hwsim vs virtio, bh CPU/MiB, wake-ups per RX batch.
    Kmod(crate::bench_kmod::BenchArgs),
    /// Flash on the A/B virtual device: whole image (copy, reboot, verify) and --module-only, bytes copied / image size.
    Flash,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Driver(a) => crate::driver::bench(a),
        What::Lab(a) => crate::lab::bench(a),
        What::Image(a) => crate::image::bench(a),
        What::Kmod(a) => crate::bench_kmod::bench(a),
        What::Flash => crate::image::bench_flash(),
    }
}
