// The session cap is each generation's, and so was what a session counts: a reload that removes
// four milters counted every open session at three descriptors (four under Deno), while the
// sessions the old generation took still held their seven (eight), a connection to each milter
// until their end. At 300 files, with the 33 sessions four milters allow open (13 under Deno), the
// reload's cap of 78 let 45 more in, and once they all delivered a spilled message the process ran
// out of descriptors. The server now counts each session at what its own generation counted, and
// what a retired generation's plugins hold until it is released.
//
//   (start, 4 milters)  at most 33 sessions are taken
//   C: (33 sessions, greeted: each holds its four milter connections)
//   (reload, no milter) at most 78 sessions are taken
//   C: (60 more connections)
//   S: 220 (only as many as the descriptors left carry)  /  421 4.7.0 (the others)
//   C: (every greeted session sends a spilled message)
//   S: 250 (each one)
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { currentRuntime, spawnCli } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"
import { sendOne } from "../support/descriptors.ts"

const prlimit = fs.existsSync("/usr/bin/prlimit") ? "/usr/bin/prlimit" : undefined

/** Resolves once `pattern` has been logged `n` times (bounded). */
const logged = async (cli: { output(): string }, pattern: RegExp, n: number, timeoutMs = 10_000): Promise<ReadonlyArray<RegExpMatchArray>> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const found = [...cli.output().matchAll(new RegExp(pattern.source, "g"))]
    if (found.length >= n) return found
    if (Date.now() > deadline) throw new Error(`${pattern} not logged ${n} times within ${timeoutMs} ms:\n${cli.output().slice(-2_000)}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

const warning = /this process may open only (\d+) files \(about (\d+) per session, plus (\d+) for [^)]*\): at most (\d+) sessions are taken/

describe.skipIf(prlimit === undefined || process.platform !== "linux")("a reload that removes milters while the sessions at the cap hold their connections", () => {
  it("takes only the sessions the descriptors left by the old generation's sessions carry, and every greeted session delivers (250)", async () => {
    const { startEditorMilter } = await import("../support/milter.ts")
    const milter = await startEditorMilter()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "file-limit-reload-"))
    const config = path.join(dir, "smtp-bridge.config.ts")
    const socket = `inet:127.0.0.1:${milter.port}`
    // Every message spills (threshold 0): a delivery holds the session's three descriptors (four under Deno).
    const write = (milters: ReadonlyArray<string>) =>
      fs.writeFileSync(config, `export default ${JSON.stringify({
        listen: ["127.0.0.1:0"], trust: ["127.0.0.0/8"], maildir: path.join(dir, "Maildir"), limits: { spillThreshold: 0 },
        ...(milters.length === 0 ? {} : { milter: { milters } })
      })}\n`)
    write([socket, socket, socket, socket])
    const cli = await spawnCli(currentRuntime, ["serve", "--config", config, "--log-format", "json"], { prefix: [prlimit!, "--nofile=300:300", "--"] })
    const clients: Array<Client> = []
    try {
      const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      const [first] = await logged(cli, warning, 1, 5_000)
      const [, limit, eachOld, , takenOld] = first!.map(Number)
      expect(eachOld).toBe(currentRuntime === "deno" ? 8 : 7)
      for (let batch = 0; batch < takenOld!; batch += 10) {
        clients.push(...await Promise.all(Array.from({ length: Math.min(10, takenOld! - batch) }, () => connect(port, { timeoutMs: 30_000 }))))
      }
      expect((await Promise.all(clients.map((c) => c.read()))).filter((g) => !g.startsWith("220 "))).toEqual([])

      write([])
      cli.signal("SIGHUP")
      await logged(cli, /reload done/, 1)
      const [, second] = await logged(cli, warning, 2)
      const [, , eachNew, reservedNew] = second!.map(Number)
      expect(eachNew).toBe(currentRuntime === "deno" ? 4 : 3)
      // What is left once the old sessions' descriptors are counted, at the new sessions' count each.
      const room = Math.max(0, Math.floor((limit! - reservedNew! - takenOld! * eachOld!) / eachNew!))

      // 60 more clients, one after the other; the greeted ones stay.
      const lines: Array<string> = []
      for (let i = 0; i < 60; i++) {
        const c = await connect(port, { timeoutMs: 30_000 })
        const line = await c.read()
        lines.push(line)
        if (line.startsWith("220 ")) clients.push(c)
        else c.close()
      }
      expect(lines.filter((l) => !l.startsWith("220 ") && l !== "421 4.7.0 Too many connections, try again later")).toEqual([])
      const greeted = lines.filter((l) => l.startsWith("220 ")).length

      // Every session delivers a spilled message at once: the old ones through the four milters.
      // 1 MiB each: long enough to deliver that the sessions hold their files together.
      const body = `Subject: after the reload\r\n\r\n${`${"x".repeat(1022)}\r\n`.repeat(1024)}.`
      const sent = await Promise.all(clients.map((c, i) => sendOne(c, i, body, 30_000)))
      const failed = sent.filter((s) => s !== "250-250 250 354 250 ")
      expect({ greeted, failed }, `${greeted} of 60 greeted after the reload, room for ${room}\n${cli.output().slice(-1_500)}`).toEqual({ greeted: room, failed: [] })
      expect(fs.readdirSync(`/proc/${cli.pid}/fd`).length).toBeLessThan(300)
    } finally {
      for (const c of clients) c.close()
      await cli.kill()
      await milter.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})
