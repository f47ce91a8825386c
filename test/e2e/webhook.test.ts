import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Either, Logger, Stream } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as Notes from "../../src/pipeline/Notes.ts"
import { mailbox } from "../../src/protocol/Address.ts"
import * as Webhook from "../../src/transport/Webhook.ts"
import type { OutgoingMessage } from "../../src/transport/Transport.ts"
import { freePort } from "../support/runtimes.ts"

interface Received {
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
}

/** A real HTTP server on loopback that answers with the given statuses in turn. */
const server = (statuses: ReadonlyArray<number>, delayMs = 0) =>
  Effect.acquireRelease(
    Effect.async<{ url: string; received: Array<Received> }>((resume) => {
      const received: Array<Received> = []
      let n = 0
      const s = http.createServer((req, res) => {
        const parts: Array<Buffer> = []
        req.on("data", (c: Buffer) => parts.push(c))
        req.on("end", () => {
          received.push({ headers: req.headers, body: Buffer.concat(parts) })
          const status = statuses[Math.min(n++, statuses.length - 1)]!
          setTimeout(() => res.writeHead(status).end("ok"), delayMs)
        })
      })
      s.listen(0, "127.0.0.1", () => {
        const port = (s.address() as AddressInfo).port
        resume(Effect.succeed({ url: `http://127.0.0.1:${port}/inbound`, received, close: () => s.close() }))
      })
    }),
    (h) => Effect.sync(() => (h as unknown as { close: () => void }).close())
  )

const message = (body: string): OutgoingMessage => ({
  id: "TX1",
  envelope: {
    mailFrom: mailbox("alice", "example.com"),
    mailParams: { raw: {} },
    recipients: [{ mailbox: mailbox("bob", "example.net"), params: { raw: {} } }]
  },
  session: {
    id: "S1", remoteAddress: "127.0.0.1", remotePort: 1, localAddress: "127.0.0.1", localPort: 2,
    hostname: "bridge.test", tls: undefined, helo: { verb: "EHLO", name: "client" }, user: "alice@example.com",
    authMechanism: "PLAIN", notes: Notes.make()
  },
  size: Buffer.byteLength(body),
  content: () => Stream.succeed(new TextEncoder().encode(body))
})

describe("Webhook transport", () => {
  it.scoped("POSTs the raw message signed with HMAC-SHA256 over timestamp and body, and reports 250", () =>
    Effect.gen(function*() {
      const upstream = yield* server([200])
      const hook = yield* Webhook.make({ url: upstream.url, secret: "k3y" })
      const report = yield* hook.deliver(message("Subject: hi\r\n\r\nbody\r\n"))
      expect(report.recipients[0]!.reply.code).toBe(250)
      const req = upstream.received[0]!
      expect(req.headers["content-type"]).toBe("message/rfc822")
      expect(req.body.toString()).toBe("Subject: hi\r\n\r\nbody\r\n")
      // Read from a stream (as from the spool's file), but small: sent whole, with its length.
      expect(req.headers["content-length"]).toBe(String(req.body.byteLength))
      const ts = String(req.headers["x-smtp-bridge-timestamp"])
      expect(req.headers["x-smtp-bridge-signature"]).toBe(`v1=${Webhook.sign("k3y", ts, req.body)}`)
      expect(req.headers["x-smtp-bridge-mail-from"]).toBe("<alice@example.com>")
      expect(req.headers["x-smtp-bridge-rcpt-to"]).toBe("<bob@example.net>")
    }))

  it.scoped("streams a message that is not in memory: the receiver has its first bytes before the last chunk is read", () =>
    Effect.gen(function*() {
      const firstBytes = yield* Deferred.make<void>()
      const upstream = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const s = http.createServer((req, res) => {
            req.once("data", () => Effect.runSync(Deferred.succeed(firstBytes, undefined)))
            req.resume()
            req.on("end", () => res.writeHead(200).end("ok"))
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.sync(() => s.close())
      )
      // Past 256 KiB: a smaller message read from a file is sent in one piece.
      const head = new TextEncoder().encode(`Subject: big\r\n\r\n${"x".repeat(300 * 1024)}\r\n`)
      const last = new TextEncoder().encode("the end\r\n")
      // The last chunk is produced only once the receiver has bytes: a webhook that collected the
      // whole message before sending would never get there.
      const gated: OutgoingMessage = {
        ...message(""),
        size: head.byteLength + last.byteLength,
        content: () => Stream.concat(Stream.succeed(head), Stream.fromEffect(Effect.as(Deferred.await(firstBytes), last)))
      }
      const hook = yield* Webhook.make({ url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/inbound`, timeout: 5000 })
      const report = yield* hook.deliver(gated)
      expect(report.recipients[0]!.reply.code).toBe(250)
    }))

  it.scoped("signs a streamed message in a first pass over its content and sends the same bytes in a second", () =>
    Effect.gen(function*() {
      const upstream = yield* server([200])
      let runs = 0
      const parts = ["Subject: two passes\r\n", "\r\n", "a".repeat(300_000), "\r\n"].map((p) => new TextEncoder().encode(p))
      const streamed: OutgoingMessage = {
        ...message(""),
        size: parts.reduce((n, p) => n + p.byteLength, 0),
        content: () =>
          Stream.suspend(() => {
            runs++
            return Stream.fromIterable(parts)
          })
      }
      for (const format of ["raw", "json"] as const) {
        runs = 0
        const hook = yield* Webhook.make({ url: upstream.url, secret: "k3y", format })
        yield* hook.deliver(streamed)
        expect(runs).toBe(2)
        const req = upstream.received.at(-1)!
        const ts = String(req.headers["x-smtp-bridge-timestamp"])
        expect(req.headers["x-smtp-bridge-signature"]).toBe(`v1=${Webhook.sign("k3y", ts, req.body)}`)
        const raw = format === "raw" ? req.body : Buffer.from(JSON.parse(req.body.toString()).message, "base64")
        expect(raw.toString()).toBe(`Subject: two passes\r\n\r\n${"a".repeat(300_000)}\r\n`)
      }
    }))

  it.scopedLive("gives up on a receiver that never reads a streamed body with a transient Timeout", () =>
    Effect.gen(function*() {
      const upstream = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const s = http.createServer((req) => req.pause())
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.sync(() => {
          s.closeAllConnections()
          s.close()
        })
      )
      const block = new Uint8Array(64 * 1024).fill(97)
      const big: OutgoingMessage = { ...message(""), size: 128 * block.byteLength, content: () => Stream.fromIterable(Array(128).fill(block)) }
      const hook = yield* Webhook.make({ url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/inbound`, secret: "k3y", timeout: 300 })
      const error = yield* Effect.flip(hook.deliver(big))
      expect(error.reason).toBe("Timeout")
    }))

  it.scoped("keeps the idempotency key of a retried message so the receiver can drop the duplicate", () =>
    Effect.gen(function*() {
      const upstream = yield* server([503, 200])
      const hook = yield* Webhook.make({ url: upstream.url })
      const first = yield* Effect.either(hook.deliver(message("x\r\n")))
      yield* hook.deliver(message("x\r\n"))
      expect(Either.isLeft(first)).toBe(true)
      const [a, b] = upstream.received
      expect(a!.headers["idempotency-key"]).toBeTruthy()
      expect(a!.headers["idempotency-key"]).toBe(b!.headers["idempotency-key"])
    }))

  it.scoped("sends the envelope and message as JSON when asked", () =>
    Effect.gen(function*() {
      const upstream = yield* server([202])
      const hook = yield* Webhook.make({ url: upstream.url, format: "json" })
      yield* hook.deliver(message("Subject: j\r\n\r\nbody\r\n"))
      const doc = JSON.parse(upstream.received[0]!.body.toString())
      expect(doc.envelope.mailFrom).toBe("alice@example.com")
      expect(doc.envelope.recipients).toEqual([{ address: "bob@example.net" }])
      expect(Buffer.from(doc.message, "base64").toString()).toBe("Subject: j\r\n\r\nbody\r\n")
      expect(doc.session.user).toBe("alice@example.com")
    }))

  it.scoped("maps 429 and 5xx to a transient 451 and other 4xx to a permanent 554", () =>
    Effect.gen(function*() {
      for (const [status, code] of [[429, 451], [500, 451], [503, 451], [400, 554], [404, 554]] as const) {
        const upstream = yield* server([status])
        const hook = yield* Webhook.make({ url: upstream.url })
        const result = yield* Effect.flip(hook.deliver(message("x\r\n")))
        expect(result.reply?.code).toBe(code)
      }
    }))

  it.scoped("logs a redirect at WARN with its status and the Location, redacted, and fails with a transient 451", () =>
    Effect.gen(function*() {
      const upstream = yield* Effect.acquireRelease(
        Effect.async<http.Server>((resume) => {
          const s = http.createServer((req, res) => {
            req.resume()
            req.on("end", () => res.writeHead(308, { location: "https://bot:pw@evil.test/hook/T0K3N?key=s3cr3t" }).end())
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.sync(() => s.close())
      )
      const lines: Array<string> = []
      const capture = Logger.make(({ logLevel, message }) => lines.push(`${logLevel.label} ${String(message)}`))
      const hook = yield* Webhook.make({ url: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/inbound` })
      const error = yield* Effect.flip(hook.deliver(message("x\r\n"))).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
      expect(error.reply?.code).toBe(451)
      expect(lines).toEqual(["WARN webhook: webhook answered HTTP 308 with Location https://****@evil.test/****?key=****; redirects are never followed"])
    }))

  it.scoped("names an unreachable webhook by its redacted URL, never its path or query token", () =>
    Effect.gen(function*() {
      // A port just freed (not port 1, which Deno's fetch blocks before trying): Deno's message then
      // repeats the whole URL ("error sending request for url (...)").
      const port = yield* Effect.promise(() => freePort())
      const down = yield* Webhook.make({ url: `http://127.0.0.1:${port}/hooks/PathToken?token=QueryToken` })
      const error = yield* Effect.flip(down.deliver(message("x\r\n")))
      expect(error.reason).toBe("Unreachable")
      expect(error.message).toContain(`POST http://127.0.0.1:${port}/****?token=****`)
      expect(error.message).not.toMatch(/PathToken|QueryToken/)
    }))

  it.scopedLive("treats an unreachable endpoint and a timeout as transient failures", () =>
    Effect.gen(function*() {
      const down = yield* Webhook.make({ url: "http://127.0.0.1:1/inbound" })
      expect((yield* Effect.flip(down.deliver(message("x\r\n")))).reason).toBe("Unreachable")
      const slow = yield* server([200], 2000)
      const hook = yield* Webhook.make({ url: slow.url, timeout: 200 })
      expect((yield* Effect.flip(hook.deliver(message("x\r\n")))).reason).toBe("Timeout")
    }))
})
