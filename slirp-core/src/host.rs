//! The seam between the core and the host's networking.
//!
//! The core never opens a socket. Everything it needs from the host (sockets for NAT flows,
//! listeners for forwarded ports, the upstream resolver) goes through [`HostSocket`], implemented
//! by `slirp-std` over nonblocking OS sockets, by `slirp-test-host` over a simulated network, and
//! by embedders over whatever their platform offers. Every call is nonblocking by contract.
//!
//! The link-layer services (ARP, DHCP, ICMP echo to the virtual addresses, IP reassembly) need no
//! host at all; the UDP/ICMP NAT and TCP grow this trait with the socket operations they use.

/// Operations the core asks of the host. See the module documentation.
///
/// All methods have conservative defaults, so an embedder that only wants the virtual services
/// (for example a firmware test rig with no upstream network) can use [`NoHost`].
pub trait HostSocket {}

/// A host with no network: every flow toward the outside is refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHost;

impl HostSocket for NoHost {}
