//! # slirp-std
//!
//! slirp on Linux: the event loop that drives the sans-IO core ([`slirp_core::Slirp`]) with a
//! monotonic clock, the host side of the NAT ([`StdHost`]: TCP, UDP and ICMP echo over
//! nonblocking sockets), guest links (a TAP created inside a network namespace, QEMU's `-netdev
//! stream` unix socket, or any descriptor an embedder already holds), a pcap capture of the
//! link, the control API socket ([`api`], slirp4netns' JSON API), and the `slirp` command built
//! from them.
//!
//! ```no_run
//! use slirp_std::{EventLoop, GuestLink, NetnsTarget, StdHost};
//! use slirp_core::{Config, Slirp, Storage};
//!
//! # fn main() -> std::io::Result<()> {
//! let ns = NetnsTarget::parse("/run/netns/guest").unwrap().open()?;
//! let (tap, _name) = ns.run_inside(|| slirp_std::netns::open_tap_here("tap0"))?;
//! let slirp = Slirp::new(Config::default(), slirp_std::default_storage()).unwrap();
//! let mut ev = EventLoop::new(slirp, StdHost::default(), GuestLink::datagram(tap)?)?;
//! ev.handle_signals()?;
//! ev.run()?;
//! # Ok(())
//! # }
//! ```
//!
//! `unsafe` code lives only in the [`sys`] module (the TUN ioctl, `unshare`, adopting
//! inherited descriptors, `IP_RECVERR`/`ICMP_FILTER` options and error-queue reads); the rest of
//! the crate denies it.
#![deny(unsafe_code)]
#![deny(missing_docs)]

pub mod api;
pub mod clock;
pub mod event_loop;
pub mod host;
pub mod link;
pub mod netlink;
pub mod netns;
pub mod options;
pub mod pcap;
pub mod sandbox;
pub mod slirp4netns;
pub mod sys;
pub mod trace;

pub use clock::StdClock;
pub use event_loop::{EventLoop, Exit, LoopHost, StopHandle};
pub use host::StdHost;
pub use link::GuestLink;
pub use netns::{Netns, NetnsTarget};
pub use options::{Cidr, HostFwd};
pub use pcap::PcapWriter;

use slirp_core::Storage;

/// TCP connections at once by default.
pub const DEFAULT_TCP_CONNECTIONS: usize = 1024;
/// Default size of each TCP connection's send and receive buffers: 256 KiB each way, so one
/// connection can keep a window of that size in flight (the core advertises the receive buffer's
/// free space, scaled).
pub const DEFAULT_TCP_BUFFER: usize = 256 * 1024;
/// Smallest TCP buffer [`storage`] accepts: a few full segments at the largest MTU.
pub const MIN_TCP_BUFFER: usize = 16 * 1024;
/// Largest TCP buffer [`storage`] accepts (the window scale allows up to 1 GiB; this is plenty
/// for a local link).
pub const MAX_TCP_BUFFER: usize = 64 * 1024 * 1024;

/// Memory for one instance on a std host: 1 MiB of guest-bound queue, 256 KiB for packets
/// waiting on ARP, 8 reassembly slots of 64 KiB, and TCP for [`DEFAULT_TCP_CONNECTIONS`]
/// connections with [`DEFAULT_TCP_BUFFER`] each way.
pub fn default_storage() -> Storage<'static> {
    storage(DEFAULT_TCP_CONNECTIONS, DEFAULT_TCP_BUFFER)
}

/// [`default_storage`] with `tcp_connections` connection slots and `tcp_buffer` bytes for each
/// connection's send and receive buffer (clamped to [`MIN_TCP_BUFFER`]..=[`MAX_TCP_BUFFER`]).
///
/// The connection slots (about a kilobyte each) are reserved up front but built only when that
/// many connections are open at once; the buffers are allocated when a connection opens; both are
/// reused after it closes, so memory follows the most connections open at once: at most
/// `tcp_connections * (2 * tcp_buffer + 1 KiB)` (about 513 MiB for the defaults, if all 1024 were
/// open and full). The queues and reassembly buffers are zero pages until used, so an idle
/// instance keeps little of its storage resident.
pub fn storage(tcp_connections: usize, tcp_buffer: usize) -> Storage<'static> {
    use slirp_core::storage::{DEFAULT_MAX_DATAGRAM, DEFAULT_UDP_FLOWS};
    let buffer = tcp_buffer.clamp(MIN_TCP_BUFFER, MAX_TCP_BUFFER);
    // Built directly rather than through `Storage::with_capacity`, which would first allocate
    // the default TCP memory only for it to be dropped here.
    Storage::with_buffers(1024 * 1024, 256 * 1024, 8, 65535)
        .with_udp_capacity(DEFAULT_UDP_FLOWS, DEFAULT_MAX_DATAGRAM)
        .with_tcp_capacity(tcp_connections, buffer, buffer)
}
