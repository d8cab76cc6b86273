//! # slirp-std
//!
//! slirp on Linux: the event loop that drives the sans-IO core ([`slirp_core::Slirp`]) with a
//! monotonic clock, the host side of the NAT ([`StdHost`]: UDP and ICMP echo over nonblocking
//! sockets), guest links (a TAP created inside a network namespace, QEMU's `-netdev
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
pub mod sys;

pub use clock::StdClock;
pub use event_loop::{EventLoop, Exit, StopHandle};
pub use host::StdHost;
pub use link::GuestLink;
pub use netns::{Netns, NetnsTarget};
pub use options::{Cidr, HostFwd};
pub use pcap::PcapWriter;

use slirp_core::Storage;

/// Memory for one instance on a std host: 1 MiB of guest-bound queue, 256 KiB for packets
/// waiting on ARP, and 8 reassembly slots of 64 KiB.
pub fn default_storage() -> Storage<'static> {
    Storage::with_capacity(1024 * 1024, 256 * 1024, 8, 65535)
}
