//! Progress of long waits, reported to an observer the CLI installs.
//!
//! The library draws nothing: every wait longer than ~2 s (a VM boot, a
//! fresh boot, a rep's traffic, a capture) opens a [`Bar`] and updates it;
//! messages for the user go through [`note`]. Without an installed
//! [`Observer`] (tests, other embedders) all of it goes nowhere. xtask
//! installs one that draws indicatif bars on the terminal.

use std::sync::OnceLock;

/// Draws (or records) progress.
pub trait Observer: Send + Sync {
    /// A wait starts: of `total_s` seconds, or of unknown length (`None`).
    fn start(&self, total_s: Option<u64>, msg: &str) -> Box<dyn Task>;
    /// A line for the user (`rep 2/3: ok …`).
    fn note(&self, msg: &str);
}

/// One wait in progress.
pub trait Task: Send + Sync {
    fn position(&self, pos_s: u64);
    fn message(&self, msg: &str);
    /// The wait is over: remove it from view.
    fn finish(&self);
}

static OBSERVER: OnceLock<Box<dyn Observer>> = OnceLock::new();

/// Installs the process's observer (once; a second call is refused and
/// returns false).
pub fn install(o: Box<dyn Observer>) -> bool {
    OBSERVER.set(o).is_ok()
}

/// A wait as the library sees it: updates go to the observer, if any.
pub struct Bar(Option<Box<dyn Task>>);

impl Bar {
    pub fn set_position(&self, pos_s: u64) {
        if let Some(t) = &self.0 {
            t.position(pos_s);
        }
    }
    pub fn set_message(&self, msg: impl AsRef<str>) {
        if let Some(t) = &self.0 {
            t.message(msg.as_ref());
        }
    }
    pub fn finish_and_clear(&self) {
        if let Some(t) = &self.0 {
            t.finish();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.finish_and_clear();
    }
}

fn start(total_s: Option<u64>, msg: &str) -> Bar {
    Bar(OBSERVER.get().map(|o| o.start(total_s, msg)))
}

/// A wait of unknown length.
pub fn spinner(msg: impl AsRef<str>) -> Bar {
    start(None, msg.as_ref())
}

/// A wait over `total_s` seconds.
pub fn seconds_bar(total_s: u64, msg: impl AsRef<str>) -> Bar {
    start(Some(total_s), msg.as_ref())
}

/// A line for the user.
pub fn note(msg: impl AsRef<str>) {
    if let Some(o) = OBSERVER.get() {
        o.note(msg.as_ref());
    }
}
