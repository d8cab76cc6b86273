//! BOOTP (RFC 951) and DHCP (RFC 2131/2132) messages.

use super::ethernet::EthernetAddress;
use super::{read_ip, read_u16, read_u32, write_u16, write_u32, Error, Result};
use core::net::Ipv4Addr;

/// Length of the fixed BOOTP header (up to and excluding the options area).
pub const FIXED_LEN: usize = 236;
/// The DHCP magic cookie at the start of the options area.
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Length of the options area (cookie included) in the full-size messages we send.
pub const OPTIONS_LEN: usize = 312;
/// Length of every reply we send: fixed header and a full options area. Old BOOTP clients
/// need at least 300 bytes (libslirp 4.6.1 broke them by trimming replies).
pub const REPLY_LEN: usize = FIXED_LEN + OPTIONS_LEN;

/// BOOTP op: request.
pub const OP_REQUEST: u8 = 1;
/// BOOTP op: reply.
pub const OP_REPLY: u8 = 2;

/// Option codes.
pub mod opt {
    /// Padding.
    pub const PAD: u8 = 0;
    /// Subnet mask.
    pub const SUBNET_MASK: u8 = 1;
    /// Router.
    pub const ROUTER: u8 = 3;
    /// DNS servers.
    pub const DNS: u8 = 6;
    /// Host name.
    pub const HOSTNAME: u8 = 12;
    /// Domain name.
    pub const DOMAIN: u8 = 15;
    /// Interface MTU.
    pub const MTU: u8 = 26;
    /// Requested IP address.
    pub const REQUESTED_IP: u8 = 50;
    /// Lease time.
    pub const LEASE_TIME: u8 = 51;
    /// Message type.
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier.
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list.
    pub const PARAM_REQUEST: u8 = 55;
    /// Message (text).
    pub const MESSAGE: u8 = 56;
    /// Maximum message size.
    pub const MAX_SIZE: u8 = 57;
    /// TFTP server name (RFC 2132 §9.4).
    pub const TFTP_SERVER: u8 = 66;
    /// Boot file name (RFC 2132 §9.5).
    pub const BOOTFILE: u8 = 67;
    /// Domain search list (RFC 3397).
    pub const DOMAIN_SEARCH: u8 = 119;
    /// Client identifier.
    pub const CLIENT_ID: u8 = 61;
    /// End.
    pub const END: u8 = 255;
}

/// DHCP message type (option 53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DhcpMessageType {
    /// 1.
    Discover,
    /// 2.
    Offer,
    /// 3.
    Request,
    /// 4.
    Decline,
    /// 5.
    Ack,
    /// 6.
    Nak,
    /// 7.
    Release,
    /// 8.
    Inform,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for DhcpMessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => Self::Discover,
            2 => Self::Offer,
            3 => Self::Request,
            4 => Self::Decline,
            5 => Self::Ack,
            6 => Self::Nak,
            7 => Self::Release,
            8 => Self::Inform,
            o => Self::Unknown(o),
        }
    }
}

impl From<DhcpMessageType> for u8 {
    fn from(v: DhcpMessageType) -> u8 {
        match v {
            DhcpMessageType::Discover => 1,
            DhcpMessageType::Offer => 2,
            DhcpMessageType::Request => 3,
            DhcpMessageType::Decline => 4,
            DhcpMessageType::Ack => 5,
            DhcpMessageType::Nak => 6,
            DhcpMessageType::Release => 7,
            DhcpMessageType::Inform => 8,
            DhcpMessageType::Unknown(o) => o,
        }
    }
}

/// A view of a BOOTP/DHCP message.
#[derive(Debug, Clone)]
pub struct DhcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DhcpPacket<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        DhcpPacket { buffer }
    }
    /// A view of at least the fixed header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// The length gate: the 236-byte fixed header (the post-CVE-2021-3592 rule).
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < FIXED_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    /// Op code.
    pub fn op(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    /// Hardware type.
    pub fn htype(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Hardware address length.
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[2]
    }
    /// Transaction id.
    pub fn xid(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 4)
    }
    /// Seconds since the client began.
    pub fn secs(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 8)
    }
    /// Flags (bit 15: broadcast).
    pub fn flags(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 10)
    }
    /// Client address (renewals).
    pub fn ciaddr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), 12)
    }
    /// "Your" address.
    pub fn yiaddr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), 16)
    }
    /// Server address.
    pub fn siaddr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), 20)
    }
    /// Relay agent address.
    pub fn giaddr(&self) -> Ipv4Addr {
        read_ip(self.buffer.as_ref(), 24)
    }
    /// Client hardware address (first six bytes of chaddr).
    pub fn chaddr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[28..34])
    }
    /// The options after the magic cookie, or `None` for plain BOOTP (no cookie).
    pub fn options(&self) -> Option<&[u8]> {
        let b = self.buffer.as_ref();
        (b.len() >= FIXED_LEN + 4 && b[FIXED_LEN..FIXED_LEN + 4] == MAGIC_COOKIE).then(|| &b[FIXED_LEN + 4..])
    }
}

/// A parsed BOOTP/DHCP message: the fields and options a server and client care about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpRepr<'a> {
    /// Op: request or reply.
    pub op: u8,
    /// Transaction id.
    pub xid: u32,
    /// Seconds field.
    pub secs: u16,
    /// Broadcast flag.
    pub broadcast: bool,
    /// Client address.
    pub ciaddr: Ipv4Addr,
    /// "Your" address.
    pub yiaddr: Ipv4Addr,
    /// Server address.
    pub siaddr: Ipv4Addr,
    /// Relay address.
    pub giaddr: Ipv4Addr,
    /// Client MAC.
    pub chaddr: EthernetAddress,
    /// Message type; `None` for plain BOOTP.
    pub message_type: Option<DhcpMessageType>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3 (first router).
    pub router: Option<Ipv4Addr>,
    /// Option 6 (first DNS server).
    pub dns: Option<Ipv4Addr>,
    /// Option 51, seconds.
    pub lease_time: Option<u32>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Option 12.
    pub hostname: Option<&'a [u8]>,
    /// Option 15.
    pub domain: Option<&'a [u8]>,
    /// Option 56.
    pub message: Option<&'a [u8]>,
    /// Option 55. In a request, the options the client asks for; in a reply we emit, not
    /// sent but used to order the optional options (the client's list, first asked first).
    pub parameter_request_list: Option<&'a [u8]>,
    /// The `sname` field: the TFTP server's name (at most 63 bytes are written).
    pub sname: Option<&'a [u8]>,
    /// The `file` field: the boot file (at most 127 bytes are written).
    pub file: Option<&'a [u8]>,
    /// Option 66.
    pub tftp_server: Option<&'a [u8]>,
    /// Option 67.
    pub bootfile: Option<&'a [u8]>,
    /// Option 119: domain search list as text (names separated by spaces or commas), encoded
    /// with RFC 1035 compression and split across options when longer than 255 bytes.
    pub search: Option<&'a str>,
}

impl<'a> DhcpRepr<'a> {
    /// Parses a message. Options that run past the buffer or have impossible lengths make the
    /// whole message `Malformed`: a server must not act on half-read requests.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &'a DhcpPacket<&'a T>) -> Result<Self> {
        p.check_len()?;
        if p.htype() != 1 || p.hlen() != 6 {
            return Err(Error::Malformed);
        }
        let mut r = DhcpRepr {
            op: p.op(),
            xid: p.xid(),
            secs: p.secs(),
            broadcast: p.flags() & 0x8000 != 0,
            ciaddr: p.ciaddr(),
            yiaddr: p.yiaddr(),
            siaddr: p.siaddr(),
            giaddr: p.giaddr(),
            chaddr: p.chaddr(),
            message_type: None,
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
        };
        // The sname and file fields, when set (NUL-terminated; option overload is not read).
        let field = |at: usize, len: usize| {
            let f = &p.buffer.as_ref()[at..at + len];
            let n = f.iter().position(|&b| b == 0).unwrap_or(len);
            (n > 0).then_some(&f[..n])
        };
        r.sname = field(SNAME_AT, SNAME_LEN);
        r.file = field(FILE_AT, FILE_LEN);
        let Some(mut opts) = p.options() else {
            return Ok(r);
        };
        // Options that end without END are accepted as read (many clients pad instead).
        while let Some(&code) = opts.first() {
            match code {
                opt::END => break,
                opt::PAD => opts = &opts[1..],
                _ => {
                    let len = *opts.get(1).ok_or(Error::Malformed)? as usize;
                    let body = opts.get(2..2 + len).ok_or(Error::Malformed)?;
                    let ip = |b: &[u8]| if b.len() >= 4 { Ok(read_ip(b, 0)) } else { Err(Error::Malformed) };
                    match code {
                        opt::MESSAGE_TYPE if len == 1 => r.message_type = Some(body[0].into()),
                        opt::MESSAGE_TYPE => return Err(Error::Malformed),
                        opt::REQUESTED_IP => r.requested_ip = Some(ip(body)?),
                        opt::SERVER_ID => r.server_id = Some(ip(body)?),
                        opt::SUBNET_MASK => r.subnet_mask = Some(ip(body)?),
                        opt::ROUTER => r.router = Some(ip(body)?),
                        opt::DNS => r.dns = Some(ip(body)?),
                        opt::LEASE_TIME if len == 4 => r.lease_time = Some(read_u32(body, 0)),
                        opt::MTU if len == 2 => r.mtu = Some(read_u16(body, 0)),
                        opt::HOSTNAME => r.hostname = Some(body),
                        opt::DOMAIN => r.domain = Some(body),
                        opt::MESSAGE => r.message = Some(body),
                        opt::PARAM_REQUEST => r.parameter_request_list = Some(body),
                        opt::TFTP_SERVER => r.tftp_server = Some(body),
                        opt::BOOTFILE => r.bootfile = Some(body),
                        opt::LEASE_TIME | opt::MTU => return Err(Error::Malformed),
                        _ => {}
                    }
                    opts = &opts[2 + len..];
                }
            }
        }
        Ok(r)
    }

    /// Every message we emit is full-length: [`REPLY_LEN`] bytes.
    pub const fn buffer_len(&self) -> usize {
        REPLY_LEN
    }

    /// Writes the message into exactly [`REPLY_LEN`] bytes of `buf`: fixed header (with
    /// `sname` and `file`), cookie, options, END, zero padding.
    ///
    /// The options: first 53, 54, 1, 3, 6, 51 (always small enough to fit), then the optional
    /// ones (26, 12, 15, 66, 67, 119) in the order of the client's parameter request list, then
    /// those it did not ask for in that default order, then 56, 50 and (in a request) 55. One
    /// that does not fit the 312-byte area is left out and the next ones are tried, so the
    /// last-placed options are the first to go; a search list (119) that does not fit whole is
    /// left out whole (its pieces only mean something together, RFC 3396).
    pub fn emit(&self, buf: &mut [u8]) {
        let buf = &mut buf[..REPLY_LEN];
        buf.fill(0);
        buf[0] = self.op;
        buf[1] = 1;
        buf[2] = 6;
        write_u32(buf, 4, self.xid);
        write_u16(buf, 8, self.secs);
        write_u16(buf, 10, if self.broadcast { 0x8000 } else { 0 });
        buf[12..16].copy_from_slice(&self.ciaddr.octets());
        buf[16..20].copy_from_slice(&self.yiaddr.octets());
        buf[20..24].copy_from_slice(&self.siaddr.octets());
        buf[24..28].copy_from_slice(&self.giaddr.octets());
        buf[28..34].copy_from_slice(&self.chaddr.0);
        // sname (64 bytes at 44) and file (128 bytes at 108), NUL-terminated.
        if let Some(n) = self.sname {
            let n = &n[..n.len().min(SNAME_LEN - 1)];
            buf[SNAME_AT..SNAME_AT + n.len()].copy_from_slice(n);
        }
        if let Some(f) = self.file {
            let f = &f[..f.len().min(FILE_LEN - 1)];
            buf[FILE_AT..FILE_AT + f.len()].copy_from_slice(f);
        }
        buf[FIXED_LEN..FIXED_LEN + 4].copy_from_slice(&MAGIC_COOKIE);
        let mut w = OptionWriter { area: &mut buf[FIXED_LEN + 4..], at: 0 };
        if let Some(t) = self.message_type {
            w.put(opt::MESSAGE_TYPE, &[t.into()]);
        }
        if let Some(a) = self.server_id {
            w.put(opt::SERVER_ID, &a.octets());
        }
        if let Some(a) = self.subnet_mask {
            w.put(opt::SUBNET_MASK, &a.octets());
        }
        if let Some(a) = self.router {
            w.put(opt::ROUTER, &a.octets());
        }
        if let Some(a) = self.dns {
            w.put(opt::DNS, &a.octets());
        }
        if let Some(t) = self.lease_time {
            w.put(opt::LEASE_TIME, &t.to_be_bytes());
        }
        let mut search = [0u8; MAX_SEARCH_ENCODED];
        let search_len = self.search.map_or(0, |list| encode_search_list(list, &mut search));
        let mtu = self.mtu.map(u16::to_be_bytes);
        let optional: [(u8, Option<&[u8]>); 6] = [
            (opt::MTU, mtu.as_ref().map(|m| &m[..])),
            (opt::HOSTNAME, self.hostname),
            (opt::DOMAIN, self.domain),
            (opt::TFTP_SERVER, self.tftp_server),
            (opt::BOOTFILE, self.bootfile),
            (opt::DOMAIN_SEARCH, (search_len > 0).then_some(&search[..search_len])),
        ];
        let requested = if self.op == OP_REPLY { self.parameter_request_list.unwrap_or(&[]) } else { &[] };
        let mut done = [false; 6];
        let asked = requested.iter().filter_map(|c| optional.iter().position(|(code, _)| code == c));
        for i in asked.chain(0..optional.len()) {
            if core::mem::replace(&mut done[i], true) {
                continue;
            }
            if let (code, Some(body)) = optional[i] {
                w.put_split(code, body);
            }
        }
        if let Some(m) = self.message {
            w.put(opt::MESSAGE, m);
        }
        if let Some(a) = self.requested_ip {
            w.put(opt::REQUESTED_IP, &a.octets());
        }
        if let Some(l) = self.parameter_request_list.filter(|_| self.op == OP_REQUEST) {
            w.put(opt::PARAM_REQUEST, l);
        }
        let at = w.at;
        w.area[at] = opt::END;
    }
}

/// Offset and length of the `sname` field.
const SNAME_AT: usize = 44;
const SNAME_LEN: usize = 64;
/// Offset and length of the `file` field.
const FILE_AT: usize = 108;
const FILE_LEN: usize = 128;
/// Room for an encoded search list (more than the options area can carry).
pub const MAX_SEARCH_ENCODED: usize = 512;

/// Appends options to the options area, always keeping a byte for END.
struct OptionWriter<'b> {
    area: &'b mut [u8],
    at: usize,
}

impl OptionWriter<'_> {
    /// Writes option `code` if it fits (bodies over 255 bytes never do).
    fn put(&mut self, code: u8, body: &[u8]) -> bool {
        let n = 2 + body.len();
        if body.len() > 255 || self.at + n > self.area.len() - 1 {
            return false;
        }
        self.area[self.at] = code;
        self.area[self.at + 1] = body.len() as u8;
        self.area[self.at + 2..self.at + n].copy_from_slice(body);
        self.at += n;
        true
    }

    /// Writes `body` as consecutive options `code` of at most 255 bytes each (RFC 3396), all or
    /// nothing.
    fn put_split(&mut self, code: u8, body: &[u8]) -> bool {
        let pieces = body.len().div_ceil(255).max(1);
        if self.at + body.len() + 2 * pieces > self.area.len() - 1 {
            return false;
        }
        if body.is_empty() {
            return self.put(code, body);
        }
        for piece in body.chunks(255) {
            self.put(code, piece);
        }
        true
    }
}

/// Encodes a search list (names separated by spaces, commas or tabs) as RFC 1035 names with
/// compression (RFC 3397 §2: pointers are offsets into the list itself) into `out`; returns
/// the length. Names that are not valid DNS names, or that would not fit, are left out.
pub fn encode_search_list(list: &str, out: &mut [u8]) -> usize {
    let mut len = 0;
    for name in super::icmpv6::search_names(list) {
        // Valid as a DNS name (the rule DNSSL and DHCPv6 use), without its trailing dot.
        if super::icmpv6::encode_name(name, &mut [0u8; 256]).is_none() {
            continue;
        }
        let name = name.strip_suffix('.').unwrap_or(name);
        let start = len;
        let mut rest = name;
        let ok = loop {
            // The longest suffix already written becomes a pointer.
            if let Some(at) = find_suffix(&out[..start], rest) {
                if len + 2 > out.len() || at > 0x3fff {
                    break false;
                }
                out[len] = 0xc0 | (at >> 8) as u8;
                out[len + 1] = at as u8;
                len += 2;
                break true;
            }
            let (label, tail) = rest.split_once('.').unwrap_or((rest, ""));
            if len + 1 + label.len() + 1 > out.len() {
                break false;
            }
            out[len] = label.len() as u8;
            out[len + 1..len + 1 + label.len()].copy_from_slice(label.as_bytes());
            len += 1 + label.len();
            if tail.is_empty() {
                out[len] = 0;
                len += 1;
                break true;
            }
            rest = tail;
        };
        if !ok {
            len = start;
        }
    }
    len
}

/// Where in the encoded names `enc` the name `suffix` (dotted) starts as a sequence of
/// uncompressed labels ending in the root, or in a pointer to such a place.
fn find_suffix(enc: &[u8], suffix: &str) -> Option<usize> {
    (0..enc.len()).find(|&at| labels_equal(enc, at, suffix, 0))
}

/// Whether the name at `enc[at..]` (labels, pointers followed) spells `name`.
fn labels_equal(enc: &[u8], mut at: usize, name: &str, depth: u8) -> bool {
    if depth > 8 {
        return false;
    }
    let mut rest = name;
    loop {
        let Some(&l) = enc.get(at) else { return false };
        if l & 0xc0 == 0xc0 {
            let Some(&lo) = enc.get(at + 1) else { return false };
            let to = (usize::from(l & 0x3f) << 8) | usize::from(lo);
            return to < at && labels_equal(enc, to, rest, depth + 1);
        }
        if l == 0 {
            return rest.is_empty();
        }
        let l = usize::from(l);
        let Some(label) = enc.get(at + 1..at + 1 + l) else { return false };
        let (want, tail) = rest.split_once('.').unwrap_or((rest, ""));
        if rest.is_empty() || !label.eq_ignore_ascii_case(want.as_bytes()) {
            return false;
        }
        rest = tail;
        at += 1 + l;
        if rest.is_empty() {
            // The name ends here: only if the encoded one does too.
            return enc.get(at) == Some(&0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> DhcpRepr<'static> {
        DhcpRepr {
            op: OP_REPLY,
            xid: 0xdeadbeef,
            secs: 0,
            broadcast: true,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::new(10, 0, 2, 15),
            siaddr: Ipv4Addr::new(10, 0, 2, 2),
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            message_type: Some(DhcpMessageType::Offer),
            requested_ip: None,
            server_id: Some(Ipv4Addr::new(10, 0, 2, 2)),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            router: Some(Ipv4Addr::new(10, 0, 2, 2)),
            dns: Some(Ipv4Addr::new(10, 0, 2, 3)),
            lease_time: Some(86400),
            mtu: Some(1500),
            hostname: Some(b"guest"),
            domain: Some(b"example.test"),
            message: None,
            parameter_request_list: None,
            sname: None,
            file: None,
            tftp_server: None,
            bootfile: None,
            search: None,
        }
    }

    #[test]
    fn round_trip_and_option_order() {
        let r = offer();
        let mut buf = [0xffu8; REPLY_LEN];
        r.emit(&mut buf);
        let p = DhcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(DhcpRepr::parse(&p).unwrap(), r);
        let o = p.options().unwrap();
        assert_eq!(&o[..3], &[53, 1, 2]);
        assert_eq!(&o[3..5], &[54, 4]);
        assert_eq!(&o[9..11], &[1, 4]);
        assert_eq!(&o[15..17], &[3, 4]);
        assert_eq!(&o[21..23], &[6, 4]);
        assert_eq!(&o[27..29], &[51, 4]);
        assert_eq!(&o[33..35], &[26, 2]);
    }

    #[test]
    fn bootp_without_cookie() {
        let mut buf = [0u8; 300];
        buf[0] = OP_REQUEST;
        buf[1] = 1;
        buf[2] = 6;
        let p = DhcpPacket::new_checked(&buf[..]).unwrap();
        let r = DhcpRepr::parse(&p).unwrap();
        assert_eq!(r.message_type, None);
    }

    #[test]
    fn malformed_options() {
        let mut buf = [0u8; FIXED_LEN + 4 + 4];
        buf[1] = 1;
        buf[2] = 6;
        buf[FIXED_LEN..FIXED_LEN + 4].copy_from_slice(&MAGIC_COOKIE);
        // option 50 claiming 9 bytes in a 4-byte area
        buf[FIXED_LEN + 4] = 50;
        buf[FIXED_LEN + 5] = 9;
        let p = DhcpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(DhcpRepr::parse(&p), Err(Error::Malformed));
        buf[FIXED_LEN + 5] = 1; // option 50 of 1 byte: not an address
        assert_eq!(DhcpRepr::parse(&p_of(&buf)), Err(Error::Malformed));
        assert_eq!(DhcpPacket::new_checked(&buf[..235]).err(), Some(Error::Truncated));
    }

    fn p_of(b: &[u8]) -> DhcpPacket<&[u8]> {
        DhcpPacket::new_unchecked(b)
    }

    /// Every (code, data) of an emitted message's options area, in order.
    fn options_of(buf: &[u8]) -> std::vec::Vec<(u8, std::vec::Vec<u8>)> {
        let mut v = std::vec::Vec::new();
        let mut at = FIXED_LEN + 4;
        while at < buf.len() && buf[at] != opt::END {
            if buf[at] == opt::PAD {
                at += 1;
                continue;
            }
            let len = usize::from(buf[at + 1]);
            v.push((buf[at], buf[at + 2..at + 2 + len].to_vec()));
            at += 2 + len;
        }
        v
    }

    /// An independent RFC 1035 name decoder (pointers followed, at most 16 hops) over the
    /// concatenated option 119 data.
    fn decode_names(data: &[u8]) -> std::vec::Vec<std::string::String> {
        let mut names = std::vec::Vec::new();
        let mut at = 0;
        while at < data.len() {
            let mut labels: std::vec::Vec<std::string::String> = std::vec::Vec::new();
            let (mut p, mut hops, mut next) = (at, 0, None);
            loop {
                let l = data[p];
                if l & 0xc0 == 0xc0 {
                    let to = (usize::from(l & 0x3f) << 8) | usize::from(data[p + 1]);
                    next.get_or_insert(p + 2);
                    hops += 1;
                    assert!(hops < 16 && to < data.len(), "pointer loop or out of range");
                    p = to;
                    continue;
                }
                if l == 0 {
                    next.get_or_insert(p + 1);
                    break;
                }
                let l = usize::from(l);
                labels.push(std::string::String::from_utf8(data[p + 1..p + 1 + l].to_vec()).unwrap());
                p += 1 + l;
            }
            names.push(labels.join("."));
            at = next.unwrap();
        }
        names
    }

    fn reply_with(search: Option<&'static str>, prl: Option<&'static [u8]>) -> std::vec::Vec<u8> {
        let r = DhcpRepr { search, parameter_request_list: prl, ..offer() };
        let mut buf = [0u8; REPLY_LEN];
        r.emit(&mut buf);
        buf.to_vec()
    }

    #[test]
    fn search_list_is_compressed_and_decodes_back() {
        let list = "corp.example.com, lab.corp.example.com example.com eng.example.org bad..name";
        let mut enc = [0u8; MAX_SEARCH_ENCODED];
        let n = encode_search_list(list, &mut enc);
        assert_eq!(
            decode_names(&enc[..n]),
            ["corp.example.com", "lab.corp.example.com", "example.com", "eng.example.org"],
            "the invalid name is left out"
        );
        // "lab" + pointer, "example.com" as a pointer alone.
        assert_eq!(n, 18 + 6 + 2 + 17, "compressed");
        let buf = reply_with(Some(list), None);
        let data: std::vec::Vec<u8> =
            options_of(&buf).into_iter().filter(|(c, _)| *c == opt::DOMAIN_SEARCH).flat_map(|(_, d)| d).collect();
        assert_eq!(data, &enc[..n]);
    }

    #[test]
    fn a_long_search_list_is_split_across_options() {
        // 10 distinct names of 24-28 bytes encoded: 267 bytes, more than one option holds.
        let list = "aaaaaaaaaaaaaaaaaa.one,bbbbbbbbbbbbbbbbbbbb.two,cccccccccccccccccccc.three,\
                    dddddddddddddddddddd.four,eeeeeeeeeeeeeeeeeeee.five,ffffffffffffffffffff.six,\
                    gggggggggggggggggggg.seven,hhhhhhhhhhhhhhhhhhhh.eight,iiiiiiiiiiiiiiiiiiii.nine,\
                    jjjjjjjjjjjjjjjjjjjj.ten";
        let mut enc = [0u8; MAX_SEARCH_ENCODED];
        let n = encode_search_list(list, &mut enc);
        assert!(n > 255, "{n}");
        let r = DhcpRepr { search: Some(list), hostname: None, domain: None, mtu: None, ..offer() };
        let mut buf = [0u8; REPLY_LEN];
        r.emit(&mut buf);
        let pieces: std::vec::Vec<std::vec::Vec<u8>> =
            options_of(&buf).into_iter().filter(|(c, _)| *c == opt::DOMAIN_SEARCH).map(|(_, d)| d).collect();
        assert_eq!(pieces.len(), 2, "two options 119");
        assert_eq!(pieces[0].len(), 255);
        let joined: std::vec::Vec<u8> = pieces.concat();
        assert_eq!(decode_names(&joined).len(), 10);
    }

    #[test]
    fn the_parameter_request_list_orders_the_optional_options() {
        let buf = reply_with(Some("example.test"), Some(&[opt::DOMAIN_SEARCH, opt::DOMAIN, 1, 3]));
        let codes: std::vec::Vec<u8> = options_of(&buf).iter().map(|(c, _)| *c).collect();
        let pos = |c: u8| codes.iter().position(|&x| x == c).unwrap();
        assert!(pos(opt::DOMAIN_SEARCH) < pos(opt::DOMAIN), "{codes:?}");
        assert!(pos(opt::DOMAIN) < pos(opt::MTU), "asked before not asked: {codes:?}");
        assert_eq!(&codes[..2], &[opt::MESSAGE_TYPE, opt::SERVER_ID]);
        assert!(!codes.contains(&opt::PARAM_REQUEST), "a reply does not echo option 55");
    }

    #[test]
    fn boot_file_and_server_name_go_in_the_fields_and_options() {
        let r = DhcpRepr {
            sname: Some(b"boot.example"),
            file: Some(b"pxelinux.0"),
            tftp_server: Some(b"boot.example"),
            bootfile: Some(b"pxelinux.0"),
            ..offer()
        };
        let mut buf = [0u8; REPLY_LEN];
        r.emit(&mut buf);
        assert_eq!(&buf[SNAME_AT..SNAME_AT + 13], b"boot.example\0");
        assert_eq!(&buf[FILE_AT..FILE_AT + 11], b"pxelinux.0\0");
        let opts = options_of(&buf);
        assert!(opts.contains(&(opt::TFTP_SERVER, b"boot.example".to_vec())));
        assert!(opts.contains(&(opt::BOOTFILE, b"pxelinux.0".to_vec())));
        // An over-long file name is cut at 127 bytes and stays NUL-terminated.
        let long = [b'x'; 200];
        let r = DhcpRepr { file: Some(&long), ..offer() };
        r.emit(&mut buf);
        assert_eq!(buf[FILE_AT + 126], b'x');
        assert_eq!(buf[FILE_AT + 127], 0);
    }

    #[test]
    fn what_does_not_fit_is_left_out_last_placed_first() {
        // Hostname, domain, a bootfile and a search list that together overflow 312 bytes.
        let host = [b'h'; 32];
        let dom = [b'd'; 64];
        let boot = [b'b'; 127];
        let list = "aaaaaaaaaaaaaaaaaaaa.one,bbbbbbbbbbbbbbbbbbbb.two,cccccccccccccccccccc.three,\
                    dddddddddddddddddddd.four,eeeeeeeeeeeeeeeeeeee.five";
        let r = DhcpRepr {
            hostname: Some(&host),
            domain: Some(&dom),
            bootfile: Some(&boot),
            search: Some(list),
            ..offer()
        };
        let mut buf = [0u8; REPLY_LEN];
        r.emit(&mut buf);
        let codes: std::vec::Vec<u8> = options_of(&buf).iter().map(|(c, _)| *c).collect();
        for c in [opt::MESSAGE_TYPE, opt::SERVER_ID, opt::SUBNET_MASK, opt::ROUTER, opt::DNS, opt::LEASE_TIME] {
            assert!(codes.contains(&c), "{c} always fits: {codes:?}");
        }
        assert!(codes.contains(&opt::BOOTFILE) && codes.contains(&opt::HOSTNAME));
        assert!(!codes.contains(&opt::DOMAIN_SEARCH), "the last-placed option went: {codes:?}");
        // And when the client asks for the search list first, it goes in and the file waits.
        let r = DhcpRepr { parameter_request_list: Some(&[opt::DOMAIN_SEARCH]), ..r };
        r.emit(&mut buf);
        let codes: std::vec::Vec<u8> = options_of(&buf).iter().map(|(c, _)| *c).collect();
        assert!(codes.contains(&opt::DOMAIN_SEARCH), "{codes:?}");
        // Whatever happens, the area ends with END inside 312 bytes.
        assert!(buf[FIXED_LEN..].contains(&opt::END));
    }
}
