//! # slirp-core
//!
//! The protocol engine of slirp: user-mode TCP/IP networking that answers a guest's Ethernet
//! frames as its router, DHCP server and DNS alias, and turns its flows into host sockets.
//!
//! The core is sans-IO and `no_std`: it never touches a socket, a thread or a clock. Frames come
//! in through [`Slirp::handle_guest_frame`], frames for the guest are pulled with
//! [`Slirp::poll_transmit`] while the guest link has room, time is passed in as an [`Instant`],
//! and [`Slirp::poll_at`] says when to call [`Slirp::handle_timeout`] next. Host sockets are
//! reached through the [`HostSocket`] trait. All memory is fixed and supplied by the embedder
//! through [`Storage`] (borrowed slices on bare metal, owned vectors with the `alloc` feature).
//!
//! ```
//! use slirp_core::{Config, Instant, NoHost, Slirp, Storage};
//!
//! let mut slirp = Slirp::new(Config::default(), Storage::with_capacity(64 * 1024, 16 * 1024, 2, 65535))
//!     .expect("default config is valid");
//! let now = Instant::from_millis(0);
//! // A frame from the guest (too short to be anything: it is counted and dropped).
//! slirp.handle_guest_frame(now, &[0u8; 10], &mut NoHost);
//! assert!(slirp.poll_transmit(now, &mut NoHost).is_none());
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

#[macro_use]
mod log;

pub mod config;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod host;
pub mod offload;
pub mod pcap;
pub mod storage;
pub mod tcp;
pub mod time;
pub mod wire;

mod iface;
mod memory;
pub mod nat;
mod services;
mod stats;
#[cfg(feature = "critical-section")]
pub mod sync;
pub mod trace;

pub use config::{Config, ConfigError, Ipv6Config};
pub use host::{EchoKind, EchoReply, HostError, HostSocket, IpVersion, NoHost, SocketId, UdpEvent};
pub use iface::ipv6::ICMPV6_ERRORS_PER_SECOND;
pub use iface::reassembly::ReassemblySlot;
pub use iface::{Slirp, TxFrame};
pub use memory::Storage;
pub use nat::guest_forward::{GuestForward, MAX_GUEST_FORWARDS};
pub use nat::tcp::TcpConnectionInfo;
pub use nat::{ForwardError, TcpForward, UdpForward};
pub use offload::{GuestOffload, RxChecksum, TxOffload};
pub use services::tftp::{TFTP_PORT, TFTP_SESSIONS};
pub use stats::{DropReason, Stats};
pub use time::{Clock, Instant};
