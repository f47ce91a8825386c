/**
 * AUTH brute force against the real CLI under Bun with `--users` and no `--rate-limit`: the
 * default throttle counts each attempt before the password is checked, per client network (/24)
 * and per (network, user), so parallel guesses are cut short while the owner, from another
 * network, logs in at once. Every failure is a WARN line (never the password) and a metric.
 *
 *   (50 sessions from 127.0.0.1-5, in parallel)  C: AUTH PLAIN <carol, wrong password>
 *   S: 535 5.7.8 Authentication credentials invalid                        (5 of them: checked)
 *   S: 454 4.7.0 Too many authentication failures for this user from 127.0.0.0/24, try again in 3 minutes
 *   (then, from 127.0.1.1)                        C: AUTH PLAIN <carol, right password>
 *   S: 235 2.7.0 Authentication successful
 */
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { type CliProcess, freePort, spawnCli } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const plain = (user: string, password: string): string => Buffer.from(`\0${user}\0${password}`, "utf8").toString("base64")

const metrics = (port: number): Promise<string> =>
  new Promise((resolve, reject) => {
    http.get({ host: "127.0.0.1", port, path: "/metrics" }, (res) => {
      let body = ""
      res.setEncoding("utf8").on("data", (t: string) => void (body += t)).on("end", () => resolve(body))
    }).on("error", reject)
  })

const counter = (body: string, labels: string): number => {
  const line = body.split("\n").find((l) => l.startsWith(`smtp_bridge_auth_failures_total{`) && labels.split(",").every((p) => l.includes(p)))
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1))
}

/** C: connects from `localAddress`, EHLO; S: 220, 250. */
const open = async (port: number, localAddress: string): Promise<Client> => {
  const c = await connect(port, { localAddress, timeoutMs: 30_000 })
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250-/)
  return c
}

describe("AUTH brute force with --users and no --rate-limit (real CLI under Bun)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-auth-throttle-"))
  const users = path.join(dir, "users.htpasswd")
  // A guess that must never reach a log line.
  const guess = "Guess-7f3a9c-not-the-password"
  let cli: CliProcess
  let port = 0
  let adminPort = 0

  beforeAll(async () => {
    fs.writeFileSync(users, `carol:${await hashPassword("carol's right password", 4)}\ndave:${await hashPassword("dave-pw", 4)}\n`)
    adminPort = await freePort()
    cli = await spawnCli("bun", [
      "serve", "--listen", "127.0.0.1:0", "--users", users, "--allow-insecure-auth", "--maildir", path.join(dir, "mail"),
      "--admin", `127.0.0.1:${adminPort}`, "--log-format", "json"
    ])
    const [, bound] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
    port = Number(bound)
  }, 40_000)
  afterAll(async () => {
    await cli.kill()
  })

  it("checks only 5 of 50 parallel guesses for carol from one /24 (535 5.7.8), defers the rest with 454 4.7.0, and carol from another network logs in at once", async () => {
    const sessions = await Promise.all(Array.from({ length: 50 }, (_, i) => open(port, `127.0.0.${1 + (i % 5)}`)))
    const replies = await Promise.all(sessions.map((c) => c.command(`AUTH PLAIN ${plain("carol", guess)}`)))
    for (const c of sessions) c.close()
    const checked = replies.filter((r) => r === "535 5.7.8 Authentication credentials invalid")
    const deferred = replies.filter((r) => /^454 4\.7\.0 Too many authentication failures for this user from 127\.0\.0\.0\/24, try again in [1-9] minutes?$/.test(r))
    expect(checked, replies.join("\n")).toHaveLength(5)
    expect(deferred, replies.join("\n")).toHaveLength(45)

    // The owner, from another network, right after: no lock, no delay.
    const owner = await open(port, "127.0.1.1")
    const started = Date.now()
    expect(await owner.command(`AUTH PLAIN ${plain("carol", "carol's right password")}`)).toBe("235 2.7.0 Authentication successful")
    expect(Date.now() - started).toBeLessThan(1_000)
    owner.close()
    // Another user from the attacker's network is not locked either: the network's own limit is higher.
    const neighbour = await open(port, "127.0.0.9")
    expect(await neighbour.command(`AUTH PLAIN ${plain("dave", "dave-pw")}`)).toBe("235 2.7.0 Authentication successful")
    neighbour.close()

    // Every failure is a WARN line naming the session, the client, the user and the mechanism.
    const warnings = cli.stdout().split("\n").filter((l) => l.includes("AUTH PLAIN")).map((l) => JSON.parse(l) as Record<string, unknown>)
    const failures = warnings.filter((w) => String(w.message).startsWith(`AUTH PLAIN failed for user "carol" from 127.0.0.`))
    expect(failures).toHaveLength(5)
    for (const w of failures) {
      expect(w).toMatchObject({ level: "WARN", user: "carol", mechanism: "PLAIN", reason: "credentials", session: expect.stringMatching(/^[0-9A-F]{16}$/), client: expect.stringMatching(/^127\.0\.0\.[1-5]$/) })
      expect(String(w.message)).toContain(`(session ${String(w.session)})`)
    }
    expect(warnings.filter((w) => w.level === "WARN" && w.reason === "deferred")).toHaveLength(45)
    expect(cli.output()).not.toContain(guess)
    expect(cli.output()).not.toContain(plain("carol", guess))

    const body = await metrics(adminPort)
    expect(counter(body, `mechanism="PLAIN",reason="credentials"`)).toBe(5)
    expect(counter(body, `mechanism="PLAIN",reason="deferred"`)).toBe(45)
  }, 60_000)

  // Submission's common case: an application's connection pool or a fleet of devices behind one
  // NAT logs in with one account on many connections at once. Attempts in progress count until
  // they end, so beyond the 5 a pair allows, the others wait for an earlier one to end.
  it("lets 20 parallel logins of one account from a new /24 all in (235), none deferred", async () => {
    const sessions = await Promise.all(Array.from({ length: 20 }, (_, i) => open(port, `127.0.8.${1 + i}`)))
    const replies = await Promise.all(sessions.map((c) => c.command(`AUTH PLAIN ${plain("carol", "carol's right password")}`)))
    for (const c of sessions) c.close()
    expect(replies, replies.join("\n")).toEqual(Array.from({ length: 20 }, () => "235 2.7.0 Authentication successful"))
  }, 60_000)

  it("does not lock out a user who already logs in from a /24 when a neighbour there uses up the network's 30 guesses; a user new to that /24 waits", async () => {
    const dave = await open(port, "127.0.5.200")
    expect(await dave.command(`AUTH PLAIN ${plain("dave", "dave-pw")}`)).toBe("235 2.7.0 Authentication successful")
    dave.close()
    // The neighbour: 31 guesses for 31 names from 127.0.5.10-40, in parallel.
    const sessions = await Promise.all(Array.from({ length: 31 }, (_, i) => open(port, `127.0.5.${10 + i}`)))
    const replies = await Promise.all(sessions.map((c, i) => c.command(`AUTH PLAIN ${plain(`name${i}`, guess)}`)))
    for (const c of sessions) c.close()
    expect(replies.filter((r) => r.startsWith("535 ")), replies.join("\n")).toHaveLength(30)
    // dave, who logged in from this /24 before, still gets in; carol, new to it, is deferred.
    const again = await open(port, "127.0.5.201")
    expect(await again.command(`AUTH PLAIN ${plain("dave", "dave-pw")}`)).toBe("235 2.7.0 Authentication successful")
    again.close()
    const carol = await open(port, "127.0.5.202")
    expect(await carol.command(`AUTH PLAIN ${plain("carol", "carol's right password")}`)).toMatch(
      /^454 4\.7\.0 Too many authentication failures from 127\.0\.5\.0\/24, try again in /
    )
    carol.close()
  }, 60_000)

  // JSON escapes C0 controls only: U+0085 (NEL) and U+2028 end a line for some viewers, U+202E
  // makes the rest of the line read backwards.
  it("writes invisible and C1 characters of a failed user name escaped in its WARN line", async () => {
    const c = await open(port, "127.0.3.1")
    const user = "eve\u0085\u2028\u202e\u2066moc.elpmaxe@eci"
    expect(await c.command(`AUTH PLAIN ${plain(user, guess)}`)).toBe("535 5.7.8 Authentication credentials invalid")
    c.close()
    const line = cli.stdout().split("\n").find((l) => l.includes("AUTH PLAIN failed for user \\\"eve"))
    expect(line, cli.stdout()).toBeDefined()
    for (const ch of ["\u0085", "\u2028", "\u202e", "\u2066"]) expect(line).not.toContain(ch)
    const w = JSON.parse(line!) as Record<string, unknown>
    expect(String(w.message)).toContain(`"eve\\u0085\\u2028\\u202e\\u2066moc.elpmaxe@eci"`)
    expect(w.user).toBe("eve\\u0085\\u2028\\u202e\\u2066moc.elpmaxe@eci")
  }, 30_000)
})
