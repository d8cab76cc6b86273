//! The TFTP server through whole guest frames: requests (with arbitrary names, modes and
//! options), ACKs (right, duplicate, stale, wrapped), errors and junk from a handful of client
//! ports, time passing over the retransmission timers, against a host serving one file whose
//! every byte is a function of its offset.
//!
//! Checked beyond "no panic": every frame out parses (IPv4 and UDP checksums right) and comes
//! from the gateway's port 69; every DATA block's bytes are the file's at a block-aligned
//! offset (for the block size that session negotiated, tracked from OACKs); blocks never exceed
//! the negotiated size; the host is only asked to read files it opened and not closed; at most
//! `TFTP_SESSIONS` files are open; and once the clients go quiet long enough, every transfer
//! ends and every file is closed.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use slirp_core::wire::{EtherType, EthernetFrame, Ipv4Packet, UdpPacket};
use slirp_core::{Config, HostError, HostSocket, Instant, Slirp, Storage, TFTP_SESSIONS};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fn byte_at(offset: u64) -> u8 {
    (offset.wrapping_mul(2654435761) >> 7) as u8
}

#[derive(Default)]
struct Files {
    size: u64,
    open: HashMap<u8, ()>,
    opens: u64,
}

impl HostSocket for Files {
    fn tftp_open(&mut self, session: u8, path: &str) -> Result<u64, HostError> {
        assert!(usize::from(session) < TFTP_SESSIONS);
        assert!(!path.is_empty() && !path.starts_with('/'), "unconfined path {path:?}");
        assert!(path.split('/').all(|c| !c.is_empty() && c != "." && c != ".."), "unconfined path {path:?}");
        if path != "f" {
            return Err(HostError::NotFound);
        }
        self.open.insert(session, ());
        self.opens += 1;
        assert!(self.open.len() <= TFTP_SESSIONS);
        Ok(self.size)
    }

    fn tftp_read(&mut self, session: u8, offset: u64, buf: &mut [u8]) -> Result<usize, HostError> {
        assert!(self.open.contains_key(&session), "read of a file not open");
        let n = (self.size.saturating_sub(offset)).min(buf.len() as u64) as usize;
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = byte_at(offset + i as u64);
        }
        Ok(n)
    }

    fn tftp_close(&mut self, session: u8) {
        self.open.remove(&session);
    }
}

#[derive(Arbitrary, Debug)]
enum Msg {
    /// A read request: name (one of a few, or raw), mode, options.
    Read { name: Name, mode: u8, opts: Vec<(u8, u32)> },
    Ack(u16),
    /// The ACK for the block this client saw last (what a good client sends).
    GoodAck,
    Error,
    Write,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Name {
    File,
    Missing,
    Escape,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Send { port: u8, msg: Msg },
    Advance(u16),
    Drain,
}

#[derive(Arbitrary, Debug)]
struct Input {
    size: u32,
    small_mtu: bool,
    steps: Vec<Step>,
}

fn frame(port: u16, payload: &[u8]) -> Vec<u8> {
    let n = payload.len().min(1400);
    let mut f = vec![0u8; 14 + 20 + 8 + n];
    f[0..6].copy_from_slice(&[0x52, 0x55, 10, 0, 2, 2]);
    f[6..12].copy_from_slice(&GUEST_MAC);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + n) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&GUEST.octets());
    ip[16..20].copy_from_slice(&GATEWAY.octets());
    Ipv4Packet::new_unchecked(&mut f[14..34]).fill_checksum();
    let udp = &mut f[34..];
    udp[0..2].copy_from_slice(&port.to_be_bytes());
    udp[2..4].copy_from_slice(&69u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
    udp[8..].copy_from_slice(&payload[..n]);
    UdpPacket::new_unchecked(&mut *udp).fill_checksum(GUEST, GATEWAY);
    f
}

fn encode(msg: &Msg, last_block: u16) -> Vec<u8> {
    match msg {
        Msg::Read { name, mode, opts } => {
            let mut m = vec![0, 1];
            match name {
                Name::File => m.extend_from_slice(b"/f"),
                Name::Missing => m.extend_from_slice(b"missing"),
                Name::Escape => m.extend_from_slice(b"../f"),
                Name::Raw(r) => m.extend_from_slice(&r[..r.len().min(300)]),
            }
            m.push(0);
            m.extend_from_slice([&b"octet"[..], b"netascii", b"OCTET", b""][usize::from(*mode % 4)]);
            m.push(0);
            for (k, v) in opts.iter().take(6) {
                m.extend_from_slice([&b"blksize"[..], b"tsize", b"timeout", b"x"][usize::from(*k % 4)]);
                m.push(0);
                m.extend_from_slice(v.to_string().as_bytes());
                m.push(0);
            }
            m
        }
        Msg::Ack(n) => [&[0, 4][..], &n.to_be_bytes()].concat(),
        Msg::GoodAck => [&[0, 4][..], &last_block.to_be_bytes()].concat(),
        Msg::Error => vec![0, 5, 0, 0, b'x', 0],
        Msg::Write => b"\x00\x02f\x00octet\x00".to_vec(),
        Msg::Raw(r) => r.clone(),
    }
}

/// What a client port has seen: the block size its session uses, the last block number.
#[derive(Clone, Copy)]
struct Seen {
    blksize: usize,
    last: u16,
    }

fn check_output(frame: &[u8], size: u64, seen: &mut HashMap<u16, Seen>) {
    let eth = EthernetFrame::new_checked(frame).expect("ethernet");
    if eth.ethertype() != EtherType::Ipv4 {
        return;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
    assert!(ip.verify_checksum());
    if ip.protocol() != slirp_core::wire::IpProtocol::Udp {
        return;
    }
    let udp = UdpPacket::new_checked(ip.payload()).expect("udp");
    assert_eq!(udp.src_port(), 69, "TFTP replies come from port 69");
    let m = udp.payload();
    assert!(m.len() >= 4, "short TFTP message");
    let op = u16::from_be_bytes([m[0], m[1]]);
    let s = seen.entry(udp.dst_port()).or_insert(Seen { blksize: 512, last: 0 });
    match op {
        6 => {
            let fields: Vec<&[u8]> = m[2..].split(|&b| b == 0).collect();
            s.blksize = 512;
            for kv in fields.chunks(2) {
                if kv[0] == b"blksize" {
                    s.blksize = std::str::from_utf8(kv[1]).unwrap().parse().unwrap();
                }
            }
            assert!((8..=1468).contains(&s.blksize));
            s.last = 0;
        }
        3 => {
            let n = u16::from_be_bytes([m[2], m[3]]);
            let data = &m[4..];
            assert!(data.len() <= s.blksize, "block of {} over {}", data.len(), s.blksize);
            // Block n of a session with this block size starts at a multiple of it; which
            // multiple (the wrap count) is unknown here, but the bytes must match at some
            // offset ≡ (n - 1) mod 65536 blocks.
            let k = u64::from(n.wrapping_sub(1));
            let offset = k * s.blksize as u64;
            let span = 65536 * s.blksize as u64;
            let wraps = (0..=size / span).map(|w| offset + w * span);
            let ok = data.is_empty() || wraps.into_iter().any(|o| data.iter().enumerate().all(|(i, &b)| b == byte_at(o + i as u64)));
            assert!(ok, "block {n} holds bytes that are not the file's");
            s.last = n;
        }
        5 => {}
        other => panic!("opcode {other} from the server"),
    }
}

fuzz_target!(|input: Input| {
    let mtu = if input.small_mtu { 576 } else { 1500 };
    let config = Config { tftp: true, mtu, ..Config::default() };
    let storage = Storage::with_capacity(64 * 1024, 16 * 1024, 1, 4096);
    let mut slirp = Slirp::new(config, storage).expect("valid config");
    let mut host = Files { size: u64::from(input.size % (1 << 22)), ..Files::default() };
    let mut now = Instant::from_millis(1);
    let mut out = vec![0u8; 2048];
    let mut seen: HashMap<u16, Seen> = HashMap::new();
    // Teach the core the guest's MAC (an ARP request for the gateway).
    let mut arp = vec![0u8; 42];
    arp[0..6].copy_from_slice(&[0xff; 6]);
    arp[6..12].copy_from_slice(&GUEST_MAC);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    arp[22..28].copy_from_slice(&GUEST_MAC);
    arp[28..32].copy_from_slice(&GUEST.octets());
    arp[38..42].copy_from_slice(&GATEWAY.octets());
    slirp.handle_guest_frame(now, &arp, &mut host);
    for step in input.steps.iter().take(400) {
        match step {
            Step::Send { port, msg } => {
                let port = 1000 + u16::from(*port % 12);
                let last = seen.get(&port).map_or(0, |s| s.last);
                if matches!(msg, Msg::Read { .. }) {
                    // A new request restarts that client's transfer (default block size).
                    seen.remove(&port);
                }
                let bytes = encode(msg, last);
                slirp.handle_guest_frame(now, &frame(port, &bytes), &mut host);
            }
            Step::Advance(ms) => {
                now = now + Duration::from_millis(u64::from(*ms) * 4);
                slirp.handle_timeout(now, &mut host);
            }
            Step::Drain => {}
        }
        while let Some(n) = slirp.poll_transmit_into(now, &mut host, &mut out) {
            check_output(&out[..n], host.size, &mut seen);
        }
        assert!(slirp.tftp_sessions() <= TFTP_SESSIONS);
        assert_eq!(host.open.len(), slirp.tftp_sessions(), "open files match transfers");
    }
    // Silence: every transfer times out (at most 255 s per try, 6 tries).
    for _ in 0..7 {
        now = now + Duration::from_secs(256);
        slirp.handle_timeout(now, &mut host);
        while let Some(n) = slirp.poll_transmit_into(now, &mut host, &mut out) {
            check_output(&out[..n], host.size, &mut seen);
        }
    }
    assert_eq!(slirp.tftp_sessions(), 0, "transfers left after the clients went quiet");
    assert!(host.open.is_empty(), "files left open");
});
