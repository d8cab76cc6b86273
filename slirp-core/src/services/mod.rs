//! The services the virtual network offers the guest itself: DHCP and DHCPv6, TFTP, and the DNS and host-loopback
//! aliases.

pub(crate) mod aliases;
pub(crate) mod dhcp;
pub(crate) mod dhcp6;
pub mod tftp;
