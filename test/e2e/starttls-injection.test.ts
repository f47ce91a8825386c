/**
 * STARTTLS command injection (RFC 3207 section 5, CVE-2011-0411 and kin) across separate writes:
 * plaintext that arrives after the STARTTLS line, in a later TCP segment, must never be executed,
 * whether it reaches the bridge before its 220 leaves or between the 220 and the ClientHello.
 * (The same-write case is in starttls.test.ts.)
 */
import { Deferred, Effect } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { definePlugin, Verdict } from "../../src/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { connect } from "../support/SmtpClient.ts"

// Holds the EHLO of a client named gate.test until the test opens the gate, so that a second
// write from the client is certain to be waiting in the bridge's input when STARTTLS runs.
const gates: Array<{ readonly entered: Deferred.Deferred<void>; readonly open: Deferred.Deferred<void> }> = []
const gate = definePlugin({
  name: "gate",
  helo: ({ name }) =>
    name !== "gate.test" ? Effect.succeed(Verdict.Continue) : Effect.gen(function*() {
      const g = gates.shift()
      if (g === undefined) return Verdict.Continue
      yield* Deferred.succeed(g.entered, undefined)
      yield* Deferred.await(g.open)
      return Verdict.Continue
    })
})

const newGate = () => {
  const g = { entered: Effect.runSync(Deferred.make<void>()), open: Effect.runSync(Deferred.make<void>()) }
  gates.push(g)
  return {
    entered: () => Effect.runPromise(Deferred.await(g.entered)),
    open: () => Effect.runPromise(Deferred.succeed(g.open, undefined))
  }
}

describe("STARTTLS injection in a separate write", () => {
  let bridge: TestBridge

  beforeAll(async () => {
    const { cert, key } = testCertificate()
    // Trusted, so an injected MAIL/RCPT would succeed (250) if it were ever executed.
    bridge = await startBridge({ tls: { cert, key }, trust: ["127.0.0.0/8"], plugins: [gate] })
  })
  afterAll(() => bridge.stop())

  it("discards commands that arrived in a second write before the 220: the handshake succeeds and they get no reply", async () => {
    const g = newGate()
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      // C: EHLO gate.test / STARTTLS   (write 1; the bridge stops inside the EHLO hook)
      c.send("EHLO gate.test\r\nSTARTTLS\r\n")
      await g.entered()
      // C: MAIL FROM / RCPT TO         (write 2, a man in the middle's, while the bridge is busy)
      c.send("MAIL FROM:<mallory@example.org>\r\nRCPT TO:<victim@example.net>\r\n")
      // Loopback delivers write 2 to the bridge's socket in far less than this; then the bridge goes on.
      await new Promise((resolve) => setTimeout(resolve, 150))
      await g.open()
      expect(await c.read()).toMatch(/^250-bridge\.test greets gate\.test/)
      expect(await c.read()).toBe("220 2.0.0 Ready to start TLS")
      await c.startTls()
      const ehlo = await c.command("EHLO client.test")
      expect(ehlo.split("\n")[0]).toBe("250-bridge.test greets client.test")
      // The injected MAIL opened no transaction, and no reply of its was ever sent.
      expect(await c.command("RCPT TO:<bob@example.net>")).toBe("503 5.5.1 Need MAIL before RCPT")
      expect(c.transcript()).not.toMatch(/S: 250 2\.1\.[05]/)
    } finally {
      c.close()
    }
  })

  it("never executes plaintext sent between the 220 and the ClientHello: the handshake fails and the bridge closes", async () => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO client.test")).toMatch(/^250-/)
      expect(await c.command("STARTTLS")).toBe("220 2.0.0 Ready to start TLS")
      // C: MAIL FROM / RCPT TO in plaintext where the ClientHello belongs
      c.send("MAIL FROM:<mallory@example.org>\r\nRCPT TO:<victim@example.net>\r\n")
      await c.closed()
      // Nothing came back after the 220 but (at most) a TLS alert: no SMTP reply at all.
      const after = c.transcript().split("S: 220 2.0.0 Ready to start TLS")[1] ?? ""
      expect(after).not.toMatch(/S: \d{3}[ -]/)
    } finally {
      c.close()
    }
    expect(bridge.delivered()).toHaveLength(0)
  })
})
