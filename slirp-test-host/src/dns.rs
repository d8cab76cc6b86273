//! Just enough DNS for the simulation: build an A query, answer it from a table, read the answer.
//!
//! The fake upstream resolver of [`FakeNet`](crate::FakeNet) uses [`answer`]; tests that speak
//! DNS by hand over a guest UDP socket use [`build_query`] and [`parse_response`]. The format is
//! RFC 1035 §4.1: a 12-byte header, one question (labels, type, class), answers that name the
//! question by a compression pointer to offset 12.

use core::net::Ipv4Addr;
use std::collections::BTreeMap;

/// Query type A (an IPv4 address).
pub const TYPE_A: u16 = 1;
/// Query type AAAA (an IPv6 address): the fake resolver knows none.
pub const TYPE_AAAA: u16 = 28;
/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Response code: no error.
pub const RCODE_NOERROR: u8 = 0;
/// Response code: the query was malformed.
pub const RCODE_FORMERR: u8 = 1;
/// Response code: the name does not exist.
pub const RCODE_NXDOMAIN: u8 = 3;
/// Response code: the server does not do that (only standard queries are answered).
pub const RCODE_NOTIMP: u8 = 4;
/// TTL of the answers the fake resolver gives.
pub const ANSWER_TTL: u32 = 300;

const HEADER_LEN: usize = 12;
const FLAG_QR: u16 = 0x8000;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;

/// Encodes `name` (`"example.com"`, trailing dot optional) as DNS labels, or `None` if a label is
/// empty or longer than 63 bytes.
pub fn encode_name(name: &str) -> Option<Vec<u8>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Some(out)
}

/// A standard recursive query for `name` with type `qtype`, class IN, transaction id `id`.
///
/// # Panics
/// If `name` is not a valid DNS name (a bug in the test).
pub fn build_query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&FLAG_RD.to_be_bytes());
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    q.extend_from_slice(&encode_name(name).expect("valid DNS name"));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    q
}

/// The question of a query: (name in lower case without trailing dot, type, class, end offset).
fn parse_question(msg: &[u8]) -> Option<(String, u16, u16, usize)> {
    let mut pos = HEADER_LEN;
    let mut name = String::new();
    loop {
        let len = usize::from(*msg.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        // Compression pointers do not occur in a question we accept (nothing precedes it).
        if len > 63 {
            return None;
        }
        let label = msg.get(pos..pos + len)?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*msg.get(pos)?, *msg.get(pos + 1)?]);
    let qclass = u16::from_be_bytes([*msg.get(pos + 2)?, *msg.get(pos + 3)?]);
    Some((name, qtype, qclass, pos + 4))
}

/// The fake resolver's answer to `query` from `table` (lower-case names without trailing dot):
/// the A records of a known name, an empty NOERROR for other types of a known name, NXDOMAIN for
/// an unknown one, FORMERR for a malformed question, NOTIMP for anything but a standard query.
/// `None` (no answer at all) when the message is too short to carry an id, or is a response.
pub fn answer(query: &[u8], table: &BTreeMap<String, Vec<Ipv4Addr>>) -> Option<Vec<u8>> {
    if query.len() < HEADER_LEN {
        return None;
    }
    let flags = u16::from_be_bytes([query[2], query[3]]);
    if flags & FLAG_QR != 0 {
        return None;
    }
    let opcode = (flags >> 11) & 0xf;
    let qdcount = u16::from_be_bytes([query[4], query[5]]);
    let rd = flags & FLAG_RD;
    let header = |rcode: u8, qd: u16, an: u16| {
        let mut h = Vec::with_capacity(HEADER_LEN);
        h.extend_from_slice(&query[0..2]);
        h.extend_from_slice(&(FLAG_QR | (opcode << 11) | rd | FLAG_RA | u16::from(rcode)).to_be_bytes());
        h.extend_from_slice(&qd.to_be_bytes());
        h.extend_from_slice(&an.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0]);
        h
    };
    if opcode != 0 {
        return Some(header(RCODE_NOTIMP, 0, 0));
    }
    let question = if qdcount == 1 { parse_question(query) } else { None };
    let Some((name, qtype, qclass, end)) = question else {
        return Some(header(RCODE_FORMERR, 0, 0));
    };
    let Some(addrs) = table.get(&name) else {
        let mut r = header(RCODE_NXDOMAIN, 1, 0);
        r.extend_from_slice(&query[HEADER_LEN..end]);
        return Some(r);
    };
    let addrs: &[Ipv4Addr] = if qtype == TYPE_A && qclass == CLASS_IN { addrs } else { &[] };
    let mut r = header(RCODE_NOERROR, 1, addrs.len() as u16);
    r.extend_from_slice(&query[HEADER_LEN..end]);
    for addr in addrs {
        r.extend_from_slice(&[0xc0, HEADER_LEN as u8]);
        r.extend_from_slice(&TYPE_A.to_be_bytes());
        r.extend_from_slice(&CLASS_IN.to_be_bytes());
        r.extend_from_slice(&ANSWER_TTL.to_be_bytes());
        r.extend_from_slice(&4u16.to_be_bytes());
        r.extend_from_slice(&addr.octets());
    }
    Some(r)
}

/// A DNS response, as far as the tests care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Transaction id.
    pub id: u16,
    /// Response code ([`RCODE_NOERROR`], [`RCODE_NXDOMAIN`], ...).
    pub rcode: u8,
    /// The question's name, lower case, without trailing dot.
    pub name: String,
    /// The question's type.
    pub qtype: u16,
    /// The addresses of the A records among the answers.
    pub addrs: Vec<Ipv4Addr>,
}

/// Reads a response built like [`answer`] builds them (answers named by a compression pointer or
/// by full labels). `None` if it is not a well-formed response with one question.
pub fn parse_response(msg: &[u8]) -> Option<Response> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & FLAG_QR == 0 || u16::from_be_bytes([msg[4], msg[5]]) != 1 {
        return None;
    }
    let ancount = u16::from_be_bytes([msg[6], msg[7]]);
    let (name, qtype, _, mut pos) = parse_question(msg)?;
    let mut addrs = Vec::new();
    for _ in 0..ancount {
        // The owner name: a pointer, or labels up to the root.
        if msg.get(pos)? & 0xc0 == 0xc0 {
            pos += 2;
        } else {
            loop {
                let len = usize::from(*msg.get(pos)?);
                pos += 1 + len;
                if len == 0 {
                    break;
                }
            }
        }
        let fixed = msg.get(pos..pos + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = msg.get(pos + 10..pos + 10 + rdlen)?;
        if rtype == TYPE_A && rdlen == 4 {
            addrs.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        pos += 10 + rdlen;
    }
    Some(Response { id: u16::from_be_bytes([msg[0], msg[1]]), rcode: (flags & 0xf) as u8, name, qtype, addrs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> BTreeMap<String, Vec<Ipv4Addr>> {
        let mut t = BTreeMap::new();
        t.insert("example.com".to_string(), vec![Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(203, 0, 113, 5)]);
        t
    }

    #[test]
    fn answers_a_query_from_the_table() {
        let q = build_query(0x1234, "Example.COM.", TYPE_A);
        let r = parse_response(&answer(&q, &table()).unwrap()).unwrap();
        assert_eq!(
            r,
            Response {
                id: 0x1234,
                rcode: RCODE_NOERROR,
                name: "example.com".into(),
                qtype: TYPE_A,
                addrs: vec![Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(203, 0, 113, 5)],
            }
        );
    }

    #[test]
    fn unknown_name_other_type_and_garbage() {
        let r = parse_response(&answer(&build_query(7, "nope.test", TYPE_A), &table()).unwrap()).unwrap();
        assert_eq!((r.id, r.rcode, r.addrs.len()), (7, RCODE_NXDOMAIN, 0));
        let r = parse_response(&answer(&build_query(8, "example.com", TYPE_AAAA), &table()).unwrap()).unwrap();
        assert_eq!((r.rcode, r.qtype, r.addrs.len()), (RCODE_NOERROR, TYPE_AAAA, 0));
        assert_eq!(answer(&[1, 2, 3], &table()), None);
        let formerr = answer(&[0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, b'a'], &table()).unwrap();
        assert_eq!((formerr[0], formerr[1], formerr[3] & 0xf), (0xab, 0xcd, RCODE_FORMERR));
        let response = answer(&build_query(9, "example.com", TYPE_A), &table()).unwrap();
        assert_eq!(answer(&response, &table()), None, "responses are not answered");
        assert_eq!(encode_name("a..b"), None);
    }
}
