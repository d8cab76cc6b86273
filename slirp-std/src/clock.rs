//! The monotonic clock the event loop hands to the core.

use slirp_core::{Clock, Instant};

/// A monotonic clock counting from its creation (`std::time::Instant`, so `CLOCK_MONOTONIC`
/// on Linux: it never jumps when the wall clock is set).
#[derive(Clone, Copy, Debug)]
pub struct StdClock {
    origin: std::time::Instant,
}

impl StdClock {
    /// A clock whose zero is now.
    pub fn new() -> StdClock {
        StdClock { origin: std::time::Instant::now() }
    }

    /// How long from now until `deadline` (zero if it has passed).
    pub fn until(&self, deadline: Instant) -> std::time::Duration {
        let now = self.now();
        std::time::Duration::from_micros(deadline.total_micros().saturating_sub(now.total_micros()))
    }
}

impl Default for StdClock {
    fn default() -> Self {
        StdClock::new()
    }
}

impl Clock for StdClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.origin.elapsed().as_micros() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_until() {
        let c = StdClock::new();
        let a = c.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = c.now();
        assert!(b.total_micros() >= a.total_micros() + 2000);
        assert_eq!(c.until(a), std::time::Duration::ZERO);
        let later = Instant::from_micros(b.total_micros() + 5_000_000);
        assert!(c.until(later) > std::time::Duration::from_secs(4));
    }
}
