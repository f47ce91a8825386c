// Public DKIM test vectors, verified by our mailauth wrapper and by the mailauth-verify plugin on a
// real bridge: the signed samples Debian's python3-dkim (dkimpy) ships in dkim/tests/data, with
// the DNS records its test_dkim.py and test_dkim_ed25519.py answer for them (here served by a real
// dnsmasq on loopback). The files are read where the package installed them, never copied here.
//
//   rfc6376.signed.msg      RFC 8463 sample (Ed25519, s=brisbane) + RSA-1024 (s=test), simple/simple
//   rfc6376.signed.rsa.msg  the RSA signature alone
//   ed25519test2.msg        signed by Exim's prototype Ed25519 signer (s=sed, d=test.ex), relaxed/relaxed
//   test2.message           a Gmail signature with degenerate folding (Debian bug #711751), RSA-2048
//
// None carries x= (no expiry); the shortest key is the 1024-bit test.txt, our default minimum.
// dkimpy's 512-bit `canonical.com` record is below that minimum and is not used.
//
//   C: MAIL FROM:<joe@football.example.com>
//   C: DATA ... (rfc6376.signed.msg)
//   S: 250 2.0.0 Ok: queued as ...   -> Authentication-Results: bridge.test; dkim=pass header.s=brisbane; dkim=pass header.s=test
//   C: DATA ... (the same, "Hi." changed to "Hi!")
//   S: 550 5.7.20 No valid DKIM signature found
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import * as Crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { mailauthVerify } from "../../../plugins/mailauth-verify/index.ts"
import type * as Dns from "../../../src/dns/Dns.ts"
import * as Resolver from "../../../src/dns/Resolver.ts"
import * as Mailauth from "../../../src/mailauth/Mailauth.ts"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { type Dnsmasq, startDnsmasq, txt } from "../../support/dnsmasq.ts"
import { run } from "../../support/exec.ts"
import { connect } from "../../support/SmtpClient.ts"
import * as Dkimpy from "./dkimpy.ts"

const locate = async (): Promise<string> => {
  const r = await run("/usr/bin/python3", ["-c", "import dkim, os; print(os.path.dirname(dkim.__file__))"])
  if (r.code !== 0) throw new Error(`python3-dkim is not installed (.ci/run installs it): ${r.stderr}`)
  return path.join(r.stdout.trim(), "tests", "data")
}

let data = ""
const read = (file: string): Buffer => fs.readFileSync(path.join(data, file))
const record = (file: string): string => read(file).toString("utf8").trim()

// Records written inline in dkimpy's tests (not files): RFC 8463 §A.2's Ed25519 key for
// brisbane._domainkey.football.example.com and the Gmail key of test_dkim.py's dnsfunc.
const BRISBANE = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
const GMAIL = "k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1Kd87/UeJjenpabgbFwh" +
  "+eBCsSTrqmwIYYvywlbhbqoo2DymndFkbjOVIPIldNs/m40KF+yzMn1skyoxcTUGCQ" +
  "s8g3FgD2Ap3ZB5DekAo5wMmk4wimDO+U8QzI3SD07y2+07wlNWwIt8svnxgdxGkVbb" +
  "hzY8i+RQ9DpSVpPbF7ykQxtKXkv/ahW3KjViiAH+ghvvIhkx4xYSIc9oSwVmAl5Oct" +
  "MEeWUwg8Istjqz8BZeTWbf41fbNhte7Y+YqZOwq1Sd0DbvYAD9NOZK9vlfuac0598H" +
  "Y+vtSBczUiKERHv1yRbcaQtZFh5wtiRrN04BLUTD21MycBX5jYchHjPY/wIDAQAB"

const records = (): ReadonlyArray<readonly [string, string]> => [
  ["brisbane._domainkey.football.example.com", BRISBANE],
  ["test._domainkey.football.example.com", record("test.txt")],
  ["sed._domainkey.test.ex", record("eximtest.dns")],
  ["20120113._domainkey.gmail.com", GMAIL],
  ["test._domainkey.example.net", `v=DKIM1; ${record("ed25519test.dns")}`]
]

let dns: Dnsmasq | undefined
let resolver: Dns.Resolver | undefined

/** The message with the first occurrence of `from` in its body replaced by `to` (same length: one byte). */
const tamper = (message: Buffer, from: string, to: string): Buffer => {
  const body = Math.min(...[message.indexOf("\r\n\r\n"), message.indexOf("\n\n")].filter((i) => i >= 0))
  const at = message.indexOf(from, body)
  if (!Number.isFinite(body) || at < 0) throw new Error(`no ${JSON.stringify(from)} in the body`)
  return Buffer.concat([message.subarray(0, at), Buffer.from(to), message.subarray(at + from.length)])
}

/**
 * Each message is checked twice: streamed, and as chunks held in memory (as the server passes a
 * small message); both must give the same results.
 */
const verifyWithInfo = async (message: Buffer, sender: string) => {
  const options = { ip: "127.0.0.1", helo: "client.example.test", sender, authservId: "bridge.test", dns: resolver! }
  const half = message.byteLength >> 1
  const [streamed, held] = await Effect.runPromise(Effect.all([
    Mailauth.authenticate(Stream.succeed(new Uint8Array(message)), options),
    Mailauth.authenticate([message.subarray(0, half), message.subarray(half)], options)
  ]))
  expect(held.dkim).toEqual(streamed.dkim)
  expect(held.authenticationResults).toBe(streamed.authenticationResults)
  return streamed.dkim
}

const verify = async (message: Buffer, sender: string) =>
  (await verifyWithInfo(message, sender)).map((d) => ({ result: d.result, domain: d.domain, selector: d.selector, algorithm: d.algorithm }))

beforeAll(async () => {
  data = await locate()
  dns = await startDnsmasq({
    zones: ["football.example.com", "test.ex", "gmail.com", "example.net"],
    lines: records().map(([name, value]) => txt(name, value))
  })
  resolver = await Effect.runPromise(Resolver.make({ servers: [dns.server], timeoutMs: 1000, attempts: 2 }))
})
afterAll(async () => {
  await dns?.stop()
})

describe("dkimpy's published DKIM vectors, verified by Mailauth.authenticate", () => {
  it("passes both signatures of rfc6376.signed.msg: RFC 8463's Ed25519 (s=brisbane) and RSA-1024 (s=test)", async () => {
    expect(await verify(read("rfc6376.signed.msg"), "joe@football.example.com")).toEqual([
      { result: "pass", domain: "football.example.com", selector: "brisbane", algorithm: "ed25519-sha256" },
      { result: "pass", domain: "football.example.com", selector: "test", algorithm: "rsa-sha256" }
    ])
  })

  it("passes the RSA-only rfc6376.signed.rsa.msg", async () => {
    expect(await verify(read("rfc6376.signed.rsa.msg"), "joe@football.example.com")).toEqual([
      { result: "pass", domain: "football.example.com", selector: "test", algorithm: "rsa-sha256" }
    ])
  })

  it("passes Exim's third-party Ed25519 signature on ed25519test2.msg with eximtest.dns", async () => {
    expect(await verify(read("ed25519test2.msg"), "jgh@myhost.test.ex")).toEqual([
      { result: "pass", domain: "test.ex", selector: "sed", algorithm: "ed25519-sha256" }
    ])
  })

  it("passes the degenerately folded Gmail RSA-2048 signature of test2.message", async () => {
    expect(await verify(read("test2.message"), "kaner.mail@gmail.com")).toEqual([
      { result: "pass", domain: "gmail.com", selector: "20120113", algorithm: "rsa-sha256" }
    ])
  })

  it("passes ed25519test.msg signed by dkimpy with ed25519test.key against ed25519test.dns", async () => {
    // dkimpy's key file is the bare base64 seed; PKCS#8 wraps it behind a fixed 16-byte prefix.
    const seed = Buffer.from(record("ed25519test.key"), "base64")
    const pem = Crypto.createPrivateKey({
      key: Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]),
      format: "der",
      type: "pkcs8"
    }).export({ type: "pkcs8", format: "pem" }).toString()
    const message = read("ed25519test.msg").toString("utf8")
    const sig = await Dkimpy.sign(message, { domain: "example.net", selector: "test", privateKeyPem: pem, algorithm: "ed25519-sha256" })
    const signed = Buffer.from(sig + message)
    expect(await verify(signed, "someone@example.net")).toEqual([
      { result: "pass", domain: "example.net", selector: "test", algorithm: "ed25519-sha256" }
    ])
    expect((await verify(tamper(signed, "This is", "this is"), "someone@example.net")).map((d) => d.result)).not.toContain("pass")
  })

  // RFC 6376 §6.1.3 / RFC 8601 §2.7.1: a body hash mismatch is a fail (mailauth alone says neutral).
  const bodyHashFailed = (results: ReadonlyArray<{ result: string; info: string }>) =>
    results.map((d) => [d.result === "fail", /\(body hash did not verify\)/.test(d.info)])

  it("does not pass either signature of rfc6376.signed.msg when one body byte changes (\"Hi.\" -> \"Hi!\"): body hash did not verify", async () => {
    const results = await verifyWithInfo(tamper(read("rfc6376.signed.msg"), "Hi.", "Hi!"), "joe@football.example.com")
    expect(bodyHashFailed(results)).toEqual([[true, true], [true, true]])
  })

  it("does not pass Exim's Ed25519 signature when one body byte changes (\"content\" -> \"Content\")", async () => {
    const results = await verifyWithInfo(tamper(read("ed25519test2.msg"), "content", "Content"), "jgh@myhost.test.ex")
    expect(bodyHashFailed(results)).toEqual([[true, true]])
  })

  it("does not pass the Gmail signature when one body byte changes (\"Hello\" -> \"Jello\")", async () => {
    const results = await verifyWithInfo(tamper(read("test2.message"), "Hello", "Jello"), "kaner.mail@gmail.com")
    expect(bodyHashFailed(results)).toEqual([[true, true]])
  })

  it("fails both signatures of rfc6376.signed.msg with dkim=fail (bad signature) when one byte of the signed Subject changes", async () => {
    const message = Buffer.from(read("rfc6376.signed.msg").toString("utf8").replace("Subject: Is dinner", "Subject: is dinner"))
    const results = await verifyWithInfo(message, "joe@football.example.com")
    expect(results.map((d) => [d.selector, d.result])).toEqual([["brisbane", "fail"], ["test", "fail"]])
    for (const d of results) expect(d.info).toMatch(/^dkim=fail \(bad signature\)/)
  })
})

describe("dkimpy's vectors through the mailauth-verify plugin on a real bridge", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    // The bridge's own DNS wiring (`--dns`), pointed at the dnsmasq of this file.
    bridge = await startBridge({
      trust: ["127.0.0.0/8"],
      dns: { servers: [dns!.server], timeoutMs: 1000, attempts: 2 },
      plugins: [mailauthVerify({ skipTrusted: false, policy: { noValidDkim: "reject" } })]
    })
  })
  afterAll(async () => {
    await bridge?.stop()
  })

  // The vector files end lines with LF; on the wire every line ends with CRLF.
  const send = async (message: Buffer) => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.example.test")
    expect(await c.command("MAIL FROM:<joe@football.example.com>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<suzie@shopping.example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    c.send(message.toString("utf8").replace(/\r?\n/g, "\r\n").replace(/^\./gm, "..") + ".\r\n")
    const reply = await c.read(20_000)
    c.close()
    return reply
  }

  it("accepts rfc6376.signed.msg with 250 and reports dkim=pass for the Ed25519 and the RSA signature", async () => {
    expect(await send(read("rfc6376.signed.msg"))).toMatch(/^250 2\.0\.0 /)
    const delivered = bridge.delivered().at(-1)!.toString("utf8")
    const ours = delivered.match(/^Authentication-Results: bridge\.test;[^]*?\r\n(?! |\t)/m)?.[0] ?? ""
    expect(ours).toMatch(/dkim=pass[^;]*header\.s=brisbane[^;]*header\.a=ed25519-sha256/)
    expect(ours).toMatch(/dkim=pass[^;]*header\.s=test[^;]*header\.a=rsa-sha256/)
  })

  it("rejects the copy with one body byte changed with 550 5.7.20", async () => {
    const before = bridge.delivered().length
    expect(await send(tamper(read("rfc6376.signed.msg"), "Hi.", "Hi!"))).toBe("550 5.7.20 No valid DKIM signature found")
    expect(bridge.delivered().length).toBe(before)
  })
})
