//! Engine-level behaviour tests, bounded storage: full queues and reassembly slots drop and count,
//! never grow; `poll_at`.
//!
//! Hand-built guest frames in, emitted frames checked: every one also passes
//! `common::check_frame` (valid Ethernet + ARP/IPv4, checksums, >= 60 bytes, <= MTU + 14). Test
//! names carry the item number of the checklist in `shared/reference/tinyemu-behaviours.md` §13
//! where one applies; where the engine deliberately differs from the original slirp (documented
//! in the module docs of `slirp-core`), the test checks the documented behaviour and says so.

mod common;

use common::*;
use core::time::Duration;
use slirp_core::wire::IpProtocol;
use slirp_core::{Config, DropReason, NoHost, Storage};

#[test]
fn hold_queue_full_drops_are_counted() {
    let mut net = Net::with(Config::default(), Storage::with_capacity(64 * 1024, 200, 1, 65535));
    for seq in 0..4 {
        net.send(&anonymous_ping(seq, &[0xaa; 100]));
    }
    assert_eq!(net.dropped(DropReason::ArpHoldFull), 3);
    assert_eq!(net.recv().len(), 1, "one ARP request");
    // A datagram larger than the whole hold area.
    net.send(&anonymous_ping(9, &[0xaa; 1000]));
    assert_eq!(net.dropped(DropReason::ArpHoldFull), 4);
    let out = net.exchange(&arp_reply(GUEST_MAC, GUEST_IP));
    assert_eq!(out.len(), 1);
    assert_eq!(echo_reply(&out[0]).2, 0);
}

#[test]
fn tx_queue_full_drops_are_counted() {
    // 200 bytes: two 60-byte ARP replies (plus record headers) fit, a third does not.
    let mut net = Net::with(Config::default(), Storage::with_capacity(200, 4096, 1, 65535));
    for _ in 0..3 {
        net.send(&arp_request(GUEST_MAC, GUEST_IP, GATEWAY));
    }
    assert_eq!(net.slirp.tx_queue_len(), 2);
    assert_eq!(net.dropped(DropReason::TxQueueFull), 1);
    assert_eq!(net.recv().len(), 2);
    // A datagram that can never fit.
    assert!(net.exchange(&ping(GUEST_IP, GATEWAY, 1, 1, &[0; 1000])).is_empty());
    assert_eq!(net.dropped(DropReason::TxQueueFull), 2);
    // Room for one fragment of a fragmented reply: it goes out, the rest is counted.
    let mut net = Net::with(Config::default(), Storage::with_capacity(2000, 4096, 1, 65535));
    net.introduce_guest();
    let out = net.exchange(&ping(GUEST_IP, GATEWAY, 1, 1, &data(3000)));
    assert_eq!(out.len(), 1);
    assert!(parse_ip(&out[0]).ip.more_frags);
    assert_eq!(net.dropped(DropReason::TxQueueFull), 1);
}

#[test]
fn link_buffer_too_small_drops_the_frame_and_backpressure_keeps_it() {
    let mut net = Net::new();
    net.send(&arp_request(GUEST_MAC, GUEST_IP, GATEWAY));
    net.send(&arp_request(GUEST_MAC, GUEST_IP, DNS));
    // Not consumed: stays at the head.
    let len = net.slirp.poll_transmit(net.now, &mut NoHost).map(|f| f.len());
    assert_eq!(len, Some(60));
    assert_eq!(net.slirp.tx_queue_len(), 2);
    // A link buffer too small for any of them: each is dropped and counted.
    let mut small = [0u8; 59];
    assert_eq!(net.slirp.poll_transmit_into(net.now, &mut NoHost, &mut small), None);
    assert_eq!(net.dropped(DropReason::TxBufferTooSmall), 2);
    net.send(&arp_request(GUEST_MAC, GUEST_IP, GATEWAY));
    let f = net.slirp.poll_transmit(net.now, &mut NoHost).unwrap();
    f.consume();
    assert_eq!(net.slirp.tx_queue_len(), 0);
    assert_eq!((net.slirp.stats().tx_frames, net.slirp.stats().tx_bytes), (1, 60));
}

#[test]
fn reassembly_slots_full_counted() {
    let mut net = Net::with(Config::default(), Storage::with_capacity(64 * 1024, 4096, 1, 65535));
    net.introduce_guest();
    let msg = echo_request(1, 1, &data(2000));
    let mut a = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    a.ident = 1;
    let mut b = a;
    b.ident = 2;
    // Deliberate: when every slot is busy, the oldest incomplete datagram gives way (counted).
    net.send(&fragment(&a, 0, true, &msg[..1480]));
    net.send(&fragment(&b, 0, true, &msg[..1480]));
    assert_eq!(net.dropped(DropReason::FragmentNoSlot), 1);
    net.send(&fragment(&b, 1480, false, &msg[1480..]));
    assert_eq!(net.recv().len(), 2, "the newer datagram completes");
    // The evicted one lost its head: its tail starts a set that never completes.
    net.send(&fragment(&a, 1480, false, &msg[1480..]));
    net.assert_silent();
    net.advance(30_000);
    assert_eq!(net.dropped(DropReason::FragmentTimeout), 1);
    // No slots at all: every fragment is refused, unfragmented traffic still flows.
    let mut net = Net::with(Config::default(), Storage::with_capacity(64 * 1024, 4096, 0, 0));
    net.introduce_guest();
    net.send(&fragment(&a, 0, true, &msg[..1480]));
    assert_eq!(net.dropped(DropReason::FragmentNoSlot), 1);
    assert_eq!(net.exchange(&ping(GUEST_IP, GATEWAY, 1, 1, b"x")).len(), 1);
}

#[test]
fn datagram_larger_than_the_slot_counted_too_big() {
    let mut net = Net::with(Config::default(), Storage::with_capacity(64 * 1024, 4096, 1, 2048));
    net.introduce_guest();
    let msg = echo_request(1, 1, &data(3000));
    for (off, more, bytes) in split(&msg, 1480) {
        net.send(&fragment(&ip(GUEST_IP, GATEWAY, IpProtocol::Icmp), off, more, &bytes));
    }
    assert!(net.dropped(DropReason::FragmentTooBig) >= 1);
    net.assert_silent();
}

#[test]
fn ping_of_death_dropped() {
    let mut net = Net::new();
    net.introduce_guest();
    let base = ip(GUEST_IP, GATEWAY, IpProtocol::Icmp);
    let msg = echo_request(1, 1, &data(1472));
    net.send(&fragment(&base, 0, true, &msg));
    // The last fragment would end past 65535 bytes of datagram.
    net.send(&fragment(&base, 65528, false, &[0; 16]));
    net.send(&fragment(&base, 65000, false, &[0; 1000]));
    assert_eq!(net.dropped(DropReason::FragmentMalformed), 2);
    net.assert_silent();
    // Also as a lone fragment, and with a non-multiple-of-8 middle fragment.
    net.send(&fragment(&base, 65528, true, &[0; 8 * 100]));
    net.send(&fragment(&base, 0, true, &[0; 13]));
    assert_eq!(net.dropped(DropReason::FragmentMalformed), 4);
    net.assert_silent();
}

#[test]
fn poll_at_is_the_earliest_deadline() {
    let config = Config { arp_hold_timeout: Duration::from_millis(500), ..Config::default() };
    let mut net = Net::with_config(config);
    assert_eq!(net.slirp.poll_at(), None);
    let start = net.now;
    net.send(&fragment(&ip(GUEST2_IP, GATEWAY, IpProtocol::Icmp), 0, true, &[0; 8]));
    assert_eq!(net.slirp.poll_at(), Some(start + Duration::from_secs(30)));
    net.send(&anonymous_ping(1, b"x"));
    assert_eq!(net.slirp.poll_at(), Some(start + Duration::from_millis(500)));
    net.advance(500);
    assert_eq!(net.slirp.poll_at(), Some(start + Duration::from_secs(30)));
    net.advance(29_500);
    assert_eq!(net.slirp.poll_at(), None);
    assert_eq!(net.dropped(DropReason::ArpHoldTimeout), 1);
    assert_eq!(net.dropped(DropReason::FragmentTimeout), 1);
}
