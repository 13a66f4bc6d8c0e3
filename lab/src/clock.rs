//! The host's clock as the lab's live loops see it: injected, so the
//! capture's and the ramp's loops run in simulated time in tests.

use std::time::Duration;

/// The host's monotonic clock (injected, so tests run in simulated time).
pub trait Clock {
    /// Seconds since an arbitrary origin.
    fn now_s(&self) -> f64;
    fn sleep_s(&mut self, s: f64);
}

pub struct SystemClock(std::time::Instant);

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock(std::time::Instant::now())
    }
}

impl Clock for SystemClock {
    fn now_s(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
    fn sleep_s(&mut self, s: f64) {
        if s > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(s));
        }
    }
}
