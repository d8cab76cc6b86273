//! The real-kernel lab: network namespaces for a stand-in internet, the host slirp runs in, and
//! the guest; processes started in them; teardown by PID and namespace name.
//!
//! Network safety: slirp only ever runs inside the lab's "host" namespace, whose routes reach
//! nothing but the lab's "internet" namespace (198.51.100.0/24; 203.0.113.0/24 is reserved for
//! it too); this is checked before anything starts. Its resolver file points at the stand-in
//! internet, never at the machine's resolvers.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The `slirp` binary under test.
pub const SLIRP: &str = env!("CARGO_BIN_EXE_slirp");

/// The binary `Lab::slirp` starts: `SLIRP_BIN` if set (to measure a release build with the same
/// test), else this build's.
pub fn slirp_bin() -> String {
    std::env::var("SLIRP_BIN").unwrap_or_else(|_| SLIRP.to_string())
}

/// Networks the host namespace may route to.
const ALLOWED_NETS: [(Ipv4Addr, u8); 2] = [(Ipv4Addr::new(198, 51, 100, 0), 24), (Ipv4Addr::new(203, 0, 113, 0), 24)];

const TOOLS: [&str; 4] = ["ip", "udhcpc", "ping", "tcpdump"];

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Why the lab cannot run here, if it cannot.
fn missing_prerequisites() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("needs root (network namespaces, TAP devices)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing".into());
    }
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| find_tool(t).is_none()).collect();
    if !missing.is_empty() {
        return Some(format!(
            "missing tools: {} (apt-get install iproute2 iputils-ping udhcpc tcpdump)",
            missing.join(", ")
        ));
    }
    None
}

/// Tools the NAT tests run in the namespaces, with the Debian package that has each.
pub const NAT_TOOLS: [(&str, &str); 3] = [("dig", "dnsutils"), ("dnsmasq", "dnsmasq-base"), ("socat", "socat")];

/// Whether `a` lies in the IPv6 documentation prefix 2001:db8::/32 (the lab's stand-in).
pub fn is_documentation_v6(a: std::net::Ipv6Addr) -> bool {
    a.segments()[0] == 0x2001 && a.segments()[1] == 0x0db8
}

/// A lab for test `test`, or `None` (with a notice) when this machine cannot run it. Under CI
/// (`CI` set) a machine that cannot run it is a failure, never a silent skip.
pub fn lab(test: &str) -> Option<Lab> {
    lab_with(test, &[])
}

/// [`lab`], for a test that also needs `tools` (name, Debian package).
pub fn lab_with(test: &str, tools: &[(&str, &str)]) -> Option<Lab> {
    let missing: Vec<(&str, &str)> = tools.iter().copied().filter(|(t, _)| find_tool(t).is_none()).collect();
    let why = missing_prerequisites().or_else(|| {
        (!missing.is_empty()).then(|| {
            let names: Vec<&str> = missing.iter().map(|m| m.0).collect();
            let pkgs: Vec<&str> = missing.iter().map(|m| m.1).collect();
            format!("missing tools: {} (apt-get install {})", names.join(", "), pkgs.join(" "))
        })
    });
    if let Some(why) = why {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: the real-kernel test cannot run: {why}; CI is set, so this fails instead of skipping");
        }
        // Straight to stderr: the test harness captures `eprintln!` of passing tests.
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why} (set CI=1 to make this a failure)");
        return None;
    }
    Some(Lab::new())
}

/// Whether the lab can run (for tests that need no namespaces but the binary).
pub fn can_run() -> bool {
    missing_prerequisites().is_none()
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Three namespaces and the processes started in them. Dropping it kills every process it
/// started (by PID) and deletes every namespace and file it made, even when the test panicked.
pub struct Lab {
    /// Prefix of every name: `slirpt-<pid>-<n>`.
    pub name: String,
    /// Namespace slirp runs in.
    pub host: String,
    /// The stand-in internet.
    pub inet: String,
    /// The guest's namespace.
    pub guest: String,
    /// Scratch directory for this lab's files.
    pub dir: PathBuf,
    children: Vec<Child>,
    namespaces: Vec<String>,
}

impl Lab {
    fn new() -> Lab {
        let name = format!("slirpt-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let mut lab = Lab {
            host: format!("{name}-host"),
            inet: format!("{name}-inet"),
            guest: format!("{name}-guest"),
            name,
            dir,
            children: Vec::new(),
            namespaces: Vec::new(),
        };
        for ns in [lab.host.clone(), lab.inet.clone(), lab.guest.clone()] {
            sh(&["ip", "netns", "add", &ns]);
            lab.namespaces.push(ns);
        }
        let (host, inet) = (lab.host.clone(), lab.inet.clone());
        // The veth pair is born inside the namespaces: nothing appears in the root namespace.
        sh(&["ip", "-n", &host, "link", "add", "inet0", "type", "veth", "peer", "name", "host0", "netns", &inet]);
        sh(&["ip", "-n", &inet, "addr", "add", "198.51.100.1/24", "dev", "host0"]);
        sh(&["ip", "-n", &inet, "link", "set", "host0", "up"]);
        sh(&["ip", "-n", &inet, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &host, "addr", "add", "198.51.100.2/24", "dev", "inet0"]);
        sh(&["ip", "-n", &host, "link", "set", "inet0", "up"]);
        sh(&["ip", "-n", &host, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &host, "route", "add", "default", "via", "198.51.100.1"]);
        // `ip netns exec` bind-mounts this over /etc/resolv.conf for processes in the host
        // namespace.
        let etc = lab.etc_dir();
        std::fs::create_dir_all(&etc).expect("/etc/netns dir");
        std::fs::write(etc.join("resolv.conf"), "nameserver 198.51.100.1\n").expect("resolv.conf");
        lab.assert_host_is_contained();
        lab
    }

    fn etc_dir(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.host)
    }

    /// Replaces the resolv.conf that processes in the host namespace see (the lab's own file;
    /// the machine's is never touched).
    pub fn set_host_resolv_conf(&self, contents: &str) {
        std::fs::write(self.etc_dir().join("resolv.conf"), contents).expect("resolv.conf");
    }

    /// Refuses to go on unless every route of the host namespace stays inside the lab.
    pub fn assert_host_is_contained(&self) {
        let v4 = sh(&["ip", "-n", &self.host, "-4", "route", "show", "table", "all"]);
        for line in v4.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mut w = words.as_slice();
            // Local-table entries start with a type word.
            if matches!(w.first(), Some(&"local") | Some(&"broadcast")) {
                w = &w[1..];
            }
            let dest = w.first().copied().unwrap_or("");
            if dest == "default" {
                let via = words
                    .iter()
                    .position(|&x| x == "via")
                    .and_then(|i| words.get(i + 1))
                    .and_then(|a| a.parse::<Ipv4Addr>().ok())
                    .unwrap_or_else(|| panic!("default route without gateway: {line}"));
                assert!(allowed(via, 32), "host namespace routes outside the lab: {line}");
            } else {
                let (addr, len) = dest.split_once('/').unwrap_or((dest, "32"));
                let addr: Ipv4Addr = addr.parse().unwrap_or_else(|_| panic!("unparsed route: {line}"));
                let len: u8 = len.parse().expect("prefix length");
                assert!(allowed(addr, len) || addr.is_loopback(), "host namespace routes outside the lab: {line}");
            }
        }
        let v6 = sh(&["ip", "-n", &self.host, "-6", "route", "show"]);
        for line in v6.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let dest = words.first().copied().unwrap_or("");
            let ok = if dest == "default" {
                // Only via the stand-in internet's documentation-prefix router.
                words
                    .iter()
                    .position(|&x| x == "via")
                    .and_then(|i| words.get(i + 1))
                    .and_then(|a| a.parse::<std::net::Ipv6Addr>().ok())
                    .is_some_and(is_documentation_v6)
            } else {
                let (addr, len) = dest.split_once('/').unwrap_or((dest, "128"));
                let len: u8 = len.parse().unwrap_or(0);
                dest.starts_with("fe80::/64")
                    || (len >= 32 && addr.parse::<std::net::Ipv6Addr>().is_ok_and(is_documentation_v6))
            };
            assert!(ok, "host namespace has an IPv6 route outside the lab: {line}");
        }
    }

    /// Gives the host namespace and the stand-in internet IPv6 too, on the documentation
    /// prefix only: the stand-in is 2001:db8:1::1/64, the host namespace 2001:db8:1::2/64 with
    /// its default route via the stand-in. Checks containment again.
    pub fn enable_ipv6(&self) {
        let (host, inet) = (self.host.clone(), self.inet.clone());
        for ns in [&host, &inet] {
            // Fresh namespaces have IPv6 on; make sure, and no DAD delay on the veth.
            let _ = self.exec_in(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=0"]);
            let _ = self.exec_in(ns, &["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
            let _ = self.exec_in(ns, &["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
        }
        sh(&["ip", "-n", &inet, "-6", "addr", "add", "2001:db8:1::1/64", "dev", "host0", "nodad"]);
        sh(&["ip", "-n", &host, "-6", "addr", "add", "2001:db8:1::2/64", "dev", "inet0", "nodad"]);
        sh(&["ip", "-n", &host, "-6", "route", "add", "default", "via", "2001:db8:1::1"]);
        self.assert_host_is_contained();
    }

    /// Starts `slirp ARGS` inside the host namespace; returns its index for [`Lab::stop`].
    pub fn slirp<S: AsRef<OsStr>>(&mut self, args: &[S]) -> usize {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.host, &slirp_bin()]).args(args);
        self.spawn(cmd)
    }

    /// Starts `cmd` with stdout and stderr going to files in the scratch directory (a pipe
    /// nobody reads could fill up and stall it); returns its index.
    pub fn spawn(&mut self, mut cmd: Command) -> usize {
        let i = self.children.len();
        let out = std::fs::File::create(self.dir.join(format!("{i}.out"))).expect("stdout file");
        let err = std::fs::File::create(self.dir.join(format!("{i}.err"))).expect("stderr file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().expect("spawn");
        self.children.push(child);
        i
    }

    /// Starts `args` inside namespace `ns` (a server); returns its index. It is killed by PID
    /// when the lab is dropped.
    pub fn spawn_in(&mut self, ns: &str, args: &[&str]) -> usize {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        self.spawn(cmd)
    }

    /// Starts `args` inside namespace `ns` and waits until the process is really in it; returns
    /// its index. For a process whose PID names the namespace: right after the fork it is
    /// still in ours (the root namespace) until `ip netns exec` has called setns, and a slirp
    /// attached by that PID then would attach the root namespace.
    pub fn spawn_in_and_enter(&mut self, ns: &str, args: &[&str]) -> usize {
        use std::os::unix::fs::MetadataExt;
        let i = self.spawn_in(ns, args);
        let want = std::fs::metadata(format!("/run/netns/{ns}")).expect("namespace file");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = std::fs::metadata(format!("/proc/{}/ns/net", self.pid(i))).expect("process namespace");
            if (now.dev(), now.ino()) == (want.dev(), want.ino()) {
                return i;
            }
            assert!(Instant::now() < deadline, "process {} never entered namespace {ns}", self.pid(i));
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until something in namespace `ns` listens on UDP port `port`.
    pub fn wait_udp_listening(&self, ns: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let needle = format!(":{port} ");
        loop {
            let out = Command::new("ip").args(["netns", "exec", ns, "ss", "-Hnlu"]).output().expect("ss");
            if String::from_utf8_lossy(&out.stdout).contains(&needle) {
                return;
            }
            assert!(Instant::now() < deadline, "nothing listens on UDP port {port} in {ns}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until something in namespace `ns` listens on TCP port `port`.
    pub fn wait_tcp_listening(&self, ns: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let needle = format!(":{port} ");
        loop {
            let out = Command::new("ip").args(["netns", "exec", ns, "ss", "-Hnlt"]).output().expect("ss");
            if String::from_utf8_lossy(&out.stdout).contains(&needle) {
                return;
            }
            assert!(Instant::now() < deadline, "nothing listens on TCP port {port} in {ns}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `args` inside namespace `ns` to completion, killed after `limit`.
    pub fn exec_in_with_limit(&self, ns: &str, args: &[&str], limit: Duration) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        run_with_limit(cmd, limit)
    }

    /// The stand-in internet's services on 198.51.100.1: a DNS server (dnsmasq: `example.test`
    /// is 198.51.100.80, `www.example.test` is 198.51.100.1 itself, nothing else is known and nothing is forwarded anywhere) and a UDP echo
    /// server on port 7 (socat). Pings are answered by the namespace's kernel.
    pub fn start_internet_services(&mut self) {
        let inet = self.inet.clone();
        let pid_file = format!("--pid-file={}", self.dir.join("dnsmasq.pid").display());
        self.spawn_in(
            &inet,
            &[
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--address=/example.test/198.51.100.80",
                "--address=/six.example.test/2001:db8:1::80",
                "--address=/www.example.test/198.51.100.1",
                "--listen-address=198.51.100.1",
                "--bind-interfaces",
                "--user=root",
                "--group=root",
                &pid_file,
            ],
        );
        self.spawn_in(&inet, &["socat", "-T", "2", "UDP4-RECVFROM:7,bind=198.51.100.1,fork", "PIPE"]);
        self.wait_udp_listening(&inet, 53);
        self.wait_udp_listening(&inet, 7);
    }

    /// What process `i` wrote to stderr so far.
    pub fn stderr_of(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{i}.err"))).unwrap_or_default()
    }

    /// The PID of started process `i`.
    pub fn pid(&self, i: usize) -> u32 {
        self.children[i].id()
    }

    /// Whether process `i` is still running.
    pub fn running(&mut self, i: usize) -> bool {
        self.children[i].try_wait().expect("try_wait").is_none()
    }

    /// Sends `sig` to process `i` and waits (up to 5 s) for it to end; returns its status and
    /// its stderr.
    pub fn stop(&mut self, i: usize, sig: rustix::process::Signal) -> (ExitStatus, String) {
        let pid = rustix::process::Pid::from_child(&self.children[i]);
        let _ = rustix::process::kill_process(pid, sig);
        self.wait(i, Duration::from_secs(5))
    }

    /// Waits up to `limit` for process `i` to end; returns its status and stderr.
    pub fn wait(&mut self, i: usize, limit: Duration) -> (ExitStatus, String) {
        let child = &mut self.children[i];
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                break s;
            }
            assert!(Instant::now() < deadline, "process {} did not end within {limit:?}", child.id());
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.stderr_of(i))
    }

    /// Runs `args` inside namespace `ns` to completion (limit 30 s).
    pub fn exec_in(&self, ns: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).args(args);
        run_with_limit(cmd, Duration::from_secs(30))
    }

    /// Waits until interface `ifname` exists in the guest namespace.
    pub fn wait_for_guest_link(&self, ifname: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("ip").args(["-n", &self.guest, "link", "show", ifname]).output().expect("ip");
            if out.status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "{ifname} never appeared in the guest namespace");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `udhcpc` on the guest's unconfigured `tap0`; returns the recorded lease line.
    pub fn dhcp(&self) -> String {
        let (script, lease) = self.udhcpc_script();
        sh(&["ip", "-n", &self.guest, "link", "set", "tap0", "up"]);
        let script = script.to_str().expect("utf-8 path");
        let out =
            self.exec_in(&self.guest, &["udhcpc", "-i", "tap0", "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", script]);
        assert!(
            out.status.success(),
            "udhcpc failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let recorded = std::fs::read_to_string(lease).expect("udhcpc script ran");
        recorded
            .lines()
            .find(|l| l.starts_with("event=bound"))
            .unwrap_or_else(|| panic!("no lease bound: {recorded}"))
            .to_string()
    }

    /// The options line udhcpc's script recorded with the last bound lease (boot file, server
    /// name, search list...: `key=value|key=value`).
    pub fn dhcp_options(&self) -> String {
        let recorded = std::fs::read_to_string(self.dir.join("lease")).unwrap_or_default();
        recorded.lines().rev().find(|l| l.starts_with("options: ")).unwrap_or("").to_string()
    }

    /// A udhcpc script that records the lease in `<dir>/lease` and applies it.
    pub fn udhcpc_script(&self) -> (PathBuf, PathBuf) {
        let script = self.dir.join("udhcpc.sh");
        let lease = self.dir.join("lease");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 echo \"event=$1 ip=$ip mask=$mask router=$router dns=$dns lease=$lease\" >> {lease}\n\
                 echo \"options: boot_file=$boot_file|sname=$sname|siaddr=$siaddr|tftp=$tftp|bootfile=$bootfile|\
                 hostname=$hostname|domain=$domain|search=$search\" >> {lease}\n\
                 if [ \"$1\" = bound ]; then\n\
                 \x20 ip addr add \"$ip/$mask\" dev \"$interface\"\n\
                 \x20 for r in $router; do ip route add default via \"$r\" dev \"$interface\"; done\n\
                 fi\n",
                lease = lease.display()
            ),
        )
        .expect("script");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        (script, lease)
    }
}

fn allowed(addr: Ipv4Addr, len: u8) -> bool {
    ALLOWED_NETS.iter().any(|&(net, plen)| {
        let mask = u32::MAX << (32 - u32::from(plen));
        len >= plen && u32::from(addr) & mask == u32::from(net)
    })
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let pid = rustix::process::Pid::from_child(child);
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let _ = child.wait();
            }
        }
        for ns in self.namespaces.drain(..) {
            let _ = Command::new("ip").args(["netns", "del", &ns]).status();
        }
        let _ = std::fs::remove_dir_all(self.etc_dir());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a command to completion, panicking with its output if it fails.
pub fn sh(args: &[&str]) -> String {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..]);
    let out = run_with_limit(cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` to completion, killing it (by PID) after `limit`.
pub fn run_with_limit(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() >= deadline {
            let pid = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output { status, stdout: t_out.join().unwrap_or_default(), stderr: t_err.join().unwrap_or_default() }
}
