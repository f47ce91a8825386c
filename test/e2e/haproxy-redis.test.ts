// Scale-out, part (b) of issue 5: one per-user rate limit enforced by two bridge instances
// together. HAProxy on loopback (TCP mode, round-robin, `send-proxy-v2`) in front of two
// instances started with the real CLI under Bun, both keeping their counters in one real
// redis-server:
//
//   smtp-bridge serve --proxy-protocol 127.0.0.1/32 --users FILE --allow-insecure-auth \
//     --rate-limit user=3/hour --redis redis://127.0.0.1:PORT ...        (x2: bridge-a, bridge-b)
//
//   C (127.0.0.3) -> HAProxy -> bridge-a | bridge-b
//   S: 220 bridge-a.test ESMTP ...
//   C: AUTH PLAIN ...                S: 235 2.7.0 Authentication successful
//   C: MAIL FROM:<alice@example.org> S: 250 2.1.0 Ok              (messages 1 to 3, either instance)
//   ...
//   C: MAIL FROM:<alice@example.org> S: 451 4.7.1 Message rate limit exceeded for alice@example.org,
//                                       try again in ... minutes  (message 4 and later, either instance)
//
// Were the counters per instance, round-robin would let 3 messages through each: 6 in all.
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { maildirMessages } from "../support/bridge.ts"
import { dial, type Haproxy, haproxyAvailable, startHaproxy } from "../support/haproxy.ts"
import { needTool } from "../support/tools.ts"
import { startRedis, type TestRedis } from "../support/redis.ts"
import { type CliProcess, freePort, spawnCli } from "../support/runtimes.ts"

const client = "127.0.0.3"

interface Instance {
  readonly name: string
  readonly port: number
  readonly maildir: string
  readonly process: CliProcess
}

const hashUser = async (dir: string): Promise<string> => {
  const cli = await spawnCli("bun", ["hash-password", "--user", "alice@example.org", "--password", "s3cret"])
  try {
    const exit = await cli.exited
    expect(exit.code, cli.stderr()).toBe(0)
    const file = path.join(dir, "users.htpasswd")
    fs.writeFileSync(file, cli.stdout())
    return file
  } finally {
    await cli.kill()
  }
}

const startInstance = async (name: string, users: string, redis: TestRedis): Promise<Instance> => {
  const port = await freePort()
  const maildir = fs.mkdtempSync(path.join(os.tmpdir(), `sb-${name}-`))
  const process = await spawnCli("bun", [
    "serve",
    "--listen", `127.0.0.1:${port}`,
    "--hostname", `${name}.test`,
    "--proxy-protocol", "127.0.0.1/32",
    "--users", users,
    "--allow-insecure-auth",
    "--rate-limit", "user=3/hour",
    "--redis", redis.url,
    "--maildir", maildir
  ])
  try {
    await process.waitForLog(/listening on/, 30_000)
  } catch (error) {
    await process.kill()
    throw error
  }
  return { name, port, maildir, process }
}

/** The messages in an instance's Maildir/new. */
const mailOf = (instance: Instance): ReadonlyArray<string> => maildirMessages(instance.maildir)

/** One session through the balancer as alice: the instance that greeted, and the MAIL reply or the final reply. */
const sendVia = async (port: number, n: number): Promise<{ readonly instance: string; readonly reply: string }> => {
  const c = await dial(port, client)
  try {
    const greeting = await c.read()
    expect(greeting).toMatch(/^220 bridge-[ab]\.test /)
    const instance = /^220 (bridge-[ab])\./.exec(greeting)![1]!
    expect(await c.command("EHLO client.test")).toMatch(/^250[- ]AUTH /m)
    expect(await c.command(`AUTH PLAIN ${Buffer.from("\0alice@example.org\0s3cret").toString("base64")}`)).toBe(
      "235 2.7.0 Authentication successful"
    )
    const mail = await c.command("MAIL FROM:<alice@example.org>")
    if (!mail.startsWith("250")) return { instance, reply: mail }
    expect(await c.command("RCPT TO:<bob@remote.example>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const reply = await c.command(`Subject: shared limit ${n}\r\n\r\nmessage ${n}\r\n.`, 10_000)
    await c.command("QUIT").catch(() => "")
    return { instance, reply }
  } finally {
    c.destroy()
  }
}

describe.skipIf(!needTool("haproxy", haproxyAvailable()))("a per-user rate limit shared by two instances behind HAProxy through Redis", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-haproxy-redis-"))
  let redis: TestRedis
  let a: Instance
  let b: Instance
  let lb: Haproxy

  beforeAll(async () => {
    redis = await startRedis()
    const users = await hashUser(dir)
    ;[a, b] = await Promise.all([startInstance("bridge-a", users, redis), startInstance("bridge-b", users, redis)])
    lb = await startHaproxy({ backends: [a.port, b.port] })
  }, 60_000)
  afterAll(async () => {
    await lb?.stop()
    await Promise.all([a?.process.kill(), b?.process.kill()])
    await redis?.stop()
    for (const i of [a, b]) if (i !== undefined) fs.rmSync(i.maildir, { recursive: true, force: true })
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("accepts exactly 3 of alice's 6 messages across both instances and refuses the rest with 451 4.7.1", async () => {
    const outcomes: Array<{ readonly instance: string; readonly reply: string }> = []
    for (let n = 1; n <= 6; n++) outcomes.push(await sendVia(lb.port, n))
    const summary = outcomes.map((o, i) => `${i + 1} ${o.instance}: ${o.reply}`).join("\n")

    // Round-robin: both instances served sessions, and both accepted some of the first three.
    const served = new Set(outcomes.map((o) => o.instance))
    expect([...served].sort(), summary).toEqual(["bridge-a", "bridge-b"])
    expect(outcomes.slice(0, 3).map((o) => o.reply), summary).toEqual([
      expect.stringMatching(/^250 2\.0\.0 /),
      expect.stringMatching(/^250 2\.0\.0 /),
      expect.stringMatching(/^250 2\.0\.0 /)
    ])
    expect(new Set(outcomes.slice(0, 3).map((o) => o.instance)).size, summary).toBe(2)
    // The fourth and later, whichever instance answers, are over the shared limit.
    for (const o of outcomes.slice(3)) {
      expect(o.reply, summary).toMatch(/^451 4\.7\.1 Message rate limit exceeded for alice@example\.org, try again in \d+ minutes?$/)
    }
    expect(new Set(outcomes.slice(3).map((o) => o.instance)).size, summary).toBe(2)

    // Both Maildirs together hold exactly the three accepted messages, each where it was accepted.
    const byInstance = (name: string) => outcomes.filter((o) => o.instance === name && o.reply.startsWith("250")).length
    expect(mailOf(a)).toHaveLength(byInstance("bridge-a"))
    expect(mailOf(b)).toHaveLength(byInstance("bridge-b"))
    expect(mailOf(a).length + mailOf(b).length).toBe(3)

    // The shared counter lives in Redis, with an expiry.
    const key = /^(smtp-bridge:rl:user:\S*alice@example\.org)\r$/m.exec(await redis.command("KEYS smtp-bridge:rl:user:*"))?.[1]
    expect(key).toBeDefined()
    expect(Number((await redis.command(`PTTL ${key}`)).slice(1))).toBeGreaterThan(0)
  }, 60_000)
})
