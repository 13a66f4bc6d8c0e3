// An IRQ handler that "helpfully" releases a credit. The ledger has no
// public mutator: only the bh module can change it.
use bes2600_core::credits::CreditLedger;
use bes2600_core::wsm::SeqSpace;

fn irq_handler(ledger: &mut CreditLedger) {
    let _ = ledger.release(SeqSpace::Wsm, 1);
}

fn main() {}
