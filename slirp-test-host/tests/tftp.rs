//! The TFTP server with a smoltcp guest as the client: plain and option-negotiated transfers,
//! a 32 MiB file (block numbers roll over), loss, concurrent sessions up to the limit, path
//! escapes, refused requests, a client that goes quiet, and TFTP off.

mod common;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use common::*;
use slirp_test_host::slirp_core::{DropReason, TFTP_SESSIONS};
use slirp_test_host::smoltcp::iface::SocketHandle;
use slirp_test_host::{Direction, FakeNet, LinkFaults, SimConfig, Simulation};

const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 2, 2), 69);

fn file(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u32).wrapping_mul(2654435761).rotate_left(u32::from(seed)) as u8).collect()
}

fn boot_tftp(seed: u64, files: &[(&str, Vec<u8>)]) -> Simulation<FakeNet> {
    let mut net = FakeNet::internet();
    for (p, d) in files {
        net.add_tftp_file(p, d.clone());
    }
    let mut config = SimConfig::seeded(seed);
    config.core.tftp = true;
    boot(config, net)
}

fn rrq(path: &[u8], mode: &str, opts: &[(&str, &str)]) -> Vec<u8> {
    let mut m = vec![0, 1];
    m.extend_from_slice(path);
    m.push(0);
    m.extend_from_slice(mode.as_bytes());
    m.push(0);
    for (k, v) in opts {
        m.extend_from_slice(k.as_bytes());
        m.push(0);
        m.extend_from_slice(v.as_bytes());
        m.push(0);
    }
    m
}

/// What a fetch ended with.
#[derive(Debug, PartialEq, Eq)]
enum Fetched {
    File { data: Vec<u8>, oack: Vec<(String, String)>, blocks: u64 },
    Error(u16, String),
}

/// Fetches `path` over UDP from `port` like a client (RFC 1350 + RFC 2347): retransmits its
/// last packet after 500 ms of silence, ACKs each block, answers a duplicate block with its ACK.
fn fetch(sim: &mut Simulation<FakeNet>, port: u16, request: Vec<u8>, limit: Duration) -> Fetched {
    let sock = sim.guest_mut().udp_bind(port, 128 * 1024);
    let r = fetch_on(sim, sock, request, limit);
    sim.guest_mut().remove_socket(sock);
    r
}

fn fetch_on(sim: &mut Simulation<FakeNet>, sock: SocketHandle, request: Vec<u8>, limit: Duration) -> Fetched {
    let start = sim.now();
    let mut last = request;
    let mut peer = SERVER;
    sim.guest_mut().udp_send(sock, peer, &last).unwrap();
    let (mut data, mut oack, mut expected, mut blocks) = (Vec::new(), Vec::new(), 1u16, 0u64);
    let mut blksize = 512usize;
    loop {
        assert!(sim.now() - start < limit, "fetch took longer than {limit:?}");
        let Some((from, msg)) = recv_udp(sim, sock, Duration::from_millis(500)) else {
            sim.guest_mut().udp_send(sock, peer, &last).unwrap();
            continue;
        };
        assert_eq!(from.ip(), SERVER.ip());
        peer = from;
        let op = u16::from_be_bytes([msg[0], msg[1]]);
        match op {
            6 => {
                let fields: Vec<&[u8]> = msg[2..].split(|&b| b == 0).filter(|f| !f.is_empty()).collect();
                oack = fields
                    .chunks(2)
                    .map(|kv| {
                        (String::from_utf8_lossy(kv[0]).into_owned(), String::from_utf8_lossy(kv[1]).into_owned())
                    })
                    .collect();
                if let Some((_, v)) = oack.iter().find(|(k, _)| k == "blksize") {
                    blksize = v.parse().unwrap();
                }
                last = vec![0, 4, 0, 0];
            }
            3 => {
                let n = u16::from_be_bytes([msg[2], msg[3]]);
                if n == expected {
                    let payload = &msg[4..];
                    assert!(payload.len() <= blksize, "block of {} over {blksize}", payload.len());
                    data.extend_from_slice(payload);
                    blocks += 1;
                    last = vec![0, 4, msg[2], msg[3]];
                    expected = expected.wrapping_add(1);
                    if payload.len() < blksize {
                        sim.guest_mut().udp_send(sock, peer, &last).unwrap();
                        // Let the final ACK reach the server.
                        sim.run_for(Duration::from_millis(50));
                        return Fetched::File { data, oack, blocks };
                    }
                }
                // A duplicate (our ACK was lost): ACK what we have.
            }
            5 => {
                let code = u16::from_be_bytes([msg[2], msg[3]]);
                let text = String::from_utf8_lossy(msg[4..].split(|&b| b == 0).next().unwrap_or(&[])).into_owned();
                return Fetched::Error(code, text);
            }
            other => panic!("unexpected opcode {other}"),
        }
        sim.guest_mut().udp_send(sock, peer, &last).unwrap();
    }
}

fn got_file(f: Fetched) -> (Vec<u8>, Vec<(String, String)>, u64) {
    match f {
        Fetched::File { data, oack, blocks } => (data, oack, blocks),
        Fetched::Error(c, t) => panic!("TFTP error {c}: {t}"),
    }
}

#[test]
fn plain_octet_transfer_in_512_byte_blocks() {
    let f = file(10_000, 1);
    let mut sim = boot_tftp(1, &[("boot/pxelinux.0", f.clone())]);
    let (data, oack, blocks) =
        got_file(fetch(&mut sim, 4000, rrq(b"boot/pxelinux.0", "octet", &[]), Duration::from_secs(10)));
    assert_eq!(data, f);
    assert!(oack.is_empty(), "no options, no OACK");
    assert_eq!(blocks, 20, "19 full blocks and a short one");
    // A leading slash means the root; the mode is case-insensitive.
    let (data, _, _) = got_file(fetch(&mut sim, 4001, rrq(b"/boot/pxelinux.0", "OCTET", &[]), Duration::from_secs(10)));
    assert_eq!(data, f);
    assert_eq!(sim.core().stats().tftp_transfers, 2);
    assert_eq!(sim.core().tftp_sessions(), 0);
    assert_eq!(sim.host().tftp_files_open().0, 0, "files closed");
}

#[test]
fn options_are_negotiated_and_the_block_size_fits_the_link() {
    let f = file(100_000, 2);
    let mut sim = boot_tftp(2, &[("kernel", f.clone())]);
    let opts = [("blksize", "1468"), ("tsize", "0"), ("timeout", "3")];
    let (data, oack, blocks) = got_file(fetch(&mut sim, 4002, rrq(b"kernel", "octet", &opts), Duration::from_secs(10)));
    assert_eq!(data, f);
    let want: Vec<(String, String)> = [("blksize", "1468"), ("tsize", "100000"), ("timeout", "3")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(oack, want);
    assert_eq!(blocks, 100_000u64.div_ceil(1468));
    // Asking for more than the link carries gets what fits it.
    let (_, oack, _) =
        got_file(fetch(&mut sim, 4003, rrq(b"kernel", "octet", &[("blksize", "65464")]), Duration::from_secs(10)));
    assert_eq!(oack, vec![("blksize".to_string(), "1468".to_string())]);
    // Unknown options are ignored; an out-of-range blksize is not acknowledged.
    let (_, oack, blocks) = got_file(fetch(
        &mut sim,
        4004,
        rrq(b"kernel", "octet", &[("blksize", "4"), ("multicast", "")]),
        Duration::from_secs(10),
    ));
    assert!(oack.is_empty());
    assert_eq!(blocks, 100_000u64.div_ceil(512));
}

#[test]
fn a_32_mib_file_rolls_the_block_number_over() {
    let f = file(32 << 20, 3);
    let mut sim = boot_tftp(3, &[("big.img", f.clone())]);
    let t = std::time::Instant::now();
    let (data, _, blocks) = got_file(fetch(&mut sim, 4005, rrq(b"big.img", "octet", &[]), Duration::from_secs(600)));
    assert!(data == f, "32 MiB intact");
    assert_eq!(blocks, 65_537, "65536 full blocks (numbers wrapping past 65535) and an empty last one");
    eprintln!("32 MiB over TFTP (512-byte blocks): {:?} real", t.elapsed());
}

#[test]
fn transfers_survive_loss_both_ways() {
    let f = file(1 << 20, 4);
    let mut sim = boot_tftp(4, &[("f", f.clone())]);
    let lossy = LinkFaults { loss: 0.05, ..LinkFaults::NONE };
    sim.link_mut().set_faults(Direction::ToCore, lossy);
    sim.link_mut().set_faults(Direction::ToGuest, lossy);
    let (data, _, blocks) =
        got_file(fetch(&mut sim, 4006, rrq(b"f", "octet", &[("blksize", "1024")]), Duration::from_secs(300)));
    assert!(data == f);
    assert_eq!(blocks, 1025);
    assert!(sim.core().stats().tftp_blocks_sent > 1025, "some blocks were retransmitted");
}

#[test]
fn concurrent_sessions_up_to_the_limit_then_an_error() {
    let f = file(50_000, 5);
    let mut sim = boot_tftp(5, &[("f", f.clone())]);
    // TFTP_SESSIONS clients start; none acknowledges yet, so all hold a slot.
    let socks: Vec<SocketHandle> =
        (0..TFTP_SESSIONS as u16).map(|i| sim.guest_mut().udp_bind(5000 + i, 64 * 1024)).collect();
    for &s in &socks {
        sim.guest_mut().udp_send(s, SERVER, &rrq(b"f", "octet", &[])).unwrap();
    }
    sim.run_for(Duration::from_millis(20));
    assert_eq!(sim.core().tftp_sessions(), TFTP_SESSIONS);
    match fetch(&mut sim, 6000, rrq(b"f", "octet", &[]), Duration::from_secs(5)) {
        Fetched::Error(0, text) => assert!(text.contains("too many"), "{text}"),
        other => panic!("{other:?}"),
    }
    // Each of them then completes (its first block is retransmitted by the server's timer or
    // by the client's repeated request).
    for &s in &socks {
        let (data, _, _) = got_file(fetch_on(&mut sim, s, rrq(b"f", "octet", &[]), Duration::from_secs(30)));
        assert!(data == f);
    }
    assert_eq!(sim.core().tftp_sessions(), 0);
}

#[test]
fn escapes_writes_other_modes_and_malformed_requests_are_refused() {
    let mut sim = boot_tftp(6, &[("ok", file(10, 6)), ("dir/inner", file(10, 7))]);
    let long = vec![b'a'; 300];
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (rrq(b"../ok", "octet", &[]), 2),
        (rrq(b"dir/../ok", "octet", &[]), 2),
        (rrq(b"dir/../../etc/passwd", "octet", &[]), 2),
        (rrq(b"./ok", "octet", &[]), 2),
        (rrq(b"dir//inner", "octet", &[]), 2),
        (rrq(&long, "octet", &[]), 2),
        // Absolute paths mean the root: /etc/passwd is not in it.
        (rrq(b"/etc/passwd", "octet", &[]), 1),
        (rrq(b"missing", "octet", &[]), 1),
        (rrq(b"dir", "octet", &[]), 1),
        (rrq(b"ok", "netascii", &[]), 4),
        (rrq(b"ok", "mail", &[]), 4),
        // No NUL after the mode, no mode at all.
        ([0, 1, b'o', b'k', 0, b'o', b'c', b't', b'e', b't'].to_vec(), 4),
        ([0, 1, b'o', b'k'].to_vec(), 4),
        // A write request.
        ([&[0, 2][..], b"ok\0octet\0"].concat(), 2),
        // Data to a server, an unknown opcode.
        ([0, 3, 0, 1, 1, 2, 3].to_vec(), 4),
        ([0, 9, 0, 0].to_vec(), 4),
    ];
    for (i, (req, code)) in cases.into_iter().enumerate() {
        match fetch(&mut sim, 7000 + i as u16, req.clone(), Duration::from_secs(5)) {
            Fetched::Error(c, _) => assert_eq!(c, code, "case {i}: {req:?}"),
            other => panic!("case {i} {req:?}: {other:?}"),
        }
    }
    assert_eq!(sim.core().tftp_sessions(), 0);
    assert!(sim.core().stats().dropped(DropReason::TftpRefused) >= 10);
    assert!(sim.core().stats().dropped(DropReason::TftpMalformed) >= 4);
    // An ACK from nobody's transfer.
    match fetch(&mut sim, 7100, vec![0, 4, 0, 1], Duration::from_secs(5)) {
        Fetched::Error(5, _) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_client_that_goes_quiet_is_dropped_after_the_retries() {
    let mut sim = boot_tftp(7, &[("f", file(100_000, 8))]);
    let s = sim.guest_mut().udp_bind(8000, 64 * 1024);
    sim.guest_mut().udp_send(s, SERVER, &rrq(b"f", "octet", &[("timeout", "1")])).unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.core().tftp_sessions(), 1);
    // Never ACKed: the OACK goes out 1 + 5 times, a second apart, then the slot is free.
    sim.run_for(Duration::from_secs(7));
    assert_eq!(sim.core().tftp_sessions(), 0);
    assert_eq!(sim.core().stats().dropped(DropReason::TftpTimeout), 1);
    assert_eq!(sim.host().tftp_files_open().0, 0);
    let mut oacks = 0;
    while let Some((_, m)) = sim.guest_mut().udp_recv(s) {
        oacks += usize::from(m[..2] == [0, 6]);
    }
    assert_eq!(oacks, 6);
}

#[test]
fn with_tftp_off_port_69_is_not_served() {
    let mut net = FakeNet::internet();
    net.add_tftp_file("f", file(10, 9));
    let mut sim = boot(SimConfig::seeded(8), net);
    let s = sim.guest_mut().udp_bind(9000, 4096);
    sim.guest_mut().udp_send(s, SERVER, &rrq(b"f", "octet", &[])).unwrap();
    sim.run_for(Duration::from_secs(2));
    assert!(sim.guest_mut().udp_recv(s).is_none(), "no TFTP answer");
    assert_eq!(sim.host().tftp_files_open().1, 0, "nothing was opened");
}
