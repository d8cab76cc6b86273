//! The guest: an independent TCP/IP stack (smoltcp) that drives the core the way a VM would.

use std::collections::VecDeque;

use core::net::{SocketAddr, SocketAddrV4};
use slirp_core::Instant;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};

use smoltcp::socket::{dhcpv4, dns, icmp, tcp, udp, AnySocket};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address,
    Ipv6Cidr,
};

use crate::clock::{from_smol, to_smol};

/// The guest's MAC address.
pub const GUEST_MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);

/// Largest Ethernet frame the guest sends or accepts (1500-byte MTU plus the 14-byte header).
pub const GUEST_FRAME_MAX: usize = 1514;

/// Bytes of ICMP payload (headers included) the ping socket can hold in each direction.
const PING_BUFFER_BYTES: usize = 32 * 1024;
/// Echo messages the ping socket can hold in each direction.
const PING_BUFFER_PACKETS: usize = 16;

/// The guest's network card: two frame queues the simulation fills and empties.
#[derive(Debug, Default)]
struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
}

impl Device for QueueDevice {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _timestamp: smoltcp::time::Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken { frame }, TxToken { tx: &mut self.tx }))
    }

    fn transmit(&mut self, _timestamp: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        Some(TxToken { tx: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = GUEST_FRAME_MAX;
        // Compute and verify every checksum: corrupted frames from the core must be caught here.
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}

struct RxToken {
    frame: Vec<u8>,
}

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.frame)
    }
}

struct TxToken<'a> {
    tx: &'a mut VecDeque<Vec<u8>>,
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let result = f(&mut frame);
        self.tx.push_back(frame);
        result
    }
}

/// The network configuration the guest took from a DHCP ACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpLease {
    /// The guest's address and prefix.
    pub address: Ipv4Cidr,
    /// The default gateway, if the server named one.
    pub router: Option<Ipv4Address>,
    /// DNS servers, in the server's order.
    pub dns_servers: Vec<Ipv4Address>,
    /// The server that granted the lease.
    pub server: Ipv4Address,
}

/// An ICMP echo reply the guest received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoReply {
    /// Who answered.
    pub from: Ipv4Address,
    /// Identifier of the echo (the guest's ping socket's).
    pub ident: u16,
    /// Sequence number of the echo.
    pub seq_no: u16,
    /// The echoed payload.
    pub payload: Vec<u8>,
}

/// Why an echo request could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingError {
    /// The ping socket's send buffer is full (poll the simulation and retry).
    BufferFull,
    /// The payload does not fit the ping socket's buffer at all.
    TooLarge,
}

impl core::fmt::Display for PingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PingError::BufferFull => f.write_str("ping send buffer full"),
            PingError::TooLarge => f.write_str("ping payload larger than the socket buffer"),
        }
    }
}

impl std::error::Error for PingError {}

/// A smoltcp guest (MAC [`GUEST_MAC`]) whose frames are carried by the simulation.
///
/// The simulation pushes frames into its receive queue ([`SmolGuest::push_rx`]), calls
/// [`SmolGuest::poll`], and takes what it sent ([`SmolGuest::pop_tx`]). The guest starts with no
/// address; [`SmolGuest::start_dhcp`] makes it ask for one and apply the lease by itself. Other
/// sockets (UDP, TCP) can be added with [`SmolGuest::add_socket`] and reached with
/// [`SmolGuest::socket_mut`].
pub struct SmolGuest {
    iface: Interface,
    device: QueueDevice,
    sockets: SocketSet<'static>,
    dhcp: Option<SocketHandle>,
    lease: Option<DhcpLease>,
    leases_applied: u32,
    ping: Option<(SocketHandle, u16)>,
    dns: Option<SocketHandle>,
}

impl core::fmt::Debug for SmolGuest {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SmolGuest")
            .field("addresses", &self.iface.ip_addrs())
            .field("lease", &self.lease)
            .field("rx_pending", &self.device.rx.len())
            .field("tx_pending", &self.device.tx.len())
            .finish_non_exhaustive()
    }
}

impl SmolGuest {
    /// A guest with no address yet. `seed` feeds smoltcp's own randomness (DHCP transaction ids,
    /// TCP initial sequence numbers, ports), so the same seed gives the same frames.
    pub fn new(seed: u64, now: Instant) -> SmolGuest {
        let mut device = QueueDevice::default();
        let mut config = IfaceConfig::new(HardwareAddress::Ethernet(GUEST_MAC));
        config.random_seed = seed;
        let iface = Interface::new(config, &mut device, to_smol(now));
        SmolGuest {
            iface,
            device,
            sockets: SocketSet::new(Vec::new()),
            dhcp: None,
            lease: None,
            leases_applied: 0,
            ping: None,
            dns: None,
        }
    }

    /// The guest's MAC address.
    pub fn mac(&self) -> EthernetAddress {
        GUEST_MAC
    }

    /// The smoltcp interface (addresses, routes).
    pub fn iface(&self) -> &Interface {
        &self.iface
    }

    /// The smoltcp interface, to configure it by hand (static address, routes).
    pub fn iface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    /// Gives the guest a static address and optional default gateway, as `ip addr add` would.
    pub fn set_static_address(&mut self, address: Ipv4Cidr, router: Option<Ipv4Address>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            // The interface holds at least one address: pushing into an empty list succeeds.
            let _ = addrs.push(IpCidr::Ipv4(address));
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(router) = router {
            let _ = self.iface.routes_mut().add_default_ipv4_route(router);
        }
    }

    /// The guest's IPv4 address, once it has one.
    pub fn ipv4_addr(&self) -> Option<Ipv4Address> {
        self.iface.ipv4_addr()
    }

    /// Starts a DHCP client; its lease is applied to the interface as soon as it arrives.
    /// Calling it again restarts the client.
    pub fn start_dhcp(&mut self) -> SocketHandle {
        if let Some(handle) = self.dhcp {
            self.sockets.get_mut::<dhcpv4::Socket>(handle).reset();
            return handle;
        }
        let handle = self.sockets.add(dhcpv4::Socket::new());
        self.dhcp = Some(handle);
        handle
    }

    /// The lease in force, if DHCP configured the guest.
    pub fn lease(&self) -> Option<&DhcpLease> {
        self.lease.as_ref()
    }

    /// How many times a lease (new or changed) was applied.
    pub fn leases_applied(&self) -> u32 {
        self.leases_applied
    }

    /// Adds any smoltcp socket (UDP, TCP, ...) and returns its handle.
    pub fn add_socket<T: AnySocket<'static>>(&mut self, socket: T) -> SocketHandle {
        self.sockets.add(socket)
    }

    /// A socket added with [`SmolGuest::add_socket`].
    ///
    /// # Panics
    /// If `handle` is not a socket of type `T` in this guest (a bug in the test).
    pub fn socket_mut<T: AnySocket<'static>>(&mut self, handle: SocketHandle) -> &mut T {
        self.sockets.get_mut::<T>(handle)
    }

    /// Adds a UDP socket bound to `port` with room for `buffer_bytes` of payload each way (and
    /// one datagram per 64 bytes of it, at least 64). Big datagrams need a buffer at least as big.
    ///
    /// # Panics
    /// If `port` is 0 (smoltcp cannot pick a port for a UDP socket).
    pub fn udp_bind(&mut self, port: u16, buffer_bytes: usize) -> SocketHandle {
        let packets = (buffer_bytes / 64).max(64);
        let buffer = || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; packets], vec![0; buffer_bytes]);
        let mut socket = udp::Socket::new(buffer(), buffer());
        socket.bind(port).expect("a nonzero port binds");
        self.sockets.add(socket)
    }

    /// Queues a datagram on UDP socket `handle` toward `dst`; it leaves on the next poll.
    pub fn udp_send(&mut self, handle: SocketHandle, dst: SocketAddrV4, data: &[u8]) -> Result<(), udp::SendError> {
        let endpoint = (IpAddress::Ipv4(*dst.ip()), dst.port());
        self.sockets.get_mut::<udp::Socket>(handle).send_slice(data, endpoint)
    }

    /// Takes the next datagram UDP socket `handle` received: (sender, bytes). For IPv4 sockets:
    /// a datagram from an IPv6 sender is taken and skipped (see [`SmolGuest::udp_recv_any`]).
    pub fn udp_recv(&mut self, handle: SocketHandle) -> Option<(SocketAddrV4, Vec<u8>)> {
        loop {
            match self.udp_recv_any(handle)? {
                (SocketAddr::V4(from), data) => return Some((from, data)),
                (SocketAddr::V6(_), _) => continue,
            }
        }
    }

    /// Queues a datagram on UDP socket `handle` toward `dst` of either family.
    pub fn udp_send_any(&mut self, handle: SocketHandle, dst: SocketAddr, data: &[u8]) -> Result<(), udp::SendError> {
        let endpoint = (IpAddress::from(dst.ip()), dst.port());
        self.sockets.get_mut::<udp::Socket>(handle).send_slice(data, endpoint)
    }

    /// Takes the next datagram UDP socket `handle` received, from a sender of either family.
    pub fn udp_recv_any(&mut self, handle: SocketHandle) -> Option<(SocketAddr, Vec<u8>)> {
        let (data, meta) = self.sockets.get_mut::<udp::Socket>(handle).recv().ok()?;
        let ip: core::net::IpAddr = meta.endpoint.addr.into();
        Some((SocketAddr::new(ip, meta.endpoint.port), data.to_vec()))
    }

    /// Gives the guest an IPv6 address (next to its IPv4 one) and a default IPv6 route via
    /// `router` (usually the router's link-local `fe80::2`), as `ip -6 addr add` and `ip -6
    /// route add default` would. The router's MAC is found by neighbor discovery.
    pub fn set_ipv6_address(&mut self, address: Ipv6Cidr, router: Ipv6Address) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.retain(|a| !matches!(a, IpCidr::Ipv6(_)));
            let _ = addrs.push(IpCidr::Ipv6(address));
        });
        self.iface.routes_mut().remove_default_ipv6_route();
        let _ = self.iface.routes_mut().add_default_ipv6_route(router);
    }

    /// [`SmolGuest::tcp_connect`] to a destination of either family.
    pub fn tcp_connect_any(&mut self, dst: SocketAddr, local_port: u16, buffer_bytes: usize) -> SocketHandle {
        let mut socket = Self::tcp_socket(buffer_bytes);
        socket
            .connect(self.iface.context(), (IpAddress::from(dst.ip()), dst.port()), local_port)
            .expect("connect starts");
        self.sockets.add(socket)
    }

    /// Opens a TCP connection from local port `local_port` to `dst` with `buffer_bytes` of send
    /// and receive buffer (window scaling follows from the size). The handshake runs on the next
    /// polls; watch the socket's state with [`SmolGuest::socket_mut`].
    ///
    /// # Panics
    /// If smoltcp refuses the connect (port 0, no address yet): a bug in the test.
    pub fn tcp_connect(&mut self, dst: SocketAddrV4, local_port: u16, buffer_bytes: usize) -> SocketHandle {
        let mut socket = Self::tcp_socket(buffer_bytes);
        socket
            .connect(self.iface.context(), (IpAddress::Ipv4(*dst.ip()), dst.port()), local_port)
            .expect("connect starts");
        self.sockets.add(socket)
    }

    /// A TCP socket listening on `port` with `buffer_bytes` each way.
    ///
    /// # Panics
    /// If `port` is 0.
    pub fn tcp_listen(&mut self, port: u16, buffer_bytes: usize) -> SocketHandle {
        let mut socket = Self::tcp_socket(buffer_bytes);
        socket.listen(port).expect("a nonzero port listens");
        self.sockets.add(socket)
    }

    /// Removes a socket (a closed TCP socket, say) from the guest.
    pub fn remove_socket(&mut self, handle: SocketHandle) {
        self.sockets.remove(handle);
    }

    fn tcp_socket(buffer_bytes: usize) -> tcp::Socket<'static> {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; buffer_bytes]),
            tcp::SocketBuffer::new(vec![0; buffer_bytes]),
        );
        // Nagle would hold back the small writes of interactive tests.
        socket.set_nagle_enabled(false);
        socket
    }

    /// Starts resolving `name` (type A) with the resolvers of the lease, or `servers` if given;
    /// the first call creates the guest's DNS socket (later calls reuse it and its servers).
    pub fn dns_start(&mut self, name: &str, servers: &[Ipv4Address]) -> Result<dns::QueryHandle, dns::StartQueryError> {
        let handle = match self.dns {
            Some(h) => h,
            None => {
                let list: Vec<IpAddress> = if servers.is_empty() {
                    self.lease.iter().flat_map(|l| l.dns_servers.iter()).map(|&a| IpAddress::Ipv4(a)).collect()
                } else {
                    servers.iter().map(|&a| IpAddress::Ipv4(a)).collect()
                };
                let h = self.sockets.add(dns::Socket::new(&list, (0..4).map(|_| None).collect::<Vec<_>>()));
                self.dns = Some(h);
                h
            }
        };
        let socket = self.sockets.get_mut::<dns::Socket>(handle);
        socket.start_query(self.iface.context(), name, smoltcp::wire::DnsQueryType::A)
    }

    /// The result of a query started with [`SmolGuest::dns_start`]: `None` while pending, then
    /// the addresses or the failure (the query's slot is freed once a result is returned).
    pub fn dns_result(
        &mut self,
        query: dns::QueryHandle,
    ) -> Option<Result<Vec<Ipv4Address>, dns::GetQueryResultError>> {
        let handle = self.dns?;
        match self.sockets.get_mut::<dns::Socket>(handle).get_query_result(query) {
            Err(dns::GetQueryResultError::Pending) => None,
            Err(e) => Some(Err(e)),
            Ok(addrs) => Some(Ok(addrs
                .iter()
                .filter_map(|a| match a {
                    IpAddress::Ipv4(v4) => Some(*v4),
                    IpAddress::Ipv6(_) => None,
                })
                .collect())),
        }
    }

    /// The ping socket's identifier, creating the socket with `ident` on first use.
    fn ping_socket(&mut self, ident: u16) -> SocketHandle {
        match self.ping {
            Some((handle, old)) if old == ident => handle,
            previous => {
                if let Some((handle, _)) = previous {
                    self.sockets.remove(handle);
                }
                let buffer = || {
                    icmp::PacketBuffer::new(
                        vec![icmp::PacketMetadata::EMPTY; PING_BUFFER_PACKETS],
                        vec![0; PING_BUFFER_BYTES],
                    )
                };
                let mut socket = icmp::Socket::new(buffer(), buffer());
                // A fresh socket is unbound, so binding a nonzero ident cannot fail.
                let _ = socket.bind(icmp::Endpoint::Ident(ident));
                let handle = self.sockets.add(socket);
                self.ping = Some((handle, ident));
                handle
            }
        }
    }

    /// Queues an ICMP echo request to `dst` with identifier `ident` (the ping socket is bound to
    /// the last identifier used), sequence `seq_no` and `payload`. It leaves on the next poll.
    pub fn send_ping(&mut self, dst: Ipv4Address, ident: u16, seq_no: u16, payload: &[u8]) -> Result<(), PingError> {
        let handle = self.ping_socket(ident);
        let socket = self.sockets.get_mut::<icmp::Socket>(handle);
        let repr = Icmpv4Repr::EchoRequest { ident, seq_no, data: payload };
        if repr.buffer_len() > socket.payload_send_capacity() {
            return Err(PingError::TooLarge);
        }
        let buf = socket.send(repr.buffer_len(), IpAddress::Ipv4(dst)).map_err(|_| PingError::BufferFull)?;
        let mut packet = Icmpv4Packet::new_unchecked(buf);
        repr.emit(&mut packet, &ChecksumCapabilities::default());
        Ok(())
    }

    /// Takes the next echo reply the ping socket received (other ICMP messages are skipped).
    pub fn recv_ping(&mut self) -> Option<EchoReply> {
        let (handle, _) = self.ping?;
        let socket = self.sockets.get_mut::<icmp::Socket>(handle);
        while socket.can_recv() {
            let Ok((bytes, IpAddress::Ipv4(from))) = socket.recv() else {
                continue;
            };
            let Ok(packet) = Icmpv4Packet::new_checked(bytes) else {
                continue;
            };
            if let Ok(Icmpv4Repr::EchoReply { ident, seq_no, data }) =
                Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
            {
                return Some(EchoReply { from, ident, seq_no, payload: data.to_vec() });
            }
        }
        None
    }

    /// Hands the guest a frame that arrived from the link.
    pub fn push_rx(&mut self, frame: Vec<u8>) {
        self.device.rx.push_back(frame);
    }

    /// Frames received but not yet processed by smoltcp (they occupy the guest's RX ring).
    pub fn rx_pending(&self) -> usize {
        self.device.rx.len()
    }

    /// Takes the next frame the guest transmitted.
    pub fn pop_tx(&mut self) -> Option<Vec<u8>> {
        self.device.tx.pop_front()
    }

    /// Runs smoltcp at `now`: processes every received frame, sends what its sockets have, and
    /// applies DHCP events. Returns whether any socket's state may have changed.
    pub fn poll(&mut self, now: Instant) -> bool {
        let changed = self.iface.poll(to_smol(now), &mut self.device, &mut self.sockets);
        let dhcp_changed = self.apply_dhcp();
        if dhcp_changed {
            // A new address may let queued packets leave right away.
            self.iface.poll(to_smol(now), &mut self.device, &mut self.sockets);
        }
        changed == smoltcp::iface::PollResult::SocketStateChanged || dhcp_changed
    }

    /// When smoltcp wants to be polled next (`None`: only when a frame arrives).
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.iface.poll_at(to_smol(now), &self.sockets).map(from_smol)
    }

    fn apply_dhcp(&mut self) -> bool {
        let Some(handle) = self.dhcp else {
            return false;
        };
        let event = match self.sockets.get_mut::<dhcpv4::Socket>(handle).poll() {
            None => return false,
            Some(dhcpv4::Event::Configured(config)) => Some(DhcpLease {
                address: config.address,
                router: config.router,
                dns_servers: config.dns_servers.iter().copied().collect(),
                server: config.server.address,
            }),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        match event {
            Some(lease) => {
                self.set_static_address(lease.address, lease.router);
                self.lease = Some(lease);
                self.leases_applied += 1;
            }
            None => {
                self.iface.update_ip_addrs(|addrs| addrs.clear());
                self.iface.routes_mut().remove_default_ipv4_route();
                self.lease = None;
            }
        }
        true
    }
}
