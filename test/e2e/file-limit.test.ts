// A process allowed few open files (prlimit --nofile=300) with the default limits.maxConnections
// (1000). Past the open-files limit `accept` fails, and the runtimes do not survive it alike: Bun
// retried at once and spun a core while the surplus waited unanswered, Deno's node:net listener
// stopped accepting for good (the next client timed out after the flood was gone). The bridge now
// takes only the sessions its descriptors allow and refuses the rest with 421 4.7.0, at once.
//
//   (start)  WARN limits.maxConnections is 1000, but this process may open only 300 files ...
//            at most 78 sessions are taken, 421 4.7.0 past them   (27 under Deno)
//   C: (500 connections, none closes)
//   S: 220 ... (78 of them)   /   421 4.7.0 Too many connections, try again later (the others,
//                                 each closed by the bridge at once, not waiting for the client)
//   C: (closes all; a new client sends a message)
//   S: 250
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { currentRuntime, spawnCli } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"
import { sendOne } from "../support/descriptors.ts"

/**
 * The first line the bridge sends to a new connection (bounded). The client never closes its side
 * (half-open when the bridge closes): a refused connection that lingered for it would hold a
 * descriptor until the bridge gave up waiting.
 */
const open = (port: number) =>
  new Promise<{ line: string; socket: net.Socket }>((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true })
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error("no line from the bridge within 5 s"))
    }, 5_000)
    socket.on("error", () => {})
    let text = ""
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1")
      const end = text.indexOf("\r\n")
      if (end === -1) return
      clearTimeout(timer)
      resolve({ line: text.slice(0, end), socket })
    })
  })

/**
 * The listener survived: a new client is greeted 220 within 20 tries 100 ms apart (sessions that
 * just closed may still hold their slots); the last line read otherwise.
 */
const greetedAgain = async (port: number): Promise<string> => {
  let greeting = ""
  for (let attempt = 0; attempt < 20 && !greeting.startsWith("220 "); attempt++) {
    const c = await connect(port)
    greeting = await c.read().catch((e: unknown) => String(e))
    c.close()
    if (!greeting.startsWith("220 ")) await new Promise((r) => setTimeout(r, 100))
  }
  return greeting
}

const prlimit = fs.existsSync("/usr/bin/prlimit") ? "/usr/bin/prlimit" : undefined

/** The CLI under `prlimit --nofile=files:files` (soft and hard), with `args`. */
const spawnUnder = (files: number, args: ReadonlyArray<string>) =>
  spawnCli(currentRuntime, args, { prefix: [prlimit!, `--nofile=${files}:${files}`, "--"] })

// 300 files, 64 set aside (no relay pool: the default transport is the Maildir), three a session.
// Under Deno, four a session (its file reads run on a duplicate descriptor) and 128 more set aside
// for the connections its listener accepted and has not closed yet.
const sessionsAt300 = currentRuntime === "deno" ? 27 : 78

describe.skipIf(prlimit === undefined || process.platform !== "linux")("a process with few open files", () => {
  it("takes only the sessions its descriptors allow (a warning names limits.maxConnections), refuses the rest with 421 4.7.0 and closes them at once, and still delivers after the flood", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "file-limit-"))
    const cli = await spawnUnder(300, [
      "serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--maildir", path.join(dir, "Maildir"), "--log-format", "json"
    ])
    const held: Array<net.Socket> = []
    try {
      const [, bound] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
      const port = Number(bound)
      const [warning] = await cli.waitForLog(
        new RegExp(`limits\\.maxConnections is 1000, but this process may open only 300 files[^"]*at most ${sessionsAt300} sessions are taken, 421 4\\.7\\.0 past them[^"]*LimitNOFILE[^"]*`),
        5_000
      )
      expect(warning).toContain("lower limits.maxConnections")

      // Every connection is answered: a refused one that lingered would hold a descriptor, and
      // the last ones would find none left (each answered 220 or 421 is the test that none did).
      // 500 connections, 50 at a time, within well under the 2 s a lingering close would wait.
      const lines: Array<string> = []
      for (let batch = 0; batch < 10; batch++) {
        for (const c of await Promise.all(Array.from({ length: 50 }, () => open(port)))) {
          held.push(c.socket)
          lines.push(c.line)
        }
      }
      // The bridge's descriptors: the sessions' and a few of its own, none for a refused
      // connection (lingering for each client to close, they reached the limit of 300).
      expect(fs.readdirSync(`/proc/${cli.pid}/fd`).length).toBeLessThan(sessionsAt300 + 60)
      const greeted = lines.filter((l) => l.startsWith("220 "))
      const refused = lines.filter((l) => l === "421 4.7.0 Too many connections, try again later")
      expect(greeted).toHaveLength(sessionsAt300)
      expect(refused).toHaveLength(500 - sessionsAt300)

      for (const s of held.splice(0)) s.destroy()
      // The listener survived: a client after the flood is served and its message delivered.
      let client: Awaited<ReturnType<typeof connect>> | undefined
      for (let attempt = 0; attempt < 20 && client === undefined; attempt++) {
        const c = await connect(port)
        if ((await c.read()).startsWith("220 ")) client = c
        else {
          c.close()
          await new Promise((r) => setTimeout(r, 100))
        }
      }
      expect(client).toBeDefined()
      expect(await client!.command("EHLO client.test")).toMatch(/^250[ -]/)
      expect(await client!.command("MAIL FROM:<a@example.com>")).toMatch(/^250 /)
      expect(await client!.command("RCPT TO:<b@example.com>")).toMatch(/^250 /)
      expect(await client!.command("DATA")).toMatch(/^354 /)
      expect(await client!.command("Subject: after the flood\r\n\r\nstill here\r\n.")).toMatch(/^250 /)
      client!.close()
    } finally {
      for (const s of held) s.destroy()
      await cli.kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

/** A session at the DATA prompt: greeted, sender and recipient taken. */
const atData = async (port: number): Promise<Client> => {
  const c = await connect(port, { timeoutMs: 20_000 })
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250[ -]/)
  expect(await c.command("MAIL FROM:<a@example.com>")).toMatch(/^250 /)
  expect(await c.command("RCPT TO:<b@example.com>")).toMatch(/^250 /)
  expect(await c.command("DATA")).toMatch(/^354 /)
  return c
}

/** `n` sessions at the DATA prompt, opened 50 at a time. */
const allAtData = async (port: number, n: number): Promise<Array<Client>> => {
  const clients: Array<Client> = []
  for (let batch = 0; batch < n; batch += 50) {
    clients.push(...await Promise.all(Array.from({ length: Math.min(50, n - batch) }, () => atData(port))))
  }
  return clients
}

describe.skipIf(prlimit === undefined || process.platform !== "linux")("sessions at the cap, each delivering a message spilled to disk", () => {
  // A session delivering a message spilled to disk holds its socket, the spilled file (read) and
  // the Maildir's file in tmp/ (written) at once: three descriptors, four under Deno (which reads
  // on a duplicate). Counted as two, the 468 sessions the cap let in at 1,000 files ran the
  // process out of them while they delivered together: 303 were answered 451 4.3.0 (EMFILE
  // opening the spilled file) under Bun, 96 under Deno.
  it("delivers every message (250) and still accepts afterwards: the cap counts the files a delivery holds", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "file-limit-"))
    const config = path.join(dir, "smtp-bridge.config.ts")
    // Every message spills (threshold 0): small messages make the test quick.
    fs.writeFileSync(config, `export default ${JSON.stringify({
      listen: ["127.0.0.1:0"], trust: ["127.0.0.0/8"], maildir: path.join(dir, "Maildir"), limits: { spillThreshold: 0 }
    })}\n`)
    const cli = await spawnUnder(1000, ["serve", "--config", config, "--log-format", "json"])
    const clients: Array<Client> = []
    try {
      const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      const sessions = Number((await cli.waitForLog(/at most (\d+) sessions are taken/, 5_000))[1])
      clients.push(...await allAtData(port, sessions))
      const body = `Subject: spilled\r\n\r\n${`${"x".repeat(78)}\r\n`.repeat(100)}`
      for (const c of clients) c.send(body)
      const replies = await Promise.all(clients.map((c) => c.command(".", 20_000)))
      expect(replies.filter((r) => !r.startsWith("250 ")), cli.output().slice(-2_000)).toEqual([])
      expect(fs.readdirSync(path.join(dir, "Maildir", "new"))).toHaveLength(sessions)
      for (const c of clients.splice(0)) c.close()

      // The listener survived: a client after the deliveries is greeted.
      expect(await greetedAgain(port)).toMatch(/^220 /)
    } finally {
      for (const c of clients) c.close()
      await cli.kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

describe.skipIf(prlimit === undefined || process.platform !== "linux")("new connections while the sessions at the cap deliver", () => {
  // Connections refused at the cap hold a descriptor from accept to close. Deno's node:net accepts
  // in batches and closes a batch's sockets only later, the more so while the sessions keep its
  // event loop busy: over 100 at once here, past what the process had left with 84 sessions each
  // holding four, and Deno's listener, once an accept failed, never accepted again (no "error"
  // event). Before the cap set 128 aside for them, this failed in 4 runs of 5 under Deno (the
  // newcomers unanswered, some deliveries 451 4.3.0). Bun closes each refused connection at once.
  it("answers each one (421 4.7.0 or 220) and still accepts afterwards: the cap leaves room for the connections being refused", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "file-limit-"))
    const cli = await spawnUnder(400, [
      "serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--maildir", path.join(dir, "Maildir"), "--log-format", "json"
    ])
    const clients: Array<Client> = []
    const held: Array<net.Socket> = []
    try {
      const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      const sessions = Number((await cli.waitForLog(/at most (\d+) sessions are taken/, 5_000))[1])
      clients.push(...await allAtData(port, sessions))
      // 1 MiB each: spilled to disk, and long enough to deliver that many connections arrive meanwhile.
      const body = `Subject: spilled\r\n\r\n${`${"x".repeat(1022)}\r\n`.repeat(1024)}`
      for (const c of clients) c.send(body)
      const delivered = Promise.all(clients.map((c) => c.command(".", 30_000)))
      let done = false
      void delivered.finally(() => {
        done = true
      })
      const lines: Array<Promise<string>> = []
      while (!done || lines.length < 600) {
        for (let i = 0; i < 4; i++) {
          lines.push(open(port).then(({ line, socket }) => {
            held.push(socket)
            return line
          }, (e: unknown) => String(e)))
        }
        await new Promise((r) => setTimeout(r, 2))
      }
      const replies = await delivered
      expect(replies.filter((r) => !r.startsWith("250 "))).toEqual([])
      const answered = await Promise.all(lines)
      expect(answered.filter((l) => l !== "421 4.7.0 Too many connections, try again later" && !l.startsWith("220 "))).toEqual([])
      for (const c of clients.splice(0)) c.close()
      for (const s of held.splice(0)) s.destroy()

      expect(await greetedAgain(port)).toMatch(/^220 /)
    } finally {
      for (const c of clients) c.close()
      for (const s of held) s.destroy()
      await cli.kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

describe.skipIf(prlimit === undefined || process.platform !== "linux")("a flood from one address past limits.maxConnectionsPerIp", () => {
  // Below the session cap, a connection past the per-address limit is refused by its own session.
  // That refusal lingered (read and dropped for up to 2 s, waiting for the client to close) and its
  // descriptor was no longer counted against the cap: 1,000 clients that never close, from one
  // address, ran the process out of descriptors at 600 files (Bun: 600 of 600, clients unanswered
  // while it spun; Deno: its listener never accepted again).
  it("answers each one 421 4.7.0 and closes it at once: the refusals hold no descriptor, and another address is still greeted", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "file-limit-"))
    // No trusted network: 127.0.0.1 is held to maxConnectionsPerIp (50).
    const cli = await spawnUnder(600, [
      "serve", "--listen", "127.0.0.1:0", "--maildir", path.join(dir, "Maildir"), "--log-format", "json"
    ])
    const held: Array<net.Socket> = []
    try {
      const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      const sessions = Number((await cli.waitForLog(/at most (\d+) sessions are taken/, 5_000))[1])
      expect(sessions).toBeGreaterThan(50)
      // After each batch of 50, within 1 s (a lingering close held them 2 s): the 50 sessions'
      // descriptors and a few of the process's own, none for a refused connection.
      const descriptors = () => fs.readdirSync(`/proc/${cli.pid}/fd`).length
      const lines: Array<string> = []
      for (let batch = 0; batch < 12; batch++) {
        for (const c of await Promise.all(Array.from({ length: 50 }, () => open(port)))) {
          held.push(c.socket)
          lines.push(c.line)
        }
        for (let waited = 0; waited < 1_000 && descriptors() >= 50 + 60; waited += 50) await new Promise((r) => setTimeout(r, 50))
        expect(descriptors()).toBeLessThan(50 + 60)
      }
      expect(lines.filter((l) => !l.startsWith("220 ") && l !== "421 4.7.0 Too many connections from your address, try again later")).toEqual([])
      expect(lines.filter((l) => l.startsWith("220 "))).toHaveLength(50)

      const other = net.connect({ host: "127.0.0.1", port, localAddress: "127.0.0.2" })
      held.push(other)
      const greeting = await new Promise<string>((resolve) => {
        other.once("data", (chunk: Buffer) => resolve(chunk.toString("latin1")))
        other.once("error", (e) => resolve(String(e)))
      })
      expect(greeting).toMatch(/^220 /)
    } finally {
      for (const s of held) s.destroy()
      await cli.kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

/** Resolves once `pattern` has been logged `n` times (bounded). */
const logged = async (cli: { output(): string }, pattern: RegExp, n: number, timeoutMs = 10_000): Promise<void> => {
  const deadline = Date.now() + timeoutMs
  while ((cli.output().match(new RegExp(pattern.source, "g")) ?? []).length < n) {
    if (Date.now() > deadline) throw new Error(`${pattern} not logged ${n} times within ${timeoutMs} ms:\n${cli.output().slice(-2_000)}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe.skipIf(prlimit === undefined || process.platform !== "linux")("a reload that lowers, then raises the session cap", () => {
  // The cap is each generation's; the count of open sessions is the server's. Sessions over a
  // lowered cap carry on (a reload never cuts one), new connections are refused until enough of
  // them end; a cap raised past what the open-files limit carries is cut to it, with the warning.
  it("lets the sessions over the new cap finish their mail, refuses new ones until they are under it, and warns when the files limit cuts the raised cap", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "file-limit-"))
    const config = path.join(dir, "smtp-bridge.config.ts")
    const write = (maxConnections: number) =>
      fs.writeFileSync(config, `export default ${JSON.stringify({
        listen: ["127.0.0.1:0"], trust: ["127.0.0.0/8"], maildir: path.join(dir, "Maildir"), limits: { maxConnections }
      })}\n`)
    write(20)
    const cli = await spawnUnder(300, ["serve", "--config", config, "--log-format", "json"])
    const clients: Array<Client> = []
    const held: Array<net.Socket> = []
    const first = (port: number): Promise<string> =>
      open(port).then(({ line, socket }) => {
        socket.destroy()
        return line
      })
    try {
      const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      for (let i = 0; i < 20; i++) {
        const c = await connect(port)
        expect(await c.read()).toMatch(/^220 /)
        clients.push(c)
      }
      expect(await first(port)).toBe("421 4.7.0 Too many connections, try again later")

      write(5)
      cli.signal("SIGHUP")
      await logged(cli, /reload done/, 1)
      // 20 sessions over a cap of 5: each carries on.
      const busy = clients[0]!
      expect(await busy.command("EHLO client.test")).toMatch(/^250[ -]/)
      expect(await busy.command("MAIL FROM:<a@example.com>")).toMatch(/^250 /)
      expect(await busy.command("RCPT TO:<b@example.com>")).toMatch(/^250 /)
      expect(await busy.command("DATA")).toMatch(/^354 /)
      expect(await busy.command("Subject: over the new cap\r\n\r\nstill delivered\r\n.")).toMatch(/^250 /)
      for (const c of clients.slice(1)) expect(await c.command("NOOP")).toMatch(/^250 /)
      expect(await first(port)).toBe("421 4.7.0 Too many connections, try again later")
      // Down to 5 open: still at the cap. Down to 4: a slot.
      for (const c of clients.splice(5)) c.close()
      await new Promise((r) => setTimeout(r, 200))
      expect(await first(port)).toBe("421 4.7.0 Too many connections, try again later")
      clients.pop()!.close()
      let greeting = ""
      for (let attempt = 0; attempt < 20 && !greeting.startsWith("220 "); attempt++) {
        await new Promise((r) => setTimeout(r, 50))
        greeting = await first(port)
      }
      expect(greeting).toMatch(/^220 /)

      // Raised to 1000, more than 300 files carry: cut to what they do, and said so.
      write(1000)
      cli.signal("SIGHUP")
      await logged(cli, /reload done/, 2)
      await logged(cli, new RegExp(`limits\\.maxConnections is 1000, but this process may open only 300 files[^"]*at most ${sessionsAt300} sessions are taken`), 1)
      const more: Array<Promise<string>> = []
      for (let i = 0; i < sessionsAt300 + 10; i++) {
        more.push(open(port).then(({ line, socket }) => {
          held.push(socket)
          return line
        }))
      }
      const lines = await Promise.all(more)
      expect(lines.filter((l) => l.startsWith("220 "))).toHaveLength(sessionsAt300 - clients.length)
    } finally {
      for (const c of clients) c.close()
      for (const s of held.splice(0)) s.destroy()
      await cli.kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)
})

describe.skipIf(prlimit === undefined || process.platform !== "linux")("sessions at the cap, each with its own connection to four milters", () => {
  // A session holds its own connection to each milter from its connect stage to its end, so with
  // four milters it holds seven descriptors, not three (eight under Deno). Counted as three, the
  // cap let 78 sessions in at 300 files: 78 x 7 is past the limit, and the milters' connects and
  // the listener's accepts failed while those sessions were open. The milter plugin now says what
  // it opens (`files`), and the cap counts it.
  it("takes only the sessions whose milter connections fit, each one delivering through all four, and still accepts afterwards", async () => {
    const { startEditorMilter } = await import("../support/milter.ts")
    const milter = await startEditorMilter()
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "file-limit-"))
    const socket = `inet:127.0.0.1:${milter.port}`
    const cli = await spawnUnder(300, [
      "serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--maildir", path.join(dir, "Maildir"), "--log-format", "json",
      "--milter", socket, "--milter", socket, "--milter", socket, "--milter", socket
    ])
    const held: Array<net.Socket> = []
    const clients: Array<Client> = []
    try {
      const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
      const [warning, each, taken] = await cli.waitForLog(/about (\d+) per session[^"]*at most (\d+) sessions are taken/, 5_000)
      // (300 - 64) / (3 + 4) under Bun and Node; (300 - 64 - 128) / (4 + 4) under Deno.
      expect(Number(each), warning).toBe(currentRuntime === "deno" ? 8 : 7)
      expect(Number(taken), warning).toBe(currentRuntime === "deno" ? 13 : 33)

      // The sessions the cap takes: each greeted (its four milter connections open), then each
      // sends a message through the four milters while all of them are open.
      for (let batch = 0; batch < Number(taken); batch += 10) {
        clients.push(...await Promise.all(Array.from({ length: Math.min(10, Number(taken) - batch) }, () => connect(port, { timeoutMs: 20_000 }))))
      }
      const greetings = await Promise.all(clients.map((c) => c.read()))
      expect(greetings.filter((g) => !g.startsWith("220 ")), cli.output().slice(-2_000)).toEqual([])
      // Past the cap: refused at once, not greeted with a milter's tempfail or left unanswered.
      for (const c of await Promise.all(Array.from({ length: 40 }, () => open(port)))) {
        held.push(c.socket)
        expect(c.line).toBe("421 4.7.0 Too many connections, try again later")
      }
      expect(fs.readdirSync(`/proc/${cli.pid}/fd`).length).toBeLessThan(300)
      const sent = await Promise.all(clients.map((c, i) => sendOne(c, i, `Subject: through four milters ${i}\r\n\r\nhello\r\n.`, 20_000)))
      expect(sent.filter((s) => s !== "250-250 250 354 250 "), cli.output().slice(-2_000)).toEqual([])
      expect(fs.readdirSync(path.join(dir, "Maildir", "new"))).toHaveLength(Number(taken))
      for (const c of clients.splice(0)) c.close()
      for (const s of held.splice(0)) s.destroy()

      // The listener survived: a client afterwards is greeted.
      expect(await greetedAgain(port)).toMatch(/^220 /)
    } finally {
      for (const c of clients) c.close()
      for (const s of held) s.destroy()
      await cli.kill()
      await milter.stop()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)
})
