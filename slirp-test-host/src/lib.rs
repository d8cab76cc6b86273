//! # slirp-test-host
//!
//! A deterministic world to test [`slirp_core`] in: a [`VirtualClock`] that jumps from deadline
//! to deadline, a [`GuestLink`] with seeded faults (loss, duplication, reordering, corruption,
//! delay, bandwidth) and a guest RX budget, a [`PcapWriter`] for Wireshark, and a smoltcp guest
//! ([`SmolGuest`]) that boots with DHCP, pings, resolves names and talks UDP and TCP like a VM
//! would, and a fake host network ([`FakeNet`]: the host's UDP, ICMP and TCP sockets with
//! latency and finite buffers, and a small scripted internet with UDP and TCP services (echo,
//! byte sources, hashing sinks, resetting servers, DNS over both), ping responders, refusing
//! hosts, unreachable networks, black holes, and host clients for port forwards). [`ScriptHost`]
//! is the other host: one whose every answer the test scripts, for engine-level tests that feed
//! hand-built frames. [`sha256`] checks bulk transfers.
//! [`Simulation`] ties them together; the same [`SimConfig`] (seed included) replays the same run,
//! byte for byte.
//!
//! ```no_run
//! use core::time::Duration;
//! use slirp_test_host::{LinkFaults, SimConfig, Simulation};
//! use smoltcp::wire::Ipv4Address;
//!
//! let mut sim = Simulation::new(SimConfig::seeded(7).with_faults(LinkFaults::chaos())).unwrap();
//! let lease = sim.wait_for_lease(Duration::from_secs(120)).unwrap();
//! assert_eq!(lease.router, Some(Ipv4Address::new(10, 0, 2, 2)));
//! let pong = sim.ping(Ipv4Address::new(10, 0, 2, 2), 0, b"hello", Duration::from_secs(1));
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod clock;
pub mod dns;
pub mod fakenet;
pub mod gso;
pub mod guest;
pub mod link;
pub mod script;
pub mod sha256;
pub mod sim;
pub mod trace;

pub use clock::VirtualClock;
pub use fakenet::{
    ConnId, EchoMode, FakeNet, FakeNetStats, PushedConn, RouteFault, SentDatagram, SentEcho, TcpConnRecord, TcpService,
    UdpService,
};
pub use gso::{segment_offloaded, GsoStats, Malformed, Segmented};
pub use guest::{DhcpLease, EchoReply, PingError, SmolGuest, GUEST_MAC};
pub use link::{Delivery, Direction, GuestLink, LinkFaults, LinkStats, SendReport};
pub use script::{HostCall, ScriptEcho, ScriptHost, ScriptSocket};
pub use sha256::Sha256;
pub use sim::{
    PingReply, SimConfig, SimError, SimHost, Simulation, StorageSizes, TraceEvent, TraceKind, Tracer, PING_IDENT,
};
/// The pcap writer is the core's ([`slirp_core::pcap`]), here over a `Vec<u8>`.
pub use slirp_core::pcap::{self, PcapWriter};
pub use trace::describe_frame;

/// The core this crate drives, re-exported for convenience.
pub use slirp_core;

/// The smoltcp version the guest is built on, re-exported so tests name its types without a
/// second dependency line.
pub use smoltcp;
