//! TCP through the NAT against real guests: the Linux kernel's stack and stock tools (curl, dig,
//! python3) in the guest namespace, servers in the stand-in internet (198.51.100.1), on the host
//! namespace's loopback, and in the guest behind port forwards, all in the lab of `common`
//! (slirp only ever runs in the lab's host namespace, which routes nowhere but the stand-in
//! internet). The servers and clients are `tcp_lab.py` (standard library only). Needs root, the
//! lab's tools, curl, python3, dig, dnsmasq and socat; under CI a machine without them fails
//! these tests.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{lab_with, Lab, SLIRP};
use rustix::process::Signal;
use serde_json::{json, Value};

/// Tools these tests run, with their Debian packages.
const TCP_TOOLS: [(&str, &str); 5] =
    [("dig", "dnsutils"), ("dnsmasq", "dnsmasq-base"), ("socat", "socat"), ("curl", "curl"), ("python3", "python3")];

/// The lab's servers and clients.
const SCRIPT: &str = include_str!("tcp_lab.py");

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn lab(test: &str) -> Option<(Lab, PathBuf)> {
    let lab = lab_with(test, &TCP_TOOLS)?;
    let script = lab.dir.join("tcp_lab.py");
    std::fs::write(&script, SCRIPT).expect("script");
    Some((lab, script))
}

/// Starts `slirp attach ARGS` on the guest namespace and waits for its TAP.
fn attach(lab: &mut Lab, args: &[&str]) -> usize {
    let netns = format!("/run/netns/{}", lab.guest);
    let mut all = vec!["attach", "--netns", &netns];
    all.extend_from_slice(args);
    let p = lab.slirp(&all);
    lab.wait_for_guest_link("tap0");
    p
}

/// Waits until `--configure` has given the guest its default route.
fn wait_configured(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = common::sh(&["ip", "-n", &lab.guest, "-4", "route", "show", "default"]);
        if out.contains("via 10.0.2.2") {
            return;
        }
        assert!(Instant::now() < deadline, "the guest was never configured");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops slirp and returns its log (it reports its counters when it exits).
fn stop(lab: &mut Lab, p: usize) -> String {
    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
    log
}

/// Starts `tcp_lab.py ARGS` as a server in `ns` and waits until it listens on `port`.
fn server(lab: &mut Lab, script: &Path, ns: &str, args: &[&str], port: u16) {
    let mut all = vec!["python3", script.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    lab.spawn_in(ns, &all);
    lab.wait_tcp_listening(ns, port);
}

/// Runs `tcp_lab.py ARGS` as a client in `ns`; asserts it succeeded and returns its stdout.
fn client(lab: &Lab, script: &Path, ns: &str, args: &[&str]) -> String {
    let mut all = vec!["python3", script.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let out = lab.exec_in_with_limit(ns, &all, Duration::from_secs(60));
    assert!(out.status.success(), "{args:?}: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

/// The number after `key=` in `s`.
fn field(s: &str, key: &str) -> u64 {
    let at = s.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in {s:?}")) + key.len() + 1;
    s[at..].split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok()).expect("a number")
}

fn sha256_of(path: &Path) -> String {
    let out = common::sh(&["sha256sum", path.to_str().expect("utf-8 path")]);
    out.split_whitespace().next().expect("a hash").to_string()
}

fn run_sh(lab: &Lab, ns: &str, script: &str, limit: Duration) -> Output {
    lab.exec_in_with_limit(ns, &["bash", "-c", script], limit)
}

/// A file of `mib` random MiB served over HTTP from the stand-in internet (198.51.100.1:8080,
/// `/file`; `/upload` answers the SHA-256 and length of what it received): (path, SHA-256).
fn serve_random_file(lab: &mut Lab, script: &Path, mib: usize) -> (PathBuf, String) {
    let file = lab.dir.join("payload");
    common::sh(&["sh", "-c", &format!("head -c {mib}M /dev/urandom > {}", file.display())]);
    let want = sha256_of(&file);
    let inet = lab.inet.clone();
    server(lab, script, &inet, &["http", "198.51.100.1", "8080", file.to_str().unwrap()], 8080);
    (file, want)
}

/// curl in the guest downloads the served file (hashed as it streams) and PUTs it back; both
/// must arrive whole. Returns how long each took.
fn curl_down_and_up(lab: &Lab, file: &Path, want: &str, mib: usize, limit: Duration) -> (Duration, Duration) {
    let secs = limit.as_secs();
    let started = Instant::now();
    let get = format!("set -o pipefail; curl -sS --fail --max-time {secs} http://198.51.100.1:8080/file | sha256sum");
    let out = run_sh(lab, &lab.guest, &get, limit + Duration::from_secs(30));
    let down = started.elapsed();
    assert!(out.status.success(), "curl download: {}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout).split_whitespace().next(), Some(want), "downloaded bytes differ");
    let started = Instant::now();
    let put =
        format!("curl -sS --fail --max-time {secs} -H 'Expect:' -T {} http://198.51.100.1:8080/upload", file.display());
    let out = run_sh(lab, &lab.guest, &put, limit + Duration::from_secs(30));
    let up = started.elapsed();
    assert!(out.status.success(), "curl upload: {}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{want} {}", mib << 20), "uploaded bytes differ");
    (down, up)
}

#[test]
fn curl_downloads_and_uploads_100_mib_with_matching_sha256() {
    let Some((mut lab, script)) = lab("curl_downloads_and_uploads_100_mib_with_matching_sha256") else {
        return;
    };
    const MIB: usize = 100;
    let (file, want) = serve_random_file(&mut lab, &script, MIB);
    let p = attach(&mut lab, &["--configure"]);
    wait_configured(&lab);
    let (down, up) = curl_down_and_up(&lab, &file, &want, MIB, Duration::from_secs(120));
    eprintln!(
        "{MIB} MiB down in {down:?} ({:.0} Mbit/s), up in {up:?} ({:.0} Mbit/s)",
        (MIB * 8) as f64 * 1.048576 / down.as_secs_f64(),
        (MIB * 8) as f64 * 1.048576 / up.as_secs_f64()
    );
    let log = stop(&mut lab, p);
    assert!(!log.contains("tcp_no_buffers") && !log.contains("tcp_table_full"), "{log}");
}

#[test]
fn concurrent_interactive_dns_over_tcp_and_fast_refusal() {
    let Some((mut lab, script)) = lab("concurrent_interactive_dns_over_tcp_and_fast_refusal") else {
        return;
    };
    lab.start_internet_services();
    let inet = lab.inet.clone();
    server(&mut lab, &script, &inet, &["echo", "198.51.100.1", "7"], 7);
    let sock = lab.dir.join("api.sock");
    let p = attach(&mut lab, &["--configure", "--api-socket", sock.to_str().unwrap()]);
    wait_configured(&lab);
    let guest = lab.guest.clone();

    // 200 connections open at once, each echoing 16 KiB of its own.
    let out = client(&lab, &script, &guest, &["concurrent", "198.51.100.1", "7", "200", "16384"]);
    assert_eq!(out, "200 connections echoed 16384 bytes each");
    let v = api(&sock, r#"{"execute":"stats"}"#);
    assert!(v["return"]["tcp_connections_total"].as_u64().is_some_and(|n| n >= 200), "{v}");

    // Interactive: small round trips on one connection, no Nagle or delayed-ACK stalls.
    let out = client(&lab, &script, &guest, &["interactive", "198.51.100.1", "7", "500"]);
    let (median, max) = (field(&out, "median_us"), field(&out, "max_us"));
    eprintln!("interactive echo: {out}");
    assert!(median < 2_000, "median round trip {median} µs: {out}");
    assert!(max < 200_000, "slowest round trip {max} µs: {out}");

    // DNS over TCP through the alias.
    let out = lab.exec_in(&guest, &["dig", "+tcp", "+short", "+time=2", "+tries=1", "@10.0.2.3", "example.test"]);
    assert!(out.status.success(), "dig +tcp: {}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "198.51.100.80");

    // A closed port: the host's RST becomes the guest's at once.
    let out = client(&lab, &script, &guest, &["refused", "198.51.100.1", "9"]);
    let us = field(&out, "refused_us");
    assert!(us < 200_000, "refusal took {us} µs");

    let log = stop(&mut lab, p);
    assert!(!log.contains("tcp_no_buffers") && !log.contains("tcp_table_full"), "{log}");
}

#[test]
fn tcp_to_the_gateway_reaches_host_loopback() {
    let Some((mut lab, script)) = lab("tcp_to_the_gateway_reaches_host_loopback") else {
        return;
    };
    let host = lab.host.clone();
    server(&mut lab, &script, &host, &["whoami-server", "127.0.0.1", "9999"], 9999);
    let p = attach(&mut lab, &["--configure"]);
    wait_configured(&lab);
    let guest = lab.guest.clone();
    // The server sees a loopback client: slirp's own socket on the host's loopback.
    let out = client(&lab, &script, &guest, &["whoami", "10.0.2.2", "9999"]);
    assert!(out.starts_with("127.0.0.1:"), "{out}");
    let out = client(&lab, &script, &guest, &["refused", "10.0.2.2", "9998"]);
    assert!(field(&out, "refused_us") < 200_000, "{out}");
    stop(&mut lab, p);
}

#[test]
fn tcp_hostfwd_serves_host_clients_from_guest_servers() {
    let Some((mut lab, script)) = lab("tcp_hostfwd_serves_host_clients_from_guest_servers") else {
        return;
    };
    let p = attach(
        &mut lab,
        &[
            "--configure",
            "--hostfwd",
            "tcp:127.0.0.1:8022-:7000",
            "--hostfwd",
            "tcp::8023-10.0.2.100:7000",
            "--hostfwd",
            "tcp:127.0.0.1:8024-:7001",
            "--hostfwd",
            "tcp:127.0.0.1:8025-:7999",
        ],
    );
    wait_configured(&lab);
    let guest = lab.guest.clone();
    server(&mut lab, &script, &guest, &["whoami-server", "0.0.0.0", "7000"], 7000);
    server(&mut lab, &script, &guest, &["echo", "0.0.0.0", "7001"], 7001);
    let (host, inet) = (lab.host.clone(), lab.inet.clone());

    // A loopback client appears to the guest as the gateway; an outside client as itself.
    let out = client(&lab, &script, &host, &["whoami", "127.0.0.1", "8022"]);
    assert!(out.starts_with("10.0.2.2:"), "{out}");
    let out = client(&lab, &script, &inet, &["whoami", "198.51.100.2", "8023"]);
    assert!(out.starts_with("198.51.100.1:"), "{out}");

    // Many clients at once through one listener (more than one accept burst), and bulk data.
    let out = client(&lab, &script, &host, &["concurrent", "127.0.0.1", "8024", "100", "65536"]);
    assert_eq!(out, "100 connections echoed 65536 bytes each");
    // A backlog far deeper than one accept burst, announced by a single readiness edge: slirp
    // is stopped while the kernel queues 100 connections on its listener, then resumed.
    let pid = rustix::process::Pid::from_raw(lab.pid(p) as i32).expect("pid");
    rustix::process::kill_process(pid, Signal::STOP).expect("SIGSTOP");
    let mut crowd = std::process::Command::new("ip");
    crowd.args(["netns", "exec", &host, "python3", script.to_str().unwrap(), "concurrent", "127.0.0.1", "8024"]);
    crowd.args(["100", "1000"]);
    let c = lab.spawn(crowd);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The listener's Recv-Q is its accept queue.
        let ss = common::sh(&["ip", "netns", "exec", &host, "ss", "-Hnlt", "sport", "=", ":8024"]);
        let queued: u32 = ss.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
        if queued >= 100 {
            break;
        }
        if Instant::now() >= deadline {
            let _ = rustix::process::kill_process(pid, Signal::CONT);
            panic!("the kernel queued only {queued} connections: {ss}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    rustix::process::kill_process(pid, Signal::CONT).expect("SIGCONT");
    let (status, err) = lab.wait(c, Duration::from_secs(30));
    assert!(status.success(), "the queued clients were not all served: {err}");

    let out = client(&lab, &script, &host, &["interactive", "127.0.0.1", "8024", "200"]);
    assert!(field(&out, "median_us") < 2_000, "{out}");

    // Nobody listens in the guest: the host client's connection is closed, promptly.
    let out = client(&lab, &script, &host, &["closed", "127.0.0.1", "8025"]);
    assert!(field(&out, "closed_us") < 2_000_000, "{out}");

    let log = stop(&mut lab, p);
    assert!(log.contains("forwarding tcp 127.0.0.1:8022 to 10.0.2.100:7000"), "{log}");
    assert!(log.contains("forwarding tcp 0.0.0.0:8023 to 10.0.2.100:7000"), "{log}");
}

/// One API request on a fresh connection (the socket is a file: reachable from here).
fn api(sock: &Path, req: &str) -> Value {
    let mut s = UnixStream::connect(sock).unwrap_or_else(|e| panic!("{}: {e}", sock.display()));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut line = String::new();
    s.read_to_string(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn api_socket_adds_lists_and_removes_a_tcp_forward_live() {
    let Some((mut lab, script)) = lab("api_socket_adds_lists_and_removes_a_tcp_forward_live") else {
        return;
    };
    let sock = lab.dir.join("api.sock");
    let p = attach(&mut lab, &["--configure", "--api-socket", sock.to_str().unwrap()]);
    wait_configured(&lab);
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "no API socket: {}", lab.stderr_of(p));
        std::thread::sleep(Duration::from_millis(20));
    }
    let guest = lab.guest.clone();
    server(&mut lab, &script, &guest, &["echo", "0.0.0.0", "7001"], 7001);
    let host = lab.host.clone();

    // Nothing listens yet: the host's kernel refuses.
    let out = client(&lab, &script, &host, &["refused", "127.0.0.1", "6000"]);
    assert!(out.starts_with("refused_us="), "{out}");

    let v = api(
        &sock,
        r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":6000,"guest_port":7001}}"#,
    );
    let id = v["return"]["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
    let v = api(&sock, r#"{"execute":"list_hostfwd"}"#);
    assert_eq!(
        v,
        json!({"entries":[{"id":id,"proto":"tcp","host_addr":"127.0.0.1","host_port":6000,
               "guest_addr":"10.0.2.100","guest_port":7001}]})
    );
    let out = client(&lab, &script, &host, &["interactive", "127.0.0.1", "6000", "50"]);
    assert!(out.starts_with("median_us="), "{out}");

    // A connection held open shows in list_connections, as forwarded and established.
    let mut hold = std::process::Command::new("ip");
    hold.args(["netns", "exec", &host, "python3", script.to_str().unwrap(), "hold", "127.0.0.1", "6000", "30"]);
    let h = lab.spawn(hold);
    let deadline = Instant::now() + Duration::from_secs(10);
    let conn = loop {
        let v = api(&sock, r#"{"execute":"list_connections"}"#);
        let conns = v["return"]["connections"].as_array().cloned().unwrap_or_default();
        if let Some(c) = conns.into_iter().find(|c| c["proto"] == "tcp" && c["state"] == "ESTABLISHED") {
            break c;
        }
        assert!(Instant::now() < deadline, "no established TCP connection listed: {v}; {}", lab.stderr_of(h));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(conn["guest_addr"], "10.0.2.100", "{conn}");
    assert_eq!(conn["guest_port"], 7001, "{conn}");
    assert_eq!(conn["remote_addr"], "10.0.2.2", "{conn}");
    assert_eq!(conn["host_peer_addr"], "127.0.0.1", "{conn}");
    assert_eq!(conn["forwarded"], true, "{conn}");
    assert!(conn["send_queue"].is_u64() && conn["recv_queue"].is_u64(), "{conn}");

    // Removed live: new connections are the kernel's to refuse; the held one goes on.
    let v = api(&sock, &format!(r#"{{"execute":"remove_hostfwd","arguments":{{"id":{id}}}}}"#));
    assert_eq!(v, json!({"return":{}}));
    assert_eq!(api(&sock, r#"{"execute":"list_hostfwd"}"#), json!({"entries":[]}));
    let out = client(&lab, &script, &host, &["refused", "127.0.0.1", "6000"]);
    assert!(out.starts_with("refused_us="), "{out}");
    assert!(lab.running(h), "the held connection ended with its forward: {}", lab.stderr_of(h));
    let v = api(&sock, r#"{"execute":"list_connections"}"#);
    assert!(v["return"]["connections"].as_array().is_some_and(|c| c.iter().any(|c| c["forwarded"] == true)), "{v}");

    let log = stop(&mut lab, p);
    assert!(log.contains("api: forwarding tcp 127.0.0.1:6000 to 10.0.2.100:7001"), "{log}");
    assert!(log.contains(&format!("api: removed forward {id}")), "{log}");
}

/// Frames in a pcap file longer than `limit` bytes: (toward the guest, from the guest). Frames
/// from the gateway's MAC (52:55:...) go toward the guest.
fn frames_longer_than(pcap: &Path, limit: usize) -> (usize, usize) {
    let b = std::fs::read(pcap).expect("pcap");
    let (mut to_guest, mut from_guest) = (0, 0);
    let mut at = 24;
    while at + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        let origlen = u32::from_le_bytes(b[at + 12..at + 16].try_into().unwrap()) as usize;
        let frame = &b[at + 16..(at + 16 + caplen).min(b.len())];
        if origlen > limit && frame.len() >= 12 {
            if frame[6..8] == [0x52, 0x55] {
                to_guest += 1;
            } else {
                from_guest += 1;
            }
        }
        at += 16 + caplen;
    }
    (to_guest, from_guest)
}

#[test]
fn tap_offloads_carry_super_frames_at_mtu_1500_and_can_be_turned_off() {
    let Some((mut lab, script)) = lab("tap_offloads_carry_super_frames_at_mtu_1500_and_can_be_turned_off") else {
        return;
    };
    const MIB: usize = 20;
    let (file, want) = serve_random_file(&mut lab, &script, MIB);
    for offload in [true, false] {
        let pcap = lab.dir.join(format!("offload-{offload}.pcap"));
        let mut args = vec!["--configure", "--mtu", "1500", "--pcap", pcap.to_str().unwrap()];
        if !offload {
            args.push("--no-offload");
        }
        let p = attach(&mut lab, &args);
        wait_configured(&lab);
        curl_down_and_up(&lab, &file, &want, MIB, Duration::from_secs(60));
        let log = stop(&mut lab, p);
        // The guest namespace's TAP goes with slirp; the next round makes a fresh one.
        let (to_guest, from_guest) = frames_longer_than(&pcap, 1514);
        eprintln!("offload {offload}: {to_guest} super-frames to the guest, {from_guest} from it");
        if offload {
            assert!(to_guest > 0 && from_guest > 0, "no super-frames with offloads on: {log}");
            assert!(log.contains("offloads"), "{log}");
        } else {
            assert_eq!((to_guest, from_guest), (0, 0), "frames beyond the MTU with --no-offload");
        }
        assert!(!log.contains("tcp_malformed") && !log.contains("ipv4_checksum"), "{log}");
        // Every TCP checksum toward the guest verifies in the capture (finished before capture).
        let out = common::sh(&[
            "sh",
            "-c",
            &format!(
                "tcpdump -nn -vv -r {} 'tcp and ether src 52:55:0a:00:02:02' 2>/dev/null | grep -c 'incorrect' || true",
                pcap.display()
            ),
        ]);
        assert_eq!(out.trim(), "0", "TCP checksums toward the guest must verify in the capture");
    }
}

/// `slirp run` gives its command a resolv.conf naming the DNS alias (the host's search and
/// options lines kept), so names resolve and fetch whatever the host's resolver is: here first
/// an address of the stand-in internet, then a resolver on the host namespace's loopback
/// (127.0.0.53, as systemd-resolved), which the command's new namespace could never reach.
#[test]
fn run_resolves_and_fetches_by_name_with_the_hosts_resolver_public_or_on_loopback() {
    let Some((mut lab, script)) = lab("run_resolves_and_fetches_by_name_with_the_hosts_resolver_public_or_on_loopback")
    else {
        return;
    };
    lab.start_internet_services();
    let (_file, want) = serve_random_file(&mut lab, &script, 1);
    let fetch = "set -o pipefail; cat /etc/resolv.conf; getent hosts www; \
                 curl -sS --fail --max-time 20 http://www.example.test:8080/file | sha256sum";
    let check = |lab: &Lab, resolver: &str| {
        let out =
            lab.exec_in_with_limit(&lab.host, &[SLIRP, "run", "--", "bash", "-c", fetch], Duration::from_secs(40));
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "with the host's resolver on {resolver}: {stdout}{}", text(&out.stderr));
        assert!(
            stdout.contains("nameserver 10.0.2.3") && !stdout.contains(&format!("nameserver {resolver}")),
            "{stdout}"
        );
        assert!(stdout.contains("search example.test"), "the host's search line is kept: {stdout}");
        assert!(stdout.contains("198.51.100.1 ") && stdout.contains("www.example.test"), "{stdout}");
        assert!(stdout.contains(&want), "the file came through: {stdout}");
    };
    lab.set_host_resolv_conf("nameserver 198.51.100.1\nsearch example.test\noptions timeout:2\n");
    check(&lab, "198.51.100.1");

    // The host namespace's own resolver on 127.0.0.53, forwarding to the stand-in internet.
    let host = lab.host.clone();
    let pid_file = format!("--pid-file={}", lab.dir.join("stub.pid").display());
    lab.spawn_in(
        &host,
        &[
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--server=198.51.100.1",
            "--listen-address=127.0.0.53",
            "--bind-interfaces",
            "--user=root",
            "--group=root",
            &pid_file,
        ],
    );
    lab.wait_udp_listening(&host, 53);
    lab.set_host_resolv_conf("nameserver 127.0.0.53\nsearch example.test\noptions edns0\n");
    check(&lab, "127.0.0.53");

    // The host's file is left as it was, and --no-resolv-conf hands it to the command unchanged.
    let out = lab.exec_in(&lab.host, &["cat", "/etc/resolv.conf"]);
    assert_eq!(text(&out.stdout), "nameserver 127.0.0.53\nsearch example.test\noptions edns0\n");
    let out = lab.exec_in(&lab.host, &[SLIRP, "run", "--no-resolv-conf", "--", "cat", "/etc/resolv.conf"]);
    assert_eq!(text(&out.stdout), "nameserver 127.0.0.53\nsearch example.test\noptions edns0\n");
}

/// A kilobyte figure from /proc/PID/status.
fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no {key}"));
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number")
}

/// A guest-side SYN flood: 20 000 SYNs within 3 s from spoofed guest-subnet sources to a server
/// in the stand-in internet that accepts everything (so every host connect succeeds and every
/// flow waits for a guest ACK that never comes). Half-open connections stay within their share
/// of the table and the oldest give way, so a normal HTTP request right after the flood succeeds
/// within 2 s, slirp stays alive and small, and its host sockets stay bounded.
#[test]
fn syn_flood_from_the_guest_does_not_lock_it_out() {
    let Some((mut lab, script)) = lab("syn_flood_from_the_guest_does_not_lock_it_out") else {
        return;
    };
    let (_file, want) = serve_random_file(&mut lab, &script, 1);
    let inet = lab.inet.clone();
    server(&mut lab, &script, &inet, &["accept-close", "198.51.100.1", "9000"], 9000);
    let p = attach(&mut lab, &["--configure"]);
    wait_configured(&lab);
    let pid = lab.pid(p);
    let get = "set -o pipefail; curl -sS --fail --max-time 10 http://198.51.100.1:8080/file | sha256sum";
    let out = run_sh(&lab, &lab.guest, get, Duration::from_secs(20));
    assert!(text(&out.stdout).contains(&want), "before the flood: {}{}", text(&out.stdout), text(&out.stderr));

    let flood =
        client(&lab, &script, &lab.guest.clone(), &["synflood", "tap0", "198.51.100.1", "9000", "20000", "2.5"]);
    let flood_end = Instant::now();
    let out = run_sh(&lab, &lab.guest, get, Duration::from_secs(20));
    let took = flood_end.elapsed();
    assert!(text(&out.stdout).contains(&want), "after the flood: {}{}", text(&out.stdout), text(&out.stderr));
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0);
    let hwm = status_kib(pid, "VmHWM");
    eprintln!("{flood}; HTTP request done {took:?} after the flood; VmHWM {hwm} kB; {fds} descriptors open");
    assert!(took < Duration::from_secs(2), "the request after the flood took {took:?}");
    assert!(hwm < 64 * 1024, "peak RSS {hwm} kB");
    // Half-open connections hold at most a quarter of the 1024-slot table.
    assert!(fds < 256 + 64, "{fds} descriptors open after the flood");
    assert!(lab.running(p), "slirp died");
    let log = stop(&mut lab, p);
    assert!(log.contains("tcp_half_open_evicted"), "{log}");
    assert!(!log.contains("tcp_table_full"), "nobody was refused: {log}");
}
