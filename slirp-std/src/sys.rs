//! The only module with `unsafe` code: the few Linux calls no safe wrapper covers.
//!
//! Everything else in the crate goes through `std`, `rustix` and `mio`, which are safe. Each
//! block here says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Longest interface name the kernel takes, without the terminating NUL.
pub const MAX_IFNAME_LEN: usize = 15;

// `_IOW('T', 202, int)`: the encoding used by x86, arm, aarch64, riscv and s390 (every target
// with the generic ioctl layout).
#[cfg(not(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc64"
)))]
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
#[cfg(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "sparc64"
))]
const TUNSETIFF: libc::c_ulong = 0x8004_54ca;

/// `struct ifreq` as TUNSETIFF reads it: the name, the flags, and the rest of the union.
#[repr(C)]
struct IfreqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    // The kernel copies `sizeof(struct ifreq)` (40 bytes on 64-bit, 32 on 32-bit) in and out.
    _pad: [u8; 24],
}

/// Turns an open `/dev/net/tun` descriptor into the TAP interface `name` (`IFF_TAP | IFF_NO_PI`:
/// whole Ethernet frames, no packet-info header) and returns the name the kernel gave it.
///
/// The interface is created in the network namespace of the calling thread.
pub fn tun_set_tap(tun: &OwnedFd, name: &str) -> io::Result<String> {
    if name.is_empty() || name.len() > MAX_IFNAME_LEN || name.as_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} must be 1 to {MAX_IFNAME_LEN} bytes"),
        ));
    }
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 24],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: `tun` is an open descriptor we own for the duration of the call; TUNSETIFF reads
    // and writes at most `sizeof(struct ifreq)` bytes through the pointer, and `req` is a live,
    // properly aligned `#[repr(C)]` value at least that large (16 + 2 + 24 bytes).
    let rc = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &mut req as *mut IfreqFlags) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = req.name.iter().position(|&b| b == 0).unwrap_or(req.name.len());
    Ok(String::from_utf8_lossy(&req.name[..len]).into_owned())
}

/// Moves the calling thread into a new network namespace (and a new user namespace first when
/// `user` is set).
///
/// A new user namespace can only be entered by a single-threaded process: call this before any
/// thread is started (the `slirp run` child does it first thing in `main`).
pub fn unshare_net(user: bool) -> io::Result<()> {
    let mut flags = rustix::thread::UnshareFlags::NEWNET;
    if user {
        flags |= rustix::thread::UnshareFlags::NEWUSER;
    }
    // SAFETY: `unshare_unsafe` is unsafe only because of `CLONE_FILES` (threads could stop
    // seeing each other's descriptors); we pass only NEWNET and NEWUSER, which change no
    // descriptor table.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(io::Error::from)
}

/// Takes ownership of a descriptor number handed to us on the command line (`--ready-fd`,
/// `--exit-fd`, the `slirp run` child's control socket).
///
/// Fails if `fd` is not open, or is one of stdin, stdout and stderr.
pub fn take_inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 3 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("descriptor {fd} is stdin, stdout or stderr")));
    }
    // SAFETY: a borrowed view used only for the F_GETFD probe below, which cannot close or
    // invalidate the descriptor; the kernel reports EBADF if it is not open.
    let probe = unsafe { BorrowedFd::borrow_raw(fd) };
    rustix::io::fcntl_getfd(probe)
        .map_err(|e| io::Error::new(io::ErrorKind::NotFound, format!("descriptor {fd} is not open: {e}")))?;
    // Our own children must not inherit it.
    rustix::io::fcntl_setfd(probe, rustix::io::FdFlags::CLOEXEC)?;
    // SAFETY: the descriptor is open (checked above) and was handed to this process to own by
    // whoever started it; nothing else in the process refers to this number, because the only
    // way the rest of the crate gets descriptors is through `OwnedFd`s it created itself.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
