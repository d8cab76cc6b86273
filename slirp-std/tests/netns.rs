//! Real guests against the `slirp` binary: the Linux kernel's own stack, busybox udhcpc, ping
//! and tcpdump, in network namespaces made per test (see `common` for the lab and its safety
//! rules). Needs root and the tools; under CI a machine without them fails these tests.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{lab, run_with_limit, sh, Lab, SLIRP};
use rustix::process::Signal;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ping(lab: &Lab, ns: &str, addr: &str) -> String {
    let out = lab.exec_in(ns, &["ping", "-c", "3", "-i", "0.2", "-W", "2", addr]);
    assert!(out.status.success(), "ping {addr} failed: {}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn udhcpc_gets_lease_ping_answers_arp_is_right_and_pcap_opens() {
    let Some(mut lab) = lab("udhcpc_gets_lease_ping_answers_arp_is_right_and_pcap_opens") else {
        return;
    };
    let pcap = lab.dir.join("run.pcap");
    let netns = format!("/run/netns/{}", lab.guest);
    let p = lab.slirp(&["attach", "--netns", &netns, "--pcap", pcap.to_str().unwrap(), "--hostfwd", "tcp::8080-:80"]);
    lab.wait_for_guest_link("tap0");

    let lease = lab.dhcp();
    assert!(lease.contains("ip=10.0.2.15 "), "{lease}");
    assert!(lease.contains("mask=24 "), "{lease}");
    assert!(lease.contains("router=10.0.2.2 "), "{lease}");
    assert!(lease.contains("dns=10.0.2.3 "), "{lease}");
    let addr = sh(&["ip", "-n", &lab.guest, "-4", "addr", "show", "tap0"]);
    assert!(addr.contains("inet 10.0.2.15/24"), "{addr}");

    let out = ping(&lab, &lab.guest, "10.0.2.2");
    assert!(out.contains("3 received"), "{out}");
    let out = ping(&lab, &lab.guest, "10.0.2.3");
    assert!(out.contains("3 received"), "{out}");

    let neigh = sh(&["ip", "-n", &lab.guest, "neigh", "show", "10.0.2.2"]);
    assert!(neigh.contains("lladdr 52:55:0a:00:02:02"), "{neigh}");

    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(log.contains("--hostfwd tcp:0.0.0.0:8080-:80: forwarding tcp 0.0.0.0:8080 to 10.0.2.15:80"), "{log}");
    // The lab's resolver file, never the machine's.
    assert!(log.contains("DNS upstream 198.51.100.1:53"), "{log}");

    let dump = sh(&["tcpdump", "-n", "-r", pcap.to_str().unwrap()]);
    assert!(dump.contains("BOOTP/DHCP, Request"), "{dump}");
    assert!(dump.contains("10.0.2.2.67 > 255.255.255.255.68: BOOTP/DHCP, Reply"), "{dump}");
    assert!(dump.contains("ARP, Reply 10.0.2.2 is-at 52:55:0a:00:02:02"), "{dump}");
    assert!(dump.contains("10.0.2.15 > 10.0.2.2: ICMP echo request"), "{dump}");
    assert!(dump.contains("10.0.2.2 > 10.0.2.15: ICMP echo reply"), "{dump}");
}

#[test]
fn udhcpc_sees_boot_file_server_name_search_list_and_moved_addresses() {
    let Some(mut lab) = lab("udhcpc_sees_boot_file_server_name_search_list_and_moved_addresses") else {
        return;
    };
    let netns = format!("/run/netns/{}", lab.guest);
    let trace = lab.dir.join("trace.jsonl");
    let trace_arg = trace.to_str().unwrap().to_string();
    let p = lab.slirp(&[
        "attach",
        "--netns",
        &netns,
        "--bootfile",
        "pxelinux.0",
        "--tftp-server-name",
        "boot.example.test",
        "--dns-search",
        "corp.example.test,lab.corp.example.test",
        "--dns-search",
        "example.org",
        "--domain",
        "example.test",
        "--hostname",
        "guest-one",
        "--dhcp-start",
        "10.0.2.40",
        "--dns",
        "10.0.2.60",
        "--trace",
        &trace_arg,
    ]);
    lab.wait_for_guest_link("tap0");
    let lease = lab.dhcp();
    assert!(lease.contains("ip=10.0.2.40 "), "--dhcp-start: {lease}");
    assert!(lease.contains("dns=10.0.2.60 "), "--dns: {lease}");
    let opts = lab.dhcp_options();
    for want in [
        "boot_file=pxelinux.0|",
        "sname=boot.example.test|",
        "siaddr=10.0.2.2|",
        "tftp=boot.example.test|",
        "bootfile=pxelinux.0|",
        "hostname=guest-one|",
        "domain=example.test|",
        // busybox decodes option 119 (with its compression pointers) into a space-separated list.
        "search=corp.example.test lab.corp.example.test example.org",
    ] {
        assert!(opts.contains(want), "{want} missing: {opts}");
    }
    // The moved DNS alias answers.
    let out = lab.exec_in(&lab.guest, &["dig", "+short", "+time=2", "+tries=2", "@10.0.2.60", "www.example.test"]);
    assert!(!text(&out.stdout).trim().is_empty(), "DNS at the moved alias: {}", text(&out.stderr));
    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
    // --trace: JSON lines with the lease, the DNS query's UDP mapping (to the upstream the
    // moved alias leads to) and frame summaries.
    let lines = std::fs::read_to_string(&trace).unwrap();
    assert!(
        lines.lines().any(|l| l.contains("\"event\":\"lease\"") && l.contains("\"addr\":\"10.0.2.40\"")),
        "{lines}"
    );
    assert!(
        lines.lines().any(|l| l.contains("\"event\":\"udp_opened\"") && l.contains("\"remote\":\"198.51.100.1:53\"")),
        "{lines}"
    );
    assert!(lines.lines().any(|l| l.contains("\"event\":\"frame_in\"")));
    let check = lab.exec_in(
        &lab.host,
        &["python3", "-c", "import json,sys; [json.loads(l) for l in open(sys.argv[1])]", &trace_arg],
    );
    assert!(check.status.success(), "not JSON lines: {}", text(&check.stderr));
}

#[test]
fn busybox_tftp_fetches_from_the_root_and_nothing_outside_it() {
    let Some(mut lab) = lab("busybox_tftp_fetches_from_the_root_and_nothing_outside_it") else {
        return;
    };
    let root = lab.dir.join("tftp");
    std::fs::create_dir_all(root.join("boot")).unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    std::fs::write(root.join("boot/kernel"), &data).unwrap();
    // A secret next to the root, a link that leaves it, and one that stays inside.
    std::fs::write(lab.dir.join("secret"), b"do not serve").unwrap();
    std::os::unix::fs::symlink(lab.dir.join("secret"), root.join("escape")).unwrap();
    std::os::unix::fs::symlink("boot/kernel", root.join("inside")).unwrap();
    let netns = format!("/run/netns/{}", lab.guest);
    let p = lab.slirp(&["attach", "--netns", &netns, "--configure", "--tftp", root.to_str().unwrap()]);
    lab.wait_for_guest_link("tap0");
    let got = lab.dir.join("got");
    let g = got.to_str().unwrap();
    for (remote, block) in [("boot/kernel", None), ("/boot/kernel", Some("1468")), ("inside", Some("1024"))] {
        let _ = std::fs::remove_file(&got);
        let mut args = vec!["busybox", "tftp", "-g", "-r", remote, "-l", g];
        if let Some(b) = block {
            args.extend_from_slice(&["-b", b]);
        }
        args.push("10.0.2.2");
        let out = lab.exec_in(&lab.guest, &args);
        assert!(out.status.success(), "tftp -g {remote}: {}", text(&out.stderr));
        assert!(std::fs::read(&got).unwrap() == data, "{remote}: content differs");
    }
    for remote in ["escape", "../secret", "boot/../../secret", "boot"] {
        let _ = std::fs::remove_file(&got);
        let out = lab.exec_in(&lab.guest, &["busybox", "tftp", "-g", "-r", remote, "-l", g, "10.0.2.2"]);
        assert!(!out.status.success(), "{remote} was served");
        let leaked = std::fs::read(&got).unwrap_or_default();
        assert!(!leaked.windows(12).any(|w| w == b"do not serve"), "{remote} leaked the secret");
    }
    let out = lab.exec_in(&lab.guest, &["busybox", "tftp", "-p", "-l", "/etc/hostname", "-r", "up", "10.0.2.2"]);
    assert!(!out.status.success(), "a write was accepted");
    assert!(!root.join("up").exists());
    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
    assert!(log.contains("TFTP: serving"), "{log}");
}

#[test]
fn guestfwd_serves_guest_connections_with_a_command_a_unix_socket_and_tcp() {
    let tools = [("socat", "socat"), ("sha256sum", "coreutils")];
    let Some(mut lab) =
        common::lab_with("guestfwd_serves_guest_connections_with_a_command_a_unix_socket_and_tcp", &tools)
    else {
        return;
    };
    let unix = lab.dir.join("fwd.sock");
    let host = lab.host.clone();
    lab.spawn_in(&host, &["socat", &format!("UNIX-LISTEN:{},fork", unix.display()), "SYSTEM:echo unix-ok"]);
    lab.spawn_in(&host, &["socat", "TCP-LISTEN:7101,bind=127.0.0.1,reuseaddr,fork", "SYSTEM:echo tcp-ok"]);
    lab.wait_tcp_listening(&host, 7101);
    let netns = format!("/run/netns/{}", lab.guest);
    // Restricted: the rules still work, nothing else does.
    let p = lab.slirp(&[
        "attach",
        "--netns",
        &netns,
        "--configure",
        "--restricted",
        "--guestfwd",
        "tcp:10.0.2.200:4321-cmd:tr a-z A-Z",
        "--guestfwd",
        "tcp:10.0.2.200:4322-cmd:sha256sum",
        "--guestfwd",
        &format!("tcp:10.0.2.201:80-unix:{}", unix.display()),
        "--guestfwd",
        "tcp:10.0.2.202:80-tcp:127.0.0.1:7101",
        "--guestfwd",
        "tcp:10.0.2.203:23-pty:tty; test -t 0 && echo on-a-terminal",
    ]);
    lab.wait_for_guest_link("tap0");
    let g = lab.guest.clone();
    let out = lab.exec_in(&g, &["sh", "-c", "echo hello guestfwd | socat -T 5 - TCP:10.0.2.200:4321"]);
    assert_eq!(text(&out.stdout).trim(), "HELLO GUESTFWD", "cmd: {}", text(&out.stderr));
    // 4 MiB through a command that answers only at the end: half-close and backpressure.
    let data: Vec<u8> = (0..4u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 9) as u8).collect();
    let file = lab.dir.join("up.bin");
    std::fs::write(&file, &data).unwrap();
    let want = sh(&["sha256sum", file.to_str().unwrap()]).split_whitespace().next().unwrap().to_string();
    let out = lab.exec_in(&g, &["sh", "-c", &format!("socat -T 20 -t 20 - TCP:10.0.2.200:4322 < {}", file.display())]);
    let got = text(&out.stdout);
    assert_eq!(got.split_whitespace().next(), Some(want.as_str()), "sha256 through cmd: {got} {}", text(&out.stderr));
    let out = lab.exec_in(&g, &["socat", "-T", "5", "-", "TCP:10.0.2.201:80"]);
    assert_eq!(text(&out.stdout).trim(), "unix-ok", "unix: {}", text(&out.stderr));
    let out = lab.exec_in(&g, &["socat", "-T", "5", "-", "TCP:10.0.2.202:80"]);
    assert_eq!(text(&out.stdout).trim(), "tcp-ok", "tcp: {}", text(&out.stderr));
    // pty: the command has a terminal of its own (and the stream ends when it exits).
    let out = lab.exec_in(&g, &["sh", "-c", "sleep 2 | socat -T 5 - TCP:10.0.2.203:23"]);
    let said = text(&out.stdout);
    assert!(said.contains("/dev/pts/") && said.contains("on-a-terminal"), "pty: {said:?} {}", text(&out.stderr));
    // The rule address answers ping and ARP; another port is closed at once.
    let out = ping(&lab, &g, "10.0.2.200");
    assert!(out.contains("3 received"), "{out}");
    let neigh = sh(&["ip", "-n", &g, "neigh", "show", "10.0.2.200"]);
    assert!(neigh.contains("lladdr 52:55:0a:00:02:c8"), "{neigh}");
    let out = lab.exec_in(&g, &["socat", "-T", "3", "-", "TCP:10.0.2.200:9"]);
    assert!(text(&out.stderr).contains("refused"), "{}", text(&out.stderr));
    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
    assert!(log.contains("--guestfwd: connections to 10.0.2.200:4321"), "{log}");
}

#[test]
fn configure_by_pid_sets_address_route_and_mtu() {
    let Some(mut lab) = lab("configure_by_pid_sets_address_route_and_mtu") else {
        return;
    };
    // A process living in the guest namespace names it by PID (slirp4netns style).
    // Named only once it is in there: before its setns it is in the root namespace.
    let guest = lab.guest.clone();
    let s = lab.spawn_in_and_enter(&guest, &["sleep", "120"]);
    let pid = lab.pid(s).to_string();
    let p = lab.slirp(&["attach", "--configure", "--mtu", "1400", &pid]);
    lab.wait_for_guest_link("tap0");
    let deadline = Instant::now() + Duration::from_secs(10);
    let route = loop {
        let r = sh(&["ip", "-n", &lab.guest, "-4", "route"]);
        if r.contains("default") || Instant::now() > deadline {
            break r;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(route.contains("default via 10.0.2.2 dev tap0"), "{route}");
    let addr = sh(&["ip", "-n", &lab.guest, "-4", "addr", "show", "tap0"]);
    assert!(addr.contains("inet 10.0.2.100/24"), "{addr}");
    assert!(addr.contains("mtu 1400"), "{addr}");
    assert!(addr.contains(",UP"), "{addr}");
    let out = ping(&lab, &lab.guest, "10.0.2.2");
    assert!(out.contains("3 received"), "{out}");

    let (status, log) = lab.stop(p, Signal::INT);
    assert!(status.success(), "slirp exited {status:?}: {log}");
}

#[test]
fn run_puts_command_on_the_network_and_passes_its_status() {
    let Some(lab) = lab("run_puts_command_on_the_network_and_passes_its_status") else {
        return;
    };
    let out = lab.exec_in(&lab.host, &[SLIRP, "run", "--", "ip", "addr"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("tap0"), "{stdout}");
    assert!(stdout.contains("inet 10.0.2.100/24"), "{stdout}");

    let out = lab.exec_in(&lab.host, &[SLIRP, "run", "--", "sh", "-c", "ip route; ping -c 1 -W 2 10.0.2.2"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("default via 10.0.2.2 dev tap0"), "{stdout}");
    assert!(stdout.contains("1 received"), "{stdout}");

    let out = lab.exec_in(&lab.host, &[SLIRP, "run", "--", "false"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = lab.exec_in(&lab.host, &[SLIRP, "run", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    let out = lab.exec_in(&lab.host, &[SLIRP, "run", "--", "/nonexistent/command"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("/nonexistent/command"));
    // Setup failing inside the new namespace is reported in one line, and nothing runs.
    let out = lab.exec_in(&lab.host, &[SLIRP, "run", "--ifname", "a-name-too-long-for-linux", "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("interface name"), "{}", text(&out.stderr));
}

#[test]
fn run_stops_its_command_when_signalled() {
    let Some(mut lab) = lab("run_stops_its_command_when_signalled") else {
        return;
    };
    let marker = lab.dir.join("started");
    let script = format!("touch {}; exec sleep 60", marker.display());
    let p = lab.slirp(&["run", "--", "sh", "-c", &script]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "command never started: {}", lab.stderr_of(p));
        std::thread::sleep(Duration::from_millis(20));
    }
    // slirp passes SIGTERM on and exits as the command did (128 + 15, as a shell reports it).
    let (status, log) = lab.stop(p, Signal::TERM);
    assert_eq!(status.code(), Some(143), "{log}");
}

/// An ARP request from 52:54:00:12:34:56 / 10.0.2.15 for `target`.
fn arp_request(target: [u8; 4]) -> Vec<u8> {
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[10, 0, 2, 15]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target);
    f
}

fn send_framed(s: &mut UnixStream, frame: &[u8]) {
    s.write_all(&(frame.len() as u32).to_be_bytes()).unwrap();
    s.write_all(frame).unwrap();
}

fn recv_framed(s: &mut UnixStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("frame length");
    let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut f).expect("frame");
    f
}

fn assert_arp_reply(f: &[u8], from: [u8; 4]) {
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let gw_mac = [0x52, 0x55, 10, 0, 2, from[3]];
    assert_eq!(&f[0..6], &mac, "to us");
    assert_eq!(&f[6..12], &gw_mac, "from the virtual host");
    assert_eq!(&f[12..14], &[0x08, 0x06], "ARP");
    assert_eq!(&f[20..22], &[0, 2], "reply");
    assert_eq!(&f[22..28], &gw_mac, "sender MAC");
    assert_eq!(&f[28..32], &from, "sender IP");
    assert_eq!(&f[32..38], &mac, "target MAC");
    assert_eq!(&f[38..42], &[10, 0, 2, 15], "target IP");
}

fn connect(path: &std::path::Path) -> UnixStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match UnixStream::connect(path) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                return s;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "connecting {}: {e}", path.display());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn qemu_stream_answers_arp_and_survives_reconnect() {
    let Some(mut lab) = lab("qemu_stream_answers_arp_and_survives_reconnect") else {
        return;
    };
    let sock = lab.dir.join("qemu.sock");
    let p = lab.slirp(&["qemu", "--socket", sock.to_str().unwrap()]);

    let mut guest = connect(&sock);
    send_framed(&mut guest, &arp_request([10, 0, 2, 2]));
    assert_arp_reply(&recv_framed(&mut guest), [10, 0, 2, 2]);

    // One guest at a time: a second connection is closed at once.
    let mut intruder = connect(&sock);
    let mut b = [0u8; 1];
    assert_eq!(intruder.read(&mut b).expect("closed, not timed out"), 0);
    // The first guest is undisturbed; two frames in one write are both answered.
    let mut both = Vec::new();
    for target in [[10, 0, 2, 2], [10, 0, 2, 3]] {
        let f = arp_request(target);
        both.extend_from_slice(&(f.len() as u32).to_be_bytes());
        both.extend_from_slice(&f);
    }
    guest.write_all(&both).unwrap();
    assert_arp_reply(&recv_framed(&mut guest), [10, 0, 2, 2]);
    assert_arp_reply(&recv_framed(&mut guest), [10, 0, 2, 3]);
    drop(guest);

    // The guest comes back (a rebooted VM).
    let mut guest = connect(&sock);
    send_framed(&mut guest, &arp_request([10, 0, 2, 3]));
    assert_arp_reply(&recv_framed(&mut guest), [10, 0, 2, 3]);

    // A guest that breaks the framing is dropped; the next one is served.
    guest.write_all(&0u32.to_be_bytes()).unwrap();
    assert_eq!(guest.read(&mut b).expect("closed, not timed out"), 0);
    let mut guest = connect(&sock);
    send_framed(&mut guest, &arp_request([10, 0, 2, 2]));
    assert_arp_reply(&recv_framed(&mut guest), [10, 0, 2, 2]);

    assert!(lab.running(p));
    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
    assert!(!sock.exists(), "socket file removed at exit");
}

/// A pipe end the child inherits (no close-on-exec), and ours.
fn inheritable_pipe(child_reads: bool) -> (OwnedFd, OwnedFd) {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    if child_reads {
        (rustix::io::dup(&r).unwrap(), w)
    } else {
        (rustix::io::dup(&w).unwrap(), r)
    }
}

#[test]
fn ready_fd_reports_and_exit_fd_stops() {
    let Some(mut lab) = lab("ready_fd_reports_and_exit_fd_stops") else {
        return;
    };
    let (ready_child, ready_ours) = inheritable_pipe(false);
    let (exit_child, exit_ours) = inheritable_pipe(true);
    let netns = format!("/run/netns/{}", lab.guest);
    let p = lab.slirp(&[
        "attach".to_string(),
        "--netns".into(),
        netns,
        "--ready-fd".into(),
        ready_child.as_raw_fd().to_string(),
        "--exit-fd".into(),
        exit_child.as_raw_fd().to_string(),
    ]);
    drop((ready_child, exit_child));

    rustix::fs::fcntl_setfl(&ready_ours, rustix::fs::OFlags::NONBLOCK).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = [0u8; 1];
    loop {
        match rustix::io::read(&ready_ours, &mut got) {
            Ok(1) => break,
            Ok(_) => panic!("ready fd closed without \"1\": {}", lab.stderr_of(p)),
            Err(_) => {
                assert!(Instant::now() < deadline, "never ready: {}", lab.stderr_of(p));
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    assert_eq!(&got, b"1");
    // Ready means the TAP exists.
    sh(&["ip", "-n", &lab.guest, "link", "show", "tap0"]);
    assert!(lab.running(p));

    drop(exit_ours);
    let (status, log) = lab.wait(p, Duration::from_secs(5));
    assert!(status.success(), "slirp exited {status:?}: {log}");
    assert!(log.contains("exit fd closed"), "{log}");
}

/// Reads utime + stime (clock ticks) of `pid`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn idle_attach_sleeps() {
    let Some(mut lab) = lab("idle_attach_sleeps") else {
        return;
    };
    let netns = format!("/run/netns/{}", lab.guest);
    let p = lab.slirp(&["attach", "--configure", "--netns", &netns]);
    lab.wait_for_guest_link("tap0");
    // Let the guest kernel's own start-up chatter (IPv6 DAD, MLD) pass first.
    std::thread::sleep(Duration::from_secs(1));
    let pid = lab.pid(p);
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(pid) - before;
    // 100 ticks a second: a busy-polling loop would burn ~300 here.
    assert!(used <= 3, "idle slirp used {used} ticks in 3 s");
    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "{log}");
}

/// One-line errors, and nothing is started when the command line is wrong. These never reach a
/// namespace (the target does not exist), so they run anywhere the binary does.
#[test]
fn bad_invocations_fail_with_one_line() {
    let missing = "/run/netns/slirpt-does-not-exist";
    let cases: [(&[&str], &str); 7] = [
        (&["attach", "--netns", missing], "no such network namespace"),
        (&["attach", "--netns", missing, "--mtu", "100"], "MTU"),
        (&["attach", "--netns", missing, "--cidr", "10.0.2.1/24"], "host bits"),
        (&["attach", "--netns", missing, "--hostfwd", "tcp::0-:22"], "--hostfwd"),
        (&["attach", "--netns", missing, "--dns-upstream", "resolver"], "--dns-upstream"),
        (&["attach", "--frobnicate"], "--frobnicate"),
        (&["run"], "COMMAND"),
    ];
    for (args, needle) in cases {
        let mut cmd = std::process::Command::new(SLIRP);
        cmd.args(args);
        let out = run_with_limit(cmd, Duration::from_secs(10));
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("slirp: "), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
