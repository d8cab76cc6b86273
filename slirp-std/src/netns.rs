//! Network namespaces: naming a target, entering it for a moment, opening a TAP inside it.
//!
//! Namespace membership is per thread on Linux, so we never move the thread that runs the event
//! loop: work that must happen inside the target namespace (creating the TAP, configuring it)
//! runs on a short-lived helper thread that enters the namespace with `setns` and ends there.
//! Descriptors opened by that thread (the TAP, a netlink socket) stay bound to the target
//! namespace for their whole life, which is exactly what slirp4netns relies on too.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::sys;

/// The network namespace to attach to, as slirp4netns names it: a path or a process id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetnsTarget {
    /// A namespace file: `/run/netns/NAME` (from `ip netns add`), `/proc/PID/ns/net`, or any
    /// bind mount of one.
    Path(PathBuf),
    /// The network namespace of this process.
    Pid(u32),
}

impl NetnsTarget {
    /// Reads a command-line value: all digits means a process id, anything else a path.
    pub fn parse(s: &str) -> Result<NetnsTarget, String> {
        if s.is_empty() {
            return Err("empty namespace".into());
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return s
                .parse::<u32>()
                .ok()
                .filter(|&p| p > 0)
                .map(NetnsTarget::Pid)
                .ok_or_else(|| format!("{s:?} is not a valid process id"));
        }
        Ok(NetnsTarget::Path(PathBuf::from(s)))
    }

    /// The namespace file this target refers to.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsTarget::Path(p) => p.clone(),
            NetnsTarget::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }

    /// Opens the namespace file, with a one-line error naming it.
    pub fn open(&self) -> io::Result<Netns> {
        let path = self.path();
        let file = File::open(&path).map_err(|e| {
            let what = match e.kind() {
                io::ErrorKind::NotFound => "no such network namespace".to_string(),
                io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            io::Error::new(e.kind(), format!("{}: {what}", path.display()))
        })?;
        Ok(Netns { fd: file.into(), name: path.display().to_string() })
    }
}

impl fmt::Display for NetnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsTarget::Path(p) => write!(f, "{}", p.display()),
            NetnsTarget::Pid(pid) => write!(f, "pid {pid}"),
        }
    }
}

/// An open handle on a network namespace.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    name: String,
}

impl Netns {
    /// Runs `f` on a helper thread inside this namespace and returns its result. The calling
    /// thread's namespace never changes.
    pub fn run_inside<T, F>(&self, f: F) -> io::Result<T>
    where
        F: FnOnce() -> io::Result<T> + Send,
        T: Send,
    {
        std::thread::scope(|s| {
            s.spawn(|| {
                move_into_link_name_space(self.fd.as_fd(), Some(LinkNameSpaceType::Network)).map_err(|e| {
                    let e = io::Error::from(e);
                    let what = match e.kind() {
                        io::ErrorKind::PermissionDenied => "permission denied (entering a network namespace needs \
                                 CAP_SYS_ADMIN over it)"
                            .to_string(),
                        io::ErrorKind::InvalidInput => "not a network namespace".to_string(),
                        _ => e.to_string(),
                    };
                    io::Error::new(e.kind(), format!("{}: {what}", self.name))
                })?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("namespace helper thread panicked")))
        })
    }

    /// Where this namespace came from, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Moves the calling (single-threaded) process into the user namespace at `path`, unless it is
/// in that namespace already. Entering the user namespace that owns a rootless container's
/// network namespace gives the capabilities to create a TAP there.
pub fn enter_user_namespace(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let ctx = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let file = File::open(path).map_err(ctx)?;
    let theirs = file.metadata().map_err(ctx)?;
    let ours = std::fs::metadata("/proc/self/ns/user")?;
    if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
        return Ok(());
    }
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::User)).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("entering user namespace {}: {e}", path.display()))
    })
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter_network_namespace(path: &std::path::Path) -> io::Result<()> {
    let file = File::open(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network)).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("entering network namespace {}: {e}", path.display()))
    })
}

/// Creates the TAP interface `ifname` in the calling thread's network namespace and returns its
/// nonblocking descriptor and the name the kernel gave it. The TAP carries a virtio-net header
/// with every frame (`IFF_VNET_HDR`), so [`GuestLink::datagram`](crate::GuestLink::datagram)
/// can use checksum and segmentation offloads on it.
pub fn open_tap_here(ifname: &str) -> io::Result<(OwnedFd, String)> {
    let tun: OwnedFd = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(|e| {
            let what = match e.kind() {
                io::ErrorKind::NotFound => "missing (load the tun module)".to_string(),
                io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            io::Error::new(e.kind(), format!("/dev/net/tun: {what}"))
        })?
        .into();
    let name = sys::tun_set_tap(&tun, ifname, true).map_err(|e| {
        let what = match e.raw_os_error() {
            Some(libc::EPERM) => "permission denied (creating a TAP needs CAP_NET_ADMIN)".into(),
            Some(libc::EBUSY) => "an interface of that name exists and is busy".into(),
            Some(libc::EINVAL) => "an interface of that name exists and is not a TAP".into(),
            _ => e.to_string(),
        };
        io::Error::new(e.kind(), format!("creating TAP {ifname:?}: {what}"))
    })?;
    Ok((tun, name))
}

/// Moves this process (which must still be single-threaded when `user` is set) into a fresh
/// network namespace; when `user` is set, first into a fresh user namespace where the caller's
/// uid and gid are mapped to root (like `unshare --user --map-root-user --net`), which gives it
/// the capabilities to create and configure interfaces there without being root outside.
pub fn enter_new_netns(user: bool) -> io::Result<()> {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    sys::unshare_net(user).map_err(|e| {
        let hint =
            if user { " (are unprivileged user namespaces enabled? see kernel.unprivileged_userns_clone)" } else { "" };
        io::Error::new(e.kind(), format!("creating a network namespace: {e}{hint}"))
    })?;
    if user {
        // setgroups must be denied before an unprivileged process may write gid_map.
        std::fs::write("/proc/self/setgroups", "deny")?;
        std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))?;
        std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    }
    Ok(())
}

/// Gives this process (and what it starts) a private mount namespace in which `/etc/resolv.conf`
/// reads `contents`, the host's file untouched (as `ip netns exec` does with
/// `/etc/netns/NAME/resolv.conf`). Call it after [`enter_new_netns`]: in a user namespace the
/// process then owns the new mount namespace. Fails, changing nothing visible outside, if the
/// host has no `/etc/resolv.conf` to cover (a symlink is followed: the mount covers its target).
pub fn private_resolv_conf(contents: &str) -> io::Result<()> {
    use rustix::mount::{mount_bind, mount_change, MountPropagationFlags};
    sys::unshare_mount().map_err(|e| io::Error::new(e.kind(), format!("creating a mount namespace: {e}")))?;
    // Mounts made from here on must not propagate back to the host's namespace.
    mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC)
        .map_err(|e| io::Error::other(format!("making mounts private: {e}")))?;
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let source = std::env::temp_dir().join(format!("slirp-resolv.conf.{}.{nanos}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&source)
        .and_then(|mut f| io::Write::write_all(&mut f, contents.as_bytes()));
    let mounted = written.and_then(|()| {
        mount_bind(&source, "/etc/resolv.conf")
            .map_err(|e| io::Error::other(format!("bind-mounting over /etc/resolv.conf: {e}")))
    });
    // The mount holds the file; its name is not needed any more.
    let _ = std::fs::remove_file(&source);
    mounted
}

/// Sends `fd` over a unix stream socket with one byte of payload (`SCM_RIGHTS`).
pub fn send_fd(sock: &std::os::unix::net::UnixStream, fd: &OwnedFd, byte: u8) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::mem::MaybeUninit;
    let fds = [fd.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("ancillary buffer too small"));
    }
    let payload = [byte];
    rustix::net::sendmsg(sock, &[io::IoSlice::new(&payload)], &mut control, SendFlags::empty())?;
    Ok(())
}

/// Receives one byte and, if sent with it, one descriptor from a unix stream socket (blocking).
/// `Ok(None)` when the peer closed the socket without sending.
pub fn recv_fd(sock: &std::os::unix::net::UnixStream) -> io::Result<Option<(u8, Option<OwnedFd>)>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    use std::mem::MaybeUninit;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut payload = [0u8; 1];
    let msg = loop {
        match rustix::net::recvmsg(
            sock,
            &mut [io::IoSliceMut::new(&mut payload)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            other => break other?,
        }
    };
    let mut fd = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for f in fds {
                fd.get_or_insert(f);
            }
        }
    }
    if msg.bytes == 0 {
        return Ok(None);
    }
    Ok(Some((payload[0], fd)))
}
