//! The `slirp` binary as slirp4netns (run through a link named `slirp4netns`), called the way
//! podman, rootlesskit and their users call slirp4netns, in the lab of `common`: by PID and by
//! path, configured or not, with `--cidr`, `--mtu`, `--macaddress`, the ready and exit
//! descriptors, `--disable-dns`, `--disable-host-loopback`, `--outbound-addr`, IPv6, the API,
//! the sandbox, and the rootless path (an unprivileged user's own user and network namespaces,
//! `--userns-path`). slirp only ever runs in the lab's host namespace. Needs root and the lab's
//! tools; under CI a machine without them fails.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{lab_with, sh, slirp_bin, Lab, NAT_TOOLS};
use serde_json::{json, Value};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The binary under test as `dir/slirp4netns`: a copy, not a link, so that an unprivileged
/// user can run it wherever the build lives (a checkout under /root is closed to others).
fn slirp4netns_link(dir: &Path) -> PathBuf {
    let copy = dir.join("slirp4netns");
    if !copy.exists() {
        std::fs::copy(slirp_bin(), &copy).expect("copy of the binary");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    copy
}

/// Starts `slirp4netns ARGS` in the lab's host namespace, as user `uid` when given.
fn start(lab: &mut Lab, args: &[String], uid: Option<u32>) -> usize {
    let link = slirp4netns_link(&lab.dir);
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.host]);
    if let Some(uid) = uid {
        cmd.args(["setpriv", &format!("--reuid={uid}"), &format!("--regid={uid}"), "--clear-groups"]);
    }
    cmd.arg(&link).args(args);
    lab.spawn(cmd)
}

/// A pipe whose one end (returned first) the child inherits.
fn inheritable_pipe(child_reads: bool) -> (OwnedFd, OwnedFd) {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    if child_reads {
        (rustix::io::dup(&r).unwrap(), w)
    } else {
        (rustix::io::dup(&w).unwrap(), r)
    }
}

/// Waits for "1" on the ready pipe; panics with the log if the process ends or takes too long.
fn wait_ready(lab: &mut Lab, p: usize, ready: &OwnedFd) {
    rustix::fs::fcntl_setfl(ready, rustix::fs::OFlags::NONBLOCK).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut got = [0u8; 1];
    loop {
        match rustix::io::read(ready, &mut got) {
            Ok(1) => break,
            Ok(_) => panic!("ready fd closed without \"1\": {}", lab.stderr_of(p)),
            Err(_) => {
                assert!(lab.running(p), "exited before ready: {}", lab.stderr_of(p));
                assert!(Instant::now() < deadline, "never ready: {}", lab.stderr_of(p));
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    assert_eq!(&got, b"1");
}

/// One API request on a fresh connection.
fn api(sock: &Path, req: &str) -> Value {
    let mut s = UnixStream::connect(sock).unwrap_or_else(|e| panic!("{}: {e}", sock.display()));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut line = String::new();
    s.read_to_string(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

fn proc_status(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find_map(|l| l.strip_prefix(&format!("{key}:")).map(|v| v.trim().to_string())).unwrap_or_default()
}

/// The PID of the slirp process started as `p` (`ip netns exec` and `setpriv` exec it, so the
/// same process).
fn pid_of(lab: &Lab, p: usize) -> u32 {
    lab.pid(p)
}

#[test]
fn help_version_and_usage_errors_are_slirp4netns_ones() {
    let dir = std::env::temp_dir().join(format!("slirp4netns-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = slirp4netns_link(&dir);
    let run = |args: &[&str]| Command::new(&link).args(args).output().unwrap();
    let help = run(&["--help"]);
    assert!(help.status.success());
    let help = text(&help.stdout);
    // What rootlesskit and podman look for before they use a slirp4netns binary.
    for needle in [
        "--netns-type",
        "--cidr",
        "--disable-host-loopback",
        "--api-socket",
        "--enable-sandbox",
        "--enable-seccomp",
        "--enable-ipv6",
        "--mtu",
        "--outbound-addr",
        "--disable-dns",
        "--macaddress",
    ] {
        assert!(help.contains(needle), "{needle} missing from --help");
    }
    // `slirp slirp4netns` is the same program.
    let sub = Command::new(slirp_bin()).args(["slirp4netns", "--help"]).output().unwrap();
    assert_eq!(text(&sub.stdout), help);
    // Byte for byte the real one's, where the real one is installed.
    if let Ok(real) = Command::new("slirp4netns").arg("--help").output() {
        assert_eq!(text(&real.stdout), help, "--help differs from the installed slirp4netns");
    }
    let version = run(&["--version"]);
    assert!(version.status.success());
    let version = text(&version.stdout);
    assert!(version.starts_with("slirp4netns version 1.2.0\n"), "{version}");
    assert!(version.contains("\nlibslirp: ") && version.contains("\nlibseccomp: "), "{version}");

    let cases: &[(&[&str], &str)] = &[
        (&["1"], ""),
        (&[], ""),
        (&["abc", "tap0"], "PID must be a positive integer"),
        (&["-m", "65522", "1", "tap0"], "MTU must be a positive integer (< 65522)"),
        (&["--cidr=10.0.2.1/24", "1", "tap0"], "CIDR needs to be a network address"),
        (&["--cidr=nonsense", "1", "tap0"], "invalid CIDR"),
        (&["-e", "x", "1", "tap0"], "exit-fd must be a non-negative integer"),
        (&["--macaddress=02:00:00:00:00:01", "1", "tap0"], "--configure or -c is not specified"),
        (&["-c", "--macaddress=zz", "1", "tap0"], "invalid MAC address"),
        (&["--netns-type=path", "/nonexistent/netns", "tap0"], "existing path expected"),
        (&["--userns-path=/nonexistent", "1", "tap0"], "userns path doesn't exist"),
        (&["--target-type=bess", "/tmp/sock"], "not supported"),
        (&["--no-such-option", "1", "tap0"], "unrecognized option"),
        (&["1", "tap0", "extra"], "too many arguments"),
    ];
    for (args, want) in cases {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(text(&out.stderr).contains(want), "{args:?}: stderr {:?}", text(&out.stderr));
        assert!(text(&out.stdout).starts_with("Usage: slirp4netns"), "{args:?}: usage on stdout");
    }
    // A namespace that does not exist: a clear error, status 1, no usage.
    let out = run(&["999999999", "tap0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stderr).contains("/proc/999999999/ns"), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn by_pid_configured_with_cidr_mtu_mac_sandbox_ready_and_exit_fds() {
    let Some(mut lab) = lab_with("by_pid_configured_with_cidr_mtu_mac_sandbox_ready_and_exit_fds", &NAT_TOOLS) else {
        return;
    };
    lab.start_internet_services();
    let guest_ns = lab.guest.clone();
    let sleeper = lab.spawn_in_and_enter(&guest_ns, &["sleep", "600"]);
    let pid = lab.pid(sleeper);
    let sock = lab.dir.join("api.sock");
    let (ready_child, ready_ours) = inheritable_pipe(false);
    let (exit_child, exit_ours) = inheritable_pipe(true);
    let args: Vec<String> = vec![
        "--configure".into(),
        "--mtu=65520".into(),
        "--cidr=10.0.3.0/24".into(),
        "--macaddress=02:00:5e:10:20:30".into(),
        "--enable-sandbox".into(),
        "--enable-seccomp".into(),
        "--disable-host-loopback".into(),
        "-r".into(),
        ready_child.as_raw_fd().to_string(),
        "-e".into(),
        exit_child.as_raw_fd().to_string(),
        "--api-socket".into(),
        sock.display().to_string(),
        pid.to_string(),
        "tap0".into(),
    ];
    let p = start(&mut lab, &args, None);
    drop((ready_child, exit_child));
    wait_ready(&mut lab, p, &ready_ours);

    // Ready means configured and the API answering.
    let addr = sh(&["ip", "-n", &lab.guest, "addr", "show", "dev", "tap0"]);
    assert!(addr.contains("inet 10.0.3.100/24"), "{addr}");
    assert!(addr.contains("mtu 65520"), "{addr}");
    assert!(addr.contains("link/ether 02:00:5e:10:20:30"), "{addr}");
    let lo = sh(&["ip", "-n", &lab.guest, "link", "show", "dev", "lo"]);
    assert!(lo.contains("UP"), "-c brings lo up too: {lo}");
    let route = sh(&["ip", "-n", &lab.guest, "route", "show", "default"]);
    assert!(route.contains("via 10.0.3.2 dev tap0"), "{route}");
    assert_eq!(api(&sock, r#"{"execute":"list_hostfwd"}"#), json!({"entries":[]}));

    // The network works: the gateway, the DNS alias (10.0.3.3), a UDP exchange.
    let ping = lab.exec_in(&lab.guest, &["ping", "-c", "1", "-W", "5", "10.0.3.2"]);
    assert!(ping.status.success(), "{}", text(&ping.stdout));
    let dig = lab.exec_in(&lab.guest, &["dig", "+short", "+time=3", "+tries=2", "@10.0.3.3", "example.test"]);
    assert_eq!(text(&dig.stdout).trim(), "198.51.100.80", "{}", text(&dig.stderr));

    // The sandbox it asked for.
    let slirp = pid_of(&lab, p);
    assert_eq!(proc_status(slirp, "Seccomp"), "2");
    assert_eq!(proc_status(slirp, "NoNewPrivs"), "1");
    let root = std::fs::read_dir(format!("/proc/{slirp}/root")).unwrap().count();
    assert_eq!(root, 0, "the sandbox's root is empty");
    // Capabilities: only binding low ports (an API may add forwards) and raw ICMP (the lab's
    // host namespace allows no ping sockets), as getpcaps tells.
    let caps = text(&Command::new("getpcaps").arg(slirp.to_string()).output().unwrap().stdout);
    let caps = caps.split_once(':').map_or("", |(_, c)| c).trim().to_string();
    assert_eq!(caps, "cap_net_bind_service,cap_net_raw=ep", "getpcaps {slirp}");

    // A forward through the API: guest address defaults to .100 of --cidr.
    let added = api(
        &sock,
        r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":18080,"guest_port":8080}}"#,
    );
    let id = added["return"]["id"].as_u64().unwrap_or_else(|| panic!("{added}"));
    let list = api(&sock, r#"{"execute":"list_hostfwd"}"#);
    assert_eq!(list["entries"][0]["guest_addr"], "10.0.3.100", "{list}");
    let server = lab.spawn_in(&guest_ns, &["socat", "TCP-LISTEN:8080,bind=10.0.3.100,reuseaddr", "SYSTEM:echo fwd-ok"]);
    lab.wait_tcp_listening(&guest_ns, 8080);
    let got = lab.exec_in(&lab.host, &["socat", "-T", "5", "-", "TCP:127.0.0.1:18080,connect-timeout=5"]);
    assert_eq!(text(&got.stdout).trim(), "fwd-ok", "{}", text(&got.stderr));
    let _ = server;
    assert_eq!(
        api(&sock, &format!(r#"{{"execute":"remove_hostfwd","arguments":{{"id":{id}}}}}"#)),
        json!({"return":{}})
    );

    // The exit descriptor closing ends it, cleanly, socket file removed.
    drop(exit_ours);
    let (status, log) = lab.wait(p, Duration::from_secs(5));
    assert!(status.success(), "exited {status:?}: {log}");
    assert!(!sock.exists(), "API socket left behind");
}

#[test]
fn by_path_unconfigured_disable_dns_and_host_loopback() {
    let Some(mut lab) = lab_with("by_path_unconfigured_disable_dns_and_host_loopback", &NAT_TOOLS) else {
        return;
    };
    lab.start_internet_services();
    let sock = lab.dir.join("api.sock");
    let (ready_child, ready_ours) = inheritable_pipe(false);
    let netns = format!("/run/netns/{}", lab.guest);
    let args: Vec<String> = vec![
        "--netns-type=path".into(),
        "--disable-dns".into(),
        "--disable-host-loopback".into(),
        "--ready-fd".into(),
        ready_child.as_raw_fd().to_string(),
        "-a".into(),
        sock.display().to_string(),
        netns,
        "tap0".into(),
    ];
    let p = start(&mut lab, &args, None);
    drop(ready_child);
    wait_ready(&mut lab, p, &ready_ours);
    // Not configured: the TAP is there, without an address; the user configures it.
    let addr = sh(&["ip", "-n", &lab.guest, "addr", "show", "dev", "tap0"]);
    assert!(!addr.contains("inet "), "{addr}");
    for cmd in [
        "ip link set lo up",
        "ip link set tap0 up",
        "ip addr add 10.0.2.100/24 dev tap0",
        "ip route add default via 10.0.2.2",
    ] {
        let args: Vec<&str> = cmd.split(' ').collect();
        let out = lab.exec_in(&lab.guest, &args);
        assert!(out.status.success(), "{cmd}: {}", text(&out.stderr));
    }
    let ping = lab.exec_in(&lab.guest, &["ping", "-c", "1", "-W", "5", "198.51.100.1"]);
    assert!(ping.status.success(), "{}", text(&ping.stdout));
    // --disable-dns: the alias does not answer.
    let dig = lab.exec_in(&lab.guest, &["dig", "+short", "+time=1", "+tries=1", "@10.0.2.3", "example.test"]);
    assert!(!text(&dig.stdout).contains("198.51.100.80"), "{}", text(&dig.stdout));
    // The stand-in's resolver itself is reachable through the NAT.
    let dig = lab.exec_in(&lab.guest, &["dig", "+short", "+time=3", "+tries=2", "@198.51.100.1", "example.test"]);
    assert_eq!(text(&dig.stdout).trim(), "198.51.100.80");
    // --disable-host-loopback: a listener on the host's 127.0.0.1 is out of reach via 10.0.2.2.
    let host_ns = lab.host.clone();
    lab.spawn_in(&host_ns, &["socat", "TCP-LISTEN:7777,bind=127.0.0.1,reuseaddr,fork", "SYSTEM:echo loopback"]);
    lab.wait_tcp_listening(&host_ns, 7777);
    let got = lab.exec_in(&lab.guest, &["socat", "-T", "3", "-", "TCP:10.0.2.2:7777,connect-timeout=3"]);
    assert!(!text(&got.stdout).contains("loopback"), "reached the host's loopback");
    // The API's default guest is .100 even unconfigured (as slirp4netns).
    let added =
        api(&sock, r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":15353,"guest_port":53}}"#);
    assert!(added["return"]["id"].is_u64(), "{added}");
    let list = api(&sock, r#"{"execute":"list_hostfwd"}"#);
    assert_eq!(list["entries"][0]["guest_addr"], "10.0.2.100", "{list}");
    assert_eq!(list["entries"][0]["host_addr"], "0.0.0.0", "{list}");
    let (status, log) = lab.stop(p, rustix::process::Signal::TERM);
    assert!(status.success(), "exited {status:?}: {log}");
}

#[test]
fn outbound_addr_by_address_and_by_interface() {
    let Some(mut lab) = lab_with("outbound_addr_by_address_and_by_interface", &NAT_TOOLS) else {
        return;
    };
    // A second address on the host's uplink, and a server in the stand-in internet that says who
    // is calling, over TCP and UDP.
    sh(&["ip", "-n", &lab.host, "addr", "add", "198.51.100.9/24", "dev", "inet0"]);
    lab.assert_host_is_contained();
    let inet = lab.inet.clone();
    lab.spawn_in(&inet, &["socat", "TCP-LISTEN:9000,bind=198.51.100.1,reuseaddr,fork", "SYSTEM:echo $SOCAT_PEERADDR"]);
    lab.spawn_in(&inet, &["socat", "UDP4-RECVFROM:9001,bind=198.51.100.1,fork", "SYSTEM:echo $SOCAT_PEERADDR"]);
    lab.wait_tcp_listening(&inet, 9000);
    lab.wait_udp_listening(&inet, 9001);
    for (outbound, want) in [("198.51.100.9", "198.51.100.9"), ("inet0", "198.51.100.2")] {
        let guest_ns = lab.guest.clone();
        let sleeper = lab.spawn_in_and_enter(&guest_ns, &["sleep", "600"]);
        let (ready_child, ready_ours) = inheritable_pipe(false);
        let args: Vec<String> = vec![
            "-c".into(),
            format!("--outbound-addr={outbound}"),
            "-r".into(),
            ready_child.as_raw_fd().to_string(),
            lab.pid(sleeper).to_string(),
            "tap0".into(),
        ];
        let p = start(&mut lab, &args, None);
        drop(ready_child);
        wait_ready(&mut lab, p, &ready_ours);
        let tcp = lab.exec_in(&lab.guest, &["socat", "-T", "5", "-", "TCP:198.51.100.1:9000,connect-timeout=5"]);
        assert_eq!(text(&tcp.stdout).trim(), want, "TCP with --outbound-addr={outbound}: {}", text(&tcp.stderr));
        let udp = lab.exec_in(&lab.guest, &["sh", "-c", "echo hi | socat -T 3 - UDP4:198.51.100.1:9001"]);
        assert_eq!(text(&udp.stdout).trim(), want, "UDP with --outbound-addr={outbound}: {}", text(&udp.stderr));
        let (status, log) = lab.stop(p, rustix::process::Signal::TERM);
        assert!(status.success(), "exited {status:?}: {log}");
        lab.stop(sleeper, rustix::process::Signal::KILL);
    }
}

#[test]
fn ipv6_with_dash_6() {
    let Some(mut lab) = lab_with("ipv6_with_dash_6", &NAT_TOOLS) else {
        return;
    };
    lab.enable_ipv6();
    let guest_ns = lab.guest.clone();
    let _ = lab.exec_in(&guest_ns, &["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
    let sleeper = lab.spawn_in_and_enter(&guest_ns, &["sleep", "600"]);
    let (ready_child, ready_ours) = inheritable_pipe(false);
    let sock = lab.dir.join("api.sock");
    let args: Vec<String> = vec![
        "-c".into(),
        "-6".into(),
        "--enable-sandbox".into(),
        "--enable-seccomp".into(),
        "-a".into(),
        sock.display().to_string(),
        "-r".into(),
        ready_child.as_raw_fd().to_string(),
        lab.pid(sleeper).to_string(),
        "tap0".into(),
    ];
    let p = start(&mut lab, &args, None);
    drop(ready_child);
    wait_ready(&mut lab, p, &ready_ours);
    let addr = sh(&["ip", "-n", &lab.guest, "-6", "addr", "show", "dev", "tap0"]);
    assert!(addr.contains("fd00::100/64"), "{addr}");
    for dst in ["fd00::2", "2001:db8:1::1"] {
        let ping = lab.exec_in(&lab.guest, &["ping", "-6", "-c", "1", "-W", "5", dst]);
        assert!(ping.status.success(), "ping -6 {dst}: {}{}", text(&ping.stdout), text(&ping.stderr));
    }
    // A v6 forward through the API, by protocol name and by host address.
    let added =
        api(&sock, r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp6","host_port":18081,"guest_port":8081}}"#);
    assert!(added["return"]["id"].is_u64(), "{added}");
    let list = api(&sock, r#"{"execute":"list_hostfwd"}"#);
    assert_eq!(list["entries"][0]["host_addr6"], "::", "{list}");
    assert_eq!(list["entries"][0]["guest_addr6"], "fd00::100", "{list}");
    assert!(list["entries"][0].get("host_addr").is_none(), "tcp6 is IPv6 only: {list}");
    lab.spawn_in(&guest_ns, &["socat", "TCP6-LISTEN:8081,reuseaddr", "SYSTEM:echo six"]);
    lab.wait_tcp_listening(&guest_ns, 8081);
    let got = lab.exec_in(&lab.host, &["socat", "-T", "5", "-", "TCP6:[::1]:18081,connect-timeout=5"]);
    assert_eq!(text(&got.stdout).trim(), "six", "{}", text(&got.stderr));
    // "tcp" on 0.0.0.0 with -6: both families, one id.
    let both = api(
        &sock,
        r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"0.0.0.0","host_port":18082,"guest_port":8082}}"#,
    );
    let both_id = both["return"]["id"].as_u64().unwrap_or_else(|| panic!("{both}"));
    let list = api(&sock, r#"{"execute":"list_hostfwd"}"#);
    let entry = list["entries"].as_array().unwrap().iter().find(|e| e["id"] == both_id).cloned().unwrap();
    assert_eq!(
        entry,
        json!({"id":both_id,"proto":"tcp","host_addr":"0.0.0.0","host_addr6":"::","host_port":18082,
               "guest_addr":"10.0.2.100","guest_addr6":"fd00::100","guest_port":8082})
    );
    assert_eq!(
        api(&sock, &format!(r#"{{"execute":"remove_hostfwd","arguments":{{"id":{both_id}}}}}"#)),
        json!({"return":{}})
    );
    let (status, log) = lab.stop(p, rustix::process::Signal::TERM);
    assert!(status.success(), "exited {status:?}: {log}");
}

/// Whether an unprivileged user may open `/dev/net/tun` (mode 0666, as distributions set it);
/// this machine kind ships it 0600, which `.ci/run` changes. Under CI its absence fails.
fn tun_open_to_all(lab: &Lab) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/dev/net/tun").map(|m| m.permissions().mode()).unwrap_or(0);
    if mode & 0o006 == 0o006 {
        return true;
    }
    let why = format!("/dev/net/tun is mode {:o}: unprivileged users cannot open it (chmod 0666 /dev/net/tun, as distributions ship it)", mode & 0o777);
    if std::env::var_os("CI").is_some() {
        panic!("{}: {why}", lab.name);
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED rootless test: {why}");
    false
}

/// The rootless path: an unprivileged user's own user and network namespaces (what rootlesskit
/// and podman make), slirp4netns run as that user with `--userns-path` and `--netns-type=path`,
/// and sandboxed (which for an unprivileged user means a user namespace of its own).
#[test]
fn rootless_user_namespace_by_path_with_sandbox() {
    let Some(mut lab) = lab_with("rootless_user_namespace_by_path_with_sandbox", &NAT_TOOLS) else {
        return;
    };
    if !tun_open_to_all(&lab) {
        return;
    }
    lab.start_internet_services();
    let nobody = 65534;
    // The unprivileged user's namespaces, made inside the lab's host namespace.
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.host, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]).args([
        "unshare",
        "--user",
        "--map-root-user",
        "--net",
        "sleep",
        "600",
    ]);
    let ns_holder = lab.spawn(cmd);
    let holder = lab.pid(ns_holder);
    let host_userns = std::fs::read_link("/proc/self/ns/user").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{holder}/ns/user")).ok().as_ref() == Some(&host_userns)
        || !text(&std::fs::read(format!("/proc/{holder}/cmdline")).unwrap_or_default()).starts_with("sleep")
    {
        assert!(Instant::now() < deadline, "the unprivileged namespaces never appeared: {}", lab.stderr_of(ns_holder));
        std::thread::sleep(Duration::from_millis(10));
    }
    let (ready_child, ready_ours) = inheritable_pipe(false);
    let args: Vec<String> = vec![
        "--configure".into(),
        "--mtu=65520".into(),
        "--enable-sandbox".into(),
        "--enable-seccomp".into(),
        "--netns-type=path".into(),
        format!("--userns-path=/proc/{holder}/ns/user"),
        "-r".into(),
        ready_child.as_raw_fd().to_string(),
        format!("/proc/{holder}/ns/net"),
        "tap0".into(),
    ];
    let p = start(&mut lab, &args, Some(nobody));
    drop(ready_child);
    wait_ready(&mut lab, p, &ready_ours);
    let slirp = pid_of(&lab, p);
    assert_eq!(proc_status(slirp, "Uid").split_whitespace().next(), Some("65534"));
    assert_eq!(proc_status(slirp, "Seccomp"), "2");
    assert_eq!(proc_status(slirp, "CapEff"), "0000000000000000");
    // Inside the unprivileged namespaces: configured, and on the network.
    let inside = |args: &[&str]| {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &holder.to_string(), "-U", "-n", "--preserve-credentials"]).args(args);
        common::run_with_limit(cmd, Duration::from_secs(30))
    };
    let addr = text(&inside(&["ip", "addr", "show", "dev", "tap0"]).stdout);
    assert!(addr.contains("inet 10.0.2.100/24") && addr.contains("mtu 65520"), "{addr}");
    let dig = inside(&["dig", "+short", "+time=3", "+tries=2", "@10.0.2.3", "example.test"]);
    assert_eq!(text(&dig.stdout).trim(), "198.51.100.80", "{}", text(&dig.stderr));
    let udp = inside(&["sh", "-c", "echo rootless | socat -T 3 - UDP4:198.51.100.1:7"]);
    assert_eq!(text(&udp.stdout).trim(), "rootless", "{}", text(&udp.stderr));
    let (status, log) = lab.stop(p, rustix::process::Signal::TERM);
    assert!(status.success(), "exited {status:?}: {log}");
}

/// The same API requests to the real slirp4netns (where installed; CI installs it) and to us,
/// side by side on two TAPs of one namespace: every answer has the same shape (same keys, same
/// types, `error.desc` a string) and, where it says something definite (ids, entries,
/// `{"return":{}}`), the same value.
#[test]
fn api_answers_match_the_real_slirp4netns() {
    let Some(mut lab) = lab_with("api_answers_match_the_real_slirp4netns", &NAT_TOOLS) else {
        return;
    };
    let real = match Command::new("slirp4netns").arg("--version").output() {
        Ok(o) if o.status.success() => "slirp4netns".to_string(),
        _ if std::env::var_os("CI").is_some() => panic!("slirp4netns is not installed (apt-get install slirp4netns)"),
        _ => {
            eprintln!("SKIPPED api_answers_match_the_real_slirp4netns: slirp4netns is not installed");
            return;
        }
    };
    let netns = format!("/run/netns/{}", lab.guest);
    let ours_sock = lab.dir.join("ours.sock");
    let real_sock = lab.dir.join("real.sock");
    let ours = start(
        &mut lab,
        &["--netns-type=path".into(), "-a".into(), ours_sock.display().to_string(), netns.clone(), "tap0".into()],
        None,
    );
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.host, &real, "--netns-type=path", "-a"]).arg(&real_sock).args([&netns, "tap1"]);
    let theirs = lab.spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&ours_sock).is_err() || UnixStream::connect(&real_sock).is_err() {
        assert!(Instant::now() < deadline, "no API sockets: {} / {}", lab.stderr_of(ours), lab.stderr_of(theirs));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Host ports differ between the two (one host namespace): ours are the real one's + 1000.
    let requests = [
        r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":PORT1,"guest_addr":"10.0.2.100","guest_port":80}}"#,
        r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":PORT2,"guest_port":53}}"#,
        r#"{"execute":"list_hostfwd"}"#,
        r#"{"execute":"remove_hostfwd","arguments":{"id":1}}"#,
        r#"{"execute":"list_hostfwd"}"#,
        r#"{"execute":"remove_hostfwd","arguments":{"id":99}}"#,
        r#"{"execute":"add_hostfwd","arguments":{"proto":"sctp","host_port":PORT3,"guest_port":80}}"#,
        r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","guest_port":80}}"#,
        r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":PORT3}}"#,
        r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"bogus","host_port":PORT3,"guest_port":80}}"#,
        r#"{"execute":"no_such_command"}"#,
        r#"{"no_execute":1}"#,
        r#"not json at all"#,
    ];
    let fill = |req: &str, base: u16| {
        req.replace("PORT1", &(base + 1).to_string())
            .replace("PORT2", &(base + 2).to_string())
            .replace("PORT3", &(base + 3).to_string())
    };
    let raw = |sock: &Path, req: &str| -> Value {
        let mut s = UnixStream::connect(sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut line = String::new();
        s.read_to_string(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{req}: {line:?}: {e}"))
    };
    fn shape(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
            Value::Array(a) => Value::Array(a.iter().map(shape).collect()),
            Value::String(_) => json!("string"),
            Value::Number(_) => json!("number"),
            other => other.clone(),
        }
    }
    for req in requests {
        let theirs_v = raw(&real_sock, &fill(req, 21000));
        let mut ours_v = raw(&ours_sock, &fill(req, 22000));
        eprintln!("{req}\n  slirp4netns: {theirs_v}\n  ours:        {ours_v}");
        assert_eq!(shape(&ours_v), shape(&theirs_v), "{req}: ours {ours_v} theirs {theirs_v}");
        if let Some(desc) = theirs_v["error"]["desc"].as_str() {
            // Our messages say more, after slirp4netns' own words.
            let ours_desc = ours_v["error"]["desc"].as_str().unwrap();
            assert!(ours_desc.starts_with(desc), "{req}: {ours_desc:?} does not start with {desc:?}");
        } else {
            // Definite answers are equal, host ports put back.
            if let Some(entries) = ours_v.get_mut("entries").and_then(Value::as_array_mut) {
                for e in entries {
                    let p = e["host_port"].as_u64().unwrap();
                    e["host_port"] = json!(p - 1000);
                }
            }
            assert_eq!(ours_v, theirs_v, "{req}");
        }
    }
    for p in [ours, theirs] {
        let (status, log) = lab.stop(p, rustix::process::Signal::TERM);
        assert!(status.success() || status.code().is_none(), "exited {status:?}: {log}");
    }
}
