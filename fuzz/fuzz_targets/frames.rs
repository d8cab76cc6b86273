//! Arbitrary sequences of guest frames, time steps, timer runs and guest-link drains fed into
//! the core. Beyond "no panic", every frame the core emits must be well formed: at least the
//! Ethernet minimum, at most MTU + 14 bytes, and a parseable ARP or IPv4 packet with a valid
//! header checksum.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use slirp_core::wire::{EtherType, EthernetFrame, Ipv4Packet};
use slirp_core::{Config, Instant, NoHost, Slirp, Storage};

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
        other => panic!("unexpected ethertype {other:?}"),
    }
}

fuzz_target!(|input: Input| {
    let mtu: u16 = if input.mtu_big { 9000 } else { 1500 };
    let config = Config { mtu, restricted: input.restricted, ..Config::default() };
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
