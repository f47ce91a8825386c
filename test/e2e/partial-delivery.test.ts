// Partial delivery (issue 3, DESIGN.md section 4): some recipients delivered, some not. The client
// gets 250, never a 4xx or 5xx that would make it send again to recipients who already have the
// message; the failed recipients are reported to the sender (a DSN) or handed to the spool.
//
// Dovecot's LMTP knows only "known". Recipients in example.net are routed to it; everything else,
// and so the DSN to the sender alice@example.org, goes to the default transport, the bridge's Maildir.
//
//   C: MAIL FROM:<alice@example.org>
//   C: RCPT TO:<known@example.net>
//   C: RCPT TO:<unknown@example.net>
//   C: DATA ... .
//   S: 250 2.0.0 Ok: queued as ... (1 of 2 recipients delivered; the others are reported to the sender)
//   (known: one copy; the Maildir: a DSN to alice@example.org, Final-Recipient unknown@example.net, 5.1.1)
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { ConfigInput } from "../../src/config/Input.ts"
import * as Spool from "../../src/transport/Spool.ts"
import { startBridge, type TestBridge } from "../support/bridge.ts"
import { type Dovecot, dovecotAvailable, startDovecot } from "../support/dovecot.ts"
import { needTool } from "../support/tools.ts"
import { freePort } from "../support/runtimes.ts"
import { dumpedEnvelope, dumpedMessage, startSink } from "../support/sink.ts"
import { connect } from "../support/SmtpClient.ts"

/** C: one transaction; returns the reply to the final dot. */
const send = async (
  port: number,
  options: { readonly from?: string; readonly to: ReadonlyArray<string>; readonly subject: string }
): Promise<string> => {
  const c = await connect(port)
  try {
    expect(await c.read()).toMatch(/^220 /)
    await c.command("EHLO client.test")
    expect(await c.command(`MAIL FROM:<${options.from ?? "alice@example.org"}>`)).toBe("250 2.1.0 Ok")
    for (const r of options.to) expect(await c.command(`RCPT TO:${r.startsWith("<") ? r : `<${r}>`}`)).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const reply = await c.command(`Subject: ${options.subject}\r\n\r\nhello\r\n.`)
    await c.command("QUIT")
    return reply
  } finally {
    c.close()
  }
}

const isDsn = (message: string): boolean => message.includes("report-type=delivery-status")
const dsnsAbout = (bridge: TestBridge, subject: string): ReadonlyArray<string> =>
  bridge.delivered().map((b) => b.toString("utf8")).filter((m) => isDsn(m) && m.includes(`\r\nSubject: ${subject}\r\n`))
/** The copies of the message with this subject; dovecot stores LF line endings, the bridge's Maildir CRLF. */
const copiesIn = (messages: ReadonlyArray<string>, subject: string): ReadonlyArray<string> =>
  messages.filter((m) => !isDsn(m) && m.split(/\r?\n/).includes(`Subject: ${subject}`))

/** Polls `check` every 50 ms until it holds; fails with `what` after `timeoutMs`. */
const eventually = async (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const listQueue = (dir: string) => Effect.runPromise(Spool.list(dir))

const expectFailedDsn = (dsn: string, recipient: string, status: string) => {
  expect(dsn).toMatch(/^Return-Path: <>\r$/m)
  expect(dsn).toMatch(/^Delivered-To: alice@example\.org\r$/m)
  expect(dsn).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status;/m)
  expect(dsn).toContain(`\r\nFinal-Recipient: rfc822; ${recipient}\r\n`)
  expect(dsn).toMatch(/^Action: failed\r$/m)
  expect(dsn).toContain(`\r\nStatus: ${status}\r\n`)
  expect(dsn).toMatch(/^Diagnostic-Code: smtp; 550 5\.1\.1 /m)
  // Only the failed recipient is reported.
  expect(dsn.match(/^Final-Recipient:/gm)).toHaveLength(1)
}

describe.skipIf(!needTool("dovecot (tests run as root)", dovecotAvailable()))("partial delivery to dovecot LMTP", () => {
  let dovecot: Dovecot
  const lmtpConfig = (): ConfigInput => ({
    trust: ["127.0.0.1/32"],
    transports: { lmtp: { type: "lmtp", url: `lmtp://127.0.0.1:${dovecot.port}` } },
    routes: [{ recipientDomain: ["example.net"], transport: "lmtp" }]
  })
  beforeAll(async () => {
    dovecot = await startDovecot({ users: ["known"] })
  })
  afterAll(async () => {
    await dovecot?.stop()
  })

  describe("without a spool (pass-through)", () => {
    let bridge: TestBridge
    beforeAll(async () => {
      bridge = await startBridge(lmtpConfig())
    })
    afterAll(() => bridge?.stop())

    it("known + unknown: S: 250 (1 of 2 recipients delivered; ...); known gets one copy; the sender a DSN with 5.1.1", async () => {
      const before = dovecot.delivered("known").length
      const reply = await send(bridge.port, { to: ["known@example.net", "unknown@example.net"], subject: "lmtp partial" })
      expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \S+ \(1 of 2 recipients delivered; the others are reported to the sender\)$/)
      expect(copiesIn(dovecot.delivered("known"), "lmtp partial")).toHaveLength(1)
      expect(dovecot.delivered("known")).toHaveLength(before + 1)
      const dsns = dsnsAbout(bridge, "lmtp partial")
      expect(dsns).toHaveLength(1)
      expectFailedDsn(dsns[0]!, "unknown@example.net", "5.1.1")
      expect(dsns[0]).toContain("\r\nTo: <alice@example.org>\r\n")
    })

    it("known + unknown with NOTIFY=NEVER on the unknown one: S: 250 (1 of 2 ...), and no DSN", async () => {
      const reply = await send(bridge.port, { to: ["known@example.net", "<unknown@example.net> NOTIFY=NEVER"], subject: "notify never" })
      // No promise of a report the bridge will not send.
      expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \S+ \(1 of 2 recipients delivered\)$/)
      expect(copiesIn(dovecot.delivered("known"), "notify never")).toHaveLength(1)
      expect(dsnsAbout(bridge, "notify never")).toHaveLength(0)
    })

    it("known + unknown from the null sender <>: S: 250 (1 of 2 ...), and no DSN (never to <>)", async () => {
      const before = bridge.delivered().length
      const reply = await send(bridge.port, { from: "", to: ["known@example.net", "unknown@example.net"], subject: "null sender" })
      expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \S+ \(1 of 2 recipients delivered\)$/)
      expect(copiesIn(dovecot.delivered("known"), "null sender")).toHaveLength(1)
      expect(bridge.delivered()).toHaveLength(before)
    })

    it("only unknown recipients: S: 550 5.1.1 (nothing was delivered, the client bounces it itself), no DSN", async () => {
      const before = bridge.delivered().length
      const reply = await send(bridge.port, { to: ["unknown@example.net", "ghost@example.net"], subject: "all unknown" })
      expect(reply).toMatch(/^550 5\.1\.1 /)
      expect(bridge.delivered()).toHaveLength(before)
    })
  })

  describe("with a spool", () => {
    let bridge: TestBridge
    let spoolDir: string
    beforeAll(async () => {
      spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-spool-partial-"))
      bridge = await startBridge({ ...lmtpConfig(), spool: { dir: spoolDir, initialDelay: "1 hour" } })
    })
    afterAll(async () => {
      await bridge?.stop()
      fs.rmSync(spoolDir, { recursive: true, force: true })
    })

    it("known + unknown: S: 250 at once (never 4xx); the worker delivers known once and bounces unknown with a DSN", async () => {
      const before = dovecot.delivered("known").length
      const reply = await send(bridge.port, { to: ["known@example.net", "unknown@example.net"], subject: "spooled partial" })
      expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \S+$/)
      await eventually("the DSN in the sender's Maildir", () => dsnsAbout(bridge, "spooled partial").length > 0)
      await eventually("an empty queue", async () => (await listQueue(spoolDir)).length === 0)
      expect(copiesIn(dovecot.delivered("known"), "spooled partial")).toHaveLength(1)
      expect(dovecot.delivered("known")).toHaveLength(before + 1)
      const dsns = dsnsAbout(bridge, "spooled partial")
      expect(dsns).toHaveLength(1)
      expectFailedDsn(dsns[0]!, "unknown@example.net", "5.1.1")
    })
  })
})

describe("partial delivery with a temporary failure (the sink route down) and a spool", () => {
  it("S: 250; b@else.example delivered, a@corp.example queued; after the sink comes up and Spool.flush, delivered once", async () => {
    const sinkPort = await freePort()
    const spoolDir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-spool-temp-"))
    const bridge = await startBridge({
      trust: ["127.0.0.1/32"],
      transports: { sink: { type: "smtp", url: `smtp://127.0.0.1:${sinkPort}`, timeouts: { connect: "2 seconds" } } },
      routes: [{ recipientDomain: ["corp.example"], transport: "sink" }],
      // Retries only when flushed: the test decides when the sink is back.
      spool: { dir: spoolDir, initialDelay: "1 hour" }
    })
    let sink: Awaited<ReturnType<typeof startSink>> | undefined
    try {
      const reply = await send(bridge.port, { to: ["a@corp.example", "b@else.example"], subject: "sink later" })
      expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as \S+$/)

      await eventually("b@else.example in the Maildir", () => copiesIn(bridge.delivered().map((b) => b.toString("utf8")), "sink later").length > 0)
      await eventually("the failed attempt for a@corp.example recorded", async () =>
        ((await listQueue(spoolDir))[0]?.recipients.find((x) => x.address === "a@corp.example")?.attempts ?? 0) >= 1)
      const queue = await listQueue(spoolDir)
      expect(queue).toHaveLength(1)
      const recipients = Object.fromEntries(queue[0]!.recipients.map((r) => [r.address, r]))
      expect(recipients["b@else.example"]?.state).toBe("delivered")
      expect(recipients["a@corp.example"]).toMatchObject({ transport: "sink", state: "pending" })
      expect(recipients["a@corp.example"]?.lastReply?.code).toBeGreaterThanOrEqual(400)
      expect(recipients["a@corp.example"]?.lastReply?.code).toBeLessThan(500)
      expect(queue[0]!.nextAttempt.getTime()).toBeGreaterThan(Date.now() + 30 * 60_000)

      sink = await startSink({ port: sinkPort })
      expect(await Effect.runPromise(Spool.flush(spoolDir))).toBe(1)
      await sink.waitFor((c) => c.messages >= 1, 10_000)
      const dumps = sink.messages().filter((d) => dumpedMessage(d).includes("Subject: sink later"))
      expect(dumps.map((d) => dumpedEnvelope(d).rcpts)).toEqual([["<a@corp.example>"]])
      await eventually("an empty queue", async () => (await listQueue(spoolDir)).length === 0)
      // b@else.example was not delivered a second time, and the sender got no bounce.
      const local = bridge.delivered().map((b) => b.toString("utf8"))
      expect(copiesIn(local, "sink later")).toHaveLength(1)
      expect(local.filter(isDsn)).toHaveLength(0)
    } finally {
      await bridge.stop()
      await sink?.stop()
      fs.rmSync(spoolDir, { recursive: true, force: true })
    }
  })
})
