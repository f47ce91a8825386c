// A client that vanishes in the middle of a message: nothing is delivered, the spilled temporary
// file is removed, and the server goes on serving others.
//
//   C: DATA
//   S: 354 End data with <CR><LF>.<CR><LF>
//   C: <64 KB of message, no terminator>
//   C: (closes the connection)
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import type { TestBridge } from "../support/bridge.ts"
import { startBridge, stripTrace } from "../support/bridge.ts"
import { connect } from "../support/SmtpClient.ts"
import { openData } from "../support/transcript.ts"

const line = `${"x".repeat(998)}\r\n`

/** Polls `check` every 20 ms for up to `timeoutMs`; the last value is returned either way. */
const eventually = async <A>(check: () => A, ok: (a: A) => boolean, timeoutMs = 5_000): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = check()
    if (ok(value) || Date.now() > deadline) return value
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describe("a client disconnecting in mid-DATA", () => {
  let bridge: TestBridge
  let tempDir: string
  const spillFiles = () => fs.readdirSync(tempDir)
  const maildirTmp = () => fs.readdirSync(path.join(bridge.maildir, "tmp"))

  beforeAll(async () => {
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-spill-"))
    bridge = await startBridge({ trust: ["127.0.0.0/8"], tempDir, limits: { spillThreshold: 1024 } })
  })
  afterAll(async () => {
    await bridge.stop()
    fs.rmSync(tempDir, { recursive: true, force: true })
  })

  it("delivers nothing, removes the spill file and serves the next client", async () => {
    const c = await openData(bridge.port)
    c.send("Subject: cut off\r\n\r\n")
    for (let i = 0; i < 64; i++) c.send(line)
    // The message is past the 1 KB threshold, so it lives in a temporary file now.
    expect(await eventually(spillFiles, (f) => f.length === 1)).toHaveLength(1)
    c.close()

    expect(await eventually(spillFiles, (f) => f.length === 0)).toEqual([])
    expect(bridge.delivered()).toHaveLength(0)
    expect(maildirTmp()).toEqual([])
    expect(await eventually(() => bridge.running.connections(), (n) => n === 0)).toBe(0)

    // C: a whole transaction on a new connection; S: 250.
    const next = await openData(bridge.port)
    next.send("Subject: after\r\n\r\nstill here\r\n.\r\n")
    expect(await next.read()).toMatch(/^250 2\.0\.0 Ok: queued as /)
    expect(await next.command("QUIT")).toMatch(/^221 /)
    expect(bridge.delivered()).toHaveLength(1)
    expect(stripTrace(bridge.delivered()[0]!)).toBe("Subject: after\r\n\r\nstill here\r\n")
    expect(spillFiles()).toEqual([])
  })

  it("delivers nothing when the client half-closes after part of a BDAT chunk", async () => {
    const before = bridge.delivered().length
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    await c.command("MAIL FROM:<alice@example.org>")
    await c.command("RCPT TO:<bob@example.net>")
    c.send(`BDAT 100000 LAST\r\n${line.repeat(20)}`)
    expect(await eventually(spillFiles, (f) => f.length === 1)).toHaveLength(1)
    c.close()
    expect(await eventually(spillFiles, (f) => f.length === 0)).toEqual([])
    expect(bridge.delivered()).toHaveLength(before)
    expect(await eventually(() => bridge.running.connections(), (n) => n === 0)).toBe(0)
  })

  it("delivers nothing when the client leaves right after DATA's 354", async () => {
    const before = bridge.delivered().length
    const c = await openData(bridge.port)
    c.close()
    expect(await eventually(() => bridge.running.connections(), (n) => n === 0)).toBe(0)
    expect(bridge.delivered()).toHaveLength(before)
    expect(spillFiles()).toEqual([])
  })
})
