// dkim-sign and arc-seal on a real bridge: what it delivers verifies with dkimpy (an independent
// implementation, RSA and Ed25519) and with mailauth over a real DNS server (dnsmasq).
//
//   C: MAIL FROM:<alice@example.test>   (From: alice@example.test)
//   S: 250 2.0.0 Ok: queued as ...       -> DKIM-Signature: v=1; a=ed25519-sha256; ... d=example.test; s=ed1
//   C: MAIL FROM:<eve@elsewhere.test>   (From: eve@elsewhere.test)
//   S: 550 5.7.1 No DKIM key for elsewhere.test: this server does not send mail from that domain
//
// arc-seal after a plugin that rewrote the Subject and the body seals the message as sent: the
// ARC set verifies (dkimpy, mailauth), and sealing that message again gives i=2 with cv=pass.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { definePlugin, Verdict } from "../../../src/index.ts"
import type { DataContext } from "../../../src/index.ts"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { arcSeal } from "../../../plugins/arc-seal/index.ts"
import { dkimSign } from "../../../plugins/dkim-sign/index.ts"
import * as Keys from "../../../src/dkim/Keys.ts"
import * as Resolver from "../../../src/dns/Resolver.ts"
import * as Mailauth from "../../../src/mailauth/Mailauth.ts"
import { Stream } from "effect"
import { startBridge, stripTrace, type TestBridge } from "../../support/bridge.ts"
import { type Dnsmasq, startDnsmasq, txt } from "../../support/dnsmasq.ts"
import { connect } from "../../support/SmtpClient.ts"
import * as Dkimpy from "./dkimpy.ts"

const rsa = Keys.keygen({ algorithm: "rsa", domain: "example.test", selector: "rsa1" })
const ed = Keys.keygen({ algorithm: "ed25519", domain: "example.test", selector: "ed1" })
const arc = Keys.keygen({ algorithm: "rsa", domain: "forwarder.test", selector: "arc1" })
const records: Record<string, string> = {
  [rsa.dnsRecordName]: rsa.txtValue,
  [ed.dnsRecordName]: ed.txtValue,
  [arc.dnsRecordName]: arc.txtValue
}

describe("dkim-sign and arc-seal, verified by dkimpy and mailauth", () => {
  let dns: Dnsmasq
  let bridge: TestBridge
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-dkim-"))
  beforeAll(async () => {
    fs.writeFileSync(path.join(dir, "rsa.pem"), rsa.privateKeyPem, { mode: 0o600 })
    dns = await startDnsmasq({
      zones: ["example.test", "forwarder.test"],
      lines: [txt("example.test", "v=spf1 ip4:127.0.0.1 -all"), txt("_dmarc.example.test", "v=DMARC1; p=reject"),
        ...Object.entries(records).map(([k, v]) => txt(k, v))]
    })
    // The bridge's own DNS wiring (`--dns`), as a deployment points it at its resolver.
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      dns: { servers: [dns.server], timeoutMs: 500, attempts: 1 },
      plugins: [
        dkimSign({
          keys: [
            { domain: "example.test", selector: "rsa1", keyFile: path.join(dir, "rsa.pem") },
            { domain: "example.test", selector: "ed1", privateKey: ed.privateKeyPem }
          ],
          unsigned: "reject",
          // These clients send without AUTH: only their networks' trustedFrom entry makes them signable.
          trustedFrom: { "127.0.0.0/8": ["*"] }
        }),
        arcSeal({ domain: "forwarder.test", selector: "arc1", privateKey: arc.privateKeyPem })
      ]
    })
  })
  afterAll(async () => {
    await bridge?.stop()
    await dns?.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  const send = async (from: string, data: string, port = bridge.port) => {
    const c = await connect(port)
    await c.read()
    await c.command("EHLO client.example.test")
    await c.command(`MAIL FROM:<${from}>`)
    await c.command("RCPT TO:<bob@example.net>")
    expect(await c.command("DATA")).toMatch(/^354 /)
    c.send(data.replace(/^\./gm, "..") + ".\r\n")
    const reply = await c.read(20_000)
    c.close()
    return reply
  }

  const MESSAGE = "From: Alice <alice@example.test>\r\nTo: bob@example.net\r\nSubject: a subject long enough that the\r\n" +
    " bridge folds it  differently\r\nDate: Tue, 01 Jul 2025 12:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\n" +
    "Hello  Bob, \r\n\r\n-- \r\nAlice\r\n\r\n"

  it("delivers two signatures (RSA and Ed25519) that dkimpy and mailauth both verify, and an ARC set both accept", async () => {
    expect(await send("alice@example.test", MESSAGE)).toMatch(/^250 2\.0\.0 /)
    const file = stripTrace(bridge.delivered().at(-1)!)
    expect(file).toMatch(/^ARC-Seal: /)
    const signatures = [...file.matchAll(/^DKIM-Signature: (.*(?:\r\n[ \t].*)*)/gm)].map((m) => m[1]!)
    expect(signatures.map((s) => /a=([\w-]+)/.exec(s)?.[1])).toEqual(["rsa-sha256", "ed25519-sha256"])
    expect(await Dkimpy.verify(Buffer.from(file), records)).toEqual([true, true])
    expect((await Dkimpy.arcVerify(Buffer.from(file), records)).cv).toBe("pass")
    const auth = await authenticate(file)
    expect(auth.dkim.map((d) => [d.selector, d.result])).toEqual([["rsa1", "pass"], ["ed1", "pass"]])
    expect(auth.dmarc?.result).toBe("pass")
    expect(auth.arc).toMatchObject({ result: "pass", instance: 1 })
  })

  const authenticate = (file: string) =>
    Effect.runPromise(
      Effect.flatMap(Resolver.make({ servers: [dns.server], timeoutMs: 500, attempts: 1 }), (resolver) =>
        Mailauth.authenticate(Stream.succeed(new Uint8Array(Buffer.from(file))), {
          ip: "127.0.0.1",
          helo: "client.example.test",
          sender: "alice@example.test",
          authservId: "mx.test",
          dns: resolver
        }))
    )

  it("seals the message as a plugin before it left it (new Subject, new body): the ARC set verifies, and sealing it again gives i=2 cv=pass", async () => {
    // An editing plugin, as a milter or an HTTP hook would edit: the seal must cover these bytes.
    const editor = definePlugin({
      name: "editor",
      data: Effect.fn("editor.data")(function*({ edit }: DataContext) {
        edit.changeHeader("Subject", 1, "rewritten by the editor")
        const body = edit.replaceBody()
        yield* body.write(new TextEncoder().encode("The editor's new body.\r\n.leading dot\r\n"))
        yield* body.end()
        return Verdict.Continue
      })
    })
    const forwarder = await startBridge({
      trust: ["127.0.0.0/8"],
      dns: { servers: [dns.server], timeoutMs: 500, attempts: 1 },
      plugins: [editor, arcSeal({ domain: "forwarder.test", selector: "arc1", privateKey: arc.privateKeyPem })]
    })
    try {
      expect(await send("alice@example.test", MESSAGE, forwarder.port)).toMatch(/^250 2\.0\.0 /)
      const first = stripTrace(forwarder.delivered().at(-1)!)
      expect(first).toMatch(/^ARC-Seal: i=1; /)
      expect(first).toContain("\r\nSubject: rewritten by the editor\r\n")
      expect(first).toMatch(/\r\n\r\nThe editor's new body\.\r\n\.leading dot\r\n$/)
      expect(await Dkimpy.arcVerify(Buffer.from(first), records)).toMatchObject({ cv: "pass" })
      expect((await authenticate(first)).arc).toMatchObject({ result: "pass", instance: 1 })

      // Through the forwarder again: a second set over the edited message and the first set.
      expect(await send("alice@example.test", first, forwarder.port)).toMatch(/^250 2\.0\.0 /)
      const second = stripTrace(forwarder.delivered().at(-1)!)
      expect(second).toMatch(/^ARC-Seal: i=2; .*cv=pass/s)
      expect(await Dkimpy.arcVerify(Buffer.from(second), records)).toMatchObject({ cv: "pass" })
      expect((await authenticate(second)).arc).toMatchObject({ result: "pass", instance: 2 })
    } finally {
      await forwarder.stop()
    }
  }, 60_000)

  it("refuses mail from a domain without a key with 550 5.7.1", async () => {
    expect(await send("eve@elsewhere.test", "From: eve@elsewhere.test\r\nSubject: x\r\n\r\nx\r\n")).toBe(
      "550 5.7.1 No DKIM key for elsewhere.test: this server does not send mail from that domain"
    )
  })
})
