//! The control API through a running [`EventLoop`]: a unix socket in a scratch directory, a
//! socketpair as the guest link (nothing leaves the process but UDP on 127.0.0.1), clients on
//! the test thread. No namespaces, no root.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use slirp_core::{Config, Slirp};
use slirp_std::api::{ApiServer, CONNECTION_TIMEOUT, MAX_CONNECTIONS, MAX_REQUEST};
use slirp_std::{EventLoop, Exit, GuestLink, StdHost};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A running loop with an API socket; stopped and cleaned up on drop.
struct Running {
    dir: PathBuf,
    sock: PathBuf,
    guest: std::fs::File,
    stop: slirp_std::StopHandle,
    thread: Option<std::thread::JoinHandle<Exit>>,
}

impl Running {
    fn start() -> Running {
        let dir = std::env::temp_dir().join(format!(
            "slirp-api-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("api.sock");
        let (ours, guest) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::net::sockopt::set_socket_timeout(
            &guest,
            rustix::net::sockopt::Timeout::Recv,
            Some(Duration::from_secs(5)),
        )
        .unwrap();
        let slirp = Slirp::new(Config::default(), slirp_std::default_storage()).unwrap();
        let mut ev = EventLoop::new(slirp, StdHost::default(), GuestLink::datagram(ours).unwrap()).unwrap();
        ev.serve_api(ApiServer::bind(&sock, Ipv4Addr::new(10, 0, 2, 100)).unwrap()).unwrap();
        let stop = ev.stop_handle();
        let thread = std::thread::spawn(move || ev.run().unwrap());
        Running { dir, sock, guest: std::fs::File::from(guest), stop, thread: Some(thread) }
    }

    /// Sends `req` on a fresh connection and returns the answer line, parsed.
    fn ask(&self, req: &str) -> Value {
        let line = exchange(&self.sock, req.as_bytes(), false);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "one line: {line:?}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
    }

    /// The guest answers an ARP request for the gateway: the loop still serves the link.
    fn assert_link_alive(&mut self) {
        self.guest.write_all(&arp_request()).unwrap();
        let mut buf = [0u8; 2048];
        loop {
            let n = self.guest.read(&mut buf).expect("the loop answers the guest");
            let f = &buf[..n];
            if f.len() >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 2] && f[28..32] == [10, 0, 2, 2] {
                return;
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.stop().unwrap();
        if let Some(t) = self.thread.take() {
            let exit = t.join();
            if !std::thread::panicking() {
                assert!(matches!(exit, Ok(Exit::Stopped)), "{exit:?}");
                assert!(!self.sock.exists(), "the socket file is removed when the loop goes");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One connection: writes `req` (then half-closes, if `shut`), reads to EOF.
fn exchange(sock: &Path, req: &[u8], shut: bool) -> String {
    let mut s = UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).unwrap();
    if shut {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// An ARP request from 52:54:00:12:34:56 / 10.0.2.15 for 10.0.2.2.
fn arp_request() -> Vec<u8> {
    let mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2]);
    f
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn desc(v: &Value) -> &str {
    v["error"]["desc"].as_str().unwrap_or_else(|| panic!("not an error: {v}"))
}

#[test]
fn add_list_remove_a_udp_forward_live() {
    let mut r = Running::start();
    let port = free_udp_port();
    let v = r.ask(&format!(
        r#"{{"execute":"add_hostfwd","arguments":{{"proto":"udp","host_addr":"127.0.0.1","host_port":{port},"guest_port":5353}}}}"#
    ));
    let id = v["return"]["id"].as_u64().unwrap_or_else(|| panic!("{v}"));
    let v = r.ask(r#"{"execute":"list_hostfwd"}"#);
    assert_eq!(
        v,
        json!({"entries":[{"id":id,"proto":"udp","host_addr":"127.0.0.1","host_port":port,
               "guest_addr":"10.0.2.100","guest_port":5353}]})
    );

    // The forward is live: a host datagram to it makes slirp look for the guest (ARP for .100).
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.send_to(b"hello guest", ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 2048];
    let mut asked = false;
    while !asked {
        let n = r.guest.read(&mut buf).expect("an ARP request for the forward's guest");
        let f = &buf[..n];
        asked = f.len() >= 42 && f[12..14] == [8, 6] && f[20..22] == [0, 1] && f[38..42] == [10, 0, 2, 100];
    }
    let v = r.ask(r#"{"execute":"stats"}"#);
    assert_eq!(v["return"]["udp_forwards"], 1, "{v}");
    assert!(v["return"]["arp_requests_sent"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(r.ask(r#"{"execute":"list_connections"}"#), json!({"return":{"connections":[]}}));

    // Half-closing after the request works as well as not.
    let rm = format!(r#"{{"execute":"remove_hostfwd","arguments":{{"id":{id}}}}}"#);
    assert_eq!(exchange(&r.sock, rm.as_bytes(), true), "{\"return\":{}}\n");
    assert_eq!(r.ask(r#"{"execute":"list_hostfwd"}"#), json!({"entries":[]}));
    // The host port is free again.
    UdpSocket::bind(("127.0.0.1", port)).expect("the forward's socket is closed");
    assert!(desc(&r.ask(&rm)).contains(&format!("no forward has id {id}")));
    r.assert_link_alive();
}

#[test]
fn garbage_huge_and_crowds_get_errors_and_the_loop_goes_on() {
    let mut r = Running::start();
    // Garbage: an error, at once, even though the client keeps its side open.
    let v = r.ask("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(desc(&v).contains("must be a JSON object"), "{v}");
    // Half-sent, then the client closes its side: an error rather than a wait.
    let line = exchange(&r.sock, br#"{"execute":"add_hostfwd","argu"#, true);
    assert!(line.contains("incomplete JSON request"), "{line}");
    let line = exchange(&r.sock, b"", true);
    assert!(line.contains("empty request"), "{line}");
    let line = exchange(&r.sock, br#"{"execute":"list_hostfwd"} {"execute":"stats"}"#, false);
    assert_eq!(line, "{\"entries\":[]}\n", "one request per connection: the first value");
    let v = r.ask(
        r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":8080,"guest_addr":"192.168.1.1","guest_port":80}}"#,
    );
    assert!(desc(&v).contains("outside the virtual network"), "{v}");

    // Huge: an error once the limit is passed (the client may still be writing: it is not
    // read any further, so its write fails or stops; the answer is there either way).
    let mut s = UnixStream::connect(&r.sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut huge = b"{\"execute\":\"".to_vec();
    huge.resize(MAX_REQUEST * 4, b'x');
    let _ = s.write_all(&huge);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.contains("larger than 65536 bytes"), "{out:?}");

    // A crowd: MAX_CONNECTIONS half-sent requests hold every slot; one more is turned away,
    // and the loop keeps serving the guest meanwhile.
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut s = UnixStream::connect(&r.sock).unwrap();
        s.write_all(br#"{"execute":"sta"#).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        held.push(s);
    }
    r.assert_link_alive();
    let started = Instant::now();
    let mut crowded = String::new();
    // The extra one may be accepted before all the held ones are: ask until turned away.
    while !crowded.contains("too many API connections") {
        // Read without writing: the one turned away is answered at once.
        let mut s = UnixStream::connect(&r.sock).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        crowded.clear();
        let _ = s.read_to_string(&mut crowded);
        assert!(started.elapsed() < Duration::from_secs(3), "{crowded}");
    }
    assert!(crowded.ends_with('\n') && serde_json::from_str::<Value>(&crowded).is_ok(), "{crowded:?}");
    r.assert_link_alive();

    // The half-sent ones are closed after the timeout, without an answer; then all is well.
    for mut s in held {
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("closed by slirp");
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    }
    let waited = started.elapsed();
    assert!(waited >= CONNECTION_TIMEOUT - Duration::from_millis(500), "{waited:?}");
    assert!(waited < CONNECTION_TIMEOUT + Duration::from_secs(3), "{waited:?}");
    let v = r.ask(r#"{"execute":"stats"}"#);
    assert!(v["return"]["rx_frames"].as_u64().unwrap() >= 2, "{v}");
    r.assert_link_alive();
}

#[test]
fn a_stale_socket_is_replaced_and_other_files_are_not() {
    let dir = std::env::temp_dir().join(format!("slirp-api-stale-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("api.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let server = ApiServer::bind(&sock, Ipv4Addr::UNSPECIFIED).expect("stale socket replaced");
    drop(server);
    assert!(!sock.exists());
    let file = dir.join("notasocket");
    std::fs::write(&file, "keep me").unwrap();
    let e = ApiServer::bind(&file, Ipv4Addr::UNSPECIFIED).err().expect("refused");
    assert!(e.to_string().contains("not a socket"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep me");
    let _ = std::fs::remove_dir_all(&dir);
}
