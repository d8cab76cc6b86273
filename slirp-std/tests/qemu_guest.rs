//! A real QEMU guest (a Debian kernel and a busybox initramfs, virtio-net, emulated by TCG) on
//! `slirp qemu`, in the lab of `common`: DHCP, a ping of the gateway, a name through the DNS
//! alias, an HTTP download checked by hash, and a forward from the host to the guest's HTTP
//! server. Over QEMU's stream socket (`-netdev stream`). slirp and QEMU run in the lab's host
//! namespace; the guest's only network is slirp.
//!
//! The guest is built by `tests-qemu/make-guest.sh DIR` (`.ci/run` does; `SLIRP_GUEST_DIR`
//! names DIR, default `target/qemu-guest` of the workspace). Needs root, the lab's tools,
//! `qemu-system-x86_64` (Debian `qemu-system-x86`) and python3; under CI a machine without them
//! fails.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{lab_with, Lab, NAT_TOOLS};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Where the guest's kernel and initramfs are, if built.
fn guest_dir() -> Result<PathBuf, String> {
    let dir = std::env::var_os("SLIRP_GUEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/qemu-guest"));
    if dir.join("vmlinuz").is_file() && dir.join("initrd.gz").is_file() {
        Ok(dir)
    } else {
        Err(format!("no guest in {} (run tests-qemu/make-guest.sh {0})", dir.display()))
    }
}

/// The lab, the guest, and a file served by the stand-in internet (its sha256), or `None`
/// (skipped, or under CI a panic) when this machine cannot run QEMU guests.
fn setup(test: &str) -> Option<(Lab, PathBuf, String)> {
    let tools =
        [NAT_TOOLS[0], NAT_TOOLS[1], NAT_TOOLS[2], ("qemu-system-x86_64", "qemu-system-x86"), ("python3", "python3")];
    let mut lab = lab_with(test, &tools)?;
    let guest = match guest_dir() {
        Ok(d) => d,
        Err(why) if std::env::var_os("CI").is_some() => panic!("{test}: {why}"),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            return None;
        }
    };
    lab.start_internet_services();
    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8).collect();
    std::fs::write(www.join("blob"), &body).unwrap();
    let hash = text(&Command::new("sha256sum").arg(www.join("blob")).output().unwrap().stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let inet = lab.inet.clone();
    let www_s = www.display().to_string();
    lab.spawn_in(&inet, &["python3", "-m", "http.server", "8000", "--bind", "198.51.100.1", "--directory", &www_s]);
    lab.wait_tcp_listening(&inet, 8000);
    Some((lab, guest, hash))
}

/// Starts QEMU in the host namespace with `netdev` (and `extra` arguments); returns its index
/// and the console log's path.
fn start_qemu(lab: &mut Lab, guest: &std::path::Path, netdev: &[String]) -> (usize, PathBuf) {
    let console = lab.dir.join("console.log");
    let append = "console=ttyS0 panic=-1 quiet slirp.ping=10.0.2.2 slirp.name=example.test \
                  slirp.fetch=http://198.51.100.1:8000/blob slirp.serve=1";
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.host, "qemu-system-x86_64", "-nodefaults", "-no-reboot", "-display", "none"])
        .args(["-m", "256", "-smp", "1"])
        .arg("-kernel")
        .arg(guest.join("vmlinuz"))
        .arg("-initrd")
        .arg(guest.join("initrd.gz"))
        .args(["-append", append])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args(netdev);
    let i = lab.spawn(cmd);
    (i, console)
}

/// Waits until the console shows `line` (a prefix); returns the console so far.
fn wait_console(lab: &mut Lab, qemu: usize, console: &std::path::Path, line: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let log = std::fs::read_to_string(console).unwrap_or_default();
        if log.lines().any(|l| l.starts_with(line)) {
            return log;
        }
        assert!(lab.running(qemu), "QEMU ended: {}\nconsole:\n{log}", lab.stderr_of(qemu));
        assert!(Instant::now() < deadline, "no {line:?} on the console within {limit:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn value<'a>(log: &'a str, key: &str) -> &'a str {
    log.lines().find_map(|l| l.strip_prefix(key)).map(str::trim).unwrap_or("")
}

/// The checks the guest made, and the forward into it.
fn check_guest(lab: &mut Lab, qemu: usize, console: &std::path::Path, hash: &str, mtu: u16) {
    let log = wait_console(lab, qemu, console, "SLIRP-DONE", Duration::from_secs(180));
    let dhcp = value(&log, "SLIRP-DHCP");
    assert_eq!(dhcp, format!("ip=10.0.2.15 router=10.0.2.2 dns=10.0.2.3 mtu={mtu}"), "DHCP\n{log}");
    assert_eq!(value(&log, "SLIRP-PING"), "ok 10.0.2.2", "{log}");
    assert_eq!(value(&log, "SLIRP-DNS"), "198.51.100.80", "{log}");
    assert_eq!(value(&log, "SLIRP-HTTP"), hash, "downloaded file's hash\n{log}");
    assert!(log.contains("SLIRP-SERVING"), "{log}");
    let got = lab.exec_in(&lab.host, &["curl", "-sS", "--max-time", "20", "http://127.0.0.1:18080/"]);
    assert_eq!(text(&got.stdout).trim(), "guest-http-ok", "forward into the guest: {}", text(&got.stderr));
}

/// `slirp qemu --socket` with `extra` options and a guest on it; `mtu` is what DHCP must offer.
fn stream_guest(test: &str, extra: &[&str], mtu: u16) {
    let Some((mut lab, guest, hash)) = setup(test) else {
        return;
    };
    let sock = lab.dir.join("slirp.sock");
    let mut args = vec!["qemu", "--socket", sock.to_str().unwrap(), "--hostfwd", "tcp:127.0.0.1:18080-:80"];
    args.extend_from_slice(extra);
    let s = lab.slirp(&args);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "no socket: {}", lab.stderr_of(s));
        std::thread::sleep(Duration::from_millis(20));
    }
    let netdev = vec![
        "-netdev".to_string(),
        format!("stream,id=n0,server=off,addr.type=unix,addr.path={}", sock.display()),
        "-device".into(),
        "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56".into(),
    ];
    let (qemu, console) = start_qemu(&mut lab, &guest, &netdev);
    check_guest(&mut lab, qemu, &console, &hash, mtu);
    lab.stop(qemu, rustix::process::Signal::KILL);
    let (status, log) = lab.stop(s, rustix::process::Signal::TERM);
    assert!(status.success(), "slirp exited {status:?}: {log}");
}

#[test]
fn qemu_guest_over_the_stream_socket() {
    stream_guest("qemu_guest_over_the_stream_socket", &[], 1500);
}

/// QEMU's stream socket carries no offloads: a large MTU, told by DHCP (option 26), is what
/// makes the guest send large frames through it.
#[test]
fn qemu_guest_over_the_stream_socket_with_a_large_mtu() {
    stream_guest("qemu_guest_over_the_stream_socket_with_a_large_mtu", &["--mtu", "65520"], 65520);
}
