//! The sandbox: what the process gives up once its TAP (or socket), listeners and files are open.
//!
//! A network stack parses hostile guest frames all day, so after set-up it keeps only what the
//! event loop needs ([`enter`]):
//!
//! 1. **An empty filesystem.** A new mount namespace whose root is an empty, read-only tmpfs
//!    (`pivot_root`, the old root detached): no path outside resolves any more. Files still in
//!    use were opened before (the TFTP root is a directory descriptor; socket files are removed
//!    at exit through a descriptor of their directory, see [`SocketFile`]). Not root: the mount
//!    namespace sits in a new user namespace of our own (our uid and gid mapped to themselves),
//!    as unprivileged processes need.
//! 2. **No capabilities** but those still needed: `CAP_NET_BIND_SERVICE` when forwards to ports
//!    below 1024 may still be added (a control API is served) and the process has it, and
//!    `CAP_NET_RAW` when guest pings need raw ICMP sockets (no ping sockets allowed by
//!    `net.ipv4.ping_group_range`) and the process has it. Bounding, inheritable and ambient
//!    sets are cleared too.
//! 3. **No new privileges** (`PR_SET_NO_NEW_PRIVS`): nothing exec'd can gain any.
//! 4. **A seccomp allowlist** ([`filter`]): the system calls of the event loop, host sockets,
//!    the API and the link, and nothing else: no `execve`, no `open` of paths, no `mount`,
//!    `ptrace` or `bpf`; sockets only of the internet and unix families, ioctls only
//!    `FIONBIO`, `FIONREAD` and `SIOCATMARK`. Any other call fails with `ENOSYS` and the kernel
//!    logs it (`SECCOMP_FILTER_FLAG_LOG`: an `audit: type=1326 ... syscall=N` line in the
//!    kernel log); [`Policy::kill`] makes it kill the process instead.
//!
//! Guest forwards that run commands (`cmd:`, `pty:`) or connect to unix socket paths (`unix:`)
//! need the filesystem, and commands need `execve` and everything a shell does: with such rules
//! the sandbox keeps the filesystem (and, for commands, installs no seccomp filter), and says so.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use caps::{CapSet, Capability, CapsHashSet};

/// What [`enter`] keeps and how it enforces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep the filesystem view (no new mount namespace): unix-socket guest forwards connect to
    /// paths.
    pub keep_filesystem: bool,
    /// Allow running commands (guest forwards `cmd:`/`pty:`): no seccomp filter then, since
    /// what the commands run needs every call a program makes.
    pub run_commands: bool,
    /// Keep the capabilities the process has (slirp4netns' `--enable-seccomp` alone: only the
    /// filter and no new privileges).
    pub keep_capabilities: bool,
    /// Forwards may still be added at run time (a control API is served): keep
    /// `CAP_NET_BIND_SERVICE` if the process has it.
    pub runtime_forwards: bool,
    /// Install no seccomp filter (slirp4netns' `--enable-sandbox` without `--enable-seccomp`).
    pub no_seccomp: bool,
    /// A call outside the allowlist kills the process (instead of failing with `ENOSYS`).
    pub kill: bool,
}

/// What [`enter`] did, for the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entered {
    /// The root is an empty tmpfs.
    pub empty_root: bool,
    /// A user namespace was made for the mount namespace.
    pub user_namespace: bool,
    /// Capabilities kept.
    pub kept: Vec<Capability>,
    /// A seccomp filter is installed.
    pub seccomp: bool,
}

impl std::fmt::Display for Entered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let root = if self.empty_root { "empty root" } else { "filesystem kept" };
        let caps = if self.kept.is_empty() {
            "no capabilities".to_string()
        } else {
            let names: Vec<String> = self.kept.iter().map(|c| c.to_string()).collect();
            format!("capabilities {}", names.join(","))
        };
        let seccomp = if self.seccomp { "seccomp allowlist" } else { "no seccomp filter" };
        write!(f, "{root}, {caps}, no new privileges, {seccomp}")
    }
}

/// Enters the sandbox (see the module documentation). Call it once set-up is done, from a
/// single-threaded process (a new user namespace needs one): every thread started before is
/// gone, and threads started after inherit the filter.
pub fn enter(policy: Policy) -> io::Result<Entered> {
    let mut done = Entered::default();
    let root = rustix::process::geteuid().is_root();
    let keep = capabilities_to_keep(policy);
    if !policy.keep_filesystem {
        done.user_namespace = empty_root(root || has(Capability::CAP_SYS_ADMIN))?;
        done.empty_root = true;
    }
    if policy.keep_capabilities {
        done.kept = caps::read(None, CapSet::Effective).map(|c| c.into_iter().collect()).unwrap_or_default();
    } else {
        drop_capabilities(&keep)?;
        done.kept = keep.into_iter().collect();
    }
    done.kept.sort_by_key(|c| c.index());
    rustix::thread::set_no_new_privs(true).map_err(|e| io::Error::other(format!("no_new_privs: {e}")))?;
    if !policy.run_commands && !policy.no_seccomp {
        let program = filter(policy.kill)?;
        crate::sys::install_seccomp(&program)
            .map_err(|e| io::Error::new(e.kind(), format!("installing the seccomp filter: {e}")))?;
        done.seccomp = true;
    }
    Ok(done)
}

fn has(cap: Capability) -> bool {
    caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false)
}

fn capabilities_to_keep(policy: Policy) -> CapsHashSet {
    let mut keep = CapsHashSet::new();
    if policy.runtime_forwards && has(Capability::CAP_NET_BIND_SERVICE) {
        keep.insert(Capability::CAP_NET_BIND_SERVICE);
    }
    if has(Capability::CAP_NET_RAW) && !ping_sockets_allowed() {
        keep.insert(Capability::CAP_NET_RAW);
    }
    keep
}

/// Whether unprivileged ICMP (ping) sockets can be opened, for both families tried.
fn ping_sockets_allowed() -> bool {
    use rustix::net::{ipproto, AddressFamily, SocketFlags, SocketType};
    rustix::net::socket_with(AddressFamily::INET, SocketType::DGRAM, SocketFlags::CLOEXEC, Some(ipproto::ICMP)).is_ok()
}

/// Moves into a new mount namespace (in a new user namespace unless `privileged`) whose root is
/// an empty read-only tmpfs. Returns whether a user namespace was made.
fn empty_root(privileged: bool) -> io::Result<bool> {
    use rustix::mount::{mount, mount_change, unmount, MountFlags, MountPropagationFlags, UnmountFlags};
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let userns = !privileged;
    crate::sys::unshare_mount_ns(userns).map_err(|e| {
        let hint = if userns {
            " (unprivileged user namespaces may be disabled: kernel.unprivileged_userns_clone)"
        } else {
            ""
        };
        io::Error::new(e.kind(), format!("sandbox: creating a mount namespace: {e}{hint}"))
    })?;
    if userns {
        let map = |what: &str, text: String| {
            std::fs::write(format!("/proc/self/{what}"), text)
                .map_err(|e| io::Error::new(e.kind(), format!("sandbox: writing /proc/self/{what}: {e}")))
        };
        map("setgroups", "deny".into())?;
        map("uid_map", format!("{uid} {uid} 1"))?;
        map("gid_map", format!("{gid} {gid} 1"))?;
    }
    let ctx = |what: &'static str| move |e: rustix::io::Errno| io::Error::other(format!("sandbox: {what}: {e}"));
    mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(ctx("making mounts private"))?;
    let dir = if Path::new("/tmp").is_dir() { "/tmp" } else { "/" };
    mount(
        "slirp-sandbox",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC | MountFlags::RDONLY,
        Some(c"size=4k,nr_inodes=2,mode=0555"),
    )
    .map_err(ctx("mounting an empty tmpfs"))?;
    rustix::process::chdir(dir).map_err(ctx("entering the empty tmpfs"))?;
    // The new root and the old one stacked on the same directory; the old one then detached.
    rustix::process::pivot_root(".", ".").map_err(ctx("pivot_root"))?;
    unmount(".", UnmountFlags::DETACH).map_err(ctx("detaching the old root"))?;
    rustix::process::chdir("/").map_err(ctx("chdir /"))?;
    Ok(userns)
}

fn drop_capabilities(keep: &CapsHashSet) -> io::Result<()> {
    let fail = |what: &str, e: caps::errors::CapsError| io::Error::other(format!("sandbox: {what}: {e}"));
    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes next.
    if let Ok(bounding) = caps::read(None, CapSet::Bounding) {
        for cap in bounding.difference(keep) {
            // Without CAP_SETPCAP (an unprivileged process) the bounding set cannot shrink; the
            // other sets below are what an unprivileged process can hold anyway.
            if has(Capability::CAP_SETPCAP) {
                caps::drop(None, CapSet::Bounding, *cap).map_err(|e| fail("bounding set", e))?;
            }
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(|e| fail("ambient set", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| fail("inheritable set", e))?;
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| fail("reading", e))?;
    let kept: CapsHashSet = permitted.intersection(keep).copied().collect();
    caps::set(None, CapSet::Effective, &kept).map_err(|e| fail("effective set", e))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(|e| fail("permitted set", e))?;
    Ok(())
}

/// The seccomp allowlist, compiled for this architecture (x86_64 and aarch64).
pub fn filter(kill: bool) -> io::Result<seccompiler::BpfProgram> {
    use seccompiler::{SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule};
    use std::collections::BTreeMap;
    #[cfg(target_arch = "x86_64")]
    let arch = seccompiler::TargetArch::x86_64;
    #[cfg(target_arch = "aarch64")]
    let arch = seccompiler::TargetArch::aarch64;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return Err(io::Error::new(io::ErrorKind::Unsupported, "no seccomp filter for this architecture"));

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in ALLOWED {
        rules.insert(nr, Vec::new());
    }
    let cond = |arg: u8, op: SeccompCmpOp, v: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, v).map_err(|e| io::Error::other(e.to_string()))
    };
    let rule = |c: Vec<SeccompCondition>| SeccompRule::new(c).map_err(|e| io::Error::other(e.to_string()));
    // socket(2) and socketpair(2): internet and unix families only.
    let mut socket_rules = Vec::new();
    for family in [libc::AF_INET, libc::AF_INET6, libc::AF_UNIX] {
        socket_rules.push(rule(vec![cond(0, SeccompCmpOp::Eq, family as u64)?])?);
    }
    rules.insert(libc::SYS_socket, socket_rules);
    rules.insert(libc::SYS_socketpair, vec![rule(vec![cond(0, SeccompCmpOp::Eq, libc::AF_UNIX as u64)?])?]);
    // ioctl(2): nonblocking mode, bytes readable, the urgent mark.
    let mut ioctl_rules = Vec::new();
    for request in [libc::FIONBIO, libc::FIONREAD, SIOCATMARK, libc::FIOCLEX] {
        // `c_ulong` is `u64` here, `u32` on 32-bit targets.
        #[allow(clippy::useless_conversion)]
        let request = u64::from(request);
        ioctl_rules.push(rule(vec![cond(1, SeccompCmpOp::Eq, request)?])?);
    }
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    // fcntl(2): descriptor and status flags only (no locks, leases, pipe sizes).
    let mut fcntl_rules = Vec::new();
    for cmd in [libc::F_GETFD, libc::F_SETFD, libc::F_GETFL, libc::F_SETFL, libc::F_DUPFD_CLOEXEC] {
        fcntl_rules.push(rule(vec![cond(1, SeccompCmpOp::Eq, cmd as u64)?])?);
    }
    rules.insert(libc::SYS_fcntl, fcntl_rules);
    let mismatch = if kill { SeccompAction::KillProcess } else { SeccompAction::Errno(libc::ENOSYS as u32) };
    let f =
        SeccompFilter::new(rules, mismatch, SeccompAction::Allow, arch).map_err(|e| io::Error::other(e.to_string()))?;
    seccompiler::BpfProgram::try_from(f).map_err(|e| io::Error::other(e.to_string()))
}

/// `SIOCATMARK` (not in the libc crate for every target).
const SIOCATMARK: libc::c_ulong = 0x8905;

/// System calls allowed without conditions.
#[rustfmt::skip]
const ALLOWED: &[i64] = &[
    // The event loop: waiting, the clock, memory, signals, exit.
    libc::SYS_epoll_pwait, libc::SYS_epoll_pwait2, libc::SYS_epoll_ctl, libc::SYS_ppoll,
    libc::SYS_clock_gettime, libc::SYS_clock_nanosleep, libc::SYS_nanosleep, libc::SYS_futex,
    libc::SYS_sched_yield, libc::SYS_getrandom, libc::SYS_brk, libc::SYS_mmap, libc::SYS_munmap,
    libc::SYS_mremap, libc::SYS_madvise, libc::SYS_mprotect, libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask, libc::SYS_rt_sigaction, libc::SYS_sigaltstack, libc::SYS_restart_syscall,
    libc::SYS_exit, libc::SYS_exit_group, libc::SYS_getpid, libc::SYS_gettid, libc::SYS_tgkill,
    libc::SYS_kill, libc::SYS_rseq, libc::SYS_sched_getaffinity,
    // Children started before the sandbox (`slirp run`'s command): reaping them.
    libc::SYS_wait4, libc::SYS_waitid,
    // Descriptors: reading and writing (TAP, sockets, eventfd, pipes, the trace and pcap files).
    libc::SYS_read, libc::SYS_write, libc::SYS_readv, libc::SYS_writev, libc::SYS_pread64,
    libc::SYS_pwrite64, libc::SYS_close, libc::SYS_dup, libc::SYS_fstat, libc::SYS_lseek,
    libc::SYS_fsync, libc::SYS_fdatasync, libc::SYS_statx, libc::SYS_newfstatat,
    // Sockets: new flows, runtime forwards, the API, a QEMU guest reconnecting.
    libc::SYS_connect, libc::SYS_bind, libc::SYS_listen, libc::SYS_accept4, libc::SYS_accept,
    libc::SYS_getsockname, libc::SYS_getpeername, libc::SYS_setsockopt, libc::SYS_getsockopt,
    libc::SYS_shutdown, libc::SYS_sendto, libc::SYS_recvfrom, libc::SYS_sendmsg, libc::SYS_recvmsg,
    libc::SYS_sendmmsg, libc::SYS_recvmmsg,
    // Files under kept directory descriptors: TFTP reads (openat2 with RESOLVE_BENEATH), socket
    // files removed at exit (unlinkat). No path resolves outside: the root is empty.
    libc::SYS_openat, libc::SYS_openat2, libc::SYS_unlinkat,
    // x86_64 spells some of these the old way (glibc's epoll_wait and poll).
    #[cfg(target_arch = "x86_64")] libc::SYS_epoll_wait,
    #[cfg(target_arch = "x86_64")] libc::SYS_poll,
];

/// A socket file we created, removed at exit if it is still ours, through a descriptor of its
/// directory (so this works in the sandbox's empty root, where the path no longer resolves).
#[derive(Debug)]
pub struct SocketFile {
    dir: Option<OwnedFd>,
    name: OsString,
    /// Device and inode of the file we made.
    id: Option<(u64, u64)>,
}

impl SocketFile {
    /// Remembers the socket file just bound at `path`.
    pub fn new(path: &Path) -> SocketFile {
        let dir_path = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let dir = rustix::fs::open(
            dir_path,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ok();
        let name = path.file_name().map(OsStr::to_os_string).unwrap_or_default();
        let id = std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
        SocketFile { dir, name, id }
    }

    /// Removes the file if it is still the one we made (not replaced by another process).
    pub fn remove(&self) {
        let Some(dir) = &self.dir else { return };
        if self.name.is_empty() {
            return;
        }
        let now = rustix::fs::statat(dir, self.name.as_os_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .ok()
            .map(|st| (st.st_dev, st.st_ino));
        if now.is_some() && now == self.id {
            let _ = rustix::fs::unlinkat(dir, self.name.as_os_str(), rustix::fs::AtFlags::empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_for_this_machine() {
        let errno = filter(false).unwrap();
        let kill = filter(true).unwrap();
        assert!(errno.len() > ALLOWED.len(), "one jump per allowed call at least");
        assert_eq!(errno.len(), kill.len());
        assert_ne!(errno, kill);
    }

    #[test]
    fn socket_file_removed_only_if_still_ours() {
        let dir = std::env::temp_dir().join(format!("slirp-sockfile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let f = SocketFile::new(&path);
        f.remove();
        assert!(!path.exists());
        // Replaced by someone else: left alone.
        drop(l);
        let _l1 = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let f = SocketFile::new(&path);
        std::fs::remove_file(&path).unwrap();
        let _l2 = std::os::unix::net::UnixListener::bind(&path).unwrap();
        f.remove();
        assert!(path.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
