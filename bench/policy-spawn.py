#!/usr/bin/python3
"""Serves Debian's policyd-spf on a loopback TCP port, one process per connection.

Postfix runs policyd-spf through spawn(8): a listener that starts the program with the accepted
socket as its stdin and stdout. This is that listener, for bench/remote-stages.sh:

    policy-spawn.py PORT DNS_PORT CONF

Each child is policyd-spf's own main() with dnspython's default resolver pointed at 127.0.0.1:DNS_PORT
(a private dnsmasq: a port resolv.conf cannot name). Run it with Debian's /usr/bin/python3, which has
policyd-spf's modules; the children use the same interpreter. SIGTERM stops the listener and its children.
"""
import os
import signal
import socket
import subprocess
import sys
import threading

WRAPPER = """
import sys, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = ["127.0.0.1"]
r.port = int(sys.argv[1])
dns.resolver.default_resolver = r
sys.argv = ["policyd-spf", sys.argv[2]]
from spf_engine.policyd_spf import main
sys.exit(main())
"""


def main() -> int:
    port, dns_port, conf = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    children: set = set()
    lock = threading.Lock()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(128)

    def stop(*_):
        with lock:
            for child in list(children):
                child.terminate()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def serve(conn: socket.socket) -> None:
        with conn:
            child = subprocess.Popen(
                [sys.executable, "-c", WRAPPER, dns_port, conf], stdin=conn.fileno(), stdout=conn.fileno()
            )
            with lock:
                children.add(child)
        child.wait()
        with lock:
            children.discard(child)

    print(f"listening on 127.0.0.1:{port}", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
