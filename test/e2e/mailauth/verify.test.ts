// mailauth-verify against a real bridge and a real DNS server (dnsmasq) publishing SPF, DKIM and
// DMARC records; messages signed by dkimpy, an independent implementation, with RSA and Ed25519.
//
//   C: MAIL FROM:<mallory@strict.test>
//   C: RCPT TO:<bob@example.net>
//   C: DATA ... From: mallory@strict.test ...
//   S: 550 5.7.1 DMARC policy of strict.test (p=reject) rejects this message
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { hashPassword } from "../../../plugins/auth-htpasswd/index.ts"
import * as Keys from "../../../src/dkim/Keys.ts"
import { mailauthVerify } from "../../../plugins/mailauth-verify/index.ts"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { type Dnsmasq, startDnsmasq, txt } from "../../support/dnsmasq.ts"
import { connect } from "../../support/SmtpClient.ts"
import * as Dkimpy from "./dkimpy.ts"

const rsa = Keys.keygen({ algorithm: "rsa", domain: "example.test", selector: "rsa1" })
const ed = Keys.keygen({ algorithm: "ed25519", domain: "example.test", selector: "ed1" })

// Forged fields claiming the bridge's id (bridge.test) as RFC 8601 lets them be written, and one
// from another host that must stay.
const forged = [
  "Authentication-Results: (a (nested) comment) bridge.test; dkim=pass header.d=evil1.test\r\n",
  "Authentication-Results: \"bridge.test\"; dkim=pass header.d=evil2.test\r\n",
  "Authentication-Results: BRIDGE.TEST.; dkim=pass header.d=evil3.test\r\n",
  "Authentication-Results: (x)\r\n \"Bridge.Test.\" 1;\r\n\tspf=pass smtp.mailfrom=evil4.test\r\n"
].join("")
const theirs = "Authentication-Results: other.example; spf=fail\r\n"

const expectForgedGone = (delivered: string) => {
  for (const n of [1, 2, 3, 4]) expect(delivered).not.toContain(`evil${n}.test`)
  expect(delivered).toContain(theirs)
}

const message = (from: string, extra = "") =>
  `${extra}From: ${from}\r\nTo: bob@example.net\r\nSubject: hello\r\nDate: Tue, 01 Jul 2025 12:00:00 +0000\r\n\r\nHi Bob.\r\n`

describe("mailauth-verify with dnsmasq and dkimpy-signed mail", () => {
  let dns: Dnsmasq
  let bridge: TestBridge
  beforeAll(async () => {
    dns = await startDnsmasq({
      zones: ["example.test", "strict.test"],
      lines: [
        txt("example.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt("_dmarc.example.test", "v=DMARC1; p=reject"),
        txt(rsa.dnsRecordName, rsa.txtValue),
        txt(ed.dnsRecordName, ed.txtValue),
        txt("strict.test", "v=spf1 ip4:192.0.2.1 -all"),
        txt("_dmarc.strict.test", "v=DMARC1; p=reject")
      ]
    })
    // The bridge's own DNS wiring (`--dns`), as a deployment points it at its resolver.
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      dns: { servers: [dns.server], timeoutMs: 500, attempts: 1 },
      plugins: [mailauthVerify({ skipTrusted: false, policy: { dmarcReject: "reject", temperror: "defer" } })]
    })
  })
  afterAll(async () => {
    await bridge?.stop()
    await dns?.stop()
  })

  const send = async (from: string, data: string) => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.example.test")
    expect(await c.command(`MAIL FROM:<${from}>`)).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    c.send(data.replace(/^\./gm, "..") + ".\r\n")
    const reply = await c.read(20_000)
    c.close()
    return reply
  }

  it("passes SPF, both dkimpy signatures (RSA and Ed25519) and DMARC, and drops a forged Authentication-Results", async () => {
    const body = message("Alice <alice@example.test>", "Authentication-Results: bridge.test; dkim=pass header.d=evil.test\r\n" +
      "Authentication-Results: other.example; spf=fail\r\n")
    const rsaSig = await Dkimpy.sign(body, { domain: "example.test", selector: "rsa1", privateKeyPem: rsa.privateKeyPem, algorithm: "rsa-sha256" })
    const edSig = await Dkimpy.sign(body, { domain: "example.test", selector: "ed1", privateKeyPem: ed.privateKeyPem, algorithm: "ed25519-sha256" })
    expect(await send("alice@example.test", edSig + rsaSig + body)).toMatch(/^250 2\.0\.0 /)
    const delivered = bridge.delivered().at(-1)!.toString("utf8")
    const ours = delivered.match(/^Authentication-Results: bridge\.test;[^]*?\r\n(?! |\t)/m)?.[0] ?? ""
    expect(ours).toMatch(/spf=pass/)
    expect(ours).toMatch(/dkim=pass[^;]*header\.s=ed1/)
    expect(ours).toMatch(/dkim=pass[^;]*header\.s=rsa1/)
    expect(ours).toMatch(/dmarc=pass/)
    expect(delivered).not.toContain("header.d=evil.test")
    expect(delivered).toContain("Authentication-Results: other.example; spf=fail")
  })

  it("drops forged Authentication-Results claiming its id with a nested comment, quoted, in upper case or with a trailing dot: 250, then delivered without them", async () => {
    const before = bridge.delivered().length
    expect(await send("alice@example.test", message("Alice <alice@example.test>", forged + theirs))).toMatch(/^250 2\.0\.0 /)
    expect(bridge.delivered().length).toBe(before + 1)
    const delivered = bridge.delivered().at(-1)!.toString("utf8")
    expectForgedGone(delivered)
    expect(delivered.match(/^Authentication-Results: bridge\.test;/gm)?.length).toBe(1)
  })

  it("rejects a DMARC failure of a p=reject domain with 550 5.7.1", async () => {
    expect(await send("mallory@strict.test", message("mallory@strict.test"))).toBe(
      "550 5.7.1 DMARC policy of strict.test (p=reject) rejects this message"
    )
  })

  it("defers when DNS cannot answer (temperror) with 451 4.7.0", async () => {
    expect(await send("someone@unserved.invalid", message("someone@unserved.invalid"))).toBe(
      "451 4.7.0 Temporary DNS failure while authenticating this message, try again later"
    )
  })
})

// The checks are skipped for authenticated senders and trusted networks by default; forged fields
// claiming the bridge's id must go all the same (RFC 8601 §5).
//
//   C: AUTH PLAIN ...            S: 235 2.7.0
//   C: DATA ... Authentication-Results: "bridge.test"; dkim=pass ...
//   S: 250 2.0.0 Ok: queued      -> delivered without it
describe("mailauth-verify with its checks skipped", () => {
  // One bridge where the client must authenticate, one where its network is trusted.
  let authenticating: TestBridge
  let trusting: TestBridge
  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-verify-"))
    const users = path.join(dir, "users.htpasswd")
    fs.writeFileSync(users, `alice:${await hashPassword("secret", 4)}\n`)
    authenticating = await startBridge({
      users,
      allowInsecureAuth: true,
      senders: { alice: ["alice@example.test"] },
      plugins: [mailauthVerify()]
    })
    trusting = await startBridge({ trust: ["127.0.0.0/8"], plugins: [mailauthVerify()] })
  })
  afterAll(async () => {
    await authenticating?.stop()
    await trusting?.stop()
  })

  const send = async (bridge: TestBridge, auth: boolean) => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.example.test")
    if (auth) expect(await c.command(`AUTH PLAIN ${Buffer.from("\0alice\0secret").toString("base64")}`)).toMatch(/^235 2\.7\.0 /)
    expect(await c.command("MAIL FROM:<alice@example.test>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    c.send(message("Alice <alice@example.test>", forged + theirs) + ".\r\n")
    const reply = await c.read(20_000)
    c.close()
    return reply
  }

  it("drops every forged spelling from an authenticated sender: 250, then delivered without them and with no results of its own", async () => {
    expect(await send(authenticating, true)).toMatch(/^250 2\.0\.0 /)
    expect(authenticating.delivered().length).toBe(1)
    const delivered = authenticating.delivered()[0]!.toString("utf8")
    expectForgedGone(delivered)
    expect(delivered).not.toMatch(/^Authentication-Results: bridge\.test;/m)
  })

  it("refuses a header section over 256 KiB, whose forged fields it could not remove, with 552 5.3.4", async () => {
    const c = await connect(trusting.port)
    await c.read()
    await c.command("EHLO client.example.test")
    await c.command("MAIL FROM:<alice@example.test>")
    await c.command("RCPT TO:<bob@example.net>")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const pad = `X-Pad: ${"p".repeat(70)}\r\n`.repeat(4000)
    c.send(message("Alice <alice@example.test>", forged + pad) + ".\r\n")
    expect(await c.read(20_000)).toBe("552 5.3.4 Message header section exceeds 256 KiB")
    expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    c.close()
  })

  it("drops every forged spelling from an unauthenticated sender on a trusted network: 250, then delivered without them", async () => {
    expect(await send(trusting, false)).toMatch(/^250 2\.0\.0 /)
    expect(trusting.delivered().length).toBe(1)
    expectForgedGone(trusting.delivered()[0]!.toString("utf8"))
  })
})
