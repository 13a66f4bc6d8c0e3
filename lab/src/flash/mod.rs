//! `cargo xtask flash`: a built image onto a lab device's inactive A/B slot,
//! one try, and a kernel that does not come back falls back by itself.
//!
//! - [`env`]: the U-Boot environment image (codec, checked against
//!   `mkenvimage`).
//! - [`slots`]: RAUC's A/B variables (`BOOT_ORDER`, `BOOT_<slot>_LEFT`).
//! - [`plan`]: what a flash will do, decided before anything is written
//!   (manifest check, space, copies, variables before/after): `--dry-run`.
//! - [`device`]: the operations a flash needs ([`device::SlotDevice`]) and
//!   their shell implementation over the lab transport.
//! - [`run`]: carrying a plan out.

pub mod device;
pub mod env;
pub mod plan;
pub mod run;
pub mod slots;
