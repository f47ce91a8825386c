#!/usr/bin/env python3
"""Idle sessions in bursts: what the first burst costs once, and what a session costs after it.

    python3 bench/idle-bursts.py [--conns 1000] [--bursts 3] [--hold 3] [--runtime bun|deno|node]

Starts `serve` on its embedded default (a Maildir in a temp dir) on a free loopback port, loopback
trusted (as the shared harness runs it) and `limits.maxConnections` above CONNS, then,
BURSTS times: opens CONNS connections, reads each one's 220 banner, waits HOLD seconds, reads the
server's RSS (`/proc/PID/status`), closes them all and waits HOLD seconds more. Prints, for each
burst, the RSS before and while held and the difference per session. The server is stopped by
its PID at the end; the file-descriptor limit is raised to its hard limit for this process only.

Why: the shared harness's idle figure (`smtp-bench.sh --mode idle`) opens one burst against a
server that has just started. On Bun the first burst also pays once for what a busier server has
already paid: the engine's heap grows its capacity to about twice what is live (JavaScriptCore
sizes the heap to a multiple of the live size after each collection) and keeps that capacity,
and the session's code is compiled. The second and later bursts show the cost per session of a
server that has run before. Both figures are real; the README and bench/RESULTS.md say which is
which.
"""
import argparse, os, resource, socket, subprocess, sys, tempfile, time, shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from startup import command, free_port  # noqa: E402  (the runtimes' command lines, one place)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS")).split()[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--bursts", type=int, default=3)
    ap.add_argument("--hold", type=float, default=3.0)
    ap.add_argument("--runtime", default="bun", choices=["bun", "deno", "node"])
    args = ap.parse_args()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.conns + 64 > hard:
        sys.exit(f"--conns {args.conns} needs more file descriptors than the hard limit ({hard})")
    argv0 = command(args.runtime)
    if argv0 is None:
        sys.exit(f"no {args.runtime} to run (see bench/startup.py)")
    port = free_port()
    work = tempfile.mkdtemp(prefix="idle-bursts-")
    # Loopback is trusted (as the shared harness runs it): the per-address limit (50) would
    # otherwise refuse all but the first connections; the server-wide limit is raised above CONNS.
    config = os.path.join(work, "idle.config.ts")
    with open(config, "w") as f:
        f.write(f"export default {{ limits: {{ maxConnections: {args.conns + 16} }} }}\n")
    argv = argv0 + ["serve", "--config", config, "--listen", f"127.0.0.1:{port}", "--maildir", os.path.join(work, "Maildir"),
                                    "--trust", "127.0.0.0/8"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    try:
        deadline = time.time() + 30
        while True:
            if proc.poll() is not None or time.time() > deadline:
                sys.exit("the server did not start")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(args.hold)
        print(f"{args.runtime}: {args.conns} idle connections per burst, held {args.hold:g} s")
        for burst in range(1, args.bursts + 1):
            base = rss_kib(proc.pid)
            socks = []
            for _ in range(args.conns):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                socks.append(s)
            for s in socks:
                if not s.recv(512).startswith(b"220"):
                    sys.exit("a connection was not greeted with 220")
            time.sleep(args.hold)
            held = rss_kib(proc.pid)
            print(f"burst {burst}: RSS before {base / 1024:.1f} MiB, held {held / 1024:.1f} MiB: {(held - base) / args.conns:.1f} KiB per session", flush=True)
            for s in socks:
                s.close()
            time.sleep(args.hold)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
