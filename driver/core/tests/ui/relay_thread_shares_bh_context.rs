// Patch C v1: an `sdio_rx_work` relay running in another thread gets the bh
// context too and releases credits there. `BhContext` is `!Sync`, so it
// cannot be shared with another thread at all.
use bes2600_core::bh::BhContext;
use std::sync::Arc;

fn main() {
    let bh = Arc::new(BhContext::new());
    let relay = Arc::clone(&bh);
    std::thread::spawn(move || {
        let _ = relay.credits();
    });
}
