//! Sans-I/O core of the BES2600 driver.
//!
//! `no_std`, no `alloc`, no external crates: the kernel module includes this
//! source by path (Kbuild compiles each `.rs` as its own crate).
//!
//! Layers, bottom up: [`wsm`] (message codec), [`sdio`] (bus framing),
//! [`credits`] (the input-buffer ledger and sequence counters), [`queue`]
//! (TX queues and pending records), [`bh`] (the bottom-half state machine,
//! the single writer of credit/sequence state), [`scan`] and [`pm`]
//! (policies of the mac80211-facing layer).
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

pub mod bh;
pub mod credits;
pub mod fwload;
pub mod pm;
pub mod queue;
pub mod scan;
pub mod sdio;
pub mod wsm;
