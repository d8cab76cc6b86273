#!/usr/bin/env python3
"""Servers and clients for the TCP lab tests (tests/netns_tcp.rs). Standard library only.

Servers (run until killed):
  echo ADDR PORT            echo every byte back, many connections at once (threads)
  whoami-server ADDR PORT   send "IP:PORT\\n" of the client, then echo
  http ADDR PORT FILE       GET /file serves FILE; PUT /upload answers the SHA-256 of the body
  accept-close ADDR PORT    accept every connection and close it at once (a deep backlog)
Clients (exit 0 on success, print what they measured, non-zero with a reason otherwise):
  concurrent HOST PORT N BYTES   open N connections at once, then send BYTES distinct bytes on
                                 each and check each echo
  interactive HOST PORT ROUNDS   small request/response round trips on one connection; prints
                                 the median and worst round trip in microseconds
  refused HOST PORT              expects ECONNREFUSED; prints how long it took in microseconds
  whoami HOST PORT               prints the first line the server sends
  hold HOST PORT SECONDS         connects, sends "hold\\n", keeps the connection open SECONDS
  closed HOST PORT               expects the connection to be accepted and then closed or reset
                                 (a forward whose guest port is shut); prints how long it took
  synflood IFNAME DST PORT COUNT SECONDS
                                 sends COUNT TCP SYNs to DST:PORT as raw Ethernet frames on IFNAME
                                 (to the gateway's MAC), from spoofed sources 10.0.2.32-250 and
                                 ports that never complete the handshake, spread over SECONDS;
                                 prints how long it took
"""
import hashlib
import http.server
import os
import socket
import socketserver
import statistics
import struct
import sys
import threading
import time


class ThreadingTCPServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 1024


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class WhoAmI(Echo):
    def handle(self):
        ip, port = self.client_address[:2]
        self.request.sendall(f"{ip}:{port}\n".encode())
        super().handle()


class Http(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    file = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path != "/file":
            self.send_error(404)
            return
        size = os.path.getsize(Http.file)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(Http.file, "rb") as f:
            while True:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                self.wfile.write(chunk)

    def do_PUT(self):
        left = int(self.headers.get("Content-Length", "0"))
        h = hashlib.sha256()
        total = 0
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
            total += len(chunk)
        body = f"{h.hexdigest()} {total}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(kind, addr, port, *rest):
    port = int(port)
    if kind == "http":
        Http.file = rest[0]
        server = http.server.ThreadingHTTPServer((addr, port), Http)
    else:
        server = ThreadingTCPServer((addr, port), {"echo": Echo, "whoami": WhoAmI}[kind])
    server.serve_forever()


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise SystemExit(f"EOF after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def concurrent(host, port, n, size):
    n, size = int(n), int(size)
    socks = []
    for i in range(n):
        s = socket.create_connection((host, int(port)), timeout=20)
        socks.append(s)
    # All N are open now; send on each, then check each echo.
    payloads = [bytes((i * 7 + j * 13) & 0xFF for j in range(size)) for i in range(n)]
    errors = []

    def one(i):
        try:
            s = socks[i]
            s.sendall(payloads[i])
            got = recv_exact(s, size)
            if got != payloads[i]:
                errors.append(f"connection {i}: echo differs")
        except BaseException as e:  # noqa: BLE001 - report every failure
            errors.append(f"connection {i}: {e!r}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in socks:
        s.close()
    if errors:
        raise SystemExit(f"{len(errors)} failures, first: {errors[0]}")
    print(f"{n} connections echoed {size} bytes each")


def interactive(host, port, rounds):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for i in range(int(rounds)):
        msg = (b"k%05d" % i) * (1 + i % 8)
        t0 = time.perf_counter()
        s.sendall(msg)
        got = recv_exact(s, len(msg))
        times.append(time.perf_counter() - t0)
        if got != msg:
            raise SystemExit(f"round {i}: {got!r} != {msg!r}")
    s.close()
    print(f"median_us={statistics.median(times) * 1e6:.0f} max_us={max(times) * 1e6:.0f}")


def refused(host, port):
    s = socket.socket()
    s.settimeout(10)
    t0 = time.perf_counter()
    try:
        s.connect((host, int(port)))
    except ConnectionRefusedError:
        print(f"refused_us={(time.perf_counter() - t0) * 1e6:.0f}")
        return
    except OSError as e:
        raise SystemExit(f"expected ECONNREFUSED, got {e!r}")
    raise SystemExit("connected to a port nobody listens on")


def whoami(host, port):
    s = socket.create_connection((host, int(port)), timeout=10)
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(100)
        if not chunk:
            break
        line += chunk
    print(line.decode().strip())


def hold(host, port, seconds):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"hold\n")
    recv_exact(s, 5)
    print("connected", flush=True)
    time.sleep(float(seconds))
    s.close()


def closed(host, port):
    t0 = time.perf_counter()
    try:
        # The reset may even beat the end of connect() (a loopback client is that quick).
        s = socket.create_connection((host, int(port)), timeout=10)
        s.sendall(b"anyone?")
        data = s.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        data = b""
    if data:
        raise SystemExit(f"got an answer: {data!r}")
    print(f"closed_us={(time.perf_counter() - t0) * 1e6:.0f}")


def accept_close(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(4096)
    while True:
        c, _ = s.accept()
        c.close()


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def synflood(ifname, dst, port, count, seconds):
    count, seconds, port = int(count), float(seconds), int(port)
    with open(f"/sys/class/net/{ifname}/address") as f:
        our_mac = bytes.fromhex(f.read().strip().replace(":", ""))
    gateway_mac = bytes.fromhex("52550a000202")
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    dst_ip = socket.inet_aton(dst)
    t0 = time.perf_counter()
    for i in range(count):
        src_ip = bytes([10, 0, 2, 32 + i % 219])
        sport = 1024 + (i * 7919) % 60000
        tcp = bytearray(struct.pack("!HHIIBBHHH", sport, port, (i * 2654435761) & 0xFFFFFFFF, 0, 5 << 4, 0x02,
                                    64240, 0, 0))
        pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(tcp))
        tcp[16:18] = struct.pack("!H", checksum(pseudo + bytes(tcp)))
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src_ip, dst_ip))
        ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
        s.send(gateway_mac + our_mac + b"\x08\x00" + bytes(ip) + bytes(tcp))
        ahead = t0 + seconds * (i + 1) / count - time.perf_counter()
        if ahead > 0.001:
            time.sleep(ahead)
    print(f"flood_s={time.perf_counter() - t0:.3f}", flush=True)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd in ("echo", "http"):
        serve(cmd, *args)
    elif cmd == "accept-close":
        accept_close(*args)
    elif cmd == "whoami-server":
        serve("whoami", *args)
    else:
        {"concurrent": concurrent, "interactive": interactive, "refused": refused, "whoami": whoami,
         "hold": hold, "closed": closed, "synflood": synflood}[cmd](*args)


if __name__ == "__main__":
    main()
