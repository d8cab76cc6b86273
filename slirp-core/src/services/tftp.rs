//! A read-only TFTP server on the gateway's port 69 (RFC 1350), with the option extension
//! (RFC 2347) for `blksize` (RFC 2348), `tsize` and `timeout` (RFC 2349): what PXE firmware,
//! iPXE, U-Boot and `busybox tftp -g` fetch boot files with. QEMU's `tftp=DIR`.
//!
//! Files come from the host through [`HostSocket::tftp_open`] and [`HostSocket::tftp_read`]
//! (positional reads, so a retransmission re-reads its block and a session holds no data):
//! slirp-std serves a directory, a bare-metal embedder can serve from flash.
//!
//! Choices:
//! - at most [`TFTP_SESSIONS`] transfers at once, one per client endpoint; a request beyond
//!   that gets ERROR 0 ("too many transfers"), a new request from the same endpoint restarts its
//!   transfer;
//! - replies come from port 69 itself rather than a fresh port per transfer (as libslirp does):
//!   the guest network has no other TFTP traffic, and no gateway port is taken from the host
//!   loopback alias. Clients lock onto the port of the first reply either way;
//! - paths: leading `/` are dropped (PXE configurations often ask for `/pxelinux.0`: it means
//!   the root), and a path with an empty, `.` or `..` component, a backslash, a control byte or
//!   more than [`MAX_PATH`] bytes is refused (ERROR 2) before the host sees it; the host refuses
//!   symbolic links that leave the root and anything not a regular file;
//! - `octet` mode only (`netascii` would need LF→CRLF rewriting that breaks positional reads:
//!   ERROR 4, as libslirp answers); write requests get ERROR 2;
//! - block size: the client's `blksize`, at most what fits the link without fragments
//!   ([`MAX_BLKSIZE`] at MTU 1500); block numbers roll over past 65535 (files beyond 32 MiB at
//!   512-byte blocks), as tftp-hpa and iPXE expect;
//! - retransmission after the timeout (the client's `timeout` option, else 1 s), at most
//!   [`MAX_RETRIES`] times, then the transfer is dropped; a duplicate ACK is not answered (no
//!   Sorcerer's Apprentice).
//!
//! IPv4 only (like the BOOTP that tells clients about it).

use crate::host::{HostError, HostSocket};
use crate::iface::ip::{Ingress, LinkDest};
use crate::iface::ipv4::{reply_header, DEFAULT_TTL};
use crate::iface::Iface;
use crate::stats::DropReason;
use crate::time::Instant;
use crate::wire::{udp as udp_wire, IpProtocol, UdpRepr};
use core::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use core::time::Duration;

/// The TFTP server port.
pub const TFTP_PORT: u16 = 69;
/// Transfers at once.
pub const TFTP_SESSIONS: usize = 8;
/// Longest file name served.
pub const MAX_PATH: usize = 255;
/// Largest block: a 1500-byte link's datagram less IPv4, UDP and TFTP headers.
pub const MAX_BLKSIZE: usize = 1500 - 20 - 8 - 4;
/// Retransmissions of one block before the transfer is dropped.
pub const MAX_RETRIES: u8 = 5;
const DEFAULT_BLKSIZE: usize = 512;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

mod op {
    pub const RRQ: u16 = 1;
    pub const WRQ: u16 = 2;
    pub const DATA: u16 = 3;
    pub const ACK: u16 = 4;
    pub const ERROR: u16 = 5;
    pub const OACK: u16 = 6;
}

/// TFTP error codes (RFC 1350 §5).
mod err {
    pub const UNDEFINED: u16 = 0;
    pub const NOT_FOUND: u16 = 1;
    pub const ACCESS: u16 = 2;
    pub const ILLEGAL: u16 = 4;
    pub const UNKNOWN_TID: u16 = 5;
}

#[derive(Clone, Copy, Debug)]
struct Session {
    client: SocketAddrV4,
    blksize: usize,
    size: u64,
    timeout: Duration,
    /// Options to acknowledge before data (OACK awaiting ACK 0): which ones.
    oack: Option<Oack>,
    /// 1-based index of the block in flight (its wire number is this, wrapping at 65536).
    block: u64,
    /// The block in flight is the last one (shorter than `blksize`).
    last: bool,
    deadline: Instant,
    retries: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Oack {
    blksize: bool,
    tsize: bool,
    timeout: bool,
}

/// The TFTP server: its transfers, bounded.
#[derive(Debug, Default)]
pub struct TftpServer {
    sessions: [Option<Session>; TFTP_SESSIONS],
}

/// What a read request asks, parsed.
struct Request<'a> {
    path: &'a str,
    blksize: Option<usize>,
    tsize: bool,
    timeout: Option<u8>,
}

impl TftpServer {
    /// Transfers in progress.
    pub fn sessions(&self) -> usize {
        self.sessions.iter().filter(|s| s.is_some()).count()
    }

    /// The earliest retransmission deadline.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        self.sessions.iter().flatten().map(|s| s.deadline).min()
    }

    /// A datagram from the guest to the gateway's port 69.
    pub(crate) fn input<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        d: &Ingress<'_>,
        src_port: u16,
        msg: &[u8],
        host: &mut H,
    ) {
        let IpAddr::V4(ip) = d.src else { return };
        let client = SocketAddrV4::new(ip, src_port);
        if msg.len() < 4 {
            return out.stats.drop(DropReason::TftpMalformed);
        }
        let opcode = u16::from_be_bytes([msg[0], msg[1]]);
        let slot = self.sessions.iter().position(|s| s.is_some_and(|s| s.client == client));
        match opcode {
            op::RRQ => {
                // A repeated request restarts that client's transfer.
                if let Some(i) = slot {
                    self.end(i, host);
                }
                self.read_request(out, d.now, client, &msg[2..], host);
            }
            op::WRQ => {
                out.stats.drop(DropReason::TftpRefused);
                send_error(out, d.now, client, err::ACCESS, "read-only server");
            }
            op::ACK => {
                let Some(i) = slot else {
                    out.stats.drop(DropReason::TftpMalformed);
                    return send_error(out, d.now, client, err::UNKNOWN_TID, "no transfer");
                };
                let n = u16::from_be_bytes([msg[2], msg[3]]);
                self.ack(out, d.now, i, n, host);
            }
            op::ERROR => {
                // The client gave up.
                if let Some(i) = slot {
                    self.end(i, host);
                }
            }
            _ => {
                out.stats.drop(DropReason::TftpMalformed);
                send_error(out, d.now, client, err::ILLEGAL, "illegal operation");
            }
        }
    }

    fn read_request<H: HostSocket>(
        &mut self,
        out: &mut Iface<'_>,
        now: Instant,
        client: SocketAddrV4,
        body: &[u8],
        host: &mut H,
    ) {
        let req = match parse_request(body) {
            Ok(r) => r,
            Err((code, why)) => {
                let reason = if code == err::ILLEGAL { DropReason::TftpMalformed } else { DropReason::TftpRefused };
                out.stats.drop(reason);
                return send_error(out, now, client, code, why);
            }
        };
        let Some(i) = self.sessions.iter().position(|s| s.is_none()) else {
            out.stats.drop(DropReason::TftpRefused);
            return send_error(out, now, client, err::UNDEFINED, "too many transfers");
        };
        let size = match host.tftp_open(i as u8, req.path) {
            Ok(n) => n,
            Err(e) => {
                out.stats.drop(DropReason::TftpRefused);
                let (code, why) = match e {
                    HostError::PermissionDenied => (err::ACCESS, "access violation"),
                    HostError::Unsupported => (err::NOT_FOUND, "no files served"),
                    _ => (err::NOT_FOUND, "file not found"),
                };
                host.tftp_close(i as u8);
                return send_error(out, now, client, code, why);
            }
        };
        let link_max = usize::from(out.config.mtu).saturating_sub(20 + 8 + 4).clamp(8, MAX_BLKSIZE);
        let blksize = req.blksize.map_or(DEFAULT_BLKSIZE, |b| b.min(link_max));
        let timeout = req.timeout.map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(u64::from(t)));
        let oack = Oack { blksize: req.blksize.is_some(), tsize: req.tsize, timeout: req.timeout.is_some() };
        let wants_oack = oack.blksize || oack.tsize || oack.timeout;
        self.sessions[i] = Some(Session {
            client,
            blksize,
            size,
            timeout,
            oack: wants_oack.then_some(oack),
            block: u64::from(!wants_oack),
            last: false,
            deadline: now + timeout,
            retries: 0,
        });
        self.transmit(out, now, i, host);
    }

    fn ack<H: HostSocket>(&mut self, out: &mut Iface<'_>, now: Instant, i: usize, n: u16, host: &mut H) {
        let Some(s) = self.sessions[i].as_mut() else { return };
        if n != s.block as u16 {
            // A duplicate or stale ACK: the timer retransmits if need be.
            return;
        }
        if s.oack.take().is_none() && s.last {
            out.stats.tftp_transfers += 1;
            return self.end(i, host);
        }
        s.block += 1;
        s.retries = 0;
        self.transmit(out, now, i, host);
    }

    /// Retransmits what is due; drops transfers whose client went quiet.
    pub(crate) fn timeout<H: HostSocket>(&mut self, out: &mut Iface<'_>, now: Instant, host: &mut H) {
        for i in 0..TFTP_SESSIONS {
            let Some(s) = self.sessions[i].as_mut() else { continue };
            if s.deadline > now {
                continue;
            }
            if s.retries >= MAX_RETRIES {
                out.stats.drop(DropReason::TftpTimeout);
                self.end(i, host);
                continue;
            }
            s.retries += 1;
            self.transmit(out, now, i, host);
        }
    }

    /// Sends session `i`'s OACK or current block, and arms its timer.
    fn transmit<H: HostSocket>(&mut self, out: &mut Iface<'_>, now: Instant, i: usize, host: &mut H) {
        let Some(s) = self.sessions[i].as_mut() else { return };
        s.deadline = now + s.timeout;
        let client = s.client;
        let mut buf = [0u8; 4 + MAX_BLKSIZE];
        if let Some(o) = s.oack {
            let mut w = Cursor { buf: &mut buf, at: 0 };
            w.put(&op::OACK.to_be_bytes());
            let mut num = [0u8; 20];
            if o.blksize {
                w.put(b"blksize\0");
                w.put(decimal(s.blksize as u64, &mut num));
                w.put(b"\0");
            }
            if o.tsize {
                w.put(b"tsize\0");
                w.put(decimal(s.size, &mut num));
                w.put(b"\0");
            }
            if o.timeout {
                w.put(b"timeout\0");
                w.put(decimal(s.timeout.as_secs(), &mut num));
                w.put(b"\0");
            }
            let n = w.at;
            return send_udp(out, now, client, &buf[..n]);
        }
        let offset = (s.block - 1) * s.blksize as u64;
        buf[..2].copy_from_slice(&op::DATA.to_be_bytes());
        buf[2..4].copy_from_slice(&(s.block as u16).to_be_bytes());
        let want = s.blksize;
        let mut got = 0;
        while got < want {
            match host.tftp_read(i as u8, offset + got as u64, &mut buf[4 + got..4 + want]) {
                Ok(0) => break,
                Ok(n) => got += n.min(want - got),
                Err(_) => {
                    out.stats.drop(DropReason::TftpRefused);
                    send_error(out, now, client, err::UNDEFINED, "read error");
                    return self.end(i, host);
                }
            }
        }
        s.last = got < want;
        out.stats.tftp_blocks_sent += 1;
        send_udp(out, now, client, &buf[..4 + got]);
    }

    fn end<H: HostSocket>(&mut self, i: usize, host: &mut H) {
        if self.sessions[i].take().is_some() {
            host.tftp_close(i as u8);
        }
    }
}

/// Parses a read request after its opcode: file name, mode, options (RFC 2347).
fn parse_request(body: &[u8]) -> Result<Request<'_>, (u16, &'static str)> {
    let mut fields = body.split(|&b| b == 0);
    // The last piece is what follows the final NUL: it must be empty.
    if body.last() != Some(&0) {
        return Err((err::ILLEGAL, "malformed request"));
    }
    let name = fields.next().ok_or((err::ILLEGAL, "malformed request"))?;
    let mode = fields.next().ok_or((err::ILLEGAL, "malformed request"))?;
    if !mode.eq_ignore_ascii_case(b"octet") {
        return Err((err::ILLEGAL, "only octet mode"));
    }
    let path = confine(name).ok_or((err::ACCESS, "access violation"))?;
    let mut req = Request { path, blksize: None, tsize: false, timeout: None };
    while let Some(key) = fields.next().filter(|k| !k.is_empty()) {
        let value = fields.next().unwrap_or(&[]);
        let number = core::str::from_utf8(value).ok().and_then(|v| v.parse::<u64>().ok());
        if key.eq_ignore_ascii_case(b"blksize") {
            // RFC 2348: 8..=65464; a value out of range is ignored (no OACK for it).
            req.blksize = number.filter(|n| (8..=65464).contains(n)).map(|n| n as usize);
        } else if key.eq_ignore_ascii_case(b"tsize") {
            req.tsize = number.is_some();
        } else if key.eq_ignore_ascii_case(b"timeout") {
            req.timeout = number.filter(|n| (1..=255).contains(n)).map(|n| n as u8);
        }
    }
    Ok(req)
}

/// The path relative to the root, or `None` when it may not be served.
fn confine(name: &[u8]) -> Option<&str> {
    let name = core::str::from_utf8(name).ok()?;
    let rel = name.trim_start_matches('/');
    if rel.is_empty() || rel.len() > MAX_PATH || rel.bytes().any(|b| b.is_ascii_control() || b == b'\\') {
        return None;
    }
    if rel.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return None;
    }
    Some(rel)
}

/// `n` in decimal, in `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

struct Cursor<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl Cursor<'_> {
    fn put(&mut self, d: &[u8]) {
        let n = d.len().min(self.buf.len() - self.at);
        self.buf[self.at..self.at + n].copy_from_slice(&d[..n]);
        self.at += n;
    }
}

fn send_error(out: &mut Iface<'_>, now: Instant, client: SocketAddrV4, code: u16, why: &str) {
    let mut buf = [0u8; 64];
    let mut w = Cursor { buf: &mut buf, at: 0 };
    w.put(&op::ERROR.to_be_bytes());
    w.put(&code.to_be_bytes());
    w.put(why.as_bytes());
    w.put(b"\0");
    let n = w.at;
    send_udp(out, now, client, &buf[..n]);
}

fn send_udp(out: &mut Iface<'_>, now: Instant, client: SocketAddrV4, body: &[u8]) {
    let src: Ipv4Addr = out.config.gateway;
    let udp = UdpRepr { src_port: TFTP_PORT, dst_port: client.port() };
    let mut head = [0u8; udp_wire::HEADER_LEN];
    udp.emit_header(&mut head, src, *client.ip(), body);
    let repr = reply_header(src, *client.ip(), IpProtocol::Udp, DEFAULT_TTL, 0);
    out.send_datagram(now, repr, LinkDest::Resolve, &head, body);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined_to_the_root() {
        assert_eq!(confine(b"pxelinux.0"), Some("pxelinux.0"));
        assert_eq!(confine(b"/boot/vmlinuz"), Some("boot/vmlinuz"), "absolute means the root");
        assert_eq!(confine(b"//x"), Some("x"));
        for bad in [
            &b"../etc/passwd"[..],
            b"a/../../x",
            b"a/..",
            b"..",
            b"./x",
            b"a//b",
            b"a/",
            b"",
            b"/",
            b"a\\..\\b",
            b"a\nb",
            b"\xff\xfe",
        ] {
            assert_eq!(confine(bad), None, "{bad:?}");
        }
        let long = [b'a'; MAX_PATH + 1];
        assert_eq!(confine(&long), None);
    }

    #[test]
    fn requests_parse_with_options_and_refuse_what_they_must() {
        let r = parse_request(b"f\0octet\0blksize\x001468\0tsize\x000\0timeout\x003\0").ok().unwrap();
        assert_eq!((r.path, r.blksize, r.tsize, r.timeout), ("f", Some(1468), true, Some(3)));
        let r = parse_request(b"f\0OCTET\0BlkSize\x004\0unknown\0x\0").ok().unwrap();
        assert_eq!(r.blksize, None, "4 is below RFC 2348's minimum");
        assert_eq!(parse_request(b"f\0netascii\0").err().unwrap().0, err::ILLEGAL);
        assert_eq!(parse_request(b"f\0octet").err().unwrap().0, err::ILLEGAL, "no final NUL");
        assert_eq!(parse_request(b"f\0").err().unwrap().0, err::ILLEGAL, "no mode");
        assert_eq!(parse_request(b"../f\0octet\0").err().unwrap().0, err::ACCESS);
    }

    #[test]
    fn decimal_writes_numbers() {
        let mut b = [0u8; 20];
        assert_eq!(decimal(0, &mut b), b"0");
        assert_eq!(decimal(33554432, &mut b), b"33554432");
        assert_eq!(decimal(u64::MAX, &mut b), b"18446744073709551615");
    }
}
