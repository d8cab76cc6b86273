#!/usr/bin/env python3
"""The benchmark harness of issue 6: slirp next to slirp4netns and pasta, alternately, in one run.

Run it through bench/run.sh (which builds slirp first): sudo bench/run.sh [--quick] [options]

The lab (made here, deleted on exit, on failure and on Ctrl-C):
  inet  - the stand-in internet, 198.51.100.1 and 2001:db8:1::1: iperf3 and the python servers of
          bench/tools.py, one instance per address family
  host  - 198.51.100.2 and 2001:db8:1::2, routes only to inet (checked before anything runs: IPv4
          198.51.100.0/24, 203.0.113.0/24; IPv6 the documentation prefix 2001:db8::/32 and fe80::/64),
          its own resolv.conf (nameserver 198.51.100.1); every NAT runs here, never in the root
          namespace; iperf3 servers on its 127.0.0.1 and ::1 for the host-loopback test
  guest - a fresh namespace per measured configuration, wired by the NAT under test (or, for the
          ceiling, by a plain veth straight to inet)
Every process is started through `ip netns exec NS` (which execs, so the PID is the tool's), and
killed by that PID; namespaces are deleted by name.
"""
import argparse
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TOOLS = os.path.join(HERE, "tools.py")
INET_ADDR = "198.51.100.1"
INET_ADDR6 = "2001:db8:1::1"
HOST_ADDR6 = "2001:db8:1::2"
ALLOWED = [IPv4Network("198.51.100.0/24"), IPv4Network("203.0.113.0/24")]
ALLOWED6 = [IPv6Network("2001:db8::/32")]
PORT_IPERF, PORT_IPERF_LO, PORT_RR, PORT_CRR, PORT_HOLD = 5201, 5202, 7001, 7002, 7003

IMPLS = ["slirp", "slirp4netns", "pasta", "veth"]
PEERS = ["slirp4netns", "pasta"]
START_COMMIT = ["?", ""]
BINARY = ["?", "?"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(*args, check=True):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


class Lab:
    def __init__(self, keep_logs):
        self.prefix = f"slirpb-{os.getpid()}"
        self.host = f"{self.prefix}-host"
        self.inet = f"{self.prefix}-inet"
        self.dir = f"/tmp/{self.prefix}"
        self.procs = []  # Popen, killed by PID at teardown
        self.namespaces = []
        self.keep_logs = keep_logs
        self.n = 0
        os.makedirs(self.dir, exist_ok=True)

    # -- setup and teardown --------------------------------------------------------------
    def add_ns(self, name):
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def build(self):
        self.add_ns(self.host)
        self.add_ns(self.inet)
        h, i = self.host, self.inet
        for ns in (h, i):
            # No duplicate address detection on the lab's own link: its addresses work at once.
            for k in ("all", "default"):
                sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"net.ipv6.conf.{k}.accept_dad=0", check=False)
        # The veth pair is born inside the namespaces: nothing appears in the root namespace.
        sh("ip", "-n", h, "link", "add", "inet0", "type", "veth", "peer", "name", "host0", "netns", i)
        sh("ip", "-n", i, "addr", "add", f"{INET_ADDR}/24", "dev", "host0")
        sh("ip", "-n", i, "link", "set", "host0", "up")
        sh("ip", "-n", h, "addr", "add", "198.51.100.2/24", "dev", "inet0")
        sh("ip", "-n", h, "link", "set", "inet0", "up")
        sh("ip", "-n", h, "route", "add", "default", "via", INET_ADDR)
        # IPv6 on the documentation prefix only.
        sh("ip", "-n", i, "-6", "addr", "add", f"{INET_ADDR6}/64", "dev", "host0", "nodad")
        sh("ip", "-n", h, "-6", "addr", "add", f"{HOST_ADDR6}/64", "dev", "inet0", "nodad")
        sh("ip", "-n", h, "-6", "route", "add", "default", "via", INET_ADDR6)
        os.makedirs(f"/etc/netns/{h}", exist_ok=True)
        with open(f"/etc/netns/{h}/resolv.conf", "w") as f:
            f.write(f"nameserver {INET_ADDR}\n")
        self.check_contained()
        for ns in (h, i):
            self.sysctls(ns)

    def sysctls(self, ns):
        # Many short connections: a wide port range and TIME_WAIT reuse, in lab namespaces only.
        for k, v in [("net.ipv4.ip_local_port_range", "1024 65000"), ("net.ipv4.tcp_tw_reuse", "1")]:
            sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w", f"{k}={v}", check=False)

    def check_contained(self):
        """Refuses to go on unless every route of the host namespace stays inside the lab."""

        def allowed(addr, plen):
            net = IPv4Network(f"{addr}/{plen}", strict=False)
            return net.is_loopback or any(net.subnet_of(a) for a in ALLOWED)

        for line in sh("ip", "-n", self.host, "-4", "route", "show", "table", "all").splitlines():
            w = line.split()
            if w and w[0] in ("local", "broadcast"):
                w = w[1:]
            dest = w[0] if w else ""
            if dest == "default":
                via = w[w.index("via") + 1] if "via" in w else None
                if via is None or not allowed(IPv4Address(via), 32):
                    raise SystemExit(f"unsafe: host namespace routes outside the lab: {line}")
            else:
                addr, _, plen = dest.partition("/")
                if not allowed(IPv4Address(addr), int(plen or 32)):
                    raise SystemExit(f"unsafe: host namespace routes outside the lab: {line}")
        def allowed6(addr, plen, local=False):
            net = IPv6Network(f"{addr}/{plen}", strict=False)
            return (net.is_loopback or net == IPv6Network("fe80::/64") or any(net.subnet_of(a) for a in ALLOWED6)
                    or (local and (net.subnet_of(IPv6Network("fe80::/64")) or net == IPv6Network("ff00::/8"))))

        for line in sh("ip", "-n", self.host, "-6", "route", "show", "table", "all").splitlines():
            w = line.split()
            # The local table holds the namespace's own addresses (::1, 2001:db8:1::2, its
            # link-local ones) and ff00::/8 on each link; nothing else may be there either.
            local = bool(w) and w[0] in ("local", "multicast", "anycast")
            if local:
                w = w[1:]
            dest = w[0] if w else ""
            if dest == "default":
                via = w[w.index("via") + 1] if "via" in w else None
                ok = via is not None and allowed6(IPv6Address(via), 128)
            else:
                addr, _, plen = dest.partition("/")
                ok = allowed6(IPv6Address(addr), int(plen or 128), local)
            if not ok:
                raise SystemExit(f"unsafe: host namespace has an IPv6 route outside the lab: {line}")

    def teardown(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        self.procs = []
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces = []
        sh("rm", "-rf", f"/etc/netns/{self.host}", check=False)
        if not self.keep_logs:
            sh("rm", "-rf", self.dir, check=False)

    # -- processes -------------------------------------------------------------------------
    def spawn(self, ns, args, name):
        self.n += 1
        path = os.path.join(self.dir, f"{self.n:03}-{name}.log")
        f = open(path, "w")
        p = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdin=subprocess.DEVNULL, stdout=f,
                             stderr=subprocess.STDOUT)
        p.log_path = path
        self.procs.append(p)
        return p

    def spawn_pipe(self, ns, args):
        p = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        return p

    def stop(self, p):
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def run(self, ns, args, timeout):
        """Runs a client to completion inside `ns`; returns stdout, or None on failure/timeout."""
        p = subprocess.Popen(["ip", "netns", "exec", ns, *args], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(p)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(p)
            log(f"    timed out: {' '.join(args)}")
            return None
        self.procs.remove(p)
        if p.returncode != 0:
            log(f"    failed ({p.returncode}): {' '.join(args)}: {(err or out).strip()[-300:]}")
            return None
        return out

    def wait_listening(self, ns, port, addr, proto="t"):
        local = f"[{addr}]:{port} " if ":" in addr else f"{addr}:{port} "
        for _ in range(200):
            if local in sh("ip", "netns", "exec", ns, "ss", f"-Hnl{proto}"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nothing listens on {local.strip()} in {ns}")

    def start_servers(self):
        """One instance of every server per address family, on the same ports: the IPv4 ones on
        198.51.100.1 (127.0.0.1), the IPv6 ones on 2001:db8:1::1 (::1)."""
        i, h = self.inet, self.host
        want = []
        for fam, addr, lo in (("", INET_ADDR, "127.0.0.1"), ("6", INET_ADDR6, "::1")):
            self.spawn(i, ["iperf3", "-s", "-B", addr, "-p", str(PORT_IPERF)], f"iperf3{fam}-inet")
            self.spawn(h, ["iperf3", "-s", "-B", lo, "-p", str(PORT_IPERF_LO)], f"iperf3{fam}-hostlo")
            for name, port in (("rr-server", PORT_RR), ("crr-server", PORT_CRR), ("hold-server", PORT_HOLD)):
                self.spawn(i, ["python3", TOOLS, name, addr, str(port)], f"{name}{fam}")
            want += [(i, PORT_IPERF, addr), (h, PORT_IPERF_LO, lo), (i, PORT_RR, addr), (i, PORT_CRR, addr),
                     (i, PORT_HOLD, addr)]
        for ns, port, addr in want:
            self.wait_listening(ns, port, addr)

    # -- the guest side --------------------------------------------------------------------
    def guest(self, tag):
        self.n += 1
        name = f"{self.prefix}-g{self.n}-{tag}"
        self.add_ns(name)
        self.sysctls(name)
        return name

    def del_ns(self, name):
        sh("ip", "netns", "del", name, check=False)
        if name in self.namespaces:
            self.namespaces.remove(name)


class Nat:
    """One NAT (or the plain veth) serving one fresh guest namespace."""

    def __init__(self, lab, impl, mtu, args, map_gw=False):
        self.lab, self.impl, self.mtu = lab, impl, mtu
        # With --ipv6 every NAT serves both families, and both are measured in the same guest.
        self.ipv6 = bool(getattr(args, "ipv6", False))
        self.guest = lab.guest(f"{impl}-{mtu}")
        self.proc = None
        self.loopback_addr = "10.0.2.2"
        self.loopback_addr6 = "fd00::2"  # slirp's and slirp4netns' router: the host's ::1
        g = f"/run/netns/{self.guest}"
        v6 = self.ipv6
        if impl == "slirp":
            self.proc = lab.spawn(lab.host, [args.slirp, "attach", "--configure", "--mtu", str(mtu),
                                             "--log-level", "warn", "--tcp-connections", "30000",
                                             *(["--ipv6"] if v6 else []), *args.slirp_args, g], f"slirp-{mtu}")
        elif impl == "slirp4netns":
            self.proc = lab.spawn(lab.host, ["slirp4netns", "--configure", f"--mtu={mtu}", "--netns-type=path",
                                             *(["--enable-ipv6"] if v6 else []), g, "tap0"], f"slirp4netns-{mtu}")
        elif impl == "pasta":
            # --no-map-gw: the gateway 198.51.100.1 (2001:db8:1::1) is the real stand-in internet;
            # with map_gw (for the host-loopback test only) it is the host namespace's loopback
            # instead. Without --ipv6, -4: IPv4 only.
            self.proc = lab.spawn(lab.host, ["pasta", "-f", "--runas", "0", "--config-net",
                                             *([] if v6 else ["-4"]), "-m", str(mtu),
                                             "-t", "none", "-u", "none", "-T", "none", "-U", "none",
                                             *([] if map_gw else ["--no-map-gw"]), "--netns", g],
                                  f"pasta-{mtu}")
            self.loopback_addr = INET_ADDR
            self.loopback_addr6 = INET_ADDR6
        elif impl == "veth":
            sh("ip", "-n", self.guest, "link", "add", "veth0", "mtu", str(mtu), "type", "veth", "peer", "name",
               f"v{lab.n}", "mtu", str(mtu), "netns", lab.inet)
            sh("ip", "-n", lab.inet, "addr", "add", f"10.9.{lab.n % 250}.1/24", "dev", f"v{lab.n}")
            sh("ip", "-n", lab.inet, "link", "set", f"v{lab.n}", "up")
            sh("ip", "-n", self.guest, "addr", "add", f"10.9.{lab.n % 250}.2/24", "dev", "veth0")
            sh("ip", "-n", self.guest, "link", "set", "veth0", "up")
            sh("ip", "-n", self.guest, "route", "add", "default", "via", f"10.9.{lab.n % 250}.1")
            if v6:
                net6 = f"2001:db8:9:{lab.n % 250:x}"
                sh("ip", "-n", lab.inet, "-6", "addr", "add", f"{net6}::1/64", "dev", f"v{lab.n}", "nodad")
                sh("ip", "-n", self.guest, "-6", "addr", "add", f"{net6}::2/64", "dev", "veth0", "nodad")
                sh("ip", "-n", self.guest, "-6", "route", "add", "default", "via", f"{net6}::1")
            self.inet_link = f"v{lab.n}"
            self.loopback_addr = self.loopback_addr6 = None
        self.wait_ready()

    def ready6(self):
        """A default IPv6 route and a global address past duplicate address detection."""
        if not sh("ip", "-n", self.guest, "-6", "route", "show", "default", check=False).strip():
            return False
        addrs = sh("ip", "-n", self.guest, "-6", "-o", "addr", "show", "scope", "global", check=False)
        return any(l.strip() and "tentative" not in l for l in addrs.splitlines())

    def wait_ready(self):
        def ready():
            v4 = sh("ip", "-n", self.guest, "-4", "route", "show", "default", check=False).strip()
            return bool(v4) and (not self.ipv6 or self.ready6())

        for _ in range(300):
            if self.proc is not None and self.proc.poll() is not None:
                break
            if ready():
                break
            time.sleep(0.05)
        if not ready():
            log(open(self.proc.log_path).read()[-2000:] if self.proc else "")
            log(sh("ip", "-n", self.guest, "addr", "show", check=False))
            log(sh("ip", "-n", self.guest, "-6", "route", "show", check=False))
            raise RuntimeError(f"{self.impl}: the guest was never configured"
                               f"{' for IPv6' if sh('ip', '-n', self.guest, '-4', 'route', 'show', 'default', check=False).strip() else ''}")
        # pasta's --config-net: check the MTU it gave, and set it if it differs.
        link = sh("ip", "-n", self.guest, "-o", "link", "show").split("\n")
        for line in link:
            if " lo:" in line or not line.strip():
                continue
            ifname = line.split(":")[1].strip().split("@")[0]
            mtu = int(line.split(" mtu ")[1].split()[0])
            if mtu != self.mtu:
                log(f"    {self.impl}: guest {ifname} has MTU {mtu}, setting {self.mtu}")
                sh("ip", "-n", self.guest, "link", "set", ifname, "mtu", str(self.mtu))
        time.sleep(0.2)

    def describe_guest(self):
        out = []
        for fam in (["-4", "-6"] if self.ipv6 else ["-4"]):
            a = sh("ip", "-n", self.guest, fam, "-o", "addr", "show").split("\n")
            r = sh("ip", "-n", self.guest, fam, "route", "show").strip().replace("\n", "; ")
            addrs = [" ".join(l.split()[1:4]) for l in a if l.strip() and " lo " not in l]
            out.append(f"{', '.join(addrs)}; routes: {r}")
        return " — IPv6: ".join(out)

    def cpu(self):
        if self.proc is None:
            return None
        try:
            stat = open(f"/proc/{self.proc.pid}/stat").read()
        except OSError:
            return None
        f = stat.rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def mem(self):
        """(VmRSS, VmHWM, RssAnon) in KiB."""
        if self.proc is None:
            return None
        out = {}
        try:
            for line in open(f"/proc/{self.proc.pid}/status"):
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon"):
                    out[k] = int(v.split()[0])
        except OSError:
            return None
        return out.get("VmRSS"), out.get("VmHWM"), out.get("RssAnon")

    def alive(self):
        return self.proc is None or self.proc.poll() is None

    def close(self):
        if self.proc is not None:
            self.lab.stop(self.proc)
        if self.impl == "veth":
            sh("ip", "-n", self.lab.inet, "link", "del", self.inet_link, check=False)
        self.lab.del_ns(self.guest)


# -- measurements ---------------------------------------------------------------------------
def iperf(lab, nat, secs, reverse=False, streams=1, addr=INET_ADDR, port=PORT_IPERF, udp=False, extra=()):
    args = ["iperf3", "-c", addr, "-p", str(port), "-t", str(secs), "-J", "-i", "0.5"]
    if reverse:
        args.append("-R")
    if streams > 1:
        args += ["-P", str(streams)]
    if udp:
        args += ["-u", "-l", "64", "-b", "0"]
    args += list(extra)
    c0 = nat.cpu()
    out = lab.run(nat.guest, args, timeout=secs + 15)
    c1 = nat.cpu()
    if out is None:
        return None
    try:
        d = json.loads(out)
    except json.JSONDecodeError:
        return None
    if "error" in d:
        log(f"    iperf3: {d['error']}")
        return None
    end = d["end"]
    r = {}
    if udp:
        s = end["sum"]
        r["pps"] = (s["packets"] - s["lost_packets"]) / s["seconds"]
        r["loss"] = s.get("lost_percent")
        r["sent_pps"] = s["packets"] / s["seconds"]
    else:
        s = end["sum_received"]
        r["gbps"] = s["bits_per_second"] / 1e9
        r["bytes"] = s["bytes"]
        r["retr"] = end["sum_sent"].get("retransmits")
        r["intervals"] = [i["sum"]["bits_per_second"] / 1e9 for i in d.get("intervals", [])]
        if c0 is not None and c1 is not None and s["bytes"]:
            r["cpu_s_per_gb"] = (c1 - c0) / (s["bytes"] / 1e9)
    return r


def tool(lab, nat, cmd, port, *rest, timeout=30, addr=INET_ADDR):
    out = lab.run(nat.guest, ["python3", TOOLS, cmd, addr, str(port), *map(str, rest)], timeout=timeout)
    if out is None:
        return None
    return json.loads(out.strip().splitlines()[-1])


INET = {"v4": INET_ADDR, "v6": INET_ADDR6}


def families(args, rnd):
    """The address families measured, in this round's order (alternating with --ipv6, so that
    neither family always goes first)."""
    if not args.ipv6:
        return ["v4"]
    return ["v4", "v6"] if rnd % 2 == 0 else ["v6", "v4"]


def fam_key(fam, key):
    """Metric names: the IPv4 ones as they always were, the IPv6 ones prefixed "v6 "."""
    return key if fam == "v4" else f"v6 {key}"


def measure(lab, impl, mtu, args, res, notes, rnd=0):
    """Every metric for one (impl, MTU) in one fresh guest; appends to res[metric][impl]. With
    --ipv6 the TCP, rr, crr and host-loopback metrics are measured over both families, back to
    back in the same guest, and the per-round ratio v6/v4 is kept too ("v6/v4 METRIC")."""
    T = args.seconds
    fams = families(args, rnd)

    def put(metric, value):
        res.setdefault(metric, {}).setdefault(impl, []).append(value)

    def pair(metric, got):
        if "v6" in got:
            v4, v6 = got.get("v4"), got.get("v6")
            put(f"v6/v4 {metric}", v6 / v4 if v4 and v6 is not None else None)

    nat = Nat(lab, impl, mtu, args)
    try:
        if (impl, mtu) not in notes["guest"]:
            notes["guest"][(impl, mtu)] = nat.describe_guest()
        m = nat.mem()
        if m:
            put("rss_idle_kib", m[0])
            if m[2] is not None:
                put("rss_anon_idle_kib", m[2])
            nat.idle_rss = m[0]
        for reverse in (False, True):
            for streams in (1, 4):
                if args.quick and streams == 4 and mtu != 65520:
                    continue
                base = f"tcp {'down' if reverse else 'up'} P{streams} mtu{mtu}"
                got = {}
                for fam in fams:
                    r = iperf(lab, nat, T, reverse=reverse, streams=streams, addr=INET[fam])
                    key = fam_key(fam, base)
                    log(f"    {key}: {r['gbps']:.2f} Gbit/s, {r['retr']} retransmits, per 0.5 s: "
                        f"{' '.join(f'{x:.1f}' for x in r['intervals'])}" if r else f"    {key}: failed")
                    put(key + " gbps", r["gbps"] if r else None)
                    got[fam] = r["gbps"] if r else None
                    if r and "cpu_s_per_gb" in r:
                        put(key + " cpu", r["cpu_s_per_gb"])
                    if r and r["intervals"]:
                        # Stalls: 0.5 s intervals under a tenth of the run's best one (the first
                        # interval, slow start, is left out).
                        iv = r["intervals"][1:]
                        peak = max(iv) if iv else 0
                        put(key + " stalls", sum(1 for x in iv if x < peak / 10) * 0.5)
                        put(key + " peak", peak)
                pair(base + " gbps", got)
        m = nat.mem()
        if m:
            put(f"rss_hwm_kib", m[1])
        if mtu == max(args.mtus):
            for cmd, metric, field, port in (("rr-client", "rr", "round_trips_per_s", PORT_RR),
                                             ("crr-client", "crr", "connections_per_s", PORT_CRR)):
                got = {}
                for fam in fams:
                    r = tool(lab, nat, cmd, port, T, addr=INET[fam])
                    got[fam] = r[field] if r else None
                    put(fam_key(fam, metric), got[fam])
                    log(f"    {fam_key(fam, metric)}: {r}")
                pair(metric, got)
            if not args.quick:
                r = iperf(lab, nat, T, udp=True)
                put("udp64 up pps", r["pps"] if r else None)
                log(f"    udp up: {r}")
                r = iperf(lab, nat, T, udp=True, reverse=True)
                put("udp64 down pps", r["pps"] if r else None)
                log(f"    udp down: {r}")
        if nat.loopback_addr and impl != "pasta":
            loopback(lab, nat, impl, mtu, args, put, pair, fams)
        if impl != "veth" and mtu == max(args.mtus) and not args.quick:
            many_flows(lab, nat, impl, args, put)
    finally:
        alive = nat.alive()
        nat.close()
        if not alive:
            notes["crashes"].append(f"{impl} at MTU {mtu} exited during the run")
    if impl == "pasta" and not args.no_pasta_loopback:
        # pasta maps its gateway address to the host only without --no-map-gw: a separate instance.
        nat = Nat(lab, impl, mtu, args, map_gw=True)
        try:
            loopback(lab, nat, impl, mtu, args, put, pair, fams)
        finally:
            nat.close()


def loopback(lab, nat, impl, mtu, args, put, pair, fams):
    for streams in (1, 4):
        if args.quick and streams == 4:
            continue
        base = f"loopback up P{streams} mtu{mtu}"
        got = {}
        for fam in fams:
            key = fam_key(fam, base)
            r = iperf(lab, nat, args.seconds, streams=streams, port=PORT_IPERF_LO,
                      addr=nat.loopback_addr if fam == "v4" else nat.loopback_addr6,
                      extra=["--connect-timeout", "3000"])
            if r and r["gbps"] < 0.01:
                r = None
            log(f"    {key}: {r['gbps']:.2f} Gbit/s" if r else f"    {key}: failed or stalled")
            put(key + " gbps", r["gbps"] if r else None)
            got[fam] = r["gbps"] if r else None
        pair(base + " gbps", got)


def many_flows(lab, nat, impl, args, put):
    T = args.seconds
    # 5 000 idle connections held open through the NAT, then the two rates again.
    holder = lab.spawn_pipe(nat.guest, ["python3", TOOLS, "hold-client", INET_ADDR, str(PORT_HOLD), str(args.idle)])
    line = ""
    deadline = time.monotonic() + 120
    import select
    while time.monotonic() < deadline:
        r, _, _ = select.select([holder.stdout], [], [], 1)
        if r:
            line = holder.stdout.readline()
            break
        if holder.poll() is not None:
            break
    held = json.loads(line)["ready"] if line.strip() else 0
    log(f"    holding {held} idle connections")
    put("idle held", held)
    if held:
        r = tool(lab, nat, "rr-client", PORT_RR, T)
        put("rr idle", r["round_trips_per_s"] if r else None)
        log(f"    rr with idle: {r}")
        r = tool(lab, nat, "crr-client", PORT_CRR, T)
        put("crr idle", r["connections_per_s"] if r else None)
        log(f"    crr with idle: {r}")
        m = nat.mem()
        if m:
            put("rss_idleflows_kib", m[0])
            if getattr(nat, "idle_rss", None):
                put("kib per held connection", (m[0] - nat.idle_rss) / held)
    lab.stop(holder)
    time.sleep(0.5)
    # A burst of 7 000 short connections, then throughput at once (first second and the rest).
    r = tool(lab, nat, "burst-client", PORT_CRR, args.burst, 8, timeout=180)
    log(f"    burst: {r}")
    put("burst seconds", r["seconds"] if r else None)
    r = iperf(lab, nat, 3)
    if r and r["intervals"]:
        first = sum(r["intervals"][:2]) / 2
        put("after burst first-second gbps", first)
        put("after burst gbps", r["gbps"])
        log(f"    after burst: first second {first:.2f}, 3 s {r['gbps']:.2f} Gbit/s")
    else:
        put("after burst first-second gbps", None)
        put("after burst gbps", None)


# -- the report -----------------------------------------------------------------------------
def med(vals):
    v = [x for x in vals or [] if x is not None]
    return statistics.median(v) if v else None


def fmt(x, unit=""):
    if x is None:
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}".replace(",", " ")
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def version(cmd):
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    except OSError:
        return "missing"
    lines = [l for l in out.splitlines() if "syslog" not in l and l.strip()]
    return "; ".join(lines[:3])


def machine():
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    pasta = sh("dpkg-query", "-W", "-f", "${Version}", "passt", check=False) or "?"
    commit, dirty = START_COMMIT
    return [
        f"- {os.cpu_count()} vCPUs, {cpu}; Linux {platform.release()}",
        f"- slirp at commit {commit}{' (with uncommitted changes)' if dirty else ''} when the run began; binary "
        f"{os.path.relpath(BINARY[0], ROOT)} built {BINARY[1]}",
        f"- {version(['slirp4netns', '--version']).split(';')[0]} ({version(['slirp4netns', '--version']).split(';')[2].strip()})",
        f"- pasta: Debian passt {pasta}",
        f"- {version(['iperf3', '--version']).split(';')[0]}; Python {platform.python_version()}",
    ]


COLORS = {"slirp": "#1f77b4", "slirp4netns": "#ff7f0e", "pasta": "#2ca02c", "veth": "#9a9a9a"}


def plot_svg(args, res):
    """Grouped bars of the TCP throughput medians (Gbit/s), one group per measurement: a
    dependency-free SVG next to RESULTS.md."""
    keys = [f"tcp {d} P{p} mtu{m} gbps" for m in args.mtus for d in ("up", "down") for p in (1, 4)]
    keys += [f"loopback up P{p} mtu{m} gbps" for m in args.mtus for p in (1, 4)]
    rows = [k for k in keys if k in res and any(med(res[k].get(i)) for i in IMPLS)]
    if not rows:
        return None
    impls = [i for i in IMPLS if any(med(res[k].get(i)) for k in rows)]
    top = max(med(res[k].get(i)) or 0 for k in rows for i in impls)
    top = max(1.0, float(int(top / 5 + 1) * 5))
    bar, gap, left, right, height, base = 14, 22, 60, 110, 300, 330
    group = bar * len(impls) + gap
    width = left + right + group * len(rows)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{base + 170}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="18" font-size="14">TCP throughput through each NAT (median Gbit/s, iperf3)</text>']
    for t in range(0, int(top) + 1, 5):
        y = base - height * t / top
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{t}</text>')
    for g, k in enumerate(rows):
        x0 = left + g * group + gap / 2
        for j, i in enumerate(impls):
            v = med(res[k].get(i))
            if not v:
                continue
            h = height * v / top
            out.append(f'<rect x="{x0 + j * bar:.1f}" y="{base - h:.1f}" width="{bar - 2}" height="{h:.1f}" '
                       f'fill="{COLORS.get(i, "#444")}"><title>{i}: {v:.2f} Gbit/s</title></rect>')
        label = k.replace(" gbps", "").replace("tcp up", "guest→inet").replace("tcp down", "inet→guest")
        label = label.replace("loopback up", "guest→host lo").replace(" mtu", " MTU ")
        cx = x0 + bar * len(impls) / 2
        out.append(f'<text transform="translate({cx:.1f},{base + 10}) rotate(45)">{label}</text>')
    for j, i in enumerate(impls):
        x = left + j * 110
        out.append(f'<rect x="{x}" y="{base + 140}" width="12" height="12" fill="{COLORS.get(i, "#444")}"/>')
        out.append(f'<text x="{x + 16}" y="{base + 150}">{i}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def report(args, res, notes, started, elapsed):
    L = []
    w = L.append
    rounds = args.rounds
    w("# Performance: slirp next to slirp4netns and pasta")
    w("")
    w(f"Generated by `bench/run.sh{' --quick' if args.quick else ''}{' --ipv6' if args.ipv6 else ''}` on {started} ({rounds} rounds, "
      f"{args.seconds} s per measurement, {elapsed/60:.0f} min). Issue 6 part 1.")
    w("")
    w("## Reproduce")
    w("")
    w("```sh")
    w("sudo bench/run.sh            # builds slirp (cargo build --release -p slirp-std), then measures")
    w("sudo bench/run.sh --quick    # fewer metrics, 2 rounds, 3 s per measurement")
    w("sudo bench/run.sh --ipv6     # the TCP, rr, crr and loopback rows over IPv6 too, with v6/v4 ratios")
    w(f"# this file: sudo bench/run.sh {' '.join(sys.argv[1:])}".rstrip())
    w("```")
    w("")
    w("Needs root, `iproute2`, `iperf3`, `slirp4netns`, `passt` (pasta), python3; `run.sh` installs the "
      "three Debian packages with apt-get when they are missing. Options: `bench/run.sh --help`.")
    w("")
    w("## Machine")
    w("")
    L.extend(machine())
    w("")
    w("## How")
    w("")
    w("Three kinds of network namespace, made by the harness and deleted on exit (also on failure and "
      "Ctrl-C; processes killed by PID, namespaces deleted by name):")
    w("")
    w("- **inet**, the stand-in internet (198.51.100.1, and 2001:db8:1::1 on the IPv6 documentation "
      "prefix): `iperf3 -s`, and the python servers of `bench/tools.py` (1-byte echo, accept-and-close, "
      "accept-and-hold), one instance of each per address family.")
    w("- **host** (198.51.100.2, 2001:db8:1::2), where every NAT runs: its only routes lead to inet "
      "(checked before anything starts and after every measurement, as in the real-kernel tests: IPv4 "
      "198.51.100.0/24 and 203.0.113.0/24, IPv6 2001:db8::/32 and fe80::/64), its resolv.conf names "
      "198.51.100.1, and `iperf3 -s` listens on its 127.0.0.1 and ::1 for the host-loopback test. No "
      "NAT runs in the root namespace.")
    w("- **guest**: a fresh one for each (implementation, MTU, round), wired by the NAT under test:")
    w("  - slirp: `slirp attach --configure --mtu N --tcp-connections 30000 /run/netns/GUEST` "
      "(defaults otherwise: 256 KiB TCP buffers each way)")
    w("  - slirp4netns: `slirp4netns --configure --mtu=N --netns-type=path /run/netns/GUEST tap0`")
    w("  - pasta: `pasta -f --runas 0 --config-net -4 -m N -t none -u none -T none -U none --no-map-gw "
      "--netns /run/netns/GUEST`; for the host-loopback test a second instance without `--no-map-gw` "
      "(its gateway address 198.51.100.1 then means the host's loopback)")
    w("  - veth (the ceiling): a plain veth pair between guest and inet, no NAT")
    if args.ipv6:
        w("  - with `--ipv6` (this file): slirp gets `--ipv6` (guest fd00::100/64 from `--configure`, "
          "router fe80::2 / fd00::2, SLAAC from its router advertisements too), slirp4netns "
          "`--enable-ipv6` (SLAAC in fd00::/64, router fd00::2), pasta runs without `-4` (it copies the host "
          "namespace's 2001:db8:1::2/64 and default route via 2001:db8:1::1 into the guest), the veth "
          "gets 2001:db8:9:N::2/64. The IPv4 rows of this run are measured with IPv6 on as well, in the "
          "same guest as the IPv6 rows, one right after the other (the family going first alternates "
          "between rounds). IPv6 rows (`v6:`) talk to 2001:db8:1::1; the host-loopback ones to fd00::2 "
          "(slirp, slirp4netns), i.e. the host's ::1, or to pasta's mapped gateway 2001:db8:1::1.")
    w("")
    w("What each guest got (first round):")
    w("")
    for (impl, mtu), d in sorted(notes["guest"].items()):
        w(f"- {impl}, MTU {mtu}: {d}")
    w("")
    w("In each round the implementations are measured one after the other for each MTU, the order "
      "rotating between rounds, so every implementation sees the same machine state on average. "
      "Tables show the median over rounds; **ours/best peer** divides slirp's median by the better of "
      "slirp4netns' and pasta's; **ours/veth** by the plain-veth ceiling.")
    w("")

    def table(title, keys, unit, higher_better=True, with_veth=True, note=None):
        rows = [k for k in keys if k in res]
        if not rows:
            return
        w(f"### {title}")
        w("")
        if note:
            w(note)
            w("")
        impls = [i for i in IMPLS if with_veth or i != "veth"]
        head = ["measurement", *[f"{i}" for i in impls], "ours/best peer"]
        if with_veth:
            head.append("ours/veth")
        w("| " + " | ".join(head) + " |")
        w("|" + "---|" * len(head))
        for k, label in rows_labels(rows):
            meds = {i: med(res[k].get(i)) for i in impls}
            peers = [meds[p] for p in PEERS if meds.get(p) is not None]
            best = (max(peers) if higher_better else min(peers)) if peers else None
            ours = meds.get("slirp")
            ratio = f"{ours / best:.2f}×" if ours and best else "—"
            cells = [label, *[fmt(meds[i]) for i in impls], ratio]
            if with_veth:
                cells.append(f"{ours / meds['veth']:.0%}" if ours and meds.get("veth") else "—")
            w("| " + " | ".join(cells) + " |")
        w("")

    def rows_labels(rows):
        out = []
        for k in rows:
            label = k
            v6 = k.startswith("v6 ")
            if v6:
                label = label[3:]
            if v6 or fam_key("v6", k) in rows:
                # A metric measured over both families: say which row is which.
                label = ("v6: " if v6 else "v4: ") + label
            label = label.replace(" gbps", "").replace(" cpu", "").replace(" stalls", "").replace(" peak", "")
            label = label.replace("tcp up", "guest → internet").replace("tcp down", "internet → guest (-R)")
            label = label.replace("loopback up", "guest → host ::1" if v6 else "guest → host 127.0.0.1")
            label = label.replace(" mtu", ", MTU ")
            out.append((k, label))
        return out

    def v6v4(tp):
        keys = [k for k in tp if not k.startswith("v6 ")] + ["rr", "crr"]
        keys += [f"loopback up P{p} mtu{m} gbps" for m in args.mtus for p in (1, 4)]
        rows = [k for k in keys if k in res or fam_key("v6", k) in res]
        if not rows:
            return
        w("### IPv6 against IPv4")
        w("")
        w("The target (issue): slirp's IPv6 bulk TCP within 10% of its IPv4 in both directions at MTU 1500 "
          "and 65520, round trips/s and connections/s likewise. **v6/v4** is the median over rounds of each "
          "round's ratio (IPv6 and IPv4 measured back to back in the same guest); **≥ 0.90** says whether "
          "slirp's ratio meets the target. The peers' and the ceiling's ratios for comparison; their "
          "absolute numbers are in the tables below (rows `v6:`).")
        w("")
        peers = [i for i in IMPLS if i != "slirp"]
        head = ["measurement", "slirp v4", "slirp v6", "slirp v6/v4", "≥ 0.90", *[f"{i} v6/v4" for i in peers]]
        w("| " + " | ".join(head) + " |")
        w("|" + "---|" * len(head))
        for k, label in rows_labels(rows):
            label = label.replace("host 127.0.0.1", "host loopback (127.0.0.1, ::1)")
            label = {"rr": "rr, round trips/s", "crr": "crr, connections/s"}.get(label, label)
            ratio = {i: med(res.get(f"v6/v4 {k}", {}).get(i)) for i in IMPLS}
            r = ratio["slirp"]
            cells = [label, fmt(med(res.get(k, {}).get("slirp"))), fmt(med(res.get(fam_key("v6", k), {}).get("slirp"))),
                     f"{r:.2f}" if r is not None else "—", ("yes" if r >= 0.90 else "**no**") if r is not None else "—",
                     *[f"{ratio[i]:.2f}" if ratio[i] is not None else "—" for i in peers]]
            w("| " + " | ".join(cells) + " |")
        w("")

    def fams(keys):
        """Each IPv4 metric followed by its IPv6 twin, with --ipv6."""
        return [f for k in keys for f in ([k, fam_key("v6", k)] if args.ipv6 else [k])]

    tp = fams([f"tcp {d} P{p} mtu{m} gbps" for m in args.mtus for d in ("up", "down") for p in (1, 4)])
    w("## Results")
    w("")
    if getattr(args, "plot_name", None):
        w(f"![TCP throughput medians]({args.plot_name})")
        w("")
    if args.ipv6:
        v6v4(tp)
    table("TCP throughput, Gbit/s (iperf3, receiver side)", tp, "Gbit/s")
    stalls = fams([f"tcp {d} P{p} mtu{m} stalls" for m in args.mtus for d in ("up", "down") for p in (1, 4)])
    table("TCP stalls: seconds spent under a tenth of the run's best 0.5 s interval", stalls, "s",
          higher_better=False, with_veth=False,
          note="From iperf3's 0.5 s intervals of the runs above (first interval left out). Lower is better; "
               "ratio ours/lowest peer (— when both are 0).")
    peaks = fams([f"tcp {d} P{p} mtu{m} peak" for m in args.mtus for d in ("up", "down") for p in (1, 4)])
    table("TCP throughput, best 0.5 s interval, Gbit/s (what each does when it does not stall)", peaks, "Gbit/s")
    table("TCP round trips and connections per second", fams(["rr", "crr"]), "/s",
          note=f"`rr`: 1-byte ping-pong on one connection (TCP_NODELAY), round trips/s; `crr`: connect, "
               f"wait for the server's close, close, in a loop: connections/s. Python clients and servers "
               f"(`bench/tools.py`), so the ceiling is python's too. MTU {max(args.mtus)}.")
    lo = fams([f"loopback up P{p} mtu{m} gbps" for m in args.mtus for p in (1, 4)])
    table("Guest → host loopback through the gateway alias, Gbit/s", lo, "Gbit/s", with_veth=False,
          note="iperf3 server on the host namespace's 127.0.0.1, reached from the guest at 10.0.2.2 "
               "(slirp, slirp4netns) or at pasta's mapped gateway address"
               + (" (IPv6: ::1, reached at fd00::2 or at pasta's mapped gateway 2001:db8:1::1)" if args.ipv6 else "")
               + ". — means the transfer failed or stalled (under 0.01 Gbit/s).")
    table("UDP, 64-byte datagrams, packets/s received (iperf3 -u -l 64 -b 0)",
          ["udp64 up pps", "udp64 down pps"], "pps")
    table(f"With {args.idle} idle TCP connections held open through the NAT",
          ["idle held", "rr idle", "crr idle"], "/s", with_veth=False,
          note="`idle held`: how many of the connections were open; then `rr` and `crr` as above.")
    table(f"A burst of {args.burst} short connections (8 threads), then throughput at once",
          ["after burst first-second gbps", "after burst gbps"], "", with_veth=False,
          note="iperf3 guest → internet, MTU as above, for 3 s right after the burst: the first second and "
               "the whole run, Gbit/s; compare with the 1-stream guest → internet row of the throughput table.")
    table("How long the burst took, seconds", ["burst seconds"], "s", higher_better=False, with_veth=False,
          note="Lower is better; ratio is ours/fastest peer.")
    cpu = fams([f"tcp {d} P{p} mtu{m} cpu" for m in args.mtus for d in ("up", "down") for p in (1, 4)])
    table("CPU seconds of the NAT process per GB moved (utime+stime from /proc/PID/stat)", cpu, "s/GB",
          higher_better=False, with_veth=False,
          note="Lower is better; the ratio is ours/lowest peer (below 1 = we spend less).")
    table("Memory of the NAT process, KiB", ["rss_idle_kib", "rss_anon_idle_kib", "rss_hwm_kib", "rss_idleflows_kib", "kib per held connection"], "KiB",
          higher_better=False, with_veth=False,
          note="`rss_idle`: VmRSS right after the guest was configured; `rss_anon_idle`: its private "
               "part (RssAnon: heap, stacks; without the pages of the binary and shared libraries, which "
               "every instance shares); `rss_hwm`: VmHWM after the "
               "throughput runs; `rss_idleflows`: VmRSS while the idle connections were held; `kib per held connection`: "
               "(rss_idleflows − rss_idle) / connections held, after the throughput runs grew the heap. Lower is "
               "better; ratio is ours/lowest peer.")
    w("## Noise and caveats")
    w("")
    w("- The machine has 2 vCPUs shared by everything: iperf3's client and server, the NAT and the "
      "kernel's work for three namespaces. Runs differ by ±20% or more; only ratios within one run "
      "count, and medians over a few rounds are still rough. `--rounds` and `--seconds` trade time for "
      "steadiness.")
    w("- The round-trip and connection rates are measured with python clients and servers; at these "
      "rates python's own per-call cost is a large part of each round trip, so ratios understate the "
      "differences between NATs.")
    w("- Medians ignore failed measurements; a — in a cell means every round failed for it.")
    if args.no_pasta_loopback:
        w("- The guest → host-loopback test was skipped for pasta (`--no-pasta-loopback`).")
    for c in notes["crashes"]:
        w(f"- {c}.")
    if args.quick:
        w("- `--quick`: 4-stream runs only at the larger MTU, host loopback with 1 stream, no UDP, no "
          "idle-connection or burst tests.")
    if args.ipv6:
        w("- `--ipv6`: UDP, idle-connection, burst and memory rows are IPv4 only. v6/v4 ratios are the "
          "median of each round's ratio (both measured in the same guest a few seconds apart), not the "
          "ratio of the medians; with 2-3 rounds on a shared 2-vCPU machine a 10% difference is within "
          "the noise of a single run.")
    w("")
    w("## All samples")
    w("")
    w("<details><summary>every round's value, per metric and implementation</summary>")
    w("")
    w("```")
    for k in res:
        for i in IMPLS:
            if i in res[k]:
                w(f"{k:40} {i:12} {' '.join(fmt(x) for x in res[k][i])}")
    w("```")
    w("")
    w("</details>")
    w("")
    w("Earlier numbers (first iperf3 table for issue 5, `bench/iperf.sh`): [history.md](history.md).")
    w("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 rounds, 3 s, the main metrics only")
    ap.add_argument("--rounds", type=int, help="rounds (default 3; 2 with --quick)")
    ap.add_argument("--seconds", type=int, help="seconds per measurement (default 5; 3 with --quick)")
    ap.add_argument("--mtus", type=int, nargs="+", default=[1500, 65520])
    ap.add_argument("--impls", nargs="+", default=IMPLS, choices=IMPLS)
    ap.add_argument("--idle", type=int, default=5000, help="idle connections held open (default 5000)")
    ap.add_argument("--burst", type=int, default=7000, help="short connections in the burst (default 7000)")
    ap.add_argument("--no-pasta-loopback", action="store_true", help="skip pasta's host-loopback test")
    ap.add_argument("--ipv6", action="store_true",
                    help="every NAT serves IPv6 too (slirp --ipv6, slirp4netns --enable-ipv6, pasta dual-stack) "
                         "and the TCP, rr, crr and host-loopback rows are measured over IPv6 as well, to "
                         "2001:db8:1::1, next to the IPv4 ones in the same guest")
    ap.add_argument("--slirp", default=os.path.join(ROOT, "target/release/slirp"))
    ap.add_argument("--slirp-arg", dest="slirp_args", action="append", default=[],
                    help="extra flag for slirp attach (repeatable)")
    ap.add_argument("--out", default=os.path.join(HERE, "RESULTS.md"))
    ap.add_argument("--json", default=None, help="also write the raw samples here")
    ap.add_argument("--keep-logs", action="store_true", help="keep /tmp/slirpb-PID (every process's log)")
    args = ap.parse_args()
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.seconds = args.seconds or (3 if args.quick else 5)
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces, TAP devices)")
    for t in ["ip", "ss", "iperf3", "slirp4netns", "pasta"]:
        if sh("sh", "-c", f"command -v {t}", check=False).strip() == "":
            raise SystemExit(f"missing {t} (apt-get install iproute2 iperf3 slirp4netns passt)")
    if not os.access(args.slirp, os.X_OK):
        raise SystemExit(f"missing {args.slirp} (cargo build --release -p slirp-std)")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    START_COMMIT[:] = [sh("git", "-C", ROOT, "rev-parse", "--short", "HEAD", check=False).strip(),
                       sh("git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", check=False).strip()]
    BINARY[:] = [args.slirp, datetime.fromtimestamp(os.stat(args.slirp).st_mtime, timezone.utc)
                 .strftime("%Y-%m-%d %H:%M UTC")]
    t0 = time.monotonic()
    res, notes = {}, {"guest": {}, "crashes": []}
    lab = Lab(args.keep_logs)
    try:
        lab.build()
        lab.start_servers()
        for rnd in range(args.rounds):
            for mtu in args.mtus:
                order = args.impls[rnd % len(args.impls):] + args.impls[:rnd % len(args.impls)]
                for impl in order:
                    log(f"round {rnd + 1}/{args.rounds}, MTU {mtu}, {impl}")
                    try:
                        measure(lab, impl, mtu, args, res, notes, rnd)
                    except RuntimeError as e:
                        log(f"    {impl}: {e}")
                        notes["crashes"].append(f"{impl} at MTU {mtu}, round {rnd + 1}: {e}")
                    lab.check_contained()
    except KeyboardInterrupt:
        log("interrupted: tearing the lab down, no report")
        lab.teardown()
        sys.exit(130)
    finally:
        lab.teardown()
    svg = plot_svg(args, res)
    if svg:
        plot = os.path.splitext(args.out)[0] + ".svg"
        with open(plot, "w") as f:
            f.write(svg)
        args.plot_name = os.path.basename(plot)
    text = report(args, res, notes, started, time.monotonic() - t0)
    with open(args.out, "w") as f:
        f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
