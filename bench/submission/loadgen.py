#!/usr/bin/env python3
"""Submission load generator: STARTTLS (TLS 1.3 only) + AUTH PLAIN + K messages per connection.

  loadgen.py --port PORT [-c 20] [-n 2000] [--per-conn 1] [--size 1024] [--procs 1]
             [--user alice@example.com] [--password PW | env LOADGEN_PASSWORD] [--time-limit 120]

Every session: connect, 220, EHLO, STARTTLS, a full TLS 1.3 handshake (no certificate
verification, no session resumption: each handshake is fresh), EHLO, AUTH PLAIN, then K times
MAIL FROM / RCPT TO / DATA / the message (no RSET between them), then QUIT. One command at a
time (no pipelining). C workers each run one session after another until N messages have been
tried; --procs P splits the workers and the messages across P processes.

Prints one JSON object on stdout: accepted (250 after the final dot), errors by kind
("stage:code" or "stage:exception"), msgs/s, latency percentiles and the generator's own CPU
seconds. Latency of a message: from the moment it could start (the connect for a session's first
message, the previous 250 for the others) to the 250 after its dot; QUIT is not included.
Also: session latency (connect to last 250) and handshake latency (connect to 235 after AUTH).
"""
import argparse
import asyncio
import base64
import json
import os
import resource
import ssl
import subprocess
import sys
import time


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(q / 100 * (len(sorted_values) - 1)))))
    return sorted_values[i]


def make_message(size, sender, rcpt, seq):
    """A message of `size` bytes (headers and the final CRLF included; at least the headers)."""
    head = (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: submission bench {seq}\r\n"
            f"Message-ID: <bench-{seq}@loadgen.localhost>\r\n\r\n").encode()
    body_len = max(0, size - len(head))
    full, rest = divmod(body_len, 78)
    lines = [b"x" * 76 + b"\r\n"] * full
    if rest >= 3:
        lines.append(b"x" * (rest - 2) + b"\r\n")
    elif rest and lines:
        lines[-1] = b"x" * (76 + rest) + b"\r\n"  # 1 or 2 bytes left: one line a little longer
    elif rest:
        lines.append(b"x\r\n")
    return head + b"".join(lines)


class SmtpError(Exception):
    def __init__(self, kind):
        super().__init__(kind)
        self.kind = kind


class Session:
    def __init__(self, reader, writer, timeout):
        self.r, self.w, self.timeout = reader, writer, timeout

    async def reply(self, stage):
        """Reads a (multi-line) reply; returns its code."""
        while True:
            try:
                line = await asyncio.wait_for(self.r.readline(), self.timeout)
            except asyncio.TimeoutError:
                raise SmtpError(f"{stage}:timeout") from None
            except (ConnectionError, ssl.SSLError) as e:
                raise SmtpError(f"{stage}:{type(e).__name__}") from None
            if not line:
                raise SmtpError(f"{stage}:closed")
            if len(line) < 4 or line[3:4] != b"-":
                return line[:3].decode("ascii", "replace")

    async def cmd(self, stage, data, expect):
        self.w.write(data)
        code = await self.reply(stage)
        if code != expect:
            raise SmtpError(f"{stage}:{code}")


class Stats:
    def __init__(self):
        self.accepted = 0
        self.failed = 0
        self.sessions = 0
        self.resumed = 0
        self.errors = {}
        self.msg_lat = []
        self.session_lat = []
        self.handshake_lat = []
        self.tls = {}

    def error(self, kind):
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def run_worker(a, pool, stats, ctx, deadline, messages, auth):
    sender, rcpt = a.mail_from.encode(), a.rcpt_to.encode()
    while time.monotonic() < deadline:
        k = min(a.per_conn, pool[0])
        if k <= 0:
            return
        pool[0] -= k
        done = 0
        writer = None
        t0 = time.monotonic()
        stats.sessions += 1
        try:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(a.host, a.port, limit=65536), a.timeout)
            except asyncio.TimeoutError:
                raise SmtpError("connect:timeout") from None
            except OSError as e:
                raise SmtpError(f"connect:{type(e).__name__}") from None
            s = Session(reader, writer, a.timeout)
            code = await s.reply("banner")
            if code != "220":
                raise SmtpError(f"banner:{code}")
            await s.cmd("ehlo", b"EHLO loadgen.localhost\r\n", "250")
            await s.cmd("starttls", b"STARTTLS\r\n", "220")
            try:
                await asyncio.wait_for(writer.start_tls(ctx, server_hostname=None), a.timeout)
            except asyncio.TimeoutError:
                raise SmtpError("tls:timeout") from None
            except (OSError, ssl.SSLError) as e:
                raise SmtpError(f"tls:{type(e).__name__}") from None
            obj = writer.get_extra_info("ssl_object")
            if obj is not None:
                if obj.session_reused:
                    stats.resumed += 1
                key = f"{obj.version()} {obj.cipher()[0]}"
                stats.tls[key] = stats.tls.get(key, 0) + 1
            await s.cmd("ehlo2", b"EHLO loadgen.localhost\r\n", "250")
            await s.cmd("auth", auth, "235")
            t_ready = time.monotonic()
            stats.handshake_lat.append(t_ready - t0)
            t_prev = t0
            for _ in range(k):
                await s.cmd("mail", b"MAIL FROM:<" + sender + b">\r\n", "250")
                await s.cmd("rcpt", b"RCPT TO:<" + rcpt + b">\r\n", "250")
                await s.cmd("data", b"DATA\r\n", "354")
                body = messages[(stats.accepted + stats.failed) % len(messages)]
                await s.cmd("dot", body + b".\r\n", "250")
                now = time.monotonic()
                stats.msg_lat.append(now - t_prev)
                t_prev = now
                stats.accepted += 1
                done += 1
            stats.session_lat.append(t_prev - t0)
            try:
                writer.write(b"QUIT\r\n")
                await asyncio.wait_for(s.reply("quit"), a.timeout)
            except SmtpError:
                pass  # the messages are in; a QUIT answer lost is not a failed message
        except SmtpError as e:
            stats.error(e.kind)
            stats.failed += 1  # the message in flight
            pool[0] += k - done - 1  # the rest of this session's share goes back to the pool
        except Exception as e:  # noqa: BLE001 - counted by kind, never hides a run
            stats.error(f"other:{type(e).__name__}")
            stats.failed += 1
            pool[0] += k - done - 1
        finally:
            if writer is not None:
                writer.close()
                try:
                    await asyncio.wait_for(writer.wait_closed(), 2)
                except Exception:  # noqa: BLE001
                    pass


async def run_proc(a, workers, messages_n):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    # No resumption: no session is ever handed back to a handshake, and no tickets are asked for.
    ctx.options |= ssl.OP_NO_TICKET
    messages = [make_message(a.size, a.mail_from, a.rcpt_to, i) for i in range(16)]
    auth = b"AUTH PLAIN " + base64.b64encode(b"\0" + a.user.encode() + b"\0" + a.password.encode()) + b"\r\n"
    stats = Stats()
    pool = [messages_n]
    start_epoch = time.time()
    t0 = time.monotonic()
    deadline = t0 + a.time_limit
    tasks = [asyncio.create_task(run_worker(a, pool, stats, ctx, deadline, messages, auth)) for _ in range(workers)]
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), a.time_limit + a.timeout + 5)
    except asyncio.TimeoutError:
        timed_out = True
    wall = time.monotonic() - t0
    if time.monotonic() >= deadline or timed_out:
        timed_out = timed_out or pool[0] > 0
    return stats, start_epoch, wall, timed_out


def proc_main(a, workers, messages_n):
    ru0 = resource.getrusage(resource.RUSAGE_SELF)  # the interpreter's start-up is not counted
    stats, start_epoch, wall, timed_out = asyncio.run(run_proc(a, workers, messages_n))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "accepted": stats.accepted, "failed": stats.failed, "sessions": stats.sessions,
        "resumed": stats.resumed, "errors": stats.errors, "tls": stats.tls,
        "start_epoch": start_epoch, "wall_s": wall, "timed_out": timed_out,
        "cpu_s": (ru.ru_utime + ru.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
        "msg_lat": [round(x * 1000, 3) for x in stats.msg_lat],
        "session_lat": [round(x * 1000, 3) for x in stats.session_lat],
        "handshake_lat": [round(x * 1000, 3) for x in stats.handshake_lat],
    }


def split(total, parts):
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def summary(a, parts):
    accepted = sum(p["accepted"] for p in parts)
    errors = {}
    tls = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
        for k, v in p["tls"].items():
            tls[k] = tls.get(k, 0) + v
    start = min(p["start_epoch"] for p in parts)
    end = max(p["start_epoch"] + p["wall_s"] for p in parts)
    wall = max(1e-9, end - start)
    cpu = sum(p["cpu_s"] for p in parts)

    def pct(key):
        v = sorted(x for p in parts for x in p[key])
        return {"p50": percentile(v, 50), "p90": percentile(v, 90), "p99": percentile(v, 99),
                "max": v[-1] if v else None}

    msg = pct("msg_lat")
    return {
        "concurrency": a.concurrency, "messages": a.messages, "per_conn": a.per_conn, "size": a.size,
        "procs": a.procs, "accepted": accepted, "failed": sum(p["failed"] for p in parts),
        "errors_total": sum(errors.values()), "errors": errors,
        "sessions": sum(p["sessions"] for p in parts), "resumed": sum(p["resumed"] for p in parts),
        "tls": tls, "timed_out": any(p["timed_out"] for p in parts),
        "start_epoch": round(start, 3), "wall_s": round(wall, 3),
        "accept_mps": round(accepted / wall, 1),
        "p50_ms": msg["p50"], "p99_ms": msg["p99"],
        "latency_ms": {"message": msg, "session": pct("session_lat"), "handshake": pct("handshake_lat")},
        "gen_cpu_s": round(cpu, 3), "gen_cores": round(cpu / wall, 3),
        "gen_cpu_ms_per_msg": round(cpu * 1000 / accepted, 3) if accepted else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-c", "--concurrency", type=int, default=20)
    ap.add_argument("-n", "--messages", type=int, default=2000)
    ap.add_argument("--per-conn", type=int, default=1, help="messages per connection (no RSET)")
    ap.add_argument("--size", type=int, default=1024, help="message size in bytes, headers included")
    ap.add_argument("--procs", type=int, default=1, help="split the workers across P processes")
    ap.add_argument("--user", default="alice@example.com")
    ap.add_argument("--password", default=os.environ.get("LOADGEN_PASSWORD"))
    ap.add_argument("--mail-from", default="alice@example.com")
    ap.add_argument("--rcpt-to", default="bob@example.net")
    ap.add_argument("--timeout", type=float, default=30, help="seconds per reply")
    ap.add_argument("--time-limit", type=float, default=120, help="no new session after this many seconds")
    ap.add_argument("--child", nargs=2, type=int, metavar=("WORKERS", "MESSAGES"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.password is None:
        ap.error("--password or LOADGEN_PASSWORD is required")
    if a.child:
        print(json.dumps(proc_main(a, a.child[0], a.child[1])), flush=True)
        return
    if a.concurrency < 1 or a.messages < 1 or a.per_conn < 1 or a.procs < 1:
        ap.error("-c, -n, --per-conn and --procs must be at least 1")
    procs = min(a.procs, a.concurrency)
    if procs == 1:
        parts = [proc_main(a, a.concurrency, a.messages)]
    else:
        base = [sys.executable, os.path.abspath(__file__)] + [x for x in sys.argv[1:]]
        children = []
        for w, m in zip(split(a.concurrency, procs), split(a.messages, procs)):
            children.append(subprocess.Popen(base + ["--child", str(w), str(m)], stdout=subprocess.PIPE))
        parts = []
        for ch in children:
            out, _ = ch.communicate(timeout=a.time_limit + a.timeout + 60)
            parts.append(json.loads(out.decode().strip().splitlines()[-1]))
    print(json.dumps(summary(a, parts)), flush=True)


if __name__ == "__main__":
    main()
