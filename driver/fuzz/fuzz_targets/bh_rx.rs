//! The real bh fed by a chip that sends arbitrary batches. The control
//! word is made valid (toggle, CRC8, total length) so the input reaches
//! extraction, dispatch, the credit ledger and the queues. The bh may halt;
//! it must never panic, and the ledger must stay consistent.
#![no_main]

use bes2600_core::bh::{BhContext, BusError, Indication, RxDelivery, SdioBus, Upper, Wake};
use bes2600_core::queue::{Ac, TxShared};
use bes2600_core::sdio;
use bes2600_core::wsm::{self, TxConfirm};
use libfuzzer_sys::fuzz_target;

struct FuzzBus<'a> {
    chunks: core::slice::Split<'a, u8, fn(&u8) -> bool>,
    current: &'a [u8],
    toggle: bool,
    written: usize,
}

impl SdioBus for FuzzBus<'_> {
    fn read_ctrl(&mut self) -> Result<[u8; 4], BusError> {
        self.current = self.chunks.next().unwrap_or(&[]);
        let len = self.current.len().min(sdio::RX_BATCH_LEN_MAX);
        self.current = &self.current[..len];
        let count = self.current.first().map_or(0, |b| b % 17);
        Ok(sdio::encode_ctrl_word(len as u16, count, self.toggle))
    }
    fn read_data(&mut self, buf: &mut [u8]) -> Result<(), BusError> {
        if buf.len() != self.current.len() {
            return Err(BusError::Other);
        }
        buf.copy_from_slice(self.current);
        self.toggle = !self.toggle;
        Ok(())
    }
    fn write_data(&mut self, data: &[u8], _toggle: bool) -> Result<(), BusError> {
        self.written += data.len();
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
    // A valid startup first, so credits exist and TX runs too.
    let mut start = [0u8; 256];
    let n = wsm::chip::startup(&mut start, 0, 4, 1632).unwrap();
    let mut first = start[..n].to_vec();
    first.resize(sdio::pad4(n), 0);
    let mut bus = FuzzBus {
        chunks: data.split((|b: &u8| *b == 0xA5) as fn(&u8) -> bool),
        current: &[],
        toggle: false,
        written: 0,
    };
    let mut bh = Box::new(BhContext::new());
    let mut tx: Box<TxShared<Vec<u8>>> = Box::default();
    // Feed the startup through a one-off bus.
    {
        struct One<'a>(&'a [u8], bool);
        impl SdioBus for One<'_> {
            fn read_ctrl(&mut self) -> Result<[u8; 4], BusError> {
                let len = if self.1 { 0 } else { self.0.len() };
                Ok(sdio::encode_ctrl_word(len as u16, u8::from(!self.1), false))
            }
            fn read_data(&mut self, buf: &mut [u8]) -> Result<(), BusError> {
                buf.copy_from_slice(self.0);
                self.1 = true;
                Ok(())
            }
            fn write_data(&mut self, _: &[u8], _: bool) -> Result<(), BusError> {
                Ok(())
            }
        }
        bh.run(Wake::RX, &mut One(&first, false), &mut Sink, &mut *tx, 0)
            .unwrap();
        bus.toggle = true;
    }
    for i in 0..8u8 {
        let _ = tx.queues.put(Ac::Be, 0, 0, vec![i; 40]);
    }
    for t in 0..16u64 {
        if bh
            .run(
                Wake { rx: true, tx: true },
                &mut bus,
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
