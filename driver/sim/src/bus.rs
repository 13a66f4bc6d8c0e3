//! A modelled SDIO bus: each transaction costs a fixed latency plus its
//! bytes at the bus bandwidth, so simulated throughput can be compared with
//! a known limit.

use bes2600_core::bh::{BusError, SdioBus};
use bes2600_core::sdio::Cmd53;

use crate::chip::{Chip, ChipBusError};

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
    /// CMD52 register reads and writes.
    pub reg_ops: u64,
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

fn host_err(e: ChipBusError) -> BusError {
    match e {
        ChipBusError::Crc => BusError::Crc,
        ChipBusError::Timeout => BusError::Timeout,
        ChipBusError::Other => BusError::Other,
    }
}

/// The adapter between the host's seam and the card: the core's CMD53 is
/// handed over as its raw 32-bit argument, which the chip model decodes
/// with its own code.
impl SdioBus for SimBus<'_> {
    fn readb(&mut self, addr: u32) -> Result<u8, BusError> {
        self.account(1);
        self.stats.reg_ops += 1;
        self.chip.readb(addr).map_err(host_err)
    }
    fn writeb(&mut self, addr: u32, val: u8) -> Result<(), BusError> {
        self.account(1);
        self.stats.reg_ops += 1;
        self.chip.writeb(addr, val).map_err(host_err)
    }
    fn cmd53_read(&mut self, cmd: Cmd53, buf: &mut [u8]) -> Result<(), BusError> {
        self.account(buf.len());
        self.stats.data_reads += 1;
        let r = self.chip.cmd53_read(cmd.arg, buf).map_err(host_err);
        if r.is_ok() {
            self.stats.bytes_read += buf.len() as u64;
        }
        r
    }
    fn cmd53_write(&mut self, cmd: Cmd53, data: &[u8]) -> Result<(), BusError> {
        self.account(data.len());
        self.stats.writes += 1;
        self.stats.bytes_written += data.len() as u64;
        self.chip.cmd53_write(cmd.arg, data).map_err(host_err)
    }
}
