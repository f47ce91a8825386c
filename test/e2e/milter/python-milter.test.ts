// The milter plugin against a real libmilter filter (python3-milter, editor_milter.py) on
// loopback: macros and stages as Postfix sends them, every reply, and every modification
// (sender, recipients, headers, a replaced body) in what the upstream gets.
//
//   C: MAIL FROM:<alice@example.org>  RCPT TO:<reject@corp.example>
//   S: 550-5.7.1 first line
//   S: 550 5.7.1 second line
//   C: RCPT TO:<bob@corp.example>  DATA  Subject: rewrite ... .
//   S: 250 2.0.0 Ok: queued as ...
//   (smtp-sink: MAIL FROM:<bounces@example.org>, RCPT <carol@corp.example>, Subject: rewritten, the milter's body)
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { milter } from "../../../plugins/milter/index.ts"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { type RunningMilter, startEditorMilter } from "../../support/milter.ts"
import { dumpedEnvelope, dumpedMessage, type Sink, startSink } from "../../support/sink.ts"
import { connect } from "../../support/SmtpClient.ts"

/** C: one transaction; the reply to the final dot (or to the first refused RCPT). */
const send = async (port: number, subject: string, to: ReadonlyArray<string> = ["bob@corp.example"]): Promise<string> => {
  const c = await connect(port)
  try {
    expect(await c.read()).toMatch(/^220 /)
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    for (const r of to) {
      const reply = await c.command(`RCPT TO:<${r}>`)
      if (!reply.startsWith("250")) return reply
    }
    expect(await c.command("DATA")).toMatch(/^354 /)
    const reply = await c.command(`From: alice@example.org\r\nTo: bob@corp.example\r\nSubject: ${subject}\r\n\r\nhello milter\r\n.`, 30_000)
    await c.command("QUIT")
    return reply
  } finally {
    c.close()
  }
}

describe("the milter plugin with a python3-milter filter", () => {
  let sink: Sink
  let editor: RunningMilter & { readonly seen: () => ReadonlyArray<Record<string, unknown>> }
  let bridge: TestBridge
  let tempDir: string
  beforeAll(async () => {
    sink = await startSink()
    editor = await startEditorMilter()
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-milter-e2e-"))
    bridge = await startBridge({
      trust: ["127.0.0.1/32"],
      tempDir,
      limits: { spillThreshold: 64 * 1024 },
      plugins: [milter({ milters: [`inet:127.0.0.1:${editor.port}`] })],
      transports: { sink: { type: "smtp", url: `smtp://127.0.0.1:${sink.port}` }, quarantine: { type: "maildir", dir: path.join(tempDir, "held") } },
      defaultTransport: "sink"
    })
  }, 30_000)
  afterAll(async () => {
    await bridge?.stop()
    if (process.env.MILTER_DEBUG === "1") console.log(editor?.output())
    await editor?.stop()
    await sink?.stop()
    if (tempDir !== undefined) fs.rmSync(tempDir, { recursive: true, force: true })
  })

  it("applies the milter's sender, recipient, header and body changes: S: 250, the upstream gets them", async () => {
    expect(await send(bridge.port, "rewrite")).toMatch(/^250 2\.0\.0 /)
    await sink.waitFor((c) => c.messages >= 1, 15_000)
    const dump = sink.messages().find((d) => dumpedMessage(d).includes("Subject: rewritten"))!
    expect(dumpedEnvelope(dump)).toEqual({ mail: expect.stringMatching(/^<bounces@example\.org>/), rcpts: ["<carol@corp.example>"] })
    const message = dumpedMessage(dump)
    expect(message).toMatch(/^Received: .*\n(?:[ \t].*\n)*X-Milter-Top: inserted\nFrom: alice@example\.org\nTo: bob@corp\.example\nSubject: rewritten\nX-Milter: appended\n\n/)
    expect(message.split("the milter's new body\n").length - 1).toBe(20_000)
    expect(message).not.toContain("hello milter")
  })

  it("sends the stages and macros as Postfix does: connect, HELO, MAIL, RCPT, headers, body", () => {
    const seen = editor.seen().find((s) => s.subject === "rewrite")!
    expect(seen.connect).toEqual({ j: "bridge.test", _: "unknown [127.0.0.1]", "{daemon_name}": "smtp-bridge", "{client_addr}": "127.0.0.1" })
    expect(seen.helo).toBe("client.test")
    expect(seen.from).toBe("<alice@example.org>")
    expect(seen.rcpts).toEqual(["<bob@corp.example>"])
    expect(seen.macros).toMatchObject({ "{mail_addr}": "alice@example.org", "{rcpt_addr}": "bob@corp.example", i: expect.stringMatching(/^[0-9A-F]{16}$/) })
    expect(seen.client).toBe("127.0.0.1")
    expect((seen.headers as Array<[string, string]>).filter(([n]) => n !== "Received")).toEqual([["From", "alice@example.org"], ["To", "bob@corp.example"], ["Subject", "rewrite"]])
    expect(seen.body).toBe("hello milter\r\n".length)
    // It negotiated no reply to headers and body and no end of headers; the bridge neither waited nor sent it.
    const protocol = seen.protocol as number
    expect([protocol & 0x80, protocol & 0x80000, protocol & 0x40]).toEqual([0x80, 0x80000, 0x40])
  })

  it("refuses a recipient with the milter's multi-line reply: S: 550-5.7.1 first line / 550 5.7.1 second line", async () => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    await c.command("MAIL FROM:<alice@example.org>")
    expect(await c.command("RCPT TO:<reject@corp.example>")).toBe("550-5.7.1 first line\n550 5.7.1 second line")
    expect(await c.command("RCPT TO:<tempfail@corp.example>")).toBe("451 4.7.1 Service unavailable - try again later")
    expect(await c.command("RCPT TO:<bob@corp.example>")).toBe("250 2.1.5 Ok")
    await c.command("QUIT")
    c.close()
  })

  it("rejects at end of message with the milter's reply code: S: 554 5.7.0", async () => {
    expect(await send(bridge.port, "reject")).toBe("554 5.7.0 rejected by the test milter")
  })

  it("discards: S: 250, delivered to nobody", async () => {
    const before = sink.counters().messages
    expect(await send(bridge.port, "discard")).toMatch(/^250 2\.0\.0 /)
    await new Promise((r) => setTimeout(r, 300))
    expect(sink.counters().messages).toBe(before)
  })

  it("quarantines into the transport named quarantine: S: 250", async () => {
    expect(await send(bridge.port, "quarantine")).toMatch(/^250 2\.0\.0 /)
    const held = path.join(tempDir, "held", "new")
    expect(fs.readdirSync(held).map((f) => fs.readFileSync(path.join(held, f), "utf8")).some((m) => m.includes("Subject: quarantine"))).toBe(true)
  })

  it("treats a header change with CR LF in it, or 10,000 added recipients, as a broken milter: S: 451 4.7.1", async () => {
    const before = sink.counters().messages
    expect(await send(bridge.port, "inject")).toBe("451 4.7.1 Service unavailable - try again later")
    expect(await send(bridge.port, "many")).toBe("451 4.7.1 Service unavailable - try again later")
    expect(sink.counters().messages).toBe(before)
  })

  it("keeps one milter connection for a session: RSET mid-transaction (ABORT), then two messages: S: 250 twice", async () => {
    const before = sink.counters().messages
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@corp.example>")).toBe("250 2.1.5 Ok")
    expect(await c.command("RSET")).toMatch(/^250 /)
    for (const subject of ["first of two", "second of two"]) {
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@corp.example>")).toBe("250 2.1.5 Ok")
      await c.command("DATA")
      expect(await c.command(`Subject: ${subject}\r\n\r\nhi\r\n.`, 20_000)).toMatch(/^250 2\.0\.0 /)
    }
    await c.command("QUIT")
    c.close()
    await sink.waitFor((n) => n.messages >= before + 2, 15_000)
    const seen = editor.seen().filter((s) => String(s.subject).endsWith("of two"))
    expect(seen.map((s) => [s.subject, s.rcpts])).toEqual([["first of two", ["<bob@corp.example>"]], ["second of two", ["<bob@corp.example>"]]])
  })
})

describe("the milter plugin over a unix socket", () => {
  it("reaches a milter at unix:/PATH: S: 554 5.7.0 from its reply", async () => {
    const editor = await startEditorMilter({ unix: true })
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [milter({ milters: [editor.socket] })] })
    try {
      expect(editor.socket).toMatch(/^unix:\//)
      expect(await send(bridge.port, "reject")).toBe("554 5.7.0 rejected by the test milter")
      expect(editor.seen().map((s) => s.subject)).toEqual(["reject"])
    } finally {
      await bridge.stop()
      await editor.stop()
    }
  }, 30_000)
})
