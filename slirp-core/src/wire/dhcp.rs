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
    /// Option 55.
    pub parameter_request_list: Option<&'a [u8]>,
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
        };
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

    /// Writes the message into exactly [`REPLY_LEN`] bytes of `buf`: fixed header, cookie,
    /// options in the order 53, 54, 1, 3, 6, 51, 26, 12, 15, 56, 50, 55, END, zero padding.
    /// Options that would not fit the area are left out (hostname/domain are bounded by the
    /// configuration so they always fit).
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
        buf[FIXED_LEN..FIXED_LEN + 4].copy_from_slice(&MAGIC_COOKIE);
        let area = &mut buf[FIXED_LEN + 4..];
        let end = area.len() - 1; // always room for END
        let mut at = 0usize;
        let mut put = |code: u8, body: &[u8]| {
            let n = 2 + body.len();
            if body.len() <= 255 && at + n <= end {
                area[at] = code;
                area[at + 1] = body.len() as u8;
                area[at + 2..at + n].copy_from_slice(body);
                at += n;
            }
        };
        if let Some(t) = self.message_type {
            put(opt::MESSAGE_TYPE, &[t.into()]);
        }
        if let Some(a) = self.server_id {
            put(opt::SERVER_ID, &a.octets());
        }
        if let Some(a) = self.subnet_mask {
            put(opt::SUBNET_MASK, &a.octets());
        }
        if let Some(a) = self.router {
            put(opt::ROUTER, &a.octets());
        }
        if let Some(a) = self.dns {
            put(opt::DNS, &a.octets());
        }
        if let Some(t) = self.lease_time {
            put(opt::LEASE_TIME, &t.to_be_bytes());
        }
        if let Some(m) = self.mtu {
            put(opt::MTU, &m.to_be_bytes());
        }
        if let Some(h) = self.hostname {
            put(opt::HOSTNAME, h);
        }
        if let Some(d) = self.domain {
            put(opt::DOMAIN, d);
        }
        if let Some(m) = self.message {
            put(opt::MESSAGE, m);
        }
        if let Some(a) = self.requested_ip {
            put(opt::REQUESTED_IP, &a.octets());
        }
        if let Some(l) = self.parameter_request_list {
            put(opt::PARAM_REQUEST, l);
        }
        area[at] = opt::END;
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
}
