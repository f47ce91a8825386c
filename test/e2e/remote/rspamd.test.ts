/**
 * rspamd over HTTP (plugins/rspamd) through real SMTP sessions: against a real rspamd with
 * Debian's rules (GTUBE rejected, a clean message tagged), and against HTTP servers written here
 * that answer slowly, hugely, or with actions and header edits a real one rarely gives.
 */
import * as http from "node:http"
import type * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { type Dnsmasq, startDnsmasq } from "../../support/dnsmasq.ts"
import { type Rspamd, rspamdAvailable, startRspamd } from "../../support/rspamdWorker.ts"
import { connect } from "../../support/SmtpClient.ts"
import { needTool } from "../../support/tools.ts"

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

/** C: a whole transaction; the reply to the final dot. */
const send = async (port: number, message: string, options: { readonly to?: ReadonlyArray<string> } = {}) => {
  const c = await connect(port, { timeoutMs: 20_000 })
  try {
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.example.org")).toMatch(/^250-/)
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    for (const to of options.to ?? ["bob@example.net"]) expect(await c.command(`RCPT TO:<${to}>`)).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    return await c.command(`${message}\r\n.`)
  } finally {
    c.close()
  }
}

const clean = [
  "From: Alice <alice@example.org>",
  "To: Bob <bob@example.net>",
  "Subject: lunch",
  "Message-ID: <lunch-1@example.org>",
  "Date: Wed, 02 Dec 2026 08:00:00 +0000",
  // Forged by the client: the bridge's own verdict replaces them.
  "X-Spam-Status: No, score=-100.00 required=15.00",
  "X-Spam: No",
  "",
  "Shall we meet for lunch at noon on Thursday?"
].join("\r\n")

describe.skipIf(!needTool("rspamd", rspamdAvailable()))("against rspamd's normal worker", () => {
  let dns: Dnsmasq
  let scanner: Rspamd
  let bridge: TestBridge
  beforeAll(async () => {
    dns = await startDnsmasq({ lines: [] })
    scanner = await startRspamd({ dnsPort: dns.port, local: { "milter_headers.conf": "use = [\"x-spamd-bar\"];\nskip_local = false;\n" } })
    bridge = await startBridge({ trust: ["127.0.0.0/8"], rspamd: scanner.url })
  }, 90_000)
  afterAll(async () => {
    await bridge?.stop()
    await scanner?.stop()
    await dns?.stop()
  })

  it("rejects the GTUBE test message with 554 5.7.1 and rspamd's message, and delivers nothing", async () => {
    const reply = await send(bridge.port, `From: alice@example.org\r\nTo: bob@example.net\r\nSubject: test\r\n\r\n${gtube}`)
    expect(reply).toBe("554 5.7.1 Gtube pattern")
    expect(bridge.delivered()).toHaveLength(0)
  }, 30_000)

  it("passes a clean message with X-Spam-Action: no action, its score, rspamd's X-Spamd-Bar, and no forged X-Spam header", async () => {
    expect(await send(bridge.port, clean)).toMatch(/^250 /)
    const message = bridge.delivered().at(-1)!.toString("utf8")
    const head = message.slice(0, message.indexOf("\r\n\r\n"))
    expect(head).toMatch(/^X-Spam-Action: no action\r$/m)
    expect(head).toMatch(/^X-Spam-Status: No, score=-?\d+\.\d\d required=15\.00\r$/m)
    expect(head).toMatch(/^X-Spamd-Bar: /m)
    expect(head.match(/^X-Spam-Status:/gm)).toHaveLength(1)
    expect(head).not.toMatch(/score=-100/)
    expect(head).not.toMatch(/^X-Spam: /m)
  }, 30_000)
})

/** An rspamd stand-in: `answer` gets each request (headers and the whole body, counted). */
const fakeRspamd = async (answer: (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void) => {
  const requests: Array<{ headers: http.IncomingHttpHeaders; rawHeaders: Array<string>; body: Buffer }> = []
  const sockets = new Set<net.Socket>()
  const server = http.createServer((req, res) => {
    const parts: Array<Buffer> = []
    req.on("data", (b: Buffer) => parts.push(b))
    req.on("end", () => {
      const body = Buffer.concat(parts)
      requests.push({ headers: req.headers, rawHeaders: req.rawHeaders, body })
      answer(req, body, res)
    })
  })
  server.on("connection", (s) => {
    sockets.add(s)
    s.on("close", () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    requests,
    stop: () => new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(() => resolve())
    })
  }
}

const json = (res: http.ServerResponse, value: unknown) => {
  const text = JSON.stringify(value)
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

describe("rspamd's answers and failures", () => {
  it("streams a spilled message with its Content-Length and sends the envelope as From, Rcpt, IP, Helo and Queue-Id", async () => {
    const fake = await fakeRspamd((_req, _body, res) => json(res, { action: "no action", score: 0, required_score: 15 }))
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], rspamd: fake.url, limits: { spillThreshold: "16KB" } })
    try {
      const body = Array.from({ length: 5000 }, (_, i) => `line ${i} of a message large enough to spill`).join("\r\n")
      expect(await send(bridge.port, `Subject: big\r\n\r\n${body}`, { to: ["bob@example.net", "carol@example.net"] })).toMatch(/^250 /)
      const request = fake.requests[0]!
      expect(Number(request.headers["content-length"])).toBe(request.body.byteLength)
      expect(request.body.byteLength).toBeGreaterThan(200_000)
      expect(request.body.toString("utf8")).toContain("line 4999 of a message")
      expect(request.headers.from).toBe("alice@example.org")
      expect(request.rawHeaders.filter((_, i, all) => i % 2 === 1 && all[i - 1] === "Rcpt")).toEqual(["bob@example.net", "carol@example.net"])
      expect(request.headers.ip).toBe("127.0.0.1")
      expect(request.headers.helo).toBe("client.example.org")
      expect(request.headers["queue-id"]).toMatch(/^[0-9A-F]+$/)
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 30_000)

  it("answers 451 4.7.1 when rspamd does not answer within the timeout, and passes unscanned with onError: accept", async () => {
    const fake = await fakeRspamd(() => {})
    const strict = await startBridge({ trust: ["127.0.0.0/8"], rspamd: { url: fake.url, timeout: "500 millis" } })
    const lenient = await startBridge({ trust: ["127.0.0.0/8"], rspamd: { url: fake.url, timeout: "500 millis", onError: "accept" } })
    try {
      expect(await send(strict.port, clean)).toBe("451 4.7.1 Message could not be scanned, try again later")
      expect(strict.delivered()).toHaveLength(0)
      expect(await send(lenient.port, clean)).toMatch(/^250 /)
      expect(lenient.delivered()[0]!.toString("utf8")).not.toMatch(/^X-Spam-Action:/m)
    } finally {
      await strict.stop()
      await lenient.stop()
      await fake.stop()
    }
  }, 30_000)

  it("answers 451 4.7.1 to an answer past maxAnswer, without reading it all", async () => {
    const fake = await fakeRspamd((_req, _body, res) => {
      res.writeHead(200, { "content-type": "application/json" })
      const chunk = Buffer.alloc(64 * 1024, 32)
      let sent = 0
      const pump = () => {
        while (sent < 200 && res.write(chunk)) sent++
        if (sent < 200) res.once("drain", pump)
        else res.end()
      }
      pump()
    })
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], rspamd: { url: fake.url, maxAnswer: 65536 } })
    try {
      expect(await send(bridge.port, clean)).toBe("451 4.7.1 Message could not be scanned, try again later")
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 30_000)

  it("answers 451 4.7.1 to an HTTP error, a reply without an action, and a header that never ends", async () => {
    const fake = await fakeRspamd((req, _body, res) => {
      if (req.headers.rcpt === "error@example.net") {
        res.writeHead(500)
        res.end("oops")
      } else if (req.headers.rcpt === "noaction@example.net") json(res, { score: 1 })
      else {
        // Header lines forever, never the blank line: bounded at 16KB.
        const socket = res.socket!
        socket.write("HTTP/1.1 200 OK\r\n")
        // One line a tick, 1 MB at most: the bridge must give up long before.
        let sent = 0
        const pump = () => {
          if (socket.destroyed || sent > 1024 * 1024) return
          sent += 50
          socket.write("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n")
          setImmediate(pump)
        }
        pump()
      }
    })
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], rspamd: { url: fake.url, timeout: "10 seconds" } })
    try {
      for (const to of ["error@example.net", "noaction@example.net", "forever@example.net"]) {
        const started = Date.now()
        expect(await send(bridge.port, clean, { to: [to] })).toBe("451 4.7.1 Message could not be scanned, try again later")
        expect(Date.now() - started).toBeLessThan(5_000)
      }
      expect(bridge.delivered()).toHaveLength(0)
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 30_000)

  it("rewrites the subject, adds rspamd's milter headers with their line breaks flattened, and answers soft reject with 451", async () => {
    const fake = await fakeRspamd((req, _body, res) =>
      req.headers.rcpt === "soft@example.net"
        ? json(res, { action: "soft reject", messages: { smtp_message: "Try later\r\n250 ok" } })
        : json(res, {
          action: "rewrite subject",
          score: 7,
          required_score: 15,
          subject: "*** SPAM *** lunch",
          milter: { add_headers: { "X-Rspamd-Test": { value: "a\r\nBcc: victim@example.com", order: 0 }, "Bad Name": "x" }, remove_headers: { Subject: 0 } }
        })
    )
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], rspamd: fake.url })
    try {
      expect(await send(bridge.port, clean)).toMatch(/^250 /)
      const message = bridge.delivered()[0]!.toString("utf8")
      const head = message.slice(0, message.indexOf("\r\n\r\n"))
      expect(head.match(/^Subject: .*$/gm)).toEqual(["Subject: *** SPAM *** lunch"])
      expect(head).toMatch(/^X-Rspamd-Test: a Bcc: victim@example\.com\r$/m)
      expect(head).not.toMatch(/^Bcc:/m)
      expect(head).not.toMatch(/^Bad Name:/m)
      expect(head).toMatch(/^X-Spam-Status: Yes, score=7\.00 required=15\.00\r$/m)
      expect(await send(bridge.port, clean, { to: ["soft@example.net"] })).toBe("451 4.7.1 Try later??250 ok")
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  }, 30_000)
})
