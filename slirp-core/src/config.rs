//! Configuration of one virtual network, with the defaults of the original slirp.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;

/// Largest MTU toward the guest (the same limit as slirp4netns and pasta: 65520 keeps a frame
/// plus headers inside 64 KiB).
pub const MAX_MTU: u16 = 65520;
/// Smallest MTU we accept. RFC 791 requires every host to take 576-byte datagrams, and our ICMP
/// errors and DHCP replies are sized so they never need fragmenting at that size.
pub const MIN_MTU: u16 = 576;
/// Number of addresses in the DHCP pool (and of lease slots).
pub const DHCP_POOL_SIZE: usize = 16;
/// Longest host name (DHCP option 12) we hand out.
pub const MAX_HOSTNAME_LEN: usize = 32;
/// Longest domain name (DHCP option 15) we hand out.
pub const MAX_DOMAIN_LEN: usize = 64;
/// Longest domain search list (comma-separated names) we hand out.
pub const MAX_SEARCH_LEN: usize = 256;
/// Longest boot file name (the BOOTP `file` field holds 127 bytes and a NUL).
pub const MAX_BOOTFILE_LEN: usize = 127;
/// Longest TFTP server name (the BOOTP `sname` field holds 63 bytes and a NUL).
pub const MAX_TFTP_SERVER_NAME_LEN: usize = 63;

/// Number of addresses in the DHCPv6 pool (stateful DHCPv6 leases).
pub const DHCPV6_POOL_SIZE: usize = 16;

/// The IPv6 side of the virtual network (off unless [`enabled`](Self::enabled)).
///
/// `Ipv6Config::default()` is slirp4netns's `--enable-ipv6` network: prefix `fd00::/64`, router
/// (and host alias) `fd00::2`, DNS alias `fd00::3`; [`Ipv6Config::libslirp`] is QEMU's
/// (`fec0::/64`). The router and DNS alias also answer at `fe80::2` and `fe80::3`. Guests
/// configure themselves from Router Advertisements (SLAAC, RDNSS) or by DHCPv6, whose pool is
/// [`DHCPV6_POOL_SIZE`] addresses from [`dhcp_start`](Self::dhcp_start).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv6Config {
    /// Whether the guest network speaks IPv6 at all (IPv6 frames are dropped otherwise).
    pub enabled: bool,
    /// The guest prefix (host bits zero); only /64 lets guests use SLAAC.
    pub prefix: Ipv6Addr,
    /// Prefix length, 48..=120 (64 for SLAAC).
    pub prefix_len: u8,
    /// The virtual router, DHCPv6 server and host alias (its port N reaches the host's `[::1]:N`).
    pub gateway: Ipv6Addr,
    /// The DNS alias.
    pub dns: Ipv6Addr,
    /// First address of the DHCPv6 pool.
    pub dhcp_start: Ipv6Addr,
    /// Answer DHCPv6 with addresses (stateful), not only with DNS settings (stateless).
    pub dhcp_stateful: bool,
    /// Interval between unsolicited Router Advertisements (RFC 4861 MaxRtrAdvInterval).
    pub ra_interval: Duration,
}

impl Default for Ipv6Config {
    fn default() -> Self {
        Ipv6Config::with_prefix(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0), 64)
    }
}

impl Ipv6Config {
    /// The network of prefix `prefix`/`prefix_len` with the conventional addresses: router ::2,
    /// DNS ::3, DHCPv6 pool from ::200. Not enabled: set [`enabled`](Self::enabled).
    pub fn with_prefix(prefix: Ipv6Addr, prefix_len: u8) -> Self {
        let at = |n: u128| Ipv6Addr::from(u128::from(prefix) | n);
        Ipv6Config {
            enabled: false,
            prefix,
            prefix_len,
            gateway: at(2),
            dns: at(3),
            dhcp_start: at(0x200),
            dhcp_stateful: true,
            ra_interval: Duration::from_secs(200),
        }
    }

    /// libslirp's (QEMU `-netdev user,ipv6=on`) network: `fec0::/64`, router `fec0::2`, DNS
    /// `fec0::3`. Enabled.
    pub fn libslirp() -> Self {
        Ipv6Config { enabled: true, ..Ipv6Config::with_prefix(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 64) }
    }

    fn mask(&self) -> u128 {
        match self.prefix_len {
            0 => 0,
            n if n >= 128 => u128::MAX,
            n => u128::MAX << (128 - n),
        }
    }

    /// Whether `addr` lies inside the guest prefix.
    pub fn in_prefix(&self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & self.mask() == u128::from(self.prefix)
    }

    /// The router's link-local address (`fe80::2`): the source of Router Advertisements.
    pub const LINK_LOCAL_GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
    /// The DNS alias's link-local address (`fe80::3`).
    pub const LINK_LOCAL_DNS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3);

    /// Whether `addr` is one of the router's addresses (global or link-local).
    pub fn is_gateway(&self, addr: Ipv6Addr) -> bool {
        addr == self.gateway || addr == Self::LINK_LOCAL_GATEWAY
    }

    /// Whether `addr` is one of the DNS alias's addresses (global or link-local).
    pub fn is_dns(&self, addr: Ipv6Addr) -> bool {
        addr == self.dns || addr == Self::LINK_LOCAL_DNS
    }

    /// The `index`th address of the DHCPv6 pool.
    pub fn dhcp_addr(&self, index: usize) -> Option<Ipv6Addr> {
        if index >= DHCPV6_POOL_SIZE {
            return None;
        }
        u128::from(self.dhcp_start).checked_add(index as u128).map(Ipv6Addr::from)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled {
            return Ok(());
        }
        if !(48..=120).contains(&self.prefix_len) {
            return Err(ConfigError::Ipv6Prefix);
        }
        if u128::from(self.prefix) & !self.mask() != 0 {
            return Err(ConfigError::Ipv6Prefix);
        }
        let host = |a: Ipv6Addr| self.in_prefix(a) && a != self.prefix;
        let last = self.dhcp_addr(DHCPV6_POOL_SIZE - 1).ok_or(ConfigError::Ipv6Address)?;
        if !host(self.gateway) || !host(self.dns) || !host(self.dhcp_start) || !host(last) {
            return Err(ConfigError::Ipv6Address);
        }
        let in_pool = |a: Ipv6Addr| (u128::from(self.dhcp_start)..=u128::from(last)).contains(&u128::from(a));
        if self.gateway == self.dns || in_pool(self.gateway) || in_pool(self.dns) {
            return Err(ConfigError::AddressConflict);
        }
        if self.ra_interval < Duration::from_secs(4) || self.ra_interval > Duration::from_secs(1800) {
            return Err(ConfigError::Timeout);
        }
        Ok(())
    }
}

/// Everything that defines the virtual network the guest sees.
///
/// `Config::default()` is the classic slirp network: 10.0.2.0/24, gateway and host alias 10.0.2.2,
/// DNS alias 10.0.2.3, DHCP pool 10.0.2.15-10.0.2.30, MTU 1500. Call [`Config::validate`] (the
/// engine's constructor does) to get a typed error instead of a misbehaving network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Network address of the virtual subnet (host bits must be zero).
    pub network: Ipv4Addr,
    /// Prefix length of the virtual subnet, 8..=30.
    pub prefix_len: u8,
    /// Address of the virtual router, DHCP server and host alias.
    pub gateway: Ipv4Addr,
    /// Address of the DNS alias.
    pub dns: Ipv4Addr,
    /// First address of the 16-address DHCP pool.
    pub dhcp_start: Ipv4Addr,
    /// MTU of the guest link, [`MIN_MTU`]..=[`MAX_MTU`].
    pub mtu: u16,
    /// Isolate the guest: only the virtual services and configured forwards are reachable, and
    /// DHCP offers no router or DNS server.
    pub restricted: bool,
    /// Do not map the gateway alias to the host's loopback.
    pub disable_host_loopback: bool,
    /// Do not answer DHCP (requests are still consumed, never forwarded).
    pub disable_dhcp: bool,
    /// Host name offered to the guest (DHCP option 12).
    pub hostname: Option<heapless::String<MAX_HOSTNAME_LEN>>,
    /// Domain name offered to the guest (DHCP option 15).
    pub domain: Option<heapless::String<MAX_DOMAIN_LEN>>,
    /// DHCP lease time.
    pub lease_time: Duration,
    /// How long a packet for a guest whose MAC we don't know waits for the ARP answer.
    pub arp_hold_timeout: Duration,
    /// How long an incomplete set of IP fragments is kept.
    pub reassembly_timeout: Duration,
    /// TCP settings (RTO bounds, delayed ACK, options, timeouts). Its `mtu` is ignored: the
    /// guest link's [`mtu`](Self::mtu) rules.
    pub tcp: crate::tcp::TcpConfig,
    /// The IPv6 side of the network (off by default).
    pub ipv6: Ipv6Config,
    /// Domain search list offered to the guest: DHCP option 119 (compressed, RFC 3397), DNSSL
    /// in Router Advertisements and the DHCPv6 domain list. Names separated by commas or
    /// spaces; invalid names are left out.
    pub search: Option<heapless::String<MAX_SEARCH_LEN>>,
    /// Boot file offered by DHCP (the `file` field and option 67), for PXE and BOOTP clients:
    /// QEMU's `bootfile=`.
    pub bootfile: Option<heapless::String<MAX_BOOTFILE_LEN>>,
    /// TFTP server name offered by DHCP (option 66 and the `sname` field): QEMU's
    /// `tftp-server-name=`. The boot server's address is the gateway (`siaddr`) either way.
    pub tftp_server_name: Option<heapless::String<MAX_TFTP_SERVER_NAME_LEN>>,
    /// Serve TFTP on the gateway's port 69 (read-only; files from
    /// [`HostSocket::tftp_open`](crate::HostSocket::tftp_open)): QEMU's `tftp=`. Off: port 69
    /// of the gateway is the host loopback's, like any other.
    pub tftp: bool,
    /// Record structured trace events for [`Slirp::poll_trace`](crate::Slirp::poll_trace)
    /// (see [`crate::trace`]). Off: one branch per site.
    pub trace: bool,
    /// Secret that keys the flow tables' hashes (and, later, TCP initial sequence numbers). Give
    /// each instance a random value so a guest cannot predict hash collisions.
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            network: Ipv4Addr::new(10, 0, 2, 0),
            prefix_len: 24,
            gateway: Ipv4Addr::new(10, 0, 2, 2),
            dns: Ipv4Addr::new(10, 0, 2, 3),
            dhcp_start: Ipv4Addr::new(10, 0, 2, 15),
            mtu: 1500,
            restricted: false,
            disable_host_loopback: false,
            disable_dhcp: false,
            hostname: None,
            domain: None,
            lease_time: Duration::from_secs(24 * 3600),
            arp_hold_timeout: Duration::from_secs(1),
            reassembly_timeout: Duration::from_secs(30),
            tcp: crate::tcp::TcpConfig::default(),
            ipv6: Ipv6Config::default(),
            search: None,
            bootfile: None,
            tftp_server_name: None,
            tftp: false,
            trace: false,
            seed: 0x736c_6972_705f_7365,
        }
    }
}

/// Why a [`Config`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConfigError {
    /// The prefix length is outside 8..=30.
    PrefixLen,
    /// The network address has host bits set.
    NetworkHostBits,
    /// The gateway is not a host address inside the subnet.
    GatewayOutsideNetwork,
    /// The DNS alias is not a host address inside the subnet.
    DnsOutsideNetwork,
    /// The DHCP pool does not fit inside the subnet's host addresses.
    DhcpPoolOutsideNetwork,
    /// Gateway, DNS alias and DHCP pool overlap.
    AddressConflict,
    /// The MTU is outside [`MIN_MTU`]..=[`MAX_MTU`].
    Mtu,
    /// A lease time, hold time or reassembly timeout is zero (or the RA interval is outside
    /// 4..=1800 s).
    Timeout,
    /// The IPv6 prefix length is outside 48..=120 or the prefix has host bits set.
    Ipv6Prefix,
    /// An IPv6 router, DNS or DHCPv6 pool address is not a host address inside the prefix.
    Ipv6Address,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ConfigError::PrefixLen => "prefix length must be between 8 and 30",
            ConfigError::NetworkHostBits => "network address has host bits set",
            ConfigError::GatewayOutsideNetwork => "gateway address is not a host in the network",
            ConfigError::DnsOutsideNetwork => "DNS address is not a host in the network",
            ConfigError::DhcpPoolOutsideNetwork => "DHCP pool (16 addresses) does not fit in the network",
            ConfigError::AddressConflict => "gateway, DNS and DHCP pool addresses overlap",
            ConfigError::Mtu => "MTU must be between 576 and 65520",
            ConfigError::Timeout => "timeouts must be non-zero",
            ConfigError::Ipv6Prefix => "IPv6 prefix length must be between 48 and 120, with no host bits set",
            ConfigError::Ipv6Address => "IPv6 router, DNS and DHCPv6 pool addresses must be hosts in the prefix",
        };
        f.write_str(s)
    }
}

impl core::error::Error for ConfigError {}

impl Config {
    /// The subnet mask.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask_bits())
    }

    fn mask_bits(&self) -> u32 {
        match self.prefix_len {
            0 => 0,
            n if n >= 32 => u32::MAX,
            n => u32::MAX << (32 - n),
        }
    }

    /// The subnet's directed broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !self.mask_bits())
    }

    /// Whether `addr` lies inside the virtual subnet (network and broadcast included).
    pub fn in_network(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask_bits() == u32::from(self.network)
    }

    /// Whether `addr` is a usable host address of the subnet (not network, not broadcast).
    pub fn is_host(&self, addr: Ipv4Addr) -> bool {
        self.in_network(addr) && addr != self.network && addr != self.broadcast()
    }

    /// The `index`th address of the DHCP pool, if `index` < [`DHCP_POOL_SIZE`].
    pub fn dhcp_addr(&self, index: usize) -> Option<Ipv4Addr> {
        if index >= DHCP_POOL_SIZE {
            return None;
        }
        u32::from(self.dhcp_start).checked_add(index as u32).map(Ipv4Addr::from)
    }

    /// The pool index of `addr`, if it is one of the DHCP pool's addresses.
    pub fn dhcp_index(&self, addr: Ipv4Addr) -> Option<usize> {
        let off = u32::from(addr).checked_sub(u32::from(self.dhcp_start))? as usize;
        (off < DHCP_POOL_SIZE).then_some(off)
    }

    /// Checks every invariant the engine relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(8..=30).contains(&self.prefix_len) {
            return Err(ConfigError::PrefixLen);
        }
        if u32::from(self.network) & !self.mask_bits() != 0 {
            return Err(ConfigError::NetworkHostBits);
        }
        if !self.is_host(self.gateway) {
            return Err(ConfigError::GatewayOutsideNetwork);
        }
        if !self.is_host(self.dns) {
            return Err(ConfigError::DnsOutsideNetwork);
        }
        let last = self.dhcp_addr(DHCP_POOL_SIZE - 1).ok_or(ConfigError::DhcpPoolOutsideNetwork)?;
        if !self.is_host(self.dhcp_start) || !self.is_host(last) {
            return Err(ConfigError::DhcpPoolOutsideNetwork);
        }
        if self.gateway == self.dns || self.dhcp_index(self.gateway).is_some() || self.dhcp_index(self.dns).is_some() {
            return Err(ConfigError::AddressConflict);
        }
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return Err(ConfigError::Mtu);
        }
        if self.lease_time.is_zero() || self.arp_hold_timeout.is_zero() || self.reassembly_timeout.is_zero() {
            return Err(ConfigError::Timeout);
        }
        self.ipv6.validate()
    }

    /// Whether `addr` is the router (gateway) address of its family.
    pub fn is_gateway(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => a == self.gateway,
            IpAddr::V6(a) => self.ipv6.enabled && self.ipv6.is_gateway(a),
        }
    }

    /// Whether `addr` is the DNS alias of its family.
    pub fn is_dns(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => a == self.dns,
            IpAddr::V6(a) => self.ipv6.enabled && self.ipv6.is_dns(a),
        }
    }

    /// The gateway address of the family of `like`.
    pub fn gateway_for(&self, like: IpAddr) -> IpAddr {
        match like {
            IpAddr::V4(_) => IpAddr::V4(self.gateway),
            IpAddr::V6(_) => IpAddr::V6(self.ipv6.gateway),
        }
    }

    /// The DNS alias of the family of `like`.
    pub fn dns_for(&self, like: IpAddr) -> IpAddr {
        match like {
            IpAddr::V4(_) => IpAddr::V4(self.dns),
            IpAddr::V6(_) => IpAddr::V6(self.ipv6.dns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_classic_network_and_valid() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 0, 2, 255));
        assert_eq!(c.dhcp_addr(0), Some(Ipv4Addr::new(10, 0, 2, 15)));
        assert_eq!(c.dhcp_addr(15), Some(Ipv4Addr::new(10, 0, 2, 30)));
        assert_eq!(c.dhcp_addr(16), None);
        assert_eq!(c.dhcp_index(Ipv4Addr::new(10, 0, 2, 20)), Some(5));
        assert_eq!(c.dhcp_index(Ipv4Addr::new(10, 0, 2, 31)), None);
        assert_eq!(c.dhcp_index(Ipv4Addr::new(10, 0, 2, 1)), None);
        assert!(c.in_network(Ipv4Addr::new(10, 0, 2, 255)));
        assert!(!c.is_host(Ipv4Addr::new(10, 0, 2, 255)));
        assert!(!c.in_network(Ipv4Addr::new(10, 0, 3, 1)));
    }

    #[test]
    fn bad_configs_are_typed_errors() {
        let ok = Config::default();
        let cases: [(Config, ConfigError); 9] = [
            (Config { prefix_len: 31, ..ok.clone() }, ConfigError::PrefixLen),
            (Config { network: Ipv4Addr::new(10, 0, 2, 1), ..ok.clone() }, ConfigError::NetworkHostBits),
            (Config { gateway: Ipv4Addr::new(10, 0, 3, 2), ..ok.clone() }, ConfigError::GatewayOutsideNetwork),
            (Config { dns: Ipv4Addr::new(10, 0, 2, 255), ..ok.clone() }, ConfigError::DnsOutsideNetwork),
            (Config { dhcp_start: Ipv4Addr::new(10, 0, 2, 250), ..ok.clone() }, ConfigError::DhcpPoolOutsideNetwork),
            (Config { dns: ok.gateway, ..ok.clone() }, ConfigError::AddressConflict),
            (Config { dns: Ipv4Addr::new(10, 0, 2, 16), ..ok.clone() }, ConfigError::AddressConflict),
            (Config { mtu: 65521, ..ok.clone() }, ConfigError::Mtu),
            (Config { lease_time: Duration::ZERO, ..ok.clone() }, ConfigError::Timeout),
        ];
        for (cfg, err) in cases {
            assert_eq!(cfg.validate(), Err(err), "{cfg:?}");
        }
        assert_eq!(Config { mtu: 65520, ..ok.clone() }.validate(), Ok(()));
        assert_eq!(Config { mtu: 575, ..ok }.validate(), Err(ConfigError::Mtu));
    }
}
