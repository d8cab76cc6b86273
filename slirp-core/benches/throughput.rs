//! Core-only benchmarks: the engine in memory, no sockets, no kernel.
//!
//! - bulk TCP host → guest and guest → host through the NAT, with every checksum computed and
//!   verified, the guest being a second instance of our own TCP control block;
//! - per-frame cost of the ARP, ICMP echo and UDP NAT paths.
//!
//! Run: `cargo bench -p slirp-core --bench throughput` (optionally `-- MTU SECONDS`).

use slirp_core::tcp::{Tcb, TcpBuffers, TcpConfig};
use slirp_core::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet, Ipv4Repr,
    SeqNumber, TcpPacket, TcpRepr,
};
use slirp_core::{
    Config, GuestOffload, HostError, HostSocket, Instant, RxChecksum, Slirp, SocketId, Storage, UdpEvent,
};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant as WallClock;

const GUEST_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const GW_MAC: EthernetAddress = EthernetAddress([0x52, 0x55, 10, 0, 2, 2]);
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 1), 5001);

/// A host with one TCP peer that has endless data and swallows everything.
#[derive(Default)]
struct BulkHost {
    sock: Option<SocketId>,
    to_guest: bool,
    received: u64,
}

impl HostSocket for BulkHost {
    fn tcp_connect(&mut self, id: SocketId, _: SocketAddr) -> Result<(), HostError> {
        self.sock = Some(id);
        Ok(())
    }
    fn tcp_connect_result(&mut self, _: SocketId) -> Result<(), HostError> {
        Ok(())
    }
    fn tcp_send(&mut self, _: SocketId, data: &[u8]) -> Result<usize, HostError> {
        self.received += data.len() as u64;
        Ok(data.len())
    }
    fn tcp_recv(&mut self, _: SocketId, buf: &mut [u8]) -> Result<usize, HostError> {
        if !self.to_guest {
            return Err(HostError::WouldBlock);
        }
        // Fresh bytes each call would cost a fill; the pattern is irrelevant to the engine.
        Ok(buf.len())
    }
    fn udp_bind(&mut self, _: SocketId, l: SocketAddr) -> Result<SocketAddr, HostError> {
        Ok(l)
    }
    fn udp_send_to(&mut self, _: SocketId, _: &[u8], _: SocketAddr, _: Option<u8>) -> Result<(), HostError> {
        Ok(())
    }
    fn udp_recv_from(&mut self, _: SocketId, _: &mut [u8]) -> Result<UdpEvent, HostError> {
        Err(HostError::WouldBlock)
    }
}

fn frame_of(ip: &Ipv4Repr, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 20 + l4.len()];
    EthernetRepr { src_addr: GUEST_MAC, dst_addr: GW_MAC, ethertype: EtherType::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    ip.emit(&mut f[14..34]);
    f[34..].copy_from_slice(l4);
    f
}

fn ip(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, len: usize) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: proto,
        payload_len: len,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    }
}

/// Runs one bulk transfer for `secs` seconds; returns payload bytes per second.
/// Bulk TCP through the engine for `secs`; with `offload`, the link's checksum and segmentation
/// offloads are on both ways (super-frames up to 64 KiB, checksums left partial and trusted, as
/// on a TAP with a virtio-net header).
fn bulk(mtu: u16, secs: f64, to_guest: bool, offload: bool) -> (f64, u64) {
    let config = Config { mtu, ..Config::default() };
    let storage = Storage::with_capacity(4 << 20, 64 * 1024, 2, 65535).with_tcp_capacity(4, 1 << 20, 1 << 20);
    let mut slirp = Slirp::new(config, storage).unwrap();
    if offload {
        slirp.set_guest_offload(GuestOffload { checksum: true, segmentation: true });
    }
    let guest_offload = GuestOffload { checksum: offload, segmentation: offload };
    let rx_checksum = if offload { RxChecksum::Trusted } else { RxChecksum::Unverified };
    let max_frame = if offload { 65535 + 14 } else { usize::from(mtu) + 14 };
    let mut host = BulkHost { to_guest, ..BulkHost::default() };
    let start = WallClock::now();
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64 + 1);
    let guest_ep = SocketAddrV4::new(GUEST, 40000);
    let gcfg = TcpConfig { mtu: usize::from(mtu), ..TcpConfig::default() };
    let mut guest = Tcb::connect(
        gcfg,
        TcpBuffers::new(vec![0u8; 1 << 20], vec![0u8; 1 << 20]),
        guest_ep,
        SERVER,
        SeqNumber(7),
        now(),
    );
    let mut seg = vec![0u8; max_frame - 14];
    let mut out = vec![0u8; max_frame];
    let mut delivered = 0u64;
    let mut frames = 0u64;
    let mut connected = false;
    loop {
        let t = now();
        if start.elapsed().as_secs_f64() > secs {
            break;
        }
        // Guest → engine.
        while let Some(e) = guest.emit_next_offloaded(t, &mut seg[..max_frame - 14 - 20], guest_offload) {
            let n = e.len;
            let f = frame_of(&ip(GUEST, *SERVER.ip(), IpProtocol::Tcp, n), &seg[..n]);
            slirp.handle_guest_frame_offloaded(t, &f, rx_checksum, &mut host);
            frames += 1;
        }
        if !connected {
            if let Some(id) = host.sock {
                slirp.handle_host_writable(t, id, &mut host);
                connected = true;
            }
        }
        if connected && to_guest {
            if let Some(id) = host.sock {
                slirp.handle_host_readable(t, id, &mut host);
            }
        }
        if !to_guest {
            guest.write_send_buffer(|b| b.len());
        }
        // Engine → guest.
        while let Some(frame) = slirp.poll_transmit(t, &mut host) {
            // Like a link: one copy out of the engine's queue.
            let n = frame.len();
            out[..n].copy_from_slice(&frame);
            let partial = frame.offload().checksum.is_some();
            frame.consume();
            frames += 1;
            let eth = EthernetFrame::new_checked(&out[..n]).unwrap();
            let p = Ipv4Packet::new_checked(eth.payload()).unwrap();
            assert!(p.verify_checksum());
            if p.protocol() != IpProtocol::Tcp {
                continue;
            }
            let tp = TcpPacket::new_checked(p.payload()).unwrap();
            // A partial checksum is the link's to finish; the receiving stack trusts it.
            let repr = TcpRepr::parse(&tp, p.src_addr(), p.dst_addr(), !partial).unwrap();
            guest.on_segment(t, &repr, |b| {
                delivered += b.len() as u64;
                b.len()
            });
        }
        if guest.poll_at().is_some_and(|at| at <= t) {
            guest.on_timeout(t);
        }
        if slirp.poll_at().is_some_and(|at| at <= t) {
            slirp.handle_timeout(t, &mut host);
        }
    }
    let bytes = if to_guest { delivered } else { host.received };
    (bytes as f64 / start.elapsed().as_secs_f64(), frames)
}

/// Frames per second through one path.
fn per_frame(name: &str, frame: &[u8], secs: f64) {
    let mut slirp = Slirp::new(Config::default(), Storage::with_capacity(1 << 20, 64 * 1024, 2, 65535)).unwrap();
    let mut host = BulkHost::default();
    let mut out = vec![0u8; 2048];
    let start = WallClock::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        for _ in 0..1000 {
            let t = Instant::from_micros(n);
            slirp.handle_guest_frame(t, frame, &mut host);
            while slirp.poll_transmit_into(t, &mut host, &mut out).is_some() {}
            n += 1;
        }
    }
    let dt = start.elapsed().as_secs_f64();
    println!("{name:<28} {:>8.0} ns/frame  {:>10.0} frames/s", dt * 1e9 / n as f64, n as f64 / dt);
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with('-')).collect();
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let mtus: Vec<u16> = match args.get(1).and_then(|s| s.parse().ok()) {
        Some(m) => vec![m],
        None => vec![1500, 9000, 65520],
    };
    println!("slirp-core in memory, one core, checksums computed and verified both ways");
    for &mtu in &mtus {
        for to_guest in [true, false] {
            let (bps, frames) = bulk(mtu, secs, to_guest, false);
            let dir = if to_guest { "host -> guest" } else { "guest -> host" };
            println!("bulk TCP {dir} MTU {mtu:>5}: {:>7.2} Gbit/s  ({frames} frames)", bps * 8.0 / 1e9);
        }
    }
    println!("with link offloads (TCP super-frames up to 64 KiB, checksums left to the link)");
    for &mtu in mtus.iter().filter(|&&m| m == 1500) {
        for to_guest in [true, false] {
            let (bps, frames) = bulk(mtu, secs, to_guest, true);
            let dir = if to_guest { "host -> guest" } else { "guest -> host" };
            println!("bulk TCP {dir} MTU {mtu:>5}: {:>7.2} Gbit/s  ({frames} frames)", bps * 8.0 / 1e9);
        }
    }
    let arp = {
        let mut f = vec![0u8; 42];
        EthernetRepr { src_addr: GUEST_MAC, dst_addr: EthernetAddress::BROADCAST, ethertype: EtherType::Arp }
            .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: GUEST_MAC,
            source_protocol_addr: GUEST,
            target_hardware_addr: EthernetAddress::ZERO,
            target_protocol_addr: Ipv4Addr::new(10, 0, 2, 2),
        }
        .emit(&mut f[14..]);
        f
    };
    per_frame("ARP request -> reply", &arp, secs / 2.0);
    let mut icmp = vec![8u8, 0, 0, 0, 0, 1, 0, 1];
    icmp.extend_from_slice(&[0xab; 56]);
    let c = slirp_core::wire::checksum::data(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let ping = frame_of(&ip(GUEST, Ipv4Addr::new(10, 0, 2, 2), IpProtocol::Icmp, icmp.len()), &icmp);
    per_frame("ICMP echo -> reply", &ping, secs / 2.0);
    let mut udp = vec![0u8; 8 + 64];
    udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&72u16.to_be_bytes());
    let mut p = slirp_core::wire::UdpPacket::new_unchecked(&mut udp[..]);
    p.fill_checksum(GUEST, *SERVER.ip());
    let dgram = frame_of(&ip(GUEST, *SERVER.ip(), IpProtocol::Udp, udp.len()), &udp);
    per_frame("UDP 64 B guest -> host NAT", &dgram, secs / 2.0);
}
