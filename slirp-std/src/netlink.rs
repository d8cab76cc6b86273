//! Just enough rtnetlink to configure the guest's interface (`--configure`): look up an
//! interface, set its MTU and MAC address and bring it up, add addresses and default routes;
//! and to find an interface's address on the host side (`--outbound-addr=INTERFACE`).
//!
//! A netlink socket talks to the namespace it was created in, so call these on a thread inside
//! the target namespace (see [`crate::netns::Netns::run_inside`]). Requests are built by hand:
//! four fixed message layouts do not justify a netlink library.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const IFLA_ADDRESS: u16 = 1;
const IFLA_MTU: u16 = 4;
const IFLA_IFNAME: u16 = 3;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;

const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// `IFA_F_NODAD`: the address is usable at once (no duplicate address detection).
const IFA_F_NODAD: u8 = 0x02;
const IFF_UP: u32 = 1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// A route netlink socket in the calling thread's network namespace.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

/// One request under construction: header, fixed part, attributes.
struct Msg(Vec<u8>);

impl Msg {
    fn new(kind: u16, flags: u16, fixed: &[u8]) -> Msg {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in `finish`
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // sequence number, set in `request`
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
        b.extend_from_slice(fixed);
        Msg(b)
    }

    fn attr(mut self, kind: u16, data: &[u8]) -> Msg {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        while self.0.len() & 3 != 0 {
            self.0.push(0);
        }
        self
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

/// The interface address in an `ifaddrmsg`'s attributes: `IFA_LOCAL` if present (it is the
/// local address on point-to-point links), else `IFA_ADDRESS`.
fn address_attr(mut attrs: &[u8], v6: bool) -> Option<IpAddr> {
    let want = if v6 { 16 } else { 4 };
    let (mut local, mut address) = (None, None);
    while attrs.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            break;
        }
        let data = &attrs[4..len];
        if data.len() == want {
            let addr = if v6 {
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(data).expect("16 bytes")))
            } else {
                IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(data).expect("4 bytes")))
            };
            match kind {
                IFA_LOCAL => local = Some(addr),
                IFA_ADDRESS => address = Some(addr),
                _ => {}
            }
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    local.or(address)
}

/// The first address of family IPv4 (`v6` false) or IPv6 of host interface `name`, looked up
/// in the calling thread's network namespace; `Ok(None)` when it has none.
pub fn interface_address(name: &str, v6: bool) -> io::Result<Option<IpAddr>> {
    let mut rtnl = Rtnl::open()?;
    let index = rtnl.link_index(name)?;
    Ok(rtnl.addresses(index, v6)?.into_iter().next())
}

fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

impl Rtnl {
    /// Opens a route netlink socket in the calling thread's namespace.
    pub fn open() -> io::Result<Rtnl> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None, // NETLINK_ROUTE is protocol 0
        )?;
        Ok(Rtnl { fd, seq: 1 })
    }

    /// Sends one request and waits for its answer; returns the first non-error reply message
    /// (header included) if the request produced one.
    fn request(&mut self, msg: Msg) -> io::Result<Option<Vec<u8>>> {
        let seq = self.seq;
        self.seq += 1;
        let mut bytes = msg.finish();
        bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
        rustix::net::send(&self.fd, &bytes, SendFlags::empty())?;
        let mut buf = vec![0u8; 16384];
        let mut reply = None;
        loop {
            let (n, _) = rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty())?;
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let mseq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4 bytes"));
                if len < 16 || off + len > n {
                    return Err(io::Error::other("malformed netlink reply"));
                }
                if mseq == seq {
                    match kind {
                        NLMSG_ERROR if len >= 20 => {
                            let err = i32::from_ne_bytes(buf[off + 16..off + 20].try_into().expect("4 bytes"));
                            if err == 0 {
                                return Ok(reply);
                            }
                            return Err(io::Error::from_raw_os_error(-err));
                        }
                        NLMSG_DONE => return Ok(reply),
                        _ => {
                            if reply.is_none() {
                                reply = Some(buf[off..off + len].to_vec());
                            }
                        }
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }

    /// The index of interface `name`.
    pub fn link_index(&mut self, name: &str) -> io::Result<i32> {
        let mut ifname = name.as_bytes().to_vec();
        ifname.push(0);
        let msg = Msg::new(RTM_GETLINK, NLM_F_ACK, &ifinfomsg(0, 0, 0)).attr(IFLA_IFNAME, &ifname);
        let reply = self
            .request(msg)
            .map_err(|e| io::Error::new(e.kind(), format!("interface {name:?}: {e}")))?
            .ok_or_else(|| io::Error::other(format!("interface {name:?}: no answer")))?;
        if reply.len() < 16 + 16 || u16::from_ne_bytes([reply[4], reply[5]]) != RTM_NEWLINK {
            return Err(io::Error::other(format!("interface {name:?}: bad answer")));
        }
        Ok(i32::from_ne_bytes(reply[20..24].try_into().expect("4 bytes")))
    }

    /// Brings interface `index` up, setting its MTU first when given.
    pub fn set_up(&mut self, index: i32, mtu: Option<u32>) -> io::Result<()> {
        let mut msg = Msg::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(index, IFF_UP, IFF_UP));
        if let Some(mtu) = mtu {
            msg = msg.attr(IFLA_MTU, &mtu.to_ne_bytes());
        }
        self.request(msg).map(|_| ())
    }

    /// Sets the MAC address of interface `index`.
    pub fn set_mac(&mut self, index: i32, mac: [u8; 6]) -> io::Result<()> {
        let msg = Msg::new(RTM_NEWLINK, NLM_F_ACK, &ifinfomsg(index, 0, 0)).attr(IFLA_ADDRESS, &mac);
        self.request(msg).map(|_| ())
    }

    /// The addresses of interface `index` of one family (IPv6: global scope first), in the
    /// kernel's order.
    pub fn addresses(&mut self, index: i32, v6: bool) -> io::Result<Vec<IpAddr>> {
        let seq = self.seq;
        self.seq += 1;
        let fixed = [if v6 { AF_INET6 } else { AF_INET }, 0, 0, 0, 0, 0, 0, 0];
        let mut bytes = Msg::new(RTM_GETADDR, NLM_F_DUMP, &fixed).finish();
        bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
        rustix::net::send(&self.fd, &bytes, SendFlags::empty())?;
        let mut buf = vec![0u8; 32768];
        let mut found: Vec<(u8, IpAddr)> = Vec::new();
        loop {
            let (n, _) = rustix::net::recv(&self.fd, &mut buf[..], RecvFlags::empty())?;
            let n = n.min(buf.len());
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into().expect("4 bytes")) as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                let mseq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into().expect("4 bytes"));
                if len < 16 || off + len > n {
                    return Err(io::Error::other("malformed netlink reply"));
                }
                let msg = &buf[off..off + len];
                off += (len + 3) & !3;
                if mseq != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => {
                        // Global addresses before link-local ones (scope 0 sorts first).
                        found.sort_by_key(|&(scope, _)| scope);
                        return Ok(found.into_iter().map(|(_, a)| a).collect());
                    }
                    NLMSG_ERROR if len >= 20 => {
                        let err = i32::from_ne_bytes(msg[16..20].try_into().expect("4 bytes"));
                        return Err(io::Error::from_raw_os_error(-err));
                    }
                    RTM_NEWADDR if len >= 24 => {
                        let scope = msg[19];
                        let ifindex = i32::from_ne_bytes(msg[20..24].try_into().expect("4 bytes"));
                        if ifindex != index {
                            continue;
                        }
                        if let Some(a) = address_attr(&msg[24..], v6) {
                            found.push((scope, a));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Adds `addr/prefix_len` to interface `index` (an address already present is fine).
    pub fn add_address(&mut self, index: i32, addr: Ipv4Addr, prefix_len: u8) -> io::Result<()> {
        let mut fixed = [0u8; 8];
        fixed[0] = AF_INET;
        fixed[1] = prefix_len;
        fixed[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
        let mask = if prefix_len == 0 { 0 } else { u32::MAX << (32 - u32::from(prefix_len)) };
        let broadcast = Ipv4Addr::from(u32::from(addr) | !mask);
        let msg = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &fixed)
            .attr(IFA_LOCAL, &addr.octets())
            .attr(IFA_ADDRESS, &addr.octets())
            .attr(IFA_BROADCAST, &broadcast.octets());
        match self.request(msg) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Adds IPv6 address `addr`/`prefix_len` to interface `index`, usable at once (no DAD:
    /// the virtual link has no one else on it).
    pub fn add_address6(&mut self, index: i32, addr: Ipv6Addr, prefix_len: u8) -> io::Result<()> {
        let mut fixed = [0u8; 8];
        fixed[0] = AF_INET6;
        fixed[1] = prefix_len;
        fixed[2] = IFA_F_NODAD;
        fixed[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
        let msg = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &fixed)
            .attr(IFA_LOCAL, &addr.octets())
            .attr(IFA_ADDRESS, &addr.octets());
        match self.request(msg) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Adds the IPv6 default route via `gateway` (a link-local address) on interface `index`.
    /// One that exists already (learned from a Router Advertisement) is fine.
    pub fn add_default_route6(&mut self, index: i32, gateway: Ipv6Addr) -> io::Result<()> {
        let fixed = [AF_INET6, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0, 0, 0, 0];
        let msg = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &fixed)
            .attr(RTA_GATEWAY, &gateway.octets())
            .attr(RTA_OIF, &(index as u32).to_ne_bytes());
        match self.request(msg) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// Adds a default route via `gateway` out of interface `index`.
    pub fn add_default_route(&mut self, index: i32, gateway: Ipv4Addr) -> io::Result<()> {
        let fixed = [
            AF_INET,
            0, // dst_len: default route
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ];
        let msg = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &fixed)
            .attr(RTA_GATEWAY, &gateway.octets())
            .attr(RTA_OIF, &(index as u32).to_ne_bytes());
        self.request(msg).map(|_| ()).map_err(|e| {
            if e.raw_os_error() == Some(libc::EEXIST) {
                io::Error::new(e.kind(), "the namespace already has a default route")
            } else {
                e
            }
        })
    }
}

/// What `--configure` does to the guest's interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterfaceSetup {
    /// The guest's address (10.0.2.100 on the default network, as slirp4netns).
    pub address: Ipv4Addr,
    /// Prefix length of the virtual network.
    pub prefix_len: u8,
    /// The default gateway (the virtual router).
    pub gateway: Ipv4Addr,
    /// The interface MTU.
    pub mtu: u16,
    /// IPv6: the guest's address and prefix length, and the router's link-local address for
    /// the default route (`None`: IPv6 off, or left to Router Advertisements).
    pub ipv6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
    /// A MAC address to give the interface (`None`: keep the one the kernel chose).
    pub mac: Option<[u8; 6]>,
}

/// Configures interface `ifname` in the calling thread's namespace: MTU, up, address, default
/// route. With `loopback_up`, also brings `lo` up (for namespaces we created ourselves).
pub fn configure_here(ifname: &str, setup: &InterfaceSetup, loopback_up: bool) -> io::Result<()> {
    let ctx = |what: &'static str| move |e: io::Error| io::Error::new(e.kind(), format!("{what}: {e}"));
    let mut rtnl = Rtnl::open().map_err(ctx("opening netlink"))?;
    if loopback_up {
        let lo = rtnl.link_index("lo")?;
        rtnl.set_up(lo, None).map_err(ctx("bringing lo up"))?;
    }
    let index = rtnl.link_index(ifname)?;
    if let Some(mac) = setup.mac {
        rtnl.set_mac(index, mac).map_err(ctx("setting the MAC address"))?;
    }
    rtnl.set_up(index, Some(u32::from(setup.mtu))).map_err(ctx("setting MTU and bringing the interface up"))?;
    rtnl.add_address(index, setup.address, setup.prefix_len).map_err(ctx("adding the address"))?;
    rtnl.add_default_route(index, setup.gateway).map_err(ctx("adding the default route"))?;
    if let Some((addr, len, router)) = setup.ipv6 {
        rtnl.add_address6(index, addr, len).map_err(ctx("adding the IPv6 address"))?;
        rtnl.add_default_route6(index, router).map_err(ctx("adding the IPv6 default route"))?;
    }
    Ok(())
}
