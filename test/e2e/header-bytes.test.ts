// A relay passes every byte it does not mean to change: header fields with 8-bit text, invalid
// UTF-8 and overlong sequences reach every transport exactly as the client sent them, under the
// fields the bridge adds on top, and a DKIM signature over them verifies on those bytes.
//
//   C: MAIL FROM:<alice@example.test> BODY=8BITMIME
//   C: DATA
//   C: Subject: caf<E9> cr<E8>me
//   C: X-Overlong: <C0 AE C0 AE>/etc/passwd
//   S: 250 2.0.0 Ok: queued as ...   -> delivered: Received: ... then those bytes, unchanged
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import type { AddressInfo } from "node:net"
import { dkimSign } from "../../plugins/dkim-sign/index.ts"
import * as Keys from "../../src/dkim/Keys.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { dumpedMessage, type Sink, startSink } from "../support/sink.ts"
import { connect } from "../support/SmtpClient.ts"
import * as Dkimpy from "./mailauth/dkimpy.ts"

const bytes = (...parts: ReadonlyArray<string | ReadonlyArray<number>>): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "latin1") : Buffer.from(p))))

/** One character per byte: comparisons of these strings are comparisons of bytes. */
const octets = (b: Uint8Array): string => Buffer.from(b).toString("latin1")

const original = bytes(
  "From: Alice <alice@example.test>\r\n",
  "To: bob@example.net\r\n",
  // ISO-8859-1 from an old client.
  "Subject: caf", [0xe9], " cr", [0xe8], "me\r\n",
  // Overlong encodings of "." and "/".
  "X-Overlong: ", [0xc0, 0xae, 0xc0, 0xae, 0xc0, 0xaf], "etc/passwd\r\n",
  // A lone continuation byte, FF FE, an encoded surrogate, a truncated sequence.
  "X-Invalid: ", [0x80, 0xff, 0xfe, 0xed, 0xa0, 0x80, 0xe2, 0x82], "\r\n",
  // UTF-8 whose bytes include 80-9F ("€", "ł"), and C1 controls as single bytes.
  "X-Utf8: ", [0xe2, 0x82, 0xac, 0x20, 0xc5, 0x82, 0x20, 0x85, 0x9f], "\r\n",
  // Folded, with valid UTF-8, a latin1 byte and a trailing A0 (NBSP in latin1, not WSP for DKIM).
  "X-Folded: one ", [0xe9], "\r\n\ttwo ", [0xc3, 0xa9], " ", [0xa0], "\r\n",
  "Date: Tue, 01 Jul 2025 12:00:00 +0000\r\n",
  "\r\n",
  "Body ", [0xe9, 0xc0, 0xae], " ", [0xe2, 0x82, 0xac, 0x85, 0x80], "\r\n"
)

/** The message in a smtp-sink dump: LF line endings, and one more LF after the message. */
const sunk = (dump: Buffer): string => dumpedMessage(octets(dump)).replace(/\n$/, "")

/** Sends `original` through the bridge and expects 250. */
const send = async (bridge: TestBridge) => {
  const c = await connect(bridge.port)
  await c.read()
  await c.command("EHLO client.test")
  expect(await c.command("MAIL FROM:<alice@example.test> BODY=8BITMIME")).toBe("250 2.1.0 Ok")
  expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
  expect(await c.command("DATA")).toMatch(/^354 /)
  c.send(Buffer.concat([original, Buffer.from(".\r\n")]))
  expect(await c.read(20_000)).toMatch(/^250 2\.0\.0 /)
  c.close()
}

/**
 * `delivered` is fields the bridge added (at least its Received), then `message` byte for byte.
 * `eol` is the line ending the upstream stores.
 */
const expectExact = (delivered: string, message: string, eol = "\r\n") => {
  const sent = eol === "\r\n" ? message : message.replaceAll("\r\n", eol)
  expect(delivered.endsWith(sent), `delivered:\n${JSON.stringify(delivered)}`).toBe(true)
  const added = delivered.slice(0, delivered.length - sent.length)
  expect(added).toMatch(new RegExp(`^Received: `, "m"))
  expect(added.endsWith(eol)).toBe(true)
  expect(added).toMatch(/^[\t\n\r\x20-\x7e]*$/)
}

describe("header bytes that are not UTF-8", () => {
  const started: Array<TestBridge> = []
  const sinks: Array<Sink> = []
  afterAll(async () => {
    for (const b of started) await b.stop()
    for (const s of sinks) await s.stop()
  })
  const bridge = async (input: Parameters<typeof startBridge>[0]) => {
    const b = await startBridge({ trust: ["127.0.0.0/8"], ...input })
    started.push(b)
    return b
  }

  it("reach the Maildir transport byte for byte", async () => {
    const b = await bridge({})
    await send(b)
    expectExact(octets(b.delivered()[0]!), octets(original))
  })

  it("reach the Maildir transport byte for byte through the spool", async () => {
    const b = await bridge({ spool: { dir: fs.mkdtempSync(path.join(os.tmpdir(), "sb-spool-")) } })
    await send(b)
    // The spool answers 250 once the message is on disk; its worker delivers it right after.
    for (let i = 0; i < 200 && b.delivered().length === 0; i++) await new Promise((r) => setTimeout(r, 25))
    expect(b.delivered()).toHaveLength(1)
    expectExact(octets(b.delivered()[0]!), octets(original))
  })

  it("reach an SMTP upstream (smtp-sink) byte for byte", async () => {
    const sink = await startSink()
    sinks.push(sink)
    await send(await bridge({ relay: `smtp://127.0.0.1:${sink.port}` }))
    await sink.waitFor((c) => c.messages >= 1)
    expectExact(sunk(sink.files()[0]!), octets(original), "\n")
  })

  it("reach an LMTP upstream (smtp-sink -L) byte for byte", async () => {
    const sink = await startSink({ lmtp: true })
    sinks.push(sink)
    await send(await bridge({ transports: { default: { type: "lmtp", url: `lmtp://127.0.0.1:${sink.port}` } } }))
    await sink.waitFor((c) => c.messages >= 1)
    expectExact(sunk(sink.files()[0]!), octets(original), "\n")
  })

  describe("through the webhook", () => {
    const bodies: Array<Buffer> = []
    let server: http.Server
    let url = ""
    beforeAll(async () => {
      server = http.createServer((req, res) => {
        const parts: Array<Buffer> = []
        req.on("data", (c: Buffer) => parts.push(c))
        req.on("end", () => {
          bodies.push(Buffer.concat(parts))
          res.writeHead(200).end("ok")
        })
      })
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/inbound`
    })
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

    it("reach a raw webhook byte for byte", async () => {
      await send(await bridge({ webhook: url }))
      expect(bodies).toHaveLength(1)
      expectExact(octets(bodies[0]!), octets(original))
    })
  })

  it("are signed by dkim-sign as they are sent: both signatures verify with dkimpy on the delivered bytes", async () => {
    const rsa = Keys.keygen({ algorithm: "rsa", domain: "example.test", selector: "rsa1" })
    const ed = Keys.keygen({ algorithm: "ed25519", domain: "example.test", selector: "ed1" })
    const b = await bridge({
      plugins: [dkimSign({
        keys: [
          { domain: "example.test", selector: "rsa1", privateKey: rsa.privateKeyPem },
          { domain: "example.test", selector: "ed1", privateKey: ed.privateKeyPem }
        ],
        // Every field of the message, the 8-bit ones included.
        headers: ["From", "To", "Subject", "Date", "X-Overlong", "X-Invalid", "X-Utf8", "X-Folded"],
        // The test client is a trusted network without AUTH: allowed to have its From signed.
        trustedFrom: { "127.0.0.0/8": ["@example.test"] }
      })]
    })
    await send(b)
    const file = b.delivered()[0]!
    expect(octets(file).endsWith(octets(original))).toBe(true)
    expect(octets(file)).toMatch(/^DKIM-Signature: [^]*h=From:[^;]*:X-Overlong:X-Invalid:X-Utf8:X-Folded;/m)
    expect(await Dkimpy.verify(file, { [rsa.dnsRecordName]: rsa.txtValue, [ed.dnsRecordName]: ed.txtValue })).toEqual([true, true])
  })
})
