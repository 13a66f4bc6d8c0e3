//! Power-save policy: the "PM unsupported" latch.
//!
//! When the firmware refuses `set_pm` the driver latches "PM unsupported"
//! and stops asking (c7). The maintainers found the latch could go stale: a
//! real PM indication arriving later proved the firmware does PM after all,
//! yet the latch stayed set (Bug #5, candidate 4: a *candidate* mechanism
//! of the open uptime degradation, not a confirmed finding). The remedy is
//! **besser's own policy**, not something the maintainers found or tested:
//! the latch clears on **progress** (a set-PM completion indication, or a
//! successful confirm) or on **timeout** ([`PM_LATCH_TIMEOUT_MS`]),
//! whichever comes first. The set-PM-complete indication reaches it through
//! the bh's normal path (`Upper::indication` -> [`PmPolicy::on_pm_indication`]).
//!
//! Lock class: process context (mac80211 `config` / bss changes) plus the
//! bh's reports, under the driver's `conf_mutex`.

#![forbid(unsafe_code)]

use super::wsm::{status, Request};

/// Power-save modes of a set-PM request (bes2600 `wsm.h` 143-152,
/// `WSM_PSM_*`).
pub mod psm {
    /// 802.11 active mode.
    pub const ACTIVE: u8 = 0x00;
    /// 802.11 PS mode (PS-Poll).
    pub const PS: u8 = 0x01;
    /// Dynamic ("fast") power save: PS plus the fast-PS flag, bit 7.
    pub const FAST_PS: u8 = 0x81;
}

/// The set-PM request for what mac80211 asks (`vif->cfg.ps` on
/// `BSS_CHANGED_PS`, and `hw->conf.dynamic_ps_timeout` in ms), computed as
/// bes2600 does (`ap.c` 988-1019, the same as cw1200 `sta.c` 372-388):
/// off -> active; on with no idle timeout -> PS; else fast PS with the
/// idle period in the firmware's 500 us units, 0xff from 128 ms up.
pub fn set_pm_request(ps: bool, dynamic_ps_timeout_ms: i32) -> Request<'static> {
    let mode = if !ps {
        psm::ACTIVE
    } else if dynamic_ps_timeout_ms <= 0 {
        psm::PS
    } else {
        psm::FAST_PS
    };
    let fast_psm_idle_period = match dynamic_ps_timeout_ms {
        t if t >= 0x80 => 0xff,
        t if t <= 0 => 0,
        t => (t as u8) << 1,
    };
    Request::SetPm {
        mode,
        fast_psm_idle_period,
        ap_psm_change_period: 0,
        min_auto_pspoll_period: 0,
    }
}

/// How long a latched "PM unsupported" holds without progress (ms).
pub const PM_LATCH_TIMEOUT_MS: u64 = 60_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmLatch {
    /// Set-PM requests may be sent.
    Open,
    /// The firmware refused; do not ask again before `since_ms + timeout`.
    Unsupported { since_ms: u64 },
}

/// Why the latch opened again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reopened {
    Timeout,
    Progress,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PmStats {
    pub latched: u64,
    pub reopened_timeout: u64,
    pub reopened_progress: u64,
    pub suppressed: u64,
}

#[derive(Clone, Copy, Debug)]
pub struct PmPolicy {
    latch: PmLatch,
    stats: PmStats,
}

impl Default for PmPolicy {
    fn default() -> Self {
        PmPolicy {
            latch: PmLatch::Open,
            stats: PmStats::default(),
        }
    }
}

impl PmPolicy {
    pub fn latch(&self) -> PmLatch {
        self.latch
    }
    pub fn stats(&self) -> PmStats {
        self.stats
    }

    /// May a set-PM request go to the firmware now? Applies the timeout.
    pub fn may_set_pm(&mut self, now_ms: u64) -> bool {
        if let PmLatch::Unsupported { since_ms } = self.latch {
            if now_ms.saturating_sub(since_ms) >= PM_LATCH_TIMEOUT_MS {
                self.latch = PmLatch::Open;
                self.stats.reopened_timeout += 1;
                return true;
            }
            self.stats.suppressed += 1;
            return false;
        }
        true
    }

    /// The confirm of a set-PM request.
    pub fn on_set_pm_confirm(&mut self, fw_status: u32, now_ms: u64) -> Option<Reopened> {
        if fw_status == status::SUCCESS {
            return self.progress();
        }
        if self.latch == PmLatch::Open {
            self.stats.latched += 1;
        }
        self.latch = PmLatch::Unsupported { since_ms: now_ms };
        None
    }

    /// A set-PM completion indication (0x0809): the firmware does PM.
    pub fn on_pm_indication(&mut self) -> Option<Reopened> {
        self.progress()
    }

    fn progress(&mut self) -> Option<Reopened> {
        if let PmLatch::Unsupported { .. } = self.latch {
            self.latch = PmLatch::Open;
            self.stats.reopened_progress += 1;
            return Some(Reopened::Progress);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_pm_follows_bes2600s_mode_choice() {
        let got = |ps, t| match set_pm_request(ps, t) {
            Request::SetPm {
                mode,
                fast_psm_idle_period,
                ..
            } => (mode, fast_psm_idle_period),
            _ => unreachable!(),
        };
        assert_eq!(got(false, 0), (psm::ACTIVE, 0));
        assert_eq!(
            got(false, 50),
            (psm::ACTIVE, 100),
            "bes2600 fills it in either way"
        );
        assert_eq!(
            got(true, 0),
            (psm::PS, 0),
            "mac80211's value with SUPPORTS_DYNAMIC_PS"
        );
        assert_eq!(got(true, -1), (psm::PS, 0));
        assert_eq!(got(true, 50), (psm::FAST_PS, 100), "500 us units");
        assert_eq!(got(true, 127), (psm::FAST_PS, 254));
        assert_eq!(
            got(true, 128),
            (psm::FAST_PS, 0xff),
            "128 ms and up saturate"
        );
        assert_eq!(got(true, i32::MAX), (psm::FAST_PS, 0xff));
    }

    #[test]
    fn the_latch_counts_what_it_does() {
        let mut p = PmPolicy::default();
        assert!(p.may_set_pm(0));
        assert_eq!(p.on_set_pm_confirm(status::FAILURE, 10), None);
        assert_eq!(p.stats().latched, 1, "the first refusal latches");
        assert_eq!(p.on_set_pm_confirm(status::FAILURE, 20), None);
        assert_eq!(p.latch(), PmLatch::Unsupported { since_ms: 20 });
        assert!(!p.may_set_pm(21));
        assert!(!p.may_set_pm(20 + PM_LATCH_TIMEOUT_MS - 1));
        let s = p.stats();
        assert_eq!(
            (s.latched, s.suppressed),
            (1, 2),
            "latched once, asked twice"
        );
        assert_eq!(
            p.on_set_pm_confirm(status::SUCCESS, 30),
            Some(Reopened::Progress)
        );
        assert_eq!(
            p.on_set_pm_confirm(status::SUCCESS, 40),
            None,
            "already open"
        );
        assert_eq!(p.on_pm_indication(), None);
        assert_eq!(p.stats().reopened_progress, 1);
    }
}
