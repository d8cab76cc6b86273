//! Virtual time: the simulation jumps from deadline to deadline instead of sleeping.

use core::time::Duration;

use slirp_core::{Clock, Instant};

/// A clock that only moves when told to.
///
/// It starts at [`Instant::ZERO`] (or wherever [`VirtualClock::starting_at`] puts it) and never
/// goes backwards: [`VirtualClock::set`] to an earlier instant is ignored, as the core's
/// [`Clock`] contract demands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VirtualClock {
    now: Instant,
}

impl VirtualClock {
    /// A clock reading [`Instant::ZERO`].
    pub const fn new() -> VirtualClock {
        VirtualClock { now: Instant::ZERO }
    }

    /// A clock reading `start`.
    pub const fn starting_at(start: Instant) -> VirtualClock {
        VirtualClock { now: start }
    }

    /// Moves the clock to `at`, unless that would move it backwards.
    pub fn set(&mut self, at: Instant) {
        self.now = self.now.max(at);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        self.now
    }
}

/// Converts a core instant into smoltcp's representation of the same point in time.
pub(crate) fn to_smol(at: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(at.total_micros()).unwrap_or(i64::MAX))
}

/// Converts a smoltcp instant into the core's representation (negative instants clamp to zero).
pub(crate) fn from_smol(at: smoltcp::time::Instant) -> Instant {
    Instant::from_micros(u64::try_from(at.total_micros()).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_only_forward() {
        let mut clock = VirtualClock::new();
        clock.advance(Duration::from_millis(5));
        assert_eq!(clock.now(), Instant::from_millis(5));
        clock.set(Instant::from_millis(2));
        assert_eq!(clock.now(), Instant::from_millis(5));
        clock.set(Instant::from_secs(1));
        assert_eq!(clock.now(), Instant::from_secs(1));
    }

    #[test]
    fn smoltcp_conversion_round_trips() {
        let at = Instant::from_micros(1_234_567);
        assert_eq!(to_smol(at).total_micros(), 1_234_567);
        assert_eq!(from_smol(to_smol(at)), at);
        assert_eq!(from_smol(smoltcp::time::Instant::from_micros(-5)), Instant::ZERO);
    }
}
