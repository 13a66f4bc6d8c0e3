//! A modelled SDIO bus: each transaction costs a fixed latency plus its
//! bytes at the bus bandwidth, so simulated throughput can be compared with
//! a known limit.

use bes2600_core::bh::{BusError, SdioBus};

use crate::chip::Chip;

/// Bus parameters. Defaults: 4-bit SDIO at 50 MHz (25,000,000 bytes/s raw)
/// and 10 µs of command overhead per CMD52/CMD53.
#[derive(Clone, Copy, Debug)]
pub struct BusModel {
    pub bytes_per_s: u64,
    pub txn_latency_ns: u64,
}

impl Default for BusModel {
    fn default() -> Self {
        BusModel {
            bytes_per_s: 25_000_000,
            txn_latency_ns: 10_000,
        }
    }
}

impl BusModel {
    pub fn cost_ns(&self, bytes: usize) -> u64 {
        self.txn_latency_ns + (bytes as u64 * 1_000_000_000) / self.bytes_per_s
    }
}

/// Bus time and traffic, accumulated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BusStats {
    pub busy_ns: u64,
    pub transactions: u64,
    pub ctrl_reads: u64,
    pub data_reads: u64,
    pub writes: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// The host's view of the chip through the modelled bus.
pub struct SimBus<'c> {
    pub chip: &'c mut Chip,
    pub model: BusModel,
    pub stats: &'c mut BusStats,
}

impl SimBus<'_> {
    fn account(&mut self, bytes: usize) {
        self.stats.busy_ns += self.model.cost_ns(bytes);
        self.stats.transactions += 1;
    }
}

impl SdioBus for SimBus<'_> {
    fn read_ctrl(&mut self) -> Result<[u8; 4], BusError> {
        self.account(4);
        self.stats.ctrl_reads += 1;
        self.chip.read_ctrl()
    }
    fn read_data(&mut self, buf: &mut [u8]) -> Result<(), BusError> {
        self.account(buf.len());
        self.stats.data_reads += 1;
        let r = self.chip.read_data(buf);
        if r.is_ok() {
            self.stats.bytes_read += buf.len() as u64;
        }
        r
    }
    fn write_data(&mut self, data: &[u8], toggle: bool) -> Result<(), BusError> {
        self.account(data.len());
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        self.chip.write_data(data, toggle)
    }
}
