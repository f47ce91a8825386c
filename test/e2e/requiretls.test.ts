/**
 * REQUIRETLS (RFC 8689): offered only inside TLS, refused on a plain session, and honoured on
 * the way out (a plain-HTTP webhook may not carry such a message).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { testCertificate } from "../support/certs.ts"
import { connect } from "../support/SmtpClient.ts"

describe("REQUIRETLS", () => {
  let bridge: TestBridge
  let toWebhook: TestBridge

  beforeAll(async () => {
    const { cert, key } = testCertificate()
    bridge = await startBridge({ tls: { cert, key }, trust: ["127.0.0.0/8"] })
    // Port 9 on loopback: nothing listens; the REQUIRETLS check must refuse before any connection.
    toWebhook = await startBridge({ tls: { cert, key }, trust: ["127.0.0.0/8"], webhook: "http://127.0.0.1:9/inbound" })
  })
  afterAll(async () => {
    await bridge.stop()
    await toWebhook.stop()
  })

  it("is not offered on a plain session, where MAIL ... REQUIRETLS gets 530 5.7.10", async () => {
    const c = await connect(bridge.port)
    try {
      await c.read()
      expect(await c.command("EHLO client.test")).not.toMatch(/REQUIRETLS/)
      expect(await c.command("MAIL FROM:<a@example.com> REQUIRETLS")).toBe("530 5.7.10 REQUIRETLS needs a TLS session")
    } finally {
      c.close()
    }
  })

  it("is offered after STARTTLS and a REQUIRETLS message is delivered into the Maildir", async () => {
    const before = bridge.delivered().length
    const c = await connect(bridge.port)
    try {
      await c.read()
      await c.command("EHLO client.test")
      expect(await c.command("STARTTLS")).toMatch(/^220 /)
      await c.startTls()
      expect(await c.command("EHLO client.test")).toMatch(/^250[- ]REQUIRETLS$/m)
      expect(await c.command("MAIL FROM:<a@example.com> REQUIRETLS")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: requiretls\r\n\r\nsecret\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as /)
    } finally {
      c.close()
    }
    expect(bridge.delivered().length).toBe(before + 1)
  })

  it("refuses to hand a REQUIRETLS message to a plain-HTTP webhook with 550 5.7.30", async () => {
    const c = await connect(toWebhook.port)
    try {
      await c.read()
      await c.command("EHLO client.test")
      await c.command("STARTTLS")
      await c.startTls()
      await c.command("EHLO client.test")
      expect(await c.command("MAIL FROM:<a@example.com> REQUIRETLS")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: requiretls\r\n\r\nsecret\r\n.")).toMatch(/^550 5\.7\.30 /)
    } finally {
      c.close()
    }
  })
})
