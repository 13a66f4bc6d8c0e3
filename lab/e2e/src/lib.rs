//! The lab's end-to-end and fault tests on the virtual device: `cargo
//! xtask test` steps, not `cargo test` (they boot QEMU under the VM lock).
//! Kept out of `besser-lab`'s public API: nothing here is for users.

pub mod capture;
pub mod farm;
pub mod flash;
pub mod ramp;
