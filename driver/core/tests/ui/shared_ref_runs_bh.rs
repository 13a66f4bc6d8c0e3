// A context holding only a shared reference (what an IRQ handler or a
// second worker could get) cannot run the bh or reset it: both need `&mut`.
use bes2600_core::bh::{BhBufs, BhContext, BusError, Indication, RxDelivery, SdioBus, Upper, Wake};
use bes2600_core::queue::TxShared;
use bes2600_core::sdio::Cmd53;
use bes2600_core::wsm::TxConfirm;

struct NoBus;
impl SdioBus for NoBus {
    fn readb(&mut self, _: u32) -> Result<u8, BusError> { Err(BusError::Other) }
    fn writeb(&mut self, _: u32, _: u8) -> Result<(), BusError> { Err(BusError::Other) }
    fn cmd53_read(&mut self, _: Cmd53, _: &mut [u8]) -> Result<(), BusError> { Err(BusError::Other) }
    fn cmd53_write(&mut self, _: Cmd53, _: &[u8]) -> Result<(), BusError> { Err(BusError::Other) }
}
struct Up;
impl Upper<Vec<u8>> for Up {
    fn rx_batch(&mut self, _: &RxDelivery<'_>) {}
    fn tx_done(&mut self, _: Vec<u8>, _: &TxConfirm) {}
    fn cmd_done(&mut self, _: u16, _: u32, _: &[u8]) {}
    fn indication(&mut self, _: Indication<'_>) {}
}

fn second_worker(bh: &BhContext, bufs: &mut BhBufs<'_>, tx: &mut TxShared<Vec<u8>>) {
    let _ = bh.run(Wake::RX, &mut NoBus, bufs, &mut Up, tx, 0);
}

fn main() {}
