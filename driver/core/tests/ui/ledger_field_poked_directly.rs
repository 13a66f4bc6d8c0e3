// Reaching into the bh context for the ledger from outside.
use bes2600_core::bh::BhContext;

fn rx_work(bh: &mut BhContext) {
    let _ = &mut bh.ledger;
}

fn main() {}
