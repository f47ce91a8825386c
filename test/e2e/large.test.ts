// A 50 MB message through DATA, past the default spill threshold (so it lives in a temporary file),
// arrives intact: the Maildir holds exactly the bytes the client meant, dot-unstuffed.
//
//   C: MAIL FROM:<alice@example.org> SIZE=52428800+
//   S: 250 2.1.0 Ok
//   C: DATA
//   S: 354 End data with <CR><LF>.<CR><LF>
//   C: <50 MB, written as fast as the server reads it>
//   C: .
//   S: 250 2.0.0 Ok: queued as ...
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import type { TestBridge } from "../support/bridge.ts"
import { startBridge, stripTrace } from "../support/bridge.ts"

const target = 50 * 1024 * 1024

/** A raw session for bulk data: writes wait for `drain`, every read is bounded. */
const rawSession = async (port: number) => {
  const socket = net.connect({ host: "127.0.0.1", port })
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve)
    socket.once("error", reject)
  })
  let pending = ""
  const replies: Array<string> = []
  let wake: (() => void) | undefined
  socket.on("data", (chunk: Buffer) => {
    pending += chunk.toString("latin1")
    let end = pending.indexOf("\r\n")
    while (end !== -1) {
      const line = pending.slice(0, end)
      pending = pending.slice(end + 2)
      if (!/^\d{3}-/.test(line)) replies.push(line)
      end = pending.indexOf("\r\n")
    }
    wake?.()
  })
  socket.on("close", () => wake?.())
  const reply = async (timeoutMs = 10_000): Promise<string> => {
    const deadline = Date.now() + timeoutMs
    while (replies.length === 0) {
      if (socket.destroyed || Date.now() > deadline) throw new Error(`no reply within ${timeoutMs} ms`)
      await new Promise<void>((resolve) => {
        wake = resolve
        setTimeout(resolve, 50)
      })
    }
    return replies.shift()!
  }
  const write = (data: string | Uint8Array): Promise<void> =>
    new Promise((resolve, reject) => {
      if (socket.write(data)) return resolve()
      const timer = setTimeout(() => reject(new Error("the server stopped reading for 10 s")), 10_000)
      socket.once("drain", () => {
        clearTimeout(timer)
        resolve()
      })
    })
  return { reply, write, command: async (line: string) => (await write(`${line}\r\n`), reply()), close: () => socket.destroy() }
}

/** Line `i` of the body: printable, varied, and every 7th starting with a dot that needs stuffing. */
const bodyLine = (i: number): string => `${i % 7 === 0 ? "." : ""}${i.toString(36)} ${"abcdefghijklmnopqrstuvwxyz0123456789".repeat(2)}\r\n`

describe("a 50 MB message", () => {
  let bridge: TestBridge
  let tempDir: string
  beforeAll(async () => {
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-large-"))
    bridge = await startBridge({ trust: ["127.0.0.0/8"], tempDir, limits: { maxMessageSize: "64MB" } })
  })
  afterAll(async () => {
    await bridge.stop()
    fs.rmSync(tempDir, { recursive: true, force: true })
  })

  it("is delivered byte for byte through a spill file, which is removed afterwards", async () => {
    const s = await rawSession(bridge.port)
    try {
      expect(await s.reply()).toMatch(/^220 /)
      expect(await s.command("EHLO client.test")).toMatch(/^250 /)
      expect(await s.command(`MAIL FROM:<alice@example.org> SIZE=${target}`)).toBe("250 2.1.0 Ok")
      expect(await s.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
      expect(await s.command("DATA")).toMatch(/^354 /)

      const meant = createHash("sha256")
      const head = "From: <alice@example.org>\r\nTo: <bob@example.net>\r\nSubject: large\r\n\r\n"
      meant.update(head)
      await s.write(head)
      let sent = head.length
      let i = 0
      let sawSpill = false
      while (sent < target) {
        // About 1 MB per write, built line by line so the dots sit at real line starts.
        let meantChunk = ""
        let wireChunk = ""
        while (meantChunk.length < 1024 * 1024) {
          const line = bodyLine(i++)
          meantChunk += line.startsWith(".") ? line.slice(1) : line
          wireChunk += line
        }
        meant.update(meantChunk)
        sent += meantChunk.length
        await s.write(wireChunk)
        sawSpill ||= fs.readdirSync(tempDir).length > 0
      }
      await s.write(".\r\n")
      expect(await s.reply(30_000)).toMatch(/^250 2\.0\.0 Ok: queued as /)
      expect(await s.command("QUIT")).toMatch(/^221 /)

      expect(sawSpill).toBe(true)
      expect(fs.readdirSync(tempDir)).toEqual([])
      const files = bridge.delivered()
      expect(files).toHaveLength(1)
      const delivered = createHash("sha256").update(stripTrace(files[0]!), "latin1").digest("hex")
      expect(delivered).toBe(meant.digest("hex"))
    } finally {
      s.close()
    }
  }, 60_000)
})
