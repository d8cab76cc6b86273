//! The control API: a unix socket speaking slirp4netns' JSON API (`--api-socket PATH`).
//!
//! One request per connection, as slirp4netns: the client connects, sends one JSON object, gets
//! one JSON line back, and the connection is closed. Requests:
//!
//! | request | answer |
//! | --- | --- |
//! | `{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}}` | `{"return":{"id":1}}` |
//! | `{"execute":"list_hostfwd"}` | `{"entries":[{"id":1,"proto":"udp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}]}` |
//! | `{"execute":"remove_hostfwd","arguments":{"id":1}}` | `{"return":{}}` |
//! | `{"execute":"list_connections"}` | `{"return":{"connections":[{"proto":"udp","guest_addr":"10.0.2.100","guest_port":5353,"idle_ms":120},{"proto":"tcp","state":"ESTABLISHED","guest_addr":"10.0.2.100","guest_port":40000,"remote_addr":"198.51.100.1","remote_port":80,"host_peer_addr":"198.51.100.1","host_peer_port":80,"send_queue":0,"recv_queue":0,"forwarded":false}]}}` |
//! | `{"execute":"stats"}` | `{"return":{"rx_frames":..,"drops":{"reason":n,..},..}}` |
//! | `{"execute":"add_guestfwd","arguments":{"guest_addr":"10.0.2.200","guest_port":4321,"target":"cmd:tr a-z A-Z"}}` | `{"return":{"id":0}}` |
//! | `{"execute":"list_guestfwd"}` | `{"entries":[{"id":0,"guest_addr":"10.0.2.200","guest_port":4321,"target":"cmd:tr a-z A-Z"}]}` |
//! | `{"execute":"remove_guestfwd","arguments":{"id":0}}` | `{"return":{}}` |
//!
//! Anything wrong gets `{"error":{"desc":"..."}}`. `host_addr` defaults to 0.0.0.0 and
//! `guest_addr` to the same address `--hostfwd` uses when it names none. `list_hostfwd` shows
//! every forward, TCP and UDP, also those made by `--hostfwd`, with the host address actually bound
//! and the guest address actually used, in id order; TCP and UDP forwards share one id space, so
//! `remove_hostfwd` needs no protocol. (`list_hostfwd` answers without `"return"`, exactly as
//! slirp4netns does.) In `list_connections`, a TCP connection's `remote` is the address the guest
//! sees, `host_peer` the host-side peer (the destination, or the client of a forward),
//! `send_queue` the host's bytes not yet acknowledged by the guest and `recv_queue` the guest's
//! bytes the host has not taken yet.
//!
//! Robustness: everything runs on the event loop's thread, nonblocking, in bounded work per
//! event. A request is read until one complete JSON value has arrived, recognised by an O(1)
//! per byte scanner and parsed once; at most [`MAX_REQUEST`] bytes (more is an error), the first
//! non-blank byte must open an object, and bytes after the value are ignored. A connection that
//! has not finished (request and answer) within [`CONNECTION_TIMEOUT`] is closed, and at most
//! [`MAX_CONNECTIONS`] are open at once; further ones get an error line and are closed at once.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Registry, Token};
use serde_json::{json, Map, Value};
use slirp_core::{ForwardError, Instant, Slirp};

use crate::event_loop::LoopHost;
use crate::host::StdHost;
use crate::options::FwdProto;

/// Largest request accepted, in bytes (slirp4netns: 4 KiB).
pub const MAX_REQUEST: usize = 64 * 1024;
/// How long a connection may take to send its request and read the answer.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// API connections open at once; more are answered with an error and closed.
pub const MAX_CONNECTIONS: usize = 16;
/// Connections accepted per turn of the loop (a flood of connects cannot hold the loop).
const ACCEPT_BATCH: usize = 32;

/// Event-loop token of the listening socket.
pub const TOKEN_API_LISTENER: Token = Token(7);
/// Event-loop token of API connection slot 0; slot `i` uses `TOKEN_API_CONN_BASE + i`. Far
/// above the host sockets' tokens (which count up from 16, one per open socket).
pub const TOKEN_API_CONN_BASE: usize = 1 << 30;

/// An error answer: `{"error":{"desc":...}}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError(pub String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> ApiError {
        ApiError(format!("bad request: {}", msg.into()))
    }

    /// The answer object.
    pub fn to_json(&self) -> Value {
        json!({ "error": { "desc": self.0 } })
    }
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// `add_hostfwd`.
    AddHostfwd(AddHostfwd),
    /// `list_hostfwd`.
    ListHostfwd,
    /// `remove_hostfwd` with this id.
    RemoveHostfwd(u32),
    /// `list_connections`.
    ListConnections,
    /// `stats`.
    Stats,
    /// `add_guestfwd`: a guest-forward rule for this endpoint, served by this target.
    AddGuestfwd(SocketAddr, crate::host::GuestForwardTarget),
    /// `list_guestfwd`.
    ListGuestfwd,
    /// `remove_guestfwd` with this id.
    RemoveGuestfwd(u32),
}

/// The arguments of `add_hostfwd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddHostfwd {
    /// Transport.
    pub proto: FwdProto,
    /// `tcp4`/`udp4`: `Some(false)`, IPv4 only; `tcp6`/`udp6`: `Some(true)`, IPv6 only; `tcp`/`udp`:
    /// `None`, the family of `host` (both with IPv6 on, for a wildcard host address).
    pub v6: Option<bool>,
    /// Host address and port to listen on (either family).
    pub host: SocketAddr,
    /// The host address was left out, empty, `0.0.0.0` or `::`: all addresses (of both
    /// families with IPv6 on, as slirp4netns).
    pub wildcard: bool,
    /// Guest address (either family); `None`: the default (see [`ApiServer::bind`]).
    pub guest_addr: Option<IpAddr>,
    /// Guest port.
    pub guest_port: u16,
}

/// Forwards the API added as one rule over both families (`add_hostfwd` on a wildcard address
/// with IPv6 on): the IPv4 forward's id, which the rule goes by, and its IPv6 twin's. Kept by
/// the event loop for its API server.
#[derive(Debug, Default)]
pub struct Twins(std::collections::HashMap<u32, u32>);

impl Twins {
    /// The IPv6 twin of rule `id`, if it has one.
    pub fn of(&self, id: u32) -> Option<u32> {
        self.0.get(&id).copied()
    }

    fn is_twin(&self, id: u32) -> bool {
        self.0.values().any(|&t| t == id)
    }
}

fn proto_name(p: FwdProto) -> &'static str {
    match p {
        FwdProto::Tcp => "tcp",
        FwdProto::Udp => "udp",
    }
}

/// Reads `{"execute": ..., "arguments": {...}}`.
pub fn parse_request(v: &Value) -> Result<Request, ApiError> {
    let obj = v.as_object().ok_or_else(|| ApiError::bad("cannot parse JSON: the request must be a JSON object"))?;
    let execute = match obj.get("execute") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::bad("\"execute\" must be a string")),
        None => return Err(ApiError::bad("no execute found")),
    };
    let empty = Map::new();
    let args = match obj.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::bad(format!("{execute}: \"arguments\" must be an object"))),
    };
    match execute {
        "add_hostfwd" => parse_add(args).map(Request::AddHostfwd),
        "list_hostfwd" => Ok(Request::ListHostfwd),
        "remove_hostfwd" => {
            let id = args
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::bad("remove_hostfwd: bad arguments.id (expected a forward id)"))?;
            Ok(Request::RemoveHostfwd(id))
        }
        "add_guestfwd" => {
            let bad = |what: &str| ApiError::bad(format!("add_guestfwd: bad arguments.{what}"));
            let addr = args
                .get("guest_addr")
                .and_then(Value::as_str)
                .map(|s| s.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(s))
                .and_then(|s| s.parse::<IpAddr>().ok())
                .ok_or_else(|| bad("guest_addr (expected an IPv4 or IPv6 address)"))?;
            let port = args
                .get("guest_port")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&p| p != 0)
                .ok_or_else(|| bad("guest_port (expected 1-65535)"))?;
            let target = args
                .get("target")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("target (expected cmd:, unix: or tcp:)"))?;
            let target = crate::host::GuestForwardTarget::parse(target).map_err(|e| bad(&format!("target ({e})")))?;
            Ok(Request::AddGuestfwd(SocketAddr::new(addr, port), target))
        }
        "list_guestfwd" => Ok(Request::ListGuestfwd),
        "remove_guestfwd" => {
            let id = args
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| ApiError::bad("remove_guestfwd: bad arguments.id (expected a rule id)"))?;
            Ok(Request::RemoveGuestfwd(id))
        }
        "list_connections" => Ok(Request::ListConnections),
        "stats" => Ok(Request::Stats),
        other => {
            // Quote it through JSON so control characters in it stay harmless in logs.
            Err(ApiError::bad(format!("unknown execute {}", Value::from(truncate(other, 64)))))
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn parse_add(args: &Map<String, Value>) -> Result<AddHostfwd, ApiError> {
    let bad = |what: &str| ApiError::bad(format!("add_hostfwd: bad arguments.{what}"));
    let (proto, v6) = match args.get("proto").and_then(Value::as_str) {
        Some("udp") => (FwdProto::Udp, None),
        Some("tcp") => (FwdProto::Tcp, None),
        Some("udp4") => (FwdProto::Udp, Some(false)),
        Some("tcp4") => (FwdProto::Tcp, Some(false)),
        Some("udp6") => (FwdProto::Udp, Some(true)),
        Some("tcp6") => (FwdProto::Tcp, Some(true)),
        _ => return Err(bad("proto (expected \"tcp\", \"udp\", \"tcp4\", \"udp4\", \"tcp6\" or \"udp6\")")),
    };
    let addr = |key: &str| -> Result<Option<IpAddr>, ApiError> {
        match args.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => {
                let s = s.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(s);
                s.parse().map(Some).map_err(|_| bad(&format!("{key} (expected an IPv4 or IPv6 address)")))
            }
            Some(_) => Err(bad(&format!("{key} (expected an IPv4 or IPv6 address)"))),
        }
    };
    let port = |key: &str| -> Result<u16, ApiError> {
        args.get(key)
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|&p| p != 0)
            .ok_or_else(|| bad(&format!("{key} (expected 1-65535)")))
    };
    let given = addr("host_addr")?;
    let wildcard = given.is_none_or(|a| a.is_unspecified());
    let host_addr = match (given, v6) {
        (Some(a), Some(want_v6)) if !a.is_unspecified() && a.is_ipv6() != want_v6 => {
            return Err(bad("host_addr (not of the family the proto names)"));
        }
        (_, Some(true)) if wildcard => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        (_, _) if wildcard => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (Some(a), _) => a,
        (None, _) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let host_port = port("host_port")?;
    let guest_addr = addr("guest_addr")?;
    let guest_port = port("guest_port")?;
    Ok(AddHostfwd { proto, v6, host: SocketAddr::new(host_addr, host_port), wildcard, guest_addr, guest_port })
}

/// What the API acts on: the engine, its host side, and the time.
pub struct Context<'s, 'a, H: LoopHost = StdHost> {
    /// The engine.
    pub slirp: &'s mut Slirp<'a>,
    /// Its host side.
    pub host: &'s mut H,
    /// Now, on the engine's clock.
    pub now: Instant,
    /// Guest address of forwards that name none.
    pub default_guest: Ipv4Addr,
    /// Whether guest forwards may run commands or connect to unix socket paths (not in the
    /// sandbox's empty root, see [`ApiServer::set_local_targets`]).
    pub local_targets: bool,
    /// Rules added over both families.
    pub twins: &'s mut Twins,
}

/// Carries out `req`; returns the answer object.
pub fn execute<H: LoopHost>(req: &Request, cx: &mut Context<'_, '_, H>) -> Value {
    match run(req, cx) {
        Ok(v) => v,
        Err(e) => e.to_json(),
    }
}

fn run<H: LoopHost>(req: &Request, cx: &mut Context<'_, '_, H>) -> Result<Value, ApiError> {
    match *req {
        Request::AddHostfwd(a) => {
            let ipv6_on = cx.slirp.config().ipv6.enabled;
            if a.v6 == Some(true) && !ipv6_on {
                return Err(ApiError::bad("add_hostfwd: bad arguments.proto (IPv6 is off: start with --enable-ipv6)"));
            }
            // The guest address of each family that names none: .100 (or the first DHCP
            // address) and ::100 (or the first DHCPv6 address).
            let default4 = cx.default_guest;
            let default6 = if default4.is_unspecified() {
                std::net::Ipv6Addr::UNSPECIFIED
            } else {
                std::net::Ipv6Addr::from(u128::from(cx.slirp.config().ipv6.prefix) | 0x100)
            };
            let guest_for = |host_v6: bool| -> IpAddr {
                match a.guest_addr {
                    // A dual rule naming the guest by one family reaches the other family's
                    // listener's clients at the guest's address of that family.
                    Some(g) if a.wildcard && a.v6.is_none() && ipv6_on && g.is_ipv6() != host_v6 => {
                        if host_v6 {
                            IpAddr::V6(default6)
                        } else {
                            IpAddr::V4(default4)
                        }
                    }
                    Some(g) => g,
                    None if host_v6 && ipv6_on => IpAddr::V6(default6),
                    None => IpAddr::V4(default4),
                }
            };
            let mut add = |host: SocketAddr| -> Result<u32, ApiError> {
                let guest = SocketAddr::new(guest_for(host.is_ipv6()), a.guest_port);
                let id = match a.proto {
                    FwdProto::Udp => cx.slirp.add_udp_forward(cx.host, host, guest),
                    FwdProto::Tcp => cx.slirp.add_tcp_forward(cx.host, host, guest),
                }
                .map_err(|e| ApiError(format!("add_hostfwd: {e}")))?;
                log::info!("api: forwarding {} {host} to {guest} (id {id})", proto_name(a.proto));
                Ok(id)
            };
            let both = a.wildcard && a.v6.is_none() && ipv6_on;
            let id = add(a.host)?;
            if both {
                let host6 = SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), a.host.port());
                match add(host6) {
                    Ok(twin) => {
                        cx.twins.0.insert(id, twin);
                    }
                    Err(e) => {
                        // All or nothing: the IPv4 half goes too.
                        let _ = remove_forward(cx, id);
                        return Err(e);
                    }
                }
            }
            Ok(json!({ "return": { "id": id } }))
        }
        Request::ListHostfwd => {
            let all = forwards(cx.slirp);
            let find = |id: u32| all.iter().find(|f| f.0 == id).copied();
            let entries: Vec<Value> = all
                .iter()
                .filter(|f| !cx.twins.is_twin(f.0))
                .map(|&f| forward_entry(f, cx.twins.of(f.0).and_then(find)))
                .collect();
            Ok(json!({ "entries": entries }))
        }
        Request::RemoveHostfwd(id) => match remove_forward(cx, id) {
            Ok(()) => {
                if let Some(twin) = cx.twins.0.remove(&id) {
                    let _ = remove_forward(cx, twin);
                }
                log::info!("api: removed forward {id}");
                Ok(json!({ "return": {} }))
            }
            Err(ForwardError::NotFound) => {
                Err(ApiError::bad(format!("remove_hostfwd: bad arguments.id (no forward has id {id})")))
            }
            Err(e) => Err(ApiError(format!("remove_hostfwd: {e}"))),
        },
        Request::ListConnections => {
            let now = cx.now;
            let connections: Vec<Value> = cx
                .slirp
                .udp_flows()
                .map(|(guest, last)| {
                    json!({
                        "proto": "udp",
                        "guest_addr": guest.ip().to_string(),
                        "guest_port": guest.port(),
                        "idle_ms": now.saturating_duration_since(last).as_millis() as u64,
                    })
                })
                .chain(cx.slirp.tcp_connections().map(|c| {
                    json!({
                        "proto": "tcp",
                        "state": c.state.to_string(),
                        "guest_addr": c.guest.ip().to_string(),
                        "guest_port": c.guest.port(),
                        "remote_addr": c.remote.ip().to_string(),
                        "remote_port": c.remote.port(),
                        "host_peer_addr": c.host_peer.ip().to_string(),
                        "host_peer_port": c.host_peer.port(),
                        "send_queue": c.send_queue,
                        "recv_queue": c.recv_queue,
                        "forwarded": c.forwarded,
                    })
                }))
                .collect();
            Ok(json!({ "return": { "connections": connections } }))
        }
        Request::Stats => Ok(json!({ "return": stats(cx) })),
        Request::AddGuestfwd(addr, ref target) => {
            use crate::host::GuestForwardTarget as T;
            if !cx.local_targets && matches!(target, T::Command(_) | T::Pty(_) | T::Unix(_)) {
                return Err(ApiError(
                    "add_guestfwd: the sandbox runs no commands and has no filesystem: cmd:, pty: and unix: targets \
                     need slirp started with one such --guestfwd rule, or with --sandbox off"
                        .into(),
                ));
            }
            let id = cx.slirp.add_guest_forward(addr).map_err(|e| ApiError(format!("add_guestfwd: {e}")))?;
            if !cx.host.set_guest_forward(id, target.clone()) {
                let _ = cx.slirp.remove_guest_forward(id);
                return Err(ApiError("add_guestfwd: this host serves no guest forwards".into()));
            }
            log::info!("api: guest connections to {addr} served by {target} (id {id})");
            Ok(json!({ "return": { "id": id } }))
        }
        Request::ListGuestfwd => {
            let entries: Vec<Value> = cx
                .slirp
                .guest_forwards()
                .map(|g| {
                    let target = cx.host.guest_forward_target(g.id).map(|t| t.to_string()).unwrap_or_default();
                    json!({ "id": g.id, "guest_addr": g.addr.ip().to_string(), "guest_port": g.addr.port(), "target": target })
                })
                .collect();
            Ok(json!({ "entries": entries }))
        }
        Request::RemoveGuestfwd(id) => match cx.slirp.remove_guest_forward(id) {
            Ok(()) => {
                cx.host.remove_guest_forward(id);
                log::info!("api: removed guest forward {id}");
                Ok(json!({ "return": {} }))
            }
            Err(_) => Err(ApiError::bad(format!("remove_guestfwd: no guest forward has id {id}"))),
        },
    }
}

/// Removes forward `id`, whichever protocol it is (one id space).
fn remove_forward<H: LoopHost>(cx: &mut Context<'_, '_, H>, id: u32) -> Result<(), ForwardError> {
    match cx.slirp.remove_udp_forward(cx.host, id) {
        Err(ForwardError::NotFound) => cx.slirp.remove_tcp_forward(cx.host, id),
        r => r,
    }
}

/// Every forward, TCP and UDP, in id order: (id, proto, host address bound, guest endpoint).
fn forwards(slirp: &Slirp<'_>) -> Vec<(u32, FwdProto, SocketAddr, SocketAddr)> {
    let mut all: Vec<_> = slirp
        .udp_forwards()
        .map(|f| (f.id, FwdProto::Udp, f.host, f.guest))
        .chain(slirp.tcp_forwards().map(|f| (f.id, FwdProto::Tcp, f.host, f.guest)))
        .collect();
    all.sort_unstable_by_key(|f| f.0);
    all
}

/// A `list_hostfwd` entry as slirp4netns writes it: `host_addr`/`guest_addr` for the IPv4
/// side, `host_addr6`/`guest_addr6` for the IPv6 side (one rule may have both).
fn forward_entry(
    (id, proto, host, guest): (u32, FwdProto, SocketAddr, SocketAddr),
    twin: Option<(u32, FwdProto, SocketAddr, SocketAddr)>,
) -> Value {
    let mut e = Map::new();
    e.insert("id".into(), id.into());
    e.insert("proto".into(), proto_name(proto).into());
    let key = |base: &str, a: &SocketAddr| if a.is_ipv6() { format!("{base}6") } else { base.to_string() };
    e.insert(key("host_addr", &host), host.ip().to_string().into());
    if let Some((_, _, h, _)) = twin {
        e.insert(key("host_addr", &h), h.ip().to_string().into());
    }
    e.insert("host_port".into(), host.port().into());
    e.insert(key("guest_addr", &guest), guest.ip().to_string().into());
    if let Some((_, _, _, g)) = twin {
        e.insert(key("guest_addr", &g), g.ip().to_string().into());
    }
    e.insert("guest_port".into(), guest.port().into());
    Value::Object(e)
}

fn stats<H: LoopHost>(cx: &Context<'_, '_, H>) -> Value {
    let s = cx.slirp.stats();
    let drops: Map<String, Value> = s.drops().map(|(r, n)| (r.name().to_string(), Value::from(n))).collect();
    json!({
        "rx_frames": s.rx_frames,
        "rx_bytes": s.rx_bytes,
        "tx_frames": s.tx_frames,
        "tx_bytes": s.tx_bytes,
        "icmp_errors_sent": s.icmp_errors_sent,
        "arp_requests_sent": s.arp_requests_sent,
        "reassembled": s.reassembled,
        "fragmented": s.fragmented,
        "dropped_total": s.dropped_total(),
        "drops": drops,
        "udp_flows": cx.slirp.udp_flow_count(),
        "udp_forwards": cx.slirp.udp_forwards().count(),
        "tcp_connections": cx.slirp.tcp_connection_count(),
        "tcp_connections_total": s.tcp_connections,
        "tcp_half_open": cx.slirp.tcp_half_open_count(),
        "tcp_time_wait_reclaimed": s.tcp_time_wait_reclaimed,
        "tcp_forwards": cx.slirp.tcp_forwards().count(),
        "host_sockets": cx.host.open_sockets(),
        "guest_tx_queue": cx.slirp.tx_queue_len(),
    })
}

/// Handles one request's bytes: parses, executes, and returns the answer line (JSON and `\n`).
pub fn answer<H: LoopHost>(bytes: &[u8], cx: &mut Context<'_, '_, H>) -> Vec<u8> {
    let v = match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => match parse_request(&v) {
            Ok(req) => execute(&req, cx),
            Err(e) => e.to_json(),
        },
        Err(e) => ApiError::bad(format!("cannot parse JSON: {e}")).to_json(),
    };
    let mut line = v.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// What [`RequestReader`] has after some bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadState {
    /// The request is not complete yet.
    NeedMore,
    /// One complete JSON value: its bytes (parse them with [`answer`]).
    Complete(Vec<u8>),
    /// The request cannot be valid: answer with this error.
    Invalid(ApiError),
}

/// Collects one request, bounded by [`MAX_REQUEST`], and tells when a complete JSON object has
/// arrived. O(1) work per byte: it tracks string, escape and nesting state only; the value is
/// parsed once, when its closing brace arrives.
#[derive(Debug)]
pub struct RequestReader {
    buf: Vec<u8>,
    limit: usize,
    started: bool,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl Default for RequestReader {
    fn default() -> Self {
        RequestReader::new(MAX_REQUEST)
    }
}

impl RequestReader {
    /// A reader accepting requests of up to `limit` bytes.
    pub fn new(limit: usize) -> RequestReader {
        RequestReader { buf: Vec::new(), limit, started: false, depth: 0, in_string: false, escaped: false }
    }

    /// Takes the next bytes of the request. After a result other than `NeedMore` the reader
    /// is spent; whatever follows the value is ignored.
    pub fn push(&mut self, data: &[u8]) -> ReadState {
        let room = self.limit - self.buf.len();
        let take = data.len().min(room);
        for (i, &b) in data[..take].iter().enumerate() {
            match self.step(b) {
                Ok(false) => {}
                Ok(true) => {
                    self.buf.extend_from_slice(&data[..=i]);
                    return ReadState::Complete(std::mem::take(&mut self.buf));
                }
                Err(e) => return ReadState::Invalid(e),
            }
        }
        if data.len() > room {
            return ReadState::Invalid(ApiError::bad(format!("request larger than {} bytes", self.limit)));
        }
        self.buf.extend_from_slice(data);
        ReadState::NeedMore
    }

    /// The client closed its side: what it sent is all there is.
    pub fn finish(&mut self) -> ReadState {
        if self.started {
            ReadState::Invalid(ApiError::bad("incomplete JSON request"))
        } else {
            ReadState::Invalid(ApiError::bad("empty request"))
        }
    }

    /// One byte; `Ok(true)` when it closes the top-level object.
    fn step(&mut self, b: u8) -> Result<bool, ApiError> {
        if !self.started {
            return match b {
                b' ' | b'\t' | b'\n' | b'\r' => Ok(false),
                b'{' => {
                    self.started = true;
                    self.depth = 1;
                    Ok(false)
                }
                _ => Err(ApiError::bad("cannot parse JSON: the request must be a JSON object")),
            };
        }
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if b == b'\\' {
                self.escaped = true;
            } else if b == b'"' {
                self.in_string = false;
            }
            return Ok(false);
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => {
                self.depth -= 1;
                return Ok(self.depth == 0);
            }
            _ => {}
        }
        Ok(false)
    }
}

/// One API connection.
struct Conn {
    stream: UnixStream,
    deadline: Instant,
    state: ConnState,
}

enum ConnState {
    Reading(RequestReader),
    /// The answer, and how much of it is written.
    Writing(Vec<u8>, usize),
}

/// What to do with a connection after some work.
enum Next {
    Keep,
    Close,
}

/// The listening socket and its connections. Driven by [`EventLoop`](crate::EventLoop): see
/// [`EventLoop::serve_api`](crate::EventLoop::serve_api).
pub struct ApiServer {
    listener: UnixListener,
    path: PathBuf,
    /// The socket file we made: only that file is removed on drop.
    file: crate::sandbox::SocketFile,
    default_guest: Ipv4Addr,
    local_targets: bool,
    conns: Vec<Option<Conn>>,
    /// Slots with an event since the last turn (bit `i`: slot `i`).
    ready: u32,
    /// The listener may have connections waiting (an event, or a full accept batch).
    accept_pending: bool,
}

const _: () = assert!(MAX_CONNECTIONS <= 32, "ApiServer::ready is a 32-bit mask");

impl ApiServer {
    /// Listens on `path`. A stale socket file there is replaced (as slirp4netns does); any
    /// other file is an error. Forwards added without `guest_addr` go to `default_guest`
    /// (0.0.0.0: the core's first DHCP address).
    pub fn bind(path: &Path, default_guest: Ipv4Addr) -> io::Result<ApiServer> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
            Ok(_) => {
                return Err(io::Error::new(ErrorKind::AlreadyExists, "exists and is not a socket"));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let listener = UnixListener::bind(path)?;
        let file = crate::sandbox::SocketFile::new(path);
        Ok(ApiServer {
            listener,
            path: path.to_path_buf(),
            file,
            default_guest,
            local_targets: true,
            conns: (0..MAX_CONNECTIONS).map(|_| None).collect(),
            ready: 0,
            accept_pending: true,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the guest address of forwards that name none.
    pub fn set_default_guest(&mut self, addr: Ipv4Addr) {
        self.default_guest = addr;
    }

    /// Whether `add_guestfwd` may add `cmd:`, `pty:` and `unix:` targets (the default). Off
    /// in the sandbox when it keeps no filesystem or runs no commands: such a rule could only
    /// refuse every connection, so the request is refused instead.
    pub fn set_local_targets(&mut self, allowed: bool) {
        self.local_targets = allowed;
    }

    /// See [`ApiServer::set_local_targets`].
    pub fn local_targets(&self) -> bool {
        self.local_targets
    }

    /// The guest address of forwards that name none.
    pub fn default_guest(&self) -> Ipv4Addr {
        self.default_guest
    }

    /// Watches the listener with `registry` (under [`TOKEN_API_LISTENER`]).
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        registry.register(&mut self.listener, TOKEN_API_LISTENER, Interest::READABLE)
    }

    /// Whether `token` is the API's; records the event for the next [`ApiServer::turn`].
    pub fn event(&mut self, token: Token) -> bool {
        if token == TOKEN_API_LISTENER {
            self.accept_pending = true;
            return true;
        }
        match token.0.checked_sub(TOKEN_API_CONN_BASE) {
            Some(i) if i < MAX_CONNECTIONS => {
                self.ready |= 1 << i;
                true
            }
            _ => false,
        }
    }

    /// Whether work is waiting that no event will announce again (the loop must not sleep).
    pub fn has_pending(&self) -> bool {
        self.accept_pending || self.ready != 0
    }

    /// The earliest connection deadline.
    pub fn poll_at(&self) -> Option<Instant> {
        self.conns.iter().flatten().map(|c| c.deadline).min()
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns.iter().flatten().count()
    }

    /// Accepts, reads, answers and writes what is ready; closes connections past their
    /// deadline. Bounded work: at most `ACCEPT_BATCH` accepts and `MAX_CONNECTIONS`
    /// connections of at most [`MAX_REQUEST`] bytes each.
    pub fn turn<H: LoopHost>(&mut self, registry: &Registry, cx: &mut Context<'_, '_, H>) {
        if self.accept_pending {
            self.accept(registry, cx.now);
        }
        while self.ready != 0 {
            let i = self.ready.trailing_zeros() as usize;
            self.ready &= !(1 << i);
            let Some(conn) = &mut self.conns[i] else { continue };
            if let Next::Close = conn.work(cx) {
                self.close(registry, i);
            }
        }
        for i in 0..MAX_CONNECTIONS {
            if self.conns[i].as_ref().is_some_and(|c| c.deadline <= cx.now) {
                log::debug!("api: closing a connection that took longer than {CONNECTION_TIMEOUT:?}");
                self.close(registry, i);
            }
        }
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        self.accept_pending = false;
        for _ in 0..ACCEPT_BATCH {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: try again at the next event or turn.
                    log::warn!("api: accept: {e}");
                    return;
                }
            };
            let Some(i) = self.conns.iter().position(Option::is_none) else {
                let mut s = stream;
                let line = ApiError(format!("too many API connections (at most {MAX_CONNECTIONS})")).to_json();
                // Best effort: a fresh socket's buffer takes one short line.
                let _ = s.write(format!("{line}\n").as_bytes());
                discard_input(&mut s);
                continue;
            };
            let mut stream = stream;
            let token = Token(TOKEN_API_CONN_BASE + i);
            if let Err(e) = registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
                log::warn!("api: cannot watch a connection: {e}");
                continue;
            }
            self.conns[i] = Some(Conn {
                stream,
                deadline: now + CONNECTION_TIMEOUT,
                state: ConnState::Reading(RequestReader::default()),
            });
            // Read at once: the request often arrives with the connection.
            self.ready |= 1 << i;
        }
        // A full batch: more may wait, and no new event will say so.
        self.accept_pending = true;
    }

    fn close(&mut self, registry: &Registry, i: usize) {
        if let Some(mut c) = self.conns[i].take() {
            let _ = registry.deregister(&mut c.stream);
            discard_input(&mut c.stream);
        }
        self.ready &= !(1 << i);
    }
}

impl Conn {
    fn work<H: LoopHost>(&mut self, cx: &mut Context<'_, '_, H>) -> Next {
        if let ConnState::Reading(reader) = &mut self.state {
            let mut chunk = [0u8; 4096];
            let line = loop {
                match self.stream.read(&mut chunk) {
                    Ok(0) => break done(reader.finish(), cx),
                    Ok(n) => match reader.push(&chunk[..n]) {
                        ReadState::NeedMore => {}
                        s => break done(s, cx),
                    },
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Keep,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => return Next::Close,
                }
            };
            self.state = ConnState::Writing(line, 0);
        }
        let ConnState::Writing(line, written) = &mut self.state else { return Next::Keep };
        while *written < line.len() {
            match self.stream.write(&line[*written..]) {
                Ok(0) => return Next::Close,
                Ok(n) => *written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Next::Keep,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        Next::Close
    }
}

/// Reads and drops what the client sent and we did not read (bounded), then shuts the socket
/// down: closing a unix socket with unread input makes the client's next read fail with
/// ECONNRESET, which could cost it our answer.
fn discard_input(s: &mut UnixStream) {
    let mut chunk = [0u8; 4096];
    for _ in 0..MAX_REQUEST / chunk.len() {
        match s.read(&mut chunk) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    let _ = s.shutdown(Shutdown::Both);
}

/// The answer line for a finished read.
fn done<H: LoopHost>(state: ReadState, cx: &mut Context<'_, '_, H>) -> Vec<u8> {
    let e = match state {
        ReadState::Complete(bytes) => {
            log::debug!("api: request {}", String::from_utf8_lossy(&bytes[..bytes.len().min(512)]));
            return answer(&bytes, cx);
        }
        ReadState::Invalid(e) => e,
        // Not called with an unfinished read; answer something sane anyway.
        ReadState::NeedMore => ApiError::bad("incomplete JSON request"),
    };
    log::debug!("api: {}", e.0);
    let mut line = e.to_json().to_string().into_bytes();
    line.push(b'\n');
    line
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        // Remove the socket file, if it is still the one we made (through its directory's
        // descriptor: the path may not resolve in the sandbox).
        self.file.remove();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slirp_core::Config;

    fn parse(s: &str) -> Result<Request, ApiError> {
        parse_request(&serde_json::from_str(s).unwrap())
    }

    #[test]
    fn parses_slirp4netns_requests() {
        let r = parse(
            r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"127.0.0.1","host_port":8080,
                "guest_addr":"10.0.2.100","guest_port":80}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Request::AddHostfwd(AddHostfwd {
                proto: FwdProto::Udp,
                v6: None,
                wildcard: false,
                host: "127.0.0.1:8080".parse().unwrap(),
                guest_addr: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 100))),
                guest_port: 80
            })
        );
        // Addresses are optional (missing or empty, as slirp4netns).
        let r = parse(
            r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":22,"guest_port":2222,"host_addr":""}}"#,
        )
        .unwrap();
        assert_eq!(
            r,
            Request::AddHostfwd(AddHostfwd {
                proto: FwdProto::Tcp,
                v6: None,
                wildcard: true,
                host: "0.0.0.0:22".parse().unwrap(),
                guest_addr: None,
                guest_port: 2222
            })
        );
        // tcp4/udp4 and tcp6/udp6 name one family; a wildcard of the other family is this one's.
        let fam = |req: &str| match parse(req).unwrap() {
            Request::AddHostfwd(a) => (a.v6, a.wildcard, a.host),
            r => panic!("{r:?}"),
        };
        assert_eq!(
            fam(r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp6","host_port":8,"guest_port":8}}"#),
            (Some(true), true, "[::]:8".parse().unwrap())
        );
        assert_eq!(
            fam(
                r#"{"execute":"add_hostfwd","arguments":{"proto":"udp4","host_addr":"::","host_port":8,"guest_port":8}}"#
            ),
            (Some(false), true, "0.0.0.0:8".parse().unwrap())
        );
        assert_eq!(
            fam(
                r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"::","host_port":8,"guest_port":8}}"#
            ),
            (None, true, "0.0.0.0:8".parse().unwrap())
        );
        assert!(parse(
            r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp4","host_addr":"::1","host_port":8,"guest_port":8}}"#
        )
        .unwrap_err()
        .0
        .contains("host_addr"));
        assert_eq!(parse(r#"{"execute":"list_hostfwd"}"#).unwrap(), Request::ListHostfwd);
        assert_eq!(parse(r#"{"execute":"list_hostfwd","arguments":{}}"#).unwrap(), Request::ListHostfwd);
        assert_eq!(parse(r#"{"execute":"remove_hostfwd","arguments":{"id":42}}"#).unwrap(), Request::RemoveHostfwd(42));
        assert_eq!(parse(r#"{"execute":"list_connections"}"#).unwrap(), Request::ListConnections);
        assert_eq!(parse(r#"{"execute":"stats"}"#).unwrap(), Request::Stats);
    }

    #[test]
    fn rejects_bad_requests_with_a_reason() {
        for (req, why) in [
            ("[1,2]", "must be a JSON object"),
            ("{}", "no execute found"),
            (r#"{"execute":7}"#, "\"execute\" must be a string"),
            (r#"{"execute":"reboot"}"#, "unknown execute \"reboot\""),
            (r#"{"execute":"list_hostfwd","arguments":[]}"#, "\"arguments\" must be an object"),
            (r#"{"execute":"add_hostfwd"}"#, "bad arguments.proto"),
            (r#"{"execute":"add_hostfwd","arguments":{"proto":"sctp","host_port":1,"guest_port":1}}"#, "proto"),
            (r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","guest_port":1}}"#, "bad arguments.host_port"),
            (r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":0,"guest_port":1}}"#, "host_port"),
            (r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":65536,"guest_port":1}}"#, "host_port"),
            (r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":8.5,"guest_port":1}}"#, "host_port"),
            (r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":"80","guest_port":1}}"#, "host_port"),
            (r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":1}}"#, "bad arguments.guest_port"),
            (
                r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"::1::2","host_port":1,"guest_port":1}}"#,
                "bad arguments.host_addr",
            ),
            (
                r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":1,"guest_addr":5,"guest_port":1}}"#,
                "bad arguments.guest_addr",
            ),
            (r#"{"execute":"remove_hostfwd"}"#, "bad arguments.id"),
            (r#"{"execute":"remove_hostfwd","arguments":{"id":-1}}"#, "bad arguments.id"),
            (r#"{"execute":"remove_hostfwd","arguments":{"id":4294967296}}"#, "bad arguments.id"),
        ] {
            let e = parse(req).unwrap_err();
            assert!(e.0.starts_with("bad request: ") && e.0.contains(why), "{req}: {e:?}");
        }
        // IPv6 addresses, bare or bracketed, are taken.
        let v6 = r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"::1","host_port":8080,"guest_addr":"[fd00::100]","guest_port":80}}"#;
        match parse(v6).unwrap() {
            Request::AddHostfwd(a) => {
                assert_eq!(a.host, "[::1]:8080".parse().unwrap());
                assert_eq!(a.guest_addr, Some("fd00::100".parse().unwrap()));
            }
            r => panic!("{r:?}"),
        }
        let long = format!(r#"{{"execute":"{}"}}"#, "x".repeat(10_000));
        assert!(parse(&long).unwrap_err().0.len() < 200, "echoed names are truncated");
    }

    #[test]
    fn error_answers_are_slirp4netns_shaped() {
        assert_eq!(ApiError("no".into()).to_json().to_string(), r#"{"error":{"desc":"no"}}"#);
    }

    fn engine() -> Slirp<'static> {
        Slirp::new(Config::default(), crate::default_storage()).unwrap()
    }

    fn ask(slirp: &mut Slirp<'static>, host: &mut StdHost, req: &str) -> Value {
        let mut cx = Context {
            slirp,
            host,
            now: Instant::from_secs(10),
            default_guest: Ipv4Addr::new(10, 0, 2, 100),
            local_targets: true,
            twins: &mut Twins::default(),
        };
        let line = answer(req.as_bytes(), &mut cx);
        assert_eq!(line.last(), Some(&b'\n'), "one line");
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&line).unwrap()
    }

    /// A free UDP port on 127.0.0.1 (bound and released).
    fn free_udp_port() -> u16 {
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[test]
    fn add_list_remove_udp_forward() {
        let (mut slirp, mut host) = (engine(), StdHost::default());
        let port = free_udp_port();
        let add = format!(
            r#"{{"execute":"add_hostfwd","arguments":{{"proto":"udp","host_addr":"127.0.0.1","host_port":{port},"guest_port":53}}}}"#
        );
        let v = ask(&mut slirp, &mut host, &add);
        let id = v["return"]["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
        assert_eq!(host.open_sockets(), 1);
        // The same host port again: the bind fails, and says why.
        let again = add.replace(":53}", ":54}");
        let v = ask(&mut slirp, &mut host, &again);
        assert!(v["error"]["desc"].as_str().unwrap().contains("address in use"), "{v}");

        let v = ask(&mut slirp, &mut host, r#"{"execute":"list_hostfwd"}"#);
        assert_eq!(
            v,
            json!({"entries":[{"id":id,"proto":"udp","host_addr":"127.0.0.1","host_port":port,
                   "guest_addr":"10.0.2.100","guest_port":53}]})
        );
        let v = ask(&mut slirp, &mut host, r#"{"execute":"stats"}"#);
        assert_eq!(v["return"]["udp_forwards"], 1, "{v}");
        assert_eq!(v["return"]["rx_frames"], 0, "{v}");
        assert!(v["return"]["drops"].is_object(), "{v}");

        let rm = format!(r#"{{"execute":"remove_hostfwd","arguments":{{"id":{id}}}}}"#);
        assert_eq!(ask(&mut slirp, &mut host, &rm), json!({"return":{}}));
        assert_eq!(host.open_sockets(), 0);
        let v = ask(&mut slirp, &mut host, &rm);
        assert!(v["error"]["desc"].as_str().unwrap().contains(&format!("no forward has id {id}")), "{v}");
        assert_eq!(ask(&mut slirp, &mut host, r#"{"execute":"list_hostfwd"}"#), json!({"entries":[]}));
    }

    /// A free TCP port on 127.0.0.1 (bound and released).
    fn free_tcp_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
    }

    #[test]
    fn tcp_and_udp_forwards_share_ids_list_and_remove() {
        let (mut slirp, mut host) = (engine(), StdHost::default());
        let (tport, uport) = (free_tcp_port(), free_udp_port());
        let add = |proto: &str, port: u16, guest_port: u16| {
            format!(
                r#"{{"execute":"add_hostfwd","arguments":{{"proto":"{proto}","host_addr":"127.0.0.1","host_port":{port},"guest_port":{guest_port}}}}}"#
            )
        };
        let v = ask(&mut slirp, &mut host, &add("udp", uport, 53));
        let uid = v["return"]["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
        let v = ask(&mut slirp, &mut host, &add("tcp", tport, 80));
        let tid = v["return"]["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
        assert_ne!(uid, tid, "one id space");
        assert_eq!(host.open_sockets(), 2);
        // The listener is real: a client's connect completes (the kernel accepts for us).
        let c = std::net::TcpStream::connect(("127.0.0.1", tport)).unwrap();
        drop(c);
        // The same TCP port again: the bind fails, and says why.
        let v = ask(&mut slirp, &mut host, &add("tcp", tport, 81));
        assert!(v["error"]["desc"].as_str().unwrap().contains("address in use"), "{v}");
        let v = ask(&mut slirp, &mut host, r#"{"execute":"list_hostfwd"}"#);
        assert_eq!(
            v,
            json!({"entries":[
                {"id":uid,"proto":"udp","host_addr":"127.0.0.1","host_port":uport,"guest_addr":"10.0.2.100","guest_port":53},
                {"id":tid,"proto":"tcp","host_addr":"127.0.0.1","host_port":tport,"guest_addr":"10.0.2.100","guest_port":80}
            ]})
        );
        let v = ask(&mut slirp, &mut host, r#"{"execute":"stats"}"#);
        assert_eq!((v["return"]["tcp_forwards"].as_u64(), v["return"]["udp_forwards"].as_u64()), (Some(1), Some(1)));
        // Removal by id alone, whichever protocol.
        let rm = |id| format!(r#"{{"execute":"remove_hostfwd","arguments":{{"id":{id}}}}}"#);
        assert_eq!(ask(&mut slirp, &mut host, &rm(tid)), json!({"return":{}}));
        assert_eq!(host.open_sockets(), 1);
        assert_eq!(ask(&mut slirp, &mut host, &rm(uid)), json!({"return":{}}));
        assert_eq!(host.open_sockets(), 0);
        let v = ask(&mut slirp, &mut host, &rm(tid));
        assert!(v["error"]["desc"].as_str().unwrap().contains(&format!("no forward has id {tid}")), "{v}");
        // The port is free again at once (SO_REUSEADDR, nothing left listening).
        let v = ask(&mut slirp, &mut host, &add("tcp", tport, 80));
        assert!(v["return"]["id"].is_u64(), "{v}");
    }

    #[test]
    fn guest_outside_and_garbage_are_honest_errors() {
        let (mut slirp, mut host) = (engine(), StdHost::default());
        let v = ask(
            &mut slirp,
            &mut host,
            r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":8080,"guest_addr":"192.168.1.1","guest_port":80}}"#,
        );
        assert!(v["error"]["desc"].as_str().unwrap().contains("outside the virtual network"), "{v}");
        let v = ask(
            &mut slirp,
            &mut host,
            r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":8080,"guest_addr":"192.168.1.1","guest_port":80}}"#,
        );
        assert!(v["error"]["desc"].as_str().unwrap().contains("outside the virtual network"), "{v}");
        assert_eq!(host.open_sockets(), 0);
        let v = ask(&mut slirp, &mut host, r#"{"execute":"list_connections"}"#);
        assert_eq!(v, json!({"return":{"connections":[]}}));
        let v = ask(&mut slirp, &mut host, "{not json}");
        assert!(v["error"]["desc"].as_str().unwrap().starts_with("bad request: cannot parse JSON"), "{v}");
    }

    #[test]
    fn reader_waits_for_a_complete_object() {
        let req = br#" {"execute":"add_hostfwd","arguments":{"proto":"udp","x":"a}\"{[","y":[1,{"z":2}]}}"#;
        // Byte by byte: complete exactly at the last brace, never before.
        let mut r = RequestReader::default();
        for (i, b) in req.iter().enumerate() {
            match r.push(std::slice::from_ref(b)) {
                ReadState::NeedMore => assert!(i + 1 < req.len(), "missed the end"),
                ReadState::Complete(bytes) => {
                    assert_eq!(i + 1, req.len(), "ended early at {i}");
                    assert_eq!(bytes, req);
                }
                ReadState::Invalid(e) => panic!("{e:?}"),
            }
        }
        // In one piece, with a second value after it: the first is the request.
        let mut both = req.to_vec();
        both.extend_from_slice(br#"{"execute":"stats"}"#);
        assert_eq!(RequestReader::default().push(&both), ReadState::Complete(req.to_vec()));
    }

    #[test]
    fn reader_rejects_garbage_huge_and_half_sent() {
        let invalid = |s: ReadState, why: &str| match s {
            ReadState::Invalid(e) => assert!(e.0.contains(why), "{e:?}"),
            other => panic!("{other:?}"),
        };
        invalid(RequestReader::default().push(b"GET / HTTP/1.0\r\n"), "must be a JSON object");
        invalid(RequestReader::default().push(b"\n\n\"execute\""), "must be a JSON object");
        invalid(RequestReader::default().push(&[0xff, 0xfe, 0]), "must be a JSON object");
        // Huge: one big write, or many small ones; the limit counts what was kept.
        let mut huge = b"{\"a\":\"".to_vec();
        huge.resize(MAX_REQUEST + 10, b'x');
        invalid(RequestReader::default().push(&huge), "larger than 65536 bytes");
        let mut r = RequestReader::default();
        let mut last = ReadState::NeedMore;
        for chunk in huge.chunks(1000) {
            last = r.push(chunk);
            if last != ReadState::NeedMore {
                break;
            }
        }
        invalid(last, "larger than");
        // Exactly at the limit is fine.
        let mut fits = b"{\"a\":\"".to_vec();
        fits.resize(MAX_REQUEST - 2, b'x');
        fits.extend_from_slice(b"\"}");
        assert!(matches!(RequestReader::default().push(&fits), ReadState::Complete(b) if b.len() == MAX_REQUEST));
        // Half sent, then the client closes its side.
        let mut r = RequestReader::default();
        assert_eq!(r.push(br#"{"execute":"sta"#), ReadState::NeedMore);
        invalid(r.finish(), "incomplete JSON request");
        let mut r = RequestReader::default();
        assert_eq!(r.push(b"  \n"), ReadState::NeedMore);
        invalid(r.finish(), "empty request");
        // Deep nesting is a parse error, not a stack overflow.
        let deep = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        let mut r = RequestReader::default();
        let ReadState::Complete(bytes) = r.push(deep.as_bytes()) else { panic!("deep nesting not complete") };
        let (mut slirp, mut host) = (engine(), StdHost::default());
        let mut cx = Context {
            slirp: &mut slirp,
            host: &mut host,
            now: Instant::from_micros(0),
            default_guest: Ipv4Addr::UNSPECIFIED,
            local_targets: true,
            twins: &mut Twins::default(),
        };
        let v: Value = serde_json::from_slice(&answer(&bytes, &mut cx)).unwrap();
        assert!(v["error"]["desc"].as_str().unwrap().contains("cannot parse JSON"), "{v}");
    }
}
