//! TCP through the NAT with a smoltcp guest on the fake internet: echo, the handshake waiting for
//! the host connect, refusals, unreachable networks, black holes, resets, half-close in both
//! directions, DNS over TCP and the gateway alias to the host's loopback.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::fakenet::{DNS_ADDR, ECHO_ADDR, HOST_PUBLIC_ADDR, QUIET_HOST, UNREACHABLE_NET};
use slirp_test_host::sha256::{pattern, pattern_digest};
use slirp_test_host::slirp_core::{DropReason, HostError};
use slirp_test_host::smoltcp::socket::tcp::State;
use slirp_test_host::{dns, Direction, FakeNet, RouteFault, SimConfig, TcpService};

const SOURCE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 30), 8000);
const SINK: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 31), 8001);
const RESETTER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 32), 8002);
const NOBODY: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 77), 80);

fn net_with(services: &[(SocketAddrV4, TcpService)]) -> FakeNet {
    let mut net = FakeNet::internet();
    for &(a, s) in services {
        net.add_tcp_service(a, s);
    }
    net
}

/// After a test: nothing left behind and no misuse of host sockets.
fn assert_clean(sim: &mut slirp_test_host::Simulation<FakeNet>) {
    wait_tcp_idle(sim, Duration::from_secs(10)).unwrap_or_else(|e| {
        panic!("not idle: {e}: {:?}", sim.core().tcp_connections().collect::<Vec<_>>());
    });
    let st = sim.host().stats();
    assert_eq!(st.unknown_socket_calls, 0, "{st:?}");
    assert_eq!(st.tcp_empty_reads, 0, "{st:?}");
    assert_eq!(st.tcp_send_after_shutdown, 0, "{st:?}");
}

#[test]
fn echo_through_the_nat() {
    let mut sim = boot_internet(101);
    let h = sim.guest_mut().tcp_connect(ECHO_ADDR, 50_000, 64 * 1024);
    wait_state(&mut sim, h, State::Established, Duration::from_secs(1)).expect("established");
    let mut s = [GuestStream::new(h).uploading(7, 100_000, true)];
    drive(&mut sim, &mut s, Duration::from_secs(10), |sim, s| s[0].remote_done(sim)).expect("echoed and closed");
    let kept = s[0].kept.as_ref().unwrap();
    assert_eq!(kept.len(), 100_000);
    assert!(s[0].down.finish() == pattern_digest(7, 100_000));
    let (_, rec) = sim.host().tcp_conns().next().unwrap();
    assert_eq!(rec.remote, ECHO_ADDR);
    assert_eq!(*rec.local.ip(), HOST_PUBLIC_ADDR, "the server sees the host, not the guest");
    assert!(rec.fin_from_core && rec.remote_fin_sent && !rec.reset_by_core);
    assert_eq!(sim.core().stats().tcp_connections, 1);
    assert_clean(&mut sim);
    assert!(drops(&sim).is_empty(), "unexpected drops: {:?}", drops(&sim));
}

#[test]
fn syn_ack_reaches_the_guest_only_after_the_host_connect_completes() {
    let mut net = FakeNet::internet();
    // A 700 ms one-way latency: the host connect takes 1.4 s, longer than smoltcp's 1 s SYN
    // retransmission, so the core also has to absorb a retransmitted SYN.
    net.set_latency(Duration::from_millis(700));
    let mut sim = boot(SimConfig::seeded(102), net);
    let log = record_frames(&mut sim);
    let start = sim.now();
    let h = sim.guest_mut().tcp_connect(ECHO_ADDR, 50_001, 16 * 1024);
    let took = wait_state(&mut sim, h, State::Established, Duration::from_secs(5)).expect("established");
    assert!(took >= Duration::from_millis(1400), "established after {took:?}");
    let rec = sim.host().tcp_conns().next().unwrap().1.clone();
    let connected = rec.connected_at.expect("host connect completed");
    assert_eq!(connected - start, Duration::from_millis(1400));
    let to_guest = tcp_segments(&log, Direction::ToGuest);
    let first = to_guest.iter().find(|s| s.src == ECHO_ADDR).expect("a segment to the guest");
    assert!(first.syn && first.ack, "the first segment is the SYN-ACK: {first:?}");
    assert!(first.at >= connected, "SYN-ACK at {} before the host connect completed at {connected}", first.at);
    let syns = tcp_segments(&log, Direction::ToCore).iter().filter(|s| s.syn && s.dst == ECHO_ADDR).count();
    assert!(syns >= 2, "the guest retransmitted its SYN ({syns} SYNs)");
    assert_eq!(sim.host().stats().tcp_connects, 1, "retransmitted SYNs start no second connect");
    // And it works.
    let mut s = [GuestStream::new(h).uploading(1, 1000, true)];
    drive(&mut sim, &mut s, Duration::from_secs(30), |sim, s| s[0].remote_done(sim)).expect("echo");
    assert_eq!(s[0].received(), 1000);
}

#[test]
fn refused_connections_get_a_reset_at_once() {
    let mut sim = boot_internet(103);
    let log = record_frames(&mut sim);
    // A remote host with no service on the port: the refusal comes back after one round trip.
    let remote = SocketAddrV4::new(QUIET_HOST, 81);
    let start = sim.now();
    let h = sim.guest_mut().tcp_connect(remote, 50_002, 16 * 1024);
    let took = wait_state(&mut sim, h, State::Closed, Duration::from_secs(1)).expect("reset");
    assert!(took <= Duration::from_millis(11), "reset after {took:?} (round trip is 10 ms)");
    let rsts = resets_to_guest(&log, remote);
    assert_eq!(rsts.len(), 1);
    assert!(rsts[0] - start >= Duration::from_millis(10));
    // The host's loopback refuses before connect() returns: the RST is immediate.
    let local = SocketAddrV4::new(GATEWAY, 9999);
    let h = sim.guest_mut().tcp_connect(local, 50_003, 16 * 1024);
    let took = wait_state(&mut sim, h, State::Closed, Duration::from_secs(1)).expect("reset");
    assert!(took < Duration::from_millis(1), "loopback refusal after {took:?}");
    assert_eq!(resets_to_guest(&log, local).len(), 1);
    assert_eq!(sim.core().stats().dropped(DropReason::TcpRefused), 2);
    assert!(icmp_errors_about_tcp(&log).is_empty(), "a refusal is a RST, not an ICMP error");
    assert_clean(&mut sim);
}

#[test]
fn unreachable_networks_get_icmp_errors() {
    let mut net = FakeNet::internet();
    // Immediate failure: no route on the host.
    net.add_route_fault(Ipv4Addr::new(198, 18, 0, 0), 15, RouteFault::SendFails(HostError::HostUnreachable));
    let mut sim = boot(SimConfig::seeded(104), net);
    let log = record_frames(&mut sim);
    // After a round trip: a router reports the network unreachable (connect_result).
    let [a, b, c, _] = UNREACHABLE_NET.octets();
    let far = SocketAddrV4::new(Ipv4Addr::new(a, b, c, 1), 80);
    let start = sim.now();
    let h1 = sim.guest_mut().tcp_connect(far, 50_004, 16 * 1024);
    let no_route = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 443);
    let h2 = sim.guest_mut().tcp_connect(no_route, 50_005, 16 * 1024);
    sim.run_for(Duration::from_millis(50));
    let errors = icmp_errors_about_tcp(&log);
    assert_eq!(errors.len(), 2, "{errors:?}");
    let host_unreach = errors.iter().find(|e| e.quoted_dst == *no_route.ip()).expect("host unreachable");
    assert_eq!((host_unreach.from, host_unreach.msg_type, host_unreach.code), (GATEWAY, 3, 1));
    assert_eq!(host_unreach.quoted_ports, (50_005, 443), "the error quotes the guest's SYN");
    assert!(host_unreach.at - start < Duration::from_millis(1), "at once");
    let net_unreach = errors.iter().find(|e| e.quoted_dst == *far.ip()).expect("net unreachable");
    assert_eq!((net_unreach.from, net_unreach.msg_type, net_unreach.code), (GATEWAY, 3, 0));
    assert!(net_unreach.at - start >= Duration::from_millis(10), "after the round trip");
    // The flows are gone on both sides (smoltcp ignores ICMP errors for TCP and keeps trying).
    assert_eq!(sim.core().tcp_connection_count(), 0);
    assert_eq!(sim.host().open_tcp_sockets(), 0);
    assert_eq!(sim.core().stats().dropped(DropReason::TcpHostError), 2);
    for h in [h1, h2] {
        tcp_socket(&mut sim, h).abort();
    }
    assert_clean(&mut sim);
}

#[test]
fn black_hole_times_out_after_75_seconds_with_a_reset() {
    let mut sim = boot_internet(105);
    let log = record_frames(&mut sim);
    let start = sim.now();
    let h = sim.guest_mut().tcp_connect(NOBODY, 50_006, 16 * 1024);
    sim.run_for(Duration::from_secs(74));
    assert_eq!(tcp_socket(&mut sim, h).state(), State::SynSent);
    assert_eq!(sim.core().tcp_connection_count(), 1);
    let took =
        wait_state(&mut sim, h, State::Closed, Duration::from_secs(10)).expect("reset") + Duration::from_secs(74);
    assert!(took >= Duration::from_secs(75) && took < Duration::from_secs(76), "reset after {took:?}");
    assert_eq!(resets_to_guest(&log, NOBODY).len(), 1);
    let syns = tcp_segments(&log, Direction::ToCore).iter().filter(|s| s.syn && s.dst == NOBODY).count();
    assert!(syns > 3, "the guest retried ({syns} SYNs) and the core absorbed them");
    assert_eq!(sim.host().stats().tcp_connects, 1);
    assert!(sim.host().tcp_conns().next().unwrap().1.core_closed);
    let _ = start;
    assert_clean(&mut sim);
}

#[test]
fn host_reset_mid_stream_resets_the_guest() {
    let mut sim =
        boot(SimConfig::seeded(106), net_with(&[(RESETTER, TcpService::ResetAfter { bytes: 300_000, seed: 9 })]));
    let log = record_frames(&mut sim);
    let h = sim.guest_mut().tcp_connect(RESETTER, 50_007, 64 * 1024);
    let mut s = [GuestStream::new(h)];
    drive(&mut sim, &mut s, Duration::from_secs(5), |sim, s| s[0].state(sim) == State::Closed).expect("reset");
    let got = s[0].kept.as_ref().unwrap();
    assert!(got.len() <= 300_000);
    let mut want = vec![0u8; got.len()];
    pattern(9, 0, &mut want);
    assert!(*got == want, "what arrived before the reset is the stream's prefix");
    assert_eq!(resets_to_guest(&log, RESETTER).len(), 1, "closed by a RST, not a FIN");
    assert!(!tcp_segments(&log, Direction::ToGuest).iter().any(|s| s.fin), "no FIN");
    let rec = sim.host().tcp_conns().next().unwrap().1.clone();
    assert!(rec.reset_by_remote && rec.core_closed);
    assert_clean(&mut sim);
}

#[test]
fn guest_shuts_its_write_side_and_the_host_keeps_sending() {
    let len = 2 * 1024 * 1024;
    let mut sim = boot(SimConfig::seeded(107), net_with(&[(SOURCE, TcpService::Source { bytes: len, seed: 3 })]));
    let h = sim.guest_mut().tcp_connect(SOURCE, 50_008, 128 * 1024);
    // Upload nothing and close at once: FIN right after the handshake.
    let mut s = [GuestStream::new(h).hashing_only().uploading(0, 0, true)];
    drive(&mut sim, &mut s, Duration::from_secs(30), |sim, s| s[0].remote_done(sim)).expect("download done");
    assert_eq!(s[0].received(), len);
    assert!(s[0].down.finish() == pattern_digest(3, len));
    let rec = sim.host().tcp_conns().next().unwrap().1.clone();
    assert!(rec.fin_from_core, "the guest's FIN became a host shutdown");
    assert_eq!(rec.received, 0);
    assert_clean(&mut sim);
}

#[test]
fn host_finishes_first_and_the_guest_keeps_sending() {
    let len = 1024 * 1024;
    let mut sim = boot(SimConfig::seeded(108), net_with(&[(SOURCE, TcpService::Source { bytes: 1000, seed: 4 })]));
    let h = sim.guest_mut().tcp_connect(SOURCE, 50_009, 128 * 1024);
    let mut s = [GuestStream::new(h)];
    drive(&mut sim, &mut s, Duration::from_secs(5), |sim, s| s[0].remote_done(sim)).expect("host EOF");
    assert_eq!(s[0].received(), 1000);
    assert_eq!(s[0].state(&mut sim), State::CloseWait);
    // Half-closed by the host: the guest still sends a megabyte, then closes.
    s[0].up_seed = 5;
    s[0].up_len = len;
    s[0].close_after_upload = true;
    drive(&mut sim, &mut s, Duration::from_secs(30), |sim, _| sim.host().tcp_conns().next().unwrap().1.fin_from_core)
        .expect("upload done");
    let rec = sim.host().tcp_conns().next().unwrap().1.clone();
    assert_eq!(rec.received, len);
    assert!(rec.received_hash == Some(pattern_digest(5, len)));
    assert_clean(&mut sim);
    assert!(drops(&sim).is_empty(), "unexpected drops: {:?}", drops(&sim));
}

#[test]
fn sink_answers_after_the_guest_half_closes() {
    let mut sim = boot(SimConfig::seeded(109), net_with(&[(SINK, TcpService::Sink)]));
    let h = sim.guest_mut().tcp_connect(SINK, 50_010, 64 * 1024);
    let mut s = [GuestStream::new(h).uploading(6, 500_000, true)];
    drive(&mut sim, &mut s, Duration::from_secs(10), |sim, s| s[0].remote_done(sim)).expect("reply and close");
    let reply = s[0].kept.as_ref().unwrap();
    assert_eq!(reply.len(), 40);
    assert_eq!(u64::from_be_bytes(reply[..8].try_into().unwrap()), 500_000);
    assert!(reply[8..] == pattern_digest(6, 500_000));
    assert_clean(&mut sim);
}

#[test]
fn dns_over_tcp_through_the_alias() {
    let mut sim = boot_internet(110);
    let alias = SocketAddrV4::new(DNS_ALIAS, 53);
    let h = sim.guest_mut().tcp_connect(alias, 50_011, 16 * 1024);
    wait_state(&mut sim, h, State::Established, Duration::from_secs(1)).expect("established");
    let mut msg = Vec::new();
    for (id, name) in [(1u16, "example.com"), (2, "echo.test")] {
        let q = dns::build_query(id, name, dns::TYPE_A);
        msg.extend((q.len() as u16).to_be_bytes());
        msg.extend(q);
    }
    tcp_socket(&mut sim, h).send_slice(&msg).unwrap();
    let mut s = [GuestStream::new(h).uploading(0, 0, true)];
    drive(&mut sim, &mut s, Duration::from_secs(5), |sim, s| s[0].remote_done(sim)).expect("answers and close");
    let mut got = &s[0].kept.as_ref().unwrap()[..];
    let mut answers = Vec::new();
    while got.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([got[0], got[1]]));
        answers.push(dns::parse_response(&got[2..2 + len]).expect("a DNS response"));
        got = &got[2 + len..];
    }
    assert_eq!(answers.len(), 2);
    assert_eq!((answers[0].id, answers[0].addrs.clone()), (1, vec![*ECHO_ADDR.ip()]));
    assert_eq!(answers[1].id, 2);
    assert_eq!(answers[1].addrs.len(), 2);
    let rec = sim.host().tcp_conns().next().unwrap().1.clone();
    assert_eq!(rec.remote, DNS_ADDR, "the alias connects to the upstream resolver");
    assert_clean(&mut sim);
}

#[test]
fn gateway_alias_reaches_a_loopback_service() {
    let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080);
    let mut sim = boot(SimConfig::seeded(111), net_with(&[(local, TcpService::Echo)]));
    let h = sim.guest_mut().tcp_connect(SocketAddrV4::new(GATEWAY, 8080), 50_012, 64 * 1024);
    let mut s = [GuestStream::new(h).uploading(8, 200_000, true)];
    drive(&mut sim, &mut s, Duration::from_secs(5), |sim, s| s[0].remote_done(sim)).expect("echo");
    assert!(s[0].down.finish() == pattern_digest(8, 200_000));
    let rec = sim.host().tcp_conns().next().unwrap().1.clone();
    assert_eq!(rec.remote, local);
    assert_eq!(*rec.local.ip(), Ipv4Addr::LOCALHOST);
    assert_clean(&mut sim);
}

#[test]
fn disabled_host_loopback_is_administratively_prohibited() {
    let local = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080);
    let mut config = SimConfig::seeded(112);
    config.core.disable_host_loopback = true;
    let mut sim = boot(config, net_with(&[(local, TcpService::Echo)]));
    let log = record_frames(&mut sim);
    let h = sim.guest_mut().tcp_connect(SocketAddrV4::new(GATEWAY, 8080), 50_013, 16 * 1024);
    sim.run_for(Duration::from_millis(10));
    let errors = icmp_errors_about_tcp(&log);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].from, errors[0].msg_type, errors[0].code), (GATEWAY, 3, 13));
    assert_eq!(errors[0].quoted_ports, (50_013, 8080));
    assert_eq!(sim.host().stats().tcp_connects, 0, "nothing reached the host");
    assert_eq!(sim.core().tcp_connection_count(), 0);
    tcp_socket(&mut sim, h).abort();
}

/// The host socket takes only 8 KiB at a time (a slow server): sends come back short or
/// `WouldBlock`, the guest's bytes wait in the core's receive buffer (its window shrinks), and
/// writable reports resume the flow; everything arrives intact.
#[test]
fn upload_through_a_small_host_send_buffer() {
    let mut net = net_with(&[(SINK, TcpService::Sink)]);
    net.set_tcp_buffers(8 * 1024, 8 * 1024);
    net.set_latency(Duration::from_millis(20));
    let mut sim = boot(SimConfig::seeded(113), net);
    let log = record_frames(&mut sim);
    let h = sim.guest_mut().tcp_connect(SINK, 50_014, 128 * 1024);
    let len = 1024 * 1024;
    let mut s = [GuestStream::new(h).uploading(11, len, true)];
    drive(&mut sim, &mut s, Duration::from_secs(60), |sim, s| s[0].remote_done(sim)).expect("upload done");
    let reply = s[0].kept.as_ref().unwrap();
    assert_eq!(reply.len(), 40);
    assert!(reply[8..] == pattern_digest(11, len));
    let st = sim.host().stats();
    assert!(st.tcp_short_sends > 10, "the host pushed back: {st:?}");
    assert!(st.writable_reports > 10, "and said when it had room again: {st:?}");
    assert_clean(&mut sim);
    // smoltcp delays its ACK of the sink's lone reply segment by 10 ms, exactly the core's RTO
    // floor: the core may resend the reply, the guest acknowledges both copies, and the second
    // ACK, arriving after the flow closed, is answered with RST (counted as TcpNoConnection).
    let unexpected: Vec<_> = drops(&sim).into_iter().filter(|(r, _)| *r != DropReason::TcpNoConnection).collect();
    assert!(unexpected.is_empty(), "unexpected drops: {unexpected:?}");
    let _ = log;
}

/// A guest whose delayed ACK is Linux's minimum (40 ms) fetches ten one-segment responses, one
/// at a time (request, response, think time). Each response is a lone segment in flight, so the
/// guest holds its ACK for 40 ms. With the RTO floored at 10 ms every response went out twice;
/// the core now gives a lone segment the delayed-ACK allowance (RFC 8985's 200 ms), and keeps
/// the low floor when several segments are in flight.
#[test]
fn lone_responses_to_a_delayed_ack_guest_are_not_retransmitted() {
    let mut sim = boot_internet(114);
    let log = record_frames(&mut sim);
    let h = sim.guest_mut().tcp_connect(ECHO_ADDR, 50_015, 16 * 1024);
    tcp_socket(&mut sim, h).set_ack_delay(Some(slirp_test_host::smoltcp::time::Duration::from_millis(40)));
    wait_state(&mut sim, h, State::Established, Duration::from_secs(1)).expect("established");
    let mut s = [GuestStream::new(h)];
    for i in 0..10u64 {
        tcp_socket(&mut sim, h).send_slice(&[i as u8; 200]).unwrap();
        let want = (i + 1) * 200;
        drive(&mut sim, &mut s, Duration::from_secs(5), |_, s| s[0].received() == want).expect("response");
        sim.run_for(Duration::from_millis(500));
    }
    let data: Vec<Segment> =
        tcp_segments(&log, Direction::ToGuest).into_iter().filter(|s| s.src == ECHO_ADDR && s.len > 0).collect();
    eprintln!("{} data segments toward the guest for 10 responses", data.len());
    assert_eq!(data.len(), 10, "spurious retransmissions: {}", data.len() - 10);
}
