#!/usr/bin/env python3
"""Submission benchmark runner: smtp-bridge (Bun) vs Postfix + Dovecot SASL vs Haraka, plus a
null TLS responder (the load generator's ceiling), all fed by loadgen.py (STARTTLS + AUTH PLAIN).

  bench/submission/run.py [--servers bridge,postfix,haraka,null] [--reps 3]
      [--concurrency 20,100] [--per-conn 1,10] [--certs ecdsa,rsa] [-n 2000] [--size 1024]
      [--procs 1] [--time-limit 120] [--out bench/results/submission.jsonl]

Runs as root (Postfix and Dovecot need it). Interleaved: for each repetition, each cert, each
concurrency and each per-connection count, every server runs once, in turn. Each run gets a
fresh smtp-sink (it counts deliveries: lost = accepted - delivered) and a freshly started
server, and writes one JSON line. At the end a median table with bridge/Postfix and
bridge/Haraka ratios is printed. Everything listens on 127.0.0.1; every process started here is
stopped by its PID (and those of its descendants); every load is bounded by --time-limit.

Postfix and Haraka are started by the shared harness's scripts (submission/postfix-start.sh,
postfix-stop.sh, haraka-start.sh) from a writable copy (--harness-dir, made and set up with
setup-peers.sh when missing, as bench/run.sh does).
"""
import argparse
import atexit
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TICK = os.sysconf("SC_CLK_TCK")
USER = "alice@example.com"
LIVE = {}  # pid -> name, for the exit trap


# ---------------------------------------------------------------- processes

def descendants(pid):
    """pid and every live process below it."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                parent[int(d)] = int(s[s.rfind(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in parent or p == pid:
            out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


def cpu_seconds(pids):
    """user+system CPU of these processes, their reaped children included."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
            f_ = s[s.rfind(")") + 2:].split()
            total += sum(int(x) for x in f_[11:15])
        except (OSError, ValueError, IndexError):
            pass
    return total / TICK


def start(name, cmd, log, env=None):
    p = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env,
                         stdin=subprocess.DEVNULL)
    LIVE[p.pid] = (name, p)
    return p


def stop(p, grace=8):
    """SIGTERM to the process and its descendants (by PID), SIGKILL to what is left."""
    if p is None:
        return
    pids = descendants(p.pid)
    for q in pids:
        try:
            os.kill(q, signal.SIGTERM)
        except OSError:
            pass
    end = time.time() + grace
    while time.time() < end and p.poll() is None:
        time.sleep(0.05)
    for q in pids + descendants(p.pid):
        try:
            os.kill(q, signal.SIGKILL)
        except OSError:
            pass
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        pass
    LIVE.pop(p.pid, None)


def stop_all():
    for _, p in list(LIVE.values()):
        stop(p, grace=3)


def on_signal(sig, _frame):
    raise SystemExit(128 + sig)


# ---------------------------------------------------------------- helpers

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_banner(port, secs, proc=None):
    end = time.time() + secs
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                s.settimeout(5)
                if s.recv(512).startswith(b"220"):
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def sink_counts(path):
    """(sessions, messages) from smtp-sink -c's running counters."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return 0, 0
    hits = re.findall(rb"sess=(\d+) quit=\d+ mesg=(\d+)", data)
    return (int(hits[-1][0]), int(hits[-1][1])) if hits else (0, 0)


def make_cert(kind, d):
    os.makedirs(d, exist_ok=True)
    cert, key = f"{d}/cert.pem", f"{d}/key.pem"
    if not os.path.exists(cert):
        alg = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ecdsa"
               else ["-newkey", "rsa:2048"])
        subprocess.run(["openssl", "req", "-x509", *alg, "-nodes", "-keyout", key, "-out", cert,
                        "-days", "30", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                       check=True, capture_output=True)
        os.chmod(key, 0o644)  # Postfix's smtpd and Dovecot read copies of it in run dirs
    return cert, key


def make_users(work, password, cost):
    """One bcrypt hash for both the bridge's htpasswd file and Dovecot's passwd-file."""
    line = subprocess.run(["htpasswd", "-nbB", "-C", str(cost), USER, password], check=True,
                          capture_output=True, text=True).stdout.strip()
    with open(f"{work}/users.htpasswd", "w") as f:
        f.write(line + "\n")
    with open(f"{work}/dovecot-users", "w") as f:
        f.write(f"{USER}:{{BLF-CRYPT}}{line.split(':', 1)[1]}::::::\n")


def harness(a):
    """A writable copy of the shared harness, with Haraka set up (as bench/run.sh does)."""
    h = a.harness_dir
    if not os.path.exists(f"{h}/submission/haraka-start.sh"):
        os.makedirs(h, exist_ok=True)
        subprocess.run(["cp", "-r", f"{a.shared}/.", f"{h}/"], check=True)
        subprocess.run(["chmod", "-R", "u+w", h], check=True)
    if not os.path.isdir(f"{h}/.peers/haraka/config"):
        subprocess.run([f"{h}/setup-peers.sh"], check=True)
    return h


# ---------------------------------------------------------------- one run

def one_run(a, h, server, cert_kind, conc, per_conn, rep):
    rdir = tempfile.mkdtemp(prefix=f"{server}-{cert_kind}-c{conc}-k{per_conn}-r{rep}-", dir=a.work)
    os.chmod(rdir, 0o755)
    cdir = f"{a.work}/cert-{cert_kind}"
    for src, dst in ((f"{cdir}/cert.pem", "cert.pem"), (f"{cdir}/key.pem", "key.pem"),
                     (f"{a.work}/users.htpasswd", "users.htpasswd"), (f"{a.work}/dovecot-users", "dovecot-users")):
        shutil.copyfile(src, f"{rdir}/{dst}")
        os.chmod(f"{rdir}/{dst}", 0o644)
    res = {"server": server, "cert": cert_kind, "concurrency": conc, "per_conn": per_conn,
           "messages": a.messages, "size": a.size, "procs": a.procs, "rep": rep, "bcrypt_cost": a.bcrypt_cost,
           "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if server == "bridge":
        res["auth_throttle"] = a.bridge_auth_throttle
        res["auth_cache"] = a.bridge_auth_cache or None
    port, sink_port = free_port(), free_port()
    env = dict(os.environ, LOADGEN_PASSWORD=a.password, AUTH_PORT=str(free_port()),
               HARAKA_INSTANCE=f"{h}/.peers/haraka", HARAKA_PKG=f"{h}/.peers/haraka-pkg")
    sink = srv = None
    try:
        if server != "null":
            sink = start("smtp-sink", ["smtp-sink", "-c", "-u", "nobody", "-m", "4096",
                                       f"127.0.0.1:{sink_port}", "4096"], f"{rdir}/sink.out")
            if not wait_banner(sink_port, 15, sink):
                return dict(res, status="sink-not-ready")
        maxproc = str(max(100, conc + 20))
        cmd = {
            "bridge": [a.bun, "src/cli.ts", "serve", "--listen", f"127.0.0.1:{port}",
                       "--tls-cert", f"{rdir}/cert.pem", "--tls-key", f"{rdir}/key.pem",
                       "--users", f"{rdir}/users.htpasswd", "--relay", f"smtp://127.0.0.1:{sink_port}",
                       "--max-size", "10485760", "--config", bridge_config(a, rdir, conc),
                       "--hostname", "bridge-bench.localhost", "--log-level", a.bridge_log_level],
            "postfix": [f"{h}/submission/postfix-start.sh", str(port), str(sink_port), rdir, maxproc],
            "haraka": [f"{h}/submission/haraka-start.sh", str(port), str(sink_port), rdir],
            "null": [sys.executable, f"{HERE}/null-responder.py", "--port", str(port),
                     "--cert", f"{rdir}/cert.pem", "--key", f"{rdir}/key.pem", "--procs", str(a.null_procs)],
        }[server]
        t0 = time.time()
        if server == "bridge":
            srv = subprocess.Popen(cmd, cwd=ROOT, stdout=open(f"{rdir}/server.log", "ab"),
                                   stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
            LIVE[srv.pid] = ("bridge", srv)
        else:
            srv = start(server, cmd, f"{rdir}/server.log", env)
        if not wait_banner(port, 60, srv):
            return dict(res, status="server-not-ready", log=tail(f"{rdir}/server.log"))
        res["ready_s"] = round(time.time() - t0, 2)
        time.sleep(a.settle)
        s0, m0 = sink_counts(f"{rdir}/sink.out")
        srv_pids = descendants(srv.pid)
        cpu_srv0 = cpu_seconds(srv_pids)
        cpu_sink0 = cpu_seconds([sink.pid]) if sink else 0
        lg = subprocess.run([sys.executable, f"{HERE}/loadgen.py", "--port", str(port), "-c", str(conc),
                             "-n", str(a.messages), "--per-conn", str(per_conn), "--size", str(a.size),
                             "--procs", str(a.procs), "--user", USER, "--time-limit", str(a.time_limit)],
                            env=env, capture_output=True, text=True, timeout=a.time_limit + 120)
        # Processes that came and went during the load (Postfix's smtpd) are counted by their
        # parent's cutime/cstime once reaped; the live ones are read now.
        srv_pids = sorted(set(srv_pids) | set(descendants(srv.pid)))
        cpu_srv1 = cpu_seconds(srv_pids)
        cpu_sink1 = cpu_seconds([sink.pid]) if sink else 0
        try:
            r = json.loads(lg.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return dict(res, status="loadgen-failed", stderr=lg.stderr[-800:])
        for k in ("concurrency", "messages", "per_conn", "size", "procs"):
            r.pop(k, None)
        res.update(r)
        # What the generator could send with each of its processes on a full core.
        res["gen_cap_mps"] = round(r["accept_mps"] * a.procs / r["gen_cores"], 1) if r["gen_cores"] else None
        res["cpu"] = {"server_s": round(cpu_srv1 - cpu_srv0, 2), "gen_s": r["gen_cpu_s"],
                      "sink_s": round(cpu_sink1 - cpu_sink0, 2),
                      "server_cores": round((cpu_srv1 - cpu_srv0) / r["wall_s"], 2)}
        if sink:
            end, t_all = time.time() + a.drain_timeout, None
            while time.time() < end:
                _, m1 = sink_counts(f"{rdir}/sink.out")
                if m1 - m0 >= r["accepted"]:
                    t_all = time.time()
                    break
                time.sleep(0.05)
            time.sleep(0.3)  # anything past the count would be a duplicate
            s1, m1 = sink_counts(f"{rdir}/sink.out")
            res["delivered"] = m1 - m0
            res["lost"] = max(0, r["accepted"] - res["delivered"])
            res["sink_sessions"] = s1 - s0
            if t_all is not None:
                res["e2e_s"] = round(t_all - r["start_epoch"], 3)
                res["e2e_mps"] = round(r["accepted"] / res["e2e_s"], 1)
        ok = (r["errors_total"] == 0 and res.get("lost", 0) == 0 and not r["timed_out"]
              and r["accepted"] == a.messages and r["resumed"] == 0)
        res["status"] = "ok" if ok else "degraded"
        return res
    finally:
        if server == "postfix" and srv is not None:
            subprocess.run([f"{h}/submission/postfix-stop.sh", rdir], timeout=60,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        stop(srv)
        stop(sink)
        if not a.keep:
            shutil.rmtree(rdir, ignore_errors=True)


def bridge_config(a, rdir, conc):
    """Per-address and per-network connection limits above the load's concurrency (Postfix
    exempts $mynetworks from its own, Haraka has none by default); with --bridge-auth-throttle
    exempt, the rate-limit plugin's AUTH throttle stays in the pipeline but exempts loopback
    (to see what the throttle costs)."""
    path = f"{rdir}/bridge.config.ts"
    n = max(100, 2 * conc)
    limits = f"limits: {{ maxConnectionsPerIp: {n}, maxConnectionsPerNetwork: {n} }}"
    rate = ', rateLimit: { exempt: ["127.0.0.0/8"] }' if a.bridge_auth_throttle == "exempt" else ""
    cache = f', authCache: {{ ttl: "{a.bridge_auth_cache}" }}' if a.bridge_auth_cache else ""
    with open(path, "w") as f:
        f.write(f"export default {{ {limits}{rate}{cache} }}\n")
    return path


def tail(path, n=600):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


# ---------------------------------------------------------------- table

def table(rows, servers):
    def med(rs, key):
        v = [r[key] for r in rs if r.get(key) is not None]
        return statistics.median(v) if v else None

    def fmt(x, w=8):
        return f"{'-' if x is None else (round(x, 1) if isinstance(x, float) else x)!s:>{w}}"

    print("\nMedians per configuration. acc/s: 250s after the dot per second of load; e2e/s: until the sink"
          "\nhad them all; srvcore/gencore: CPU cores used by the server tree / the generator during the load;"
          "\ngencap/s: the generator's ceiling (acc/s scaled to a full core per generator process)")
    print(f"{'cert':6} {'c':>4} {'k':>3} {'server':8} {'runs':>4} {'acc/s':>8} {'e2e/s':>8} {'p50ms':>8} "
          f"{'p99ms':>8} {'errors':>6} {'lost':>5} {'srvcore':>7} {'gencore':>7} {'gencap/s':>8}")
    configs = sorted({(r["cert"], r["concurrency"], r["per_conn"]) for r in rows})
    ratio_lines = []
    for cfg in configs:
        mps = {}
        for s in servers:
            rs = [r for r in rows if (r["cert"], r["concurrency"], r["per_conn"]) == cfg and r["server"] == s]
            good = [r for r in rs if "accept_mps" in r]
            errs = sum(r.get("errors_total", 0) for r in good) + (len(rs) - len(good))
            lost = sum(r.get("lost", 0) for r in good)
            mps[s] = med(good, "accept_mps")
            srvc = med([r["cpu"] for r in good if "cpu" in r], "server_cores")
            print(f"{cfg[0]:6} {cfg[1]:>4} {cfg[2]:>3} {s:8} {len(good):>4} {fmt(mps[s])} {fmt(med(good, 'e2e_mps'))} "
                  f"{fmt(med(good, 'p50_ms'))} {fmt(med(good, 'p99_ms'))} {errs:>6} {lost:>5} "
                  f"{fmt(srvc, 7)} {fmt(med(good, 'gen_cores'), 7)} {fmt(med(good, 'gen_cap_mps'))}")
        b = mps.get("bridge")
        parts = []
        for peer, target in (("postfix", 1.0), ("haraka", 3.0)):
            if b and mps.get(peer):
                q = b / mps[peer]
                parts.append(f"bridge/{peer} {q:.2f} ({'meets' if q >= target else 'below'} {target:g}x)")
        if parts:
            ratio_lines.append(f"{cfg[0]:6} c={cfg[1]:<4} k={cfg[2]:<3} " + "   ".join(parts))
    if ratio_lines:
        print("\nRatios of medians (targets: bridge >= 1x Postfix, >= 3x Haraka)")
        print("\n".join(ratio_lines))


# ---------------------------------------------------------------- main

def csv_ints(s):
    return [int(x) for x in s.split(",") if x]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--servers", default="bridge,postfix,haraka,null")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("-c", "--concurrency", type=csv_ints, default=[20, 100], help="list, e.g. 20,100")
    ap.add_argument("-k", "--per-conn", type=csv_ints, default=[1, 10], help="messages per connection, list")
    ap.add_argument("--certs", default="ecdsa,rsa", help="ecdsa (P-256) and/or rsa (2048)")
    ap.add_argument("-n", "--messages", type=int, default=2000, help="messages per run")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--procs", type=int, default=1, help="load generator processes")
    ap.add_argument("--null-procs", type=int, default=1, help="null responder processes")
    ap.add_argument("--time-limit", type=float, default=120, help="seconds of load per run at most")
    ap.add_argument("--drain-timeout", type=float, default=60)
    ap.add_argument("--settle", type=float, default=1.0, help="seconds between the banner and the load")
    ap.add_argument("--bcrypt-cost", type=int, default=5, help="cost of the users file's hash (bridge, Dovecot)")
    ap.add_argument("--password", default="bench-pass-1")
    ap.add_argument("--bridge-log-level", default="info")
    ap.add_argument("--bridge-auth-cache", default="", metavar="TTL",
                    help="turn the bridge's auth result cache on with this ttl (e.g. '1 minute'): a repeated "
                         "user and password skip bcrypt, as Haraka's plaintext compare never pays it")
    ap.add_argument("--bridge-auth-throttle", choices=("exempt", "on"), default="on",
                    help="exempt: rate-limit's AUTH throttle exempts 127.0.0.0/8; on: the built-in default")
    ap.add_argument("--bun", default=f"{ROOT}/node_modules/.bin/bun")
    ap.add_argument("--shared", default=os.path.realpath(f"{ROOT}/../shared/bench")
                    if os.path.isdir(f"{ROOT}/../shared/bench") else "/work/shared/bench")
    ap.add_argument("--harness-dir", default=os.environ.get("BENCH_DIR", "/tmp/smtp-bridge-bench"))
    ap.add_argument("--work", help="scratch directory (default: a new one under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep each run's directory (logs, configs)")
    ap.add_argument("--out", default=f"{ROOT}/bench/results/submission.jsonl")
    a = ap.parse_args()
    servers = [s for s in a.servers.split(",") if s]
    certs = [c for c in a.certs.split(",") if c]
    for s in servers:
        if s not in ("bridge", "postfix", "haraka", "null"):
            ap.error(f"unknown server {s}")
    for c in certs:
        if c not in ("ecdsa", "rsa"):
            ap.error(f"unknown cert {c}")
    if os.geteuid() != 0 and ("postfix" in servers or "haraka" in servers):
        ap.error("run as root: Postfix, Dovecot and smtp-sink -u need it")

    # Every connection is a socket at each end: raise the fd limit for this process and its children.
    want = 65536
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(stop_all)

    h = harness(a) if ("postfix" in servers or "haraka" in servers) else a.harness_dir
    a.work = os.path.abspath(a.work or tempfile.mkdtemp(prefix="submission-bench-"))
    os.makedirs(a.work, exist_ok=True)
    os.chmod(a.work, 0o755)
    for c in certs:
        make_cert(c, f"{a.work}/cert-{c}")
    make_users(a.work, a.password, a.bcrypt_cost)
    a.out = os.path.abspath(a.out)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    print(f"work dir {a.work}; results appended to {a.out}", file=sys.stderr)

    rows = []
    for rep in range(1, a.reps + 1):
        for cert in certs:
            for conc in a.concurrency:
                for k in a.per_conn:
                    for s in servers:
                        r = one_run(a, h, s, cert, conc, k, rep)
                        rows.append(r)
                        line = json.dumps(r)
                        with open(a.out, "a") as f:
                            f.write(line + "\n")
                        brief = {x: r.get(x) for x in ("server", "cert", "concurrency", "per_conn", "rep", "status",
                                                       "accepted", "errors_total", "lost", "accept_mps", "p50_ms",
                                                       "p99_ms", "gen_cores", "errors")}
                        print(json.dumps(brief), flush=True)
    table(rows, servers)
    bad = [r for r in rows if r.get("status") != "ok"]
    if bad:
        print(f"\n{len(bad)} run(s) not ok: " + ", ".join(
            f"{r['server']}/{r['cert']}/c{r['concurrency']}/k{r['per_conn']}/r{r['rep']}={r.get('status')}" for r in bad))
        sys.exit(1)


if __name__ == "__main__":
    main()
