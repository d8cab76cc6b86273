//! Hand-made frames put on the link next to the smoltcp guest: malformed input is counted and
//! dropped, and fragments sent in reverse order are still reassembled.

use core::time::Duration;

use slirp_core::DropReason;
use slirp_test_host::smoltcp::phy::ChecksumCapabilities;
use slirp_test_host::smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Address,
    Ipv4Packet,
};
use slirp_test_host::{SimConfig, Simulation, GUEST_MAC, PING_IDENT};

const GUEST_IP: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);

fn booted(seed: u64) -> Simulation {
    let mut sim = Simulation::new(SimConfig::seeded(seed)).unwrap();
    sim.wait_for_lease(Duration::from_secs(10)).unwrap();
    // Resolves the gateway for smoltcp and opens its ping socket for the replies below.
    sim.ping(GATEWAY, 0, b"warm-up", Duration::from_secs(3)).unwrap();
    sim
}

/// An Ethernet frame from the guest to the gateway carrying `ethertype` and `payload`.
fn frame_to_gateway(sim: &Simulation, ethertype: EthernetProtocol, payload: &[u8]) -> Vec<u8> {
    let repr = EthernetRepr { src_addr: GUEST_MAC, dst_addr: EthernetAddress(sim.core().gateway_mac().0), ethertype };
    let mut frame = vec![0; 14 + payload.len()];
    let mut eth = EthernetFrame::new_unchecked(&mut frame);
    repr.emit(&mut eth);
    eth.payload_mut().copy_from_slice(payload);
    frame
}

/// One IPv4 fragment (header checksum filled in) of a datagram from the guest to the gateway.
fn ipv4_fragment(ident: u16, offset: usize, more: bool, chunk: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0; 20 + chunk.len()];
    let mut ip = Ipv4Packet::new_unchecked(&mut bytes);
    ip.set_version(4);
    ip.set_header_len(20);
    ip.set_total_len((20 + chunk.len()) as u16);
    ip.set_ident(ident);
    ip.set_more_frags(more);
    ip.set_frag_offset(offset as u16);
    ip.set_hop_limit(64);
    ip.set_next_header(IpProtocol::Icmp);
    ip.set_src_addr(GUEST_IP);
    ip.set_dst_addr(GATEWAY);
    ip.fill_checksum();
    ip.payload_mut().copy_from_slice(chunk);
    bytes
}

#[test]
fn malformed_frames_are_counted_and_dropped() {
    let mut sim = booted(21);
    let before = sim.core().stats().clone();

    sim.inject_from_guest(&[0u8; 10]);
    // An ethertype nobody speaks (IEEE 802 local experimental), and IPv6 while it is off.
    let unknown = frame_to_gateway(&sim, EthernetProtocol::Unknown(0x88b5), &[0x60; 40]);
    sim.inject_from_guest(&unknown);
    let ipv6 = frame_to_gateway(&sim, EthernetProtocol::Ipv6, &[0x60; 40]);
    sim.inject_from_guest(&ipv6);
    let mut bad_sum = ipv4_fragment(7, 0, false, &[8, 0, 0, 0, 0, 0, 0, 0]);
    bad_sum[10] ^= 0xff;
    let bad_sum = frame_to_gateway(&sim, EthernetProtocol::Ipv4, &bad_sum);
    sim.inject_from_guest(&bad_sum);
    sim.run_for(Duration::from_millis(10));

    let stats = sim.core().stats();
    for reason in [
        DropReason::EthernetTruncated,
        DropReason::EthernetUnknownType,
        DropReason::Ipv6Disabled,
        DropReason::Ipv4Checksum,
    ] {
        assert_eq!(stats.dropped(reason), before.dropped(reason) + 1, "{reason}");
    }
    assert_eq!(stats.tx_frames, before.tx_frames, "nothing answered garbage");
    // The guest is still served.
    let pong = sim.ping(GATEWAY, 1, b"still there", Duration::from_secs(1)).unwrap();
    assert_eq!(pong.reply.payload, b"still there");
}

#[test]
fn fragments_in_reverse_order_are_reassembled() {
    let mut sim = booted(22);
    let data: Vec<u8> = (0..2500u32).map(|i| (i % 253) as u8).collect();
    let echo = Icmpv4Repr::EchoRequest { ident: PING_IDENT, seq_no: 77, data: &data };
    let mut icmp = vec![0; echo.buffer_len()];
    echo.emit(&mut Icmpv4Packet::new_unchecked(&mut icmp), &ChecksumCapabilities::default());

    // 1000-byte pieces (multiples of 8), sent last first.
    let pieces: Vec<(usize, &[u8])> = icmp.chunks(1000).enumerate().map(|(i, c)| (i * 1000, c)).collect();
    for &(offset, chunk) in pieces.iter().rev() {
        let more = offset + chunk.len() < icmp.len();
        let frame = frame_to_gateway(&sim, EthernetProtocol::Ipv4, &ipv4_fragment(0x4242, offset, more, chunk));
        sim.inject_from_guest(&frame);
    }
    let mut reply = None;
    sim.run_until(
        |sim| {
            reply = sim.guest_mut().recv_ping();
            reply.is_some()
        },
        Duration::from_secs(1),
    )
    .unwrap();
    let reply = reply.unwrap();
    assert_eq!((reply.from, reply.seq_no), (GATEWAY, 77));
    assert_eq!(reply.payload, data);
    assert_eq!(sim.core().stats().reassembled, 1);
}
