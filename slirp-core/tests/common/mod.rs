//! Frame builders, an engine harness and output checks shared by the engine-level tests.
//!
//! Every frame is built with the crate's own `wire` reprs, and every frame the engine emits is
//! checked by [`check_frame`] before a test looks at it.
#![allow(dead_code)]

use core::net::Ipv4Addr;
use slirp_core::wire::{
    checksum, ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpRepr, EtherType, EthernetAddress, EthernetFrame,
    EthernetRepr, Icmpv4Packet, Icmpv6Packet, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, SeqNumber, TcpControl,
    TcpPacket, TcpRepr, UdpPacket,
};
use slirp_core::{Config, DropReason, Instant, NoHost, Slirp, Storage};

pub const GUEST_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
pub const GUEST2_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);
pub const GUEST_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
pub const GUEST2_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 16);
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
pub const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(8, 8, 8, 8);
pub const GATEWAY_MAC: EthernetAddress = EthernetAddress([0x52, 0x55, 10, 0, 2, 2]);
pub const DNS_MAC: EthernetAddress = EthernetAddress([0x52, 0x55, 10, 0, 2, 3]);
/// An address in the guest's network that is none of ours and no guest's.
pub const NET_9: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 9);

/// Storage generous enough that nothing fills up in ordinary tests.
pub fn big_storage() -> Storage<'static> {
    Storage::with_capacity(512 * 1024, 128 * 1024, 4, 65535)
}

// ------------------------------------------------------------------------------------------
// Frame builders

/// An Ethernet frame with `payload` (not padded).
pub fn eth(src: EthernetAddress, dst: EthernetAddress, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 14 + payload.len()];
    EthernetRepr { src_addr: src, dst_addr: dst, ethertype }.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    f[14..].copy_from_slice(payload);
    f
}

/// An ARP packet in an Ethernet frame from `sha`; requests are broadcast, replies go to the
/// gateway's MAC.
pub fn arp(op: ArpOperation, sha: EthernetAddress, spa: Ipv4Addr, tha: EthernetAddress, tpa: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr {
        operation: op,
        source_hardware_addr: sha,
        source_protocol_addr: spa,
        target_hardware_addr: tha,
        target_protocol_addr: tpa,
    };
    let mut p = [0u8; 28];
    repr.emit(&mut p);
    let dst = if op == ArpOperation::Request { EthernetAddress::BROADCAST } else { GATEWAY_MAC };
    eth(sha, dst, EtherType::Arp, &p)
}

/// An ARP request from `sha`/`spa` for `tpa`.
pub fn arp_request(sha: EthernetAddress, spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    arp(ArpOperation::Request, sha, spa, EthernetAddress::ZERO, tpa)
}

/// An ARP reply from `sha`/`spa` to the gateway.
pub fn arp_reply(sha: EthernetAddress, spa: Ipv4Addr) -> Vec<u8> {
    arp(ArpOperation::Reply, sha, spa, GATEWAY_MAC, GATEWAY)
}

/// A plain IPv4 header: TTL 64, TOS 0, ident 0x1234, no fragmentation.
pub fn ip(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol) -> Ipv4Repr {
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: 0,
        ttl: 64,
        tos: 0,
        ident: 0x1234,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
}

/// An IPv4 datagram (header with `options`, then `payload`); `repr.payload_len` is ignored.
pub fn ipv4_datagram(repr: &Ipv4Repr, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert!(options.len().is_multiple_of(4) && options.len() <= 40);
    let hl = 20 + options.len();
    let mut d = vec![0u8; hl + payload.len()];
    let mut r = *repr;
    r.payload_len = payload.len();
    r.emit(&mut d);
    d[0] = 0x40 | (hl / 4) as u8;
    d[2..4].copy_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
    d[20..hl].copy_from_slice(options);
    d[hl..].copy_from_slice(payload);
    Ipv4Packet::new_unchecked(&mut d[..]).fill_checksum();
    d
}

/// An IPv4 datagram in an Ethernet frame from the guest to the gateway's MAC.
pub fn ipv4(repr: &Ipv4Repr, payload: &[u8]) -> Vec<u8> {
    eth(GUEST_MAC, GATEWAY_MAC, EtherType::Ipv4, &ipv4_datagram(repr, &[], payload))
}

/// An ICMP echo request message (checksummed).
pub fn echo_request(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8u8, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    Icmpv4Packet::new_unchecked(&mut m[..]).fill_checksum();
    m
}

/// An ICMP message of any type with a 4-byte rest-of-header of zeros and `body` (checksummed).
pub fn icmp_message(msg_type: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, code, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(body);
    Icmpv4Packet::new_unchecked(&mut m[..]).fill_checksum();
    m
}

/// A whole ping frame from the guest (GUEST_MAC, `src`) to `dst`.
pub fn ping(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    ipv4(&ip(src, dst, IpProtocol::Icmp), &echo_request(ident, seq, data))
}

/// A UDP datagram (header + payload) with its checksum.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut d = vec![0u8; len];
    d[0..2].copy_from_slice(&sport.to_be_bytes());
    d[2..4].copy_from_slice(&dport.to_be_bytes());
    d[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    d[8..].copy_from_slice(payload);
    UdpPacket::new_unchecked(&mut d[..]).fill_checksum(src, dst);
    d
}

/// A whole UDP frame from the guest.
pub fn udp_frame(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    ipv4(&ip(src, dst, IpProtocol::Udp), &udp(src, dst, sport, dport, payload))
}

/// A TCP segment with no options or payload.
pub fn tcp_seg(sport: u16, dport: u16, control: TcpControl, seq: u32, ack: Option<u32>) -> TcpRepr<'static> {
    TcpRepr {
        src_port: sport,
        dst_port: dport,
        control,
        seq_number: SeqNumber(seq),
        ack_number: ack.map(SeqNumber),
        window_len: 64240,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        urgent_at: None,
        payload: &[],
    }
}

/// A TCP segment's bytes with its checksum.
pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, seg: &TcpRepr<'_>) -> Vec<u8> {
    let mut d = vec![0u8; seg.buffer_len()];
    seg.emit(&mut d, src, dst);
    d
}

/// A whole TCP frame from the guest.
pub fn tcp_frame(src: Ipv4Addr, dst: Ipv4Addr, seg: &TcpRepr<'_>) -> Vec<u8> {
    ipv4(&ip(src, dst, IpProtocol::Tcp), &tcp(src, dst, seg))
}

/// A DHCP client message of `kind` from `mac` (plain BOOTP when `kind` is `None`).
pub fn dhcp_msg(kind: Option<DhcpMessageType>, mac: EthernetAddress) -> DhcpRepr<'static> {
    DhcpRepr {
        op: 1,
        xid: 0x1122_3344,
        secs: 0,
        broadcast: false,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        yiaddr: Ipv4Addr::UNSPECIFIED,
        siaddr: Ipv4Addr::UNSPECIFIED,
        giaddr: Ipv4Addr::UNSPECIFIED,
        chaddr: mac,
        message_type: kind,
        requested_ip: None,
        server_id: None,
        subnet_mask: None,
        router: None,
        dns: None,
        lease_time: None,
        mtu: None,
        hostname: None,
        domain: None,
        message: None,
        parameter_request_list: None,
        sname: None,
        file: None,
        tftp_server: None,
        bootfile: None,
        search: None,
    }
}

/// The BOOTP bytes of `msg` (548 bytes; without the magic cookie when `message_type` is
/// `None`, like a plain BOOTP client).
pub fn dhcp_bytes(msg: &DhcpRepr<'_>) -> Vec<u8> {
    let mut b = vec![0u8; msg.buffer_len()];
    msg.emit(&mut b);
    if msg.message_type.is_none() {
        b[236..].fill(0); // no cookie, no options: RFC 951 vendor area of zeros
    }
    b
}

/// A whole DHCP frame: Ethernet src = chaddr, broadcast; IP `src` → `dst`, 68 → 67.
pub fn dhcp_frame(msg: &DhcpRepr<'_>, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let body = dhcp_bytes(msg);
    let dgram = ipv4_datagram(&ip(src, dst, IpProtocol::Udp), &[], &udp(src, dst, 68, 67, &body));
    eth(msg.chaddr, EthernetAddress::BROADCAST, EtherType::Ipv4, &dgram)
}

/// A DISCOVER from `mac`, as a whole broadcast frame.
pub fn discover(mac: EthernetAddress) -> Vec<u8> {
    dhcp_frame(&dhcp_msg(Some(DhcpMessageType::Discover), mac), Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
}

/// Splits a datagram payload into fragments of at most `chunk` bytes (a multiple of 8); returns
/// (offset, more, bytes) per fragment.
pub fn split(payload: &[u8], chunk: usize) -> Vec<(u16, bool, Vec<u8>)> {
    assert!(chunk.is_multiple_of(8));
    let mut out = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let end = (off + chunk).min(payload.len());
        out.push((off as u16, end < payload.len(), payload[off..end].to_vec()));
        off = end;
    }
    out
}

/// One fragment frame of the datagram `base` (ident, addresses, protocol).
pub fn fragment(base: &Ipv4Repr, offset: u16, more: bool, bytes: &[u8]) -> Vec<u8> {
    let mut r = *base;
    r.frag_offset = offset;
    r.more_frags = more;
    ipv4(&r, bytes)
}

/// `frame` with its Ethernet source replaced by `mac`.
pub fn from_mac(mut frame: Vec<u8>, mac: EthernetAddress) -> Vec<u8> {
    frame[6..12].copy_from_slice(&mac.0);
    frame
}

/// A ping from the guest in a frame whose source MAC cannot be learned (all zeros): the reply
/// has to be resolved through the neighbor table, as host-initiated traffic toward a guest is.
pub fn anonymous_ping(seq: u16, data: &[u8]) -> Vec<u8> {
    from_mac(ping(GUEST_IP, GATEWAY, 7, seq, data), EthernetAddress::ZERO)
}

/// `n` bytes of a fixed pattern.
pub fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// A DHCP REQUEST from `mac` for `addr` naming our server.
pub fn request_for(mac: EthernetAddress, addr: Ipv4Addr) -> Vec<u8> {
    let mut m = dhcp_msg(Some(DhcpMessageType::Request), mac);
    m.requested_ip = Some(addr);
    m.server_id = Some(GATEWAY);
    dhcp_frame(&m, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST)
}

// ------------------------------------------------------------------------------------------
// Output parsing and checks

/// Every frame the engine emits must pass this: Ethernet with a known EtherType, at least 60 and
/// at most MTU + 14 bytes, a valid ARP packet or an IPv4 datagram with a correct header checksum,
/// IHL 5, no bytes read past the datagram but zero padding, and, when unfragmented, a correct
/// ICMP/UDP/TCP checksum.
pub fn check_frame(frame: &[u8], mtu: usize) -> Result<(), String> {
    if frame.len() < 60 {
        return Err(format!("frame of {} bytes is shorter than 60", frame.len()));
    }
    if frame.len() > mtu + 14 {
        return Err(format!("frame of {} bytes exceeds MTU {mtu} + 14", frame.len()));
    }
    let f = EthernetFrame::new_checked(frame).map_err(|e| format!("ethernet: {e}"))?;
    if !f.src_addr().is_unicast() || f.src_addr().0[..2] != [0x52, 0x55] {
        return Err(format!("source MAC {} is not a slirp virtual MAC", f.src_addr()));
    }
    match f.ethertype() {
        EtherType::Arp => {
            let p = ArpPacket::new_checked(f.payload()).map_err(|e| format!("arp: {e}"))?;
            ArpRepr::parse(&p).map_err(|e| format!("arp: {e}"))?;
            if frame.len() != 60 {
                return Err(format!("ARP frame of {} bytes, not 60", frame.len()));
            }
            if f.payload()[28..].iter().any(|&b| b != 0) {
                return Err("ARP padding not zero".into());
            }
            Ok(())
        }
        EtherType::Ipv4 => {
            if f.src_addr() != GATEWAY_MAC {
                return Err(format!("IP frame from {} instead of the gateway MAC", f.src_addr()));
            }
            let p = Ipv4Packet::new_checked(f.payload()).map_err(|e| format!("ipv4: {e}"))?;
            if !p.verify_checksum() {
                return Err("ipv4 header checksum".into());
            }
            if p.header_len() != 20 {
                return Err(format!("IHL {} != 20", p.header_len()));
            }
            let pad = &f.payload()[p.total_len() as usize..];
            if frame.len() != (14 + p.total_len() as usize).max(60) || pad.iter().any(|&b| b != 0) {
                return Err(format!("{} bytes after the datagram (only zero padding up to 60)", pad.len()));
            }
            if p.is_fragment() {
                return Ok(());
            }
            let (src, dst) = (p.src_addr(), p.dst_addr());
            let ok = match p.protocol() {
                IpProtocol::Icmp => Icmpv4Packet::new_checked(p.payload()).is_ok_and(|m| m.verify_checksum()),
                IpProtocol::Udp => UdpPacket::new_checked(p.payload())
                    .is_ok_and(|u| u.len() as usize == p.payload().len() && u.verify_checksum(src, dst)),
                IpProtocol::Tcp => TcpPacket::new_checked(p.payload()).is_ok_and(|t| t.verify_checksum(src, dst)),
                other => return Err(format!("unexpected protocol {other:?}")),
            };
            if ok {
                Ok(())
            } else {
                Err(format!("{:?} payload malformed or bad checksum", p.protocol()))
            }
        }
        EtherType::Ipv6 => {
            if f.src_addr() != GATEWAY_MAC {
                return Err(format!("IPv6 frame from {} instead of the gateway MAC", f.src_addr()));
            }
            let p = Ipv6Packet::new_checked(f.payload()).map_err(|e| format!("ipv6: {e}"))?;
            let len = 40 + p.payload_len() as usize;
            let pad = &f.payload()[len..];
            if frame.len() != (14 + len).max(60) || pad.iter().any(|&b| b != 0) {
                return Err(format!("{} bytes after the IPv6 packet (only zero padding up to 60)", pad.len()));
            }
            let (src, dst) = (p.src_addr(), p.dst_addr());
            if src.is_multicast() || src.is_unspecified() {
                return Err(format!("IPv6 source {src}"));
            }
            let ok = match p.next_header() {
                44 => return Ok(()), // a fragment: checked once reassembled
                58 => Icmpv6Packet::new_checked(p.payload()).is_ok_and(|m| m.verify_checksum(src, dst)),
                17 => UdpPacket::new_checked(p.payload()).is_ok_and(|u| {
                    u.len() as usize == p.payload().len() && u.checksum() != 0 && u.verify_checksum(src, dst)
                }),
                6 => TcpPacket::new_checked(p.payload()).is_ok_and(|t| t.verify_checksum(src, dst)),
                other => return Err(format!("unexpected next header {other}")),
            };
            if ok {
                Ok(())
            } else {
                Err(format!("IPv6 next header {} malformed or bad checksum", p.next_header()))
            }
        }
        other => Err(format!("unexpected ethertype {other:?}")),
    }
}

/// An IPv4 frame the engine emitted, parsed.
#[derive(Debug, Clone)]
pub struct IpOut {
    pub frame_len: usize,
    pub eth: EthernetRepr,
    pub ip: Ipv4Repr,
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
}

pub fn parse_ip(frame: &[u8]) -> IpOut {
    let f = EthernetFrame::new_checked(frame).expect("ethernet");
    let eth = EthernetRepr::parse(&f).expect("ethernet repr");
    assert_eq!(eth.ethertype, EtherType::Ipv4, "expected an IPv4 frame");
    let p = Ipv4Packet::new_checked(f.payload()).expect("ipv4");
    let ip = Ipv4Repr::parse(&p, true).expect("ipv4 repr");
    IpOut {
        frame_len: frame.len(),
        eth,
        ip,
        header: f.payload()[..p.header_len() as usize].to_vec(),
        payload: p.payload().to_vec(),
    }
}

pub fn parse_arp(frame: &[u8]) -> (EthernetRepr, ArpRepr) {
    let f = EthernetFrame::new_checked(frame).expect("ethernet");
    let eth = EthernetRepr::parse(&f).expect("ethernet repr");
    assert_eq!(eth.ethertype, EtherType::Arp, "expected an ARP frame");
    let arp = ArpRepr::parse(&ArpPacket::new_checked(f.payload()).expect("arp")).expect("arp repr");
    (eth, arp)
}

/// An ICMP message: (type, code, rest-of-header, body).
pub fn parse_icmp(payload: &[u8]) -> (u8, u8, [u8; 4], Vec<u8>) {
    let m = Icmpv4Packet::new_checked(payload).expect("icmp");
    assert!(m.verify_checksum(), "icmp checksum");
    (payload[0], payload[1], [payload[4], payload[5], payload[6], payload[7]], payload[8..].to_vec())
}

/// The UDP payload (after the 8-byte header) of a UDP datagram payload.
pub fn udp_payload(payload: &[u8]) -> (u16, u16, Vec<u8>) {
    let u = UdpPacket::new_checked(payload).expect("udp");
    (u.src_port(), u.dst_port(), u.payload().to_vec())
}

/// The DHCP options (code, body) in wire order, up to END.
pub fn dhcp_options(bootp: &[u8]) -> Vec<(u8, Vec<u8>)> {
    assert_eq!(&bootp[236..240], &[99, 130, 83, 99], "magic cookie");
    let mut o = &bootp[240..];
    let mut out = Vec::new();
    loop {
        match o[0] {
            255 => return out,
            0 => o = &o[1..],
            code => {
                let len = o[1] as usize;
                out.push((code, o[2..2 + len].to_vec()));
                o = &o[2 + len..];
            }
        }
    }
}

/// Reassembles a run of fragments (in order) into (first header, whole payload).
pub fn reassemble(frags: &[IpOut]) -> (Ipv4Repr, Vec<u8>) {
    let mut data = Vec::new();
    for (i, f) in frags.iter().enumerate() {
        assert_eq!(f.ip.frag_offset as usize, data.len(), "fragment {i} offset");
        assert_eq!(f.ip.more_frags, i + 1 < frags.len(), "fragment {i} MF");
        assert_eq!(f.ip.ident, frags[0].ip.ident, "fragments share the ident");
        data.extend_from_slice(&f.payload);
    }
    (frags[0].ip, data)
}

/// RFC 1071 checksum of `data` (for tests that need to fix one up by hand).
pub fn inet_checksum(data: &[u8]) -> u16 {
    checksum::data(data)
}

/// The echo reply in `frame`: (ip, ident, seq, data).
pub fn echo_reply(frame: &[u8]) -> (IpOut, u16, u16, Vec<u8>) {
    let o = parse_ip(frame);
    assert_eq!(o.ip.protocol, IpProtocol::Icmp);
    let (t, c, rest, body) = parse_icmp(&o.payload);
    assert_eq!((t, c), (0, 0), "echo reply");
    let ident = u16::from_be_bytes([rest[0], rest[1]]);
    let seq = u16::from_be_bytes([rest[2], rest[3]]);
    (o, ident, seq, body)
}

/// The ICMP error in `frame`: (ip, type, code, quote).
pub fn icmp_error(frame: &[u8]) -> (IpOut, u8, u8, Vec<u8>) {
    let o = parse_ip(frame);
    assert_eq!(o.ip.protocol, IpProtocol::Icmp);
    let (t, c, rest, quote) = parse_icmp(&o.payload);
    assert_eq!(rest, [0; 4]);
    (o, t, c, quote)
}

/// The DHCP reply in `frame`: (ip, bootp bytes), after checking the UDP ports.
pub fn dhcp_reply(frame: &[u8]) -> (IpOut, Vec<u8>) {
    let o = parse_ip(frame);
    assert_eq!(o.ip.protocol, IpProtocol::Udp);
    let (sport, dport, bootp) = udp_payload(&o.payload);
    assert_eq!((sport, dport), (67, 68));
    (o, bootp)
}

/// The address a BOOTP reply gives (`yiaddr`).
pub fn yiaddr(bootp: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(bootp[16], bootp[17], bootp[18], bootp[19])
}

// ------------------------------------------------------------------------------------------
// Harness

/// One engine, a clock, and a guest link that takes everything.
pub struct Net {
    pub slirp: Slirp<'static>,
    pub now: Instant,
    pub mtu: usize,
}

impl Net {
    pub fn new() -> Net {
        Net::with(Config::default(), big_storage())
    }

    pub fn with_config(config: Config) -> Net {
        Net::with(config, big_storage())
    }

    pub fn with(config: Config, storage: Storage<'static>) -> Net {
        let mtu = usize::from(config.mtu);
        Net { slirp: Slirp::new(config, storage).expect("valid config"), now: Instant::from_millis(1_000), mtu }
    }

    /// Feeds one guest frame.
    pub fn send(&mut self, frame: &[u8]) {
        self.slirp.handle_guest_frame(self.now, frame, &mut NoHost);
    }

    /// Moves the clock by `ms` and runs the timers.
    pub fn advance(&mut self, ms: u64) {
        self.now = Instant::from_micros(self.now.total_micros() + ms * 1000);
        self.slirp.handle_timeout(self.now, &mut NoHost);
    }

    /// Every frame queued for the guest, each checked by [`check_frame`].
    pub fn recv(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536 + 14];
        while let Some(n) = self.slirp.poll_transmit_into(self.now, &mut NoHost, &mut buf) {
            let frame = buf[..n].to_vec();
            if let Err(e) = check_frame(&frame, self.mtu) {
                panic!("invalid output frame: {e}\n{frame:02x?}");
            }
            out.push(frame);
        }
        out
    }

    /// Exactly one frame.
    pub fn recv_one(&mut self) -> Vec<u8> {
        let mut v = self.recv();
        assert_eq!(v.len(), 1, "expected exactly one frame, got {}", v.len());
        v.pop().unwrap()
    }

    /// Asserts the engine has nothing to say.
    pub fn assert_silent(&mut self) {
        let v = self.recv();
        assert!(v.is_empty(), "expected no output, got {} frame(s): {:02x?}", v.len(), v.first());
    }

    /// Feeds a frame and returns everything it produced.
    pub fn exchange(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        self.send(frame);
        self.recv()
    }

    pub fn dropped(&self, r: DropReason) -> u64 {
        self.slirp.stats().dropped(r)
    }

    /// The guest (GUEST_MAC, GUEST_IP) ARPs for its gateway, which teaches the engine its MAC;
    /// the ARP reply is consumed.
    pub fn introduce_guest(&mut self) {
        let out = self.exchange(&arp_request(GUEST_MAC, GUEST_IP, GATEWAY));
        assert_eq!(out.len(), 1);
    }
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}
