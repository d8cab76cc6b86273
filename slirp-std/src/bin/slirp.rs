//! The `slirp` command: user-mode networking for a network namespace or a QEMU guest.
//!
//! ```text
//! slirp attach [OPTIONS] --netns PATH|PID     connect an existing namespace through a TAP
//! slirp run [OPTIONS] -- COMMAND...           run COMMAND in a fresh namespace on our network
//! slirp qemu [OPTIONS] --socket PATH          serve QEMU's -netdev stream socket
//! slirp slirp4netns [OPTION]... PID|PATH TAP  slirp4netns' command line (also when run as
//!                                             `slirp4netns`, through a link of that name)
//! ```

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::{Args, Parser, Subcommand};
use slirp_core::{Config, Ipv6Config, Slirp};
use slirp_std::api::ApiServer;
use slirp_std::netlink::{configure_here, InterfaceSetup};
use slirp_std::netns::{enter_new_netns, open_tap_here, recv_fd, send_fd};
use slirp_std::options::{host_nameserver, parse_dns_upstream, parse_ipv6_prefix, FwdProto, Ipv6Prefix};
use slirp_std::slirp4netns::Outbound;
use slirp_std::{sys, Cidr, EventLoop, Exit, GuestLink, HostFwd, NetnsTarget, PcapWriter, StdHost};

#[derive(Parser, Debug)]
#[command(name = "slirp", version, about = "User-mode TCP/IP networking for network namespaces and virtual machines")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Connect an existing network namespace: create a TAP inside it and serve it.
    Attach(AttachArgs),
    /// Run COMMAND in a fresh network namespace (and user namespace when not root) that is
    /// attached and configured; exit with its status.
    Run(RunArgs),
    /// Serve a QEMU guest on a unix socket (`-netdev stream,addr.type=unix,addr.path=PATH`).
    Qemu(QemuArgs),
    /// Behave as slirp4netns 1.2: `slirp slirp4netns [OPTION]... PID|PATH TAPNAME` (the same
    /// as running this binary through a link named `slirp4netns`; `slirp slirp4netns --help`).
    #[command(name = "slirp4netns", disable_help_flag = true)]
    Slirp4netns {
        /// slirp4netns' options and operands.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<OsString>,
    },
    /// Internal: opens the TAP inside a namespace from a process of its own (to enter a user
    /// namespace, which a multi-threaded process cannot).
    #[command(name = "__tap-helper", hide = true)]
    TapHelper(TapHelperArgs),
    /// Internal: the namespace side of `slirp run`.
    #[command(name = "__run-child", hide = true)]
    RunChild(RunChildArgs),
}

/// Options every mode shares: the virtual network and how we run.
#[derive(Args, Debug, Clone)]
struct Common {
    /// Virtual network: gateway is .2, DNS .3, DHCP from .15, --configure gives the guest .100.
    #[arg(long, value_name = "CIDR", default_value = "10.0.2.0/24", value_parser = Cidr::parse)]
    cidr: Cidr,
    /// MTU of the guest link (576-65520; 1280 at least with --ipv6).
    #[arg(long, short = 'm', default_value_t = 1500)]
    mtu: u16,
    /// Serve IPv6 too: Router Advertisements (SLAAC, RDNSS, DNSSL), DHCPv6 (stateless, and
    /// addresses from ::200 of the prefix), neighbor discovery, ICMPv6 and the TCP/UDP/ping NAT
    /// over IPv6. Router ::2, DNS alias ::3 of the prefix, and fe80::2, fe80::3 on the link;
    /// --configure gives the guest ::100.
    #[arg(long, visible_alias = "enable-ipv6")]
    ipv6: bool,
    /// The IPv6 prefix (a /64) with --ipv6; libslirp's default is fec0::/64.
    #[arg(long, value_name = "PREFIX/64", default_value = "fd00::/64", value_parser = parse_ipv6_prefix)]
    ipv6_prefix: Ipv6Prefix,
    /// Isolate the guest: only the virtual services and forwards are reachable.
    #[arg(long)]
    restricted: bool,
    /// Do not let the guest reach the host's loopback through the gateway address.
    #[arg(long)]
    disable_host_loopback: bool,
    /// Do not answer DHCP.
    #[arg(long)]
    disable_dhcp: bool,
    /// First address of the DHCP pool (16 addresses; default .15 of the network). QEMU's
    /// dhcpstart=.
    #[arg(long, value_name = "ADDR")]
    dhcp_start: Option<Ipv4Addr>,
    /// Address of the DNS alias in the network (default .3). QEMU's dns=.
    #[arg(long = "dns", value_name = "ADDR")]
    dns_alias: Option<Ipv4Addr>,
    /// DNS search domains offered to the guest: DHCP option 119, Router Advertisements (DNSSL)
    /// and DHCPv6. Comma-separated, repeatable. QEMU's dnssearch=.
    #[arg(long, value_name = "LIST")]
    dns_search: Vec<String>,
    /// Domain name offered by DHCP (option 15). QEMU's domainname=.
    #[arg(long, value_name = "NAME")]
    domain: Option<String>,
    /// Host name offered by DHCP (option 12). QEMU's hostname=.
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Boot file offered by DHCP (the BOOTP file field and option 67), for PXE/BOOTP clients.
    /// QEMU's bootfile=.
    #[arg(long, value_name = "NAME")]
    bootfile: Option<String>,
    /// TFTP server name offered by DHCP (option 66 and the sname field). QEMU's
    /// tftp-server-name=.
    #[arg(long, value_name = "NAME")]
    tftp_server_name: Option<String>,
    // Help text given as a string: rustdoc would read the brackets as links.
    #[arg(
        long,
        value_name = "RULE",
        help = "A guest-forward rule, QEMU syntax [tcp]:ADDR:PORT-TARGET: guest connections to ADDR:PORT (a \
                virtual address of the network, which then answers ARP and ping) are served by TARGET: \
                cmd:COMMAND (a shell command per connection on its stdin/stdout), pty:COMMAND (the same on a \
                pseudo-terminal), unix:PATH or tcp:HOST:PORT (connected per connection). Repeatable; works \
                with --restricted"
    )]
    guestfwd: Vec<String>,
    /// Write the stack's trace events (leases, TCP/UDP flows opened and closed, drops with their
    /// reason, frame summaries) to FILE, one line each (see --trace-format).
    #[arg(long, value_name = "FILE")]
    trace: Option<std::path::PathBuf>,
    /// Format of --trace: json (one object per line) or text.
    #[arg(long, value_name = "FORMAT", default_value = "json", value_parser = ["json", "text"])]
    trace_format: String,
    /// Serve the files under DIR over TFTP on the gateway's port 69 (read-only: regular files,
    /// nothing outside DIR; options blksize, tsize, timeout; 8 transfers at once). QEMU's tftp=.
    #[arg(long, value_name = "DIR")]
    tftp: Option<std::path::PathBuf>,
    // Help text given as a string: rustdoc would read the brackets as links.
    #[arg(
        long,
        value_name = "ADDR[:PORT]",
        value_parser = parse_dns_upstream,
        help = "Upstream resolver for the DNS alias, ADDR[:PORT] (default: first nameserver of /etc/resolv.conf)"
    )]
    dns_upstream: Option<SocketAddr>,
    #[arg(
        long,
        value_name = "RULE",
        help = "Forward a host port to the guest, QEMU syntax [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT \
                (repeatable). HOSTADDR defaults to 0.0.0.0 (all addresses). GUESTADDR defaults to the address \
                slirp gave the guest: .100 with `attach --configure` and `run` (as slirp4netns), else the first \
                DHCP address .15 (as QEMU). IPv6 in brackets: tcp:[::1]:8080-[fd00::100]:80; a GUESTADDR of \
                [::] is ::100 of the prefix likewise, else the first DHCPv6 address ::200. TCP connections from \
                loopback clients reach the guest from the gateway address (10.0.2.2, fd00::2), others from the \
                client's own address (an IPv4 client of a v6 guest as 64:ff9b::a.b.c.d)"
    )]
    hostfwd: Vec<String>,
    #[arg(
        long,
        value_name = "PATH",
        help = "Serve the control API on unix socket PATH (slirp4netns' JSON API, one request per connection): \
                add_hostfwd, list_hostfwd, remove_hostfwd, list_connections, stats. A stale socket at PATH is \
                replaced; the socket is removed on exit"
    )]
    api_socket: Option<PathBuf>,
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = slirp_std::DEFAULT_TCP_BUFFER,
        value_parser = parse_tcp_buffer,
        help = "Size of each TCP connection's send and receive buffer (16384 to 67108864; suffixes K and M). \
                The window the guest sees is at most this; allocated when a connection opens"
    )]
    tcp_buffer: usize,
    /// Most TCP connections at once; more are refused with RST (counted as tcp_table_full).
    #[arg(long, value_name = "N", default_value_t = slirp_std::DEFAULT_TCP_CONNECTIONS as u32,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    tcp_connections: u32,
    /// Turn off the TAP's checksum and TCP segmentation offloads (on by default: frames up to
    /// 64 KiB with checksums left to the kernel, whatever the MTU).
    #[arg(long)]
    no_offload: bool,
    /// Keep polling this many microseconds before sleeping while packets come densely (a
    /// request/response exchange then skips a sleep and wake-up per packet); never while idle.
    /// 0 turns it off.
    #[arg(long, value_name = "USECS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    busy_poll: u32,
    /// Write a capture of the guest link to FILE (pcap).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace [default: info; warn for `run`].
    #[arg(long, value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: Option<String>,
    /// Write "1" to descriptor FD and close it once ready.
    #[arg(long, value_name = "FD")]
    ready_fd: Option<i32>,
    /// Exit when descriptor FD is closed (or becomes readable).
    #[arg(long, value_name = "FD")]
    exit_fd: Option<i32>,
    /// Do not forward the DNS alias's queries: the alias address is then unused (queries to it
    /// are refused). slirp4netns' --disable-dns.
    #[arg(long)]
    disable_dns: bool,
    /// Guest connections, UDP flows and pings over IPv4 leave from this local address, or from
    /// this interface's first IPv4 address (looked up at start). slirp4netns' --outbound-addr.
    #[arg(long, value_name = "ADDR|INTERFACE", value_parser = |s: &str| Outbound::parse(false, s))]
    outbound_addr: Option<Outbound>,
    /// The same for IPv6. slirp4netns' --outbound-addr6.
    #[arg(long, value_name = "ADDR|INTERFACE", value_parser = |s: &str| Outbound::parse(true, s))]
    outbound_addr6: Option<Outbound>,
    /// How much the process gives up once set up: full (the default: an empty filesystem root
    /// in a mount namespace of its own, no capabilities but those still needed, no new
    /// privileges, a seccomp allowlist of system calls), no-seccomp (all but the filter),
    /// seccomp-only (no new privileges and the filter), or off. Guest forwards that run
    /// commands or reach unix sockets keep the filesystem (and commands get no filter).
    #[arg(long, value_name = "LEVEL", default_value = "full", value_parser = ["full", "no-seccomp", "seccomp-only", "off"])]
    sandbox: String,
    /// The same as --sandbox off (for debugging).
    #[arg(long)]
    no_sandbox: bool,
    /// A system call outside the sandbox's allowlist kills the process (by default it fails
    /// with ENOSYS and the kernel logs it).
    #[arg(long)]
    seccomp_kill: bool,
}

#[derive(Args, Debug)]
struct AttachArgs {
    /// The namespace: a path (/run/netns/NAME, /proc/PID/ns/net) or a process id.
    #[arg(long, value_name = "PATH|PID", value_parser = NetnsTarget::parse, required_unless_present = "target")]
    netns: Option<NetnsTarget>,
    /// The namespace as a positional argument (slirp4netns style).
    #[arg(value_name = "PATH|PID", value_parser = NetnsTarget::parse, conflicts_with = "netns")]
    target: Option<NetnsTarget>,
    /// Bring the interface up with the guest address (.100), default route via the gateway
    /// and the MTU. The namespace's resolv.conf is left alone: name the DNS alias (.3) there
    /// (for `ip netns exec NAME`: /etc/netns/NAME/resolv.conf).
    #[arg(long, short = 'c')]
    configure: bool,
    /// Name of the TAP interface to create (or to attach to, if the namespace has one).
    #[arg(long, default_value = "tap0")]
    ifname: String,
    /// Enter this user namespace (the one owning the network namespace) to create the TAP: what
    /// an unprivileged user needs for a rootless container's namespace. slirp4netns'
    /// --userns-path.
    #[arg(long, value_name = "PATH")]
    userns: Option<PathBuf>,
    /// With --configure, give the interface this MAC address.
    #[arg(long, value_name = "MAC", value_parser = |s: &str| slirp_std::slirp4netns::parse_mac(s).ok_or_else(|| format!("{s:?} is not a MAC address like 02:00:00:00:00:01")), requires = "configure")]
    macaddress: Option<[u8; 6]>,
    /// slirp4netns mode: forwards that name no guest address go to .100 (and ::100), configured
    /// here or not (the caller configures the interface as slirp4netns' users do).
    #[arg(long, hide = true)]
    slirp4netns_defaults: bool,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct TapHelperArgs {
    #[arg(long)]
    ctl_fd: i32,
    #[arg(long)]
    netns: PathBuf,
    #[arg(long)]
    userns: Option<PathBuf>,
    #[arg(long)]
    ifname: String,
    /// Configure: address/prefix, gateway, MTU.
    #[arg(long, requires_all = ["gateway", "mtu"])]
    address: Option<String>,
    #[arg(long)]
    gateway: Option<Ipv4Addr>,
    #[arg(long)]
    mtu: Option<u16>,
    #[arg(long)]
    ipv6: Option<String>,
    #[arg(long, value_parser = |s: &str| slirp_std::slirp4netns::parse_mac(s).ok_or_else(|| "bad MAC".to_string()))]
    mac: Option<[u8; 6]>,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Name of the TAP interface to create.
    #[arg(long, default_value = "tap0")]
    ifname: String,
    /// Keep the host's /etc/resolv.conf for the command. By default the command gets a private
    /// mount namespace in which /etc/resolv.conf names the DNS alias (10.0.2.3), keeping the
    /// host's search and options lines: a resolver on the host's loopback (127.0.0.53) is not
    /// reachable from the new network namespace.
    #[arg(long)]
    no_resolv_conf: bool,
    #[command(flatten)]
    common: Common,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

#[derive(Args, Debug)]
struct QemuArgs {
    /// Path of the unix socket to listen on.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
struct RunChildArgs {
    #[arg(long)]
    ctl_fd: i32,
    #[arg(long)]
    ifname: String,
    #[arg(long, value_parser = Cidr::parse)]
    cidr: Cidr,
    #[arg(long)]
    mtu: u16,
    #[arg(long)]
    userns: bool,
    /// Configure IPv6 too, in this prefix.
    #[arg(long, value_parser = parse_ipv6_prefix)]
    ipv6: Option<Ipv6Prefix>,
    /// Give the command a resolv.conf naming this DNS server.
    #[arg(long)]
    resolv_conf_dns: Option<Ipv4Addr>,
    #[arg(last = true, required = true)]
    command: Vec<OsString>,
}

/// A one-line error for the user.
struct Fail(String);

impl<E: std::fmt::Display> From<E> for Fail {
    fn from(e: E) -> Fail {
        Fail(e.to_string())
    }
}

fn main() -> ExitCode {
    sys::tune_malloc();
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_default();
    if Path::new(&argv0).file_name().is_some_and(|n| n == "slirp4netns") {
        return slirp4netns_main(&argv.collect::<Vec<_>>());
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // clap's first paragraph, on one line.
            let text = e.render().to_string();
            let first: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
            let first = first.join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("slirp: {first} (see slirp --help)");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Cmd::Attach(a) => attach(a),
        Cmd::Run(r) => run(r),
        Cmd::Qemu(q) => qemu(q),
        Cmd::RunChild(c) => run_child(c),
        Cmd::Slirp4netns { args } => return slirp4netns_main(&args),
        Cmd::TapHelper(t) => tap_helper(t),
    };
    match result {
        Ok(code) => code,
        Err(Fail(msg)) => {
            eprintln!("slirp: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: Option<&str>, default: log::LevelFilter) {
    let level = level.and_then(|l| l.parse().ok()).unwrap_or(default);
    env_logger::Builder::new().filter_level(level).format_target(false).init();
}

/// The core configuration from the common options, checked.
fn core_config(c: &Common) -> Result<Config, Fail> {
    let base = Config {
        mtu: c.mtu,
        restricted: c.restricted,
        disable_host_loopback: c.disable_host_loopback,
        disable_dhcp: c.disable_dhcp,
        ..Config::default()
    };
    let mut config = c.cidr.apply(base);
    if let Some(a) = c.dhcp_start {
        config.dhcp_start = a;
    }
    if let Some(a) = c.dns_alias {
        config.dns = a;
    }
    fn text<const N: usize>(flag: &str, v: &str) -> Result<heapless::String<N>, Fail> {
        if v.is_empty() || v.bytes().any(|b| b == 0 || b.is_ascii_control()) {
            return Err(Fail(format!("--{flag}: {v:?} is empty or has control characters")));
        }
        heapless::String::try_from(v).map_err(|_| Fail(format!("--{flag}: longer than {N} bytes")))
    }
    if !c.dns_search.is_empty() {
        let list = c.dns_search.join(",");
        config.search = Some(text("dns-search", &list)?);
    }
    if let Some(d) = &c.domain {
        config.domain = Some(text("domain", d)?);
    }
    if let Some(h) = &c.hostname {
        config.hostname = Some(text("hostname", h)?);
    }
    if let Some(b) = &c.bootfile {
        config.bootfile = Some(text("bootfile", b)?);
    }
    if let Some(n) = &c.tftp_server_name {
        config.tftp_server_name = Some(text("tftp-server-name", n)?);
    }
    config.tftp = c.tftp.is_some();
    config.trace = c.trace.is_some();
    if c.ipv6 {
        config.ipv6 = Ipv6Config { enabled: true, ..Ipv6Config::with_prefix(c.ipv6_prefix.prefix, c.ipv6_prefix.len) };
    }
    config.validate().map_err(|e| Fail(format!("invalid network settings: {e}")))?;
    Ok(config)
}

/// Validates `--hostfwd` rules.
fn check_hostfwds(c: &Common) -> Result<Vec<HostFwd>, Fail> {
    let rules = c.hostfwd.iter().map(|r| HostFwd::parse(r, &c.cidr)).collect::<Result<Vec<_>, _>>().map_err(Fail)?;
    Ok(rules)
}

/// Installs the forwarding rules.
///
/// `default_guest` is the guest address for rules that name none: the address slirp configured
/// in the guest (.100) when it did, else 0.0.0.0 (the core picks the first DHCP address).
/// `default_guest6` is what a guest address of `[::]` means: the IPv6 address slirp configured
/// (::100 of the prefix) when it did, else `[::]` (the core picks the first DHCPv6 address).
fn install_hostfwds(
    ev: &mut EventLoop<'_>,
    rules: &[HostFwd],
    default_guest: Ipv4Addr,
    default_guest6: Option<std::net::Ipv6Addr>,
) -> Result<(), Fail> {
    for r in rules {
        let host = SocketAddr::new(r.host_addr, r.host_port);
        let guest_ip = match (r.guest_addr, default_guest6) {
            (Some(IpAddr::V6(a)), Some(configured)) if a.is_unspecified() => IpAddr::V6(configured),
            (Some(a), _) => a,
            (None, _) => IpAddr::V4(default_guest),
        };
        let guest = SocketAddr::new(guest_ip, r.guest_port);
        let rule = match r.proto {
            FwdProto::Tcp => {
                let id = ev.add_tcp_forward(host, guest).map_err(|e| Fail(format!("--hostfwd {r}: {e}")))?;
                ev.slirp().tcp_forwards().find(|f| f.id == id).map(|f| ("tcp", f.host, f.guest))
            }
            FwdProto::Udp => {
                let id = ev.add_udp_forward(host, guest).map_err(|e| Fail(format!("--hostfwd {r}: {e}")))?;
                ev.slirp().udp_forwards().find(|f| f.id == id).map(|f| ("udp", f.host, f.guest))
            }
        };
        if let Some((proto, host, guest)) = rule {
            log::info!("--hostfwd {r}: forwarding {proto} {host} to {guest}");
        }
    }
    Ok(())
}

/// Parses `--tcp-buffer`: bytes, or with a K or M suffix (binary multiples).
fn parse_tcp_buffer(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, mult) = match t.as_bytes().last() {
        Some(b'k' | b'K') => (&t[..t.len() - 1], 1024),
        Some(b'm' | b'M') => (&t[..t.len() - 1], 1024 * 1024),
        _ => (t, 1),
    };
    let n: usize = digits.parse().map_err(|_| format!("{s:?} is not a size (like 262144, 256K or 4M)"))?;
    let bytes = n.checked_mul(mult).ok_or_else(|| format!("{s:?} is too large"))?;
    if !(slirp_std::MIN_TCP_BUFFER..=slirp_std::MAX_TCP_BUFFER).contains(&bytes) {
        return Err(format!("{s:?}: must be {} to {} bytes", slirp_std::MIN_TCP_BUFFER, slirp_std::MAX_TCP_BUFFER));
    }
    Ok(bytes)
}

fn dns_upstream(c: &Common) -> Option<SocketAddr> {
    if c.disable_dns {
        return None;
    }
    c.dns_upstream.or_else(|| host_nameserver(Path::new("/etc/resolv.conf")))
}

/// What the sandbox keeps, from the options (`None`: no sandbox).
fn sandbox_policy(c: &Common, guestfwds: &[slirp_std::options::GuestFwd]) -> Option<slirp_std::sandbox::Policy> {
    use slirp_std::host::GuestForwardTarget as T;
    let level = if c.no_sandbox { "off" } else { c.sandbox.as_str() };
    if level == "off" {
        return None;
    }
    let run_commands = guestfwds.iter().any(|g| matches!(g.target, T::Command(_) | T::Pty(_)));
    let unix = guestfwds.iter().any(|g| matches!(g.target, T::Unix(_)));
    Some(slirp_std::sandbox::Policy {
        keep_filesystem: run_commands || unix || level == "seccomp-only",
        keep_capabilities: level == "seccomp-only",
        run_commands,
        runtime_forwards: c.api_socket.is_some(),
        no_seccomp: level == "no-seccomp",
        kill: c.seccomp_kill,
    })
}

/// Enters the sandbox, if asked for; call it last before serving.
fn enter_sandbox(policy: Option<slirp_std::sandbox::Policy>) -> Result<(), Fail> {
    let Some(policy) = policy else {
        log::info!("sandbox off");
        return Ok(());
    };
    if policy.run_commands {
        log::warn!("sandbox: --guestfwd runs commands: the filesystem is kept and no seccomp filter is installed");
    } else if policy.keep_filesystem && !policy.keep_capabilities {
        log::info!("sandbox: --guestfwd unix: needs the filesystem: it is kept");
    }
    let done =
        slirp_std::sandbox::enter(policy).map_err(|e| Fail(format!("{e} (--no-sandbox runs without the sandbox)")))?;
    log::info!("sandbox: {done}");
    Ok(())
}

/// The outbound addresses asked for, interfaces looked up.
fn outbound_addresses(c: &Common) -> Result<(Option<Ipv4Addr>, Option<std::net::Ipv6Addr>), Fail> {
    let v4 = match &c.outbound_addr {
        None => None,
        Some(o) => match slirp_std::slirp4netns::resolve_outbound(o, false) {
            Ok(IpAddr::V4(a)) => Some(a),
            Ok(IpAddr::V6(a)) => return Err(Fail(format!("--outbound-addr: {a} is not an IPv4 address"))),
            Err(e) => return Err(Fail(format!("--outbound-addr: {e}"))),
        },
    };
    let v6 = match &c.outbound_addr6 {
        None => None,
        Some(o) => match slirp_std::slirp4netns::resolve_outbound(o, true) {
            Ok(IpAddr::V6(a)) => Some(a),
            Ok(IpAddr::V4(a)) => return Err(Fail(format!("--outbound-addr6: {a} is not an IPv6 address"))),
            Err(e) => return Err(Fail(format!("--outbound-addr6: {e}"))),
        },
    };
    Ok((v4, v6))
}

fn inherited(fd: Option<i32>, flag: &str) -> Result<Option<OwnedFd>, Fail> {
    fd.map(|n| sys::take_inherited_fd(n).map_err(|e| Fail(format!("{flag} {n}: {e}")))).transpose()
}

/// Everything the common options ask for, checked before anything is created.
struct Prepared {
    config: Config,
    hostfwds: Vec<HostFwd>,
    guestfwds: Vec<slirp_std::options::GuestFwd>,
    dns_upstream: Option<SocketAddr>,
    exit_fd: Option<OwnedFd>,
    ready_fd: Option<OwnedFd>,
    api: Option<ApiServer>,
    outbound: (Option<Ipv4Addr>, Option<std::net::Ipv6Addr>),
    sandbox: Option<slirp_std::sandbox::Policy>,
}

fn prepare(c: &Common) -> Result<Prepared, Fail> {
    let config = core_config(c)?;
    let hostfwds = check_hostfwds(c)?;
    let guestfwds = c
        .guestfwd
        .iter()
        .map(|r| slirp_std::options::GuestFwd::parse(r, &c.cidr))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Fail)?;
    // Bound now, so a bad path fails before anything else is created; served once the loop
    // exists. The guest address for forwards that name none is set in `build_loop`.
    let api = c
        .api_socket
        .as_deref()
        .map(|path| {
            ApiServer::bind(path, Ipv4Addr::UNSPECIFIED)
                .map_err(|e| Fail(format!("--api-socket {}: {e}", path.display())))
        })
        .transpose()?;
    let outbound = outbound_addresses(c)?;
    let sandbox = sandbox_policy(c, &guestfwds);
    Ok(Prepared {
        outbound,
        sandbox,
        config,
        hostfwds,
        guestfwds,
        dns_upstream: dns_upstream(c),
        exit_fd: inherited(c.exit_fd, "--exit-fd")?,
        ready_fd: inherited(c.ready_fd, "--ready-fd")?,
        api,
    })
}

/// Builds the loop over `link` with the common options applied.
///
/// `default_guest`: see [`install_hostfwds`].
fn build_loop(c: &Common, p: Prepared, link: GuestLink, default_guest: Ipv4Addr) -> Result<EventLoop<'static>, Fail> {
    match p.dns_upstream {
        Some(a) => log::info!("DNS upstream {a}"),
        None if c.disable_dns => log::info!("--disable-dns: the DNS alias refuses queries"),
        None => log::info!("no DNS upstream: /etc/resolv.conf has no nameserver; the DNS alias refuses queries"),
    }
    // One host socket per TCP connection and UDP mapping, plus forwards, the link, the event
    // loop's own and the control API's.
    let want = u64::from(c.tcp_connections) + slirp_core::storage::DEFAULT_UDP_FLOWS as u64 + 128;
    match sys::raise_fd_limit(want) {
        Some(limit) if limit < want => log::warn!(
            "descriptor limit {limit} is below the {want} a full connection table needs: past it new \
             connections are refused (TCP: RST, UDP: ICMP unreachable) until others close"
        ),
        _ => {}
    }
    let mut host = StdHost::new(p.dns_upstream);
    if p.outbound != (None, None) {
        let show = |a: Option<String>| a.unwrap_or_else(|| "by route".into());
        log::info!(
            "outbound addresses: IPv4 {}, IPv6 {}",
            show(p.outbound.0.map(|a| a.to_string())),
            show(p.outbound.1.map(|a| a.to_string()))
        );
        host.set_outbound(p.outbound.0, p.outbound.1);
    }
    if let Some(dir) = &c.tftp {
        host.set_tftp_root(dir).map_err(|e| Fail(format!("--tftp {}: {e}", dir.display())))?;
        log::info!("TFTP: serving {} on {}:69", dir.display(), p.config.gateway);
    }
    let storage = slirp_std::storage(c.tcp_connections as usize, c.tcp_buffer);
    let mut slirp = Slirp::new(p.config, storage).map_err(|e| Fail(e.to_string()))?;
    for g in &p.guestfwds {
        let rule = slirp.add_guest_forward(g.addr).map_err(|e| Fail(format!("--guestfwd {}: {e}", g.addr)))?;
        log::info!("--guestfwd: connections to {} served by {:?}", g.addr, g.target);
        host.set_guest_forward(rule, g.target.clone());
    }
    let link = if c.no_offload { link.without_offload()? } else { link };
    let off = link.offload();
    if off.segmentation {
        log::info!("guest link offloads: checksums and TCP segmentation");
    }
    let mut ev = EventLoop::new(slirp, host, link)?;
    ev.set_busy_poll(std::time::Duration::from_micros(u64::from(c.busy_poll)));
    let default_guest6 = (c.ipv6 && !default_guest.is_unspecified()).then(|| c.ipv6_prefix.guest_setup().0);
    install_hostfwds(&mut ev, &p.hostfwds, default_guest, default_guest6)?;
    if let Some(path) = &c.trace {
        let f = std::fs::File::create(path).map_err(|e| Fail(format!("--trace {}: {e}", path.display())))?;
        let format = if c.trace_format == "text" {
            slirp_std::trace::TraceFormat::Text
        } else {
            slirp_std::trace::TraceFormat::Json
        };
        ev.trace_to(slirp_std::trace::TraceWriter::new(f, format));
    }
    if let Some(path) = &c.pcap {
        // Whole frames, super-frames of the offloads included.
        ev.capture(PcapWriter::create(path, slirp_std::link::MAX_FRAME as u32)?);
    }
    if let Some(fd) = p.exit_fd {
        ev.watch_exit_fd(fd)?;
    }
    if let Some(mut api) = p.api {
        api.set_default_guest(default_guest);
        // In the sandbox, commands and unix socket paths are out of reach unless a --guestfwd
        // rule kept them.
        api.set_local_targets(p.sandbox.is_none_or(|s| s.run_commands));
        log::info!("control API on {}", api.path().display());
        ev.serve_api(api)?;
    }
    if let Some(fd) = p.ready_fd {
        ev.notify_ready(fd);
    }
    ev.handle_signals()?;
    Ok(ev)
}

/// Runs the loop and reports how it ended.
fn serve(mut ev: EventLoop<'_>) -> Result<Exit, Fail> {
    let exit = ev.run();
    ev.log_stats(log::Level::Info);
    let exit = exit.map_err(|e| Fail(format!("guest link: {e}")))?;
    match &exit {
        Exit::Signal(s) => log::info!("signal {s}: shutting down"),
        Exit::ExitFd => log::info!("exit fd closed: shutting down"),
        Exit::Stopped | Exit::Child(_) => {}
    }
    let child = ev.finish()?;
    if let (Some(mut child), Exit::Signal(sig)) = (child, &exit) {
        // We are going away: so does the command we started, with the signal we got.
        let pid = rustix::process::Pid::from_child(&child);
        let sig = rustix::process::Signal::from_named_raw(*sig).unwrap_or(rustix::process::Signal::TERM);
        let _ = rustix::process::kill_process(pid, sig);
        let status = child.wait()?;
        return Ok(Exit::Child(status));
    }
    Ok(exit)
}

fn attach(a: AttachArgs) -> Result<ExitCode, Fail> {
    init_logging(a.common.log_level.as_deref(), log::LevelFilter::Info);
    let target = a.netns.or(a.target).ok_or_else(|| Fail("missing --netns".into()))?;
    let prepared = prepare(&a.common)?;
    let policy = prepared.sandbox;
    let setup = InterfaceSetup {
        address: a.common.cidr.guest_address(),
        prefix_len: a.common.cidr.prefix_len,
        gateway: prepared.config.gateway,
        mtu: a.common.mtu,
        ipv6: a.common.ipv6.then(|| a.common.ipv6_prefix.guest_setup()),
        mac: a.macaddress,
    };
    let configure = a.configure;
    let (tap, name, where_) = match &a.userns {
        // Entering a user namespace takes a single-threaded process: a helper of our own.
        Some(userns) => {
            let (tap, name) = open_tap_in_helper(&target.path(), userns, &a.ifname, configure.then_some(&setup))?;
            (tap, name, target.to_string())
        }
        None => {
            let ns = target.open()?;
            let (tap, name) = ns.run_inside(|| {
                let (tap, name) = open_tap_here(&a.ifname)?;
                if configure {
                    configure_here(&name, &setup, true)?;
                }
                Ok((tap, name))
            })?;
            // Hold no reference to the namespace: when its last process goes, it must be free
            // to die.
            (tap, name, ns.name().to_string())
        }
    };
    log::info!(
        "attached {name} in {where_}{}",
        if configure {
            let v6 = setup.ipv6.map(|(a, l, r)| format!(", {a}/{l} via {r}")).unwrap_or_default();
            format!(" (configured {}/{} via {}{v6})", setup.address, setup.prefix_len, setup.gateway)
        } else {
            String::new()
        }
    );
    let default_guest = if configure || a.slirp4netns_defaults { setup.address } else { Ipv4Addr::UNSPECIFIED };
    let ev = build_loop(&a.common, prepared, GuestLink::datagram(tap)?, default_guest)?;
    enter_sandbox(policy)?;
    serve(ev)?;
    Ok(ExitCode::SUCCESS)
}

/// Opens (creating it if needed) TAP `ifname` in network namespace `netns`, from a helper
/// process that first enters user namespace `userns` (unless it is ours already), and
/// configures it when `setup` is given. Returns the TAP and its name.
fn open_tap_in_helper(
    netns: &Path,
    userns: &Path,
    ifname: &str,
    setup: Option<&InterfaceSetup>,
) -> Result<(OwnedFd, String), Fail> {
    let (ctl, child_end) = std::os::unix::net::UnixStream::pair()?;
    // A copy without close-on-exec, so the helper inherits it; ours is closed after spawn.
    let inheritable = rustix::io::dup(&child_end)?;
    drop(child_end);
    let mut cmd = Command::new(std::env::current_exe()?);
    // Named `slirp` whatever this binary is called (a copy named slirp4netns would otherwise
    // read the helper's arguments as slirp4netns's).
    cmd.arg0("slirp");
    cmd.arg("__tap-helper")
        .arg("--ctl-fd")
        .arg(inheritable.as_raw_fd().to_string())
        .arg("--netns")
        .arg(netns)
        .arg("--userns")
        .arg(userns)
        .arg("--ifname")
        .arg(ifname);
    if let Some(s) = setup {
        cmd.arg("--address").arg(format!("{}/{}", s.address, s.prefix_len));
        cmd.arg("--gateway").arg(s.gateway.to_string()).arg("--mtu").arg(s.mtu.to_string());
        if let Some((a, l, _)) = s.ipv6 {
            cmd.arg("--ipv6").arg(format!("{a}/{l}"));
        }
        if let Some(m) = s.mac {
            let m: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
            cmd.arg("--mac").arg(m.join(":"));
        }
    }
    let mut child = cmd.spawn().map_err(|e| Fail(format!("starting the TAP helper: {e}")))?;
    drop(inheritable);
    let got = recv_fd(&ctl);
    let status = child.wait()?;
    match got? {
        Some((1, Some(tap))) if status.success() => Ok((tap, ifname.to_string())),
        // The helper said why on stderr.
        _ => Err(Fail(format!("could not open {ifname} in {} (helper {status})", netns.display()))),
    }
}

/// The helper of [`open_tap_in_helper`].
fn tap_helper(t: TapHelperArgs) -> Result<ExitCode, Fail> {
    let ctl = std::os::unix::net::UnixStream::from(sys::take_inherited_fd(t.ctl_fd)?);
    if let Some(userns) = &t.userns {
        slirp_std::netns::enter_user_namespace(userns)?;
    }
    slirp_std::netns::enter_network_namespace(&t.netns)?;
    let (tap, name) = open_tap_here(&t.ifname)?;
    if let (Some(address), Some(gateway), Some(mtu)) = (&t.address, t.gateway, t.mtu) {
        let cidr = |s: &str| -> Option<(String, u8)> {
            let (a, l) = s.split_once('/')?;
            Some((a.to_string(), l.parse().ok()?))
        };
        let (a, len) = cidr(address).ok_or_else(|| Fail(format!("bad --address {address}")))?;
        let ipv6 = match &t.ipv6 {
            Some(v) => {
                let (a6, l6) = cidr(v).ok_or_else(|| Fail(format!("bad --ipv6 {v}")))?;
                Some((a6.parse()?, l6, slirp_core::Ipv6Config::LINK_LOCAL_GATEWAY))
            }
            None => None,
        };
        let setup = InterfaceSetup { address: a.parse()?, prefix_len: len, gateway, mtu, ipv6, mac: t.mac };
        configure_here(&name, &setup, true)?;
    }
    send_fd(&ctl, &tap, 1)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs as slirp4netns 1.2 (see [`slirp_std::slirp4netns`]): its command line, its messages
/// and exit codes, on top of `attach`.
fn slirp4netns_main(args: &[OsString]) -> ExitCode {
    use slirp_std::slirp4netns::{self as s4, Parsed};
    let a = match s4::parse(args) {
        Ok(Parsed::Help) => {
            print!("{}", s4::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            print!("{}", s4::version_text());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            if let Some(m) = e.message {
                eprintln!("{m}");
            }
            print!("{}", s4::USAGE);
            return ExitCode::FAILURE;
        }
        Ok(Parsed::Run(a)) => a,
    };
    let mut argv: Vec<OsString> = vec!["slirp".into(), "attach".into(), "--slirp4netns-defaults".into()];
    let mut push = |k: &str, v: Option<String>| {
        argv.push(k.into());
        if let Some(v) = v {
            argv.push(v.into());
        }
    };
    match &a.target {
        NetnsTarget::Pid(pid) => push("--netns", Some(pid.to_string())),
        NetnsTarget::Path(p) => {
            // A path of digits alone would read as a process id.
            let p = if p.is_relative() { Path::new(".").join(p) } else { p.clone() };
            argv.push("--netns".into());
            argv.push(p.into_os_string());
        }
    }
    let mut push = |k: &str, v: Option<String>| {
        argv.push(k.into());
        if let Some(v) = v {
            argv.push(v.into());
        }
    };
    push("--ifname", Some(a.tapname.clone()));
    push("--mtu", Some(a.mtu.to_string()));
    push("--cidr", Some(a.cidr.to_string()));
    if a.configure {
        push("--configure", None);
    }
    if let Some(fd) = a.exit_fd {
        push("--exit-fd", Some(fd.to_string()));
    }
    if let Some(fd) = a.ready_fd {
        push("--ready-fd", Some(fd.to_string()));
    }
    if a.enable_ipv6 {
        push("--ipv6", None);
    }
    if a.disable_host_loopback {
        push("--disable-host-loopback", None);
    }
    if a.disable_dns {
        push("--disable-dns", None);
    }
    let outbound = |o: &Outbound| match o {
        Outbound::Addr(a) => a.to_string(),
        Outbound::Interface(i) => i.clone(),
    };
    if let Some(o) = &a.outbound_addr {
        push("--outbound-addr", Some(outbound(o)));
    }
    if let Some(o) = &a.outbound_addr6 {
        push("--outbound-addr6", Some(outbound(o)));
    }
    if let Some(m) = a.macaddress {
        let m: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
        push("--macaddress", Some(m.join(":")));
    }
    let sandbox = match (a.enable_sandbox, a.enable_seccomp) {
        (true, true) => "full",
        (true, false) => "no-seccomp",
        (false, true) => "seccomp-only",
        (false, false) => "off",
    };
    push("--sandbox", Some(sandbox.into()));
    if let Some(p) = &a.api_socket {
        argv.push("--api-socket".into());
        argv.push(p.clone().into_os_string());
    }
    if let Some(u) = &a.userns {
        argv.push("--userns".into());
        argv.push(u.clone().into_os_string());
    }
    let attach_args = match Cli::try_parse_from(&argv) {
        Ok(Cli { command: Cmd::Attach(x) }) => x,
        Ok(_) => unreachable!("the argument vector names `attach`"),
        Err(e) => {
            eprintln!("slirp4netns: {}", e.render().to_string().lines().next().unwrap_or_default());
            return ExitCode::FAILURE;
        }
    };
    match attach(attach_args) {
        Ok(code) => code,
        Err(Fail(msg)) => {
            eprintln!("slirp4netns: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn qemu(q: QemuArgs) -> Result<ExitCode, Fail> {
    init_logging(q.common.log_level.as_deref(), log::LevelFilter::Info);
    let prepared = prepare(&q.common)?;
    let link = GuestLink::qemu_server(&q.socket)?;
    log::info!("waiting for a QEMU guest on {}", q.socket.display());
    let policy = prepared.sandbox;
    let ev = build_loop(&q.common, prepared, link, Ipv4Addr::UNSPECIFIED)?;
    enter_sandbox(policy)?;
    serve(ev)?;
    Ok(ExitCode::SUCCESS)
}

/// The exit code a shell would report for `status`.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from((128 + sig) as u8),
        _ => ExitCode::FAILURE,
    }
}

fn run(r: RunArgs) -> Result<ExitCode, Fail> {
    init_logging(r.common.log_level.as_deref(), log::LevelFilter::Warn);
    // Check everything before creating anything.
    let prepared = prepare(&r.common)?;
    let userns = !rustix::process::geteuid().is_root();
    let (ctl, child_end) = std::os::unix::net::UnixStream::pair()?;
    // A copy without close-on-exec, so the child inherits it; ours is closed right after spawn.
    let inheritable = rustix::io::dup(&child_end)?;
    drop(child_end);
    let exe = std::env::current_exe()?;
    let mut cmd = Command::new(exe);
    cmd.arg0("slirp");
    cmd.arg("__run-child")
        .arg("--ctl-fd")
        .arg(inheritable.as_raw_fd().to_string())
        .arg("--ifname")
        .arg(&r.ifname)
        .arg("--cidr")
        .arg(r.common.cidr.to_string())
        .arg("--mtu")
        .arg(r.common.mtu.to_string());
    if userns {
        cmd.arg("--userns");
    }
    if r.common.ipv6 {
        cmd.arg("--ipv6").arg(r.common.ipv6_prefix.to_string());
    }
    if !r.no_resolv_conf {
        cmd.arg("--resolv-conf-dns").arg(prepared.config.dns.to_string());
    }
    cmd.arg("--").args(&r.command);
    let mut child = cmd.spawn().map_err(|e| Fail(format!("starting the namespace helper: {e}")))?;
    drop(inheritable);
    let tap = match recv_fd(&ctl)? {
        Some((1, Some(tap))) => tap,
        _ => {
            // The child said why on stderr; pass its status on.
            let status = child.wait()?;
            return Ok(exit_code(status));
        }
    };
    let policy = prepared.sandbox;
    let mut ev = build_loop(&r.common, prepared, GuestLink::datagram(tap)?, r.common.cidr.guest_address())?;
    ev.watch_child(child)?;
    enter_sandbox(policy)?;
    // Let the command start.
    use std::io::Write;
    (&ctl).write_all(&[1])?;
    match serve(ev)? {
        Exit::Child(status) => Ok(exit_code(status)),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// The namespace side of `slirp run`: enter fresh namespaces, create and configure the TAP,
/// hand it to the parent, wait for its go, become COMMAND.
fn run_child(c: RunChildArgs) -> Result<ExitCode, Fail> {
    // Single-threaded still: nothing above started a thread, which a user namespace needs.
    let ctl = std::os::unix::net::UnixStream::from(sys::take_inherited_fd(c.ctl_fd)?);
    enter_new_netns(c.userns)?;
    let setup = InterfaceSetup {
        address: c.cidr.guest_address(),
        prefix_len: c.cidr.prefix_len,
        gateway: c.cidr.host(2),
        mtu: c.mtu,
        ipv6: c.ipv6.map(|p| p.guest_setup()),
        mac: None,
    };
    let (tap, name) = open_tap_here(&c.ifname)?;
    configure_here(&name, &setup, true)?;
    if let Some(dns) = c.resolv_conf_dns {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut aliases = vec![std::net::IpAddr::from(dns)];
        if let Some(p) = c.ipv6 {
            aliases.push(std::net::Ipv6Addr::from(u128::from(p.prefix) | 3).into());
        }
        let contents = slirp_std::options::namespace_resolv_conf(&host, &aliases);
        if let Err(e) = slirp_std::netns::private_resolv_conf(&contents) {
            // The command still runs; names it looks up go wherever the host's file says.
            eprintln!("slirp: warning: no resolv.conf naming {dns} for the command: {e}");
        }
    }
    send_fd(&ctl, &tap, 1)?;
    drop(tap);
    let mut go = [0u8; 1];
    use std::io::Read;
    if (&ctl).read(&mut go)? != 1 {
        return Err(Fail("slirp went away before the command started".into()));
    }
    drop(ctl);
    let err = Command::new(&c.command[0]).args(&c.command[1..]).exec();
    eprintln!("slirp: {}: {err}", c.command[0].to_string_lossy());
    Ok(ExitCode::from(if err.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 }))
}
