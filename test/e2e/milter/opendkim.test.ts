// OpenDKIM as a milter in front of the relay (the "OpenDKIM signing" recipe of
// docs/remote-stages.md): it signs what the bridge delivers, and the signature verifies with
// python3-dkim against the key OpenDKIM's genkey published.
//
//   C: MAIL FROM:<alice@example.org> ... Subject: signed by opendkim ... .
//   S: 250 2.0.0 Ok: queued as ...
//   (Maildir: DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=test; ...)
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { milter } from "../../../plugins/milter/index.ts"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { type RunningMilter, startEditorMilter, startOpendkim } from "../../support/milter.ts"
import { connect } from "../../support/SmtpClient.ts"

const verify = (message: Buffer, dnsRecord: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-dkimverify-"))
  try {
    fs.writeFileSync(path.join(dir, "message.eml"), message)
    const script = [
      "import dkim, sys",
      "msg = open(sys.argv[1], 'rb').read()",
      "record = sys.argv[2].encode()",
      "print('pass' if dkim.verify(msg, dnsfunc=lambda name, timeout=5: record) else 'fail')"
    ].join("\n")
    return execFileSync("/usr/bin/python3", ["-c", script, path.join(dir, "message.eml"), dnsRecord], { encoding: "utf8" }).trim()
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

describe("OpenDKIM as a milter", () => {
  let opendkim: RunningMilter & { readonly dnsRecord: string }
  let bridge: TestBridge
  beforeAll(async () => {
    opendkim = await startOpendkim("example.org")
    bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [milter({ milters: [`inet:127.0.0.1:${opendkim.port}`] })] })
  }, 30_000)
  afterAll(async () => {
    await bridge?.stop()
    await opendkim?.stop()
  })

  it("signs the message it is given: S: 250; the DKIM signature verifies", async () => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const body = Array.from({ length: 3000 }, (_, i) => `line ${i} of a body longer than one 64 KB milter chunk`).join("\r\n")
    const reply = await c.command(
      `From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: signed by\r\n opendkim\r\nDate: Wed, 02 Dec 2026 08:00:00 +0000\r\nMessage-ID: <m1@example.org>\r\n\r\n${body}\r\n.`,
      30_000
    )
    expect(reply).toMatch(/^250 2\.0\.0 /)
    await c.command("QUIT")
    c.close()
    const delivered = bridge.delivered()
    expect(delivered).toHaveLength(1)
    const text = delivered[0]!.toString("utf8")
    if (process.env.MILTER_DEBUG === "1") console.log(text.slice(0, 1500), opendkim.output())
    expect(text).toMatch(/^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.org; s=test;/m)
    // The delivered file starts with the Maildir's Return-Path/Delivered-To; the verifier gets the message as sent on.
    const message = Buffer.from(text.replace(/^(?:Return-Path:.*\r\n|Delivered-To:.*\r\n)+/, ""), "utf8")
    expect(verify(message, opendkim.dnsRecord)).toBe("pass")
    // A tampered copy fails: the check is real.
    expect(verify(Buffer.from(message.toString("utf8").replace("line 7 of", "line 8 of")), opendkim.dnsRecord)).toBe("fail")
  })
})

describe("two milters in order: the test milter rewrites, then OpenDKIM signs", () => {
  let editor: RunningMilter
  let opendkim: RunningMilter & { readonly dnsRecord: string }
  let bridge: TestBridge
  beforeAll(async () => {
    editor = await startEditorMilter()
    opendkim = await startOpendkim("example.org")
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      plugins: [milter({ milters: [`inet:127.0.0.1:${editor.port}`, `inet:127.0.0.1:${opendkim.port}`] })]
    })
  }, 30_000)
  afterAll(async () => {
    await bridge?.stop()
    await editor?.stop()
    await opendkim?.stop()
  })

  it("OpenDKIM sees and signs the first milter's header and body: S: 250; the signature verifies", async () => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    await c.command("MAIL FROM:<alice@example.org>")
    expect(await c.command("RCPT TO:<bob@corp.example>")).toBe("250 2.1.5 Ok")
    await c.command("DATA")
    expect(await c.command("From: alice@example.org\r\nTo: bob@corp.example\r\nSubject: rewrite\r\n\r\nthe original\r\n.", 30_000)).toMatch(/^250 2\.0\.0 /)
    c.close()
    const text = bridge.delivered()[0]!.toString("utf8")
    expect(text).toContain("\r\nSubject: rewritten\r\n")
    expect(text).toContain("the milter's new body")
    expect(text).toMatch(/^DKIM-Signature: v=1;/m)
    expect(verify(Buffer.from(text.replace(/^(?:Return-Path:.*\r\n|Delivered-To:.*\r\n)+/, ""), "utf8"), opendkim.dnsRecord)).toBe("pass")
  }, 60_000)
})
