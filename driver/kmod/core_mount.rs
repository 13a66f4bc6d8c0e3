// SPDX-License-Identifier: GPL-2.0

//! The driver core's modules, mounted by path from `driver/core/src`.

#[path = "../core/src/bh.rs"]
pub(crate) mod bh;
#[path = "../core/src/credits.rs"]
pub(crate) mod credits;
#[path = "../core/src/fwload.rs"]
pub(crate) mod fwload;
#[path = "../core/src/pm.rs"]
pub(crate) mod pm;
#[path = "../core/src/queue.rs"]
pub(crate) mod queue;
#[path = "../core/src/scan.rs"]
pub(crate) mod scan;
#[path = "../core/src/sdio.rs"]
pub(crate) mod sdio;
#[path = "../core/src/wsm.rs"]
pub(crate) mod wsm;
