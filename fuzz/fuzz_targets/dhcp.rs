//! The DHCP server, structure-aware: DISCOVER, REQUEST, RELEASE, DECLINE, INFORM, unknown types
//! and plain BOOTP from a handful of MACs (or any), with requested IPs, server ids and ciaddr in
//! and around the pool, arbitrary extra options, and time passing over short leases. Either
//! straight into the server (`DhcpServer::handle`, through the `fuzzing` feature) or as whole
//! guest frames through `Slirp`, whose reply frames are parsed back down to the DHCP message.
//!
//! Checked beyond "no panic": every lease is inside the pool, no address has two holders and no
//! MAC holds two addresses; the leases are exactly those a model of the documented policy holds
//! (a slot is reserved from the OFFER on, sticky per MAC, reusable only once expired); whether
//! a request is answered, and with which type and address, matches that policy; replies parse
//! and carry the request's xid and chaddr, our server id, and a pool address (NAK: none).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use slirp_core::config::DHCP_POOL_SIZE;
use slirp_core::fuzzing::{DhcpServer, Verdict};
use slirp_core::wire::dhcp::{opt, FIXED_LEN, MAGIC_COOKIE, OP_REPLY, OP_REQUEST, REPLY_LEN};
use slirp_core::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, Ipv4Repr,
    UdpPacket,
};
use slirp_core::{Config, Instant, NoHost, Slirp, Storage};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Discover,
    Request,
    Release,
    Decline,
    Inform,
    /// Any other option-53 value (replies like OFFER/ACK/NAK from a guest, unknown codes).
    Other(u8),
    /// A DHCP cookie but no option 53.
    NoType,
    /// Plain BOOTP: no magic cookie at all.
    Bootp,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Mac {
    /// One of 8 unicast MACs, so clients compete for the pool and come back.
    Client(u8),
    Raw([u8; 6]),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Addr {
    /// dhcp_start + n - 2: the two below the pool, the pool, and a few above it.
    Pool(u8),
    Gateway,
    Raw([u8; 4]),
}

#[derive(Arbitrary, Debug)]
struct Msg {
    kind: Kind,
    /// BOOTREPLY instead of BOOTREQUEST (must be ignored).
    reply_op: bool,
    bad_htype: bool,
    mac: Mac,
    xid: u32,
    broadcast: bool,
    ciaddr: Option<Addr>,
    requested: Option<Addr>,
    server_id: Option<Addr>,
    /// Options written before option 53 and the others (anything: pads, unknown codes, repeats
    /// of known ones with odd lengths).
    before: Vec<(u8, Vec<u8>)>,
    after: Vec<(u8, Vec<u8>)>,
    /// Leave out END (and what follows).
    no_end: bool,
    /// Bytes after END (or after the last option).
    trailer: Vec<u8>,
    /// Cut the message to this many bytes (if shorter than it is).
    truncate: Option<u16>,
}

#[derive(Arbitrary, Debug)]
enum Step {
    Msg(Msg),
    /// Raw BOOTP bytes.
    Raw(Vec<u8>),
    /// Seconds.
    Advance(u16),
    /// Just past the next lease expiry.
    Expire,
}

/// Another virtual network than 10.0.2.0/24 (inputs whose network does not validate are skipped).
#[derive(Arbitrary, Debug)]
struct Net {
    network: [u8; 4],
    prefix_len: u8,
    gateway: u32,
    dns: u32,
    pool: u32,
}

#[derive(Arbitrary, Debug)]
struct Input {
    through_stack: bool,
    net: Option<Net>,
    restricted: bool,
    lease_s: u16,
    hostname: Option<String>,
    domain: Option<String>,
    steps: Vec<Step>,
}

fn mac_of(m: Mac) -> EthernetAddress {
    match m {
        Mac::Client(n) => EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, n % 8]),
        Mac::Raw(b) => EthernetAddress(b),
    }
}

fn addr_of(config: &Config, a: Addr) -> Ipv4Addr {
    match a {
        Addr::Pool(n) => Ipv4Addr::from(u32::from(config.dhcp_start).wrapping_add(u32::from(n % 24)).wrapping_sub(2)),
        Addr::Gateway => config.gateway,
        Addr::Raw(b) => Ipv4Addr::from(b),
    }
}

fn encode(config: &Config, m: &Msg) -> Vec<u8> {
    let mut b = vec![0u8; FIXED_LEN];
    b[0] = if m.reply_op { OP_REPLY } else { OP_REQUEST };
    b[1] = if m.bad_htype { 6 } else { 1 };
    b[2] = 6;
    b[4..8].copy_from_slice(&m.xid.to_be_bytes());
    if m.broadcast {
        b[10] = 0x80;
    }
    if let Some(a) = m.ciaddr {
        b[12..16].copy_from_slice(&addr_of(config, a).octets());
    }
    b[28..34].copy_from_slice(&mac_of(m.mac).0);
    if matches!(m.kind, Kind::Bootp) {
        b.extend_from_slice(&m.trailer);
        b.resize(b.len().max(300), 0);
    } else {
        b.extend_from_slice(&MAGIC_COOKIE);
        let put = |b: &mut Vec<u8>, code: u8, body: &[u8]| {
            b.push(code);
            if code != opt::PAD && code != opt::END {
                let n = body.len().min(255);
                b.push(n as u8);
                b.extend_from_slice(&body[..n]);
            }
        };
        for (code, body) in m.before.iter().take(8) {
            put(&mut b, *code, body);
        }
        let t = match m.kind {
            Kind::Discover => Some(1),
            Kind::Request => Some(3),
            Kind::Decline => Some(4),
            Kind::Release => Some(7),
            Kind::Inform => Some(8),
            Kind::Other(v) => Some(v),
            Kind::NoType | Kind::Bootp => None,
        };
        if let Some(t) = t {
            put(&mut b, opt::MESSAGE_TYPE, &[t]);
        }
        if let Some(a) = m.requested {
            put(&mut b, opt::REQUESTED_IP, &addr_of(config, a).octets());
        }
        if let Some(a) = m.server_id {
            put(&mut b, opt::SERVER_ID, &addr_of(config, a).octets());
        }
        for (code, body) in m.after.iter().take(8) {
            put(&mut b, *code, body);
        }
        if !m.no_end {
            b.push(opt::END);
        }
        b.extend_from_slice(&m.trailer);
    }
    if let Some(n) = m.truncate {
        b.truncate(usize::from(n));
    }
    b
}

#[derive(Clone, Copy)]
struct Lease {
    mac: EthernetAddress,
    expires: Instant,
}

/// The documented lease policy, as a map from pool index to holder.
struct Model {
    leases: [Option<Lease>; DHCP_POOL_SIZE],
}

impl Model {
    fn grantable(&self, now: Instant, i: usize, mac: EthernetAddress) -> bool {
        self.leases[i].is_none_or(|l| l.mac == mac || l.expires <= now)
    }
    /// Whether any slot can go to `mac` (the server answers a DISCOVER exactly then).
    fn any_grantable(&self, now: Instant, mac: EthernetAddress) -> bool {
        (0..DHCP_POOL_SIZE).any(|i| self.grantable(now, i, mac))
    }
    fn grant(&mut self, now: Instant, config: &Config, i: usize, mac: EthernetAddress) {
        assert!(self.grantable(now, i, mac), "slot {i} given to {mac:?} while another client holds it");
        for l in self.leases.iter_mut() {
            if l.is_some_and(|l| l.mac == mac) {
                *l = None;
            }
        }
        self.leases[i] = Some(Lease { mac, expires: now + config.lease_time });
    }
}

/// What the policy says about one parsed request: `None` (silence) or (type, address).
fn expected(model: &Model, now: Instant, config: &Config, req: &DhcpRepr) -> Option<(DhcpMessageType, Option<usize>)> {
    if req.op != OP_REQUEST || !req.chaddr.is_unicast() {
        return None;
    }
    let mac = req.chaddr;
    let requested = req.requested_ip.and_then(|a| config.dhcp_index(a));
    match req.message_type.unwrap_or(DhcpMessageType::Request) {
        DhcpMessageType::Discover => {
            if let Some(i) = requested.filter(|&i| model.grantable(now, i, mac)) {
                return Some((DhcpMessageType::Offer, Some(i)));
            }
            // Own slot, else a free one, else an expired one: some slot, if any is grantable.
            model.any_grantable(now, mac).then_some((DhcpMessageType::Offer, None))
        }
        DhcpMessageType::Request => {
            if req.server_id.is_some_and(|s| s != config.gateway) {
                return None;
            }
            let wanted = req.requested_ip.or((!req.ciaddr.is_unspecified()).then_some(req.ciaddr));
            match wanted {
                Some(a) => match config.dhcp_index(a) {
                    Some(i) if model.grantable(now, i, mac) => Some((DhcpMessageType::Ack, Some(i))),
                    _ => Some((DhcpMessageType::Nak, None)),
                },
                None => model.any_grantable(now, mac).then_some((DhcpMessageType::Ack, None)),
            }
        }
        _ => None,
    }
}

/// Checks one reply against the request and the policy and updates the model.
fn check_reply(
    model: &mut Model,
    now: Instant,
    config: &Config,
    req: Option<&DhcpRepr>,
    want: Option<Option<(DhcpMessageType, Option<usize>)>>,
    reply: &DhcpRepr,
) {
    assert_eq!(reply.op, OP_REPLY);
    assert_eq!(reply.server_id, Some(config.gateway));
    let kind = reply.message_type.expect("a reply has a message type");
    if let Some(req) = req {
        assert_eq!(reply.xid, req.xid);
        assert_eq!(reply.chaddr, req.chaddr);
    }
    if let Some(want) = want {
        let (wkind, wslot) = want.expect("a reply where the policy says silence");
        assert_eq!(kind, wkind, "reply type");
        if let Some(i) = wslot {
            assert_eq!(config.dhcp_index(reply.yiaddr), Some(i), "not the requested address");
        }
    }
    match kind {
        DhcpMessageType::Offer | DhcpMessageType::Ack => {
            let i = config.dhcp_index(reply.yiaddr).expect("address outside the pool");
            assert!(reply.chaddr.is_unicast());
            assert_eq!(reply.router.is_some(), !config.restricted);
            assert_eq!(reply.dns.is_some(), !config.restricted);
            assert_eq!(reply.subnet_mask, Some(config.netmask()));
            model.grant(now, config, i, reply.chaddr);
        }
        DhcpMessageType::Nak => {
            assert_eq!(reply.yiaddr, Ipv4Addr::UNSPECIFIED);
            assert!(reply.broadcast);
        }
        other => panic!("reply of type {other:?}"),
    }
}

fn check_leases<I: Iterator<Item = (Ipv4Addr, EthernetAddress)>>(model: &Model, config: &Config, leases: I) {
    let mut by_addr = HashMap::new();
    let mut by_mac = HashMap::new();
    for (a, m) in leases {
        let i = config.dhcp_index(a).expect("lease outside the pool");
        assert!(by_addr.insert(a, m).is_none(), "{a} leased twice");
        assert!(by_mac.insert(m, a).is_none(), "{m:?} holds two addresses");
        assert_eq!(model.leases[i].map(|l| l.mac), Some(m), "lease {a} not in the model");
    }
    assert_eq!(by_addr.len(), model.leases.iter().flatten().count(), "model holds leases the server forgot");
}

/// The guest frame carrying `bootp` from 0.0.0.0:68 to 255.255.255.255:67 (or to the gateway).
fn frame(src_mac: EthernetAddress, to_gateway: bool, config: &Config, bootp: &[u8]) -> Vec<u8> {
    let n = bootp.len().min(9000);
    let mut f = vec![0u8; 14 + 20 + 8 + n];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&src_mac.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let dst = if to_gateway { config.gateway } else { Ipv4Addr::BROADCAST };
    let repr = Ipv4Repr {
        src_addr: Ipv4Addr::UNSPECIFIED,
        dst_addr: dst,
        protocol: IpProtocol::Udp,
        payload_len: 8 + n,
        ttl: 64,
        tos: 0,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    };
    repr.emit(&mut f[14..34]);
    let udp = &mut f[34..];
    udp[0..2].copy_from_slice(&68u16.to_be_bytes());
    udp[2..4].copy_from_slice(&67u16.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + n) as u16).to_be_bytes());
    udp[8..].copy_from_slice(&bootp[..n]);
    UdpPacket::new_unchecked(&mut *udp).fill_checksum(Ipv4Addr::UNSPECIFIED, dst);
    f
}

/// `back` (the emitted reply parsed again) says what `reply` said: every field and the options
/// that always fit exactly; the optional options (26, 12, 15, 66, 67) as sent or left out for
/// room, never changed; the search list and the client's request list are not read back.
fn assert_survives(back: &DhcpRepr<'_>, reply: &DhcpRepr<'_>) {
    fn strip<'a>(r: &DhcpRepr<'a>) -> DhcpRepr<'a> {
        let mut r = *r;
        (r.mtu, r.hostname, r.domain, r.tftp_server, r.bootfile) = (None, None, None, None, None);
        (r.search, r.parameter_request_list) = (None, None);
        r
    }
    assert_eq!(strip(back), strip(reply), "reply does not survive emit/parse");
    for (b, r) in [(back.hostname, reply.hostname), (back.domain, reply.domain), (back.tftp_server, reply.tftp_server), (back.bootfile, reply.bootfile)] {
        assert!(b.is_none() || b == r, "an option changed on the way: {b:?} for {r:?}");
    }
    assert!(back.mtu.is_none() || back.mtu == reply.mtu);
    // The fixed fields carry the boot file and server name whole (both fit their fields).
    assert_eq!(back.file, reply.file);
    assert_eq!(back.sname, reply.sname);
}

fuzz_target!(|input: Input| {
    let mut config = Config {
        restricted: input.restricted,
        lease_time: Duration::from_secs(u64::from(input.lease_s % 3600) + 1),
        ..Config::default()
    };
    if let Some(n) = &input.net {
        let prefix = 8 + n.prefix_len % 23;
        let size = 1u32 << (32 - prefix);
        let network = u32::from_be_bytes(n.network) & !(size - 1);
        config.prefix_len = prefix;
        config.network = Ipv4Addr::from(network);
        config.gateway = Ipv4Addr::from(network + n.gateway % size);
        config.dns = Ipv4Addr::from(network + n.dns % size);
        config.dhcp_start = Ipv4Addr::from(network + n.pool % size);
        if config.validate().is_err() {
            return;
        }
    }
    if let Some(h) = input.hostname.as_deref().and_then(|h| h.try_into().ok()) {
        config.hostname = Some(h);
    }
    if let Some(d) = input.domain.as_deref().and_then(|d| d.try_into().ok()) {
        config.domain = Some(d);
    }
    // The option writer's other inputs, from the same strings (the input layout stays, so the
    // seeds keep their meaning): a search list that repeats suffixes (compression pointers) and
    // may overflow the area, a boot file and a server name.
    let (h, d) = (input.hostname.as_deref().unwrap_or(""), input.domain.as_deref().unwrap_or(""));
    let list = format!("{d},x.{d},{h}.{d},{h},y.{h}");
    config.search = list.get(..list.len().min(256)).and_then(|l| l.try_into().ok());
    // Without NUL bytes (the fields are NUL-terminated: what follows one is not the name).
    let text = |s: &str, max: usize| s.get(..s.len().min(max)).filter(|t| !t.contains('\0')).map(String::from);
    config.bootfile = text(h, 127).and_then(|b| b.as_str().try_into().ok());
    config.tftp_server_name = text(d, 63).and_then(|n| n.as_str().try_into().ok());
    let mut server = DhcpServer::default();
    let mut slirp = if input.through_stack {
        Some(Slirp::new(config.clone(), Storage::with_buffers(16 * 1024, 4096, 1, 2048)).expect("valid config"))
    } else {
        None
    };
    let mut model = Model { leases: [None; DHCP_POOL_SIZE] };
    let mut now = Instant::from_secs(1);
    let mut out = vec![0u8; 2048];
    for (n, step) in input.steps.into_iter().take(64).enumerate() {
        let (bytes, to_gateway) = match step {
            Step::Advance(s) => {
                now = now + Duration::from_secs(u64::from(s));
                continue;
            }
            Step::Expire => {
                if let Some(t) = model.leases.iter().flatten().map(|l| l.expires).min() {
                    now = now.max(t);
                }
                continue;
            }
            Step::Msg(m) => (encode(&config, &m), m.xid & 1 == 1),
            Step::Raw(b) => (b, false),
        };
        // Within one frame at the default MTU.
        let bytes = &bytes[..bytes.len().min(1400)];
        let parsed = DhcpPacket::new_checked(bytes).ok();
        let req = parsed.as_ref().and_then(|p| DhcpRepr::parse(p).ok());
        let want = req.as_ref().map(|r| expected(&model, now, &config, r));
        match slirp.as_mut() {
            None => {
                let Some(req) = req else { continue };
                match server.handle(now, &config, &req) {
                    Verdict::Ignore => assert_eq!(want, Some(None), "silence where the policy answers"),
                    Verdict::Reply(reply) => {
                        let mut buf = [0u8; REPLY_LEN];
                        reply.emit(&mut buf);
                        let p = DhcpPacket::new_checked(&buf[..]).expect("reply length");
                        let back = DhcpRepr::parse(&p).expect("reply parses");
                        assert_survives(&back, &reply);
                        check_reply(&mut model, now, &config, Some(&req), want, &back);
                    }
                }
                check_leases(&model, &config, server.leases(&config));
            }
            Some(slirp) => {
                let src_mac = req
                    .map(|r| r.chaddr)
                    .filter(|m| m.is_unicast())
                    .unwrap_or(EthernetAddress([0x52, 0x54, 0, 0xaa, 0xbb, n as u8]));
                slirp.handle_guest_frame(now, &frame(src_mac, to_gateway, &config, bytes), &mut NoHost);
                let mut replies = 0;
                while let Some(len) = slirp.poll_transmit_into(now, &mut NoHost, &mut out) {
                    let f = &out[..len];
                    let eth = EthernetFrame::new_checked(f).expect("ethernet");
                    if eth.ethertype() != EtherType::Ipv4 {
                        continue;
                    }
                    let ip = Ipv4Packet::new_checked(eth.payload()).expect("ipv4");
                    assert!(ip.verify_checksum());
                    assert_eq!(ip.protocol(), IpProtocol::Udp);
                    assert_eq!(ip.src_addr(), config.gateway);
                    let udp = UdpPacket::new_checked(ip.payload()).expect("udp");
                    assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()), "udp checksum");
                    assert_eq!((udp.src_port(), udp.dst_port()), (67, 68));
                    let p = DhcpPacket::new_checked(udp.payload()).expect("dhcp length");
                    let reply = DhcpRepr::parse(&p).expect("reply parses");
                    if reply.message_type == Some(DhcpMessageType::Nak) || req.is_some_and(|r| r.broadcast) {
                        assert_eq!(ip.dst_addr(), Ipv4Addr::BROADCAST);
                        assert!(eth.dst_addr().is_broadcast());
                    } else {
                        assert_eq!(eth.dst_addr(), reply.chaddr);
                    }
                    check_reply(&mut model, now, &config, req.as_ref(), want, &reply);
                    replies += 1;
                }
                assert!(replies <= 1, "{replies} replies to one request");
                if replies == 0 {
                    assert!(want.is_none_or(|w| w.is_none()), "silence where the policy answers");
                }
                check_leases(&model, &config, slirp.leases());
            }
        }
    }
});
