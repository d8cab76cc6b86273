//! The guest's RX budget: the core's frames wait in its queue, not on the floor.

use core::time::Duration;
use std::cell::RefCell;
use std::rc::Rc;

use slirp_test_host::smoltcp::wire::Ipv4Address;
use slirp_test_host::{Direction, LinkFaults, SimConfig, Simulation, TraceKind, PING_IDENT};

const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

/// What the tracer saw on the lane toward the guest.
#[derive(Default)]
struct GuestLane {
    /// Frames sent but not yet delivered, now and at most.
    in_flight: i64,
    most_in_flight: i64,
    sent: Vec<Vec<u8>>,
    delivered: Vec<Vec<u8>>,
}

fn watch_guest_lane(sim: &mut Simulation) -> Rc<RefCell<GuestLane>> {
    let lane = Rc::new(RefCell::new(GuestLane::default()));
    let sink = Rc::clone(&lane);
    sim.set_tracer(move |event| {
        if event.direction != Direction::ToGuest {
            return;
        }
        let mut lane = sink.borrow_mut();
        match event.kind {
            TraceKind::Sent(report) => {
                lane.in_flight += i64::from(report.copies);
                lane.sent.push(event.frame.to_vec());
            }
            TraceKind::Delivered => {
                lane.in_flight -= 1;
                lane.delivered.push(event.frame.to_vec());
            }
        }
        lane.most_in_flight = lane.most_in_flight.max(lane.in_flight);
    });
    lane
}

#[test]
fn budget_of_one_frame_loses_nothing_and_keeps_order() {
    let config = SimConfig {
        guest_rx_capacity: 1,
        ..SimConfig::seeded(6).with_faults(LinkFaults { delay: Duration::from_millis(1), ..LinkFaults::NONE })
    };
    let mut sim = Simulation::new(config).unwrap();
    sim.wait_for_lease(Duration::from_secs(10)).unwrap();
    // Resolve the gateway first so the burst below is all echo traffic.
    sim.ping(GATEWAY, 0, b"warm-up", Duration::from_secs(3)).unwrap();
    let window = watch_guest_lane(&mut sim);

    // A burst: 16 echo requests in one go, plus a fragmented one in the middle.
    for seq in 1..=16u16 {
        let size = if seq == 8 { 3500 } else { 100 };
        sim.guest_mut().send_ping(GATEWAY, PING_IDENT, seq, &vec![seq as u8; size]).unwrap();
    }
    let mut replies = Vec::new();
    let mut most_queued = 0;
    sim.run_until(
        |sim| {
            most_queued = most_queued.max(sim.core().tx_queue_len());
            while let Some(reply) = sim.guest_mut().recv_ping() {
                replies.push(reply);
            }
            replies.len() == 16
        },
        Duration::from_secs(5),
    )
    .unwrap();

    // smoltcp interleaves the fragments of #8 with the next requests, so the core may answer #9
    // first; what matters is that every reply came, and in the order the core sent them.
    let mut seqs: Vec<u16> = replies.iter().map(|r| r.seq_no).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=16).collect::<Vec<u16>>(), "every reply arrived once");
    let lane = window.borrow();
    assert!(lane.sent == lane.delivered, "frames reached the guest in the order they left");
    assert!(lane.sent.len() >= 18, "16 replies, one in 3 fragments");
    for reply in &replies {
        let size = if reply.seq_no == 8 { 3500 } else { 100 };
        assert_eq!(reply.payload, vec![reply.seq_no as u8; size]);
    }
    assert_eq!(lane.most_in_flight, 1, "never more than one frame toward the guest at a time");
    assert!(most_queued > 1, "the core held frames back (saw at most {most_queued} queued)");
    let drops: Vec<_> = sim.core().stats().drops().collect();
    assert!(drops.is_empty(), "unexpected drops: {drops:?}");
}

#[test]
fn zero_budget_holds_everything_until_room_opens() {
    let mut sim = Simulation::new(SimConfig::seeded(7)).unwrap();
    sim.wait_for_lease(Duration::from_secs(10)).unwrap();
    sim.ping(GATEWAY, 0, b"warm-up", Duration::from_secs(3)).unwrap();

    sim.set_guest_rx_capacity(0);
    let sent_before = sim.link().stats(Direction::ToGuest).sent;
    for seq in 1..=4u16 {
        sim.guest_mut().send_ping(GATEWAY, PING_IDENT, seq, b"held").unwrap();
    }
    sim.run_for(Duration::from_millis(50));
    assert_eq!(sim.link().stats(Direction::ToGuest).sent, sent_before);
    assert_eq!(sim.core().tx_queue_len(), 4);

    sim.set_guest_rx_capacity(2);
    let mut seqs = Vec::new();
    sim.run_until(
        |sim| {
            while let Some(reply) = sim.guest_mut().recv_ping() {
                seqs.push(reply.seq_no);
            }
            seqs.len() == 4
        },
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert_eq!(sim.core().stats().dropped_total(), 0);
}
