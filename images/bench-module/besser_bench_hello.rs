// SPDX-License-Identifier: GPL-2.0

//! A minimal out-of-tree Rust module: `cargo xtask bench image` rebuilds it
//! against a besser build tree, boots it on the virtual lab device and checks
//! that it loaded (the driver's edit-build-boot loop, without the driver).

use kernel::prelude::*;

module! {
    type: BenchHello,
    name: "besser_bench_hello",
    author: "besser",
    description: "besser image benchmark module",
    license: "GPL",
}

struct BenchHello;

impl kernel::Module for BenchHello {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        pr_info!("besser bench module loaded\n");
        Ok(BenchHello)
    }
}
