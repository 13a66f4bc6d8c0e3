//! The credit ledger: input buffers granted by the firmware and how many the
//! host has in flight (`hw_bufs_used`, per interface, per sequence space),
//! plus the TX/RX sequence counters.
//!
//! Lesson 1 (Patch C v1): two contexts writing the unlocked `hw_bufs_used`
//! underflowed it and wedged the chip. Here the ledger has no public
//! mutator: only [`super::bh::BhContext`] owns one and changes it, so the
//! single writer is a compile-time fact (see `tests/ui/` for the
//! compile-fail proofs). A release below zero is a typed, counted error.
//!
//! The chip grants its input buffers globally (`numInpChBufs` of the
//! startup indication); bes2600 also counts what is pending per sequence
//! space (`bes2600_bh_dec_pending_count(priv, WSM_TXRX_SEQ_IDX(id))`,
//! `bh.c` 1079-1080), which the ledger keeps as `pending`.
#![forbid(unsafe_code)]

use super::wsm::{SeqSpace, SEQ_MODULO};

/// What a release could not do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreditError {
    /// More buffers released than the host had in flight.
    Underflow { used: u16, released: u16 },
    /// The per-space count would go negative.
    UnderflowSplit,
    /// The firmware has not granted buffers yet.
    NotStarted,
}

/// A read-only copy of the ledger, for tests, stats and PM idle checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CreditSnapshot {
    pub input_buffers: u16,
    pub hw_bufs_used: u16,
    pub pending: [u16; SeqSpace::COUNT],
    pub tx_seq: [u8; SeqSpace::COUNT],
    pub rx_seq: [u8; SeqSpace::COUNT],
}

/// The ledger. Fields are private and every mutator is `pub(crate)`: code
/// outside this crate can only read it through [`CreditLedger::snapshot`].
#[derive(Debug, Default)]
pub struct CreditLedger {
    input_buffers: u16,
    hw_bufs_used: u16,
    pending: [u16; SeqSpace::COUNT],
    tx_seq: [u8; SeqSpace::COUNT],
    rx_seq: [u8; SeqSpace::COUNT],
}

impl CreditLedger {
    pub(crate) const fn new() -> Self {
        CreditLedger {
            input_buffers: 0,
            hw_bufs_used: 0,
            pending: [0; SeqSpace::COUNT],
            tx_seq: [0; SeqSpace::COUNT],
            rx_seq: [0; SeqSpace::COUNT],
        }
    }

    pub fn snapshot(&self) -> CreditSnapshot {
        CreditSnapshot {
            input_buffers: self.input_buffers,
            hw_bufs_used: self.hw_bufs_used,
            pending: self.pending,
            tx_seq: self.tx_seq,
            rx_seq: self.rx_seq,
        }
    }

    /// Buffers the host may still send.
    pub fn available(&self) -> u16 {
        self.input_buffers.saturating_sub(self.hw_bufs_used)
    }

    pub fn hw_bufs_used(&self) -> u16 {
        self.hw_bufs_used
    }

    /// Startup indication: the firmware grants `n` input buffers. Nothing
    /// can be in flight in a new firmware run, so the counts start from zero.
    pub(crate) fn grant(&mut self, n: u16) {
        self.input_buffers = n;
        self.hw_bufs_used = 0;
        self.pending = [0; SeqSpace::COUNT];
        // A new firmware run expects our requests from sequence 0.
        self.tx_seq = [0; SeqSpace::COUNT];
    }

    /// Forget everything (reset path).
    pub(crate) fn clear(&mut self) {
        *self = CreditLedger::new();
    }

    /// Charges one buffer for a message in `space` and returns the sequence
    /// number to stamp on it.
    pub(crate) fn charge(&mut self, space: SeqSpace) -> Result<u8, CreditError> {
        if self.input_buffers == 0 {
            return Err(CreditError::NotStarted);
        }
        debug_assert!(self.hw_bufs_used < self.input_buffers);
        let s = space.index();
        let seq = self.tx_seq[s];
        self.tx_seq[s] = (seq + 1) % SEQ_MODULO;
        self.hw_bufs_used += 1;
        self.pending[s] += 1;
        Ok(seq)
    }

    /// Releases `n` buffers confirmed by the firmware. Nothing changes on
    /// error: the ledger never goes below zero.
    pub(crate) fn release(&mut self, space: SeqSpace, n: u16) -> Result<(), CreditError> {
        let s = space.index();
        if n > self.hw_bufs_used {
            return Err(CreditError::Underflow {
                used: self.hw_bufs_used,
                released: n,
            });
        }
        if n > self.pending[s] {
            return Err(CreditError::UnderflowSplit);
        }
        self.hw_bufs_used -= n;
        self.pending[s] -= n;
        Ok(())
    }

    /// Checks and advances the RX sequence of `space`.
    pub(crate) fn check_rx_seq(&mut self, space: SeqSpace, seq: u8) -> Result<(), (u8, u8)> {
        let s = space.index();
        if seq != self.rx_seq[s] {
            return Err((self.rx_seq[s], seq));
        }
        self.rx_seq[s] = (seq + 1) % SEQ_MODULO;
        Ok(())
    }

    /// The ledger's invariant: the total equals the per-space split, and
    /// never exceeds the grant.
    pub fn consistent(&self) -> bool {
        let pending: u32 = self.pending.iter().map(|&v| u32::from(v)).sum();
        let used = u32::from(self.hw_bufs_used);
        used == pending && self.hw_bufs_used <= self.input_buffers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(n: u16) -> CreditLedger {
        let mut l = CreditLedger::new();
        l.grant(n);
        l
    }

    #[test]
    fn nothing_can_be_charged_before_the_grant() {
        let mut l = CreditLedger::new();
        assert_eq!(l.charge(SeqSpace::Wsm), Err(CreditError::NotStarted));
        assert_eq!(l.available(), 0);
        assert_eq!(l.snapshot(), CreditSnapshot::default());
    }

    #[test]
    fn charges_count_down_the_grant_and_number_messages() {
        let mut l = granted(3);
        assert_eq!(l.available(), 3);
        assert_eq!(l.charge(SeqSpace::Wsm), Ok(0));
        assert_eq!(l.charge(SeqSpace::Wsm), Ok(1));
        assert_eq!(l.charge(SeqSpace::Mcu), Ok(0), "own sequence per space");
        assert_eq!(l.available(), 0);
        assert_eq!(l.hw_bufs_used(), 3);
        let s = l.snapshot();
        assert_eq!((s.input_buffers, s.hw_bufs_used), (3, 3));
        assert_eq!(s.pending, [2, 1]);
        assert_eq!(s.tx_seq, [2, 1]);
        assert!(l.consistent());
    }

    #[test]
    fn sequence_numbers_wrap_at_eight() {
        let mut l = granted(20);
        let seqs: [u8; 10] = core::array::from_fn(|_| {
            let s = l.charge(SeqSpace::Wsm).unwrap();
            l.release(SeqSpace::Wsm, 1).unwrap();
            s
        });
        assert_eq!(seqs, [0, 1, 2, 3, 4, 5, 6, 7, 0, 1]);
    }

    #[test]
    fn a_release_is_exact_and_a_bad_one_changes_nothing() {
        let mut l = granted(4);
        l.charge(SeqSpace::Wsm).unwrap();
        l.charge(SeqSpace::Wsm).unwrap();
        l.charge(SeqSpace::Mcu).unwrap();
        assert_eq!(l.release(SeqSpace::Wsm, 2), Ok(()));
        assert_eq!(l.hw_bufs_used(), 1);
        assert_eq!(l.available(), 3);
        let before = l.snapshot();
        assert_eq!(
            l.release(SeqSpace::Wsm, 2),
            Err(CreditError::Underflow {
                used: 1,
                released: 2
            })
        );
        assert_eq!(
            l.release(SeqSpace::Wsm, 1),
            Err(CreditError::UnderflowSplit)
        );
        assert_eq!(l.snapshot(), before);
        assert_eq!(l.release(SeqSpace::Mcu, 1), Ok(()));
        assert_eq!(l.hw_bufs_used(), 0);
        assert_eq!(l.release(SeqSpace::Mcu, 0), Ok(()));
        assert!(l.consistent());
    }

    #[test]
    fn a_grant_starts_a_new_firmware_run() {
        let mut l = granted(4);
        l.charge(SeqSpace::Wsm).unwrap();
        l.charge(SeqSpace::Mcu).unwrap();
        l.check_rx_seq(SeqSpace::Wsm, 0).unwrap();
        l.grant(6);
        let s = l.snapshot();
        assert_eq!((s.input_buffers, s.hw_bufs_used, s.pending), (6, 0, [0, 0]));
        assert_eq!(s.tx_seq, [0, 0]);
        assert_eq!(s.rx_seq, [1, 0], "the grant leaves RX sequences alone");
        l.clear();
        assert_eq!(l.snapshot(), CreditSnapshot::default());
    }

    #[test]
    fn rx_sequences_are_checked_strictly_per_space() {
        let mut l = granted(1);
        assert_eq!(l.check_rx_seq(SeqSpace::Wsm, 0), Ok(()));
        assert_eq!(l.check_rx_seq(SeqSpace::Wsm, 2), Err((1, 2)));
        assert_eq!(l.snapshot().rx_seq, [1, 0], "a mismatch does not advance");
        assert_eq!(l.check_rx_seq(SeqSpace::Mcu, 0), Ok(()));
        for s in 1..8 {
            assert_eq!(l.check_rx_seq(SeqSpace::Wsm, s), Ok(()));
        }
        assert_eq!(l.check_rx_seq(SeqSpace::Wsm, 0), Ok(()), "wraps at 8");
    }

    #[test]
    fn consistency_needs_equal_totals_within_the_grant() {
        let mut l = granted(2);
        l.charge(SeqSpace::Wsm).unwrap();
        assert!(l.consistent());
        l.pending[0] = 0;
        assert!(!l.consistent());
        l.pending[0] = 1;
        l.input_buffers = 0;
        assert!(!l.consistent());
        l.input_buffers = 1;
        assert!(l.consistent(), "used == grant is fine");
    }
}
