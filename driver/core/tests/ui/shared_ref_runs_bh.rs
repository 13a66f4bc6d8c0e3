// A context holding only a shared reference (what an IRQ handler or a
// second worker could get) cannot run the bh or reset it: both need `&mut`.
use bes2600_core::bh::{BhContext, BusError, RxDelivery, Indication, SdioBus, Upper, Wake};
use bes2600_core::queue::TxShared;
use bes2600_core::wsm::TxConfirm;

struct NoBus;
impl SdioBus for NoBus {
    fn read_ctrl(&mut self) -> Result<[u8; 4], BusError> { Err(BusError::Other) }
    fn read_data(&mut self, _: &mut [u8]) -> Result<(), BusError> { Err(BusError::Other) }
    fn write_data(&mut self, _: &[u8], _: bool) -> Result<(), BusError> { Err(BusError::Other) }
}
struct Up;
impl Upper<Vec<u8>> for Up {
    fn rx_batch(&mut self, _: &RxDelivery<'_>) {}
    fn tx_done(&mut self, _: Vec<u8>, _: &TxConfirm) {}
    fn cmd_done(&mut self, _: u16, _: u32, _: &[u8]) {}
    fn indication(&mut self, _: Indication<'_>) {}
}

fn second_worker(bh: &BhContext, tx: &mut TxShared<Vec<u8>>) {
    let _ = bh.run(Wake::RX, &mut NoBus, &mut Up, tx, 0);
}

fn main() {}
