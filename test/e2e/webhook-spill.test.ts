/**
 * A message past the spill threshold (256 KiB) reaches the webhook streamed from its temporary
 * file: the request body is chunked (never assembled in memory), arrives byte for byte, and its
 * signature is the same HMAC a receiver computes over `<timestamp>.<body>`, in both formats.
 */
import { afterEach, describe, expect, it } from "vitest"
import { createHmac } from "node:crypto"
import * as fs from "node:fs"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { startBridge, stripTrace, type TestBridge } from "../support/bridge.ts"
import { connect } from "../support/SmtpClient.ts"

interface Seen {
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
}

/** A real HTTP server on loopback that records every request and answers `status` (200 by default). */
const listen = (status = 200): Promise<{ url: string; seen: Array<Seen>; close: () => Promise<void> }> =>
  new Promise((resolve) => {
    const seen: Array<Seen> = []
    const server = http.createServer((req, res) => {
      const parts: Array<Buffer> = []
      req.on("data", (c: Buffer) => parts.push(c))
      req.on("end", () => {
        seen.push({ headers: req.headers, body: Buffer.concat(parts) })
        res.writeHead(status, status === 200 ? {} : { location: "http://127.0.0.1:9/elsewhere" }).end("ok")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/inbound`,
        seen,
        close: () => new Promise((done) => {
          server.closeAllConnections()
          server.close(() => done())
        })
      })
    })
  })

/** `size` bytes of numbered lines of varied printable text: a reordered or lost chunk shows. */
const messageOf = (size: number): string => {
  const lines: Array<string> = ["Subject: spilled\r\n", "\r\n"]
  let length = lines.join("").length
  for (let n = 0; length < size; n++) {
    let text = `${n} `
    for (let i = 0; i < 70; i++) text += String.fromCharCode(33 + ((n * 31 + i * 7) % 94))
    // A leading dot would be dot-stuffed on the wire; the line keeps it once unstuffed.
    const line = `${n % 97 === 0 ? "." : ""}${text}\r\n`
    lines.push(line)
    length += line.length
  }
  return lines.join("")
}

const stuff = (text: string): string => text.replace(/^\./gm, "..")

const send = async (bridge: TestBridge, text: string): Promise<string> => {
  const c = await connect(bridge.port, { timeoutMs: 30_000 })
  try {
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const wire = stuff(text)
    for (let i = 0; i < wire.length; i += 64 * 1024) c.send(wire.slice(i, i + 64 * 1024))
    return await c.command(".")
  } finally {
    c.close()
  }
}

const cleanups: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

const setup = async (format: "raw" | "json", status = 200) => {
  const hook = await listen(status)
  cleanups.push(hook.close)
  const bridge = await startBridge({
    trust: ["127.0.0.0/8"],
    transports: { default: { type: "webhook", url: hook.url, secret: "k3y", format } }
  })
  cleanups.push(bridge.stop)
  return { hook, bridge }
}

const signature = (headers: http.IncomingHttpHeaders, body: Buffer): string =>
  `v1=${createHmac("sha256", "k3y").update(`${String(headers["x-smtp-bridge-timestamp"])}.`).update(body).digest("hex")}`

describe("Webhook, a message that spilled to disk", () => {
  const text = messageOf(3 * 1024 * 1024)

  it("answers 250 and POSTs a 3 MB message as a chunked message/rfc822 body, byte-exact and validly signed", async () => {
    const { hook, bridge } = await setup("raw")
    expect(await send(bridge, text)).toMatch(/^250 2\.0\.0 /)
    expect(hook.seen.length).toBe(1)
    const { headers, body } = hook.seen[0]!
    expect(headers["content-type"]).toBe("message/rfc822")
    expect(headers["transfer-encoding"]).toBe("chunked")
    expect(headers["content-length"]).toBeUndefined()
    expect(stripTrace(body) === text).toBe(true)
    expect(headers["x-smtp-bridge-signature"]).toBe(signature(headers, body))
  }, 60_000)

  it("answers 250 and POSTs a 3 MB message as a chunked JSON document whose base64 decodes byte-exact, validly signed", async () => {
    const { hook, bridge } = await setup("json")
    expect(await send(bridge, text)).toMatch(/^250 2\.0\.0 /)
    expect(hook.seen.length).toBe(1)
    const { headers, body } = hook.seen[0]!
    expect(headers["content-type"]).toBe("application/json")
    expect(headers["transfer-encoding"]).toBe("chunked")
    expect(headers["x-smtp-bridge-signature"]).toBe(signature(headers, body))
    const doc = JSON.parse(body.toString("utf8"))
    const raw = Buffer.from(doc.message, "base64")
    expect(doc.size).toBe(raw.byteLength)
    expect(stripTrace(raw) === text).toBe(true)
    expect(doc.envelope.recipients).toEqual([{ address: "bob@example.net" }])
  }, 60_000)

  it("answers 451 4.4.0 when the webhook answers a streamed body with 307, and does not follow it", async () => {
    const { hook, bridge } = await setup("raw", 307)
    expect(await send(bridge, text)).toMatch(/^451 4\.4\.0 .*HTTP 307/)
    expect(hook.seen.length).toBe(1)
    expect(stripTrace(hook.seen[0]!.body) === text).toBe(true)
  }, 60_000)

  it("with a spool, answers 250 and POSTs the 3 MB message from the spool's file, byte-exact and validly signed", async () => {
    const hook = await listen()
    cleanups.push(hook.close)
    const spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-webhook-spool-"))
    cleanups.push(() => Promise.resolve(fs.rmSync(spoolDir, { recursive: true, force: true })))
    const bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      transports: { default: { type: "webhook", url: hook.url, secret: "k3y", format: "json" } },
      spool: { dir: spoolDir, initialDelay: 200 }
    })
    cleanups.push(bridge.stop)
    expect(await send(bridge, text)).toMatch(/^250 2\.0\.0 /)
    const deadline = Date.now() + 20_000
    while (hook.seen.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    const { headers, body } = hook.seen[0]!
    expect(headers["transfer-encoding"]).toBe("chunked")
    expect(headers["x-smtp-bridge-signature"]).toBe(signature(headers, body))
    expect(stripTrace(Buffer.from(JSON.parse(body.toString("utf8")).message, "base64")) === text).toBe(true)
  }, 60_000)

  it("still sends a message held in memory in one piece with its Content-Length", async () => {
    const { hook, bridge } = await setup("raw")
    const small = messageOf(4096)
    expect(await send(bridge, small)).toMatch(/^250 2\.0\.0 /)
    const { headers, body } = hook.seen[0]!
    expect(headers["content-length"]).toBe(String(body.byteLength))
    expect(stripTrace(body) === small).toBe(true)
    expect(headers["x-smtp-bridge-signature"]).toBe(signature(headers, body))
  })
})
