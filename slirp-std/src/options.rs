//! Parsing and validating what the user asks for: the virtual network (`--cidr`), port forwards
//! (`--hostfwd`) and the upstream resolver (`--dns-upstream`).
//!
//! Kept apart from the command-line definitions so embedders and tests can use the same rules.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use slirp_core::Config;

/// The virtual network given as `ADDR/PREFIX`, with the addresses slirp derives from it
/// (gateway .2, DNS .3, DHCP pool from .15, guest address .100 for `--configure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    /// Network address (host bits cleared).
    pub network: Ipv4Addr,
    /// Prefix length.
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `10.0.2.0/24`. Host bits in the address are an error (say what you mean).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, len) =
            s.split_once('/').ok_or_else(|| format!("{s:?}: expected ADDRESS/PREFIX, like 10.0.2.0/24"))?;
        let network: Ipv4Addr = addr.parse().map_err(|_| format!("{s:?}: {addr:?} is not an IPv4 address"))?;
        let prefix_len: u8 =
            len.parse().ok().filter(|&n| n <= 32).ok_or_else(|| format!("{s:?}: {len:?} is not a prefix length"))?;
        if !(8..=25).contains(&prefix_len) {
            return Err(format!("{s:?}: prefix length must be 8 to 25 (the network needs room for .100)"));
        }
        let mask = u32::MAX << (32 - u32::from(prefix_len));
        if u32::from(network) & !mask != 0 {
            return Err(format!("{s:?}: the address has host bits set"));
        }
        Ok(Cidr { network, prefix_len })
    }

    /// The `n`th address of the network.
    pub fn host(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + n)
    }

    /// The core configuration for this network, on top of `base` (which supplies MTU, flags,
    /// timeouts).
    pub fn apply(&self, mut base: Config) -> Config {
        base.network = self.network;
        base.prefix_len = self.prefix_len;
        base.gateway = self.host(2);
        base.dns = self.host(3);
        base.dhcp_start = self.host(15);
        base
    }

    /// The address `--configure` gives the guest (.100, as slirp4netns).
    pub fn guest_address(&self) -> Ipv4Addr {
        self.host(100)
    }

    /// Whether `addr` lies inside the network.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - u32::from(self.prefix_len));
        u32::from(addr) & mask == u32::from(self.network)
    }
}

impl Default for Cidr {
    fn default() -> Self {
        Cidr { network: Ipv4Addr::new(10, 0, 2, 0), prefix_len: 24 }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

/// An IPv6 prefix given as `PREFIX/LEN` (`--ipv6-prefix`): a /64, as SLAAC needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Prefix {
    /// The prefix (bits past `len` clear).
    pub prefix: std::net::Ipv6Addr,
    /// Its length (64).
    pub len: u8,
}

impl Ipv6Prefix {
    /// The address `--configure` gives the guest (`::100` of the prefix, as slirp4netns), its
    /// prefix length and the router's link-local address for the default route.
    pub fn guest_setup(&self) -> (std::net::Ipv6Addr, u8, std::net::Ipv6Addr) {
        let guest = std::net::Ipv6Addr::from(u128::from(self.prefix) | 0x100);
        (guest, self.len, slirp_core::Ipv6Config::LINK_LOCAL_GATEWAY)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.prefix, self.len)
    }
}

/// Parses `--ipv6-prefix`: `fd00::/64`. Only /64 prefixes (SLAAC builds addresses from a 64-bit
/// interface identifier); host bits must be clear.
pub fn parse_ipv6_prefix(s: &str) -> Result<Ipv6Prefix, String> {
    let (addr, len) = s.split_once('/').ok_or_else(|| format!("{s:?}: expected PREFIX/64, like fd00::/64"))?;
    let prefix: std::net::Ipv6Addr = addr.parse().map_err(|_| format!("{s:?}: {addr:?} is not an IPv6 address"))?;
    if len != "64" {
        return Err(format!("{s:?}: the prefix must be a /64 (SLAAC needs one)"));
    }
    if u128::from(prefix) & u128::from(u64::MAX) != 0 {
        return Err(format!("{s:?}: the address has host bits set"));
    }
    if prefix.is_multicast()
        || prefix.is_loopback()
        || prefix.is_unspecified()
        || (prefix.segments()[0] & 0xffc0) == 0xfe80
    {
        return Err(format!("{s:?}: not a unicast prefix a network can use"));
    }
    Ok(Ipv6Prefix { prefix, len: 64 })
}

/// Transport of a port forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwdProto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// One `--guestfwd` rule in QEMU syntax: `[tcp]:ADDR:PORT-TARGET`, TARGET one of
/// `cmd:COMMAND`, `pty:COMMAND` (ours: on a terminal), `unix:PATH`, `tcp:HOST:PORT` (IPv6
/// addresses in brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestFwd {
    /// The virtual endpoint in the guest network.
    pub addr: SocketAddr,
    /// What serves its connections.
    pub target: crate::host::GuestForwardTarget,
}

impl GuestFwd {
    /// Parses a rule; the address must be a host of `net` (or an IPv6 address).
    pub fn parse(rule: &str, net: &Cidr) -> Result<GuestFwd, String> {
        let bad = |why: &str| {
            format!("--guestfwd {rule:?}: {why} (want [tcp]:ADDR:PORT-cmd:COMMAND, -unix:PATH or -tcp:HOST:PORT)")
        };
        let rest = rule.strip_prefix("tcp:").unwrap_or(rule);
        if rest.starts_with("udp:") {
            return Err(bad("only TCP rules exist"));
        }
        let (endpoint, target) = rest.split_once('-').ok_or_else(|| bad("no '-'"))?;
        let addr = parse_endpoint(endpoint).ok_or_else(|| bad("the guest endpoint is not ADDR:PORT"))?;
        if let IpAddr::V4(a) = addr.ip() {
            if !net.contains(a) {
                return Err(bad(&format!("{a} is outside {net}")));
            }
        }
        if addr.port() == 0 {
            return Err(bad("port 0"));
        }
        let target = crate::host::GuestForwardTarget::parse(target).map_err(|e| bad(&e))?;
        Ok(GuestFwd { addr, target })
    }
}

/// `ADDR:PORT` or `[V6ADDR]:PORT`.
fn parse_endpoint(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok()
}

/// One `--hostfwd` rule in QEMU syntax: `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostFwd {
    /// Transport (QEMU's default is TCP).
    pub proto: FwdProto,
    /// Host address to listen on (unspecified = all of its family; IPv6 in brackets).
    pub host_addr: IpAddr,
    /// Host port to listen on.
    pub host_port: u16,
    /// Guest address (None = the first DHCP address, as QEMU; an IPv6 one in brackets).
    pub guest_addr: Option<IpAddr>,
    /// Guest port.
    pub guest_port: u16,
}

impl HostFwd {
    /// Parses one rule. The guest address, when given, must lie inside `net`.
    pub fn parse(s: &str, net: &Cidr) -> Result<HostFwd, String> {
        let bad = |why: &str| {
            format!("--hostfwd {s:?}: {why} (expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT)")
        };
        let (proto, rest) = match s.split_once(':') {
            Some(("tcp", rest)) | Some(("", rest)) => (FwdProto::Tcp, rest),
            Some(("udp", rest)) => (FwdProto::Udp, rest),
            Some((p, _)) => return Err(bad(&format!("unknown protocol {p:?}"))),
            None => return Err(bad("missing ':'")),
        };
        let (host, guest) = rest.split_once('-').ok_or_else(|| bad("missing '-'"))?;
        let (haddr, hport) = host.rsplit_once(':').ok_or_else(|| bad("host side needs [ADDR]:PORT"))?;
        let (gaddr, gport) = guest.rsplit_once(':').ok_or_else(|| bad("guest side needs [ADDR]:PORT"))?;
        // IPv6 addresses come in brackets, as in `tcp:[::1]:8080-[fd00::100]:80`.
        let unbracket =
            |a: &'_ str| -> String { a.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(a).to_string() };
        let (haddr, gaddr) = (unbracket(haddr), unbracket(gaddr));
        let (haddr, gaddr) = (haddr.as_str(), gaddr.as_str());
        let port = |p: &str, side: &str| {
            p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| bad(&format!("{side} port {p:?} is not 1-65535")))
        };
        let addr = |a: &str, side: &str| {
            a.parse::<IpAddr>().map_err(|_| bad(&format!("{side} address {a:?} is not an IP address")))
        };
        let host_addr = if haddr.is_empty() { IpAddr::V4(Ipv4Addr::UNSPECIFIED) } else { addr(haddr, "host")? };
        let guest_addr = if gaddr.is_empty() {
            None
        } else {
            let a = addr(gaddr, "guest")?;
            if let IpAddr::V4(v4) = a {
                if !net.contains(v4) {
                    return Err(bad(&format!("guest address {a} is outside {net}")));
                }
            }
            Some(a)
        };
        Ok(HostFwd { proto, host_addr, host_port: port(hport, "host")?, guest_addr, guest_port: port(gport, "guest")? })
    }
}

impl fmt::Display for HostFwd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            FwdProto::Tcp => "tcp",
            FwdProto::Udp => "udp",
        };
        let host = SocketAddr::new(self.host_addr, self.host_port);
        write!(f, "{proto}:{host}-")?;
        match self.guest_addr {
            Some(g) => write!(f, "{}", SocketAddr::new(g, self.guest_port)),
            None => write!(f, ":{}", self.guest_port),
        }
    }
}

/// Parses `--dns-upstream`: `ADDR` or `ADDR:PORT` (`[V6]:PORT` for IPv6); port 53 by default.
pub fn parse_dns_upstream(s: &str) -> Result<SocketAddr, String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("--dns-upstream {s:?}: expected ADDR or ADDR:PORT"))
}

/// The first `nameserver` line of a resolv.conf text, on port 53.
pub fn first_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    first_nameserver_with(resolv_conf, interface_index)
}

/// [`first_nameserver`] with `index` naming interfaces: a scoped IPv6 address
/// (`fe80::1%eth0`, `fe80::1%2`) keeps its zone as the socket address's scope id; one whose
/// interface does not exist is skipped.
pub fn first_nameserver_with(resolv_conf: &str, index: impl Fn(&str) -> Option<u32>) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            return None;
        }
        let word = words.next()?;
        match word.split_once('%') {
            None => word.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)),
            Some((addr, zone)) => {
                let ip: std::net::Ipv6Addr = addr.parse().ok()?;
                let scope = zone.parse::<u32>().ok().or_else(|| index(zone))?;
                Some(SocketAddr::V6(std::net::SocketAddrV6::new(ip, 53, 0, scope)))
            }
        }
    })
}

/// The index of network interface `name` in this network namespace (from sysfs).
fn interface_index(name: &str) -> Option<u32> {
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex")).ok()?.trim().parse().ok()
}

/// The first nameserver of the resolv.conf at `path`, if it can be read and has one.
pub fn host_nameserver(path: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok().and_then(|s| first_nameserver(&s))
}

/// The resolv.conf a namespace behind slirp should see: a `nameserver` line per DNS alias
/// (IPv4 first, then IPv6 when the guest network has it), with the host's `search`, `domain`
/// and `options` lines kept as they are. The host's own nameservers are dropped: a loopback
/// resolver (systemd-resolved's 127.0.0.53, a local dnsmasq) means nothing inside the
/// namespace, and the aliases forward to the host's resolver anyway.
pub fn namespace_resolv_conf(host_resolv_conf: &str, dns: &[IpAddr]) -> String {
    let mut out = String::from("# written by slirp: the DNS alias, which forwards to the host's resolver\n");
    for a in dns {
        out.push_str(&format!("nameserver {a}\n"));
    }
    for line in host_resolv_conf.lines() {
        let keep = matches!(line.split_whitespace().next(), Some("search" | "domain" | "options"));
        if keep {
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_resolv_conf_names_the_alias_and_keeps_search_and_options() {
        let host = "# Generated by NetworkManager\nnameserver 127.0.0.53\nnameserver 2001:db8::53\n\
                    search corp.example lab.example\n  options edns0 trust-ad\nsortlist 130.155.160.0/255.255.240.0\n";
        let got = namespace_resolv_conf(host, &[IpAddr::V4(Ipv4Addr::new(10, 0, 2, 3))]);
        let lines: Vec<&str> = got.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["nameserver 10.0.2.3", "search corp.example lab.example", "options edns0 trust-ad"]);
        assert_eq!(first_nameserver(&got), Some("10.0.2.3:53".parse().unwrap()));
        let empty = namespace_resolv_conf("", &[IpAddr::V4(Ipv4Addr::new(192, 168, 7, 3))]);
        assert_eq!(empty.lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>(), ["nameserver 192.168.7.3"]);
        let both = namespace_resolv_conf("search x\n", &["10.0.2.3".parse().unwrap(), "fd00::3".parse().unwrap()]);
        let lines: Vec<&str> = both.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(lines, ["nameserver 10.0.2.3", "nameserver fd00::3", "search x"]);
    }

    #[test]
    fn cidr_derives_slirp_addresses() {
        let c = Cidr::parse("10.0.2.0/24").unwrap();
        let cfg = c.apply(Config::default());
        assert_eq!(cfg, Config::default());
        let c = Cidr::parse("192.168.7.0/24").unwrap();
        let cfg = c.apply(Config::default());
        assert_eq!(cfg.gateway, Ipv4Addr::new(192, 168, 7, 2));
        assert_eq!(cfg.dns, Ipv4Addr::new(192, 168, 7, 3));
        assert_eq!(cfg.dhcp_start, Ipv4Addr::new(192, 168, 7, 15));
        assert_eq!(c.guest_address(), Ipv4Addr::new(192, 168, 7, 100));
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn cidr_rejects_nonsense() {
        for bad in ["10.0.2.0", "10.0.2.1/24", "10.0.2.0/33", "10.0.2.0/26", "10.0.2.0/7", "x/24", "10.0.2.0/x"] {
            assert!(Cidr::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn hostfwd_qemu_syntax() {
        let net = Cidr::default();
        let f = HostFwd::parse("tcp::8080-:80", &net).unwrap();
        assert_eq!(
            f,
            HostFwd {
                proto: FwdProto::Tcp,
                host_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                host_port: 8080,
                guest_addr: None,
                guest_port: 80
            }
        );
        let f = HostFwd::parse("udp:127.0.0.1:5353-10.0.2.100:53", &net).unwrap();
        assert_eq!(f.proto, FwdProto::Udp);
        assert_eq!(f.host_addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(f.guest_addr, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 100))));
        assert_eq!(f.to_string(), "udp:127.0.0.1:5353-10.0.2.100:53");
        // QEMU's protocol default is TCP.
        assert_eq!(HostFwd::parse("::2222-:22", &net).unwrap().proto, FwdProto::Tcp);
    }

    #[test]
    fn hostfwd_rejects_nonsense() {
        let net = Cidr::default();
        for bad in [
            "sctp::1-:2",
            "tcp::0-:22",
            "tcp::22-:0",
            "tcp::22",
            "tcp:22-:22",
            "tcp::70000-:22",
            "tcp:1.2.3:22-:22",
            "tcp::22-192.168.1.1:22",
            "tcp",
        ] {
            let e = HostFwd::parse(bad, &net).unwrap_err();
            assert!(e.starts_with("--hostfwd"), "{e}");
        }
    }

    #[test]
    fn dns_upstream_forms() {
        assert_eq!(parse_dns_upstream("198.51.100.1").unwrap(), "198.51.100.1:53".parse().unwrap());
        assert_eq!(parse_dns_upstream("198.51.100.1:5353").unwrap(), "198.51.100.1:5353".parse().unwrap());
        assert_eq!(parse_dns_upstream("2001:db8::1").unwrap(), "[2001:db8::1]:53".parse().unwrap());
        assert!(parse_dns_upstream("dns.example").is_err());
    }

    #[test]
    fn guestfwd_rules_parse() {
        use crate::host::GuestForwardTarget as T;
        let net = Cidr::parse("10.0.2.0/24").unwrap();
        let r = GuestFwd::parse("tcp:10.0.2.100:4321-cmd:nc -q0 198.51.100.1 80", &net).unwrap();
        assert_eq!(r.addr, "10.0.2.100:4321".parse().unwrap());
        assert_eq!(r.target, T::Command("nc -q0 198.51.100.1 80".into()));
        let r = GuestFwd::parse("tcp:10.0.2.100:23-pty:sh -i", &net).unwrap();
        assert_eq!(r.target, T::Pty("sh -i".into()));
        let r = GuestFwd::parse("10.0.2.100:22-unix:/run/x.sock", &net).unwrap();
        assert_eq!(r.target, T::Unix("/run/x.sock".into()));
        let r = GuestFwd::parse("tcp:10.0.2.100:80-tcp:127.0.0.1:8080", &net).unwrap();
        assert_eq!(r.target, T::Tcp("127.0.0.1:8080".parse().unwrap()));
        let r = GuestFwd::parse("tcp:[fd00::64]:80-tcp:[::1]:80", &net).unwrap();
        assert_eq!(r.addr, "[fd00::64]:80".parse().unwrap());
        for bad in [
            "udp:10.0.2.100:1-cmd:x",
            "tcp:10.0.3.100:1-cmd:x",
            "tcp:10.0.2.100:0-cmd:x",
            "tcp:10.0.2.100-cmd:x",
            "tcp:10.0.2.100:1",
            "tcp:10.0.2.100:1-cmd: ",
            "tcp:10.0.2.100:1-chardev:c0",
            "tcp:10.0.2.100:1-tcp:nowhere",
        ] {
            assert!(GuestFwd::parse(bad, &net).is_err(), "{bad}");
        }
    }

    #[test]
    fn resolv_conf_first_nameserver() {
        let text =
            "# comment\nsearch example\nnameserver fe80::1%nosuch0\nnameserver 198.51.100.1\nnameserver 203.0.113.1\n";
        let none = |_: &str| None;
        assert_eq!(first_nameserver_with(text, none), Some("198.51.100.1:53".parse().unwrap()));
        assert_eq!(first_nameserver("search x\n"), None);
        // A zone names the interface the link-local resolver is on.
        let eth0 = |n: &str| (n == "eth0").then_some(7);
        let scoped = "nameserver fe80::1%eth0\nnameserver 198.51.100.1\n";
        assert_eq!(first_nameserver_with(scoped, eth0), Some("[fe80::1%7]:53".parse().unwrap()));
        assert_eq!(first_nameserver_with("nameserver fe80::1%3\n", none), Some("[fe80::1%3]:53".parse().unwrap()));
        assert_eq!(
            first_nameserver_with("nameserver 2001:db8::53\n", none),
            Some("[2001:db8::53]:53".parse().unwrap())
        );
        assert_eq!(first_nameserver_with("nameserver 10.0.0.1%eth0\n", eth0), None, "a zone is IPv6 only");
        // Interfaces that exist here: loopback always does.
        assert_eq!(
            first_nameserver("nameserver fe80::1%lo\n"),
            Some(SocketAddr::V6(std::net::SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 1)))
        );
    }
}
