//! Crate-private pieces re-exported for the fuzz targets in `fuzz/` (feature `fuzzing`; not part
//! of the public API, no stability promise). Each is used there exactly as the engine uses it.
#![doc(hidden)]

/// The IPv4 fragment reassembler (see `iface/reassembly.rs` for its bounds and overlap policy).
pub use crate::iface::reassembly::{Added, Reassembler, MAX_RANGES};

/// The DHCP server's lease decisions (see `services/dhcp.rs`).
pub use crate::services::dhcp::{DhcpServer, Verdict};
