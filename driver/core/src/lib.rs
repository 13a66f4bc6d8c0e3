//! Sans-I/O core of the BES2600 driver.
//!
//! `no_std`, no `alloc`, no external crates: the kernel module includes this
//! source by path (Kbuild compiles each `.rs` as its own crate).
//!
//! Layers, bottom up: [`wsm`] (message codec), [`sdio`] (bus framing),
//! [`credits`] (the input-buffer ledger and sequence counters), [`queue`]
//! (TX queues and pending records), [`bh`] (the bottom-half state machine,
//! the single writer of credit/sequence state), [`scan`] and [`pm`]
//! (policies of the mac80211-facing layer).
//!
//! # Embedding (what the kernel module will do)
//!
//! ```text
//! irq handler (hard IRQ):      if line.irq() { wake_up(bh) }
//! mac80211 tx (softirq):       spin_lock_bh(shared); shared.queues.put(..); unlock;
//!                              if line.kick_tx() { wake_up(bh) }
//! mac80211 ops (process ctx):  scan guard / PM policy decide; shared.cmd.put(req);
//!                              if line.kick_tx() { wake_up(bh) }
//! bh kthread:                  let bh = BhContext::new();   // on its own stack
//!                              loop { wait_event_timeout(line.pending(),
//!                                                        bh.next_deadline());
//!                                     bh.run(line.take(), &mut sdio, &mut bufs,
//!                                            &mut mac80211, &mut LockBh(shared),
//!                                            jiffies_ms)? }
//!                              on Err(Halted): bh.reset(..), reload firmware
//!                              (fwload::load_all), continue
//! ```
//!
//! `sdio` implements `bh::SdioBus` with `sdio_readb`/`sdio_writeb` and raw
//! CMD53 requests carrying the core's `sdio::Cmd53` arguments; `bufs` are
//! `kmalloc`ed DMA-safe buffers; `shared` is allocated zeroed (see
//! `queue::TxShared`). `bh` (the `BhContext`) is created by the kthread and
//! cannot leave it (neither `Send` nor `Sync`); `line` (`IrqLine`)
//! and `shared` (`TxShared` behind one `spin_lock_bh`) are the only shared
//! state. `Upper::rx_batch` runs inside one `local_bh_disable` +
//! `rcu_read_lock` section and hands the batch to `ieee80211_rx_list`.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "std")]
extern crate std;

pub mod bh;
pub mod credits;
pub mod fwload;
pub mod pm;
pub mod queue;
pub mod scan;
pub mod sdio;
pub mod wsm;
