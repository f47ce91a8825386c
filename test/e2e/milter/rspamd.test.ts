// rspamd in milter mode (its proxy worker with `milter = yes`) behind the milter plugin: the
// "Postfix + rspamd shop" of docs/remote-stages.md. GTUBE is rejected with rspamd's reply; a
// clean message passes with the headers rspamd adds.
//
//   C: ... XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X ... .
//   S: 554 5.7.1 Gtube pattern
//   C: ... a clean message ... .
//   S: 250 2.0.0 Ok: queued as ...   (X-Spamd-Result: default: False [...])
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { milter } from "../../../plugins/milter/index.ts"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { type RunningMilter, startRspamdMilter } from "../../support/milter.ts"
import { connect } from "../../support/SmtpClient.ts"

const gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

const send = async (port: number, body: string): Promise<string> => {
  const c = await connect(port)
  try {
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const reply = await c.command(
      `From: alice@example.org\r\nTo: bob@example.net\r\nSubject: rspamd\r\nDate: Wed, 02 Dec 2026 08:00:00 +0000\r\nMessage-ID: <r1@example.org>\r\n\r\n${body}\r\n.`,
      60_000
    )
    await c.command("QUIT")
    return reply
  } finally {
    c.close()
  }
}

describe("rspamd as a milter", () => {
  let rspamd: RunningMilter
  let bridge: TestBridge
  beforeAll(async () => {
    rspamd = await startRspamdMilter()
    bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [milter({ milters: [`inet:127.0.0.1:${rspamd.port}`], contentTimeout: "60 seconds" })] })
  }, 90_000)
  afterAll(async () => {
    await bridge?.stop()
    if (process.env.MILTER_DEBUG === "1") console.log(rspamd?.output())
    await rspamd?.stop()
  })

  it("rejects GTUBE with rspamd's reply: S: 554 5.7.1 Gtube pattern", async () => {
    expect(await send(bridge.port, gtube)).toBe("554 5.7.1 Gtube pattern")
    expect(bridge.delivered()).toHaveLength(0)
  }, 60_000)

  it("passes a clean message with rspamd's headers added: S: 250", async () => {
    expect(await send(bridge.port, "Hello Bob,\r\nsee you at lunch.\r\nAlice")).toMatch(/^250 2\.0\.0 /)
    const message = bridge.delivered()[0]!.toString("utf8")
    if (process.env.MILTER_DEBUG === "1") console.log(message)
    expect(message).toMatch(/^X-Spamd-Result: default: False \[/m)
    expect(message).toMatch(/^X-Rspamd-Server: /m)
  }, 60_000)
})
