//! ICMPv4 (RFC 792).

use super::checksum;
use super::{read_u16, write_u16, Error, Result};

/// Length of the ICMP header (type, code, checksum, 4 bytes of rest-of-header).
pub const HEADER_LEN: usize = 8;

/// Message type: echo reply.
pub const ECHO_REPLY: u8 = 0;
/// Message type: destination unreachable.
pub const DST_UNREACHABLE: u8 = 3;
/// Message type: echo request.
pub const ECHO_REQUEST: u8 = 8;
/// Message type: time exceeded.
pub const TIME_EXCEEDED: u8 = 11;
/// Message type: parameter problem.
pub const PARAM_PROBLEM: u8 = 12;

/// Unreachable codes.
pub mod unreach {
    /// Network unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set.
    pub const NEED_FRAG: u8 = 4;
    /// Communication administratively prohibited.
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Whether a message type is an error (which must never trigger another error, RFC 1812 4.3.2.7).
pub fn is_error_type(t: u8) -> bool {
    matches!(t, DST_UNREACHABLE | 4 | 5 | TIME_EXCEEDED | PARAM_PROBLEM)
}

/// A view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// A view without checks.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }
    /// A view of at least a header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// The length gate.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    /// Code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }
    /// Echo identifier.
    pub fn echo_ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 4)
    }
    /// Echo sequence number.
    pub fn echo_seq_no(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 6)
    }
    /// Next-hop MTU of a fragmentation-needed message.
    pub fn next_hop_mtu(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 6)
    }
    /// Everything after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    /// Whether the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::verifies(checksum::sum(self.buffer.as_ref()))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Recomputes the checksum over the whole buffer.
    pub fn fill_checksum(&mut self) {
        write_u16(self.buffer.as_mut(), 2, 0);
        let c = checksum::data(self.buffer.as_ref());
        write_u16(self.buffer.as_mut(), 2, c);
    }
}

/// A parsed ICMPv4 message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// Echo request.
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// Echo reply.
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Payload.
        data: &'a [u8],
    },
    /// Destination unreachable.
    DstUnreachable {
        /// Code (see [`unreach`]).
        code: u8,
        /// Next-hop MTU (fragmentation needed only; zero otherwise).
        next_hop_mtu: u16,
        /// The offending datagram's header and leading payload.
        quote: &'a [u8],
    },
    /// Time exceeded.
    TimeExceeded {
        /// 0 in transit, 1 during reassembly.
        code: u8,
        /// The offending datagram's header and leading payload.
        quote: &'a [u8],
    },
    /// A message the core does not interpret.
    Other {
        /// Type.
        msg_type: u8,
        /// Code.
        code: u8,
    },
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a message, verifying the checksum when `verify` is set.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(p: &'a Icmpv4Packet<&'a T>, verify: bool) -> Result<Self> {
        p.check_len()?;
        if verify && !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        let data = &p.buffer.as_ref()[HEADER_LEN..];
        Ok(match (p.msg_type(), p.code()) {
            (ECHO_REQUEST, 0) => Icmpv4Repr::EchoRequest { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data },
            (ECHO_REPLY, 0) => Icmpv4Repr::EchoReply { ident: p.echo_ident(), seq_no: p.echo_seq_no(), data },
            (DST_UNREACHABLE, code) => Icmpv4Repr::DstUnreachable {
                code,
                next_hop_mtu: if code == unreach::NEED_FRAG { p.next_hop_mtu() } else { 0 },
                quote: data,
            },
            (TIME_EXCEEDED, code @ 0..=1) => Icmpv4Repr::TimeExceeded { code, quote: data },
            (msg_type, code) => Icmpv4Repr::Other { msg_type, code },
        })
    }

    /// Length of the emitted message.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => data.len(),
                Icmpv4Repr::DstUnreachable { quote, .. } | Icmpv4Repr::TimeExceeded { quote, .. } => quote.len(),
                Icmpv4Repr::Other { .. } => 0,
            }
    }

    /// Writes the message, with checksum, into exactly `buffer_len()` bytes of `buf`.
    pub fn emit(&self, buf: &mut [u8]) {
        let (head, body) = self.header_and_body();
        let buf = &mut buf[..HEADER_LEN + body.len()];
        buf[..HEADER_LEN].copy_from_slice(&head);
        buf[HEADER_LEN..].copy_from_slice(body);
    }

    /// The 8-byte header, checksum included, of the message whose body (echo data or quote) is
    /// the repr's own: for sending header and body as two parts, without copying the body next
    /// to the header.
    pub fn emit_header(&self) -> [u8; HEADER_LEN] {
        self.header_and_body().0
    }

    fn header_and_body(&self) -> ([u8; HEADER_LEN], &'a [u8]) {
        let (t, c, rest, body): (u8, u8, [u8; 4], &[u8]) = match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, data } => (ECHO_REQUEST, 0, join(ident, seq_no), data),
            Icmpv4Repr::EchoReply { ident, seq_no, data } => (ECHO_REPLY, 0, join(ident, seq_no), data),
            Icmpv4Repr::DstUnreachable { code, next_hop_mtu, quote } => {
                (DST_UNREACHABLE, code, join(0, next_hop_mtu), quote)
            }
            Icmpv4Repr::TimeExceeded { code, quote } => (TIME_EXCEEDED, code, [0; 4], quote),
            Icmpv4Repr::Other { msg_type, code } => (msg_type, code, [0; 4], &[]),
        };
        let mut head = [t, c, 0, 0, rest[0], rest[1], rest[2], rest[3]];
        let sum = checksum::finish(checksum::sum(&head) + checksum::sum(body));
        head[2..4].copy_from_slice(&sum.to_be_bytes());
        (head, body)
    }
}

fn join(a: u16, b: u16) -> [u8; 4] {
    let (a, b) = (a.to_be_bytes(), b.to_be_bytes());
    [a[0], a[1], b[0], b[1]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    #[test]
    fn round_trip_each_kind() {
        let payload = [1u8, 2, 3, 4, 5];
        let reprs = [
            Icmpv4Repr::EchoRequest { ident: 7, seq_no: 9, data: &payload },
            Icmpv4Repr::EchoReply { ident: 7, seq_no: 9, data: &payload },
            Icmpv4Repr::DstUnreachable { code: unreach::PORT, next_hop_mtu: 0, quote: &payload },
            Icmpv4Repr::DstUnreachable { code: unreach::NEED_FRAG, next_hop_mtu: 1400, quote: &payload },
            Icmpv4Repr::TimeExceeded { code: 0, quote: &payload },
            Icmpv4Repr::Other { msg_type: 13, code: 0 },
        ];
        for r in reprs {
            let mut buf = vec![0u8; r.buffer_len()];
            r.emit(&mut buf);
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            assert!(p.verify_checksum());
            assert_eq!(Icmpv4Repr::parse(&p, true).unwrap(), r);
        }
    }

    #[test]
    fn bad_checksum_and_short() {
        let r = Icmpv4Repr::EchoRequest { ident: 1, seq_no: 2, data: &[0xaa] };
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf);
        buf[8] ^= 0xff;
        let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, true), Err(Error::Checksum));
        assert_eq!(Icmpv4Packet::new_checked(&buf[..7]).err(), Some(Error::Truncated));
        assert!(is_error_type(DST_UNREACHABLE) && !is_error_type(ECHO_REQUEST));
    }
}
