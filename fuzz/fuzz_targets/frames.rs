//! Arbitrary sequences of guest frames, time steps, timer runs and guest-link drains fed into
//! the core. Beyond "no panic", every frame the core emits must be well formed: at least the
//! Ethernet minimum, at most MTU + 14 bytes, and a parseable ARP, IPv4 packet with a valid
//! header checksum, or IPv6 packet (ICMPv6 with a valid checksum). IPv6 is on, so the steps
//! reach Neighbor Discovery, Router Advertisements, DHCPv6, extension headers and v6
//! reassembly.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use core::net::Ipv6Addr;
use slirp_core::wire::{EtherType, EthernetFrame, Icmpv6Packet, Ipv4Packet, Ipv6Packet};
use slirp_core::{Config, Instant, Ipv6Config, NoHost, Slirp, Storage};

#[derive(Arbitrary, Debug)]
enum Step {
    Frame(Vec<u8>),
    /// A frame built around a valid Ethernet + IPv4 header so the fuzzer reaches the protocols.
    Ipv4 {
        proto: u8,
        src_last: u8,
        dst: [u8; 4],
        frag: u16,
        payload: Vec<u8>,
    },
    Advance(u16),
    Timeout,
    Drain(u8),
    /// A frame built around a valid Ethernet + IPv6 header, between addresses that matter.
    Ipv6 {
        next_header: u8,
        src: u8,
        dst: u8,
        hop_limit: u8,
        multicast_mac: bool,
        payload: Vec<u8>,
    },
}

/// Sources a guest would use: its link-local and SLAAC addresses, another guest, `::`, and
/// addresses it must not (ours, multicast).
const SOURCES: [Ipv6Addr; 6] = [
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 1),
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x100),
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x101),
    Ipv6Addr::UNSPECIFIED,
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
];

/// Destinations: the router and DNS alias (global and link-local), the multicast groups we
/// listen on, another address of the prefix, and the world.
const DESTINATIONS: [Ipv6Addr; 10] = [
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3),
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3),
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2),
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2),
    Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2),
    Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 9),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1),
];

fn ipv6_frame(next_header: u8, src: u8, dst: u8, hop_limit: u8, multicast_mac: bool, payload: &[u8]) -> Vec<u8> {
    let n = payload.len().min(65000);
    let mut f = vec![0u8; 14 + 40 + n];
    let dst = DESTINATIONS[usize::from(dst) % DESTINATIONS.len()];
    if multicast_mac {
        let o = dst.octets();
        f[0..6].copy_from_slice(&[0x33, 0x33, o[12], o[13], o[14], o[15]]);
    } else {
        f[0..6].copy_from_slice(&[0x52, 0x55, 10, 0, 2, 2]);
    }
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let ip = &mut f[14..54];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(n as u16).to_be_bytes());
    ip[6] = next_header;
    ip[7] = hop_limit;
    ip[8..24].copy_from_slice(&SOURCES[usize::from(src) % SOURCES.len()].octets());
    ip[24..40].copy_from_slice(&dst.octets());
    f[54..].copy_from_slice(&payload[..n]);
    f
}

#[derive(Arbitrary, Debug)]
struct Input {
    mtu_big: bool,
    restricted: bool,
    tiny_storage: bool,
    steps: Vec<Step>,
}

fn ipv4_frame(proto: u8, src_last: u8, dst: [u8; 4], frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + payload.len().min(65000)];
    f[0..6].copy_from_slice(&[0x52, 0x55, 10, 0, 2, 2]);
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let total = (20 + payload.len().min(65000)) as u16;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[6..8].copy_from_slice(&frag.to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&[10, 0, 2, src_last]);
    ip[16..20].copy_from_slice(&dst);
    let n = payload.len().min(65000);
    f[34..34 + n].copy_from_slice(&payload[..n]);
    f
}

fn check_output(frame: &[u8], mtu: usize) {
    assert!(frame.len() >= 60, "short frame {}", frame.len());
    assert!(frame.len() <= mtu + 14, "frame {} over MTU {}", frame.len(), mtu);
    let eth = EthernetFrame::new_checked(frame).expect("ethernet");
    match eth.ethertype() {
        EtherType::Arp => assert!(eth.payload().len() >= 28),
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
            assert!(ip.verify_checksum(), "bad IPv4 checksum in output");
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload()).expect("ipv6");
            assert_eq!(ip.version(), 6);
            if ip.next_header() == 58 {
                let icmp = Icmpv6Packet::new_checked(ip.payload()).expect("icmpv6");
                assert!(icmp.verify_checksum(ip.src_addr(), ip.dst_addr()), "bad ICMPv6 checksum in output");
            }
        }
        other => panic!("unexpected ethertype {other:?}"),
    }
}

fuzz_target!(|input: Input| {
    let mtu: u16 = if input.mtu_big { 9000 } else { 1500 };
    let ipv6 = Ipv6Config { enabled: true, ra_interval: core::time::Duration::from_secs(30), ..Ipv6Config::default() };
    let config = Config { mtu, restricted: input.restricted, ipv6, ..Config::default() };
    let storage = if input.tiny_storage {
        Storage::with_capacity(2048, 512, 1, 1024)
    } else {
        Storage::with_capacity(256 * 1024, 64 * 1024, 4, 65535)
    };
    let mut slirp = Slirp::new(config, storage).expect("valid config");
    let mut now = Instant::from_millis(0);
    let mut out = vec![0u8; 65536];
    let mut frames_in = 0u64;
    for step in input.steps {
        match step {
            Step::Frame(f) => {
                slirp.handle_guest_frame(now, &f, &mut NoHost);
                frames_in += 1;
            }
            Step::Ipv4 { proto, src_last, dst, frag, payload } => {
                let f = ipv4_frame(proto, src_last, dst, frag, &payload);
                slirp.handle_guest_frame(now, &f, &mut NoHost);
                frames_in += 1;
            }
            Step::Ipv6 { next_header, src, dst, hop_limit, multicast_mac, payload } => {
                let f = ipv6_frame(next_header, src, dst, hop_limit, multicast_mac, &payload);
                slirp.handle_guest_frame(now, &f, &mut NoHost);
                frames_in += 1;
            }
            Step::Advance(ms) => now = now + core::time::Duration::from_millis(u64::from(ms) * 16),
            Step::Timeout => slirp.handle_timeout(now, &mut NoHost),
            Step::Drain(n) => {
                for _ in 0..n {
                    match slirp.poll_transmit_into(now, &mut NoHost, &mut out) {
                        Some(len) => check_output(&out[..len], usize::from(mtu)),
                        None => break,
                    }
                }
            }
        }
        if let Some(at) = slirp.poll_at() {
            if at <= now {
                slirp.handle_timeout(now, &mut NoHost);
            }
        }
    }
    while let Some(len) = slirp.poll_transmit_into(now, &mut NoHost, &mut out) {
        check_output(&out[..len], usize::from(mtu));
    }
    assert_eq!(slirp.stats().rx_frames, frames_in);
});
