//! The besser test lab.
//!
//! Everything that talks to a device goes through one transport type
//! ([`transport::Transport`]); analysis is pure functions over recorded raw
//! data, so a report can be re-made without a device.

pub mod appliance;
pub mod assets;
pub mod capture;
pub mod cpio;
pub mod inventory;
pub mod lock;
pub mod progress;
pub mod transport;
pub mod vm;
