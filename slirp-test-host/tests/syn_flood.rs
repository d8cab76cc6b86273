//! A guest-side SYN flood: tens of thousands of SYNs from spoofed guest-subnet addresses that
//! never complete the handshake. Half-open connections hold at most their share of the table
//! (`TcpConfig::half_open_percent`), the oldest gives way to each new one, and they time out
//! after `TcpConfig::handshake_timeout`, so a working connection made right after the flood (or
//! during it) goes through, and host sockets stay bounded.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::fakenet::ECHO_ADDR;
use slirp_test_host::sha256::pattern_digest;
use slirp_test_host::slirp_core::tcp::TcpConfig;
use slirp_test_host::slirp_core::DropReason;
use slirp_test_host::smoltcp::phy::ChecksumCapabilities;
use slirp_test_host::smoltcp::socket::tcp::State;
use slirp_test_host::smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet,
    Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};
use slirp_test_host::{FakeNet, SimConfig, Simulation, GUEST_MAC};

/// A SYN from `src` (a spoofed guest-subnet address) to `dst`, as a guest would put it on the link.
fn syn_frame(sim: &Simulation<FakeNet>, src: SocketAddrV4, dst: SocketAddrV4, isn: u32) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let (s, d): (Ipv4Address, Ipv4Address) = (*src.ip(), *dst.ip());
    let tcp = TcpRepr {
        src_port: src.port(),
        dst_port: dst.port(),
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(isn as i32),
        ack_number: None,
        window_len: 64240,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None, None, None],
        timestamp: None,
        payload: &[],
    };
    let ip = Ipv4Repr {
        src_addr: s,
        dst_addr: d,
        next_header: IpProtocol::Tcp,
        payload_len: tcp.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: GUEST_MAC,
        dst_addr: EthernetAddress(sim.core().gateway_mac().0),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut frame = vec![0; 14 + 20 + tcp.buffer_len()];
    let mut f = EthernetFrame::new_unchecked(&mut frame);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    tcp.emit(&mut TcpPacket::new_unchecked(p.payload_mut()), &IpAddress::Ipv4(s), &IpAddress::Ipv4(d), &caps);
    frame
}

/// Spoofed source number `i`: addresses 10.0.2.32-10.0.2.250 (clear of the guest's .15), a
/// different port each time.
fn spoofed(i: u32) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 32 + (i % 219) as u8), 1024 + (i * 7919 % 60000) as u16)
}

/// `count` SYNs spread evenly over `over` of virtual time, in 10 ms bursts.
fn flood(sim: &mut Simulation<FakeNet>, first: u32, count: u32, over: Duration) {
    let bursts = (over.as_millis() / 10).max(1) as u32;
    let per = count.div_ceil(bursts);
    let mut sent = 0;
    while sent < count {
        for _ in 0..per.min(count - sent) {
            let i = first + sent;
            let frame = syn_frame(sim, spoofed(i), ECHO_ADDR, i.wrapping_mul(2_654_435_761));
            sim.inject_from_guest(&frame);
            sent += 1;
        }
        sim.run_for(Duration::from_millis(10));
    }
}

/// The guest connects to the echo service and gets `len` bytes back intact; returns how long
/// the handshake took.
fn echo_works(sim: &mut Simulation<FakeNet>, port: u16, len: u64) -> Duration {
    let h = sim.guest_mut().tcp_connect(ECHO_ADDR, port, 64 * 1024);
    let took = wait_state(sim, h, State::Established, Duration::from_secs(2)).expect("established within 2 s");
    let mut s = [GuestStream::new(h).uploading(u64::from(port), len, true)];
    drive(sim, &mut s, Duration::from_secs(10), |sim, s| s[0].remote_done(sim)).expect("echoed and closed");
    assert!(s[0].down.finish() == pattern_digest(u64::from(port), len), "echo came back intact");
    took
}

#[test]
fn a_syn_flood_does_not_lock_the_guest_out() {
    let mut sim = boot_internet(301);
    let table = SimConfig::default().storage.tcp_connections;
    let share = table * usize::from(TcpConfig::default().half_open_percent) / 100;
    flood(&mut sim, 0, 20_000, Duration::from_secs(3));
    let half_open = sim.core().tcp_half_open_count();
    assert!(half_open > 0 && half_open <= share, "{half_open} half-open (share {share})");
    assert!(sim.core().tcp_connection_count() <= share, "only half-open connections were made");
    // Host sockets: at most the half-open share (plus the guest's own, the echo socket...).
    let sockets = sim.host().open_sockets();
    assert!(sockets <= share + 4, "{sockets} host sockets open after the flood");
    let evicted = sim.core().stats().dropped(DropReason::TcpHalfOpenEvicted);
    assert!(evicted >= 20_000 - share as u64, "{evicted} evicted");
    assert_eq!(sim.core().stats().dropped(DropReason::TcpTableFull), 0, "nobody was refused");

    // Right after the flood a real connection goes through at once.
    let took = echo_works(&mut sim, 50_100, 100_000);
    assert!(took < Duration::from_millis(100), "handshake took {took:?}");

    // And during one: the flood goes on while the guest connects.
    let h = sim.guest_mut().tcp_connect(ECHO_ADDR, 50_101, 64 * 1024);
    flood(&mut sim, 20_000, 2_000, Duration::from_millis(300));
    wait_state(&mut sim, h, State::Established, Duration::from_secs(2)).expect("established during the flood");

    // Left alone, half-open connections are gone after the handshake timeout.
    sim.run_for(TcpConfig::default().handshake_timeout + Duration::from_secs(1));
    assert_eq!(sim.core().tcp_half_open_count(), 0);
    assert!(sim.host().open_sockets() <= 4, "{} host sockets still open", sim.host().open_sockets());
    echo_works(&mut sim, 50_102, 10_000);
}

#[test]
fn a_handshake_the_guest_never_completes_times_out_without_pressure() {
    let mut sim = boot_internet(302);
    flood(&mut sim, 0, 10, Duration::from_millis(10));
    assert_eq!(sim.core().tcp_half_open_count(), 10);
    assert_eq!(sim.core().stats().dropped(DropReason::TcpHalfOpenEvicted), 0, "no pressure, no eviction");
    sim.run_for(TcpConfig::default().handshake_timeout - Duration::from_secs(1));
    assert_eq!(sim.core().tcp_half_open_count(), 10, "still within the handshake timeout");
    sim.run_for(Duration::from_secs(2));
    assert_eq!(sim.core().tcp_half_open_count(), 0);
    assert_eq!(sim.core().tcp_connection_count(), 0);
}
