//! The besser test lab.
//!
//! Everything that talks to a device goes through one transport type; analysis
//! is pure functions over recorded raw data, so a report can be re-made
//! without a device.

pub mod capture;
