//! Sans-I/O core of the BES2600 driver.
//!
//! `no_std`, no `alloc`, no external crates: the kernel module includes this
//! source by path (Kbuild compiles each `.rs` as its own crate).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;
