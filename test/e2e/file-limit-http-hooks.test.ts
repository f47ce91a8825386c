// HTTP hooks make one request at a time per session, but `fetch` keeps its connections to reuse,
// and Deno's pool, when a request finds none idle, connects anew and keeps that connection even if
// another came back first. With a hook service slow to accept (Python's server, its backlog of 5),
// 100 sessions, each calling a hook at connect, HELO, MAIL, RCPT and DATA, held 152 to 183
// connections to it under Deno (100 under Bun), idle ones kept afterwards. The session cap counted
// one a session; it counts two now (one in use, one connecting), and the idle connections Deno's
// client keeps, now bounded (src/runtime/Fetch.ts): unbounded, 202 were seen once.
//
//   C: (100 sessions at once, each sending a message)     hook: 0.3 s for each answer
//   bridge: connections to the hook service, at most what the cap counts for them
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { maxIdlePerHost } from "../../src/runtime/Fetch.ts"
import { listeningPort, spawnLogged } from "../support/process.ts"
import { currentRuntime, spawnCli } from "../support/runtimes.ts"
import { connectionsTo } from "../support/descriptors.ts"
import { connect } from "../support/SmtpClient.ts"

const prlimit = fs.existsSync("/usr/bin/prlimit") ? "/usr/bin/prlimit" : undefined
const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3"

// Each answer after 0.3 s: "continue".
const hookService = `
import json, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class Hook(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        time.sleep(0.3)
        body = json.dumps({"action": "continue"}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", 0), Hook).serve_forever()
`


describe.skipIf(prlimit === undefined || process.platform !== "linux")("HTTP hooks' connections per session", () => {
  it("holds no more connections to the hook service than the session cap counts for them, at every stage, twice over", async () => {
    // A hook service as many are written: Python's threading HTTP/1.1 server, keeping connections alive.
    const hook = spawnLogged(python, ["-c", hookService])
    const hookPort = await listeningPort(hook.pid, "the hook service")
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "file-limit-http-hooks-"))
    const config = path.join(dir, "smtp-bridge.config.ts")
    const url = `http://127.0.0.1:${hookPort}/hook`
    fs.writeFileSync(config, `export default ${JSON.stringify({
      listen: ["127.0.0.1:0"], trust: ["127.0.0.0/8"], maildir: path.join(dir, "Maildir"),
      // A hook the overloaded service fails to answer lets the message through: every session delivers.
      httpHooks: { hooks: ["connect", "helo", "mailFrom", "rcptTo", "data"].map((stage) => ({ stage, url })), defaultAction: "accept" }
    })}\n`)
    // A limit that binds (for the warning's count), with room for 100 sessions.
    const cli = await spawnCli(currentRuntime, ["serve", "--config", config, "--log-format", "json"], { prefix: [prlimit!, "--nofile=2000:2000", "--"] })
    try {
      const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      const [warning, each] = await cli.waitForLog(/about (\d+) per session/, 5_000)
      const own = currentRuntime === "deno" ? 4 : 3
      const counted = Number(each) - own
      expect(counted, warning).toBeGreaterThanOrEqual(1)

      const sessions = 100
      const session = async (i: number): Promise<string> => {
        const c = await connect(port, { timeoutMs: 30_000 })
        try {
          const replies = [
            await c.read(30_000),
            await c.command("EHLO client.test", 30_000),
            await c.command(`MAIL FROM:<a${i}@example.com>`, 30_000),
            await c.command("RCPT TO:<b@example.com>", 30_000),
            await c.command("DATA", 30_000),
            await c.command("Subject: hooks\r\n\r\nhello\r\n.", 30_000)
          ]
          return replies.map((r) => r.slice(0, 4)).join("")
        } finally {
          c.close()
        }
      }
      let most = 0
      for (let round = 0; round < 2; round++) {
        let done = false
        const all = Promise.all(Array.from({ length: sessions }, (_, i) => session(i))).finally(() => {
          done = true
        })
        while (!done) {
          most = Math.max(most, connectionsTo(cli.pid, hookPort))
          await new Promise((r) => setTimeout(r, 20))
        }
        expect((await all).filter((s) => s !== "220 250-250 250 354 250 "), cli.output().slice(-2_000)).toEqual([])
        most = Math.max(most, connectionsTo(cli.pid, hookPort))
      }
      // The hooks ran, at once in every session.
      expect(most).toBeGreaterThanOrEqual(sessions / 2)
      // Idle afterwards: Deno's client keeps at most maxIdlePerHost (its own fetch kept them all,
      // 100 and more); Bun keeps up to 64, Node as many as it had requests at once.
      await new Promise((r) => setTimeout(r, 500))
      expect(connectionsTo(cli.pid, hookPort)).toBeLessThanOrEqual(currentRuntime === "deno" ? maxIdlePerHost : sessions)
      // Two a session, and the idle ones Deno's client keeps (bounded: it kept them all, 202 once).
      expect(most, `${most} connections to the hook service for ${sessions} sessions, ${counted} counted for each`).toBeLessThanOrEqual(sessions * counted + maxIdlePerHost)
    } finally {
      await cli.kill()
      await hook.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 120_000)
})

describe.skipIf(process.platform !== "linux")("the webhook transport's connections", () => {
  // The webhook transport posts through the same bounded fetch: under Deno, 100 sessions
  // delivering at once left every connection they opened idle afterwards, past the 16 its
  // transport's share of the reserve counts.
  it("keeps no more idle connections to the webhook than its share of the reserve (16) once the deliveries are done", async () => {
    const hook = spawnLogged(python, ["-c", hookService])
    const hookPort = await listeningPort(hook.pid, "the webhook service")
    const cli = await spawnCli(currentRuntime, [
      "serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--webhook", `http://127.0.0.1:${hookPort}/mail`, "--log-format", "json"
    ])
    try {
      const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      const sessions = 100
      const replies = await Promise.all(Array.from({ length: sessions }, async (_, i) => {
        const c = await connect(port, { timeoutMs: 30_000 })
        try {
          await c.read(30_000)
          await c.command("EHLO client.test", 30_000)
          await c.command(`MAIL FROM:<a${i}@example.com>`, 30_000)
          await c.command("RCPT TO:<b@example.com>", 30_000)
          await c.command("DATA", 30_000)
          return await c.command("Subject: webhook\r\n\r\nhello\r\n.", 30_000)
        } finally {
          c.close()
        }
      }))
      expect(replies.filter((r) => !r.startsWith("250 ")), cli.output().slice(-2_000)).toEqual([])
      await new Promise((r) => setTimeout(r, 500))
      // Bun keeps up to 64 idle, Node as many as it had requests at once: within a session each.
      expect(connectionsTo(cli.pid, hookPort)).toBeLessThanOrEqual(currentRuntime === "deno" ? maxIdlePerHost : sessions)
    } finally {
      await cli.kill()
      await hook.stop()
    }
  }, 120_000)
})
