//! Configuration of one virtual network, with the defaults of the original slirp.

use core::fmt;
use core::net::Ipv4Addr;
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
    /// A lease time, hold time or reassembly timeout is zero.
    Timeout,
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
        Ok(())
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
