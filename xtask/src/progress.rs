//! The terminal's view of the lab's waits: `besser_lab::progress` reports,
//! this draws (indicatif). Installed for the interactive commands; `cargo
//! xtask test` leaves the lab silent.

use std::time::Duration;

use besser_lab::progress::{Observer, Task};
use indicatif::{ProgressBar, ProgressStyle};

struct Indicatif;

struct Drawn(ProgressBar);

impl Task for Drawn {
    fn position(&self, pos_s: u64) {
        self.0.set_position(pos_s);
    }
    fn message(&self, msg: &str) {
        self.0.set_message(msg.to_string());
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Observer for Indicatif {
    fn start(&self, total_s: Option<u64>, msg: &str) -> Box<dyn Task> {
        let pb = match total_s {
            Some(total) => {
                let pb = ProgressBar::new(total);
                pb.set_style(
                    ProgressStyle::with_template("{bar:30} {pos:>4}/{len} s {msg}")
                        .expect("static template"),
                );
                pb
            }
            None => {
                let pb = ProgressBar::new_spinner();
                pb.set_style(
                    ProgressStyle::with_template("{spinner} [{elapsed:>4}] {msg}")
                        .expect("static template"),
                );
                pb.enable_steady_tick(Duration::from_millis(200));
                pb
            }
        };
        pb.set_message(msg.to_string());
        Box::new(Drawn(pb))
    }
    fn note(&self, msg: &str) {
        eprintln!("{msg}");
    }
}

/// Draw the lab's progress on this terminal from now on.
pub fn install() {
    besser_lab::progress::install(Box::new(Indicatif));
}
