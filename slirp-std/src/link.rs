//! Guest links: where the guest's Ethernet frames come from and go to.
//!
//! - [`GuestLink::datagram`]: one frame per `read`/`write` on a descriptor: a TAP (see
//!   [`crate::netns`]) or a `SOCK_DGRAM`/`SOCK_SEQPACKET` socket handed in by an embedder.
//! - [`GuestLink::stream`]: one already connected stream socket speaking QEMU's framing (each
//!   frame preceded by its length, 4 bytes big-endian).
//! - [`GuestLink::qemu_server`]: a listening unix socket for `-netdev stream`; one guest at a
//!   time, and a guest that disconnects can connect again.
//!
//! All descriptors are nonblocking; every operation returns at once.

use std::fs::File;
use std::io::{self, ErrorKind, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use mio::net::{UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use slirp_core::wire::virtio::{self, VirtioNetHdr};
use slirp_core::{GuestOffload, RxChecksum, TxOffload};

/// Largest frame we accept from or give to a guest: a 65535-byte IP datagram plus an Ethernet
/// header with a VLAN tag (QEMU's stream netdev caps frames the same way).
pub const MAX_FRAME: usize = 65535 + 18;

/// Guest-bound bytes a stream link buffers before it pushes back on the core.
const STREAM_OUT_LIMIT: usize = 256 * 1024;

/// Token of the link's data descriptor (TAP, socket, or the connected QEMU guest).
pub const TOKEN_DATA: Token = Token(0);
/// Token of the QEMU listening socket.
pub const TOKEN_LISTENER: Token = Token(1);

/// What [`GuestLink::send`] did with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// The link took the frame (or, for a TAP that is down or a QEMU server with no guest,
    /// discarded it as the medium would: the frame is gone either way).
    Taken,
    /// The link is full; try the same frame again once it is writable.
    WouldBlock,
}

/// What one [`GuestLink::recv`] call found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvOutcome {
    /// A frame of this many bytes is at the start of the buffer, with what the link vouches for
    /// about its transport checksum.
    Frame(usize, RxChecksum),
    /// Nothing more to read until the next readiness event.
    Empty,
}

/// A guest link. See the module documentation.
pub struct GuestLink {
    kind: Kind,
}

enum Kind {
    /// `vnet`: every frame comes and goes behind a virtio-net header (a TAP with
    /// `IFF_VNET_HDR`); `offload`: checksum and TCP segmentation offloads are on.
    Datagram {
        file: File,
        vnet: bool,
        offload: bool,
    },
    Stream(FramedStream),
    Qemu {
        listener: UnixListener,
        file: crate::sandbox::SocketFile,
        guest: Option<FramedStream>,
    },
}

/// A connected stream with QEMU's length-prefixed framing.
struct FramedStream {
    sock: UnixStream,
    inbuf: Vec<u8>,
    /// Bytes of `inbuf` already handed out as a frame (removed on the next `recv`).
    consumed: usize,
    outbuf: Vec<u8>,
    /// Bytes of `outbuf` already written.
    written: usize,
}

impl FramedStream {
    fn new(sock: UnixStream) -> FramedStream {
        FramedStream {
            sock,
            inbuf: Vec::with_capacity(MAX_FRAME + 4),
            consumed: 0,
            outbuf: Vec::with_capacity(STREAM_OUT_LIMIT),
            written: 0,
        }
    }

    /// The next whole frame, reading from the socket as needed. `Ok(None)` when no whole frame
    /// is buffered and the socket has nothing more right now. The frame is at
    /// `inbuf[4..4 + len]` until the next call.
    fn recv(&mut self) -> io::Result<Option<usize>> {
        if self.consumed > 0 {
            self.inbuf.drain(..self.consumed);
            self.consumed = 0;
        }
        loop {
            if self.inbuf.len() >= 4 {
                let len = u32::from_be_bytes([self.inbuf[0], self.inbuf[1], self.inbuf[2], self.inbuf[3]]) as usize;
                if len == 0 || len > MAX_FRAME {
                    return Err(io::Error::new(
                        ErrorKind::InvalidData,
                        format!("guest sent a frame length of {len} bytes"),
                    ));
                }
                if self.inbuf.len() >= 4 + len {
                    self.consumed = 4 + len;
                    return Ok(Some(len));
                }
            }
            let old = self.inbuf.len();
            self.inbuf.resize(old + 16384, 0);
            let r = self.sock.read(&mut self.inbuf[old..]);
            match r {
                Ok(0) => {
                    self.inbuf.truncate(old);
                    return Err(io::Error::new(ErrorKind::UnexpectedEof, "guest disconnected"));
                }
                Ok(n) => self.inbuf.truncate(old + n),
                Err(e) => {
                    self.inbuf.truncate(old);
                    if e.kind() == ErrorKind::Interrupted {
                        continue;
                    }
                    if e.kind() == ErrorKind::WouldBlock {
                        return Ok(None);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn frame(&self, len: usize) -> &[u8] {
        &self.inbuf[4..4 + len]
    }

    fn send(&mut self, frame: &[u8]) -> io::Result<SendOutcome> {
        if self.outbuf.len() - self.written + frame.len() + 4 > STREAM_OUT_LIMIT && self.outbuf.len() > self.written {
            self.flush()?;
            if self.outbuf.len() > self.written {
                return Ok(SendOutcome::WouldBlock);
            }
        }
        self.outbuf.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        self.outbuf.extend_from_slice(frame);
        Ok(SendOutcome::Taken)
    }

    /// Writes buffered bytes; Ok(true) when everything went out.
    fn flush(&mut self) -> io::Result<bool> {
        while self.written < self.outbuf.len() {
            match self.sock.write(&self.outbuf[self.written..]) {
                Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "guest stopped reading")),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.written == self.outbuf.len() {
            self.outbuf.clear();
            self.written = 0;
            Ok(true)
        } else {
            // Keep the buffer from growing without bound on a slow reader.
            if self.written > STREAM_OUT_LIMIT / 2 {
                self.outbuf.drain(..self.written);
                self.written = 0;
            }
            Ok(false)
        }
    }
}

fn interest() -> Interest {
    Interest::READABLE | Interest::WRITABLE
}

impl GuestLink {
    /// A link over a descriptor that carries one frame per read and write: a TAP opened with
    /// `IFF_NO_PI`, or a datagram/seqpacket socket. The descriptor is switched to nonblocking.
    ///
    /// A TAP opened with `IFF_VNET_HDR` (as [`open_tap_here`](crate::netns::open_tap_here)
    /// does) is recognised, and its offloads are switched on: the guest's kernel hands us
    /// partially checksummed frames and TCP super-frames of up to 64 KiB, and takes the same
    /// from us. [`without_offload`](Self::without_offload) turns them off again.
    pub fn datagram(fd: OwnedFd) -> io::Result<GuestLink> {
        rustix::fs::fcntl_setfl(&fd, rustix::fs::fcntl_getfl(&fd)? | rustix::fs::OFlags::NONBLOCK)?;
        let vnet = crate::sys::tun_flags(fd.as_fd()).is_some_and(|f| f & libc::IFF_VNET_HDR != 0);
        if vnet {
            crate::sys::tun_set_vnet(fd.as_fd(), true)?;
        }
        Ok(GuestLink { kind: Kind::Datagram { file: File::from(fd), vnet, offload: vnet } })
    }

    /// The same link with its offloads off (every frame complete and at most one MTU long both
    /// ways), for comparisons and for guests that mishandle them.
    pub fn without_offload(mut self) -> io::Result<GuestLink> {
        if let Kind::Datagram { file, vnet: true, offload } = &mut self.kind {
            crate::sys::tun_set_vnet(file.as_fd(), false)?;
            *offload = false;
        }
        Ok(self)
    }

    /// What the link does for guest-bound frames; pass it to
    /// [`Slirp::set_guest_offload`](slirp_core::Slirp::set_guest_offload).
    pub fn offload(&self) -> GuestOffload {
        match self.kind {
            Kind::Datagram { offload: true, .. } => GuestOffload { checksum: true, segmentation: true },
            _ => GuestOffload::default(),
        }
    }

    /// A link over one connected stream socket speaking QEMU's framing (for an embedder that
    /// already holds the connection, e.g. one end of a socketpair).
    pub fn stream(sock: std::os::unix::net::UnixStream) -> io::Result<GuestLink> {
        sock.set_nonblocking(true)?;
        Ok(GuestLink { kind: Kind::Stream(FramedStream::new(UnixStream::from_std(sock))) })
    }

    /// Listens on the unix socket `path` for a QEMU guest (`-netdev
    /// stream,id=n,server=off,addr.type=unix,addr.path=PATH`). Refuses to replace an existing
    /// file other than a stale socket.
    pub fn qemu_server(path: &Path) -> io::Result<GuestLink> {
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_socket() {
                // A socket file nobody listens on any more (a previous run); one somebody
                // listens on must not be stolen.
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        ErrorKind::AddrInUse,
                        format!("{}: another process is listening there", path.display()),
                    ));
                }
                std::fs::remove_file(path)?;
            } else {
                return Err(io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!("{}: exists and is not a socket", path.display()),
                ));
            }
        }
        let listener =
            UnixListener::bind(path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let file = crate::sandbox::SocketFile::new(path);
        Ok(GuestLink { kind: Kind::Qemu { listener, file, guest: None } })
    }

    /// Registers the link's descriptors with the event loop's poller.
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        match &mut self.kind {
            Kind::Datagram { file, .. } => registry.register(&mut SourceFd(&file.as_raw_fd()), TOKEN_DATA, interest()),
            Kind::Stream(s) => registry.register(&mut s.sock, TOKEN_DATA, interest()),
            Kind::Qemu { listener, .. } => registry.register(listener, TOKEN_LISTENER, Interest::READABLE),
        }
    }

    /// Whether a guest is there to talk to (always, except a QEMU server between guests).
    pub fn is_connected(&self) -> bool {
        match &self.kind {
            Kind::Qemu { guest, .. } => guest.is_some(),
            _ => true,
        }
    }

    /// Accepts waiting QEMU guests: the first becomes the guest if none is connected, later ones
    /// are turned away (one guest at a time). Returns whether a new guest was connected.
    pub fn accept(&mut self, registry: &Registry) -> io::Result<bool> {
        let Kind::Qemu { listener, guest, .. } = &mut self.kind else {
            return Ok(false);
        };
        let mut connected = false;
        loop {
            match listener.accept() {
                Ok((mut sock, _)) => {
                    if guest.is_some() {
                        log::warn!("a second QEMU guest tried to connect; refused (one guest at a time)");
                        drop(sock);
                        continue;
                    }
                    // The previous guest's socket was deregistered when it left, so the
                    // data token is free again.
                    registry.register(&mut sock, TOKEN_DATA, interest())?;
                    log::info!("QEMU guest connected");
                    *guest = Some(FramedStream::new(sock));
                    connected = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(connected),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionAborted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads the next frame into `buf` (at least [`MAX_FRAME`] bytes long).
    ///
    /// Errors are fatal for the link, except on a QEMU server, where a failing guest is
    /// disconnected (logged) and `Empty` returned: the server waits for the next one.
    pub fn recv(&mut self, registry: &Registry, buf: &mut [u8]) -> io::Result<RecvOutcome> {
        match &mut self.kind {
            Kind::Datagram { file, vnet, .. } => loop {
                let mut hdr = [0u8; virtio::HEADER_LEN];
                let r = if *vnet {
                    file.read_vectored(&mut [IoSliceMut::new(&mut hdr), IoSliceMut::new(buf)])
                } else {
                    file.read(buf)
                };
                match r {
                    Ok(0) => return Err(io::Error::new(ErrorKind::UnexpectedEof, "guest link closed")),
                    Ok(n) if !*vnet => return Ok(RecvOutcome::Frame(n, RxChecksum::Unverified)),
                    // A header alone would be a kernel bug; an empty frame is dropped as short.
                    Ok(n) => {
                        let checksum =
                            VirtioNetHdr::parse(&hdr).map_or(RxChecksum::Unverified, |h| RxChecksum::from_virtio(&h));
                        return Ok(RecvOutcome::Frame(n.saturating_sub(virtio::HEADER_LEN), checksum));
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(RecvOutcome::Empty),
                    Err(e) => return Err(e),
                }
            },
            Kind::Stream(s) => match s.recv()? {
                Some(len) => {
                    buf[..len].copy_from_slice(s.frame(len));
                    Ok(RecvOutcome::Frame(len, RxChecksum::Unverified))
                }
                None => Ok(RecvOutcome::Empty),
            },
            Kind::Qemu { guest, .. } => {
                let Some(s) = guest else {
                    return Ok(RecvOutcome::Empty);
                };
                match s.recv() {
                    Ok(Some(len)) => {
                        buf[..len].copy_from_slice(s.frame(len));
                        Ok(RecvOutcome::Frame(len, RxChecksum::Unverified))
                    }
                    Ok(None) => Ok(RecvOutcome::Empty),
                    Err(e) => {
                        log::info!("QEMU guest gone ({e}); waiting for the next one");
                        let mut s = guest.take().expect("checked above");
                        let _ = registry.deregister(&mut s.sock);
                        Ok(RecvOutcome::Empty)
                    }
                }
            }
        }
    }

    /// Offers one frame to the guest, with what it needs from the link (see
    /// [`offload`](Self::offload); nothing unless the engine was told the link's offloads).
    pub fn send(&mut self, registry: &Registry, frame: &[u8], offload: TxOffload) -> io::Result<SendOutcome> {
        match &mut self.kind {
            Kind::Datagram { file, vnet, .. } => loop {
                let r = if *vnet {
                    let hdr = offload.virtio_net_hdr().to_bytes();
                    file.write_vectored(&[IoSlice::new(&hdr), IoSlice::new(frame)])
                } else {
                    file.write(frame)
                };
                match r {
                    Ok(_) => return Ok(SendOutcome::Taken),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(SendOutcome::WouldBlock),
                    // A TAP whose interface is down refuses frames with EIO; so does a real
                    // NIC with no carrier drop them. The guest brings it up when it wants them.
                    Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(SendOutcome::Taken),
                    // A frame the link can never carry (larger than its MTU).
                    Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                        log::debug!("guest link refused a {}-byte frame: {e}", frame.len());
                        return Ok(SendOutcome::Taken);
                    }
                    Err(e) => return Err(e),
                }
            },
            Kind::Stream(s) => s.send(frame),
            Kind::Qemu { guest, .. } => {
                let Some(s) = guest else {
                    // No guest: the frame has nowhere to go, as on an unplugged cable.
                    return Ok(SendOutcome::Taken);
                };
                match s.send(frame) {
                    Ok(o) => Ok(o),
                    Err(e) => {
                        log::info!("QEMU guest gone ({e}); waiting for the next one");
                        let mut s = guest.take().expect("checked above");
                        let _ = registry.deregister(&mut s.sock);
                        Ok(SendOutcome::Taken)
                    }
                }
            }
        }
    }

    /// Pushes buffered guest-bound bytes (stream links). Returns false while some remain.
    pub fn flush(&mut self, registry: &Registry) -> io::Result<bool> {
        match &mut self.kind {
            Kind::Datagram { .. } => Ok(true),
            Kind::Stream(s) => s.flush(),
            Kind::Qemu { guest, .. } => {
                let Some(s) = guest else { return Ok(true) };
                match s.flush() {
                    Ok(done) => Ok(done),
                    Err(e) => {
                        log::info!("QEMU guest gone ({e}); waiting for the next one");
                        let mut s = guest.take().expect("checked above");
                        let _ = registry.deregister(&mut s.sock);
                        Ok(true)
                    }
                }
            }
        }
    }
}

impl Drop for GuestLink {
    fn drop(&mut self) {
        if let Kind::Qemu { file, .. } = &self.kind {
            // Through its directory's descriptor: the path may not resolve in the sandbox.
            file.remove();
        }
    }
}
