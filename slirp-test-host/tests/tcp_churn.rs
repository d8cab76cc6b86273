//! Many short TCP connections (no flow or socket leaks), and full tables.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::fakenet::{ECHO_ADDR, HOST_PUBLIC_ADDR};
use slirp_test_host::sha256::pattern;
use slirp_test_host::slirp_core::DropReason;
use slirp_test_host::smoltcp::socket::tcp::State;
use slirp_test_host::{FakeNet, SimConfig, Simulation, TcpService};

const SMALL_SOURCE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 40), 9000);

/// 2000 connect/send/close cycles, 20 at a time: even ones to an echo server (the guest closes
/// first: the core's side ends in LAST_ACK), odd ones to a server that sends 100 bytes and
/// closes first (the core's side goes through TIME_WAIT).
#[test]
fn two_thousand_short_connections_leave_nothing_behind() {
    let total = 2000u64;
    let mut net = FakeNet::internet();
    net.add_tcp_service(SMALL_SOURCE, TcpService::Source { bytes: 100, seed: 77 });
    let mut sim = boot(SimConfig::seeded(301), net);
    let mut expected_source = vec![0u8; 100];
    pattern(77, 0, &mut expected_source);
    let mut active: Vec<(u64, GuestStream)> = Vec::new();
    let mut started = 0u64;
    let mut finished = 0u64;
    let mut most_flows = 0;
    let t = std::time::Instant::now();
    sim.run_until(
        |sim| {
            while active.len() < 20 && started < total {
                let i = started;
                let port = 10_000 + i as u16;
                let (dst, upload) = if i.is_multiple_of(2) { (ECHO_ADDR, 100) } else { (SMALL_SOURCE, 0) };
                let h = sim.guest_mut().tcp_connect(dst, port, 4096);
                // The guest's socket is dropped once it reaches TIME_WAIT: its ACK of our FIN
                // must not wait for smoltcp's delayed-ACK timer (a dropped socket answers the
                // retransmitted FIN with RST).
                tcp_socket(sim, h).set_ack_delay(None);
                active.push((i, GuestStream::new(h).uploading(i, upload, i.is_multiple_of(2))));
                started += 1;
            }
            most_flows = most_flows.max(sim.core().tcp_connection_count());
            let mut k = 0;
            while k < active.len() {
                let (i, s) = &mut active[k];
                s.pump(sim);
                let state = s.state(sim);
                if state == State::CloseWait {
                    tcp_socket(sim, s.handle).close();
                }
                if matches!(state, State::TimeWait | State::Closed) {
                    let got = s.kept.as_ref().unwrap();
                    if i.is_multiple_of(2) {
                        let mut want = vec![0u8; 100];
                        pattern(*i, 0, &mut want);
                        assert!(*got == want, "connection {i}: echo");
                    } else {
                        assert!(*got == expected_source, "connection {i}: source");
                    }
                    sim.guest_mut().remove_socket(s.handle);
                    active.swap_remove(k);
                    finished += 1;
                } else {
                    k += 1;
                }
            }
            finished == total
        },
        Duration::from_secs(300),
    )
    .unwrap_or_else(|e| panic!("{e}: {finished} of {total} finished"));
    let elapsed = sim.now();
    wait_tcp_idle(&mut sim, Duration::from_secs(5)).unwrap_or_else(|e| {
        panic!("{e}: {:?}", sim.core().tcp_connections().collect::<Vec<_>>());
    });
    eprintln!("{total} connections: {elapsed} virtual, {:?} real, at most {most_flows} flows", t.elapsed());
    // Half the connections go through the core's 1 s TIME_WAIT, and the guest opens about 800
    // a second of virtual time: some 400 flows wait at once, far below the 1024 slots (a 2 MSL
    // TIME_WAIT of 4 minutes would have pinned all 1000).
    assert!(most_flows < 600, "TIME_WAIT piled up: {most_flows} flows at once");
    let st = sim.host().stats();
    assert_eq!(st.tcp_connects, total);
    assert_eq!(st.closed, total, "every host socket closed");
    let first_reset = sim.host().tcp_conns().find(|(_, r)| r.reset_by_core).map(|(_, r)| r.clone());
    assert_eq!(st.tcp_resets_by_core, 0, "all closed gracefully: {st:?}, first reset {first_reset:?}");
    assert_eq!(st.unknown_socket_calls, 0);
    assert_eq!(sim.core().stats().tcp_connections, total);
    for (_, rec) in sim.host().tcp_conns() {
        assert!(rec.fin_from_core && rec.remote_fin_sent && !rec.reset_by_core && !rec.reset_by_remote, "{rec:?}");
    }
    assert!(drops(&sim).is_empty(), "unexpected drops: {:?}", drops(&sim));
}

/// With room for 4 connections, a fifth SYN is answered with RST (counted as
/// `TcpTableFull`); once a connection is gone a new one succeeds.
#[test]
fn full_table_refuses_new_connections_with_a_reset() {
    let mut config = SimConfig::seeded(302);
    config.storage.tcp_connections = 4;
    config.storage.tcp_send_bytes = 16 * 1024;
    config.storage.tcp_recv_bytes = 16 * 1024;
    let mut sim = boot(config, FakeNet::internet());
    let log = record_frames(&mut sim);
    let open: Vec<_> = (0..4).map(|i| sim.guest_mut().tcp_connect(ECHO_ADDR, 11_000 + i, 4096)).collect();
    for &h in &open {
        wait_state(&mut sim, h, State::Established, Duration::from_secs(1)).expect("established");
    }
    assert_eq!(sim.core().tcp_connection_count(), 4);
    let fifth = sim.guest_mut().tcp_connect(ECHO_ADDR, 11_004, 4096);
    let took = wait_state(&mut sim, fifth, State::Closed, Duration::from_secs(1)).expect("refused");
    assert!(took < Duration::from_millis(1), "refused at once ({took:?})");
    assert_eq!(resets_to_guest(&log, ECHO_ADDR).len(), 1);
    assert_eq!(sim.core().stats().dropped(DropReason::TcpTableFull), 1);
    assert_eq!(sim.host().stats().tcp_connects, 4, "no host connect for the refused SYN");

    // One connection ends (guest closes first: no TIME_WAIT on the core's side); a new one fits.
    tcp_socket(&mut sim, open[0]).close();
    sim.run_until(|sim| sim.core().tcp_connection_count() == 3, Duration::from_secs(5)).expect("slot freed");
    let sixth = sim.guest_mut().tcp_connect(ECHO_ADDR, 11_005, 4096);
    wait_state(&mut sim, sixth, State::Established, Duration::from_secs(1)).expect("established");
    let mut s = [GuestStream::new(sixth).uploading(1, 1000, true)];
    drive(&mut sim, &mut s, Duration::from_secs(5), |sim, s| s[0].remote_done(sim)).expect("echo");
    assert_eq!(s[0].received(), 1000);
}

/// A host client that connects to a forward while the table is full waits in the listener's
/// backlog; when a slot frees, it must be accepted. With an edge-triggered host the listener is
/// not reported again (its backlog never went empty), so the core has to come back to it by
/// itself.
///
/// (Fixed in the core by df37227: `tcp_accept_ready` used to stop at `TcpTableFull` without
/// remembering the listener, and nothing retried it when a slot freed.)
#[test]
fn client_waiting_in_the_backlog_is_accepted_once_a_slot_frees() {
    let mut config = SimConfig::seeded(303);
    config.storage.tcp_connections = 2;
    let mut sim: Simulation<FakeNet> = boot(config, FakeNet::internet());
    let listen = sim.guest_mut().tcp_listen(8000, 4096);
    let (core, host) = sim.core_and_host_mut();
    core.add_tcp_forward(host, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 2222), SocketAddrV4::new(GUEST, 8000)).unwrap();
    let open: Vec<_> = (0..2).map(|i| sim.guest_mut().tcp_connect(ECHO_ADDR, 12_000 + i, 4096)).collect();
    for &h in &open {
        wait_state(&mut sim, h, State::Established, Duration::from_secs(1)).expect("established");
    }
    let client = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 9), 5555);
    let c = sim.host_mut().tcp_client_connect(client, SocketAddrV4::new(HOST_PUBLIC_ADDR, 2222)).unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.host().stats().tcp_accepts, 0, "no slot: the client waits in the backlog");
    assert!(sim.core().stats().dropped(DropReason::TcpTableFull) >= 1);
    // The guest closes one connection: its slot frees (and is taken again at once).
    tcp_socket(&mut sim, open[0]).close();
    let accepted = sim.run_until(|sim| sim.host().stats().tcp_accepts == 1, Duration::from_secs(5));
    assert!(
        sim.host().tcp_conns().filter(|(_, r)| !r.client).any(|(_, r)| r.core_closed),
        "the closed connection's slot was freed"
    );
    assert!(accepted.is_ok(), "the waiting client was never accepted after a slot freed");
    wait_state(&mut sim, listen, State::Established, Duration::from_secs(1)).expect("guest accepted");
    let _ = c;
}
