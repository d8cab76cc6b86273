//! The DHCPv6 server (RFC 8415), stateless and stateful.
//!
//! Stateless (RFC 8415 §6.1): Information-Request is answered with the DNS alias and the
//! search domains. Stateful (when [`Ipv6Config::dhcp_stateful`] is set, the default): one
//! address per identity association (IA_NA) from a pool of [`DHCPV6_POOL_SIZE`] addresses from
//! [`Ipv6Config::dhcp_start`]; a binding belongs to the (client DUID, IAID) that took it, so a
//! client that comes back gets the same address. When the pool is full an expired binding is
//! reused, else the IA gets `NoAddrsAvail` (the client keeps its SLAAC address).
//!
//! Deliberate choices:
//! - Solicit with Rapid Commit is answered by a committing Reply (the two-message exchange);
//!   Advertise carries preference 255 so clients need not wait for other servers;
//! - Renew and Rebind of an IA we have no binding for create one (a restarted stack keeps its
//!   clients), and addresses the client holds that are not ours come back with lifetime 0;
//! - prefix delegation and temporary addresses are not offered (`NoPrefixAvail`,
//!   `NoAddrsAvail` inside the IA);
//! - a declined address is kept out of the pool for one lease time;
//! - relay messages are ignored: the guest link has no relays;
//! - in restricted mode the DNS alias is not advertised, as with DHCPv4.

use crate::config::{Config, Ipv6Config, DHCPV6_POOL_SIZE};
use crate::iface::ip::{Ingress, LinkDest};
use crate::iface::ipv6::DEFAULT_HOP_LIMIT;
use crate::iface::Iface;
use crate::stats::DropReason;
use crate::time::Instant;
use crate::wire::dhcpv6::{self, msg, opt, status, Dhcpv6Message, IaNa, Writer, MAX_DUID_LEN};
use crate::wire::icmpv6::{encode_name, search_names};
use crate::wire::{udp as udp_wire, EthernetAddress, IpProtocol, UdpRepr};
use core::net::{IpAddr, Ipv6Addr};

/// Largest reply we build (a client with several IAs and a long search list still fits; a
/// reply that would not is dropped and counted).
const REPLY_CAPACITY: usize = 1024;
/// IAs of one kind answered per message (more are left out of the reply).
const MAX_IAS: usize = 4;
/// Addresses per IA looked at (hints, or the ones a renewing client holds).
const MAX_IA_ADDRS: usize = 4;

#[derive(Clone, Debug)]
struct Binding {
    /// The client's DUID; empty for an address a client declined.
    duid: heapless::Vec<u8, MAX_DUID_LEN>,
    iaid: u32,
    expires: Instant,
}

/// Address bindings of the DHCPv6 pool: one slot per address, bounded.
#[derive(Debug, Default)]
pub struct Dhcp6Server {
    bindings: [Option<Binding>; DHCPV6_POOL_SIZE],
}

/// What a message asks of the server, once validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Addresses for the IAs: offered (`commit` false) or bound.
    Assign {
        commit: bool,
    },
    Confirm,
    Release,
    Decline,
    Information,
}

/// The result of [`Dhcp6Server::handle`]: a reply of `len` bytes, and the addresses it bound
/// (so the caller can learn where they are).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) len: usize,
    pub(crate) bound: heapless::Vec<Ipv6Addr, MAX_IAS>,
}

impl Dhcp6Server {
    /// Current bindings: (address, client DUID, IAID).
    pub fn bindings<'c>(&'c self, c: &'c Ipv6Config) -> impl Iterator<Item = (Ipv6Addr, &'c [u8], u32)> + 'c {
        self.bindings.iter().enumerate().filter_map(move |(i, b)| {
            let b = b.as_ref().filter(|b| !b.duid.is_empty())?;
            Some((c.dhcp_addr(i)?, b.duid.as_slice(), b.iaid))
        })
    }

    fn slot_of(&self, duid: &[u8], iaid: u32) -> Option<usize> {
        self.bindings.iter().position(|b| b.as_ref().is_some_and(|b| b.iaid == iaid && b.duid == duid))
    }

    fn pool_slot(c: &Ipv6Config, a: Ipv6Addr) -> Option<usize> {
        let i = u128::from(a).checked_sub(u128::from(c.dhcp_start))?;
        (i < DHCPV6_POOL_SIZE as u128).then_some(i as usize)
    }

    fn free(&self, now: Instant, i: usize) -> bool {
        self.bindings[i].as_ref().is_none_or(|b| b.expires <= now)
    }

    /// The slot for (duid, iaid): its binding, else a free slot the client hinted, else the
    /// first free one, else one whose binding expired.
    fn choose(&self, now: Instant, c: &Ipv6Config, duid: &[u8], iaid: u32, hints: &[Ipv6Addr]) -> Option<usize> {
        self.slot_of(duid, iaid)
            .or_else(|| hints.iter().filter_map(|&a| Self::pool_slot(c, a)).find(|&i| self.bindings[i].is_none()))
            .or_else(|| self.bindings.iter().position(|b| b.is_none()))
            .or_else(|| (0..DHCPV6_POOL_SIZE).find(|&i| self.free(now, i)))
    }

    /// Answers the message `m` from a client into `buf`, or says why not. `server_duid`
    /// identifies us.
    pub(crate) fn handle(
        &mut self,
        now: Instant,
        config: &Config,
        server_duid: &[u8],
        m: &Dhcpv6Message<'_>,
        buf: &mut [u8],
    ) -> Result<Reply, DropReason> {
        let c = &config.ipv6;
        let client = m.option(opt::CLIENTID);
        let server = m.option(opt::SERVERID);
        if client.is_some_and(|d| d.len() < 2 || d.len() > MAX_DUID_LEN) {
            return Err(DropReason::DhcpMalformed);
        }
        let ours = server.map(|s| s == server_duid);
        let has_ia = m.options().any(|(o, _)| matches!(o, opt::IA_NA | opt::IA_TA | opt::IA_PD));
        let rapid = m.option(opt::RAPID_COMMIT).is_some();
        // RFC 8415 §16: which identifiers each message must and must not carry.
        let kind = match (m.msg_type(), client.is_some(), ours) {
            (msg::SOLICIT, true, None) => Kind::Assign { commit: rapid && c.dhcp_stateful },
            (msg::REQUEST | msg::RENEW, true, Some(true)) => Kind::Assign { commit: true },
            (msg::REBIND, true, None) => Kind::Assign { commit: true },
            (msg::CONFIRM, true, None) => Kind::Confirm,
            (msg::RELEASE, true, Some(true)) => Kind::Release,
            (msg::DECLINE, true, Some(true)) => Kind::Decline,
            (msg::INFORMATION_REQUEST, _, None | Some(true)) if !has_ia => Kind::Information,
            _ => return Err(DropReason::DhcpIgnored),
        };
        let duid = client.unwrap_or(&[]);
        // RFC 8415 §18.3.3: a Confirm with no addresses gets no reply.
        let confirmed = (kind == Kind::Confirm).then(|| confirm(c, m)).flatten();
        if kind == Kind::Confirm && confirmed.is_none() {
            return Err(DropReason::DhcpIgnored);
        }
        let reply_type = match kind {
            Kind::Assign { commit: false } => msg::ADVERTISE,
            _ => msg::REPLY,
        };
        let mut w = Writer::new(buf, reply_type, m.transaction_id()).ok_or(DropReason::TxBufferTooSmall)?;
        let mut bound = heapless::Vec::new();
        let built = (|| -> Option<()> {
            w.option(opt::SERVERID, server_duid)?;
            if let Some(id) = client {
                w.option(opt::CLIENTID, id)?;
            }
            match kind {
                Kind::Assign { commit } => {
                    if reply_type == msg::ADVERTISE {
                        w.option(opt::PREFERENCE, &[255])?;
                    } else if m.msg_type() == msg::SOLICIT {
                        w.option(opt::RAPID_COMMIT, &[])?;
                    }
                    self.assign(now, config, m, duid, commit, &mut w, &mut bound)?;
                    config_options(config, m, &mut w)?;
                }
                Kind::Confirm => w.status(confirmed.unwrap_or(status::NOT_ON_LINK))?,
                Kind::Release | Kind::Decline => {
                    for (_, ia) in m.options().filter(|&(o, _)| o == opt::IA_NA).take(MAX_IAS) {
                        let ia = IaNa::parse(ia).ok()?;
                        if kind == Kind::Release {
                            if let Some(i) = self.slot_of(duid, ia.iaid) {
                                self.bindings[i] = None;
                            }
                            continue;
                        }
                        for a in ia.addresses().take(MAX_IA_ADDRS) {
                            if let Some(i) = Self::pool_slot(c, a) {
                                let expires = now + config.lease_time;
                                self.bindings[i] = Some(Binding { duid: heapless::Vec::new(), iaid: 0, expires });
                            }
                        }
                    }
                    w.status(status::SUCCESS)?;
                }
                Kind::Information => config_options(config, m, &mut w)?,
            }
            Some(())
        })();
        match built {
            Some(()) => Ok(Reply { len: w.len(), bound }),
            None => Err(DropReason::TxBufferTooSmall),
        }
    }

    /// Writes an IA option for each IA the client sent, with the address it gets (and binds it
    /// when `commit`) or why it gets none.
    #[allow(clippy::too_many_arguments)]
    fn assign(
        &mut self,
        now: Instant,
        config: &Config,
        m: &Dhcpv6Message<'_>,
        duid: &[u8],
        commit: bool,
        w: &mut Writer<'_>,
        bound: &mut heapless::Vec<Ipv6Addr, MAX_IAS>,
    ) -> Option<()> {
        let c = &config.ipv6;
        let lease = u32::try_from(config.lease_time.as_secs()).unwrap_or(u32::MAX);
        let (t1, t2) = (lease / 2, (u64::from(lease) * 4 / 5) as u32);
        for (code, data) in
            m.options().filter(|&(o, _)| matches!(o, opt::IA_NA | opt::IA_TA | opt::IA_PD)).take(MAX_IAS)
        {
            let Some(iaid) = data.get(..4) else { continue };
            match code {
                opt::IA_TA => {
                    let at = w.begin(opt::IA_TA)?;
                    w.put(iaid)?;
                    w.status(status::NO_ADDRS_AVAIL)?;
                    w.end(at)?;
                    continue;
                }
                opt::IA_PD => {
                    let at = w.begin(opt::IA_PD)?;
                    w.put(iaid)?;
                    w.put(&[0; 8])?;
                    w.status(status::NO_PREFIX_AVAIL)?;
                    w.end(at)?;
                    continue;
                }
                _ => {}
            }
            let Ok(ia) = IaNa::parse(data) else { continue };
            let mut held: heapless::Vec<Ipv6Addr, MAX_IA_ADDRS> = heapless::Vec::new();
            for a in ia.addresses().take(MAX_IA_ADDRS) {
                let _ = held.push(a);
            }
            let slot = if c.dhcp_stateful { self.choose(now, c, duid, ia.iaid, &held) } else { None };
            let at = w.begin(opt::IA_NA)?;
            w.put(&ia.iaid.to_be_bytes())?;
            match slot.and_then(|i| Some((i, c.dhcp_addr(i)?))) {
                Some((i, addr)) => {
                    w.put(&t1.to_be_bytes())?;
                    w.put(&t2.to_be_bytes())?;
                    iaaddr(w, addr, lease, lease)?;
                    // Addresses the client holds that are not its binding: no longer valid.
                    if m.msg_type() != msg::SOLICIT && m.msg_type() != msg::REQUEST {
                        for &old in held.iter().filter(|&&a| a != addr) {
                            iaaddr(w, old, 0, 0)?;
                        }
                    }
                    if commit {
                        let mut id = heapless::Vec::new();
                        // Checked against MAX_DUID_LEN by `handle`.
                        let _ = id.extend_from_slice(duid);
                        self.bindings[i] = Some(Binding { duid: id, iaid: ia.iaid, expires: now + config.lease_time });
                        let _ = bound.push(addr);
                    }
                }
                None => {
                    w.put(&[0; 8])?;
                    w.status(status::NO_ADDRS_AVAIL)?;
                }
            }
            w.end(at)?;
        }
        Some(())
    }

    /// A DHCPv6 message from the guest (`d`: its IPv6 view; `port`: its source port; `bytes`:
    /// the UDP payload), answered through `out`.
    pub(crate) fn input(&mut self, out: &mut Iface<'_>, d: &Ingress<'_>, port: u16, bytes: &[u8]) {
        let IpAddr::V6(client) = d.src else { return };
        if out.config.disable_dhcp {
            return out.stats.drop(DropReason::DhcpIgnored);
        }
        let Ok(m) = Dhcpv6Message::new_checked(bytes) else {
            return out.stats.drop(DropReason::DhcpMalformed);
        };
        // A client speaks from its link-local address (RFC 8415 §13.1); `::` cannot be answered.
        if client.is_unspecified() {
            return out.stats.drop(DropReason::DhcpIgnored);
        }
        let duid = server_duid(out.gateway_mac);
        let mut buf = [0u8; REPLY_CAPACITY];
        let reply = match self.handle(d.now, &out.config, &duid, &m, &mut buf) {
            Ok(r) => r,
            Err(reason) => return out.stats.drop(reason),
        };
        for &a in &reply.bound {
            out.learn_guest6(d.now, a, d.link.src_mac);
            out.stats.trace(crate::trace::TraceEvent::Lease { mac: d.link.src_mac, addr: a.into() });
        }
        out.stats.dhcp6_replies += 1;
        let body = &buf[..reply.len];
        let src = Ipv6Config::LINK_LOCAL_GATEWAY;
        let udp = UdpRepr { src_port: dhcpv6::SERVER_PORT, dst_port: port };
        let mut head = [0u8; udp_wire::HEADER_LEN];
        udp.emit_header(&mut head, src, client, body);
        let to = LinkDest::Mac(d.link.src_mac);
        out.send_datagram6(d.now, src, client, IpProtocol::Udp, DEFAULT_HOP_LIMIT, to, &head, body);
    }
}

/// The status a Confirm gets: success when every address it names is in the prefix; `None`
/// when it names none.
fn confirm(c: &Ipv6Config, m: &Dhcpv6Message<'_>) -> Option<u16> {
    let mut any = false;
    let mut on_link = true;
    for (_, ia) in m.options().filter(|&(o, _)| o == opt::IA_NA).take(MAX_IAS) {
        let Ok(ia) = IaNa::parse(ia) else { continue };
        for a in ia.addresses().take(MAX_IA_ADDRS) {
            any = true;
            on_link &= c.in_prefix(a);
        }
    }
    any.then_some(if on_link { status::SUCCESS } else { status::NOT_ON_LINK })
}

/// Our DUID: DUID-LL (type 3, hardware type 1) of the router's MAC (RFC 8415 §11.4).
pub(crate) fn server_duid(mac: EthernetAddress) -> [u8; 10] {
    let mut d = [0, 3, 0, 1, 0, 0, 0, 0, 0, 0];
    d[4..].copy_from_slice(&mac.0);
    d
}

fn iaaddr(w: &mut Writer<'_>, addr: Ipv6Addr, preferred: u32, valid: u32) -> Option<()> {
    let at = w.begin(opt::IAADDR)?;
    w.put(&addr.octets())?;
    w.put(&preferred.to_be_bytes())?;
    w.put(&valid.to_be_bytes())?;
    w.end(at)
}

/// The DNS servers and search list options, when the client asked for them (or sent no
/// option request at all).
fn config_options(config: &Config, m: &Dhcpv6Message<'_>, w: &mut Writer<'_>) -> Option<()> {
    let oro = m.option(opt::ORO);
    let wants = |code: u16| oro.is_none_or(|o| o.chunks_exact(2).any(|c| c == code.to_be_bytes()));
    if !config.restricted && wants(opt::DNS_SERVERS) {
        w.option(opt::DNS_SERVERS, &config.ipv6.dns.octets())?;
    }
    let search = config.search.as_deref().or(config.domain.as_deref());
    if let Some(list) = search.filter(|_| wants(opt::DOMAIN_LIST)) {
        let at = w.begin(opt::DOMAIN_LIST)?;
        let names = w.len();
        for name in search_names(list) {
            let mut enc = [0u8; 256];
            if let Some(n) = encode_name(name, &mut enc) {
                w.put(&enc[..n])?;
            }
        }
        w.end(at)?;
        if w.len() == names {
            // Nothing encodable: no option.
            w.truncate(at);
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::dhcpv6::Options;
    use core::time::Duration;
    use std::{vec, vec::Vec};

    fn ia_options(ia: &[u8]) -> Options<'_> {
        Options::new(&ia[12..])
    }

    const MAC: EthernetAddress = EthernetAddress([0x52, 0x55, 10, 0, 2, 2]);

    fn config() -> Config {
        Config {
            ipv6: Ipv6Config { enabled: true, ..Ipv6Config::default() },
            search: Some(heapless::String::try_from("example.test lab.test").unwrap()),
            ..Config::default()
        }
    }

    /// A client message: type, client DUID (if any), server DUID (if any), IA_NAs (iaid,
    /// addresses), extra options.
    fn message(
        t: u8,
        client: Option<&[u8]>,
        server: Option<&[u8]>,
        ias: &[(u32, &[Ipv6Addr])],
        extra: &[(u16, &[u8])],
    ) -> Vec<u8> {
        let mut buf = vec![0u8; 1024];
        let mut w = Writer::new(&mut buf, t, [0xab, 0xcd, 0xef]).unwrap();
        if let Some(c) = client {
            w.option(opt::CLIENTID, c).unwrap();
        }
        if let Some(s) = server {
            w.option(opt::SERVERID, s).unwrap();
        }
        for (iaid, addrs) in ias {
            let at = w.begin(opt::IA_NA).unwrap();
            w.put(&iaid.to_be_bytes()).unwrap();
            w.put(&[0; 8]).unwrap();
            for a in *addrs {
                iaaddr(&mut w, *a, 0, 0).unwrap();
            }
            w.end(at).unwrap();
        }
        for (code, data) in extra {
            w.option(*code, data).unwrap();
        }
        let n = w.len();
        buf.truncate(n);
        buf
    }

    struct Server {
        s: Dhcp6Server,
        c: Config,
        now: Instant,
    }

    impl Server {
        fn new(c: Config) -> Self {
            Server { s: Dhcp6Server::default(), c, now: Instant::from_secs(10) }
        }

        fn ask(&mut self, bytes: &[u8]) -> Result<(Vec<u8>, Vec<Ipv6Addr>), DropReason> {
            let m = Dhcpv6Message::new_checked(bytes).unwrap();
            let mut buf = [0u8; REPLY_CAPACITY];
            let r = self.s.handle(self.now, &self.c, &server_duid(MAC), &m, &mut buf)?;
            Ok((buf[..r.len].to_vec(), r.bound.iter().copied().collect()))
        }
    }

    fn opts(reply: &[u8]) -> Vec<(u16, Vec<u8>)> {
        Options::new(&reply[4..]).map(|(c, d)| (c, d.to_vec())).collect()
    }

    fn get(reply: &[u8], code: u16) -> Option<Vec<u8>> {
        opts(reply).into_iter().find(|(c, _)| *c == code).map(|(_, d)| d)
    }

    /// The addresses (address, preferred, valid) and status of the IA_NA in a reply.
    fn ia_na(reply: &[u8]) -> (Vec<(Ipv6Addr, u32, u32)>, Option<u16>) {
        let ia = get(reply, opt::IA_NA).expect("an IA_NA");
        let mut addrs = Vec::new();
        let mut st = None;
        for (c, d) in ia_options(&ia) {
            match c {
                opt::IAADDR => addrs.push((
                    Ipv6Addr::from(<[u8; 16]>::try_from(&d[..16]).unwrap()),
                    u32::from_be_bytes(d[16..20].try_into().unwrap()),
                    u32::from_be_bytes(d[20..24].try_into().unwrap()),
                )),
                opt::STATUS_CODE => st = Some(u16::from_be_bytes([d[0], d[1]])),
                _ => {}
            }
        }
        (addrs, st)
    }

    const DUID_A: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
    const DUID_B: &[u8] = &[0, 3, 0, 1, 2, 0, 0, 0, 0, 2];

    fn pool(n: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x200 + n)
    }

    #[test]
    fn solicit_advertise_request_reply() {
        let mut s = Server::new(config());
        let sid = server_duid(MAC);
        let (adv, bound) = s.ask(&message(msg::SOLICIT, Some(DUID_A), None, &[(7, &[])], &[])).unwrap();
        assert_eq!(adv[0], msg::ADVERTISE);
        assert_eq!(&adv[1..4], &[0xab, 0xcd, 0xef]);
        assert!(bound.is_empty(), "an advertise binds nothing");
        assert_eq!(get(&adv, opt::SERVERID).unwrap(), sid);
        assert_eq!(get(&adv, opt::CLIENTID).unwrap(), DUID_A);
        assert_eq!(get(&adv, opt::PREFERENCE).unwrap(), [255]);
        assert_eq!(ia_na(&adv).0, vec![(pool(0), 86400, 86400)]);
        assert_eq!(get(&adv, opt::DNS_SERVERS).unwrap(), Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 3).octets());
        let mut names = Vec::new();
        for n in ["example.test", "lab.test"] {
            let mut enc = [0u8; 256];
            let len = encode_name(n, &mut enc).unwrap();
            names.extend_from_slice(&enc[..len]);
        }
        assert_eq!(get(&adv, opt::DOMAIN_LIST).unwrap(), names);
        // T1/T2 at 0.5 and 0.8 of the lease.
        let ia = get(&adv, opt::IA_NA).unwrap();
        assert_eq!(&ia[..12], &[0, 0, 0, 7, 0, 0, 0xa8, 0xc0, 0, 1, 0x0e, 0x00]);

        let (rep, bound) = s.ask(&message(msg::REQUEST, Some(DUID_A), Some(&sid), &[(7, &[pool(0)])], &[])).unwrap();
        assert_eq!(rep[0], msg::REPLY);
        assert_eq!(bound, vec![pool(0)]);
        assert_eq!(ia_na(&rep).0, vec![(pool(0), 86400, 86400)]);
        // A second client gets the next address; the first keeps its own (sticky).
        let (rep, _) =
            s.ask(&message(msg::SOLICIT, Some(DUID_B), None, &[(7, &[])], &[(opt::RAPID_COMMIT, &[])])).unwrap();
        assert_eq!(rep[0], msg::REPLY, "rapid commit");
        assert!(get(&rep, opt::RAPID_COMMIT).is_some());
        assert_eq!(ia_na(&rep).0[0].0, pool(1));
        let (rep, _) = s.ask(&message(msg::SOLICIT, Some(DUID_A), None, &[(7, &[])], &[])).unwrap();
        assert_eq!(ia_na(&rep).0[0].0, pool(0));
        assert_eq!(s.s.bindings(&s.c.ipv6).count(), 2);
    }

    #[test]
    fn identifiers_are_checked_per_message_type() {
        let mut s = Server::new(config());
        let sid = server_duid(MAC);
        let other = [0, 3, 0, 1, 9, 9, 9, 9, 9, 9];
        for bad in [
            message(msg::SOLICIT, None, None, &[(1, &[])], &[]),
            message(msg::SOLICIT, Some(DUID_A), Some(&sid), &[(1, &[])], &[]),
            message(msg::REQUEST, Some(DUID_A), None, &[(1, &[])], &[]),
            message(msg::REQUEST, Some(DUID_A), Some(&other), &[(1, &[])], &[]),
            message(msg::RENEW, Some(DUID_A), Some(&other), &[(1, &[])], &[]),
            message(msg::REBIND, Some(DUID_A), Some(&sid), &[(1, &[])], &[]),
            message(msg::INFORMATION_REQUEST, None, Some(&other), &[], &[]),
            message(msg::INFORMATION_REQUEST, Some(DUID_A), None, &[(1, &[])], &[]),
            message(msg::ADVERTISE, Some(DUID_A), Some(&sid), &[], &[]),
            message(msg::REPLY, Some(DUID_A), Some(&sid), &[], &[]),
            message(msg::RELAY_FORW, Some(DUID_A), None, &[], &[]),
        ] {
            assert_eq!(s.ask(&bad), Err(DropReason::DhcpIgnored), "{:?}", &bad[..1]);
        }
        let huge = [7u8; MAX_DUID_LEN + 1];
        assert_eq!(s.ask(&message(msg::SOLICIT, Some(&huge), None, &[], &[])), Err(DropReason::DhcpMalformed));
        assert_eq!(s.s.bindings(&s.c.ipv6).count(), 0);
    }

    #[test]
    fn information_request_is_stateless_and_honours_the_option_request() {
        let mut s = Server::new(config());
        let (rep, bound) = s.ask(&message(msg::INFORMATION_REQUEST, None, None, &[], &[])).unwrap();
        assert_eq!(rep[0], msg::REPLY);
        assert!(bound.is_empty());
        assert!(get(&rep, opt::CLIENTID).is_none());
        assert!(get(&rep, opt::DNS_SERVERS).is_some());
        assert!(get(&rep, opt::DOMAIN_LIST).is_some());
        // Only DNS servers asked for.
        let oro = opt::DNS_SERVERS.to_be_bytes();
        let (rep, _) = s.ask(&message(msg::INFORMATION_REQUEST, Some(DUID_A), None, &[], &[(opt::ORO, &oro)])).unwrap();
        assert!(get(&rep, opt::DNS_SERVERS).is_some());
        assert!(get(&rep, opt::DOMAIN_LIST).is_none());
        // Restricted: no DNS alias.
        let mut r = Server::new(Config { restricted: true, ..config() });
        let (rep, _) = r.ask(&message(msg::INFORMATION_REQUEST, None, None, &[], &[])).unwrap();
        assert!(get(&rep, opt::DNS_SERVERS).is_none());
    }

    #[test]
    fn stateless_server_gives_no_addresses() {
        let c = Config { ipv6: Ipv6Config { dhcp_stateful: false, ..config().ipv6 }, ..config() };
        let mut s = Server::new(c);
        let (rep, bound) =
            s.ask(&message(msg::SOLICIT, Some(DUID_A), None, &[(1, &[])], &[(opt::RAPID_COMMIT, &[])])).unwrap();
        assert_eq!(rep[0], msg::ADVERTISE, "no rapid commit without addresses");
        assert!(bound.is_empty());
        assert_eq!(ia_na(&rep), (vec![], Some(status::NO_ADDRS_AVAIL)));
    }

    #[test]
    fn renew_rebind_release_decline_confirm() {
        let mut s = Server::new(config());
        let sid = server_duid(MAC);
        let (_, b) = s.ask(&message(msg::REQUEST, Some(DUID_A), Some(&sid), &[(1, &[])], &[])).unwrap();
        assert_eq!(b, vec![pool(0)]);
        // Renew keeps the address; a stale address it holds comes back with lifetime 0.
        let stale = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x999);
        let (rep, _) = s.ask(&message(msg::RENEW, Some(DUID_A), Some(&sid), &[(1, &[pool(0), stale])], &[])).unwrap();
        assert_eq!(ia_na(&rep).0, vec![(pool(0), 86400, 86400), (stale, 0, 0)]);
        // A rebind to a stack that forgot the binding recreates it.
        let mut fresh = Server::new(config());
        let (rep, b) = fresh.ask(&message(msg::REBIND, Some(DUID_A), None, &[(1, &[pool(5)])], &[])).unwrap();
        assert_eq!(b, vec![pool(5)], "the held address, when free");
        assert_eq!(ia_na(&rep).0[0].0, pool(5));
        // Confirm: on link or not; nothing to confirm gets no reply.
        let (rep, _) = s.ask(&message(msg::CONFIRM, Some(DUID_A), None, &[(1, &[pool(0)])], &[])).unwrap();
        assert_eq!(get(&rep, opt::STATUS_CODE).unwrap(), [0, 0]);
        let away = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let (rep, _) = s.ask(&message(msg::CONFIRM, Some(DUID_A), None, &[(1, &[away])], &[])).unwrap();
        assert_eq!(get(&rep, opt::STATUS_CODE).unwrap(), status::NOT_ON_LINK.to_be_bytes());
        assert_eq!(s.ask(&message(msg::CONFIRM, Some(DUID_A), None, &[(1, &[])], &[])), Err(DropReason::DhcpIgnored));
        // Release frees it; decline keeps an address out of the pool.
        let (rep, _) = s.ask(&message(msg::RELEASE, Some(DUID_A), Some(&sid), &[(1, &[pool(0)])], &[])).unwrap();
        assert_eq!(get(&rep, opt::STATUS_CODE).unwrap(), [0, 0]);
        assert_eq!(s.s.bindings(&s.c.ipv6).count(), 0);
        s.ask(&message(msg::DECLINE, Some(DUID_B), Some(&sid), &[(1, &[pool(0)])], &[])).unwrap();
        let (_, b) = s.ask(&message(msg::REQUEST, Some(DUID_B), Some(&sid), &[(1, &[])], &[])).unwrap();
        assert_eq!(b, vec![pool(1)], "the declined address is skipped");
    }

    #[test]
    fn full_pool_says_no_addrs_until_a_binding_expires() {
        let mut s = Server::new(Config { lease_time: Duration::from_secs(60), ..config() });
        let sid = server_duid(MAC);
        for n in 0..DHCPV6_POOL_SIZE as u32 {
            let duid = [0, 3, 0, 1, 2, 0, 0, 0, 1, n as u8];
            let (_, b) = s.ask(&message(msg::REQUEST, Some(&duid), Some(&sid), &[(1, &[])], &[])).unwrap();
            assert_eq!(b.len(), 1);
        }
        let late = message(msg::REQUEST, Some(DUID_A), Some(&sid), &[(1, &[]), (2, &[])], &[]);
        let (rep, b) = s.ask(&late).unwrap();
        assert!(b.is_empty());
        assert_eq!(ia_na(&rep), (vec![], Some(status::NO_ADDRS_AVAIL)));
        s.now = s.now + Duration::from_secs(61);
        let (_, b) = s.ask(&late).unwrap();
        assert_eq!(b.len(), 2, "both IAs get an expired binding's address");
    }

    #[test]
    fn prefix_delegation_and_temporary_addresses_are_refused_in_their_ia() {
        let mut s = Server::new(config());
        let ia_pd = [0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0];
        let ia_ta = [0, 0, 0, 8];
        let (rep, _) = s
            .ask(&message(msg::SOLICIT, Some(DUID_A), None, &[], &[(opt::IA_PD, &ia_pd), (opt::IA_TA, &ia_ta)]))
            .unwrap();
        let pd = get(&rep, opt::IA_PD).unwrap();
        assert_eq!(&pd[..4], &[0, 0, 0, 9]);
        assert_eq!(
            Options::new(&pd[12..]).next().unwrap(),
            (opt::STATUS_CODE, &status::NO_PREFIX_AVAIL.to_be_bytes()[..])
        );
        let ta = get(&rep, opt::IA_TA).unwrap();
        assert_eq!(
            Options::new(&ta[4..]).next().unwrap(),
            (opt::STATUS_CODE, &status::NO_ADDRS_AVAIL.to_be_bytes()[..])
        );
    }

    #[test]
    fn a_tiny_buffer_is_an_error_not_a_panic() {
        let mut s = Server::new(config());
        let m = message(msg::SOLICIT, Some(DUID_A), None, &[(1, &[]), (2, &[]), (3, &[])], &[]);
        let m = Dhcpv6Message::new_checked(&m).unwrap();
        for n in 0..200 {
            let mut buf = vec![0u8; n];
            let _ = s.s.handle(s.now, &s.c, &server_duid(MAC), &m, &mut buf);
        }
    }
}
