//! DHCPv6 messages (RFC 8415 §8, §21): the client/server header (message type, transaction
//! id), a bounds-checked option walk, and a writer that appends options to a fixed buffer.
//!
//! Only the client/server format is read; relay messages (types 12 and 13) are recognized and
//! left to the caller to refuse.

use super::{read_u16, read_u32, Error, Result};
use core::net::Ipv6Addr;

/// The client's UDP port.
pub const CLIENT_PORT: u16 = 546;
/// The server's UDP port.
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers (`ff02::1:2`), where clients send.
pub const ALL_AGENTS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// Header length: message type and 24-bit transaction id.
pub const HEADER_LEN: usize = 4;
/// Longest DUID (RFC 8415 §11.1: at most 128 octets after the 2-octet type).
pub const MAX_DUID_LEN: usize = 130;

/// Message types (RFC 8415 §7.3).
pub mod msg {
    /// Client looks for servers.
    pub const SOLICIT: u8 = 1;
    /// Server offers itself.
    pub const ADVERTISE: u8 = 2;
    /// Client asks a chosen server for addresses.
    pub const REQUEST: u8 = 3;
    /// Client asks whether its addresses are still on link.
    pub const CONFIRM: u8 = 4;
    /// Client extends its lease with the server that granted it.
    pub const RENEW: u8 = 5;
    /// Client extends its lease with any server.
    pub const REBIND: u8 = 6;
    /// Server answers.
    pub const REPLY: u8 = 7;
    /// Client gives addresses back.
    pub const RELEASE: u8 = 8;
    /// Client found an address in use.
    pub const DECLINE: u8 = 9;
    /// Client wants configuration but no addresses (stateless DHCPv6).
    pub const INFORMATION_REQUEST: u8 = 11;
    /// Relayed from a client.
    pub const RELAY_FORW: u8 = 12;
}

/// Option codes (RFC 8415 §21, RFC 3646).
pub mod opt {
    /// Client identifier (a DUID).
    pub const CLIENTID: u16 = 1;
    /// Server identifier (a DUID).
    pub const SERVERID: u16 = 2;
    /// Identity association for non-temporary addresses.
    pub const IA_NA: u16 = 3;
    /// Identity association for temporary addresses.
    pub const IA_TA: u16 = 4;
    /// An address inside an IA.
    pub const IAADDR: u16 = 5;
    /// Option request option.
    pub const ORO: u16 = 6;
    /// Server preference.
    pub const PREFERENCE: u16 = 7;
    /// Elapsed time.
    pub const ELAPSED_TIME: u16 = 8;
    /// Status code.
    pub const STATUS_CODE: u16 = 13;
    /// Rapid commit (two-message exchange).
    pub const RAPID_COMMIT: u16 = 14;
    /// Recursive DNS servers (RFC 3646).
    pub const DNS_SERVERS: u16 = 23;
    /// Domain search list (RFC 3646).
    pub const DOMAIN_LIST: u16 = 24;
    /// Identity association for prefix delegation.
    pub const IA_PD: u16 = 25;
    /// Information refresh time (RFC 8415 §21.23).
    pub const INFORMATION_REFRESH_TIME: u16 = 32;
}

/// Status codes (RFC 8415 §21.13).
pub mod status {
    /// Success.
    pub const SUCCESS: u16 = 0;
    /// No addresses available for the IA.
    pub const NO_ADDRS_AVAIL: u16 = 2;
    /// The server has no binding for the IA.
    pub const NO_BINDING: u16 = 3;
    /// The addresses are not appropriate for the link.
    pub const NOT_ON_LINK: u16 = 4;
    /// No prefixes available for delegation.
    pub const NO_PREFIX_AVAIL: u16 = 6;
}

/// A client/server DHCPv6 message over a byte slice (the UDP payload).
#[derive(Clone, Copy, Debug)]
pub struct Dhcpv6Message<'a> {
    bytes: &'a [u8],
}

impl<'a> Dhcpv6Message<'a> {
    /// Checks that `bytes` hold a header and a well-formed option list (every option's length
    /// inside the message).
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let m = Dhcpv6Message { bytes };
        let mut it = Options::new(m.options_bytes());
        for _ in &mut it {}
        if it.malformed {
            return Err(Error::Truncated);
        }
        Ok(m)
    }

    /// The message type.
    pub fn msg_type(&self) -> u8 {
        self.bytes[0]
    }

    /// The 24-bit transaction id, as bytes.
    pub fn transaction_id(&self) -> [u8; 3] {
        [self.bytes[1], self.bytes[2], self.bytes[3]]
    }

    fn options_bytes(&self) -> &'a [u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// The options, in order.
    pub fn options(&self) -> Options<'a> {
        Options::new(self.options_bytes())
    }

    /// The data of the first option `code`.
    pub fn option(&self, code: u16) -> Option<&'a [u8]> {
        self.options().find(|&(c, _)| c == code).map(|(_, d)| d)
    }
}

/// Walks `(code, data)` pairs of an option list (a message's, or an IA's encapsulated
/// options); stops at the first option whose length runs past the end.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    rest: &'a [u8],
    malformed: bool,
}

impl<'a> Options<'a> {
    /// The options encoded in `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Options { rest: bytes, malformed: false }
    }

    /// Whether the walk stopped at an option that did not fit.
    pub fn malformed(&self) -> bool {
        self.malformed
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < 4 {
            self.malformed = true;
            self.rest = &[];
            return None;
        }
        let code = read_u16(self.rest, 0);
        let len = usize::from(read_u16(self.rest, 2));
        let Some(data) = self.rest.get(4..4 + len) else {
            self.malformed = true;
            self.rest = &[];
            return None;
        };
        self.rest = &self.rest[4 + len..];
        Some((code, data))
    }
}

/// An IA_NA option's fixed part (RFC 8415 §21.4) and its encapsulated options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IaNa<'a> {
    /// The client's identifier for the IA.
    pub iaid: u32,
    /// Encapsulated options (IAADDR, status).
    pub options: &'a [u8],
}

impl<'a> IaNa<'a> {
    /// Reads an IA_NA option's data.
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        if data.len() < 12 {
            return Err(Error::Truncated);
        }
        Ok(IaNa { iaid: read_u32(data, 0), options: &data[12..] })
    }

    /// The addresses the client names in the IA (hints or the ones it holds).
    pub fn addresses(&self) -> impl Iterator<Item = Ipv6Addr> + 'a {
        Options::new(self.options).filter_map(|(c, d)| {
            let a: [u8; 16] = d.get(..16)?.try_into().ok()?;
            (c == opt::IAADDR).then_some(Ipv6Addr::from(a))
        })
    }
}

/// Appends options to a DHCPv6 message in a fixed buffer; every write reports overflow.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl<'b> Writer<'b> {
    /// Starts a message of type `msg_type` and transaction `xid` in `buf`; `None` when `buf`
    /// cannot hold the header.
    pub fn new(buf: &'b mut [u8], msg_type: u8, xid: [u8; 3]) -> Option<Self> {
        let mut w = Writer { buf, at: 0 };
        w.put(&[msg_type, xid[0], xid[1], xid[2]])?;
        Some(w)
    }

    /// Appends raw bytes.
    pub fn put(&mut self, d: &[u8]) -> Option<()> {
        let end = self.at.checked_add(d.len())?;
        self.buf.get_mut(self.at..end)?.copy_from_slice(d);
        self.at = end;
        Some(())
    }

    /// Appends option `code` with `data`.
    pub fn option(&mut self, code: u16, data: &[u8]) -> Option<()> {
        let len = u16::try_from(data.len()).ok()?;
        self.put(&code.to_be_bytes())?;
        self.put(&len.to_be_bytes())?;
        self.put(data)
    }

    /// Opens option `code` whose length is filled in by [`end`](Self::end); returns its start.
    pub fn begin(&mut self, code: u16) -> Option<usize> {
        let start = self.at;
        self.put(&code.to_be_bytes())?;
        self.put(&[0, 0])?;
        Some(start)
    }

    /// Closes the option opened at `start`.
    pub fn end(&mut self, start: usize) -> Option<()> {
        let len = u16::try_from(self.at - start - 4).ok()?;
        self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        Some(())
    }

    /// Appends a status code option with no message.
    pub fn status(&mut self, code: u16) -> Option<()> {
        self.option(opt::STATUS_CODE, &code.to_be_bytes())
    }

    /// Drops everything written from `at` on (an option that turned out empty).
    pub fn truncate(&mut self, at: usize) {
        self.at = self.at.min(at);
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.at
    }

    /// Whether nothing has been written (never, after [`new`](Self::new)).
    pub fn is_empty(&self) -> bool {
        self.at == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_walk_stops_at_overrun() {
        let ok = [1, 0, 0, 1, 0, 2, 0, 2, 0xaa, 0xbb, 0, 14, 0, 0];
        let m = Dhcpv6Message::new_checked(&ok).unwrap();
        assert_eq!(m.msg_type(), 1);
        assert_eq!(m.transaction_id(), [0, 0, 1]);
        let v: heapless::Vec<(u16, &[u8]), 4> = m.options().collect();
        assert_eq!(v.as_slice(), &[(2, &[0xaa, 0xbb][..]), (14, &[][..])]);
        // The length says 3, two bytes follow.
        assert!(Dhcpv6Message::new_checked(&[1, 0, 0, 1, 0, 2, 0, 3, 0xaa, 0xbb]).is_err());
        // A dangling partial option header.
        assert!(Dhcpv6Message::new_checked(&[1, 0, 0, 1, 0, 2]).is_err());
        assert!(Dhcpv6Message::new_checked(&[1, 0]).is_err());
    }

    #[test]
    fn writer_nests_and_refuses_overflow() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf, msg::REPLY, [1, 2, 3]).unwrap();
        let ia = w.begin(opt::IA_NA).unwrap();
        w.put(&[0; 12]).unwrap();
        w.status(status::SUCCESS).unwrap();
        w.end(ia).unwrap();
        let n = w.len();
        assert_eq!(n, 4 + 4 + 12 + 6);
        assert_eq!(&buf[4..8], &[0, 3, 0, 18]);
        let ia = IaNa::parse(&buf[8..n]).unwrap();
        assert_eq!(Options::new(ia.options).next(), Some((opt::STATUS_CODE, &[0u8, 0][..])));
        let mut small = [0u8; 6];
        let mut w = Writer::new(&mut small, msg::REPLY, [0; 3]).unwrap();
        assert!(w.option(opt::SERVERID, &[0; 4]).is_none());
    }
}
