// Patch C v1: an `sdio_rx_work` relay in another worker gets the bh context
// and releases credits there. `BhContext` is not `Send`: it cannot be moved
// into another worker (here a stand-in with `std::thread::spawn`'s bound).
use bes2600_core::bh::BhContext;

fn spawn_worker<F: FnOnce() + Send + 'static>(_f: F) {}

fn main() {
    let bh = BhContext::new();
    spawn_worker(move || {
        let _ = bh.credits();
    });
}
