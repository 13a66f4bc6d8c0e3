//! Scan policy (Patch I v2, lesson 4).
//!
//! The bes2600 firmware rejects a multi-channel 5 GHz start-scan with
//! status 2. mac80211 splits a multi-band scan per band, so every scan used
//! to end in a rejected 5 GHz leg (~14 rejects/h). The guard refuses a
//! multi-channel 5 GHz request upfront with [`ScanRefusal::NotSupported`]
//! (`-EOPNOTSUPP`: a negative `hw_scan` return aborts without
//! `ieee80211_scan_completed`), but lets single-channel 5 GHz scans through:
//! NetworkManager issues them per frequency to find a 5 GHz BSS.
//!
//! Consecutive firmware rejects are counted **per band**: a successful
//! 2.4 GHz scan between two rejected 5 GHz legs must not reset the 5 GHz
//! count (the defer-on-reject patch never tripped for exactly that reason).
//!
//! Lock class: process context only (mac80211 `hw_scan` and the bh's
//! confirm report, both under the driver's `conf_mutex`).

#![forbid(unsafe_code)]

use super::wsm::{status, Band};

/// Firmware rejects in a row (per band) before scans on that band back off.
pub const SCAN_REJECTS_BEFORE_BACKOFF: u8 = 3;
/// First backoff after the threshold (ms); doubles per further reject.
pub const SCAN_BACKOFF_MS: u64 = 30_000;
/// Longest backoff (ms).
pub const SCAN_BACKOFF_MAX_MS: u64 = 600_000;

/// Why a scan is refused before it reaches the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanRefusal {
    /// Multi-channel 5 GHz: the firmware cannot do it (`-EOPNOTSUPP`).
    NotSupported,
    /// Backing off after consecutive rejects on this band (`-EBUSY`),
    /// until `until_ms`.
    BackingOff { until_ms: u64 },
}

/// Counters for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanStats {
    pub allowed: u64,
    pub refused_5ghz_multi: u64,
    pub refused_backoff: u64,
    pub fw_rejects: u64,
    pub fw_accepts: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct BandState {
    consecutive_rejects: u8,
    backoff_until_ms: u64,
}

/// The guard. `enabled = false` reproduces the pre-Patch-I behaviour (used
/// by tests as the negative control).
#[derive(Clone, Copy, Debug)]
pub struct ScanGuard {
    pub enabled: bool,
    bands: [BandState; 2],
    stats: ScanStats,
}

impl Default for ScanGuard {
    fn default() -> Self {
        ScanGuard {
            enabled: true,
            bands: [BandState::default(); 2],
            stats: ScanStats::default(),
        }
    }
}

impl ScanGuard {
    pub fn stats(&self) -> ScanStats {
        self.stats
    }

    /// Decides one per-band scan request of `n_channels` channels.
    pub fn check(&mut self, band: Band, n_channels: usize, now_ms: u64) -> Result<(), ScanRefusal> {
        if self.enabled && band == Band::Ghz5 && n_channels > 1 {
            self.stats.refused_5ghz_multi += 1;
            return Err(ScanRefusal::NotSupported);
        }
        let b = &self.bands[band as usize];
        if self.enabled && now_ms < b.backoff_until_ms {
            self.stats.refused_backoff += 1;
            return Err(ScanRefusal::BackingOff {
                until_ms: b.backoff_until_ms,
            });
        }
        self.stats.allowed += 1;
        Ok(())
    }

    /// The firmware's answer to a start-scan on `band`.
    pub fn on_start_confirm(&mut self, band: Band, fw_status: u32, now_ms: u64) {
        let b = &mut self.bands[band as usize];
        if fw_status == status::SUCCESS {
            self.stats.fw_accepts += 1;
            *b = BandState::default();
            return;
        }
        self.stats.fw_rejects += 1;
        b.consecutive_rejects = b.consecutive_rejects.saturating_add(1);
        if b.consecutive_rejects >= SCAN_REJECTS_BEFORE_BACKOFF {
            let extra = u32::from(b.consecutive_rejects - SCAN_REJECTS_BEFORE_BACKOFF).min(8);
            let backoff = (SCAN_BACKOFF_MS << extra).min(SCAN_BACKOFF_MAX_MS);
            b.backoff_until_ms = now_ms + backoff;
        }
    }
}

/// A channel of a (possibly multi-band) scan request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    pub band: Band,
    pub number: u16,
}

/// Splits a multi-band request per band, as mac80211 does without
/// `SINGLE_SCAN_ON_ALL_BANDS`: calls `leg` once per band present, in band
/// order, with that band's channels copied into `scratch`.
pub fn split_per_band(
    channels: &[Channel],
    scratch: &mut [u16],
    mut leg: impl FnMut(Band, &[u16]),
) {
    for band in [Band::Ghz2, Band::Ghz5] {
        let mut n = 0;
        for c in channels.iter().filter(|c| c.band == band) {
            if n < scratch.len() {
                scratch[n] = c.number;
                n += 1;
            }
        }
        if n > 0 {
            leg(band, &scratch[..n]);
        }
    }
}
