//! IPv6 against the real Linux kernel as the guest: SLAAC from our Router Advertisements alone,
//! neighbor discovery, ping -6 of the router, the DNS alias and the stand-in internet, TCP both
//! ways with hashes, AAAA lookups through the IPv6 DNS alias, v6 port forwards (TCP and UDP),
//! v4 listener to a v6 guest (the client shown in 64:ff9b::/96), host loopback through the v6 router address (and its refusal),
//! restricted mode over v6, Packet Too Big for a guest that sends more than the MTU, and DHCPv6
//! (stateful and stateless) with ISC dhclient. The
//! stand-in internet speaks IPv6 on the documentation prefix only (2001:db8:1::1), and the lab's
//! host namespace routes nowhere else (checked before slirp starts). Needs root and the lab's
//! tools (dnsutils, dnsmasq-base, socat, curl, python3, isc-dhcp-client).

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{lab_with, sh, Lab, NAT_TOOLS};
use rustix::process::Signal;

const TOOLS: [(&str, &str); 5] = [NAT_TOOLS[0], NAT_TOOLS[1], NAT_TOOLS[2], ("curl", "curl"), ("python3", "python3")];

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn attach(lab: &mut Lab, args: &[&str]) -> usize {
    let netns = format!("/run/netns/{}", lab.guest);
    let mut all = vec!["attach", "--netns", &netns, "--ipv6"];
    all.extend_from_slice(args);
    let p = lab.slirp(&all);
    lab.wait_for_guest_link("tap0");
    p
}

fn stop(lab: &mut Lab, p: usize) -> String {
    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
    log
}

fn ping6(lab: &Lab, args: &[&str]) -> Output {
    let mut all = vec!["ping", "-6", "-W", "2"];
    all.extend_from_slice(args);
    lab.exec_in(&lab.guest, &all)
}

/// Polls `f` (up to `secs`) until it returns true.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A deterministic payload file of `len` bytes in the lab directory, and its SHA-256.
fn payload(lab: &Lab, name: &str, len: usize) -> (std::path::PathBuf, String) {
    let path = lab.dir.join(name);
    let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(&path, data).expect("payload");
    let sum = sha256(&path);
    (path, sum)
}

fn sha256(path: &std::path::Path) -> String {
    sh(&["sha256sum", path.to_str().expect("utf-8")]).split_whitespace().next().unwrap_or("").to_string()
}

#[test]
fn slaac_ping_tcp_dns_over_ipv6_with_the_real_kernel() {
    let Some(mut lab) = lab_with("slaac_ping_tcp_dns_over_ipv6_with_the_real_kernel", &TOOLS) else {
        return;
    };
    lab.enable_ipv6();
    lab.start_internet_services();
    let guest = lab.guest.clone();
    // The guest learns everything from our Router Advertisements: no --configure.
    for k in ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"] {
        lab.exec_in(&guest, &["sysctl", "-qw", k]);
    }
    let pcap = lab.dir.join("v6.pcap");
    let p = attach(&mut lab, &["--pcap", pcap.to_str().unwrap()]);
    lab.exec_in(&guest, &["ip", "link", "set", "lo", "up"]);
    lab.exec_in(&guest, &["ip", "link", "set", "tap0", "up"]);
    let slaac = eventually(15, || {
        let a = text(&lab.exec_in(&guest, &["ip", "-6", "addr", "show", "dev", "tap0", "scope", "global"]).stdout);
        let r = text(&lab.exec_in(&guest, &["ip", "-6", "route", "show", "default"]).stdout);
        a.contains("inet6 fd00::") && r.contains("via fe80::2")
    });
    let addrs = text(&lab.exec_in(&guest, &["ip", "-6", "addr", "show", "dev", "tap0"]).stdout);
    let routes = text(&lab.exec_in(&guest, &["ip", "-6", "route", "show"]).stdout);
    assert!(slaac, "no SLAAC address or default route from the RA:\n{addrs}\n{routes}\n{}", lab.stderr_of(p));
    // The RA's MTU option reached the kernel.
    let mtu = text(&lab.exec_in(&guest, &["cat", "/proc/sys/net/ipv6/conf/tap0/mtu"]).stdout);
    assert_eq!(mtu.trim(), "1500");

    // Ping the router, the DNS alias (both answered by slirp) and the stand-in internet.
    for dst in ["fd00::2", "fd00::3", "fe80::2%tap0", "2001:db8:1::1"] {
        let out = ping6(&lab, &["-c", "3", "-i", "0.2", dst]);
        assert!(text(&out.stdout).contains("3 received"), "ping -6 {dst}: {}{}", text(&out.stdout), text(&out.stderr));
    }
    // A large ping: fragmented by us toward the guest (the reply is larger than the MTU).
    let out = ping6(&lab, &["-c", "2", "-s", "3000", "2001:db8:1::1"]);
    assert!(text(&out.stdout).contains("2 received"), "ping -6 -s 3000: {}{}", text(&out.stdout), text(&out.stderr));

    // AAAA through the IPv6 DNS alias (dnsmasq on the stand-in's IPv4 address is the upstream).
    let out = lab.exec_in(&guest, &["dig", "+short", "+time=2", "+tries=2", "@fd00::3", "AAAA", "six.example.test"]);
    assert_eq!(text(&out.stdout).trim(), "2001:db8:1::80", "dig AAAA: {}", text(&out.stderr));

    // TCP download (curl -6 from an HTTP server on the stand-in) and upload (socat), hashed.
    let (file, sum) = payload(&lab, "down.bin", 8 << 20);
    let dir = lab.dir.to_str().unwrap().to_string();
    let inet = lab.inet.clone();
    lab.spawn_in(&inet, &["python3", "-m", "http.server", "8080", "--bind", "2001:db8:1::1", "--directory", &dir]);
    lab.wait_tcp_listening(&inet, 8080);
    let got = lab.dir.join("down.got");
    let out = lab.exec_in(
        &guest,
        &["curl", "-6", "-sS", "--max-time", "60", "-o", got.to_str().unwrap(), "http://[2001:db8:1::1]:8080/down.bin"],
    );
    assert!(out.status.success(), "curl -6: {}", text(&out.stderr));
    assert_eq!(sha256(&got), sum, "download damaged");
    let _ = file;
    let (up, up_sum) = payload(&lab, "up.bin", 8 << 20);
    let received = lab.dir.join("up.got");
    let sink = format!("OPEN:{},creat,trunc", received.display());
    lab.spawn_in(&inet, &["socat", "-u", "TCP6-LISTEN:9000,bind=[2001:db8:1::1],reuseaddr", &sink]);
    lab.wait_tcp_listening(&inet, 9000);
    let src = format!("OPEN:{}", up.display());
    let out =
        lab.exec_in_with_limit(&guest, &["socat", "-u", &src, "TCP6:[2001:db8:1::1]:9000"], Duration::from_secs(60));
    assert!(out.status.success(), "upload: {}", text(&out.stderr));
    assert!(eventually(10, || sha256(&received) == up_sum), "upload damaged or incomplete");

    let log = stop(&mut lab, p);
    assert!(log.contains("ICMPv6 echo through"), "{log}");
    let dump = sh(&["tcpdump", "-n", "-r", pcap.to_str().unwrap()]);
    assert!(dump.contains("ICMP6, router advertisement"), "{dump}");
    assert!(dump.contains("ICMP6, neighbor advertisement, tgt is fd00::2"), "{dump}");
}

#[test]
fn ipv6_forwards_restricted_and_packet_too_big() {
    let Some(mut lab) = lab_with("ipv6_forwards_restricted_and_packet_too_big", &TOOLS) else {
        return;
    };
    lab.enable_ipv6();
    lab.start_internet_services();
    let guest = lab.guest.clone();
    let inet = lab.inet.clone();
    // --configure: fd00::100/64 and a default route via fe80::2, usable at once.
    let pcap = lab.dir.join("fwd.pcap");
    let pcap_arg = pcap.to_str().unwrap().to_string();
    let p = attach(
        &mut lab,
        &[
            "--pcap",
            &pcap_arg,
            "--configure",
            "--hostfwd",
            // `[::]` is the address --configure gave the guest, fd00::100.
            "tcp:[2001:db8:1::2]:8022-[::]:22",
            "--hostfwd",
            "udp:[2001:db8:1::2]:8053-[fd00::100]:53",
            "--hostfwd",
            "tcp:198.51.100.2:8023-[fd00::100]:22",
        ],
    );
    let addrs = text(&lab.exec_in(&guest, &["ip", "-6", "addr", "show", "dev", "tap0"]).stdout);
    assert!(addrs.contains("fd00::100/64"), "{addrs}");

    // TCP forward: a client on the stand-in reaches the guest's port 22 through [2001:db8:1::2]:8022.
    lab.spawn_in(&guest, &["socat", "TCP6-LISTEN:22,reuseaddr,fork", "SYSTEM:echo tcp-six-$SOCAT_PEERADDR"]);
    lab.wait_tcp_listening(&guest, 22);
    let out = lab.exec_in(&inet, &["socat", "-T", "5", "-", "TCP6:[2001:db8:1::2]:8022"]);
    let said = text(&out.stdout);
    // The client keeps its own address, as the guest sees it.
    // (socat writes the address in full.)
    let peer = said.trim().strip_prefix("tcp-six-").unwrap_or("").trim_matches(['[', ']']);
    assert_eq!(peer.parse::<std::net::Ipv6Addr>().ok(), "2001:db8:1::1".parse().ok(), "{said}{}", text(&out.stderr));
    // An IPv4 listener forwarding to the v6 guest: the client appears as 64:ff9b::198.51.100.1
    // (the NAT64 prefix; Linux refuses TCP from IPv4-mapped sources).
    let out = lab.exec_in(&inet, &["socat", "-T", "5", "-", "TCP4:198.51.100.2:8023"]);
    let said = text(&out.stdout);
    let peer = said.trim().strip_prefix("tcp-six-").unwrap_or("").trim_matches(['[', ']']);
    assert_eq!(
        peer.parse::<std::net::Ipv6Addr>().ok(),
        "64:ff9b::c633:6401".parse().ok(),
        "{said}{}\n{}",
        text(&out.stderr),
        lab.stderr_of(p)
    );

    // And the other way: the guest reaches an IPv4 host through the NAT64 prefix (TCP and UDP).
    lab.spawn_in(&inet, &["socat", "TCP4-LISTEN:9100,bind=198.51.100.1,reuseaddr,fork", "SYSTEM:echo nat64-tcp"]);
    lab.spawn_in(&inet, &["socat", "UDP4-RECVFROM:9101,bind=198.51.100.1,fork", "SYSTEM:echo nat64-udp"]);
    lab.wait_tcp_listening(&inet, 9100);
    lab.wait_udp_listening(&inet, 9101);
    let out = lab.exec_in(&guest, &["socat", "-T", "5", "-", "TCP6:[64:ff9b::198.51.100.1]:9100"]);
    assert_eq!(text(&out.stdout).trim(), "nat64-tcp", "TCP to 64:ff9b::/96: {}", text(&out.stderr));
    // One datagram each try, up to three (a loaded machine may be slow to fork the responder).
    let mut reply = String::new();
    let mut err = String::new();
    for _ in 0..3 {
        let out = lab.exec_in(&guest, &["sh", "-c", "echo hi | socat -T 3 - UDP6:[64:ff9b::198.51.100.1]:9101"]);
        reply = text(&out.stdout).trim().to_string();
        err = text(&out.stderr);
        if !reply.is_empty() {
            break;
        }
    }
    assert_eq!(reply, "nat64-udp", "UDP to 64:ff9b::/96: {err}");

    // The router's address leads to the host's [::1] (host loopback), on the same port.
    let host = lab.host.clone();
    lab.spawn_in(&host, &["socat", "TCP6-LISTEN:7777,bind=[::1],reuseaddr,fork", "SYSTEM:echo host-lo-six"]);
    lab.wait_tcp_listening(&host, 7777);
    let out = lab.exec_in(&guest, &["socat", "-T", "5", "-", "TCP6:[fd00::2]:7777"]);
    assert_eq!(text(&out.stdout).trim(), "host-lo-six", "host loopback over v6: {}", text(&out.stderr));

    // UDP forward, and the reply goes back through the rule.
    // Bound to the forward's address: the guest also has a SLAAC address of the prefix, which an
    // unbound socket's replies could leave from (and the client would not accept them).
    lab.spawn_in(&guest, &["socat", "UDP6-RECVFROM:53,bind=[fd00::100],fork", "SYSTEM:echo udp-six"]);
    lab.wait_udp_listening(&guest, 53);
    // A datagram may be lost while the guest settles (its link-local address is still in DAD):
    // tried three times, as the IPv4 tests do.
    let mut out = lab.exec_in(&inet, &["sh", "-c", "echo hi | socat -T 2 - UDP6:[2001:db8:1::2]:8053"]);
    for _ in 0..2 {
        if text(&out.stdout).trim() == "udp-six" {
            break;
        }
        out = lab.exec_in(&inet, &["sh", "-c", "echo hi | socat -T 2 - UDP6:[2001:db8:1::2]:8053"]);
    }
    if text(&out.stdout).trim() != "udp-six" {
        let log = stop(&mut lab, p);
        let dump = sh(&["tcpdump", "-n", "-r", &pcap_arg]);
        panic!("UDP forward: {:?} {}\n{log}\n{dump}", text(&out.stdout), text(&out.stderr));
    }

    // Packet Too Big: with the guest's link at 2000 bytes and ours at 1500, a 1600-byte ping
    // that must not fragment is refused by slirp with PTB (MTU 1500), which the kernel takes.
    lab.exec_in(&guest, &["ip", "link", "set", "tap0", "mtu", "2000"]);
    let out = ping6(&lab, &["-c", "1", "-s", "1600", "-M", "do", "2001:db8:1::1"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    let route = text(&lab.exec_in(&guest, &["ip", "-6", "route", "get", "2001:db8:1::1"]).stdout);
    assert!(route.contains("mtu 1500") || said.to_lowercase().contains("mtu=1500"), "no PMTU learned: {said}\n{route}");
    lab.exec_in(&guest, &["ip", "link", "set", "tap0", "mtu", "1500"]);

    let log = stop(&mut lab, p);
    assert!(log.contains("ipv6_too_big"), "{log}");

    // Restricted over IPv6: the world is out of reach, the router still answers.
    let p = attach(&mut lab, &["--configure", "--restricted"]);
    let out = ping6(&lab, &["-c", "2", "-i", "0.2", "fd00::2"]);
    assert!(text(&out.stdout).contains("2 received"), "router under --restricted: {}", text(&out.stdout));
    let out = ping6(&lab, &["-c", "2", "-i", "0.2", "2001:db8:1::1"]);
    assert!(text(&out.stdout).contains(" 0 received"), "the world under --restricted: {}", text(&out.stdout));
    let out = lab.exec_in(&guest, &["sh", "-c", "echo x | socat -T 2 - TCP6:[2001:db8:1::1]:9"]);
    assert!(!out.status.success(), "TCP under --restricted must fail");
    let log = stop(&mut lab, p);
    assert!(log.contains("restricted"), "{log}");

    // --disable-host-loopback over IPv6: the router's address no longer leads to [::1].
    let p = attach(&mut lab, &["--configure", "--disable-host-loopback"]);
    let out = lab.exec_in(&guest, &["socat", "-T", "3", "-", "TCP6:[fd00::2]:7777"]);
    assert!(!text(&out.stdout).contains("host-lo-six"), "host loopback reached despite the flag");
    assert!(!out.status.success(), "a refused connection: {}", text(&out.stderr));
    stop(&mut lab, p);
}

#[test]
fn dhcpv6_stateful_and_stateless_with_isc_dhclient() {
    let tools = [NAT_TOOLS[0], ("dhclient", "isc-dhcp-client")];
    let Some(mut lab) = lab_with("dhcpv6_stateful_and_stateless_with_isc_dhclient", &tools) else {
        return;
    };
    lab.enable_ipv6();
    let guest = lab.guest.clone();
    for k in ["net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"] {
        lab.exec_in(&guest, &["sysctl", "-qw", k]);
    }
    let pcap = lab.dir.join("dhcp6.pcap");
    let p = attach(&mut lab, &["--pcap", pcap.to_str().unwrap()]);
    lab.exec_in(&guest, &["ip", "link", "set", "tap0", "up"]);
    assert!(
        eventually(10, || {
            let a = text(&lab.exec_in(&guest, &["ip", "-6", "addr", "show", "dev", "tap0", "scope", "link"]).stdout);
            a.contains("inet6 fe80::")
        }),
        "no link-local address on the guest"
    );
    // Stateful: an address from the pool (the script only records; nothing is configured).
    let lease = lab.dir.join("dhclient6.leases");
    let pidfile = lab.dir.join("dhclient6.pid");
    let (l, pf) = (lease.to_str().unwrap().to_string(), pidfile.to_str().unwrap().to_string());
    let c =
        lab.spawn_in(&guest, &["dhclient", "-6", "-d", "-v", "-1", "-lf", &l, "-pf", &pf, "-sf", "/bin/true", "tap0"]);
    let bound = eventually(20, || std::fs::read_to_string(&lease).is_ok_and(|s| s.contains("iaaddr fd00::200")));
    let leases = std::fs::read_to_string(&lease).unwrap_or_default();
    assert!(bound, "no stateful lease: {leases}\n{}\n{}", lab.stderr_of(c), lab.stderr_of(p));
    assert!(leases.contains("option dhcp6.name-servers fd00::3"), "{leases}");
    lab.stop(c, Signal::TERM);

    // Stateless (-S): an Information-Request, DNS settings and no address. dhclient keeps no
    // lease then; its script sees what the reply said.
    let seen = lab.dir.join("dhclient6-info.env");
    let script = lab.dir.join("dhclient6-script");
    std::fs::write(&script, format!("#!/bin/sh\nenv >> {}\n", seen.display())).expect("script");
    sh(&["chmod", "+x", script.to_str().unwrap()]);
    let pf2 = lab.dir.join("dhclient6-info.pid").to_str().unwrap().to_string();
    let i = lab.dir.join("dhclient6-info.leases").to_str().unwrap().to_string();
    let args =
        ["dhclient", "-6", "-S", "-d", "-v", "-1", "-lf", &i, "-pf", &pf2, "-sf", script.to_str().unwrap(), "tap0"];
    let c = lab.spawn_in(&guest, &args);
    let got = eventually(20, || std::fs::read_to_string(&seen).is_ok_and(|s| s.contains("new_dhcp6_name_servers=")));
    let env = std::fs::read_to_string(&seen).unwrap_or_default();
    assert!(
        got,
        "no stateless reply: {env}\n{}\n{}",
        lab.stderr_of(c),
        sh(&["tcpdump", "-n", "-vv", "-r", pcap.to_str().unwrap(), "udp"])
    );
    assert!(env.contains("new_dhcp6_name_servers=fd00::3"), "{env}");
    assert!(!env.contains("new_ip6_address"), "a stateless reply carries no address: {env}");
    lab.stop(c, Signal::TERM);

    stop(&mut lab, p);
}
