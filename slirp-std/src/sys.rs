//! The only module with `unsafe` code: the few Linux calls no safe wrapper covers.
//!
//! Everything else in the crate goes through `std`, `rustix` and `mio`, which are safe. Here: the
//! TUN ioctl, `unshare`, adopting inherited descriptors, the socket options and error-queue
//! reads (`IP_RECVERR`, `ICMP_FILTER`) rustix does not wrap, and `sendmmsg` with an address per
//! datagram built on the stack. Each block here says why it is sound.
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
/// whole Ethernet frames, no packet-info header; with `vnet_hdr` also `IFF_VNET_HDR`: every frame
/// preceded by a virtio-net header) and returns the name the kernel gave it.
///
/// The interface is created in the network namespace of the calling thread.
pub fn tun_set_tap(tun: &OwnedFd, name: &str, vnet_hdr: bool) -> io::Result<String> {
    if name.is_empty() || name.len() > MAX_IFNAME_LEN || name.as_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} must be 1 to {MAX_IFNAME_LEN} bytes"),
        ));
    }
    let mut req = IfreqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI | if vnet_hdr { libc::IFF_VNET_HDR } else { 0 }) as libc::c_short,
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

/// The `IFF_*` flags of a TUN/TAP descriptor (`TUNGETIFF`), or `None` when `fd` is not one.
pub fn tun_flags(fd: BorrowedFd<'_>) -> Option<libc::c_int> {
    let mut req = IfreqFlags { name: [0; libc::IFNAMSIZ], flags: 0, _pad: [0; 24] };
    // SAFETY: `fd` is a live descriptor for the call; TUNGETIFF writes at most
    // `sizeof(struct ifreq)` bytes through the pointer into `req`, a live, aligned
    // `#[repr(C)]` value that large. On any other kind of descriptor the call fails (ENOTTY,
    // EBADFD, EINVAL) without touching `req`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETIFF as _, &mut req as *mut IfreqFlags) };
    (rc >= 0).then_some(libc::c_int::from(req.flags) & 0xffff)
}

/// Sets up the virtio-net header of a TAP opened with `IFF_VNET_HDR`: the 10-byte layout,
/// little-endian, and the offloads we take from the guest: with `offload`, partial checksums and
/// TCP super-frames of both families (`TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6`); without, none (the kernel then finishes
/// and segments everything before we read it).
pub fn tun_set_vnet(fd: BorrowedFd<'_>, offload: bool) -> io::Result<()> {
    let size: libc::c_int = 10;
    // SAFETY: `fd` is live for the call; TUNSETVNETHDRSZ reads one `int` through the pointer,
    // which points at a live local.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ as _, &size as *const libc::c_int) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let le: libc::c_int = 1;
    // SAFETY: as above: TUNSETVNETLE reads one `int` through a pointer to a live local.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETLE as _, &le as *const libc::c_int) };
    // Kernels without it use native order, which is little-endian where it matters.
    if rc < 0 && cfg!(target_endian = "big") {
        return Err(io::Error::last_os_error());
    }
    let features: libc::c_ulong =
        if offload { libc::c_ulong::from(libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6) } else { 0 };
    // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is passed.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD as _, features) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Tunes glibc's allocator for our memory profile. One arena: threads we start (the short-lived
/// namespace helper) would otherwise get one of their own, resident for the life of the process,
/// for the few bytes they allocate. A fixed mmap threshold of 128 KiB: TCP buffers (256 KiB by
/// default, never below 256 KiB of allocation) then always come as fresh mappings, untouched
/// pages cost nothing and freed buffers go back to the kernel; glibc's dynamic threshold would
/// instead rise after the first such free and serve later buffers from the heap, cleared byte by
/// byte and resident at once. Call once, before starting threads. A no-op on other C libraries.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; it touches no memory of ours and is called
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
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

/// Raises this process's soft limit on open descriptors to at least `want`, as far as the hard
/// limit allows (never lowers it). Returns the soft limit in force afterwards (`None`: unlimited).
///
/// Every TCP connection and UDP mapping holds one host socket, so a table sized beyond the
/// usual soft limit of 1024 would otherwise meet `EMFILE` first. Call it after starting child
/// processes that should keep the usual limit.
pub fn raise_fd_limit(want: u64) -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let now = getrlimit(Resource::Nofile);
    let (Some(current), maximum) = (now.current, now.maximum) else { return now.current };
    if current >= want {
        return Some(current);
    }
    let target = maximum.map_or(want, |m| want.min(m));
    match setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum }) {
        Ok(()) => Some(target),
        Err(_) => Some(current),
    }
}

/// Moves this process into a fresh mount namespace, inside a fresh user namespace first when
/// `user` is set (what an unprivileged process needs to own the mount namespace). A new user
/// namespace needs a single-threaded process.
pub fn unshare_mount_ns(user: bool) -> io::Result<()> {
    let mut flags = rustix::thread::UnshareFlags::NEWNS;
    if user {
        flags |= rustix::thread::UnshareFlags::NEWUSER;
    }
    // SAFETY: as in `unshare_net`: unsafe only because of `CLONE_FILES`; NEWNS and NEWUSER
    // change no descriptor table.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(io::Error::from)
}

/// `SECCOMP_FILTER_FLAG_LOG`: the kernel logs every action of the filter but "allow".
const SECCOMP_FILTER_FLAG_LOG: libc::c_ulong = 2;
/// `SECCOMP_FILTER_FLAG_TSYNC`: every thread of the process gets the filter.
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;

/// Installs seccomp filter `program` (compiled by `seccompiler`) on every thread of the process,
/// with denials logged by the kernel, after setting `PR_SET_NO_NEW_PRIVS` (which an unprivileged
/// process needs before it may install a filter).
pub fn install_seccomp(program: &[seccompiler::sock_filter]) -> io::Result<()> {
    if program.is_empty() || program.len() > usize::from(u16::MAX) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty or oversized seccomp program"));
    }
    rustix::thread::set_no_new_privs(true)?;
    #[repr(C)]
    struct SockFprog {
        len: libc::c_ushort,
        filter: *const seccompiler::sock_filter,
    }
    let prog = SockFprog { len: program.len() as libc::c_ushort, filter: program.as_ptr() };
    // SAFETY: `prog` is a live `struct sock_fprog` (`#[repr(C)]`: length, then pointer) whose
    // pointer and length describe `program`, a slice of `#[repr(C)]` `struct sock_filter`
    // instructions that outlives the call; the kernel copies the program in and keeps no
    // pointer to our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_TSYNC,
            &prog as *const SockFprog,
        )
    };
    match rc {
        0 => Ok(()),
        rc if rc > 0 => Err(io::Error::other(format!("thread {rc} could not take the filter"))),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Moves this process into a fresh mount namespace (a copy of the current one), so mounts made
/// after it are seen by this process and its children only.
pub fn unshare_mount() -> io::Result<()> {
    // SAFETY: as in `unshare_net`: unsafe only because of `CLONE_FILES`; NEWNS changes no
    // descriptor table.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }.map_err(io::Error::from)
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

/// One entry of a socket's error queue (`IP_RECVERR`): an ICMP error a remote sent about a
/// datagram we sent, or a local error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueuedError {
    /// `ee_origin`: `SO_EE_ORIGIN_ICMP` (2) for an ICMP message, `SO_EE_ORIGIN_LOCAL` (1) for
    /// an error the host raised itself.
    pub origin: u8,
    /// ICMP type (with `SO_EE_ORIGIN_ICMP`).
    pub icmp_type: u8,
    /// ICMP code (with `SO_EE_ORIGIN_ICMP`).
    pub icmp_code: u8,
    /// The errno the error maps to.
    pub errno: u32,
    /// `ee_info`: the next-hop MTU for "fragmentation needed".
    pub info: u32,
    /// The router or host that sent the ICMP message (`SO_EE_OFFENDER`).
    pub offender: Option<std::net::IpAddr>,
    /// The destination of the datagram that failed (the message's `msg_name`).
    pub dst: Option<std::net::SocketAddr>,
}

/// `SO_EE_ORIGIN_ICMP`.
pub const EE_ORIGIN_ICMP: u8 = 2;
/// `SO_EE_ORIGIN_LOCAL`.
pub const EE_ORIGIN_LOCAL: u8 = 1;
/// `SO_EE_ORIGIN_ICMP6`.
pub const EE_ORIGIN_ICMP6: u8 = 3;

fn setsockopt_int(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor for the duration of the call (it is borrowed); the kernel
    // reads exactly `size_of::<c_int>()` bytes from the pointer, which points at `value`, a live
    // `c_int` on our stack.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Turns on `IP_RECVERR` (`IPV6_RECVERR` on an IPv6 socket): ICMP errors about datagrams this
/// socket sent are queued on its error queue (read with [`recv_error_queue`]) even though the
/// socket is not connected.
pub fn set_ip_recverr(fd: BorrowedFd<'_>, v6: bool) -> io::Result<()> {
    if v6 {
        setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVERR, 1)
    } else {
        setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_RECVERR, 1)
    }
}

/// `SIOCATMARK` (asm-generic/sockios.h; libc does not export it for Linux).
const SIOCATMARK: libc::c_ulong = 0x8905;

/// Whether the next byte to read from TCP socket `fd` is the urgent (out-of-band) byte
/// (`SIOCATMARK`; with `SO_OOBINLINE` it is read inline, in stream order).
pub fn at_urgent_mark(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut at: libc::c_int = 0;
    // SAFETY: SIOCATMARK writes one int through the pointer, which points at `at`, alive and
    // writable for the call; `fd` is a valid open descriptor for the call (borrowed).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), SIOCATMARK as _, &mut at as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(at != 0)
}

/// Sets `IP_TTL` back to the host's default (`net.ipv4.ip_default_ttl`): the kernel takes -1 to
/// mean "the default".
pub fn reset_ip_ttl(fd: BorrowedFd<'_>) -> io::Result<()> {
    setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_TTL, -1)
}

/// `ICMP6_FILTER` (linux/icmpv6.h), at level `IPPROTO_ICMPV6`.
const ICMP6_FILTER: libc::c_int = 1;

/// Lets a raw ICMPv6 socket receive only the ICMPv6 types in `types`: the kernel filters the
/// rest (neighbor discovery, MLD, errors) before they wake us.
pub fn set_icmp6_filter(fd: BorrowedFd<'_>, types: &[u8]) -> io::Result<()> {
    // `struct icmp6_filter { __u32 icmp6_filt[8]; }`: a set bit blocks that type.
    let mut blocked = [!0u32; 8];
    for &t in types {
        blocked[usize::from(t >> 5)] &= !(1u32 << (t & 31));
    }
    // SAFETY: `fd` is live for the call (borrowed); the kernel reads exactly
    // `size_of_val(&blocked)` bytes from the pointer, which points at `blocked` on our stack.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            blocked.as_ptr().cast(),
            std::mem::size_of_val(&blocked) as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `SOL_RAW`.
const SOL_RAW: libc::c_int = 255;
/// `ICMP_FILTER` (linux/icmp.h).
const ICMP_FILTER: libc::c_int = 1;

/// Lets a raw ICMP socket receive only the ICMP types in `types` (all below 32): the kernel
/// filters the rest before they wake us.
pub fn set_icmp_filter(fd: BorrowedFd<'_>, types: &[u8]) -> io::Result<()> {
    // `struct icmp_filter { __u32 data; }`: a set bit blocks that type.
    let mut blocked: u32 = !0;
    for &t in types {
        if t < 32 {
            blocked &= !(1u32 << t);
        }
    }
    setsockopt_int(fd, SOL_RAW, ICMP_FILTER, blocked as libc::c_int)
}

/// The address in a `sockaddr_in` or `sockaddr_in6` (by its family), read from `bytes`.
fn sockaddr_from_bytes(bytes: &[u8]) -> Option<std::net::SocketAddr> {
    let family = u16::from_ne_bytes([*bytes.first()?, *bytes.get(1)?]);
    let port = u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]);
    match libc::c_int::from(family) {
        libc::AF_INET => {
            let a: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
            Some(std::net::SocketAddr::new(std::net::Ipv4Addr::from(a).into(), port))
        }
        libc::AF_INET6 => {
            let a: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(bytes.get(24..28)?.try_into().ok()?);
            Some(std::net::SocketAddr::V6(std::net::SocketAddrV6::new(std::net::Ipv6Addr::from(a), port, 0, scope)))
        }
        _ => None,
    }
}

/// Reads one entry of `fd`'s error queue (`recvmsg(MSG_ERRQUEUE)`), without blocking. `Ok(None)`
/// when the queue is empty. The returned payload (the start of the failed datagram) is
/// discarded.
pub fn recv_error_queue(fd: BorrowedFd<'_>) -> io::Result<Option<QueuedError>> {
    let mut data = [0u8; 64];
    // u64 elements: the control buffer must be aligned for `cmsghdr`.
    let mut control = [0u64; 32];
    // Room for either family's address (`sockaddr_in6` is the larger).
    let mut name = [0u8; std::mem::size_of::<libc::sockaddr_in6>()];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths); the pointers we then
    // store point at live locals that outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = name.as_mut_ptr().cast();
    msg.msg_namelen = name.len() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `fd` is live (borrowed); `msg` describes buffers we own and that stay alive and
    // unaliased for the call: `name` (msg_namelen bytes), `data` (one iovec of its length) and
    // `control` (msg_controllen bytes). The kernel writes at most those lengths.
    let rc = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::WouldBlock {
            return Ok(None);
        }
        return Err(e);
    }
    let dst = sockaddr_from_bytes(&name[..(msg.msg_namelen as usize).min(name.len())]);
    // SAFETY: `msg` was filled by a successful recvmsg: msg_control/msg_controllen describe the
    // control messages the kernel wrote into `control`, so the CMSG_* walk stays inside it.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: non-null headers returned by CMSG_FIRSTHDR/CMSG_NXTHDR lie inside `control`.
        let hdr = unsafe { &*cmsg };
        // SAFETY: `cmsg` is a valid header inside the control buffer; CMSG_DATA only computes
        // the address of its payload.
        let data_ptr = unsafe { libc::CMSG_DATA(cmsg) };
        let payload_len = (hdr.cmsg_len as usize).saturating_sub(data_ptr as usize - cmsg as usize);
        let ee_len = std::mem::size_of::<libc::sock_extended_err>();
        let is_recverr = (hdr.cmsg_level == libc::IPPROTO_IP && hdr.cmsg_type == libc::IP_RECVERR)
            || (hdr.cmsg_level == libc::IPPROTO_IPV6 && hdr.cmsg_type == libc::IPV6_RECVERR);
        if is_recverr && payload_len >= ee_len {
            // SAFETY: the payload holds at least a `sock_extended_err` (checked just above);
            // read_unaligned because CMSG_DATA only guarantees the cmsghdr's alignment.
            let ee: libc::sock_extended_err =
                unsafe { std::ptr::read_unaligned(data_ptr.cast::<libc::sock_extended_err>()) };
            // SO_EE_OFFENDER: a sockaddr right after the extended error, when the payload has one.
            let mut raw = [0u8; std::mem::size_of::<libc::sockaddr_in6>()];
            let n = (payload_len - ee_len).min(raw.len());
            // SAFETY: `n` bytes after the extended error lie inside the payload (n is at most
            // payload_len - ee_len); `raw` has room for them; the regions do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(data_ptr.add(ee_len), raw.as_mut_ptr(), n) };
            let offender = sockaddr_from_bytes(&raw[..n]).map(|a| a.ip());
            return Ok(Some(QueuedError {
                origin: ee.ee_origin,
                icmp_type: ee.ee_type,
                icmp_code: ee.ee_code,
                errno: ee.ee_errno,
                info: ee.ee_info,
                offender,
                dst,
            }));
        }
        // SAFETY: `cmsg` is a valid header inside `msg`'s control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    // An entry without the control message we asked for: report it with nothing known.
    Ok(Some(QueuedError { origin: 0, icmp_type: 0, icmp_code: 0, errno: 0, info: 0, offender: None, dst }))
}

/// Most datagrams one [`send_datagrams`] call takes.
pub const SEND_BATCH: usize = 32;

/// Sends up to [`SEND_BATCH`] datagrams on a UDP socket with one `sendmmsg`: datagram `i` is
/// `bytes[start..start + len]` for `msgs[i] = (start, len, dst)`. Returns how many the kernel
/// took, in order (at least one), or the error of the first one. Messages past
/// [`SEND_BATCH`] are not looked at.
///
/// # Panics
/// If a message's range lies outside `bytes`.
pub fn send_datagrams(
    fd: BorrowedFd<'_>,
    bytes: &[u8],
    msgs: &[(usize, usize, std::net::SocketAddr)],
) -> io::Result<usize> {
    let n = msgs.len().min(SEND_BATCH);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: plain C structs for which all-zero bytes are a valid value. Each address slot is a
    // `sockaddr_in6`, large enough for either family.
    let mut addrs: [libc::sockaddr_in6; SEND_BATCH] = unsafe { std::mem::zeroed() };
    let mut iovs: [libc::iovec; SEND_BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; SEND_BATCH] = unsafe { std::mem::zeroed() };
    for (i, &(start, len, dst)) in msgs[..n].iter().enumerate() {
        let data = &bytes[start..start + len];
        let name_len = match dst {
            std::net::SocketAddr::V4(d) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: d.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(d.ip().octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: a `sockaddr_in` (16 bytes, alignment 4) fits at the start of the
                // `sockaddr_in6` slot (28 bytes, alignment 4), which we own.
                unsafe { std::ptr::write((&mut addrs[i] as *mut libc::sockaddr_in6).cast::<libc::sockaddr_in>(), sin) };
                std::mem::size_of::<libc::sockaddr_in>()
            }
            std::net::SocketAddr::V6(d) => {
                addrs[i].sin6_family = libc::AF_INET6 as libc::sa_family_t;
                addrs[i].sin6_port = d.port().to_be();
                addrs[i].sin6_addr.s6_addr = d.ip().octets();
                addrs[i].sin6_scope_id = d.scope_id();
                std::mem::size_of::<libc::sockaddr_in6>()
            }
        };
        // The kernel only reads through iov_base for a send; the cast from *const is sound.
        iovs[i].iov_base = data.as_ptr() as *mut libc::c_void;
        iovs[i].iov_len = data.len();
        hdrs[i].msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_in6).cast();
        hdrs[i].msg_hdr.msg_namelen = name_len as libc::socklen_t;
        hdrs[i].msg_hdr.msg_iov = &mut iovs[i];
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    loop {
        // SAFETY: `hdrs[..n]` are initialised message headers whose name and iovec pointers
        // point into `addrs`, `iovs` and `bytes`, all alive and unmoved for the whole call; the
        // kernel writes only each header's `msg_len`.
        let rc = unsafe { libc::sendmmsg(fd.as_raw_fd(), hdrs.as_mut_ptr(), n as libc::c_uint, libc::MSG_DONTWAIT) };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
