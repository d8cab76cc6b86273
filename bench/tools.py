#!/usr/bin/env python3
"""Small traffic tools the harness runs inside the lab namespaces (python3 stdlib only).

ADDR is an IPv4 or IPv6 address (clients connect to either; a server on an IPv6 address listens
on IPv6 only).

Servers (run in the stand-in internet):
  rr-server ADDR PORT        echo one byte back for every byte received (ping-pong)
  crr-server ADDR PORT       accept and close at once
  hold-server ADDR PORT      accept and keep every connection open, reading nothing
Clients (run in the guest; print one JSON line):
  rr-client ADDR PORT SECONDS         1-byte ping-pong on one connection: round trips/s
  crr-client ADDR PORT SECONDS        connect, wait for the close, close; loop: connections/s
  hold-client ADDR PORT N             open N connections, print {"ready": N}, then sleep until killed
  burst-client ADDR PORT N THREADS    N short connections as fast as THREADS threads can
"""
import json
import resource
import socket
import sys
import threading
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def listener(addr, port):
    # An IPv6 address (the stand-in's 2001:db8:1::1) gets an IPv6-only socket, so that a second
    # instance can hold the same port on the IPv4 address.
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    s.listen(8192)
    return s


def rr_server(addr, port):
    s = listener(addr, port)

    def serve(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                b = c.recv(1)
                if not b:
                    break
                c.sendall(b)
        except OSError:
            pass
        c.close()

    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def crr_server(addr, port):
    s = listener(addr, port)
    while True:
        c, _ = s.accept()
        c.close()


def hold_server(addr, port):
    """Holds connections open, reading nothing; closes each once its peer has closed, so that the
    descriptors of one round's idle connections are free for the next round's."""
    import selectors
    s = listener(addr, port)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is s:
                c, _ = s.accept()
                sel.register(c, selectors.EVENT_READ)
            else:
                c = key.fileobj
                try:
                    closed = not c.recv(65536)
                except OSError:
                    closed = True
                if closed:
                    sel.unregister(c)
                    c.close()


def rr_client(addr, port, seconds):
    c = socket.create_connection((addr, port), timeout=10)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n = 0
    # A short warm-up, then count.
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        c.sendall(b"x")
        c.recv(1)
    start = time.monotonic()
    end = start + seconds
    while True:
        for _ in range(100):
            c.sendall(b"x")
            if not c.recv(1):
                raise SystemExit("closed")
        n += 100
        now = time.monotonic()
        if now >= end:
            break
    c.close()
    print(json.dumps({"round_trips_per_s": n / (now - start), "n": n}))


def crr_client(addr, port, seconds):
    n = fails = 0
    start = time.monotonic()
    end = start + seconds
    while True:
        try:
            c = socket.create_connection((addr, port), timeout=5)
            c.recv(1)
            c.close()
            n += 1
        except OSError:
            fails += 1
        now = time.monotonic()
        if now >= end:
            break
    print(json.dumps({"connections_per_s": n / (now - start), "n": n, "failures": fails}))


def hold_client(addr, port, count):
    held = []
    fails = 0
    for _ in range(count):
        try:
            held.append(socket.create_connection((addr, port), timeout=10))
        except OSError:
            fails += 1
    print(json.dumps({"ready": len(held), "failures": fails}), flush=True)
    while True:
        time.sleep(3600)


def burst_client(addr, port, count, threads):
    lock = threading.Lock()
    left = [count]
    done = [0, 0]

    def work():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            try:
                c = socket.create_connection((addr, port), timeout=5)
                c.recv(1)
                c.close()
                with lock:
                    done[0] += 1
            except OSError:
                with lock:
                    done[1] += 1

    start = time.monotonic()
    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print(json.dumps({"ok": done[0], "failures": done[1], "seconds": time.monotonic() - start}))


def main():
    raise_nofile()
    cmd, addr, port, *rest = sys.argv[1:]
    port = int(port)
    if cmd == "rr-server":
        rr_server(addr, port)
    elif cmd == "crr-server":
        crr_server(addr, port)
    elif cmd == "hold-server":
        hold_server(addr, port)
    elif cmd == "rr-client":
        rr_client(addr, port, float(rest[0]))
    elif cmd == "crr-client":
        crr_client(addr, port, float(rest[0]))
    elif cmd == "hold-client":
        hold_client(addr, port, int(rest[0]))
    elif cmd == "burst-client":
        burst_client(addr, port, int(rest[0]), int(rest[1]))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
