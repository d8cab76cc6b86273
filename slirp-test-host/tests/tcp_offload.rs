//! Bulk TCP through the NAT with the guest link's offloads on: the core sends partial checksums
//! and TCP super-frames, the simulation's offloading link ([`segment_offloaded`]) finishes and
//! splits them as a Linux TAP would, and the smoltcp guest at MTU 1500 (which verifies every
//! checksum) must receive the SHA-256-checked stream intact, on a perfect link and under seeded
//! loss, reordering, duplication and delay applied to the split segments.
//!
//! [`segment_offloaded`]: slirp_test_host::segment_offloaded

mod common;

use core::cell::RefCell;
use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;
use std::rc::Rc;

use common::*;
use slirp_test_host::sha256::{pattern_digest, Sha256};
use slirp_test_host::smoltcp::wire::{EthernetFrame, IpAddress, IpProtocol, Ipv4Packet, TcpPacket};
use slirp_test_host::{
    Direction, FakeNet, GsoStats, LinkFaults, SimConfig, Simulation, TcpService, TraceKind, GUEST_MAC,
};

const SOURCE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 20), 5001);
const SINK: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 21), 5002);
const GUEST_BUFFER: usize = 256 * 1024;
const MIB: u64 = 1024 * 1024;
/// Largest frame an MTU-1500 guest takes.
const FRAME_MAX: usize = 1514;

/// What the wire carried toward the guest, checked frame by frame as it was sent.
#[derive(Clone, Debug, Default)]
struct WireCheck {
    /// Frames put on the wire toward the guest.
    frames: u64,
    /// Of those, larger than the guest's MTU.
    oversize: u64,
    /// TCP segments toward the guest whose IPv4 or TCP checksum does not verify.
    bad_checksums: u64,
    /// TCP segments toward the guest carrying data.
    data_segments: u64,
    /// The largest TCP payload seen toward the guest.
    largest_payload: usize,
    /// Data segments shorter than the largest so far that carry neither PSH nor FIN: a sender
    /// cut short by its window, not by the data it had.
    runts: u64,
    /// IPv4 frames toward the guest whose id an earlier frame already carried (the ids of a
    /// run shorter than 65 536 frames on a link without duplicates should all differ: the core
    /// sends TCP without DF).
    repeated_ip_ids: u64,
    /// The ids seen.
    ip_ids: IdSet,
}

/// A set of IPv4 ids (printed as its size).
#[derive(Clone)]
struct IdSet(Vec<bool>);

impl Default for IdSet {
    fn default() -> IdSet {
        IdSet(vec![false; 65536])
    }
}

impl std::fmt::Debug for IdSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ids", self.0.iter().filter(|&&b| b).count())
    }
}

fn check_frame(frame: &[u8], c: &mut WireCheck) {
    c.frames += 1;
    if frame.len() > FRAME_MAX {
        c.oversize += 1;
    }
    let Ok(eth) = EthernetFrame::new_checked(frame) else { return };
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return };
    if std::mem::replace(&mut c.ip_ids.0[usize::from(ip.ident())], true) {
        c.repeated_ip_ids += 1;
    }
    if ip.next_header() != IpProtocol::Tcp {
        return;
    }
    let Ok(tcp) = TcpPacket::new_checked(ip.payload()) else {
        c.bad_checksums += 1;
        return;
    };
    let (src, dst) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
    if !ip.verify_checksum() || !tcp.verify_checksum(&src, &dst) {
        c.bad_checksums += 1;
    }
    if !tcp.payload().is_empty() {
        c.data_segments += 1;
        c.largest_payload = c.largest_payload.max(tcp.payload().len());
        if tcp.payload().len() < c.largest_payload && !tcp.psh() && !tcp.fin() {
            c.runts += 1;
        }
    }
}

/// The result of one run.
#[derive(Debug)]
struct Run {
    took: Duration,
    gso: GsoStats,
    wire: WireCheck,
    /// SHA-256 of the capture (with `capture`), and its length.
    pcap: Option<([u8; 32], usize)>,
}

/// Downloads `len` bytes from a source (and, with `upload`, uploads as many to a sink at the same
/// time) with offloads on or off, checks the hashes, then checks everything is closed once
/// TIME_WAIT passes.
fn transfer(seed: u64, len: u64, faults: LinkFaults, offload: bool, upload: bool, capture: bool) -> Run {
    let mut net = FakeNet::internet();
    net.add_tcp_service(SOURCE, TcpService::Source { bytes: len, seed: seed ^ 0xd0 });
    net.add_tcp_service(SINK, TcpService::Sink);
    let mut config = SimConfig::seeded(seed);
    config.offload = offload;
    config.capture = capture;
    let mut sim: Simulation<FakeNet> = boot(config, net);
    assert_eq!(sim.core().guest_offload().segmentation, offload);
    let wire = Rc::new(RefCell::new(WireCheck::default()));
    let w = wire.clone();
    sim.set_tracer(move |ev| {
        if ev.direction == Direction::ToGuest && matches!(ev.kind, TraceKind::Sent(_)) {
            check_frame(ev.frame, &mut w.borrow_mut());
        }
    });
    sim.link_mut().set_faults(Direction::ToCore, faults);
    sim.link_mut().set_faults(Direction::ToGuest, faults);
    let down = sim.guest_mut().tcp_connect(SOURCE, 50_001, GUEST_BUFFER);
    let mut streams = vec![GuestStream::new(down).hashing_only()];
    if upload {
        let up = sim.guest_mut().tcp_connect(SINK, 50_002, 16 * 1024);
        streams.push(GuestStream::new(up).uploading(seed ^ 0xa0, len, true));
    }
    let limit = Duration::from_secs(900);
    let result = drive(&mut sim, &mut streams, limit, |sim, s| s.iter().all(|s| s.remote_done(sim)));
    let took = result.unwrap_or_else(|e| {
        panic!(
            "seed {seed}: {e}; down {} of {len}; core {:?}; gso {:?}; drops {:?}",
            streams[0].received(),
            sim.core().tcp_connections().collect::<Vec<_>>(),
            sim.gso_stats(),
            drops(&sim)
        )
    });
    check_transfers_and_settle(&mut sim, &mut streams, seed, len);
    let wire = wire.borrow().clone();
    // What every run with or without offloads must show: the guest saw MTU-sized frames with
    // valid checksums only, and the link dropped nothing as malformed.
    assert_eq!(wire.oversize, 0, "seed {seed}: frames larger than the MTU reached the wire: {wire:?}");
    assert_eq!(wire.bad_checksums, 0, "seed {seed}: bad checksums on the wire: {wire:?}");
    assert!(wire.largest_payload <= 1460, "seed {seed}: {wire:?}");
    let gso = *sim.gso_stats();
    assert_eq!(gso.dropped, 0, "seed {seed}: the core sent malformed offloaded frames: {gso:?}");
    assert_eq!(gso.gso_single, 0, "seed {seed}: segmentation asked for frames within the MSS: {gso:?}");
    if offload {
        // The guest's MSS less the TCP options (timestamps) the core puts in every segment.
        assert!(
            gso.super_frames == 0 || (1400..=1460).contains(&gso.smallest_gso_size),
            "seed {seed}: segment size {gso:?}"
        );
        assert!(gso.largest_gso_size <= 1460, "seed {seed}: segment size {gso:?}");
    } else {
        assert_eq!(gso, GsoStats::default(), "seed {seed}: offloads off, yet the link had work");
    }
    let pcap = sim.pcap_bytes().map(|p| {
        let mut h = Sha256::new();
        h.update(p);
        (h.finish(), p.len())
    });
    Run { took, gso, wire, pcap }
}

#[test]
fn thirty_two_mib_download_on_a_perfect_link_travels_in_super_frames() {
    let t = std::time::Instant::now();
    let len = 32 * MIB;
    let on = transfer(1, len, LinkFaults::NONE, true, false, false);
    eprintln!("32 MiB with offloads: {:?} virtual, {:?}; wire {:?}; {:?} real", on.took, on.gso, on.wire, t.elapsed());
    // Bulk data goes out as super-frames, many MSS-sized segments each: most of the stream.
    assert!(on.gso.super_frames >= 100, "{:?}", on.gso);
    assert!(on.gso.super_payload_bytes >= len * 3 / 4, "{:?}", on.gso);
    assert!(on.gso.segments >= 4 * on.gso.super_frames, "super-frames of several segments: {:?}", on.gso);
    assert!(on.gso.largest_payload > 16 * 1024, "{:?}", on.gso);
    // Each super-frame's segments are full but the last: the wire carried at least that many.
    assert!(on.wire.data_segments >= on.gso.segments, "{:?} {:?}", on.wire, on.gso);
    assert_eq!(on.wire.largest_payload, usize::from(on.gso.largest_gso_size), "{:?}", on.wire);

    // The same download without offloads: no super-frame, same segment size on the wire.
    let t = std::time::Instant::now();
    let off = transfer(1, len, LinkFaults::NONE, false, false, false);
    eprintln!("32 MiB without offloads: {:?} virtual, wire {:?}; {:?} real", off.took, off.wire, t.elapsed());
    assert_eq!(off.wire.largest_payload, on.wire.largest_payload);
    // The checks the ignored tests below make hold without offloads.
    assert_eq!(off.wire.runts, 0, "{:?}", off.wire);
    assert_eq!(off.wire.repeated_ip_ids, 0, "{:?}", off.wire);
}

/// A super-frame becomes several datagrams on the guest's side, ids `id..id+N`: the core
/// advances its id counter by N so no later frame repeats them (RFC 6864: TCP goes without DF).
/// Found by this test: the core used to advance by one per super-frame.
#[test]
fn split_segments_carry_ip_ids_no_other_frame_carries() {
    let on = transfer(3, 2 * MIB, LinkFaults::NONE, true, false, false);
    assert!(on.gso.super_frames > 0, "{:?}", on.gso);
    assert!(on.wire.frames < 65_536, "ids would wrap: {:?}", on.wire);
    assert_eq!(on.wire.repeated_ip_ids, 0, "{:?}", on.wire);
}

/// A super-frame that is not the end of the queued data ends on a segment boundary, so the
/// link splits it into full segments only (Linux: `tcp_mss_split_point`). Found by this test:
/// every 64 KiB super-frame used to end in a short segment.
#[test]
fn super_frames_split_into_full_segments_until_the_data_runs_out() {
    let on = transfer(3, 2 * MIB, LinkFaults::NONE, true, false, false);
    assert!(on.gso.super_frames > 0, "{:?}", on.gso);
    assert_eq!(on.wire.runts, 0, "{:?}", on.wire);
}

#[test]
fn four_mib_downloads_under_loss_reordering_and_duplicates_over_twelve_seeds() {
    let t = std::time::Instant::now();
    let mut supers = 0;
    for seed in 200..212u64 {
        let loss = [0.005, 0.01, 0.02, 0.05][(seed % 4) as usize];
        let run = transfer(seed, 4 * MIB, faults(loss), true, false, false);
        eprintln!("seed {seed}, loss {loss}: {:?} virtual, {:?}", run.took, run.gso);
        assert!(run.gso.super_frames > 0, "seed {seed}: no super-frame: {:?}", run.gso);
        supers += run.gso.super_frames;
    }
    eprintln!("12 seeds x 4 MiB down: {supers} super-frames, {:?} real", t.elapsed());
}

#[test]
fn one_mib_each_way_under_loss_with_offloads() {
    // The upload makes the core hold out-of-order guest data: its super-frames then carry SACK
    // blocks, copied onto every segment, with a smaller segment size.
    let t = std::time::Instant::now();
    for seed in [300, 301] {
        let run = transfer(seed, MIB, faults(0.02), true, true, false);
        eprintln!("seed {seed}: {:?} virtual, {:?}", run.took, run.gso);
        assert!(run.gso.super_frames > 0, "seed {seed}: no super-frame: {:?}", run.gso);
    }
    eprintln!("2 seeds x 1 MiB each way: {:?} real", t.elapsed());
}

#[test]
fn the_same_seed_gives_the_same_run_with_offloads() {
    let a = transfer(42, MIB, faults(0.02), true, false, true);
    let b = transfer(42, MIB, faults(0.02), true, false, true);
    assert!(a.pcap.is_some());
    assert!(a.pcap == b.pcap, "captures differ: {:?} vs {:?}", a.pcap, b.pcap);
    assert_eq!(a.gso, b.gso);
    assert_eq!(a.took, b.took);
    assert_eq!(a.wire.frames, b.wire.frames);
    assert!(a.gso.super_frames > 0, "{:?}", a.gso);
    // And the guest's frames are not the ones without offloads: the capture shows the split.
    let c = transfer(42, MIB, faults(0.02), false, false, true);
    assert!(a.pcap != c.pcap, "offloads changed nothing on the wire");
}

#[test]
fn the_guest_mac_is_on_every_split_segment() {
    // Segments are copies of the super-frame's headers: addressed like every other frame.
    let mut net = FakeNet::internet();
    net.add_tcp_service(SOURCE, TcpService::Source { bytes: MIB, seed: 9 });
    let mut sim: Simulation<FakeNet> = boot(SimConfig::seeded(9).with_offload(), net);
    let log = record_frames(&mut sim);
    let down = sim.guest_mut().tcp_connect(SOURCE, 50_003, GUEST_BUFFER);
    let mut streams = [GuestStream::new(down).hashing_only()];
    drive(&mut sim, &mut streams, Duration::from_secs(60), |sim, s| s[0].remote_done(sim)).expect("download");
    assert!(streams[0].down.finish() == pattern_digest(9, MIB), "download hash");
    assert!(sim.gso_stats().super_frames > 0, "{:?}", sim.gso_stats());
    let segs = tcp_segments(&log, Direction::ToGuest);
    assert!(segs.iter().filter(|s| s.len > 0).count() as u64 >= sim.gso_stats().segments);
    for (_, dir, frame) in log.borrow().iter().filter(|(_, d, _)| *d == Direction::ToGuest) {
        let eth = EthernetFrame::new_checked(&frame[..]).expect("Ethernet");
        assert!(eth.dst_addr() == GUEST_MAC || eth.dst_addr().is_broadcast(), "{dir:?} {:?}", eth.dst_addr());
    }
}
