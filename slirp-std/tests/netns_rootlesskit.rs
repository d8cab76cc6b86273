//! rootlesskit (what rootless Docker, nerdctl and k3s run on) with our binary as its
//! slirp4netns: `rootlesskit --net=slirp4netns --slirp4netns-binary=OURS
//! --port-driver=slirp4netns`, run by an unprivileged user with subordinate uid and gid ranges,
//! inside the lab's host namespace. The command in rootlesskit's namespaces resolves a name
//! through the DNS alias, fetches a file from the stand-in internet and checks its hash, and
//! serves a port that `rootlessctl add-ports` publishes (rootlesskit adds it through our API
//! socket) and the host reaches. Needs root, the lab's tools, rootlesskit, curl, python3 and
//! the user `slirp-rootless` with /etc/subuid and /etc/subgid ranges (`.ci/run` makes it);
//! under CI a machine without them fails.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{lab_with, slirp_bin, NAT_TOOLS};

/// The unprivileged user the test runs rootlesskit as.
const USER: &str = "slirp-rootless";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// uid and gid of `USER`, if it exists with subordinate ranges.
fn rootless_user() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, USER]).output().ok()?;
        text(&out.stdout).trim().parse().ok()
    };
    let (Some(uid), Some(gid)) = (id("-u"), id("-g")) else {
        return Err(format!("no user {USER} (useradd {USER}; usermod --add-subuids/--add-subgids)"));
    };
    for f in ["/etc/subuid", "/etc/subgid"] {
        let ranges = std::fs::read_to_string(f).unwrap_or_default();
        if !ranges.lines().any(|l| l.starts_with(&format!("{USER}:"))) {
            return Err(format!("{USER} has no range in {f}"));
        }
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata("/dev/net/tun").map(|m| m.permissions().mode()).unwrap_or(0);
    if mode & 0o006 != 0o006 {
        return Err(format!(
            "/dev/net/tun is mode {:o} (chmod 0666 /dev/net/tun, as distributions ship it)",
            mode & 0o777
        ));
    }
    Ok((uid, gid))
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

#[test]
fn rootlesskit_with_our_slirp4netns_fetches_resolves_and_publishes_a_port() {
    let tools = [
        NAT_TOOLS[0],
        NAT_TOOLS[1],
        NAT_TOOLS[2],
        ("rootlesskit", "rootlesskit"),
        ("rootlessctl", "rootlesskit"),
        ("newuidmap", "uidmap"),
        ("curl", "curl"),
        ("python3", "python3"),
    ];
    let Some(mut lab) = lab_with("rootlesskit_with_our_slirp4netns_fetches_resolves_and_publishes_a_port", &tools)
    else {
        return;
    };
    let (uid, gid) = match rootless_user() {
        Ok(ids) => ids,
        Err(why) if std::env::var_os("CI").is_some() => panic!("rootlesskit test cannot run: {why}"),
        Err(why) => {
            eprintln!("SKIPPED rootlesskit test: {why}");
            return;
        }
    };
    lab.start_internet_services();
    // A file to fetch from the stand-in internet, over HTTP.
    let www = lab.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(www.join("blob"), &body).unwrap();
    let want_hash = text(&Command::new("sha256sum").arg(www.join("blob")).output().unwrap().stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let inet = lab.inet.clone();
    let www_s = www.display().to_string();
    lab.spawn_in(&inet, &["python3", "-m", "http.server", "8000", "--bind", "198.51.100.1", "--directory", &www_s]);
    lab.wait_tcp_listening(&inet, 8000);

    // rootlesskit's state and the child's files, owned by the user.
    let work = lab.dir.join("rk");
    std::fs::create_dir_all(&work).unwrap();
    chown(&lab.dir, uid, gid);
    chown(&work, uid, gid);
    let state = work.join("state");
    // A copy, not a link: the user must be able to run it wherever the build lives (a
    // checkout under /root is closed to others).
    let link = lab.dir.join("slirp4netns");
    std::fs::copy(slirp_bin(), &link).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&link, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = work.join("child.out");
    let done = work.join("done");
    let script = format!(
        "set -e\n\
         dig +short +time=3 +tries=2 example.test > {o}.dns\n\
         curl -sS --max-time 20 http://198.51.100.1:8000/blob | sha256sum > {o}.hash\n\
         socat TCP-LISTEN:80,reuseaddr,fork SYSTEM:'echo published-from-rootlesskit' & server=$!\n\
         echo up > {o}.ready\n\
         while [ ! -e {done} ]; do sleep 0.1; done\n\
         kill $server 2>/dev/null || true\n",
        o = out.display(),
        done = done.display(),
    );
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &lab.host,
        "setpriv",
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--init-groups",
    ])
    .args(["env", &format!("HOME={}", work.display()), &format!("XDG_RUNTIME_DIR={}", work.display())])
    .arg("rootlesskit")
    .arg("--net=slirp4netns")
    .arg(format!("--slirp4netns-binary={}", link.display()))
    .args(["--slirp4netns-sandbox=true", "--slirp4netns-seccomp=true"])
    .arg("--port-driver=slirp4netns")
    .arg("--disable-host-loopback")
    .arg("--copy-up=/etc")
    .arg(format!("--state-dir={}", state.display()))
    .args(["sh", "-c", &script]);
    let rk = lab.spawn(cmd);
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = Path::new(&format!("{}.ready", out.display())).to_path_buf();
    while !ready.exists() {
        assert!(lab.running(rk), "rootlesskit ended early: {}", lab.stderr_of(rk));
        assert!(Instant::now() < deadline, "the child never got going: {}", lab.stderr_of(rk));
        std::thread::sleep(Duration::from_millis(50));
    }
    let read = |ext: &str| std::fs::read_to_string(format!("{}.{ext}", out.display())).unwrap_or_default();
    assert_eq!(read("dns").trim(), "198.51.100.80", "name through the DNS alias: {}", lab.stderr_of(rk));
    assert_eq!(read("hash").split_whitespace().next(), Some(want_hash.as_str()), "fetched file's hash");

    // Publish the child's port 80 on the host's 127.0.0.1:18090 through rootlesskit's API, which
    // adds it through our slirp4netns API socket.
    let ctl = |args: &[&str]| {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &lab.host,
            "setpriv",
            &format!("--reuid={uid}"),
            &format!("--regid={gid}"),
            "--init-groups",
        ])
        .arg("rootlessctl")
        .arg(format!("--socket={}", state.join("api.sock").display()))
        .args(args);
        common::run_with_limit(c, Duration::from_secs(20))
    };
    let added = ctl(&["add-ports", "127.0.0.1:18090:80/tcp"]);
    assert!(added.status.success(), "add-ports: {}{}", text(&added.stdout), text(&added.stderr));
    let listed = ctl(&["list-ports"]);
    assert!(text(&listed.stdout).contains("18090"), "list-ports: {}", text(&listed.stdout));
    let got = lab.exec_in(&lab.host, &["socat", "-T", "5", "-", "TCP:127.0.0.1:18090,connect-timeout=5"]);
    assert_eq!(text(&got.stdout).trim(), "published-from-rootlesskit", "{}", text(&got.stderr));
    let id = text(&added.stdout).split_whitespace().next().unwrap_or("1").to_string();
    let removed = ctl(&["remove-ports", &id]);
    assert!(removed.status.success(), "remove-ports: {}{}", text(&removed.stdout), text(&removed.stderr));
    let gone = lab.exec_in(&lab.host, &["socat", "-T", "2", "-", "TCP:127.0.0.1:18090,connect-timeout=2"]);
    assert!(!text(&gone.stdout).contains("published"), "still published after remove-ports");

    std::fs::write(&done, "").unwrap();
    let (status, log) = lab.wait(rk, Duration::from_secs(20));
    assert!(status.success(), "rootlesskit exited {status:?}: {log}");
}
