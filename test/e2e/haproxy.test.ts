// Scale-out behind HAProxy (issue 5): HAProxy on loopback in TCP mode, round-robin with
// `send-proxy-v2` (and a `send-proxy` v1 variant), in front of two bridge instances started with
// the real CLI under Bun. The test client binds to 127.0.0.3, HAProxy connects from 127.0.0.1
// (`source 127.0.0.1`), so an address in a Received header tells which one the bridge saw.
//
//   C (127.0.0.3) -> HAProxy 127.0.0.1:<lb> --PROXY v2, 127.0.0.3--> bridge-a | bridge-b
//   S: 220 bridge-a.test ESMTP ...
//   ...
//   (Maildir of bridge-a: Received: from client.test ([127.0.0.3]) by bridge-a.test ...)
//
// A per-user rate limit shared by both instances through Redis (part (b) of the issue) is not
// covered here: it belongs with plugins/rate-limit.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { maildirMessages } from "../support/bridge.ts"
import { until } from "../support/eventually.ts"
import { dial, type Haproxy, haproxyAvailable, startHaproxy, type Wire } from "../support/haproxy.ts"
import { needTool } from "../support/tools.ts"
import { type CliProcess, freePort, spawnCli } from "../support/runtimes.ts"

const client = "127.0.0.3"

interface Instance {
  readonly name: string
  readonly port: number
  readonly maildir: string
  readonly process: CliProcess
}

const startInstance = async (name: string): Promise<Instance> => {
  const port = await freePort()
  const maildir = fs.mkdtempSync(path.join(os.tmpdir(), `sb-${name}-`))
  const process = await spawnCli("bun", [
    "serve",
    "--listen", `127.0.0.1:${port}`,
    "--proxy-protocol", "127.0.0.1/32",
    "--trust", "127.0.0.0/8",
    "--maildir", maildir,
    "--hostname", `${name}.test`
  ])
  try {
    await process.waitForLog(/listening on/)
  } catch (error) {
    await process.kill()
    throw error
  }
  return { name, port, maildir, process }
}

/** The messages in an instance's Maildir/new. */
const mailOf = (instance: Instance): ReadonlyArray<string> => maildirMessages(instance.maildir)

const subjectOf = (message: string): string => /^Subject: (.*)\r$/m.exec(message)?.[1] ?? ""
const receivedOf = (message: string): string => /^Received: (.*(?:\r\n[ \t].*)*)/m.exec(message)?.[1] ?? ""

/** Up to EHLO on a connection through the balancer; the greeting names the instance that got it. */
const openVia = async (port: number): Promise<{ readonly c: Wire; readonly instance: string }> => {
  const c = await dial(port, client)
  try {
    const greeting = await c.read()
    expect(greeting).toMatch(/^220 bridge-[ab]\.test /)
    expect(await c.command("EHLO client.test")).toMatch(/^250[- ]/)
    return { c, instance: /^220 (bridge-[ab])\./.exec(greeting)![1]! }
  } catch (error) {
    c.destroy()
    throw error
  }
}

/** One message through the balancer: the final reply to DATA and the instance that answered. */
const sendVia = async (port: number, subject: string): Promise<{ readonly reply: string; readonly instance: string }> => {
  const { c, instance } = await openVia(port)
  try {
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@remote.example>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const reply = await c.command(`Subject: ${subject}\r\n\r\nbody of ${subject}\r\n.`)
    await c.command("QUIT").catch(() => "")
    return { reply, instance }
  } finally {
    c.destroy()
  }
}

describe.skipIf(!needTool("haproxy", haproxyAvailable()))("two bridge instances behind HAProxy with PROXY protocol", () => {
  let a: Instance
  let b: Instance
  let lb: Haproxy
  beforeAll(async () => {
    ;[a, b] = await Promise.all([startInstance("bridge-a"), startInstance("bridge-b")])
    lb = await startHaproxy({ backends: [a.port, b.port] })
  }, 60_000)
  afterAll(async () => {
    await lb?.stop()
    await Promise.all([a?.process.kill(), b?.process.kill()])
    for (const i of [a, b]) if (i !== undefined) fs.rmSync(i.maildir, { recursive: true, force: true })
  })

  it("HAProxy's SMTP health checks (option smtpchk, check-send-proxy) pass through the PROXY header: both servers UP", async () => {
    expect(lb.config).toMatch(/ send-proxy-v2 source 127\.0\.0\.1 check check-send-proxy /)
    expect(lb.config).toContain("option smtpchk")
    expect(await lb.states()).toEqual({ bridge0: "UP", bridge1: "UP" })
  })

  it("(a) round-robins six messages over both instances; each Received header shows the client [127.0.0.3], not HAProxy", async () => {
    const answered: Record<string, number> = { "bridge-a": 0, "bridge-b": 0 }
    for (let i = 0; i < 6; i++) {
      const { reply, instance } = await sendVia(lb.port, `rr ${i}`)
      expect(reply).toMatch(/^250 2\.0\.0 /)
      answered[instance]!++
    }
    expect(answered["bridge-a"]).toBeGreaterThan(0)
    expect(answered["bridge-b"]).toBeGreaterThan(0)
    for (const instance of [a, b]) {
      const mine = mailOf(instance).filter((m) => subjectOf(m).startsWith("rr "))
      expect(mine).toHaveLength(answered[instance.name]!)
      for (const message of mine) {
        const received = receivedOf(message)
        expect(received).toMatch(new RegExp(`^from client\\.test \\(\\[127\\.0\\.0\\.3\\]\\) by ${instance.name}\\.test `))
        expect(received).not.toContain("127.0.0.1")
      }
    }
  })

  it("(a) with send-proxy (v1) too: the Received header shows [127.0.0.3]", async () => {
    const v1 = await startHaproxy({ backends: [a.port, b.port], proxyVersion: 1 })
    try {
      expect(v1.config).toMatch(/ send-proxy source 127\.0\.0\.1 /)
      for (let i = 0; i < 2; i++) expect((await sendVia(v1.port, `v1 ${i}`)).reply).toMatch(/^250 2\.0\.0 /)
    } finally {
      await v1.stop()
    }
    const mine = [...mailOf(a), ...mailOf(b)].filter((m) => subjectOf(m).startsWith("v1 "))
    expect(mine).toHaveLength(2)
    for (const message of mine) expect(receivedOf(message)).toMatch(/^from client\.test \(\[127\.0\.0\.3\]\) /)
  })

  it("(c) SIGTERM to bridge-a mid-transaction and under a stream of messages: every 250 is in a Maildir, exactly once", async () => {
    // A transaction in flight on bridge-a when it is told to stop.
    const others: Array<Wire> = []
    let inFlight: Wire | undefined
    for (let attempt = 0; attempt < 4 && inFlight === undefined; attempt++) {
      const { c, instance } = await openVia(lb.port)
      if (instance === "bridge-a") inFlight = c
      else others.push(c)
    }
    for (const c of others) c.destroy()
    if (inFlight === undefined) throw new Error("round-robin never reached bridge-a in 4 connections")
    const c = inFlight
    const accepted: Array<string> = []
    try {
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@remote.example>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      c.send("Subject: in flight\r\n\r\nfirst half\r\n")

      // Meanwhile a client keeps sending, retrying what was not accepted as any MTA would, until
      // bridge-b has taken five messages after bridge-a exited (at most 200 messages).
      let aExited = false
      let afterExit = 0
      const retried: Array<string> = []
      const flow = (async () => {
        for (let i = 0; i < 200 && afterExit < 5; i++) {
          const subject = `flow ${i}`
          for (let attempt = 0; ; attempt++) {
            const outcome = await sendVia(lb.port, subject).catch((error: Error) => ({ reply: error.message, instance: "" }))
            if (outcome.reply.startsWith("250 ")) {
              accepted.push(subject)
              if (aExited) afterExit++
              break
            }
            retried.push(`${subject}: ${outcome.reply.split("\n")[0]}`)
            if (attempt === 4) throw new Error(`${subject} was refused 5 times:\n${retried.join("\n")}`)
            await new Promise((resolve) => setTimeout(resolve, 100))
          }
        }
      })()

      // The stream has started before bridge-a is told to stop, and bridge-a has begun draining
      // (its log says so) before the transaction in flight is finished.
      await until("the first accepted message of the stream", () => accepted.length > 0)
      const beforeStop = accepted.length
      a.process.signal("SIGTERM")
      await until("bridge-a to start draining", () => /draining \d+ connection/.test(a.process.output()))
      // bridge-a is draining: the transaction in flight still completes.
      expect(await c.command("second half\r\n.")).toMatch(/^250 2\.0\.0 /)
      accepted.push("in flight")
      await c.command("QUIT").catch(() => "")

      const exit = await Promise.race([
        a.process.exited,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`bridge-a did not exit:\n${a.process.output()}`)), 15_000))
      ])
      aExited = true
      expect(exit).toEqual({ code: 0, signal: null })
      // HAProxy's health checks saw bridge-a go; bridge-b stays up.
      await lb.waitForStates((s) => s.bridge0 === "DOWN" && s.bridge1 === "UP")
      await flow
      // The stream really overlapped the shutdown.
      expect(beforeStop).toBeGreaterThan(0)
      expect(afterExit).toBe(5)
    } finally {
      c.destroy()
    }

    const delivered = [...mailOf(a), ...mailOf(b)].map(subjectOf).filter((s) => s === "in flight" || s.startsWith("flow "))
    expect([...delivered].sort()).toEqual([...accepted].sort())
    expect(mailOf(a).map(subjectOf)).toContain("in flight")
    // After bridge-a stopped, bridge-b took the rest.
    expect(mailOf(b).map(subjectOf).some((s) => s.startsWith("flow "))).toBe(true)
  }, 60_000)
})
