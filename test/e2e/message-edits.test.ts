// A `data` hook's message edits (what milters and HTTP hooks ask for) through a real client:
// the changed sender and recipients are the envelope the upstream gets and the `delivered`
// hooks see, a replaced body is streamed through a spill file, headers are changed and inserted
// by position; an edit that would inject a line break, or 10,000 recipients, fails the hook.
//
//   C: MAIL FROM:<alice@example.org>  RCPT TO:<bob@corp.example>  DATA  Subject: edit all ... .
//   S: 250 2.0.0 Ok: queued as ...
//   (smtp-sink: MAIL FROM:<bounces@example.org>, RCPT <carol@corp.example>, "Subject: edited", the new body)
//   C: ... Subject: inject ... .
//   S: 451 4.3.0 Temporary failure, please try again later
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { definePlugin, Message, Verdict } from "../../src/index.ts"
import type { DataContext } from "../../src/index.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { dumpedEnvelope, dumpedMessage, type Sink, startSink } from "../support/sink.ts"
import { connect } from "../support/SmtpClient.ts"

const pluginFailure = "451 4.3.0 Temporary failure, please try again later"
const bodyLine = "the replaced body, line after line, longer than the spill threshold\r\n"
const bodyLines = 5_000

const edit = Effect.fnUntraced(function*({ edit, message }: DataContext) {
  const subject = Message.header(message, "Subject") ?? ""
  switch (subject) {
    case "edit all": {
      edit.setSender("<bounces@example.org>")
      edit.removeRecipient("<bob@corp.example>")
      edit.addRecipient("carol@corp.example")
      edit.changeHeader("subject", 1, "edited")
      edit.insertHeader(0, "X-First", "on top")
      edit.changeHeader("X-Remove-Me", 1, undefined)
      // Bare LF endings from the writer become CRLF.
      const body = edit.replaceBody()
      for (let i = 0; i < bodyLines; i++) yield* body.write(new TextEncoder().encode(bodyLine.replace("\r\n", "\n")))
      yield* body.end()
      break
    }
    case "inject":
      edit.changeHeader("Subject", 1, "x\r\nBcc: victim@example.net")
      break
    case "inject name":
      edit.insertHeader(1, "X-A: b\r\nBcc", "victim@example.net")
      break
    case "many":
      for (let i = 0; i < 10_000; i++) edit.addRecipient(`r${i}@corp.example`)
      break
    case "bad address":
      edit.addRecipient("not an address")
      break
    case "discard":
      edit.discard("test discard")
      break
    case "remove all":
      edit.removeRecipient("bob@corp.example")
      break
  }
  return Verdict.Continue
})

const seen: Array<{ readonly from: string | undefined; readonly to: ReadonlyArray<string> }> = []
const editor = definePlugin({
  name: "editor",
  data: edit,
  delivered: ({ transaction, results }) =>
    Effect.sync(() => void seen.push({ from: transaction.mailFrom?.address, to: results.map((r) => r.recipient.mailbox.address) }))
})

/** C: one transaction; returns the reply to the final dot. */
const send = async (port: number, subject: string, extra = ""): Promise<string> => {
  const c = await connect(port)
  try {
    expect(await c.read()).toMatch(/^220 /)
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@corp.example>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const reply = await c.command(`Subject: ${subject}\r\nX-Remove-Me: 1\r\n${extra}\r\nthe original body\r\n.`, 20_000)
    await c.command("QUIT")
    return reply
  } finally {
    c.close()
  }
}

const dumpsWith = (sink: Sink, marker: string) => sink.messages().filter((d) => dumpedMessage(d).includes(marker))

for (const mode of ["pass-through", "spool"] as const) {
  describe(`message edits by a data hook (${mode})`, () => {
    let sink: Sink
    let bridge: TestBridge
    let tempDir: string
    beforeAll(async () => {
      sink = await startSink()
      tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-edits-"))
      bridge = await startBridge({
        trust: ["127.0.0.1/32"],
        tempDir,
        limits: { spillThreshold: 16 * 1024 },
        plugins: [editor],
        transports: { sink: { type: "smtp", url: `smtp://127.0.0.1:${sink.port}` } },
        defaultTransport: "sink",
        ...(mode === "spool" ? { spool: { dir: path.join(tempDir, "spool"), initialDelay: "1 hour" } } : {})
      })
    })
    afterAll(async () => {
      await bridge?.stop()
      await sink?.stop()
      fs.rmSync(tempDir, { recursive: true, force: true })
    })

    it("delivers to the changed envelope, with the header edits and the streamed new body: S: 250", async () => {
      seen.length = 0
      expect(await send(bridge.port, "edit all")).toMatch(/^250 2\.0\.0 /)
      await sink.waitFor((c) => c.messages >= 1, 15_000)
      const dump = dumpsWith(sink, "Subject: edited")
      expect(dump).toHaveLength(1)
      expect(dumpedEnvelope(dump[0]!)).toEqual({ mail: expect.stringMatching(/^<bounces@example\.org>/), rcpts: ["<carol@corp.example>"] })
      const message = dumpedMessage(dump[0]!)
      // The bridge's Received goes on top of the edited section; X-First was inserted at position 0 before it.
      expect(message).toMatch(/^Received: .*\n(?:[ \t].*\n)*X-First: on top\nSubject: edited\n\n/)
      expect(message).not.toContain("X-Remove-Me")
      expect(message).not.toContain("the original body")
      expect(message.split(bodyLine.replace("\r\n", "\n")).length - 1).toBe(bodyLines)
      // The delivered hooks see the envelope that was delivered.
      expect(seen).toEqual([{ from: "bounces@example.org", to: ["carol@corp.example"] }])
      // The replacement's spill file is gone once the message is.
      expect(fs.readdirSync(tempDir).filter((f) => f.endsWith(".eml"))).toEqual([])
    })

    it("refuses a header value with CR LF in it (a forged Bcc): S: 451 4.3.0, nothing delivered", async () => {
      const before = sink.counters().messages
      expect(await send(bridge.port, "inject")).toBe(pluginFailure)
      expect(await send(bridge.port, "inject name")).toBe(pluginFailure)
      expect(sink.counters().messages).toBe(before)
      expect(sink.messages().some((d) => d.includes("victim@example.net"))).toBe(false)
    })

    it("refuses 10,000 added recipients past limits.maxRecipients: S: 451 4.3.0", async () => {
      expect(await send(bridge.port, "many")).toBe(pluginFailure)
      expect(await send(bridge.port, "bad address")).toBe(pluginFailure)
    })

    it("accepts a discarded message and delivers it to nobody: S: 250", async () => {
      seen.length = 0
      const before = sink.counters().messages
      expect(await send(bridge.port, "discard")).toMatch(/^250 2\.0\.0 /)
      expect(await send(bridge.port, "remove all")).toMatch(/^250 2\.0\.0 /)
      await new Promise((r) => setTimeout(r, 300))
      expect(sink.counters().messages).toBe(before)
      expect(seen).toEqual([{ from: "alice@example.org", to: [] }, { from: "alice@example.org", to: [] }])
    })
  })
}
