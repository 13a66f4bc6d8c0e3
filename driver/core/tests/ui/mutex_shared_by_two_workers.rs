// A `Mutex<BhContext>` handed to two workers: a mutex is `Sync` only when
// what it guards is `Send` (`impl<T: ?Sized + Send> Sync for Mutex<T>`), and
// `BhContext` is not, so the second writer does not compile (the bound is
// spelled out here; std's own would say the same).
use bes2600_core::bh::BhContext;

fn share_with_second_worker<T: Send>(_guarded: &T) {}

fn main() {
    let bh = BhContext::new();
    share_with_second_worker(&bh);
}
