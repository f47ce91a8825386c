// Timeouts (DESIGN.md section 3): a silent client gets 421 4.4.2 and the server closes the socket,
// before the greeting's first command, between commands, in the middle of an AUTH exchange and of a message.
//
//   S: 220 bridge.test ESMTP smtp-bridge
//   (1.5 s of silence)
//   S: 421 4.4.2 Timeout, closing connection
//   (the server closes)
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { definePlugin, Verdict } from "../../src/index.ts"
import type { TestBridge } from "../support/bridge.ts"
import { startBridge } from "../support/bridge.ts"
import { connect } from "../support/SmtpClient.ts"

describe("timeouts", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      // An auth hook, so that AUTH is offered (in the clear: allowInsecureAuth).
      plugins: [definePlugin({ name: "auth-probe", auth: () => Effect.succeed(Verdict.Continue) })],
      allowInsecureAuth: true,
      // Wide enough that a loaded machine never times out a client that talks every 300 ms.
      limits: { greetingTimeout: 1_500, idleTimeout: 1_500, dataTimeout: 1_500 }
    })
  })
  afterAll(() => bridge.stop())

  it("says 421 4.4.2 and closes when no command follows the greeting", async () => {
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.read(10_000)).toBe("421 4.4.2 Timeout, closing connection")
    await c.closed(10_000)
  })

  it("says 421 4.4.2 and closes when the session idles between commands", async () => {
    const c = await connect(bridge.port)
    await c.read()
    expect(await c.command("EHLO client.test")).toMatch(/^250-/)
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.read(10_000)).toBe("421 4.4.2 Timeout, closing connection")
    await c.closed(10_000)
  })

  it("keeps a session that talks more often than the idle timeout", async () => {
    const c = await connect(bridge.port)
    await c.read()
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 300))
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    }
    expect(await c.command("QUIT")).toMatch(/^221 /)
  })

  it("says 421 4.4.2 and closes when the client goes silent in the middle of an AUTH exchange, at the first timeout", async () => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("AUTH LOGIN")).toBe("334 VXNlcm5hbWU6")
    const start = performance.now()
    expect(await c.read(10_000)).toBe("421 4.4.2 Timeout, closing connection")
    // One idle timeout (1.5 s), not two: the exchange's silence is the session's; slack for a loaded machine.
    expect(performance.now() - start).toBeLessThan(2_900)
    await c.closed(10_000)
  })

  it("says 421 4.4.2 in mid-DATA, closes and delivers nothing", async () => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    await c.command("MAIL FROM:<alice@example.org>")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    c.send("Subject: half\r\n\r\npart of the body")
    expect(await c.read(10_000)).toBe("421 4.4.2 Timeout, closing connection")
    await c.closed(10_000)
    expect(bridge.delivered()).toHaveLength(0)
  })

  it("says 421 4.4.2 in the middle of a BDAT chunk and delivers nothing", async () => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    await c.command("MAIL FROM:<alice@example.org>")
    await c.command("RCPT TO:<bob@example.net>")
    c.send("BDAT 1000 LAST\r\nSubject: half\r\n\r\n")
    expect(await c.read(10_000)).toBe("421 4.4.2 Timeout, closing connection")
    await c.closed(10_000)
    expect(bridge.delivered()).toHaveLength(0)
  })
})
