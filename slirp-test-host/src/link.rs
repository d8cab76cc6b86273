//! The simulated Ethernet cable between the guest and the core, with seeded faults.
//!
//! Each direction is a lane with its own fault settings and its own random stream, so the faults
//! one direction suffers do not depend on how much traffic the other carries. A frame sent at
//! `now` is scheduled for delivery at `now` plus the lane's latency (and, if it is picked for
//! that, a reordering hold-back); frames due at the same instant come out in the order they were
//! sent. Everything is decided by the seed: the same seed and the same traffic give the same
//! losses, copies, flipped bits and delivery times on every platform.

use core::time::Duration;
use std::collections::BTreeMap;

use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg64Mcg;
use slirp_core::Instant;

/// Which way a frame travels on the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// From the guest to the core (the guest's transmit side).
    ToCore,
    /// From the core to the guest (the guest's receive side).
    ToGuest,
}

/// Fault settings of one direction of the link. Probabilities are per frame, in `0.0..=1.0`.
///
/// The default is a perfect link: no loss, no delay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFaults {
    /// Chance that a frame is dropped.
    pub loss: f64,
    /// Chance that a frame is delivered twice.
    pub duplicate: f64,
    /// Chance that a frame is held back by up to [`LinkFaults::reorder_delay`], letting frames
    /// sent after it overtake it.
    pub reorder: f64,
    /// Longest hold-back of a reordered frame.
    pub reorder_delay: Duration,
    /// Chance that one bit of a delivered copy is flipped (anywhere in the frame, Ethernet header
    /// included; one bit, so every IPv4, ICMP, UDP or TCP checksum that covers it catches it).
    pub corrupt: f64,
    /// Fixed latency of every frame.
    pub delay: Duration,
    /// Extra random latency, uniform in `0..=jitter` (frames may overtake each other).
    pub jitter: Duration,
    /// Serialization rate in bytes per second (`None`: infinitely fast).
    pub bandwidth: Option<u64>,
}

impl Default for LinkFaults {
    fn default() -> LinkFaults {
        LinkFaults::NONE
    }
}

impl LinkFaults {
    /// A perfect link.
    pub const NONE: LinkFaults = LinkFaults {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_delay: Duration::from_millis(2),
        corrupt: 0.0,
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        bandwidth: None,
    };

    /// A hostile but usable link: 10 % loss, 5 % duplicates, 10 % reordering, 5 % corruption,
    /// 100 µs latency with 50 µs of jitter.
    pub const fn chaos() -> LinkFaults {
        LinkFaults {
            loss: 0.10,
            duplicate: 0.05,
            reorder: 0.10,
            reorder_delay: Duration::from_millis(2),
            corrupt: 0.05,
            delay: Duration::from_micros(100),
            jitter: Duration::from_micros(50),
            bandwidth: None,
        }
    }

    /// Whether this link can change, drop or add frames (latency alone does not count).
    pub fn is_lossless(&self) -> bool {
        self.loss <= 0.0 && self.duplicate <= 0.0 && self.corrupt <= 0.0
    }
}

/// What happened to the frames of one direction so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames handed to the link.
    pub sent: u64,
    /// Frames handed out at the far end (duplicates count twice).
    pub delivered: u64,
    /// Frames dropped by the loss fault.
    pub lost: u64,
    /// Extra copies made by the duplication fault.
    pub duplicated: u64,
    /// Copies with a flipped bit.
    pub corrupted: u64,
    /// Copies held back by the reordering fault.
    pub reordered: u64,
}

/// What the link did with one frame handed to [`GuestLink::send`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Copies scheduled for delivery: 0 (lost), 1, or 2 (duplicated).
    pub copies: u8,
    /// Whether any copy had a bit flipped.
    pub corrupted: bool,
    /// Whether any copy was held back to be reordered.
    pub reordered: bool,
}

/// A frame handed out by [`GuestLink::pop_due`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Which way it travelled.
    pub direction: Direction,
    /// When it was due (never later than the `now` it was popped at).
    pub due: Instant,
    /// The bytes as they arrive (possibly corrupted).
    pub frame: Vec<u8>,
}

/// One direction of the link.
#[derive(Debug)]
struct Lane {
    faults: LinkFaults,
    rng: Pcg64Mcg,
    /// Frames on the wire, keyed by (due instant, global send order).
    in_flight: BTreeMap<(Instant, u64), Vec<u8>>,
    /// When the transmitter finishes serializing the frames already accepted (bandwidth).
    busy_until: Instant,
    stats: LinkStats,
}

impl Lane {
    fn new(seed: u64) -> Lane {
        Lane {
            faults: LinkFaults::NONE,
            rng: Pcg64Mcg::seed_from_u64(seed),
            in_flight: BTreeMap::new(),
            busy_until: Instant::ZERO,
            stats: LinkStats::default(),
        }
    }

    /// A uniform draw in `[0, 1)` with 53 bits of precision.
    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Draws a number even when the probability is zero, so that turning one fault on does not
    /// shift the random stream of the others.
    fn chance(&mut self, p: f64) -> bool {
        let draw = self.uniform();
        draw < p
    }

    /// A uniform duration in `0..=max`, at microsecond resolution.
    fn up_to(&mut self, max: Duration) -> Duration {
        let draw = self.rng.next_u64();
        let max = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        match max.checked_add(1) {
            Some(span) => Duration::from_micros(draw % span),
            None => Duration::from_micros(draw),
        }
    }

    fn send(&mut self, now: Instant, frame: &[u8], seq: &mut u64) -> SendReport {
        self.stats.sent += 1;
        let mut report = SendReport::default();
        let lost = self.chance(self.faults.loss);
        let duplicated = self.chance(self.faults.duplicate);
        if lost {
            self.stats.lost += 1;
            return report;
        }
        let copies = if duplicated { 2 } else { 1 };
        for _ in 0..copies {
            let mut bytes = frame.to_vec();
            let corrupt = self.chance(self.faults.corrupt);
            let bit = self.rng.next_u64();
            if corrupt && !bytes.is_empty() {
                let bit = (bit % (bytes.len() as u64 * 8)) as usize;
                bytes[bit / 8] ^= 1 << (bit % 8);
                self.stats.corrupted += 1;
                report.corrupted = true;
            }
            let departure = self.serialize(now, bytes.len());
            let jitter = self.up_to(self.faults.jitter);
            let reorder = self.chance(self.faults.reorder);
            let hold = self.up_to(self.faults.reorder_delay);
            let mut due = departure + self.faults.delay + jitter;
            if reorder {
                // At least a microsecond, so the frame really lands behind the ones sent next.
                due = due + hold.max(Duration::from_micros(1));
                self.stats.reordered += 1;
                report.reordered = true;
            }
            self.in_flight.insert((due, *seq), bytes);
            *seq += 1;
            report.copies += 1;
        }
        self.stats.duplicated += u64::from(report.copies.saturating_sub(1));
        report
    }

    /// When a frame of `len` bytes handed over at `now` has left the transmitter.
    fn serialize(&mut self, now: Instant, len: usize) -> Instant {
        let Some(rate) = self.faults.bandwidth.filter(|&rate| rate > 0) else {
            return now;
        };
        let start = now.max(self.busy_until);
        let micros = (len as u64).saturating_mul(1_000_000).div_ceil(rate);
        self.busy_until = start + Duration::from_micros(micros);
        self.busy_until
    }

    fn next_due(&self) -> Option<(Instant, u64)> {
        self.in_flight.keys().next().copied()
    }
}

/// The guest's Ethernet link to the core: two lanes of in-flight frames with seeded faults.
#[derive(Debug)]
pub struct GuestLink {
    to_core: Lane,
    to_guest: Lane,
    /// Send order across both lanes, to break ties between frames due at the same instant.
    next_seq: u64,
}

impl GuestLink {
    /// A perfect link whose future faults will be drawn from `seed`.
    pub fn new(seed: u64) -> GuestLink {
        // Independent streams per direction, derived from the one seed.
        GuestLink {
            to_core: Lane::new(seed ^ 0x746f_636f_7265_0001),
            to_guest: Lane::new(seed ^ 0x746f_6775_6573_7402),
            next_seq: 0,
        }
    }

    /// A link with the same `faults` in both directions.
    pub fn with_faults(seed: u64, faults: LinkFaults) -> GuestLink {
        let mut link = GuestLink::new(seed);
        link.set_faults(Direction::ToCore, faults);
        link.set_faults(Direction::ToGuest, faults);
        link
    }

    fn lane(&self, direction: Direction) -> &Lane {
        match direction {
            Direction::ToCore => &self.to_core,
            Direction::ToGuest => &self.to_guest,
        }
    }

    fn lane_mut(&mut self, direction: Direction) -> &mut Lane {
        match direction {
            Direction::ToCore => &mut self.to_core,
            Direction::ToGuest => &mut self.to_guest,
        }
    }

    /// Changes the faults of one direction from now on (frames in flight keep their fate).
    pub fn set_faults(&mut self, direction: Direction, faults: LinkFaults) {
        self.lane_mut(direction).faults = faults;
    }

    /// The faults of one direction.
    pub fn faults(&self, direction: Direction) -> LinkFaults {
        self.lane(direction).faults
    }

    /// Counters of one direction.
    pub fn stats(&self, direction: Direction) -> LinkStats {
        self.lane(direction).stats
    }

    /// Puts a frame on the wire at `now`.
    pub fn send(&mut self, direction: Direction, now: Instant, frame: &[u8]) -> SendReport {
        let mut seq = self.next_seq;
        let report = self.lane_mut(direction).send(now, frame, &mut seq);
        self.next_seq = seq;
        report
    }

    /// Frames on the wire in one direction (sent, not yet delivered).
    pub fn in_flight(&self, direction: Direction) -> usize {
        self.lane(direction).in_flight.len()
    }

    /// When the next frame (either direction) is due, if any is on the wire.
    pub fn next_due(&self) -> Option<Instant> {
        let a = self.to_core.next_due().map(|(at, _)| at);
        let b = self.to_guest.next_due().map(|(at, _)| at);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes the earliest frame due at or before `now`, in either direction.
    pub fn pop_due(&mut self, now: Instant) -> Option<Delivery> {
        let direction = match (self.to_core.next_due(), self.to_guest.next_due()) {
            (Some(a), Some(b)) => {
                if a <= b {
                    Direction::ToCore
                } else {
                    Direction::ToGuest
                }
            }
            (Some(_), None) => Direction::ToCore,
            (None, Some(_)) => Direction::ToGuest,
            (None, None) => return None,
        };
        let lane = self.lane_mut(direction);
        let entry = lane.in_flight.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let (due, _) = *entry.key();
        let frame = entry.remove();
        lane.stats.delivered += 1;
        Some(Delivery { direction, due, frame })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(link: &mut GuestLink, now: Instant) -> Vec<Delivery> {
        core::iter::from_fn(|| link.pop_due(now)).collect()
    }

    #[test]
    fn perfect_link_delivers_in_order_at_once() {
        let mut link = GuestLink::new(1);
        let t = Instant::from_millis(1);
        for i in 0..5u8 {
            let report = link.send(Direction::ToCore, t, &[i; 60]);
            assert_eq!(report, SendReport { copies: 1, corrupted: false, reordered: false });
        }
        link.send(Direction::ToGuest, t, &[9; 60]);
        let got = drain(&mut link, t);
        let firsts: Vec<u8> = got.iter().map(|d| d.frame[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 3, 4, 9]);
        assert_eq!(got[5].direction, Direction::ToGuest);
        assert_eq!(link.stats(Direction::ToCore).delivered, 5);
        assert_eq!(link.next_due(), None);
    }

    #[test]
    fn delay_holds_frames_until_due() {
        let mut link = GuestLink::new(1);
        let faults = LinkFaults { delay: Duration::from_millis(3), ..LinkFaults::NONE };
        link.set_faults(Direction::ToGuest, faults);
        link.send(Direction::ToGuest, Instant::ZERO, &[1; 60]);
        assert_eq!(link.next_due(), Some(Instant::from_millis(3)));
        assert!(link.pop_due(Instant::from_millis(2)).is_none());
        assert_eq!(link.pop_due(Instant::from_millis(3)).unwrap().due, Instant::from_millis(3));
    }

    #[test]
    fn bandwidth_spaces_frames() {
        let mut link = GuestLink::new(1);
        let faults = LinkFaults { bandwidth: Some(1_000_000), ..LinkFaults::NONE };
        link.set_faults(Direction::ToCore, faults);
        link.send(Direction::ToCore, Instant::ZERO, &[0; 1000]);
        link.send(Direction::ToCore, Instant::ZERO, &[0; 1000]);
        let first = link.pop_due(Instant::from_secs(1)).unwrap().due;
        let second = link.pop_due(Instant::from_secs(1)).unwrap().due;
        assert_eq!(first, Instant::from_millis(1));
        assert_eq!(second, Instant::from_millis(2));
    }

    #[test]
    fn faults_happen_at_roughly_their_rates() {
        let mut link = GuestLink::with_faults(7, LinkFaults::chaos());
        for _ in 0..10_000 {
            link.send(Direction::ToCore, Instant::ZERO, &[0; 100]);
        }
        let stats = link.stats(Direction::ToCore);
        assert!((800..1200).contains(&stats.lost), "{stats:?}");
        assert!((300..700).contains(&stats.duplicated), "{stats:?}");
        assert!((300..700).contains(&stats.corrupted), "{stats:?}");
        assert!((700..1300).contains(&stats.reordered), "{stats:?}");
        let delivered = drain(&mut link, Instant::from_secs(1));
        assert_eq!(delivered.len() as u64, stats.sent - stats.lost + stats.duplicated);
        let flipped = delivered.iter().filter(|d| d.frame != [0; 100]).count();
        assert_eq!(flipped as u64, stats.corrupted);
        for d in &delivered {
            let ones: u32 = d.frame.iter().map(|b| b.count_ones()).sum();
            assert!(ones <= 1, "exactly one bit flips per corrupted copy");
        }
    }

    #[test]
    fn same_seed_same_fate_other_seed_other_fate() {
        let run = |seed| {
            let mut link = GuestLink::with_faults(seed, LinkFaults::chaos());
            for i in 0..200u32 {
                link.send(Direction::ToGuest, Instant::from_micros(u64::from(i)), &i.to_le_bytes());
            }
            drain(&mut link, Instant::from_secs(1))
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn reordering_lets_later_frames_overtake() {
        let faults = LinkFaults { reorder: 0.5, ..LinkFaults::NONE };
        let mut link = GuestLink::with_faults(11, faults);
        for i in 0..100u8 {
            link.send(Direction::ToCore, Instant::ZERO, &[i]);
        }
        let order: Vec<u8> = drain(&mut link, Instant::from_secs(1)).iter().map(|d| d.frame[0]).collect();
        assert_eq!(order.len(), 100);
        assert!(order.windows(2).any(|w| w[0] > w[1]), "some frame was overtaken");
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<u8>>());
    }
}
