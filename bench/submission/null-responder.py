#!/usr/bin/env python3
"""A TLS SMTP responder that accepts everything and keeps nothing: the load generator's ceiling.

  null-responder.py --port PORT --cert cert.pem --key key.pem [--procs 1]

Answers 220, EHLO (STARTTLS, AUTH PLAIN, SIZE), STARTTLS (TLS 1.3 only), AUTH (235 for any
credentials), MAIL/RCPT (250), DATA (354, reads to the lone dot, 250), RSET/NOOP (250), QUIT
(221). Loopback use only. --procs P forks P accepting processes on one port (SO_REUSEPORT).
Stops on SIGTERM/SIGINT (the parent stops its forked children).
"""
import argparse
import asyncio
import os
import signal
import ssl
import sys

IDLE = 60  # seconds a session may stay silent


async def session(reader, writer, ctx):
    async def line():
        return await asyncio.wait_for(reader.readline(), IDLE)

    tls = False
    try:
        writer.write(b"220 null.localhost ESMTP null responder\r\n")
        while True:
            raw = await line()
            if not raw:
                return
            verb = raw[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                ext = b"250-AUTH PLAIN\r\n" if tls else b"250-STARTTLS\r\n"
                writer.write(b"250-null.localhost\r\n" + ext + b"250-SIZE 10485760\r\n250 8BITMIME\r\n")
            elif raw[:8].upper() == b"STARTTLS" and not tls:
                writer.write(b"220 2.0.0 Ready to start TLS\r\n")
                await writer.drain()
                await asyncio.wait_for(writer.start_tls(ctx), IDLE)
                tls = True
            elif verb == b"AUTH":
                writer.write(b"235 2.7.0 Authentication successful\r\n")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                writer.write(b"250 2.0.0 OK\r\n")
            elif verb == b"DATA":
                writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                while True:
                    d = await line()
                    if not d:
                        return
                    if d == b".\r\n" or d == b".\n":
                        break
                writer.write(b"250 2.0.0 Ok: discarded\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 2.0.0 Bye\r\n")
                await writer.drain()
                return
            else:
                writer.write(b"502 5.5.2 Not implemented\r\n")
    except (asyncio.TimeoutError, ConnectionError, ssl.SSLError, OSError):
        pass
    finally:
        writer.close()


async def serve(a, ctx):
    server = await asyncio.start_server(lambda r, w: session(r, w, ctx), "127.0.0.1", a.port,
                                        reuse_port=True, backlog=4096, limit=65536)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--procs", type=int, default=1)
    a = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(a.cert, a.key)
    children = []
    for _ in range(a.procs - 1):
        pid = os.fork()
        if pid == 0:
            asyncio.run(serve(a, ctx))
            os._exit(0)
        children.append(pid)
    try:
        asyncio.run(serve(a, ctx))
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except OSError:
                pass
    sys.exit(0)


if __name__ == "__main__":
    main()
