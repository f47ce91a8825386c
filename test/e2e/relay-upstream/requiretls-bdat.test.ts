// Envelope and content fidelity through a relaying bridge, end to end with real sockets:
//
// REQUIRETLS (RFC 8689): client -> bridge A (STARTTLS) -> bridge B (STARTTLS, certificate
// verified against the test CA). A passes REQUIRETLS on only over verified TLS to an upstream that
// offers it; B here is our own bridge, which offers REQUIRETLS inside TLS.
//
//   C: MAIL FROM:<a@x.test> REQUIRETLS        (to A, inside TLS)
//   S: 250 2.1.0 Ok
//   ...
//   C: .
//   S: 250 2.0.0 Ok: queued as ...             (only once B has the message in its Maildir)
//
//   (A relays to a plain upstream without TLS)
//   C: .
//   S: 550 5.7.30 ... REQUIRETLS ...           (nothing delivered)
//
// BDAT (RFC 3030) from the client, relayed to smtp-sink (which has no CHUNKING, so as DATA):
//
//   C: BDAT n / <n bytes>        S: 250 2.0.0 n octets received
//   C: BDAT m LAST / <m bytes>   S: 250 2.0.0 Ok: queued as ...   (after the sink took it)
//   (the sink has every line, "." lines and ".."-lines included, exactly as the client sent it)
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { startBridge, stripTrace, type TestBridge } from "../../support/bridge.ts"
import { testCertificate } from "../../support/certs.ts"
import { dumpedEnvelope, dumpedMessage, type Sink, startSink } from "../../support/sink.ts"
import { type Client, connect } from "../../support/SmtpClient.ts"

const bytes = (s: string): number => Buffer.byteLength(s, "utf8")

/** C: EHLO, STARTTLS, EHLO again; S: 250, 220, 250 with REQUIRETLS. */
const openTls = async (port: number): Promise<Client> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250[- ]STARTTLS$/m)
  expect(await c.command("STARTTLS")).toMatch(/^220 /)
  await c.startTls()
  expect(await c.command("EHLO client.test")).toMatch(/^250[- ]REQUIRETLS$/m)
  return c
}

/** C: MAIL ... REQUIRETLS, RCPT, DATA, the message (dot-stuffed); returns the reply to the final dot. */
const sendRequireTls = async (c: Client, message: string): Promise<string> => {
  expect(await c.command("MAIL FROM:<a@x.test> REQUIRETLS")).toBe("250 2.1.0 Ok")
  expect(await c.command("RCPT TO:<b@y.test>")).toBe("250 2.1.5 Ok")
  expect(await c.command("DATA")).toMatch(/^354 /)
  return c.command(`${message.replace(/^\./gm, "..")}.`, 20_000)
}

describe("REQUIRETLS relayed from bridge A to an upstream bridge", () => {
  const cert = testCertificate()
  let upstreamTls: TestBridge
  let upstreamPlain: TestBridge
  let viaTls: TestBridge
  let viaPlain: TestBridge

  beforeAll(async () => {
    upstreamTls = await startBridge({ hostname: "upstream-b.test", tls: { cert: cert.cert, key: cert.key }, trust: ["127.0.0.0/8"] })
    upstreamPlain = await startBridge({ hostname: "upstream-plain.test", trust: ["127.0.0.0/8"] })
    viaTls = await startBridge({
      hostname: "bridge-a.test",
      tls: { cert: cert.cert, key: cert.key },
      trust: ["127.0.0.0/8"],
      relay: `smtp://127.0.0.1:${upstreamTls.port}?tls=required&servername=localhost&ca=${encodeURIComponent(cert.cert)}`
    })
    // Opportunistic TLS towards an upstream that offers none: the session stays plain.
    viaPlain = await startBridge({
      hostname: "bridge-a2.test",
      tls: { cert: cert.cert, key: cert.key },
      trust: ["127.0.0.0/8"],
      relay: `smtp://127.0.0.1:${upstreamPlain.port}`
    })
  })
  afterAll(async () => {
    for (const b of [viaTls, viaPlain, upstreamTls, upstreamPlain]) await b?.stop()
  })

  it("answers 250 to a REQUIRETLS message only after the TLS upstream delivered it to its Maildir", async () => {
    const message = "Subject: requiretls relayed\r\n\r\n.dotted secret\r\nsecret\r\n"
    const before = upstreamTls.delivered().length
    const c = await openTls(viaTls.port)
    try {
      expect(await sendRequireTls(c, message)).toMatch(/^250 2\.0\.0 /)
      // Pass-through: by the time the client has its 250, B already has the file.
      const files = upstreamTls.delivered()
      expect(files).toHaveLength(before + 1)
      const delivered = files.at(-1)!.toString("utf8")
      // B received it from A over TLS (ESMTPS) and kept the content byte for byte.
      expect(delivered).toMatch(/^Received: from bridge-a\.test [^\r]*\r\n(?:[ \t][^\r]*\r\n)*/m)
      expect(/^Received: from bridge-a\.test [^\r]*(?:\r\n[ \t][^\r]*)*/m.exec(delivered)![0]).toMatch(/ESMTPS/)
      expect(stripTrace(files.at(-1)!).replace(/^Received:.*\r\n(?:[ \t].*\r\n)*/, "")).toBe(message)
      expect(viaTls.delivered()).toHaveLength(0)
    } finally {
      c.close()
    }
  })

  it("refuses a REQUIRETLS message with 550 5.7.30 when the upstream connection is not TLS, delivering nothing", async () => {
    const c = await openTls(viaPlain.port)
    try {
      const reply = await sendRequireTls(c, "Subject: requiretls to plain\r\n\r\nsecret\r\n")
      expect(reply).toMatch(/^550 5\.7\.30 .*REQUIRETLS/)
    } finally {
      c.close()
    }
    expect(upstreamPlain.delivered()).toHaveLength(0)
    expect(viaPlain.delivered()).toHaveLength(0)
  })

  it("still relays a message without REQUIRETLS over that same plain upstream (the refusal is REQUIRETLS's)", async () => {
    const c = await openTls(viaPlain.port)
    try {
      expect(await c.command("MAIL FROM:<a@x.test>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<b@y.test>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: plain is fine\r\n\r\nhello\r\n.", 20_000)).toMatch(/^250 2\.0\.0 /)
    } finally {
      c.close()
    }
    expect(upstreamPlain.delivered()).toHaveLength(1)
  })
})

describe("BDAT from the client relayed to smtp-sink", () => {
  let sink: Sink
  let bridge: TestBridge

  beforeAll(async () => {
    sink = await startSink()
    bridge = await startBridge({ relay: `smtp://127.0.0.1:${sink.port}`, trust: ["127.0.0.0/8"] })
  })
  afterAll(async () => {
    await bridge?.stop()
    await sink?.stop()
  })

  it("relays BDAT chunks with '.' and '..' lines intact, even a '.' line split across chunks, and answers 250 after the sink accepted", async () => {
    // A lone "." line would end a DATA transfer early if the bridge forgot to dot-stuff it.
    const chunks = [
      "Subject: chunked relay\r\n\r\n.leading dot\r\n..two dots\r\n",
      ".",
      "\r\nafter a lone dot\r\n.",
      "\r\n...\r\nlast line\r\n"
    ]
    const c = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO client.test")).toMatch(/^250[- ]CHUNKING$/m)
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
      for (const chunk of chunks.slice(0, -1)) {
        c.send(`BDAT ${bytes(chunk)}\r\n${chunk}`)
        expect(await c.read()).toBe(`250 2.0.0 ${bytes(chunk)} octets received`)
      }
      expect(sink.counters().messages).toBe(0)
      const last = chunks.at(-1)!
      c.send(`BDAT ${bytes(last)} LAST\r\n${last}`)
      expect(await c.read(20_000)).toMatch(/^250 2\.0\.0 /)
      // The 250 came after the sink took the message, not before.
      expect(sink.counters().messages).toBe(1)
    } finally {
      c.close()
    }
    const dumps = sink.messages()
    expect(dumps).toHaveLength(1)
    expect(dumpedEnvelope(dumps[0]!).mail).toBe("<alice@example.org>")
    const lf = chunks.join("").replace(/\r\n/g, "\n")
    // smtp-sink undoes the dot-stuffing and writes LF (and one LF of its own at the end): the dump
    // is the client's content exactly.
    expect(dumpedMessage(dumps[0]!).replace(/^Received:.*\n(?:[ \t].*\n)*/, "")).toBe(`${lf}\n`)
  })

  it("relays a single BDAT 0 LAST-terminated message (empty last chunk) exactly", async () => {
    const body = "Subject: empty last\r\n\r\n.\r\nend\r\n"
    const c = await connect(bridge.port)
    try {
      await c.read()
      await c.command("EHLO client.test")
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
      c.send(`BDAT ${bytes(body)}\r\n${body}`)
      expect(await c.read()).toBe(`250 2.0.0 ${bytes(body)} octets received`)
      expect(await c.command("BDAT 0 LAST", 20_000)).toMatch(/^250 2\.0\.0 /)
    } finally {
      c.close()
    }
    const dump = sink.messages().find((m) => m.includes("Subject: empty last"))
    expect(dump).toBeDefined()
    expect(dumpedMessage(dump!).replace(/^Received:.*\n(?:[ \t].*\n)*/, "")).toBe(`${body.replace(/\r\n/g, "\n")}\n`)
  })
})
