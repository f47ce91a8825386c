// STARTTLS, implicit TLS, certificate verification and AUTH towards an upstream. smtp-sink
// cannot do TLS, so the upstream is a real SMTP server with STARTTLS and AUTH: our own bridge.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { hashPassword } from "../../../plugins/auth-htpasswd/index.ts"
import * as SmtpRelay from "../../../src/transport/smtp/SmtpRelay.ts"
import * as Url from "../../../src/transport/smtp/Url.ts"
import type { TransportError } from "../../../src/transport/Transport.ts"
import { startBridge, stripTrace, type TestBridge } from "../../support/bridge.ts"
import { testCertificate } from "../../support/certs.ts"
import { outgoing } from "../../support/sink.ts"

const failure = <A>(effect: Effect.Effect<A, TransportError>) =>
  Effect.flatMap(Effect.either(effect), (e) => (Either.isLeft(e) ? Effect.succeed(e.left) : Effect.die(`expected a failure, got ${JSON.stringify(e.right)}`)))

const message = "Subject: over TLS\r\n\r\n.dotted line\r\nbody\r\n"

describe("relay over TLS with AUTH to a bridge upstream", () => {
  let upstream: TestBridge
  const cert = testCertificate()

  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-relay-users-"))
    const users = path.join(dir, "users.htpasswd")
    fs.writeFileSync(users, `relayuser:${await hashPassword("s3cret pass", 4)}\n`)
    upstream = await startBridge({
      tls: { cert: cert.cert, key: cert.key },
      listenTls: ["127.0.0.1:0"],
      users,
      senders: { relayuser: ["*"] }
    })
  })
  afterAll(async () => {
    await upstream?.stop()
  })

  const relay = (url: string, options: Omit<SmtpRelay.Options, "target"> = {}) =>
    SmtpRelay.make({ target: Either.getOrThrow(Url.parse(url)), name: "relay", helo: "bridge.test", timeouts: { command: "10 seconds" }, ...options })

  it.scopedLive("relays with tls=required, AUTH and the certificate verified against a custom CA (SNI localhost)", () =>
    Effect.gen(function*() {
      const before = upstream.delivered().length
      const transport = yield* relay(`smtp://relayuser:s3cret%20pass@127.0.0.1:${upstream.port}?tls=required&servername=localhost`, {
        tls: { ca: cert.certPem }
      })
      const report = yield* transport.deliver(outgoing([message]))
      expect(report.recipients[0]!.reply).toMatchObject({ code: 250, enhanced: "2.0.0" })
      const files = upstream.delivered()
      expect(files).toHaveLength(before + 1)
      expect(stripTrace(files.at(-1)!)).toBe(message)
    }))

  it.scopedLive("relays over implicit TLS (smtps://), checking the certificate's IP address", () =>
    Effect.gen(function*() {
      const transport = yield* relay(`smtps://relayuser:s3cret%20pass@127.0.0.1:${upstream.tlsPort}`, { tls: { ca: cert.certPem } })
      const report = yield* transport.deliver(outgoing([message]))
      expect(report.recipients[0]!.reply.code).toBe(250)
    }))

  it.scopedLive("defers with 451 4.7.5 when the certificate does not verify (no CA given), sending nothing", () =>
    Effect.gen(function*() {
      const before = upstream.delivered().length
      const transport = yield* relay(`smtp://relayuser:s3cret%20pass@127.0.0.1:${upstream.port}?tls=required&servername=localhost`)
      const error = yield* failure(transport.deliver(outgoing([message])))
      expect(error.reply).toMatchObject({ code: 451, enhanced: "4.7.5" })
      expect(upstream.delivered()).toHaveLength(before)
    }))

  it.scopedLive("defers with 451 4.7.5 when the certificate is not for the expected name", () =>
    Effect.gen(function*() {
      const transport = yield* relay(`smtp://relayuser:s3cret%20pass@127.0.0.1:${upstream.port}?tls=required&servername=mail.example`, {
        tls: { ca: cert.certPem }
      })
      const error = yield* failure(transport.deliver(outgoing([message])))
      expect(error.reply).toMatchObject({ code: 451, enhanced: "4.7.5" })
    }))

  it.scopedLive("defers with 451 4.7.0 rather than send credentials without TLS", () =>
    Effect.gen(function*() {
      const transport = yield* relay(`smtp://relayuser:s3cret%20pass@127.0.0.1:${upstream.port}?tls=none`)
      const error = yield* failure(transport.deliver(outgoing([message])))
      expect(error.reply).toMatchObject({ code: 451, enhanced: "4.7.0" })
      expect(error.message).toContain("without TLS")
    }))

  it.scopedLive("defers with 451 4.7.0 quoting the upstream when it refuses our credentials", () =>
    Effect.gen(function*() {
      const transport = yield* relay(`smtp://relayuser:wrong@127.0.0.1:${upstream.port}?tls=required&servername=localhost`, {
        tls: { ca: cert.certPem }
      })
      const error = yield* failure(transport.deliver(outgoing([message])))
      expect(error.reply).toMatchObject({ code: 451, enhanced: "4.7.0" })
      expect(error.message).toContain("535")
    }))
})
