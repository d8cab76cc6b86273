//! The sandbox, seen from inside: a process that entered it tries what a compromised network
//! stack would (open files, list the root, run a program, open netlink or raw sockets, mount,
//! make namespaces) and what the stack needs (TCP and UDP sockets on loopback, a unix socket
//! pair); from outside, `/proc/PID/status` shows the filter, no new privileges and the
//! capabilities. Each case runs in a child process of its own (the sandbox cannot be left), this
//! same test binary started with `--child CASE`; no test harness, so the child is
//! single-threaded as the sandbox needs. Runs as root or not (then the sandbox makes a user
//! namespace for its mount namespace).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use slirp_std::sandbox::{self, Policy};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        child(&args[i + 1]);
        return;
    }
    // `cargo test -- FILTER`: run everything anyway, it is quick; `--list` shows one test.
    if args.iter().any(|a| a == "--list") {
        println!("sandbox: test");
        return;
    }
    full_sandbox_keeps_only_the_event_loops_calls();
    seccomp_kill_kills_on_a_call_outside_the_list();
    without_the_filter_the_empty_root_still_holds();
    println!("test result: ok. 3 passed");
}

/// Runs case `name` in a child; returns its stdout lines, its status, and what
/// `/proc/PID/status` said while it waited in the sandbox.
fn run_case(name: &str) -> (Vec<String>, std::process::ExitStatus, String) {
    let mut c = Command::new(std::env::current_exe().unwrap())
        .args(["--child", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut lines = Vec::new();
    let mut status_text = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let line = line.trim_end().to_string();
        if line == "waiting" {
            status_text = std::fs::read_to_string(format!("/proc/{}/status", c.id())).unwrap();
            // Its root, seen from here.
            let root = std::fs::read_dir(format!("/proc/{}/root", c.id())).unwrap().count();
            status_text.push_str(&format!("RootEntries:\t{root}\n"));
            // Let it go on.
            c.stdin.take().unwrap().write_all(b"go\n").unwrap();
            continue;
        }
        lines.push(line);
    }
    let status = c.wait().unwrap();
    (lines, status, status_text)
}

fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim).unwrap_or("")
}

fn has(lines: &[String], want: &str) -> bool {
    lines.iter().any(|l| l == want)
}

fn full_sandbox_keeps_only_the_event_loops_calls() {
    let (lines, status, proc) = run_case("full");
    assert!(status.success(), "child failed: {status:?} {lines:?}");
    assert_eq!(field(&proc, "Seccomp:"), "2", "{proc}");
    assert_eq!(field(&proc, "NoNewPrivs:"), "1");
    assert_eq!(field(&proc, "RootEntries:"), "0", "the root is empty");
    // Nothing kept without a control API, but CAP_NET_RAW (bit 13) where guest pings need raw
    // sockets: ping sockets not allowed here (net.ipv4.ping_group_range) and the process had it.
    let ping_sockets = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        Some(rustix::net::ipproto::ICMP),
    )
    .is_ok();
    let root = rustix::process::geteuid().is_root();
    let want = if !ping_sockets && root { "0000000000002000" } else { "0000000000000000" };
    assert_eq!(field(&proc, "CapEff:"), want, "capabilities kept");
    assert_eq!(field(&proc, "CapPrm:"), want);
    assert_eq!(field(&proc, "CapInh:"), "0000000000000000");
    assert_eq!(field(&proc, "CapAmb:"), "0000000000000000");
    if root {
        assert_eq!(field(&proc, "CapBnd:"), want, "bounding set dropped too");
    }
    for want in [
        "entered",
        "open /etc/passwd: refused",
        "open /proc/self/status: refused",
        "root entries: 0",
        "exec /bin/sh: refused",
        "netlink socket: refused",
        "packet socket: refused",
        "mount: refused",
        "unshare: refused",
        "tcp loopback: ok",
        "udp loopback: ok",
        "unix pair: ok",
    ] {
        assert!(has(&lines, want), "missing {want:?} in {lines:#?}");
    }
}

fn seccomp_kill_kills_on_a_call_outside_the_list() {
    let (lines, status, _) = run_case("kill");
    assert!(has(&lines, "entered"), "{lines:?}");
    assert_eq!(status.signal(), Some(libc::SIGSYS), "killed by SIGSYS: {status:?} {lines:?}");
    assert!(!has(&lines, "survived"), "{lines:?}");
}

fn without_the_filter_the_empty_root_still_holds() {
    let (lines, status, proc) = run_case("no-seccomp");
    assert!(status.success(), "child failed: {status:?} {lines:?}");
    assert_eq!(field(&proc, "Seccomp:"), "0");
    assert_eq!(field(&proc, "NoNewPrivs:"), "1");
    assert_eq!(field(&proc, "RootEntries:"), "0", "the root is empty");
    for want in
        ["entered", "open /etc/passwd: refused", "root entries: 0", "exec /bin/sh: refused", "netlink socket: ok"]
    {
        assert!(has(&lines, want), "missing {want:?} in {lines:#?}");
    }
}

fn say(s: &str) {
    let mut o = std::io::stdout();
    let _ = writeln!(o, "{s}");
    let _ = o.flush();
}

fn verdict<T, E>(what: &str, r: Result<T, E>) {
    say(&format!("{what}: {}", if r.is_ok() { "ok" } else { "refused" }));
}

fn child(case: &str) {
    let policy = match case {
        "full" => Policy::default(),
        "kill" => Policy { kill: true, ..Policy::default() },
        "no-seccomp" => Policy { no_seccomp: true, ..Policy::default() },
        _ => panic!("unknown case {case}"),
    };
    // What the stack would have opened before: a listener, to use after.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let entered = sandbox::enter(policy);
    match &entered {
        Ok(_) => say("entered"),
        Err(e) => say(&format!("enter failed: {e}")),
    }
    say("waiting");
    let mut go = [0u8; 3];
    let _ = std::io::stdin().read(&mut go);
    if case == "kill" {
        // Not on the list: the kernel kills the process right here.
        let _ = rustix::net::socket(rustix::net::AddressFamily::NETLINK, rustix::net::SocketType::RAW, None);
        say("survived");
        return;
    }
    verdict("open /etc/passwd", std::fs::File::open("/etc/passwd").map(|_| ()));
    verdict("open /proc/self/status", std::fs::File::open("/proc/self/status").map(|_| ()));
    let listed: std::io::Result<Vec<_>> = std::fs::read_dir("/").and_then(|d| d.collect());
    say(&format!("root entries: {}", listed.map_or(0, |v| v.len())));
    verdict("exec /bin/sh", Command::new("/bin/sh").arg("-c").arg("true").status().map(|_| ()));
    verdict(
        "netlink socket",
        rustix::net::socket(rustix::net::AddressFamily::NETLINK, rustix::net::SocketType::RAW, None),
    );
    verdict(
        "packet socket",
        rustix::net::socket(rustix::net::AddressFamily::PACKET, rustix::net::SocketType::RAW, None),
    );
    verdict(
        "mount",
        rustix::mount::mount("none", "/", "tmpfs", rustix::mount::MountFlags::empty(), None::<&std::ffi::CStr>),
    );
    // New namespaces: not on the list.
    verdict("unshare", slirp_std::sys::unshare_mount_ns(false));
    // What the event loop does: TCP through a listener made before, and new sockets.
    let tcp = (|| -> std::io::Result<()> {
        let addr = listener.local_addr()?;
        let mut c = TcpStream::connect(addr)?;
        let (mut s, _) = listener.accept()?;
        c.write_all(b"x")?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b)?;
        let l2 = TcpListener::bind("127.0.0.1:0")?;
        TcpStream::connect(l2.local_addr()?)?;
        Ok(())
    })();
    verdict("tcp loopback", tcp);
    let udp = (|| -> std::io::Result<()> {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind("127.0.0.1:0")?;
        a.send_to(b"y", b.local_addr()?)?;
        let mut buf = [0u8; 4];
        b.recv_from(&mut buf)?;
        Ok(())
    })();
    verdict("udp loopback", udp);
    verdict("unix pair", std::os::unix::net::UnixStream::pair());
}
