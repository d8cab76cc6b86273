//! slirp4netns' command line: `slirp4netns [OPTION]... PID|PATH [TAPNAME]`.
//!
//! The `slirp` binary behaves as slirp4netns 1.2 when it is called under that name (a link named
//! `slirp4netns`) or as `slirp slirp4netns ARGS...`, so podman, buildah, rootlesskit (rootless
//! Docker, nerdctl, k3s) run it unchanged. This module reads that command line exactly as
//! slirp4netns' `getopt_long` does: short options (`-c6`, `-m1500`, `-m 1500`), long ones
//! (`--mtu=1500`, `--mtu 1500`, an unambiguous prefix such as `--conf`), options after the
//! operands, `--` ending the options. Usage errors print the message and the usage, as
//! slirp4netns, and exit with status 1.
//!
//! What differs from slirp4netns, on purpose: `--netns-type` accepts only `pid` and `path`
//! (slirp4netns takes anything else as `path`); `--target-type=bess` is refused (BESS is not
//! built); `--mtu` below 576 is refused (IPv4 needs 576) and 65521 is served as 65520 (a frame
//! and its headers must fit 64 KiB); `--cidr` prefix lengths are 8 to 25 (slirp4netns: 1 to 25).

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::options::Cidr;
use crate::NetnsTarget;

/// `--help`, byte for byte slirp4netns 1.2's (tools look for option names in it).
pub const USAGE: &str = "Usage: slirp4netns [OPTION]... PID|PATH [TAPNAME]
User-mode networking for unprivileged network namespaces.

-c, --configure          bring up the interface
-e, --exit-fd=FD         specify the FD for terminating slirp4netns
-r, --ready-fd=FD        specify the FD to write to when the network is configured
-m, --mtu=MTU            specify MTU (default=1500, max=65521)
-6, --enable-ipv6        enable IPv6 (experimental)
-a, --api-socket=PATH    specify API socket path
--cidr=CIDR              specify network address CIDR (default=10.0.2.0/24)
--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace
--netns-type=TYPE \t specify network namespace type ([path|pid], default=pid)
--userns-path=PATH\t specify user namespace path
--enable-sandbox         create a new mount namespace (and drop all caps except CAP_NET_BIND_SERVICE if running as the root)
--enable-seccomp         enable seccomp to limit syscalls (experimental)
--outbound-addr=IPv4     sets outbound ipv4 address to bound to (experimental)
--outbound-addr6=IPv6    sets outbound ipv6 address to bound to (experimental)
--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect (experimental)
--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)
--target-type=TYPE       specify the target type ([netns|bess], default=netns)
-h, --help               show this help and exit
-v, --version            show version and exit
";

/// The slirp4netns release whose command line and API this mode follows.
pub const COMPAT_VERSION: &str = "1.2.0";

/// `--version`: slirp4netns' layout (`slirp4netns version X.Y.Z` first, then `key: value`
/// lines), saying what actually runs.
pub fn version_text() -> String {
    format!(
        "slirp4netns version {COMPAT_VERSION}\ncommit: slirp {}\nlibslirp: none (slirp {} implements the network stack)\n\
         SLIRP_CONFIG_VERSION_MAX: 4\nlibseccomp: none (seccompiler)\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
    )
}

/// Where `--outbound-addr`/`--outbound-addr6` point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A local address.
    Addr(IpAddr),
    /// An interface, whose address (of the option's family) is looked up at start.
    Interface(String),
}

/// A checked slirp4netns command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slirp4netnsArgs {
    /// `-c`: configure the TAP (address .100, default route, MTU) and bring `lo` up.
    pub configure: bool,
    /// `-e FD`: exit when FD polls (closed by its other end, or readable).
    pub exit_fd: Option<i32>,
    /// `-r FD`: write `1` to FD and close it once configured and serving.
    pub ready_fd: Option<i32>,
    /// `-m MTU` (576 to 65520; 65521 is served as 65520).
    pub mtu: u16,
    /// `-6`.
    pub enable_ipv6: bool,
    /// `-a PATH`.
    pub api_socket: Option<PathBuf>,
    /// `--cidr`.
    pub cidr: Cidr,
    /// `--disable-host-loopback`.
    pub disable_host_loopback: bool,
    /// The namespace (`PID` by default, `PATH` with `--netns-type=path`).
    pub target: NetnsTarget,
    /// `--userns-path`, or for a PID target `/proc/PID/ns/user`.
    pub userns: Option<PathBuf>,
    /// `--enable-sandbox`.
    pub enable_sandbox: bool,
    /// `--enable-seccomp`.
    pub enable_seccomp: bool,
    /// `--outbound-addr`.
    pub outbound_addr: Option<Outbound>,
    /// `--outbound-addr6`.
    pub outbound_addr6: Option<Outbound>,
    /// `--disable-dns`.
    pub disable_dns: bool,
    /// `--macaddress` (with `-c`).
    pub macaddress: Option<[u8; 6]>,
    /// TAPNAME.
    pub tapname: String,
}

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Run.
    Run(Box<Slirp4netnsArgs>),
    /// `-h`: print [`USAGE`], exit 0.
    Help,
    /// `-v`: print [`version_text`], exit 0.
    Version,
}

/// A usage error: print `message` (if any) to stderr, then [`USAGE`], and exit 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError {
    /// What is wrong (`None`: only the usage, as slirp4netns for missing operands).
    pub message: Option<String>,
}

fn err<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError { message: Some(msg.into()) })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Opt {
    Configure,
    ExitFd,
    ReadyFd,
    Mtu,
    Ipv6,
    ApiSocket,
    Cidr,
    DisableHostLoopback,
    NetnsType,
    UsernsPath,
    Sandbox,
    Seccomp,
    Outbound,
    Outbound6,
    DisableDns,
    Mac,
    TargetType,
    Help,
    Version,
}

/// Long options: name, option, takes an argument.
const LONG: &[(&str, Opt, bool)] = &[
    ("configure", Opt::Configure, false),
    ("exit-fd", Opt::ExitFd, true),
    ("ready-fd", Opt::ReadyFd, true),
    ("mtu", Opt::Mtu, true),
    ("enable-ipv6", Opt::Ipv6, false),
    ("api-socket", Opt::ApiSocket, true),
    ("cidr", Opt::Cidr, true),
    ("disable-host-loopback", Opt::DisableHostLoopback, false),
    ("netns-type", Opt::NetnsType, true),
    ("userns-path", Opt::UsernsPath, true),
    ("enable-sandbox", Opt::Sandbox, false),
    ("enable-seccomp", Opt::Seccomp, false),
    ("outbound-addr", Opt::Outbound, true),
    ("outbound-addr6", Opt::Outbound6, true),
    ("disable-dns", Opt::DisableDns, false),
    ("macaddress", Opt::Mac, true),
    ("target-type", Opt::TargetType, true),
    ("help", Opt::Help, false),
    ("version", Opt::Version, false),
];

fn short(c: char) -> Option<(Opt, bool)> {
    Some(match c {
        'c' => (Opt::Configure, false),
        'e' => (Opt::ExitFd, true),
        'r' => (Opt::ReadyFd, true),
        'm' => (Opt::Mtu, true),
        '6' => (Opt::Ipv6, false),
        'a' => (Opt::ApiSocket, true),
        'h' => (Opt::Help, false),
        'v' => (Opt::Version, false),
        _ => return None,
    })
}

/// Finds long option `name`: an exact match, else the one option it is a prefix of.
fn long(name: &str) -> Result<(Opt, bool), UsageError> {
    if let Some(&(_, o, a)) = LONG.iter().find(|(n, _, _)| *n == name) {
        return Ok((o, a));
    }
    let matches: Vec<_> = LONG.iter().filter(|(n, _, _)| n.starts_with(name)).collect();
    match matches.as_slice() {
        [(_, o, a)] => Ok((*o, *a)),
        [] => err(format!("slirp4netns: unrecognized option '--{name}'")),
        _ => err(format!("slirp4netns: option '--{name}' is ambiguous")),
    }
}

/// A descriptor number: a non-negative integer.
fn fd_number(flag: &str, v: &str) -> Result<i32, UsageError> {
    v.trim()
        .parse::<i32>()
        .ok()
        .filter(|&n| n >= 0)
        .map_or_else(|| err(format!("{flag} must be a non-negative integer")), Ok)
}

/// Reads `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Reads slirp4netns' `--cidr`, with its messages.
fn parse_cidr(s: &str) -> Result<Cidr, UsageError> {
    let Some((addr, len)) = s.split_once('/') else { return err(format!("invalid CIDR: {s}")) };
    let (Ok(addr), Ok(len)) = (addr.parse::<Ipv4Addr>(), len.parse::<u8>()) else {
        return err(format!("invalid CIDR: {s}"));
    };
    if !(8..=25).contains(&len) {
        return err("prefix length needs to be 8-25");
    }
    let mask = u32::MAX << (32 - u32::from(len));
    if u32::from(addr) & !mask != 0 {
        return err("CIDR needs to be a network address like 10.0.2.0/24, not like 10.0.2.100/24");
    }
    Cidr::parse(s).map_err(|e| UsageError { message: Some(format!("invalid CIDR: {e}")) })
}

impl Outbound {
    /// Reads an `--outbound-addr` (`v6` false) or `--outbound-addr6` value: an address of that
    /// family, or an interface name.
    pub fn parse(v6: bool, s: &str) -> Result<Outbound, String> {
        parse_outbound(v6, s).map_err(|e| e.message.unwrap_or_default())
    }
}

fn parse_outbound(v6: bool, s: &str) -> Result<Outbound, UsageError> {
    let flag = if v6 { "outbound-addr6" } else { "outbound-addr" };
    let family = if v6 { "ipv6" } else { "ipv4" };
    if let Ok(a) = s.parse::<IpAddr>() {
        if a.is_ipv6() != v6 {
            return err(format!("{flag} has to be valid {family} address or interface name."));
        }
        return Ok(Outbound::Addr(a));
    }
    if s.is_empty() || s.len() > 15 || s.contains('/') || s.contains(char::is_whitespace) {
        return err(format!("{flag} has to be valid {family} address or interface name."));
    }
    Ok(Outbound::Interface(s.to_string()))
}

/// Parses a slirp4netns command line (without the program name).
pub fn parse(args: &[OsString]) -> Result<Parsed, UsageError> {
    let mut configure = false;
    let mut exit_fd = None;
    let mut ready_fd = None;
    let mut mtu: u32 = 1500;
    let mut ipv6 = false;
    let mut api_socket = None;
    let mut cidr = None;
    let mut disable_host_loopback = false;
    let mut netns_type_path = false;
    let mut userns_path: Option<PathBuf> = None;
    let mut sandbox = false;
    let mut seccomp = false;
    let mut outbound = None;
    let mut outbound6 = None;
    let mut disable_dns = false;
    let mut mac_arg: Option<String> = None;
    let mut bess = false;
    let mut operands: Vec<OsString> = Vec::new();

    let mut i = 0;
    let mut apply = |opt: Opt, val: Option<String>| -> Result<Option<Parsed>, UsageError> {
        let val = val.unwrap_or_default();
        match opt {
            Opt::Configure => configure = true,
            Opt::ExitFd => exit_fd = Some(fd_number("exit-fd", &val)?),
            Opt::ReadyFd => ready_fd = Some(fd_number("ready-fd", &val)?),
            Opt::Mtu => {
                mtu = val
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|&m| m > 0 && m <= 65521)
                    .map_or_else(|| err("MTU must be a positive integer (< 65522)"), Ok)?;
            }
            Opt::Ipv6 => ipv6 = true,
            Opt::ApiSocket => api_socket = Some(PathBuf::from(val)),
            Opt::Cidr => cidr = Some(parse_cidr(&val)?),
            Opt::DisableHostLoopback => disable_host_loopback = true,
            Opt::NetnsType => match val.as_str() {
                "pid" => netns_type_path = false,
                "path" => netns_type_path = true,
                _ => return err("--netns-type must be either \"path\" or \"pid\""),
            },
            Opt::UsernsPath => {
                let p = PathBuf::from(&val);
                if !p.exists() {
                    return err(format!("userns path doesn't exist: {val}"));
                }
                userns_path = Some(p);
            }
            Opt::Sandbox => sandbox = true,
            Opt::Seccomp => seccomp = true,
            Opt::Outbound => outbound = Some(parse_outbound(false, &val)?),
            Opt::Outbound6 => outbound6 = Some(parse_outbound(true, &val)?),
            Opt::DisableDns => disable_dns = true,
            Opt::Mac => mac_arg = Some(val),
            Opt::TargetType => match val.as_str() {
                "netns" => bess = false,
                "bess" => bess = true,
                _ => return err("--target-type must be either \"netns\" or \"bess\""),
            },
            Opt::Help => return Ok(Some(Parsed::Help)),
            Opt::Version => return Ok(Some(Parsed::Version)),
        }
        Ok(None)
    };
    let text = |a: &OsString| -> Result<String, UsageError> {
        a.to_str().map(str::to_string).map_or_else(|| err(format!("argument {a:?} is not valid UTF-8")), Ok)
    };
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(s) = arg.to_str() else {
            operands.push(arg.clone());
            continue;
        };
        if s == "--" {
            operands.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = s.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let (opt, takes) = long(name)?;
            let val = match (takes, inline) {
                (true, Some(v)) => Some(v),
                (true, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(text(v)?)
                    }
                    None => return err(format!("slirp4netns: option '--{name}' requires an argument")),
                },
                (false, Some(_)) => return err(format!("slirp4netns: option '--{name}' doesn't allow an argument")),
                (false, None) => None,
            };
            if let Some(p) = apply(opt, val)? {
                return Ok(p);
            }
            continue;
        }
        if s.len() > 1 && s.starts_with('-') {
            let chars: Vec<char> = s[1..].chars().collect();
            let mut k = 0;
            while k < chars.len() {
                let c = chars[k];
                k += 1;
                let Some((opt, takes)) = short(c) else {
                    return err(format!("slirp4netns: invalid option -- '{c}'"));
                };
                let val = if takes {
                    let rest: String = chars[k..].iter().collect();
                    k = chars.len();
                    if !rest.is_empty() {
                        Some(rest)
                    } else {
                        match args.get(i) {
                            Some(v) => {
                                i += 1;
                                Some(text(v)?)
                            }
                            None => return err(format!("slirp4netns: option requires an argument -- '{c}'")),
                        }
                    }
                } else {
                    None
                };
                if let Some(p) = apply(opt, val)? {
                    return Ok(p);
                }
            }
            continue;
        }
        operands.push(arg.clone());
    }

    let macaddress = match mac_arg {
        None => None,
        Some(_) if !configure => return err("--macaddr cannot be specified when --configure or -c is not specified"),
        Some(m) => match parse_mac(&m) {
            Some(mac) if mac[0] & 1 == 0 && mac != [0; 6] => Some(mac),
            Some(_) => return err(format!("\"{m}\" is not a unicast MAC address.")),
            None => {
                return err(format!(
                    "\"{m}\" is an invalid MAC address.\nmacaddress has to be a valid MAC address (hex string, 6 \
                     bytes, each byte separated by a ':')."
                ))
            }
        },
    };
    if bess {
        return err("--target-type=bess is not supported by this slirp4netns (slirp): use --target-type=netns");
    }
    if operands.len() < 2 {
        return Err(UsageError { message: None });
    }
    if operands.len() > 2 {
        return err("too many arguments");
    }
    let first = text(&operands[0])?;
    let tapname = text(&operands[1])?;
    if tapname.is_empty() || tapname.len() > 15 || tapname.contains('/') || tapname.contains(char::is_whitespace) {
        return err(format!("TAPNAME {tapname:?} is not an interface name (1 to 15 bytes, no '/' or spaces)"));
    }
    let (target, userns) = if netns_type_path {
        let p = PathBuf::from(&first);
        if !p.exists() {
            return err("existing path expected when --netns-type=path: No such file or directory");
        }
        (NetnsTarget::Path(p), userns_path)
    } else {
        let pid = first.parse::<u32>().ok().filter(|&p| p > 0 && p <= i32::MAX as u32);
        let Some(pid) = pid else { return err("PID must be a positive integer") };
        let userns = userns_path.or_else(|| Some(PathBuf::from(format!("/proc/{pid}/ns/user"))));
        (NetnsTarget::Pid(pid), userns)
    };
    if mtu < u32::from(slirp_core::config::MIN_MTU) {
        return err(format!("MTU must be {} or more here (IPv4 needs it)", slirp_core::config::MIN_MTU));
    }
    if ipv6 && mtu < 1280 {
        return err("MTU must be 1280 or more with --enable-ipv6");
    }
    let mtu = mtu.min(u32::from(slirp_core::config::MAX_MTU)) as u16;
    Ok(Parsed::Run(Box::new(Slirp4netnsArgs {
        configure,
        exit_fd,
        ready_fd,
        mtu,
        enable_ipv6: ipv6,
        api_socket,
        cidr: cidr.unwrap_or_default(),
        disable_host_loopback,
        target,
        userns,
        enable_sandbox: sandbox,
        enable_seccomp: seccomp,
        outbound_addr: outbound,
        outbound_addr6: outbound6,
        disable_dns,
        macaddress,
        tapname,
    })))
}

/// The address an [`Outbound`] means, for family `v6`: an interface's is looked up (in the
/// calling thread's network namespace).
pub fn resolve_outbound(o: &Outbound, v6: bool) -> std::io::Result<IpAddr> {
    match o {
        Outbound::Addr(a) => Ok(*a),
        Outbound::Interface(name) => crate::netlink::interface_address(name, v6)?.ok_or_else(|| {
            std::io::Error::other(format!("interface {name} has no {} address", if v6 { "IPv6" } else { "IPv4" }))
        }),
    }
}

/// The IPv6 outbound address, when `o` gives one.
pub fn outbound6(o: Option<IpAddr>) -> Option<Ipv6Addr> {
    match o {
        Some(IpAddr::V6(a)) => Some(a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Parsed, UsageError> {
        parse(&s.split_whitespace().map(OsString::from).collect::<Vec<_>>())
    }

    fn run(s: &str) -> Slirp4netnsArgs {
        match p(s) {
            Ok(Parsed::Run(a)) => *a,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn msg(s: &str) -> String {
        match p(s) {
            Err(UsageError { message }) => message.unwrap_or_default(),
            other => panic!("{s}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn the_usual_podman_and_rootlesskit_lines() {
        let a = run("--disable-host-loopback --mtu=65520 --enable-sandbox --enable-seccomp -c -e 3 -r 4 1234 tap0");
        assert!(a.configure && a.disable_host_loopback && a.enable_sandbox && a.enable_seccomp);
        assert_eq!((a.mtu, a.exit_fd, a.ready_fd), (65520, Some(3), Some(4)));
        assert_eq!(a.target, NetnsTarget::Pid(1234));
        assert_eq!(a.userns, Some(PathBuf::from("/proc/1234/ns/user")));
        assert_eq!(a.tapname, "tap0");
        assert_eq!(a.cidr, Cidr::default());
        // rootlesskit: --mtu N -r 3 [--cidr ..] [--api-socket ..] PID tap0
        let a = run("--mtu 65520 -r 3 --cidr 10.0.3.0/24 --api-socket /run/x.sock 77 tap0");
        assert_eq!(a.cidr, Cidr::parse("10.0.3.0/24").unwrap());
        assert_eq!(a.api_socket, Some(PathBuf::from("/run/x.sock")));
        assert!(!a.configure);
    }

    #[test]
    fn getopt_forms() {
        let a = run("-c6m1500 -e3 99 tap1");
        assert!(a.configure && a.enable_ipv6);
        assert_eq!((a.mtu, a.exit_fd, a.tapname.as_str()), (1500, Some(3), "tap1"));
        // Options after operands, and a unique prefix of a long option.
        let a = run("99 tap0 --conf --disable-d");
        assert!(a.configure && a.disable_dns);
        // `--` ends options.
        assert_eq!(run("-- 99 tap0").target, NetnsTarget::Pid(99));
        assert!(msg("--enable 1 tap0").contains("ambiguous"));
        assert!(msg("--bogus 1 tap0").contains("unrecognized option '--bogus'"));
        assert!(msg("-x 1 tap0").contains("invalid option -- 'x'"));
        assert!(msg("1 tap0 --mtu").contains("requires an argument"));
        assert!(msg("--configure=yes 1 tap0").contains("doesn't allow an argument"));
    }

    #[test]
    fn help_and_version_win() {
        assert_eq!(p("-h"), Ok(Parsed::Help));
        assert_eq!(p("--mtu=1500 --help 1 tap0"), Ok(Parsed::Help));
        assert_eq!(p("-v"), Ok(Parsed::Version));
        assert!(version_text().starts_with("slirp4netns version 1.2.0\n"));
        for opt in [
            "--netns-type",
            "--cidr",
            "--disable-host-loopback",
            "--api-socket",
            "--enable-sandbox",
            "--enable-seccomp",
            "--enable-ipv6",
            "--outbound-addr",
            "--disable-dns",
            "--macaddress",
        ] {
            assert!(USAGE.contains(opt), "{opt}");
        }
    }

    #[test]
    fn slirp4netns_error_cases() {
        assert_eq!(p("1"), Err(UsageError { message: None }));
        assert_eq!(p(""), Err(UsageError { message: None }));
        assert_eq!(msg("1 tap0 extra"), "too many arguments");
        assert_eq!(msg("abc tap0"), "PID must be a positive integer");
        assert_eq!(msg("0 tap0"), "PID must be a positive integer");
        assert_eq!(msg("-e abc 1 tap0"), "exit-fd must be a non-negative integer");
        assert_eq!(msg("-e -1 1 tap0"), "exit-fd must be a non-negative integer");
        assert_eq!(msg("-r x 1 tap0"), "ready-fd must be a non-negative integer");
        for m in ["0", "65522", "abc"] {
            assert_eq!(msg(&format!("-m {m} 1 tap0")), "MTU must be a positive integer (< 65522)");
        }
        assert!(msg("-m 500 1 tap0").contains("576"));
        assert!(msg("-6 -m 1000 1 tap0").contains("1280"));
        assert_eq!(run("-m 65521 1 tap0").mtu, 65520);
        assert_eq!(msg("--cidr=1.2.3.4 1 tap0"), "invalid CIDR: 1.2.3.4");
        assert_eq!(msg("--cidr=10.0.2.0/26 1 tap0"), "prefix length needs to be 8-25");
        assert!(msg("--cidr=10.0.2.1/24 1 tap0").starts_with("CIDR needs to be a network address"));
        assert!(msg("--netns-type=foo 1 tap0").contains("\"path\" or \"pid\""));
        assert!(msg("--netns-type=path /nonexistent/ns tap0").starts_with("existing path expected"));
        assert!(msg("--userns-path=/nonexistent 1 tap0").starts_with("userns path doesn't exist"));
        assert!(msg("--macaddress=02:00:00:00:00:01 1 tap0").contains("--configure or -c is not specified"));
        assert!(msg("-c --macaddress=zz 1 tap0").contains("invalid MAC address"));
        assert!(msg("-c --macaddress=01:00:00:00:00:01 1 tap0").contains("unicast"));
        assert!(msg("--target-type=bess /tmp/x").contains("not supported"));
        assert!(msg("--target-type=foo 1 tap0").contains("\"netns\" or \"bess\""));
        assert!(msg("--outbound-addr=::1 1 tap0").contains("valid ipv4 address or interface name"));
        assert!(msg("--outbound-addr6=1.2.3.4 1 tap0").contains("valid ipv6 address or interface name"));
        assert!(msg("1 bad/name").contains("not an interface name"));
    }

    #[test]
    fn values() {
        let a = run("-c --macaddress=02:AB:cd:00:00:01 --outbound-addr=198.51.100.7 --outbound-addr6=eth0 1 tap0");
        assert_eq!(a.macaddress, Some([0x02, 0xab, 0xcd, 0, 0, 1]));
        assert_eq!(a.outbound_addr, Some(Outbound::Addr("198.51.100.7".parse().unwrap())));
        assert_eq!(a.outbound_addr6, Some(Outbound::Interface("eth0".into())));
        let a = run("--netns-type=path --userns-path=/proc/self/ns/user /proc/self/ns/net tap0");
        assert_eq!(a.target, NetnsTarget::Path("/proc/self/ns/net".into()));
        assert_eq!(a.userns, Some(PathBuf::from("/proc/self/ns/user")));
        // A path target has no user namespace unless one is named.
        assert_eq!(run("--netns-type=path /proc/self/ns/net tap0").userns, None);
        assert_eq!(parse_mac("1:2:3:4:5:6"), Some([1, 2, 3, 4, 5, 6]));
        assert_eq!(parse_mac("1:2:3:4:5"), None);
        assert_eq!(parse_mac("1:2:3:4:5:6:7"), None);
        assert_eq!(parse_mac("100:2:3:4:5:6"), None);
    }
}
