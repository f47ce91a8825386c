/**
 * The bridge's own relay policy (DESIGN.md section 3, "No open relay"): when every plugin
 * continues at RCPT, a recipient is accepted only from an authenticated session or one a plugin
 * marked trusted. The bridge's wiring always puts relay-policy first, which refuses before this
 * fallback is reached; so the server here runs a pipeline without relay-policy, whose only plugin
 * returns Continue at every hook, to show that the server alone refuses a stranger.
 */
import { Effect, Exit, Logger, LogLevel, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { definePlugin, Relay, Verdict } from "../../src/index.ts"
import * as Resolve from "../../src/config/Resolve.ts"
import * as Resolver from "../../src/dns/Resolver.ts"
import * as Pipeline from "../../src/pipeline/Pipeline.ts"
import * as SmtpServer from "../../src/server/SmtpServer.ts"
import * as Build from "../../src/transport/Build.ts"
import { maildirMessages } from "../support/bridge.ts"
import { type Client, connect } from "../support/SmtpClient.ts"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const plainToken = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`).toString("base64")

// Continue everywhere, except that it authenticates alice and marks a client that says
// EHLO trusted.test as trusted (as relay-policy would for a trusted network).
const continueEverywhere = definePlugin({
  name: "continue-everywhere",
  connect: () => Effect.succeed(Verdict.Continue),
  helo: ({ name, session }) =>
    Effect.sync(() => {
      if (name === "trusted.test") session.notes.set(Relay.Trusted, true)
      return Verdict.Continue
    }),
  auth: ({ username, password }) =>
    Effect.succeed(username === "alice@example.com" && password === "secret" ? Verdict.accept({ identity: username }) : Verdict.Continue),
  mailFrom: () => Effect.succeed(Verdict.Continue),
  rcptTo: () => Effect.succeed(Verdict.Continue),
  data: () => Effect.succeed(Verdict.Continue)
})

describe("the server's own relay refusal at RCPT, without relay-policy", () => {
  let port = 0
  let maildir = ""
  let scope: Scope.CloseableScope

  beforeAll(async () => {
    maildir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-fallback-"))
    const config = await Effect.runPromise(
      Resolve.resolve({ listen: ["127.0.0.1:0"], hostname: "bridge.test", maildir, allowInsecureAuth: true }, "test")
    )
    scope = await Effect.runPromise(Scope.make())
    const server = await Effect.runPromise(
      Effect.gen(function*() {
        const pipeline = yield* Pipeline.make([continueEverywhere]).pipe(Effect.provide(Resolver.layer(config.dns)))
        // The plugin list is exactly the one given: no relay-policy, no sender-identity.
        expect(pipeline.plugins.map((p) => p.name)).toEqual(["continue-everywhere"])
        const transports = yield* Build.make(config.transports, config.hostname)
        return yield* SmtpServer.make({ config, pipeline, transports })
      }).pipe(Scope.extend(scope), Effect.orDie, Logger.withMinimumLogLevel(LogLevel.Warning))
    )
    port = server.addresses[0]!.port
  })
  afterAll(() => Effect.runPromise(Scope.close(scope, Exit.void)))

  const session = async (helo: string, use: (c: Client) => Promise<void>) => {
    const c = await connect(port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command(`EHLO ${helo}`)).toMatch(/^250-/)
      await use(c)
    } finally {
      c.close()
    }
  }

  it("refuses RCPT from a stranger with 554 5.7.1 although every plugin continued, and delivers nothing", async () => {
    await session("stranger.test", async (c) => {
      expect(await c.command("MAIL FROM:<spammer@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<victim@example.net>")).toBe("554 5.7.1 Relay access denied")
      expect(await c.command("DATA")).toBe("554 5.5.1 No valid recipients")
    })
    expect(maildirMessages(maildir)).toHaveLength(0)
  })

  it("accepts RCPT (250 2.1.5) from a session a plugin marked trusted", async () => {
    await session("trusted.test", async (c) => {
      expect(await c.command("MAIL FROM:<app@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<user@example.net>")).toBe("250 2.1.5 Ok")
    })
  })

  it("accepts RCPT (250 2.1.5) from an authenticated session", async () => {
    await session("client.test", async (c) => {
      expect(await c.command(`AUTH PLAIN ${plainToken("alice@example.com", "secret")}`)).toMatch(/^235 /)
      expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<user@example.net>")).toBe("250 2.1.5 Ok")
    })
  })
})
