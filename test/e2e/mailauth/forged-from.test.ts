// The header From is what readers and DMARC see: an authenticated user may put only their own
// addresses in From and Sender, and DKIM signs only a From its client may use. Real clients
// (nodemailer, the raw SmtpClient over BDAT, Python smtplib from other loopback addresses)
// against a bridge that signs example.test; what it delivers is checked with dkimpy.
//
//   C: AUTH PLAIN (alice)  MAIL FROM:<alice@example.test>  DATA  From: CEO <ceo@example.test>
//   S: 550 5.7.1 Header From rejected: ceo@example.test is not owned by user alice
//   C: (127.0.0.2, trusted, no AUTH, trustedFrom allows @example.test)  From: news@example.test
//   S: 250 2.0.0 Ok   -> delivered with DKIM-Signature d=example.test, verified by dkimpy
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import nodemailer from "nodemailer"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../../plugins/auth-htpasswd/index.ts"
import * as Keys from "../../../src/dkim/Keys.ts"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { testCertificate } from "../../support/certs.ts"
import { run } from "../../support/exec.ts"
import { connect } from "../../support/SmtpClient.ts"
import * as Dkimpy from "./dkimpy.ts"

const key = Keys.keygen({ algorithm: "rsa", domain: "example.test", selector: "s1" })
const records = { [key.dnsRecordName]: key.txtValue }
const plainToken = (user: string, pass: string): string => Buffer.from(`\0${user}\0${pass}`).toString("base64")

const message = (head: string, subject: string): string =>
  `${head}To: bob@example.net\r\nSubject: ${subject}\r\nDate: Tue, 01 Jul 2025 12:00:00 +0000\r\n` +
  `Message-ID: <${subject.replace(/\W/g, "-")}@example.test>\r\n\r\nHello  Bob, \r\n`

/** The DKIM-Signature fields of a delivered file, unfolded. */
const signatures = (file: Buffer): ReadonlyArray<string> => {
  const head = file.toString("utf8").split("\r\n\r\n")[0]!
  return [...head.matchAll(/^DKIM-Signature:[ \t]*(.*(?:\r\n[ \t].*)*)/gim)].map((m) => m[1]!.replace(/\r\n[ \t]+/g, " "))
}

const delivered = (bridge: TestBridge, subject: string): Buffer => {
  const files = bridge.delivered().filter((f) => f.toString("utf8").includes(`Subject: ${subject}\r\n`))
  expect(files).toHaveLength(1)
  return files[0]!
}

const setup = async (forgedFrom?: "reject" | "unsigned") => {
  const { cert, key: tlsKey } = testCertificate()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-forged-"))
  const users = path.join(dir, "users.htpasswd")
  fs.writeFileSync(users, `alice:${await hashPassword("secret", 4)}\n`)
  return startBridge({
    tls: { cert, key: tlsKey },
    users,
    trust: ["127.0.0.0/8"],
    senders: { alice: ["alice@example.test", "alice@alice.example"] },
    ...(forgedFrom !== undefined ? { forgedFrom } : {}),
    dkimSign: {
      keys: [{ domain: "example.test", selector: "s1", privateKey: key.privateKeyPem }],
      trustedFrom: { "127.0.0.2/32": ["@example.test"] }
    }
  })
}

/** Sends `raw` as alice (STARTTLS, AUTH PLAIN) with MAIL FROM alice@example.test; the final reply or the error's. */
const sendAsAlice = async (bridge: TestBridge, raw: string): Promise<string> => {
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port: bridge.port,
    requireTLS: true,
    tls: { rejectUnauthorized: false },
    auth: { user: "alice", pass: "secret" },
    connectionTimeout: 10_000,
    greetingTimeout: 10_000,
    socketTimeout: 20_000
  })
  try {
    const info = await transport.sendMail({ envelope: { from: "alice@example.test", to: ["bob@example.net"] }, raw })
    return info.response
  } catch (e) {
    return String((e as { response?: string }).response ?? e)
  } finally {
    transport.close()
  }
}

/** Python smtplib from `source` (a loopback address), no AUTH: the final reply as "code text". */
const sendFrom = async (bridge: TestBridge, source: string, raw: string): Promise<string> => {
  const script = `
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", ${bridge.port}, source_address=("${source}", 0), timeout=20)
s.ehlo("trusted.example.test")
s.mail("app@example.test")
s.rcpt("bob@example.net")
code, text = s.data(sys.stdin.read().encode())
print(code, text.decode())
s.quit()
`
  const r = await run("/usr/bin/python3", ["-c", script], { input: raw, timeoutMs: 30_000 })
  if (r.code !== 0) return `python failed: ${r.stderr}`
  return r.stdout.trim()
}

describe("header From and Sender of an authenticated user (forgedFrom: reject, the default)", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await setup()
  })
  afterAll(() => bridge?.stop())

  it.each([
    ["From: CEO <ceo@example.test>\r\n", "From", "ceo@example.test"],
    ["From: \"alice@example.test\" <ceo@example.test>\r\n", "From", "ceo@example.test"],
    ["From: alice@example.test, ceo@example.test\r\n", "From", "ceo@example.test"],
    ["From: Alice <ALICE@example.test>\r\nSender: ceo@example.test\r\n", "Sender", "ceo@example.test"]
  ])("refuses %j with 550 5.7.1 naming the header, and delivers nothing", async (head, header, address) => {
    const before = bridge.delivered().length
    const reply = await sendAsAlice(bridge, message(head, `forged ${before}`))
    expect(reply).toBe(`550 5.7.1 Header ${header} rejected: ${address} is not owned by user alice`)
    expect(bridge.delivered()).toHaveLength(before)
  })

  it.each([
    ["two From fields", "From: alice@example.test\r\nFrom: ceo@example.test\r\n", "Header From rejected: the field appears 2 times"],
    ["an addr-spec before an angle address", "From: alice@example.test <ceo@example.test>\r\n", "Header From rejected: the field is not a valid address list"],
    ["an angle address before an addr-spec", "From: <alice@example.test> ceo@example.test\r\n", "Header From rejected: the field is not a valid address list"],
    ["two Sender fields", "From: alice@example.test\r\nSender: alice@example.test\r\nSender: ceo@example.test\r\n", "Header Sender rejected: the field appears 2 times"]
  ])("refuses %s with 550 5.7.1 (a signer and a reader could pick different addresses)", async (_, head, text) => {
    const reply = await sendAsAlice(bridge, message(head, "ambiguous"))
    expect(reply.startsWith(`550 5.7.1 ${text}`), reply).toBe(true)
  })

  it("refuses a forged From sent with BDAT LAST, after the chunk, with 550 5.7.1", async () => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      await c.command("EHLO client.test")
      expect(await c.command("STARTTLS")).toMatch(/^220 /)
      await c.startTls()
      await c.command("EHLO client.test")
      expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toMatch(/^235 /)
      expect(await c.command("MAIL FROM:<alice@example.test>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.net>")).toMatch(/^250 /)
      const body = message("From: CEO <ceo@example.test>\r\n", "bdat forged")
      c.send(`BDAT ${Buffer.byteLength(body)} LAST\r\n${body}`)
      expect(await c.read(20_000)).toBe("550 5.7.1 Header From rejected: ceo@example.test is not owned by user alice")
    } finally {
      c.close()
    }
  })

  it("delivers alice's own From (with a comment and a display name) signed d=example.test, and dkimpy verifies it", async () => {
    const subject = "legitimate"
    const reply = await sendAsAlice(bridge, message("From: \"Alice (work)\" <alice@example.test> (Alice)\r\n", subject))
    expect(reply).toMatch(/^250 2\.0\.0 /)
    const file = delivered(bridge, subject)
    const sigs = signatures(file)
    expect(sigs).toHaveLength(1)
    expect(sigs[0]).toMatch(/(?:^|;)\s*d=example\.test;/)
    expect(await Dkimpy.verify(file, records)).toEqual([true])
  })

  it("delivers alice's other address (no key for alice.example) unsigned", async () => {
    const subject = "other domain"
    expect(await sendAsAlice(bridge, message("From: alice@alice.example\r\n", subject))).toMatch(/^250 2\.0\.0 /)
    expect(signatures(delivered(bridge, subject))).toEqual([])
  })

  it("signs for a trusted client without AUTH whose network trustedFrom lists (127.0.0.2: @example.test), and dkimpy verifies it", async () => {
    const subject = "trusted allowed"
    expect(await sendFrom(bridge, "127.0.0.2", message("From: News <news@example.test>\r\n", subject))).toMatch(/^250 2\.0\.0 /)
    const file = delivered(bridge, subject)
    expect(signatures(file)).toHaveLength(1)
    expect(await Dkimpy.verify(file, records)).toEqual([true])
  })

  it("delivers unsigned what a trusted client without AUTH sends when trustedFrom does not list its network (127.0.0.3)", async () => {
    const subject = "trusted unlisted"
    expect(await sendFrom(bridge, "127.0.0.3", message("From: News <news@example.test>\r\n", subject))).toMatch(/^250 2\.0\.0 /)
    expect(signatures(delivered(bridge, subject))).toEqual([])
  })

  it("delivers unsigned what a listed trusted client sends From an address its entry does not allow", async () => {
    const subject = "trusted forged sender"
    const head = "From: news@example.test\r\nSender: relay@elsewhere.test\r\n"
    expect(await sendFrom(bridge, "127.0.0.2", message(head, subject))).toMatch(/^250 2\.0\.0 /)
    expect(signatures(delivered(bridge, subject))).toEqual([])
  })
})

describe("header From of an authenticated user with forgedFrom: unsigned", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await setup("unsigned")
  })
  afterAll(() => bridge?.stop())

  it("accepts a forged From with 250 but delivers it without a DKIM signature", async () => {
    const subject = "relaxed forged"
    expect(await sendAsAlice(bridge, message("From: \"alice@example.test\" <ceo@example.test>\r\n", subject))).toMatch(/^250 2\.0\.0 /)
    expect(signatures(delivered(bridge, subject))).toEqual([])
  })

  it("does not carry one message's check over to the next on the same connection: legitimate signed, forged after it unsigned", async () => {
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      await c.command("EHLO client.test")
      expect(await c.command("STARTTLS")).toMatch(/^220 /)
      await c.startTls()
      await c.command("EHLO client.test")
      expect(await c.command(`AUTH PLAIN ${plainToken("alice", "secret")}`)).toMatch(/^235 /)
      for (const [head, subject] of [["From: alice@example.test\r\n", "same connection 1"], ["From: ceo@example.test\r\n", "same connection 2"]]) {
        expect(await c.command("MAIL FROM:<alice@example.test>")).toBe("250 2.1.0 Ok")
        expect(await c.command("RCPT TO:<bob@example.net>")).toMatch(/^250 /)
        expect(await c.command("DATA")).toMatch(/^354 /)
        expect(await c.command(`${message(head!, subject!)}.`, 20_000)).toMatch(/^250 2\.0\.0 /)
      }
    } finally {
      c.close()
    }
    expect(signatures(delivered(bridge, "same connection 1"))).toHaveLength(1)
    expect(signatures(delivered(bridge, "same connection 2"))).toEqual([])
  })

  it("still signs alice's own From, and dkimpy verifies it", async () => {
    const subject = "relaxed legitimate"
    expect(await sendAsAlice(bridge, message("From: alice@example.test\r\n", subject))).toMatch(/^250 2\.0\.0 /)
    const file = delivered(bridge, subject)
    expect(signatures(file)).toHaveLength(1)
    expect(await Dkimpy.verify(file, records)).toEqual([true])
  })
})
