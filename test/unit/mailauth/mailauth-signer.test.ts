// Why src/dkim/Sign.ts is ours and not mailauth's dkimSign (docs/mail-authentication.md): checked
// against the installed mailauth, so that a release which learns to oversign fails this file and
// the question is asked again. What mailauth does well is checked too (it hashes the body as it
// streams), so the reason stays the true one.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { dkimSign } from "mailauth"
import { Readable } from "node:stream"
import * as Keys from "../../../src/dkim/Keys.ts"
import * as Sign from "../../../src/dkim/Sign.ts"
import { Message } from "../../../src/index.ts"

const MESSAGE = "From: alice@example.org\r\nTo: bob@example.net\r\nSubject: Hello\r\n\r\nHi Bob.\r\n"
const key = Keys.keygen({ algorithm: "ed25519", domain: "example.org", selector: "s1" })

const signer = { signingDomain: "example.org", selector: "s1", privateKey: key.privateKeyPem, algorithm: "ed25519-sha256" }

const hTag = (signature: string): ReadonlyArray<string> =>
  (/\bh=([^;]+)/.exec(signature.replace(/\r\n[ \t]+/g, ""))?.[1] ?? "").split(":").map((n) => n.trim().toLowerCase())

describe("mailauth's dkimSign, as installed", () => {
  it("cannot oversign: a header name asked for but absent, or asked for twice, is not in h= (RFC 6376 8.15)", async () => {
    const { signatures } = await dkimSign(MESSAGE, {
      ...signer,
      signatureData: [signer],
      canonicalization: "relaxed/relaxed",
      headerList: "From:From:To:Subject:Reply-To"
    })
    // The signature covers one From: a second one, added on the way, leaves it valid.
    expect([...hTag(signatures)].sort()).toEqual(["from", "subject", "to"])
  })

  it("while ours lists an oversigned name once more than it occurs, so a second From added later breaks the signature", async () => {
    const bytes = new TextEncoder().encode(MESSAGE)
    const end = MESSAGE.indexOf("\r\n\r\n") + 2
    const [value] = await Effect.runPromise(Sign.sign(
      { headers: Message.parseHeaders(bytes.slice(0, end)), body: Stream.succeed(bytes.slice(end)) },
      [{ domain: "example.org", selector: "s1", key: Keys.privateKeyOf(key.privateKeyPem) }],
      { headers: ["From", "To", "Subject", "Reply-To"], oversign: ["From", "Reply-To"] }
    ))
    expect(hTag(value!)).toEqual(["from", "from", "to", "subject"])
  })

  it("does hash the body as it streams: a 192 MiB body is signed without holding it", async () => {
    const chunk = Buffer.from(`${"x".repeat(1022)}\r\n`)
    let sent = 0
    const body = new Readable({
      read() {
        if (sent === 0) this.push(Buffer.from(MESSAGE.slice(0, MESSAGE.indexOf("\r\n\r\n") + 4)))
        if (sent >= 192 * 1024) return this.push(null)
        sent++
        this.push(chunk)
      }
    })
    const before = process.memoryUsage().rss
    const { signatures } = await dkimSign(body, { ...signer, signatureData: [signer] })
    expect(signatures).toMatch(/^DKIM-Signature: /)
    expect(process.memoryUsage().rss - before).toBeLessThan(96 * 1024 * 1024)
  }, 60_000)
})
