#!/usr/bin/env python3
"""Helper for tests-netns/measure-rss.sh: hold many TCP connections open.

server PORT MODE      listen on 0.0.0.0:PORT, accept every connection and hold it.
                      MODE idle: send nothing; MODE push: write to each connection until the
                      kernel refuses more (the peer does not read), so every buffer on the path
                      toward the client fills.
client ADDR PORT N MODE
                      open N connections to ADDR:PORT, never read, print "ready N" once all are
                      established, then hold them until stdin closes. MODE push: first write to
                      every connection for 3 s, as long as the kernel takes more (the server does
                      not read either, so both directions stall with full buffers).

Only used between throwaway namespaces on this machine.
"""
import selectors
import socket
import sys
import time


def server(port, mode):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(4096)
    print("listening", flush=True)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ)
    chunk = b"x" * 65536
    held = []
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is ls:
                c, _ = ls.accept()
                c.setblocking(False)
                held.append(c)
                if mode == "push":
                    sel.register(c, selectors.EVENT_WRITE)
            else:
                try:
                    while s.send(chunk):
                        pass
                except BlockingIOError:
                    pass
                except OSError:
                    sel.unregister(s)


def client(addr, port, n, mode):
    conns = []
    for _ in range(n):
        s = socket.create_connection((addr, port), timeout=10)
        conns.append(s)
    if mode == "push":
        sel = selectors.DefaultSelector()
        for s in conns:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_WRITE)
        chunk = b"y" * 65536
        end = time.monotonic() + 3
        while time.monotonic() < end:
            for key, _ in sel.select(timeout=0.2):
                try:
                    while key.fileobj.send(chunk):
                        pass
                except BlockingIOError:
                    pass
    print("ready %d" % len(conns), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), sys.argv[3])
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
