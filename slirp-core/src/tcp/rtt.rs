//! Retransmission timeout estimation (RFC 6298) with microsecond arithmetic.
//!
//! The old slirp worked in 500 ms ticks, so its RTO could not go below 1 s on a link whose round
//! trip is a few microseconds. Here the estimator keeps microseconds, the clock granularity `G` is
//! 1 ms (timestamps, RFC 7323, tick in milliseconds) and the floor is the configured minimum RTO.

use core::time::Duration;

/// Clock granularity `G` of RFC 6298 section 2: our timestamps tick in milliseconds.
const GRANULARITY_US: u64 = 1_000;

/// Smoothed RTT and variance, and the RTO they give.
#[derive(Clone, Copy, Debug)]
pub struct RttEstimator {
    srtt_us: u64,
    rttvar_us: u64,
    has_sample: bool,
    rto_us: u64,
    min_us: u64,
    max_us: u64,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RttEstimator {
    /// An estimator with no sample yet: RTO = `initial` (RFC 6298 2.1), within `[min, max]`.
    pub fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        let (min_us, max_us) = (micros(min), micros(max).max(micros(min)));
        RttEstimator {
            srtt_us: 0,
            rttvar_us: 0,
            has_sample: false,
            rto_us: micros(initial).clamp(min_us, max_us),
            min_us,
            max_us,
        }
    }

    /// Takes one measurement (RFC 6298 2.2 and 2.3, alpha 1/8, beta 1/4).
    pub fn sample(&mut self, rtt: Duration) {
        let r = micros(rtt).min(self.max_us);
        if self.has_sample {
            let delta = self.srtt_us.abs_diff(r);
            self.rttvar_us = (3 * self.rttvar_us + delta) / 4;
            self.srtt_us = (7 * self.srtt_us + r) / 8;
        } else {
            self.srtt_us = r;
            self.rttvar_us = r / 2;
            self.has_sample = true;
        }
        let rto = self.srtt_us.saturating_add((4 * self.rttvar_us).max(GRANULARITY_US));
        self.rto_us = rto.clamp(self.min_us, self.max_us);
    }

    /// Whether a measurement was taken.
    pub fn has_sample(&self) -> bool {
        self.has_sample
    }

    /// The smoothed round-trip time (zero before the first sample).
    pub fn srtt(&self) -> Duration {
        Duration::from_micros(self.srtt_us)
    }

    /// The current RTO without backoff.
    pub fn rto(&self) -> Duration {
        Duration::from_micros(self.rto_us)
    }

    /// The RTO doubled `backoff` times (RFC 6298 5.5), capped at the maximum.
    pub fn backed_off(&self, backoff: u8) -> Duration {
        let shifted = self.rto_us.checked_shl(u32::from(backoff.min(32))).unwrap_or(u64::MAX);
        let v = if backoff >= 32 { self.max_us } else { shifted.min(self.max_us) };
        Duration::from_micros(v.max(self.rto_us.min(self.max_us)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_then_smoothing_rfc6298_2() {
        let mut e = RttEstimator::new(Duration::from_secs(1), Duration::from_millis(10), Duration::from_secs(60));
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_millis(100));
        // srtt 100, rttvar 50 → 100 + 200.
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Duration::from_millis(100));
        assert_eq!(e.rto(), Duration::from_micros(100_000 + 4 * 37_500));
    }

    #[test]
    fn min_and_max_bound_rto_rfc6298_2_4() {
        let mut e = RttEstimator::new(Duration::from_millis(200), Duration::from_millis(10), Duration::from_secs(60));
        e.sample(Duration::from_micros(20));
        assert_eq!(e.rto(), Duration::from_millis(10));
        assert_eq!(e.backed_off(1), Duration::from_millis(20));
        assert_eq!(e.backed_off(40), Duration::from_secs(60));
        e.sample(Duration::from_secs(1000));
        assert!(e.rto() <= Duration::from_secs(60));
    }
}
