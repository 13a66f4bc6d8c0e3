//! The real bh fed by a chip that sends arbitrary batches. The control byte
//! is made valid (toggle, whole blocks) so the input reaches extraction,
//! dispatch, the credit ledger and the queues. The bh may halt; it must
//! never panic, and the ledger must stay consistent.
#![no_main]

use bes2600_core::bh::{
    BhBufs, BhContext, BusError, Indication, RxDelivery, SdioBus, Upper, Wake, RX_BUF_LEN,
    TX_BUF_LEN,
};
use bes2600_core::queue::{Ac, TxShared};
use bes2600_core::sdio::{self, Cmd53};
use bes2600_core::wsm::TxConfirm;
use libfuzzer_sys::fuzz_target;

/// A startup indication granting 4 buffers, seq 0 (152 bytes, B/wsm.c
/// 1426-1443), written out by hand.
fn startup() -> Vec<u8> {
    let mut m = vec![0u8; 152];
    m[..4].copy_from_slice(&[152, 0, 0x01, 0x08]);
    m[4..6].copy_from_slice(&4u16.to_le_bytes());
    m[6..8].copy_from_slice(&1632u16.to_le_bytes());
    m
}

struct FuzzBus<'a> {
    chunks: core::slice::Split<'a, u8, fn(&u8) -> bool>,
    first: Option<Vec<u8>>,
    current: Vec<u8>,
    toggle: bool,
}

impl SdioBus for FuzzBus<'_> {
    fn readb(&mut self, addr: u32) -> Result<u8, BusError> {
        if addr == sdio::reg::CTRL {
            return Ok(1); // nothing pending
        }
        let next = match self.first.take() {
            Some(f) => Some(f),
            None => self.chunks.next().map(|c| c.to_vec()),
        };
        let Some(mut c) = next else { return Ok(0) };
        c.truncate(RX_BUF_LEN);
        let blocks = c.len().div_ceil(sdio::BLOCK_LEN).max(1);
        c.resize(blocks * sdio::BLOCK_LEN, 0);
        self.current = c;
        Ok(blocks as u8 | (u8::from(self.toggle) << 7))
    }
    fn writeb(&mut self, _: u32, _: u8) -> Result<(), BusError> {
        Ok(())
    }
    fn cmd53_read(&mut self, cmd: Cmd53, buf: &mut [u8]) -> Result<(), BusError> {
        if buf.len() != self.current.len() || cmd.len != buf.len() {
            return Err(BusError::Other);
        }
        buf.copy_from_slice(&self.current);
        self.toggle = !self.toggle;
        Ok(())
    }
    fn cmd53_write(&mut self, cmd: Cmd53, data: &[u8]) -> Result<(), BusError> {
        assert_eq!(cmd.len, data.len());
        assert!(data.len() % sdio::BLOCK_LEN == 0);
        Ok(())
    }
}

struct Sink;
impl Upper<Vec<u8>> for Sink {
    fn rx_batch(&mut self, batch: &RxDelivery<'_>) {
        assert!(batch.len() <= sdio::RX_BATCH_MAX);
        for (_, f) in batch.iter() {
            std::hint::black_box(f);
        }
    }
    fn tx_done(&mut self, _: Vec<u8>, _: &TxConfirm) {}
    fn cmd_done(&mut self, _: u16, _: u32, _: &[u8]) {}
    fn indication(&mut self, _: Indication<'_>) {}
}

fuzz_target!(|data: &[u8]| {
    let mut bus = FuzzBus {
        chunks: data.split((|b: &u8| *b == 0xA5) as fn(&u8) -> bool),
        first: Some(startup()),
        current: Vec::new(),
        toggle: false,
    };
    let mut rx = vec![0u8; RX_BUF_LEN];
    let mut txb = vec![0u8; TX_BUF_LEN];
    let mut bufs = BhBufs::new(&mut rx, &mut txb).unwrap();
    let mut bh = BhContext::new();
    let mut tx: Box<TxShared<Vec<u8>>> = Box::default();
    for i in 0..8u8 {
        let _ = tx.queues.put(Ac::Be, 0, 0, vec![i; 40]);
    }
    for t in 0..16u64 {
        if bh
            .run(
                Wake { rx: true, tx: true },
                &mut bus,
                &mut bufs,
                &mut Sink,
                &mut *tx,
                t,
            )
            .is_err()
        {
            break;
        }
        assert!(bh.ledger_consistent());
    }
    assert!(bh.ledger_consistent());
    let c = bh.credits();
    assert!(c.hw_bufs_used <= c.input_buffers);
});
