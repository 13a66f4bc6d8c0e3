//! indicatif helpers: every wait longer than ~2 s shows a spinner or a bar.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

pub fn spinner(msg: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed:>4}] {msg}").expect("static template"),
    );
    pb.set_message(msg.into());
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// A bar over `total_s` seconds.
pub fn seconds_bar(total_s: u64, msg: impl Into<String>) -> ProgressBar {
    let pb = ProgressBar::new(total_s);
    pb.set_style(
        ProgressStyle::with_template("{bar:30} {pos:>4}/{len} s {msg}").expect("static template"),
    );
    pb.set_message(msg.into());
    pb
}
