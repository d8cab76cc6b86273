//! TCP when the guest misbehaves: a guest that vanishes mid-download, and a guest whose RX ring
//! holds only a couple of frames.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::sha256::pattern_digest;
use slirp_test_host::smoltcp::socket::tcp::State;
use slirp_test_host::{Direction, FakeNet, LinkFaults, SimConfig, Simulation, TcpService};

const SOURCE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 50), 7000);

fn source_sim(seed: u64, bytes: u64, config: SimConfig) -> Simulation<FakeNet> {
    let mut net = FakeNet::internet();
    net.add_tcp_service(SOURCE, TcpService::Source { bytes, seed });
    boot(config, net)
}

/// The guest stops answering mid-download (its link goes dead both ways): the core retransmits
/// with exponential backoff, gives up after `max_retransmits` timeouts, and aborts the host
/// socket (the server sees a RST).
fn vanishing_guest(seed: u64, guest_buffer: usize) {
    let mut sim = source_sim(seed, 64 * 1024 * 1024, SimConfig::seeded(seed));
    let h = sim.guest_mut().tcp_connect(SOURCE, 50_100, guest_buffer);
    let mut s = [GuestStream::new(h).hashing_only()];
    drive(&mut sim, &mut s, Duration::from_secs(10), |_, s| s[0].received() >= 1024 * 1024).expect("download going");
    let dead = LinkFaults { loss: 1.0, ..LinkFaults::NONE };
    sim.link_mut().set_faults(Direction::ToCore, dead);
    sim.link_mut().set_faults(Direction::ToGuest, dead);
    let sent_before = sim.link().stats(Direction::ToGuest).sent;
    let took = sim
        .run_until(|sim| sim.core().tcp_connection_count() == 0, Duration::from_secs(600))
        .unwrap_or_else(|e| panic!("{e}: {:?}", sim.core().tcp_connections().collect::<Vec<_>>()));
    // The RST reaches the server one latency later.
    sim.run_for(Duration::from_millis(10));
    let rec = sim.host().tcp_conns().next().unwrap().1.clone();
    assert!(rec.core_closed && rec.reset_by_core, "the host socket was aborted: {rec:?}");
    assert_eq!(sim.host().open_tcp_sockets(), 0);
    let retransmissions = sim.link().stats(Direction::ToGuest).sent - sent_before;
    eprintln!("gave up after {took:?}, {retransmissions} frames toward the dead guest");
    // 15 timeouts (or unanswered probes) with a 10 ms floor doubling to the 60 s ceiling:
    // 260 s, or some 460 s when a persist phase came first.
    assert!(took > Duration::from_secs(60) && took < Duration::from_secs(600), "gave up after {took:?}");
    assert!(retransmissions < 1000, "{retransmissions} frames toward a dead guest");
    assert_eq!(sim.host().stats().unknown_socket_calls, 0);
}

/// With a 256 KiB guest window the core has data in flight when the guest vanishes: the
/// retransmission timer gives up.
#[test]
fn vanished_guest_is_timed_out_and_the_host_connection_reset() {
    vanishing_guest(401, 256 * 1024);
}

/// With a 64 KiB guest window the guest vanishes while its window is down to a partial segment
/// and everything sent is acknowledged: only the persist/override timer notices (see
/// `lost_window_update_after_a_small_window_does_not_stall_the_download`).
#[test]
fn vanished_guest_with_a_small_window_is_timed_out() {
    vanishing_guest(401, 64 * 1024);
}

/// A guest RX ring of two frames: the core paces itself by the guest link instead of dropping,
/// and an 8 MiB download arrives whole.
#[test]
fn tiny_guest_rx_budget_slows_a_download_but_loses_nothing() {
    let len = 8 * 1024 * 1024;
    let config = SimConfig { guest_rx_capacity: 2, ..SimConfig::seeded(402) };
    let mut sim = source_sim(402, len, config);
    let h = sim.guest_mut().tcp_connect(SOURCE, 50_101, 256 * 1024);
    let mut s = [GuestStream::new(h).hashing_only()];
    let t = std::time::Instant::now();
    let took = drive(&mut sim, &mut s, Duration::from_secs(120), |sim, s| s[0].remote_done(sim))
        .unwrap_or_else(|e| panic!("{e}: got {}", s[0].received()));
    eprintln!("8 MiB with a 2-frame RX budget: {took:?} virtual, {:?} real", t.elapsed());
    assert_eq!(s[0].received(), len);
    assert!(s[0].down.finish() == pattern_digest(402, len));
    assert!(drops(&sim).is_empty(), "the core dropped: {:?}", drops(&sim));
    tcp_socket(&mut sim, h).close();
    wait_tcp_idle(&mut sim, Duration::from_secs(5)).expect("idle");
    assert_eq!(s[0].state(&mut sim), State::Closed);
}

/// The guest's window closes to less than a segment (a 64 KiB buffer holds 44 full segments and
/// 1296 bytes), the guest then reads everything and its window update is lost. The core must
/// find out about the open window (a probe once a persist/override timer expires, RFC 9293
/// 3.8.6.1 and 3.8.6.2.1); the guest will not repeat an ACK on its own.
///
/// (Fixed in the core by 234bcdd: `Tcb::reconcile_timers` armed the persist timer only when
/// `snd_wnd == 0`, so with a small non-zero window that sender-side silly window avoidance
/// refused to fill, nothing was outstanding and no timer ran: the flow stalled forever, and a
/// guest that vanished in that state pinned the flow forever.)
#[test]
fn lost_window_update_after_a_small_window_does_not_stall_the_download() {
    let len = 1024 * 1024;
    let mut sim = source_sim(403, len, SimConfig::seeded(403));
    let h = sim.guest_mut().tcp_connect(SOURCE, 50_102, 64 * 1024);
    // Do not read: the guest's buffer fills up to its last partial segment.
    let window = |sim: &mut Simulation<FakeNet>| {
        let s = tcp_socket(sim, h);
        s.recv_capacity() - s.recv_queue()
    };
    sim.run_until(|sim| window(sim) < 1460, Duration::from_secs(5)).expect("buffer fills");
    let queued = tcp_socket(&mut sim, h).recv_queue();
    assert_eq!(window(&mut sim), 1296, "44 full segments in, less than one segment of window left");
    // The guest reads everything; its window update is lost.
    sim.link_mut().set_faults(Direction::ToCore, LinkFaults { loss: 1.0, ..LinkFaults::NONE });
    let mut s = [GuestStream::new(h).hashing_only()];
    s[0].pump(&mut sim);
    sim.run_for(Duration::from_millis(5));
    sim.link_mut().set_faults(Direction::ToCore, LinkFaults::NONE);
    drive(&mut sim, &mut s, Duration::from_secs(30), |sim, s| s[0].remote_done(sim))
        .unwrap_or_else(|e| panic!("{e}: stalled at {} + {queued} of {len}", s[0].received()));
}
