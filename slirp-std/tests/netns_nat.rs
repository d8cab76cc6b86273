//! UDP, ICMP echo and DNS through the NAT against real guests: the Linux kernel's stack and stock
//! tools (dig, socat, ping, udhcpc) in the guest namespace, dnsmasq and a socat echo server in the
//! stand-in internet (198.51.100.1), all in the lab of `common` (slirp only ever runs in the lab's
//! host namespace, which routes nowhere but the stand-in internet). Needs root, the lab's tools
//! and dnsutils, dnsmasq-base and socat; under CI a machine without them fails these tests.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{lab_with, sh, Lab, NAT_TOOLS};
use rustix::process::Signal;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
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

/// Stops slirp and returns its log (it reports its counters when it exits).
fn stop(lab: &mut Lab, p: usize) -> String {
    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
    log
}

/// `dig @10.0.2.3 NAME` from the guest.
fn dig(lab: &Lab, name: &str) -> Output {
    dig_at(lab, "10.0.2.3", name)
}

/// `dig @SERVER NAME` from the guest (dig accepts only an answer from the address it asked).
fn dig_at(lab: &Lab, server: &str, name: &str) -> Output {
    let at = format!("@{server}");
    lab.exec_in(&lab.guest, &["dig", "+short", "+time=2", "+tries=2", &at, name])
}

/// Sends `payload` as one UDP datagram from namespace `ns` to `dst` (a connected socket, so only
/// a reply from `dst` itself is accepted) and returns what came back (empty: nothing) and
/// socat's stderr. A datagram may be lost (the first one waits for ARP), so an empty answer is
/// tried again twice.
fn udp_exchange(lab: &Lab, ns: &str, dst: &str, payload: &[u8]) -> (Vec<u8>, String) {
    let input = lab.dir.join(format!("udp-in-{}", payload.len()));
    let output = lab.dir.join(format!("udp-out-{}", payload.len()));
    std::fs::write(&input, payload).expect("payload file");
    let script = format!("socat -b 65536 -t 1 -T 2 STDIO UDP4:{dst} < {} > {}", input.display(), output.display());
    let mut err = String::new();
    for _ in 0..3 {
        let out = lab.exec_in(ns, &["sh", "-c", &script]);
        err = text(&out.stderr);
        let got = std::fs::read(&output).unwrap_or_default();
        if !got.is_empty() || !err.is_empty() {
            return (got, err);
        }
    }
    (Vec::new(), err)
}

/// A payload that shows misordered or damaged fragments.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 251) as u8).collect()
}

fn ping(lab: &Lab, ns: &str, args: &[&str]) -> Output {
    let mut all = vec!["ping", "-W", "2"];
    all.extend_from_slice(args);
    lab.exec_in(ns, &all)
}

fn tcpdump(pcap: &Path) -> String {
    sh(&["tcpdump", "-n", "-r", pcap.to_str().expect("utf-8 path")])
}

#[test]
fn dns_udp_echo_and_ping_reach_the_stand_in_internet() {
    let Some(mut lab) = lab_with("dns_udp_echo_and_ping_reach_the_stand_in_internet", &NAT_TOOLS) else {
        return;
    };
    lab.start_internet_services();
    let pcap = lab.dir.join("nat.pcap");
    let p = attach(&mut lab, &["--pcap", pcap.to_str().unwrap()]);
    let lease = lab.dhcp();
    assert!(lease.contains("ip=10.0.2.15 ") && lease.contains("router=10.0.2.2 "), "{lease}");

    // DNS through the alias: dig also checks the answer comes from 10.0.2.3.
    let out = dig(&lab, "example.test");
    assert!(out.status.success(), "dig: {}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "198.51.100.80", "{}", text(&out.stderr));
    // The upstream asked directly answers as itself, also from a socket that used the alias.
    let out = dig_at(&lab, "198.51.100.1", "example.test");
    assert!(out.status.success(), "dig @upstream: {}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "198.51.100.80", "{}", text(&out.stderr));

    // UDP echo: small, then 4000 bytes (three fragments each way on a 1500-byte link).
    for size in [16, 4000] {
        let data = pattern(size);
        let (got, err) = udp_exchange(&lab, &lab.guest, "198.51.100.1:7", &data);
        assert_eq!(got.len(), size, "echo of {size} bytes: {err}");
        assert!(got == data, "echo of {size} bytes came back damaged");
    }

    // Several pings in flight at once (two processes, two sizes; 3000 bytes is fragmented).
    let script = "ping -c 5 -i 0.2 -W 2 198.51.100.1 > /tmp/p1 & \
                  ping -c 5 -i 0.2 -W 2 -s 3000 198.51.100.1 > /tmp/p2 & \
                  wait; cat /tmp/p1 /tmp/p2";
    let script = script.replace("/tmp/", &format!("{}/", lab.dir.display()));
    let out = lab.exec_in(&lab.guest, &["sh", "-c", &script]);
    let stdout = text(&out.stdout);
    assert_eq!(stdout.matches("5 packets transmitted, 5 received").count(), 2, "{stdout}");
    assert!(stdout.contains("3008 bytes from 198.51.100.1"), "{stdout}");

    let log = stop(&mut lab, p);
    // Root without ping sockets allowed (a fresh namespace's ping_group_range is "1 0").
    assert!(log.contains("ICMP echo through a raw socket"), "{log}");
    assert!(!log.contains("restricted="), "{log}");

    let dump = tcpdump(&pcap);
    assert!(dump.contains("10.0.2.3.53 > 10.0.2.15."), "DNS reply from the alias: {dump}");
    assert!(dump.contains("198.51.100.1.53 > 10.0.2.15."), "DNS reply from the upstream asked: {dump}");
    assert!(dump.contains("198.51.100.1.7 > 10.0.2.15.") && dump.contains("UDP, length 4000"), "{dump}");
    // Fragments toward the guest: the later ones carry no UDP header.
    assert!(dump.contains("IP 198.51.100.1 > 10.0.2.15: ip-proto-17"), "{dump}");
    assert!(dump.contains("IP 10.0.2.15 > 198.51.100.1: ip-proto-17"), "{dump}");
    assert!(dump.contains("198.51.100.1 > 10.0.2.15: ICMP echo reply"), "{dump}");
}

#[test]
fn ping_through_an_unprivileged_ping_socket() {
    let Some(mut lab) = lab_with("ping_through_an_unprivileged_ping_socket", &NAT_TOOLS) else {
        return;
    };
    // Only inside the lab's host namespace (the setting is per namespace).
    let set = "echo '0 0' > /proc/sys/net/ipv4/ping_group_range";
    sh(&["ip", "netns", "exec", &lab.host, "sh", "-c", set]);
    assert_eq!(
        sh(&["ip", "netns", "exec", &lab.host, "cat", "/proc/sys/net/ipv4/ping_group_range"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "0"]
    );
    let p = attach(&mut lab, &["--configure"]);
    let out = ping(&lab, &lab.guest, &["-c", "3", "-i", "0.2", "198.51.100.1"]);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("3 received"), "{}", text(&out.stdout));
    let out = ping(&lab, &lab.guest, &["-c", "2", "-i", "0.2", "-s", "3000", "198.51.100.1"]);
    assert!(text(&out.stdout).contains("2 received"), "{}", text(&out.stdout));
    let log = stop(&mut lab, p);
    assert!(log.contains("ICMP echo through an unprivileged ping socket"), "{log}");
}

#[test]
fn gateway_reaches_host_loopback() {
    let Some(mut lab) = lab_with("gateway_reaches_host_loopback", &NAT_TOOLS) else {
        return;
    };
    let host = lab.host.clone();
    lab.spawn_in(&host, &["socat", "-T", "2", "UDP4-RECVFROM:9999,bind=127.0.0.1,fork", "PIPE"]);
    lab.wait_udp_listening(&host, 9999);
    let p = attach(&mut lab, &["--configure"]);
    // The client's socket is connected to 10.0.2.2:9999: the echo is accepted only from there.
    let (got, err) = udp_exchange(&lab, &lab.guest, "10.0.2.2:9999", b"to the host's loopback");
    assert_eq!(got, b"to the host's loopback", "{err}");
    // A port nobody listens on: the host's port unreachable reaches the guest.
    let (got, err) = udp_exchange(&lab, &lab.guest, "10.0.2.2:9998", b"anyone?");
    assert!(got.is_empty());
    assert!(err.contains("Connection refused"), "{err}");
    stop(&mut lab, p);
}

#[test]
fn disable_host_loopback_refuses_the_gateway() {
    let Some(mut lab) = lab_with("disable_host_loopback_refuses_the_gateway", &NAT_TOOLS) else {
        return;
    };
    lab.start_internet_services();
    let host = lab.host.clone();
    lab.spawn_in(&host, &["socat", "-T", "2", "UDP4-RECVFROM:9999,bind=127.0.0.1,fork", "PIPE"]);
    lab.wait_udp_listening(&host, 9999);
    let p = attach(&mut lab, &["--configure", "--disable-host-loopback"]);
    // ICMP "administratively prohibited", which Linux reports as EHOSTUNREACH.
    let (got, err) = udp_exchange(&lab, &lab.guest, "10.0.2.2:9999", b"let me in");
    assert!(got.is_empty(), "reached the host's loopback: {}", text(&got));
    assert!(err.contains("No route to host"), "{err}");
    // ...and nothing more: the gateway still answers pings, the internet is still there.
    let out = ping(&lab, &lab.guest, &["-c", "2", "-i", "0.2", "10.0.2.2"]);
    assert!(text(&out.stdout).contains("2 received"), "{}", text(&out.stdout));
    let (got, err) = udp_exchange(&lab, &lab.guest, "198.51.100.1:7", b"still out there");
    assert_eq!(got, b"still out there", "{err}");
    stop(&mut lab, p);
}

#[test]
fn restricted_confines_the_guest_but_keeps_services_and_forwards() {
    let Some(mut lab) = lab_with("restricted_confines_the_guest_but_keeps_services_and_forwards", &NAT_TOOLS) else {
        return;
    };
    lab.start_internet_services();
    let p = attach(&mut lab, &["--restricted", "--hostfwd", "udp:127.0.0.1:5555-:7777"]);
    // DHCP works, without router or DNS.
    let lease = lab.dhcp();
    assert!(lease.contains("ip=10.0.2.15 "), "{lease}");
    assert!(lease.contains("router= ") && lease.contains("dns= "), "{lease}");
    // Give the guest the route anyway: slirp must be what stops it.
    sh(&["ip", "-n", &lab.guest, "route", "add", "default", "via", "10.0.2.2"]);

    let out = dig(&lab, "example.test");
    let answer = text(&out.stdout);
    assert!(!out.status.success() && !answer.contains("198.51.100.80"), "dig answered: {answer}");
    assert!(answer.contains("timed out"), "{answer}");
    let (got, _) = udp_exchange(&lab, &lab.guest, "198.51.100.1:7", b"escape");
    assert!(got.is_empty(), "UDP echo answered in restricted mode");
    let out = ping(&lab, &lab.guest, &["-c", "2", "-i", "0.2", "198.51.100.1"]);
    assert!(!out.status.success(), "ping answered: {}", text(&out.stdout));
    let out = ping(&lab, &lab.guest, &["-c", "2", "-i", "0.2", "10.0.2.2"]);
    assert!(text(&out.stdout).contains("2 received"), "{}", text(&out.stdout));

    // The forward still reaches the guest (the DHCP address: the guest was not configured by us).
    let guest = lab.guest.clone();
    lab.spawn_in(&guest, &["socat", "-T", "2", "UDP4-RECVFROM:7777,fork", "PIPE"]);
    lab.wait_udp_listening(&guest, 7777);
    let (got, err) = udp_exchange(&lab, &lab.host, "127.0.0.1:5555", b"forwarded");
    assert_eq!(got, b"forwarded", "{err}");

    let log = stop(&mut lab, p);
    assert!(log.contains("forwarding udp 127.0.0.1:5555 to 10.0.2.15:7777"), "{log}");
    assert!(log.contains(" restricted="), "restricted drops are counted: {log}");
}

#[test]
fn udp_hostfwd_reaches_the_configured_guest() {
    let Some(mut lab) = lab_with("udp_hostfwd_reaches_the_configured_guest", &NAT_TOOLS) else {
        return;
    };
    let p = attach(
        &mut lab,
        &["--configure", "--hostfwd", "udp::5353-:53", "--hostfwd", "udp:127.0.0.1:6000-10.0.2.100:6001"],
    );
    let guest = lab.guest.clone();
    lab.spawn_in(&guest, &["socat", "-T", "2", "UDP4-RECVFROM:53,fork", "PIPE"]);
    lab.spawn_in(&guest, &["socat", "-T", "2", "UDP4-RECVFROM:6001,fork", "PIPE"]);
    lab.wait_udp_listening(&guest, 53);
    lab.wait_udp_listening(&guest, 6001);
    // Replies leave through the rule's socket: the client's connected socket accepts them.
    let data = pattern(4000);
    let (got, err) = udp_exchange(&lab, &lab.host, "127.0.0.1:5353", &data);
    assert!(got == data, "4000-byte datagram through the forward: got {} bytes: {err}", got.len());
    let (got, err) = udp_exchange(&lab, &lab.host, "127.0.0.1:6000", b"second rule");
    assert_eq!(got, b"second rule", "{err}");
    // From the stand-in internet side of the host (a non-loopback client address).
    let (got, err) = udp_exchange(&lab, &lab.inet, "198.51.100.2:5353", b"from outside");
    assert_eq!(got, b"from outside", "{err}");

    let started = Instant::now();
    let log = stop(&mut lab, p);
    assert!(started.elapsed() < Duration::from_secs(5));
    // With --configure, rules without a guest address go to the address slirp gave (.100).
    assert!(log.contains("forwarding udp 0.0.0.0:5353 to 10.0.2.100:53"), "{log}");
    assert!(log.contains("forwarding udp 127.0.0.1:6000 to 10.0.2.100:6001"), "{log}");
}

#[test]
fn hostfwd_conflict_is_a_one_line_error() {
    let Some(mut lab) = lab_with("hostfwd_conflict_is_a_one_line_error", &NAT_TOOLS) else {
        return;
    };
    let host = lab.host.clone();
    lab.spawn_in(&host, &["socat", "UDP4-RECVFROM:5300,bind=127.0.0.1", "PIPE"]);
    lab.wait_udp_listening(&host, 5300);
    let netns = format!("/run/netns/{}", lab.guest);
    let out = lab.exec_in(&host, &[common::SLIRP, "attach", "--netns", &netns, "--hostfwd", "udp:127.0.0.1:5300-:53"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("slirp: --hostfwd udp:127.0.0.1:5300-:53: host socket: address in use"), "{err}");
}
