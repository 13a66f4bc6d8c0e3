//! The besser test lab.
//!
//! Everything that talks to a device goes through one transport type
//! ([`device::transport::Transport`]); analysis is pure functions over recorded raw
//! data, so a report can be re-made without a device.

pub mod abvm;
pub mod appliance;
pub mod assets;
pub mod bench;
pub mod capture;
pub mod chip_fault;
pub mod clock;
pub mod cpio;
pub mod device;
pub mod farm;
pub mod flash;
pub mod lock;
pub mod progress;
pub mod ramp;
pub mod rundir;
pub mod units;
pub mod vm;
