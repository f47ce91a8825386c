// The bridge's own DKIM signing after a milter that rewrote the message: dkim-sign signs the
// message as it will be sent (the milter's Subject and body), so the signature verifies
// (dkimpy). Before, it signed the header and body as received and the signature broke.
//
//   $ config: milter [the test milter], dkimSign { example.test, selector rsa1 }
//   C: ... Subject: rewrite ... .
//   S: 250 2.0.0 Ok: queued as ...   (Subject: rewritten, the milter's body, a DKIM-Signature that verifies)
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Keys from "../../../src/dkim/Keys.ts"
import { startBridge, stripTrace, type TestBridge } from "../../support/bridge.ts"
import { type RunningMilter, startEditorMilter } from "../../support/milter.ts"
import { connect } from "../../support/SmtpClient.ts"
import * as Dkimpy from "../mailauth/dkimpy.ts"

const rsa = Keys.keygen({ algorithm: "rsa", domain: "example.test", selector: "rsa1" })
const records = { [rsa.dnsRecordName]: rsa.txtValue }

describe("dkimSign after a milter that rewrote the message", () => {
  let editor: RunningMilter & { readonly socket: string }
  let bridge: TestBridge
  beforeAll(async () => {
    editor = await startEditorMilter()
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      milter: { milters: [editor.socket] },
      dkimSign: { keys: [{ domain: "example.test", selector: "rsa1", privateKey: rsa.privateKeyPem }], trustedFrom: { "127.0.0.0/8": ["*"] }, unsigned: "reject" }
    })
  }, 30_000)
  afterAll(async () => {
    await bridge?.stop()
    await editor?.stop()
  })

  it("signs the rewritten Subject and body: S: 250; dkimpy verifies the signature", async () => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    await c.command("MAIL FROM:<alice@example.test>")
    expect(await c.command("RCPT TO:<bob@corp.example>")).toBe("250 2.1.5 Ok")
    await c.command("DATA")
    const reply = await c.command("From: alice@example.test\r\nTo: bob@corp.example\r\nSubject: rewrite\r\nDate: Wed, 02 Dec 2026 08:00:00 +0000\r\n\r\noriginal body\r\n.", 30_000)
    expect(reply).toMatch(/^250 2\.0\.0 /)
    c.close()
    const file = stripTrace(bridge.delivered().at(-1)!)
    expect(file).toContain("\r\nSubject: rewritten\r\n")
    expect(file).toContain("the milter's new body")
    expect(file).toMatch(/^DKIM-Signature: /m)
    expect(await Dkimpy.verify(Buffer.from(file), records)).toEqual([true])
  }, 60_000)
})
