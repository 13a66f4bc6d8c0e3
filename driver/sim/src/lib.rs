//! Simulator of the BES2600 chip and its firmware, driven by `bes2600-core`.
//!
//! - [`chip`]: the chip and firmware model (`no_std`, fixed capacity),
//!   independent of `bes2600-core`: CMD52/CMD53 as bes2600 speaks them,
//!   the boot ROM, startup indication granting credits, request ->
//!   confirm/indication behaviour, multi-RX batching with the control
//!   byte's toggle, the multi-channel 5 GHz scan reject, fault injection,
//!   the Bug #5 degradation mode.
//! - [`wire`]: the chip's own codec, written from the C sources.
//! - [`ap`]: a simulated access point (probe responses, auth/assoc, data).
//! - [`bus`]: the modelled SDIO bus (bandwidth + per-transaction latency).
//! - [`harness`] (std): chip + bh + IRQ line + upper layer wired together,
//!   with simulated time; [`replay`] (std): recorded WSM traces.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
// The chip model also builds inside the kernel (MSRV 1.78): no `is_multiple_of`.
#![allow(unknown_lints, clippy::manual_is_multiple_of)]

pub mod ap;
pub mod bus;
pub mod chip;
#[cfg(feature = "std")]
pub mod harness;
#[cfg(feature = "std")]
pub mod replay;
pub mod wire;
