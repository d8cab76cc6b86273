//! The control API (`--api-socket`) of a real `slirp attach` in the lab of `common`: a UDP
//! forward and a guest forward added, listed, used and removed while slirp runs. slirp only ever runs in the lab's
//! host namespace (which routes nowhere but the stand-in internet). Needs root, the lab's tools
//! and socat (and dnsmasq for the stand-in internet's services); under CI a machine without them
//! fails this test.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{lab_with, Lab, NAT_TOOLS};
use rustix::process::Signal;
use serde_json::{json, Value};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
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

/// Sends `payload` as one UDP datagram from namespace `ns` to `dst` (a connected socket: only a
/// reply from `dst` is accepted); returns the reply (empty: none) and socat's stderr. Tried up to
/// three times while nothing comes back (the first datagram may wait for ARP).
fn udp_exchange(lab: &Lab, ns: &str, dst: &str, payload: &[u8]) -> (Vec<u8>, String) {
    let input = lab.dir.join("udp-in");
    let output = lab.dir.join("udp-out");
    std::fs::write(&input, payload).expect("payload file");
    let script = format!("socat -t 1 -T 2 STDIO UDP4:{dst} < {} > {}", input.display(), output.display());
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

#[test]
fn api_socket_adds_lists_and_removes_a_udp_forward_live() {
    let Some(mut lab) = lab_with("api_socket_adds_lists_and_removes_a_udp_forward_live", &NAT_TOOLS) else {
        return;
    };
    lab.start_internet_services();
    let sock = lab.dir.join("api.sock");
    let netns = format!("/run/netns/{}", lab.guest);
    let p = lab.slirp(&["attach", "--netns", &netns, "--configure", "--api-socket", sock.to_str().unwrap()]);
    lab.wait_for_guest_link("tap0");
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&sock).is_err() {
        assert!(Instant::now() < deadline, "no API socket: {}", lab.stderr_of(p));
        std::thread::sleep(Duration::from_millis(20));
    }
    let guest = lab.guest.clone();
    lab.spawn_in(&guest, &["socat", "-T", "2", "UDP4-RECVFROM:7777,fork", "PIPE"]);
    lab.wait_udp_listening(&guest, 7777);

    // Nothing forwards yet: the host's kernel refuses.
    let (got, err) = udp_exchange(&lab, &lab.host, "127.0.0.1:6000", b"too early");
    assert!(got.is_empty() && err.contains("Connection refused"), "{err}");

    // Added live; no guest address: the one --configure gave the guest.
    let v = api(
        &sock,
        r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_addr":"127.0.0.1","host_port":6000,"guest_port":7777}}"#,
    );
    let id = v["return"]["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
    let (got, err) = udp_exchange(&lab, &lab.host, "127.0.0.1:6000", b"through the API's forward");
    assert_eq!(got, b"through the API's forward", "{err}");
    // A second rule to the same guest endpoint is refused, with the core's reason.
    let v = api(&sock, r#"{"execute":"add_hostfwd","arguments":{"proto":"udp","host_port":6001,"guest_port":7777}}"#);
    assert!(v["error"]["desc"].as_str().is_some_and(|d| d.contains("already forwards to this guest port")), "{v}");
    let v = api(&sock, r#"{"execute":"list_hostfwd"}"#);
    assert_eq!(
        v,
        json!({"entries":[{"id":id,"proto":"udp","host_addr":"127.0.0.1","host_port":6000,
               "guest_addr":"10.0.2.100","guest_port":7777}]})
    );

    // A flow of the guest's own shows in list_connections; the counters in stats.
    let (got, err) = udp_exchange(&lab, &lab.guest, "198.51.100.1:7", b"out and back");
    assert_eq!(got, b"out and back", "{err}");
    let v = api(&sock, r#"{"execute":"list_connections"}"#);
    let conns = v["return"]["connections"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert!(
        conns.iter().any(|c| c["proto"] == "udp" && c["guest_addr"] == "10.0.2.100" && c["idle_ms"].is_u64()),
        "{v}"
    );
    let v = api(&sock, r#"{"execute":"stats"}"#);
    assert!(v["return"]["rx_frames"].as_u64().is_some_and(|n| n >= 2), "{v}");
    assert!(v["return"]["drops"].is_object(), "{v}");

    // Removed live: the port is the kernel's again.
    let v = api(&sock, &format!(r#"{{"execute":"remove_hostfwd","arguments":{{"id":{id}}}}}"#));
    assert_eq!(v, json!({"return":{}}));
    let (got, err) = udp_exchange(&lab, &lab.host, "127.0.0.1:6000", b"too late");
    assert!(got.is_empty() && err.contains("Connection refused"), "reached the guest after removal: {err}");
    assert_eq!(api(&sock, r#"{"execute":"list_hostfwd"}"#), json!({"entries":[]}));

    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
    assert!(log.contains("api: forwarding udp 127.0.0.1:6000 to 10.0.2.100:7777"), "{log}");
    assert!(log.contains(&format!("api: removed forward {id}")), "{log}");
    assert!(!sock.exists(), "the API socket is removed on exit");
}

#[test]
fn api_socket_adds_lists_and_removes_a_guest_forward_live() {
    let Some(mut lab) = lab_with("api_socket_adds_lists_and_removes_a_guest_forward_live", &NAT_TOOLS) else {
        return;
    };
    let sock = lab.dir.join("api.sock");
    let netns = format!("/run/netns/{}", lab.guest);
    let start = |lab: &mut Lab, sandbox: &str| {
        let args = ["attach", "--netns", &netns, "--configure", "--sandbox", sandbox, "--api-socket"];
        let p = lab.slirp(&[&args[..], &[sock.to_str().unwrap()]].concat());
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&sock).is_err() {
            assert!(Instant::now() < deadline, "no API socket: {}", lab.stderr_of(p));
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    };
    // In the sandbox (the default) a command target could never run: refused, and said why.
    let p = start(&mut lab, "full");
    let refused = api(
        &sock,
        r#"{"execute":"add_guestfwd","arguments":{"guest_addr":"10.0.2.210","guest_port":5000,"target":"cmd:tr a-z A-Z"}}"#,
    );
    assert!(refused["error"]["desc"].as_str().unwrap().contains("sandbox"), "{refused}");
    assert_eq!(api(&sock, r#"{"execute":"list_guestfwd"}"#), json!({"entries":[]}));
    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");

    let p = start(&mut lab, "off");
    lab.wait_for_guest_link("tap0");
    let guest = lab.guest.clone();
    let ask = |lab: &Lab| {
        lab.exec_in(&guest, &["sh", "-c", "echo api guestfwd | socat -T 3 - TCP:10.0.2.210:5000,connect-timeout=2"])
    };
    assert!(text(&ask(&lab).stdout).trim().is_empty(), "nothing there before the rule");

    let added = api(
        &sock,
        r#"{"execute":"add_guestfwd","arguments":{"guest_addr":"10.0.2.210","guest_port":5000,"target":"cmd:tr a-z A-Z"}}"#,
    );
    let id = added["return"]["id"].as_u64().unwrap_or_else(|| panic!("{added}"));
    assert_eq!(text(&ask(&lab).stdout).trim(), "API GUESTFWD");
    let list = api(&sock, r#"{"execute":"list_guestfwd"}"#);
    assert_eq!(
        list,
        json!({"entries":[{"id":id,"guest_addr":"10.0.2.210","guest_port":5000,"target":"cmd:tr a-z A-Z"}]})
    );
    // Conflicts and bad targets are errors.
    let dup = api(
        &sock,
        r#"{"execute":"add_guestfwd","arguments":{"guest_addr":"10.0.2.210","guest_port":5000,"target":"cmd:cat"}}"#,
    );
    assert!(dup["error"]["desc"].as_str().is_some(), "{dup}");
    let bad = api(
        &sock,
        r#"{"execute":"add_guestfwd","arguments":{"guest_addr":"10.0.2.211","guest_port":1,"target":"chardev:c"}}"#,
    );
    assert!(bad["error"]["desc"].as_str().unwrap().contains("target"), "{bad}");
    assert_eq!(
        api(&sock, &format!(r#"{{"execute":"remove_guestfwd","arguments":{{"id":{id}}}}}"#)),
        json!({"return":{}})
    );
    assert_eq!(api(&sock, r#"{"execute":"list_guestfwd"}"#), json!({"entries":[]}));
    assert!(text(&ask(&lab).stdout).trim().is_empty(), "gone after removal");
    let (status, log) = lab.stop(p, Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
}
