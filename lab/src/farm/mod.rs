//! The lab farm: devices shared through a labgrid coordinator, so a team's
//! PineTab2s are reserved and locked, never stepped on.
//!
//! besser does not schedule: labgrid's coordinator (gRPC, labgrid 26) knows
//! every place, who holds it and who waits. besser drives it through
//! `labgrid-client` (installed pinned in a venv by xtask):
//! - [`client`]: the CLI, one call per action, and readers of its output
//!   (`show`, `reservations`, `env`), tested against what labgrid 26.0.1
//!   printed here;
//! - [`lease`]: reserve (with `--wait`: queued, the holder and the queue
//!   position shown), acquire, release on every way out, a lease file that
//!   lets the next run release what a killed besser left behind, and a
//!   watch that stops a ramp (after the rep in flight) when the lease is
//!   lost;
//! - [`export`]: a place's `NetworkService` resources and tags as an
//!   inventory [`Device`](crate::device::inventory::Device), and the other
//!   way: an exporter YAML for an inventory device (`lab farm export`).

pub mod client;
pub mod export;
pub mod lease;
pub mod vm;

pub use client::{Labgrid, PlaceInfo};
pub use lease::{Lease, Want};

/// labgrid's default coordinator port (`labgrid-client` without `-x`).
pub const DEFAULT_PORT: u16 = 20408;

/// The coordinator's address: `--coordinator`, else `$LG_COORDINATOR`, else
/// labgrid's default on this host.
pub fn coordinator_address(given: Option<&str>) -> String {
    given
        .map(str::to_string)
        .or_else(|| {
            std::env::var("LG_COORDINATOR")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_PORT}"))
}
