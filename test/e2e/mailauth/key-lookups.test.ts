// A message may name any number of DKIM keys: each DKIM-Signature field sends the verifier to
// `<s>._domainkey.<d>`, names its sender picks. Checked against a real bridge and dnsmasq, which
// logs every query it gets.
//
//   C: DATA ... 2,000 x "DKIM-Signature: v=1; d=<n>.flood.test; s=s; ..." ...
//   S: 250 2.0.0 Ok: queued       dnsmasq: 16 key queries, not 2,000
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as Keys from "../../../src/dkim/Keys.ts"
import { maxKeyLookups } from "../../../src/mailauth/Mailauth.ts"
import { mailauthVerify } from "../../../plugins/mailauth-verify/index.ts"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { type Dnsmasq, startDnsmasq, txt } from "../../support/dnsmasq.ts"
import { connect } from "../../support/SmtpClient.ts"
import * as Dkimpy from "./dkimpy.ts"

const rsa = Keys.keygen({ algorithm: "rsa", domain: "example.test", selector: "rsa1" })

const body = "Hi Bob.\r\n"
// The right body hash, so that a verifier goes on to fetch each key (a wrong one stops earlier).
const bh = createHash("sha256").update(body).digest("base64")
const flood = (n: number) =>
  Array.from({ length: n }, (_, i) => `DKIM-Signature: v=1; a=rsa-sha256; d=${i}.flood.test; s=s; h=from; bh=${bh}; b=AAAA\r\n`).join("")
const message = "From: Alice <alice@example.test>\r\nTo: bob@example.net\r\nSubject: hello\r\n" +
  "Date: Tue, 01 Jul 2025 12:00:00 +0000\r\n\r\n" + body

describe("DKIM key lookups per message (mailauth-verify, dnsmasq)", () => {
  let dns: Dnsmasq
  let bridge: TestBridge
  beforeAll(async () => {
    dns = await startDnsmasq({
      zones: ["example.test", "flood.test"],
      lines: [txt("example.test", "v=spf1 ip4:127.0.0.1 -all"), txt("_dmarc.example.test", "v=DMARC1; p=none"), txt(rsa.dnsRecordName, rsa.txtValue)],
      logQueries: true
    })
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      dns: { servers: [dns.server], timeoutMs: 2000, attempts: 1 },
      plugins: [mailauthVerify({ skipTrusted: false })]
    })
  })
  afterAll(async () => {
    await bridge?.stop()
    await dns?.stop()
  })

  const send = async (data: string) => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.example.test")
    expect(await c.command("MAIL FROM:<alice@example.test>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    c.send(data + ".\r\n")
    const reply = await c.read(60_000)
    c.close()
    return reply
  }

  const keyQueries = () => dns.queries().filter((q) => q.includes("._domainkey."))

  it("looks up at most 16 keys for a message with 2,000 DKIM-Signature fields (250, the rest temperror)", async () => {
    const before = keyQueries().length
    expect(await send(flood(2000) + message)).toMatch(/^250 2\.0\.0 /)
    const asked = keyQueries().slice(before)
    expect(asked.length, `${asked.length} key queries`).toBeLessThanOrEqual(maxKeyLookups)
    expect(asked.length).toBeGreaterThan(0)
    const delivered = bridge.delivered().at(-1)!.toString("utf8")
    expect(delivered).toMatch(/dkim=temperror/)
  }, 90_000)

  it("still verifies a real signature after the flood, in the next message: dkim=pass", async () => {
    const signed = await Dkimpy.sign(message, { domain: "example.test", selector: "rsa1", privateKeyPem: rsa.privateKeyPem, algorithm: "rsa-sha256" })
    expect(await send(flood(3) + signed + message)).toMatch(/^250 2\.0\.0 /)
    const delivered = bridge.delivered().at(-1)!.toString("utf8")
    expect(delivered).toMatch(/dkim=pass[^;]*header\.s=rsa1/)
  }, 30_000)
})
