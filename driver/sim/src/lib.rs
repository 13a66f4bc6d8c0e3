//! Simulator of the BES2600 chip and its firmware, driven by `bes2600-core`.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
