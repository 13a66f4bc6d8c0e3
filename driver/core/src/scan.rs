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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_refuses_5ghz_from_two_channels_on() {
        let mut g = ScanGuard::default();
        assert_eq!(g.check(Band::Ghz5, 2, 0), Err(ScanRefusal::NotSupported));
        assert_eq!(g.check(Band::Ghz5, 25, 0), Err(ScanRefusal::NotSupported));
        assert_eq!(g.check(Band::Ghz5, 1, 0), Ok(()));
        assert_eq!(g.check(Band::Ghz2, 13, 0), Ok(()));
        let s = g.stats();
        assert_eq!((s.refused_5ghz_multi, s.allowed), (2, 2));
        let mut off = ScanGuard {
            enabled: false,
            ..ScanGuard::default()
        };
        assert_eq!(off.check(Band::Ghz5, 2, 0), Ok(()));
    }

    #[test]
    fn backoff_starts_at_the_third_reject_and_ends_on_time() {
        let mut g = ScanGuard::default();
        for i in 1..SCAN_REJECTS_BEFORE_BACKOFF {
            g.on_start_confirm(Band::Ghz5, status::INVALID_PARAMETER, 100);
            assert_eq!(g.check(Band::Ghz5, 1, 100), Ok(()), "after {i} reject(s)");
        }
        g.on_start_confirm(Band::Ghz5, status::INVALID_PARAMETER, 100);
        let until = 100 + SCAN_BACKOFF_MS;
        assert_eq!(
            g.check(Band::Ghz5, 1, until - 1),
            Err(ScanRefusal::BackingOff { until_ms: until })
        );
        assert_eq!(g.check(Band::Ghz5, 1, until), Ok(()));
        assert_eq!(g.check(Band::Ghz2, 1, 100), Ok(()), "per band");
        let s = g.stats();
        assert_eq!((s.fw_rejects, s.refused_backoff, s.fw_accepts), (3, 1, 0));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_a_success_resets_it() {
        let mut g = ScanGuard::default();
        let mut last = 0;
        for n in 1..=12u32 {
            g.on_start_confirm(Band::Ghz2, status::FAILURE, 0);
            let until = match g.check(Band::Ghz2, 1, 0) {
                Err(ScanRefusal::BackingOff { until_ms }) => until_ms,
                Ok(()) => 0,
                Err(e) => panic!("{e:?}"),
            };
            let want = match n {
                1 | 2 => 0,
                _ => (SCAN_BACKOFF_MS << (n - 3).min(8)).min(SCAN_BACKOFF_MAX_MS),
            };
            assert_eq!(until, want, "after {n} rejects");
            assert!(until >= last);
            last = until;
        }
        assert_eq!(last, SCAN_BACKOFF_MAX_MS);
        g.on_start_confirm(Band::Ghz2, status::SUCCESS, 0);
        assert_eq!(g.check(Band::Ghz2, 1, 0), Ok(()));
        g.on_start_confirm(Band::Ghz2, status::FAILURE, 0);
        assert_eq!(g.check(Band::Ghz2, 1, 0), Ok(()), "the count started over");
        assert_eq!(g.stats().fw_accepts, 1);
    }

    #[test]
    fn a_disabled_guard_does_not_back_off() {
        let mut g = ScanGuard {
            enabled: false,
            ..ScanGuard::default()
        };
        for _ in 0..5 {
            g.on_start_confirm(Band::Ghz5, status::INVALID_PARAMETER, 0);
        }
        assert_eq!(g.check(Band::Ghz5, 1, 0), Ok(()));
    }

    #[test]
    fn a_multi_band_request_splits_in_band_order() {
        let chans = [
            Channel {
                band: Band::Ghz5,
                number: 36,
            },
            Channel {
                band: Band::Ghz2,
                number: 1,
            },
            Channel {
                band: Band::Ghz5,
                number: 40,
            },
            Channel {
                band: Band::Ghz2,
                number: 6,
            },
        ];
        let mut scratch = [0u16; 8];
        let mut legs = [(Band::Ghz2, [0u16; 2], 0usize); 2];
        let mut n = 0;
        split_per_band(&chans, &mut scratch, |b, c| {
            legs[n].0 = b;
            legs[n].1[..c.len()].copy_from_slice(c);
            legs[n].2 = c.len();
            n += 1;
        });
        assert_eq!(n, 2);
        assert_eq!(legs[0], (Band::Ghz2, [1, 6], 2));
        assert_eq!(legs[1], (Band::Ghz5, [36, 40], 2));
        // A scratch shorter than the request keeps what fits.
        let mut small = [0u16; 1];
        let mut seen = 0;
        split_per_band(&chans, &mut small, |_, c| {
            assert_eq!(c.len(), 1);
            seen += 1;
        });
        assert_eq!(seen, 2);
        // No channel of a band: no leg for it.
        let mut legs = 0;
        split_per_band(&chans[1..2], &mut scratch, |b, _| {
            assert_eq!(b, Band::Ghz2);
            legs += 1;
        });
        assert_eq!(legs, 1);
    }
}
