import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { dkimVerify } from "mailauth"
import * as Crypto from "node:crypto"
import * as Keys from "../../../src/dkim/Keys.ts"
import * as Sign from "../../../src/dkim/Sign.ts"
import * as Static from "../../../src/dns/Static.ts"
import { Message } from "../../../src/index.ts"

const MESSAGE = "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject:  Hello\r\n\tworld  \r\n" +
  "Date: Tue, 01 Jul 2025 12:00:00 +0000\r\n\r\nHi Bob,  \r\n\r\nsee  you.\r\n\r\n\r\n"

const rsa = Keys.keygen({ algorithm: "rsa", domain: "example.org", selector: "rsa1" })
const ed = Keys.keygen({ algorithm: "ed25519", domain: "example.org", selector: "ed1" })
const dns = Static.make({
  [rsa.dnsRecordName]: { TXT: [rsa.txtValue] },
  [ed.dnsRecordName]: { TXT: [ed.txtValue] }
})

const parts = (text: string) => {
  const bytes = new TextEncoder().encode(text)
  const end = text.indexOf("\r\n\r\n") + 2
  return { headers: Message.parseHeaders(bytes.slice(0, end)), body: Stream.succeed(bytes.slice(end)), bytes }
}

/** Signs with both keys, puts the signatures on top as the bridge renders them, and verifies with mailauth. */
const signAndVerify = (text: string, options?: Sign.SignOptions) =>
  Effect.gen(function*() {
    const m = parts(text)
    const values = yield* Sign.sign(m, [
      { domain: "example.org", selector: "rsa1", key: Keys.privateKeyOf(rsa.privateKeyPem) },
      { domain: "example.org", selector: "ed1", key: Keys.privateKeyOf(ed.privateKeyPem) }
    ], options)
    const signed = values.map((v) => Message.formatHeader("DKIM-Signature", v)).reverse().join("") + text
    const result = yield* Effect.promise(() => dkimVerify(Buffer.from(signed), { resolver: (n, t) => dns.mailauth(n, t) as never }))
    return { values, signed, results: result.results }
  })

describe("DKIM signing", () => {
  it.effect("signs RSA-SHA256 and Ed25519-SHA256 relaxed/relaxed, both verified by mailauth after the bridge folds them", () =>
    Effect.gen(function*() {
      const { values, results } = yield* signAndVerify(MESSAGE)
      expect(values[0]).toMatch(/^v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example.org; s=rsa1; t=\d+; h=From:From:Subject:Subject:Date:Date:To:To; bh=/)
      expect(values[1]).toContain("a=ed25519-sha256")
      expect(results.map((r) => [r.selector, r.status.result])).toEqual([["ed1", "pass"], ["rsa1", "pass"]])
    }))

  it.effect("oversigning makes a From added afterwards break the signature", () =>
    Effect.gen(function*() {
      const { signed } = yield* signAndVerify(MESSAGE)
      const forged = signed.replace("From: Alice", "From: mallory@evil.test\r\nFrom: Alice")
      const result = yield* Effect.promise(() => dkimVerify(Buffer.from(forged), { resolver: (n, t) => dns.mailauth(n, t) as never }))
      expect(result.results.map((r) => r.status.result)).toEqual(["fail", "fail"])
    }))

  it.effect("hashes the body as relaxed canonicalisation says, across chunk boundaries", () =>
    Effect.gen(function*() {
      const body = "a  b \t\r\n\r\nc\r\n\r\n\r\n"
      const whole = yield* Sign.bodyHash(Stream.succeed(new TextEncoder().encode(body)))
      const bytes = new TextEncoder().encode(body)
      const split = yield* Sign.bodyHash(Stream.fromIterable(Array.from(bytes, (b) => new Uint8Array([b]))))
      expect(split).toBe(whole)
      const expected = (yield* Effect.promise(() => crypto.subtle.digest("SHA-256", new TextEncoder().encode("a b\r\n\r\nc\r\n"))))
      expect(whole).toBe(Buffer.from(expected).toString("base64"))
      // An empty body hashes as the empty string under relaxed canonicalisation.
      expect(yield* Sign.bodyHash(Stream.empty)).toBe("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
    }))

  it.effect("hashes a body held in memory as chunks exactly as the same body streamed", () =>
    Effect.gen(function*() {
      const bytes = new TextEncoder().encode("\r\na  b \t\r\n\r\nc\r\n \r\n\r\nd\te\r\n\r\n\r\n")
      for (const size of [1, 2, 3, 5, 7, bytes.byteLength]) {
        const chunks: Array<Uint8Array> = []
        for (let i = 0; i < bytes.byteLength; i += size) chunks.push(bytes.subarray(i, i + size))
        for (const startsAtSeparator of [false, true]) {
          const streamed = yield* Sign.bodyHash(Stream.fromIterable(chunks), { startsAtSeparator })
          expect(Sign.bodyHashOf(chunks, { startsAtSeparator })).toBe(streamed)
        }
      }
      expect(Sign.bodyHashOf([])).toBe("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
      // The separator is skipped when the chunks start at it, and only then.
      const body = new TextEncoder().encode("x\r\n")
      expect(Sign.bodyHashOf([Uint8Array.of(13, 10), body], { startsAtSeparator: true })).toBe(Sign.bodyHashOf([body]))
      expect(Sign.bodyHashOf([Uint8Array.of(13, 10), body])).not.toBe(Sign.bodyHashOf([body]))
    }))

  it.effect("signs the same given the body as chunks or as a stream", () =>
    Effect.gen(function*() {
      const { headers } = parts(MESSAGE)
      const body = new TextEncoder().encode(MESSAGE.slice(MESSAGE.indexOf("\r\n\r\n") + 2))
      const keys = [{ domain: "example.org", selector: "ed1", key: Keys.privateKeyOf(ed.privateKeyPem) }]
      const fromChunks = yield* Sign.sign({ headers, body: [body.subarray(0, 3), body.subarray(3)] }, keys, { time: 1 })
      const fromStream = yield* Sign.sign({ headers, body: Stream.succeed(body) }, keys, { time: 1 })
      expect(fromChunks).toEqual(fromStream)
    }))

  it("lists each signed name as often as it occurs, plus once when oversigned", () => {
    const { headers } = parts("From: a@x\r\nReceived: x\r\nReceived: y\r\nX-Keep: 1\r\nx-keep: 2\r\n\r\n")
    expect(Sign.signedNames(headers, ["From", "X-Keep", "Received", "Subject"], ["From", "Subject"])).toEqual(
      ["From", "From", "X-Keep", "X-Keep", "Received", "Received"]
    )
  })

  it("publishes RSA keys as SPKI and Ed25519 keys as their raw 32 bytes", () => {
    expect(rsa.txtValue).toMatch(/^v=DKIM1; k=rsa; p=MII[A-Za-z0-9+/=]+$/)
    const p = ed.txtValue.replace(/^v=DKIM1; k=ed25519; p=/, "")
    expect(Buffer.from(p, "base64").byteLength).toBe(32)
    expect(rsa.dnsRecordName).toBe("rsa1._domainkey.example.org")
  })

  it.effect("hashes body bytes 80-9F as they are (UTF-8 \"€\" is E2 82 AC; windows-1252 would read 82 as U+201A)", () =>
    Effect.gen(function*() {
      const body = Buffer.from("caf\u00e9 \u20ac \u0142\r\n", "utf8")
      const expected = Crypto.createHash("sha256").update(body).digest("base64")
      expect(yield* Sign.bodyHash(Stream.succeed(new Uint8Array(body)))).toBe(expected)
    }))
})
