// Reaching into the bh context for the ledger (or its counter) from outside.
use bes2600_core::bh::BhContext;

fn rx_work(bh: &mut BhContext) {
    bh.core.ledger.hw_bufs_used -= 1;
}

fn main() {}
