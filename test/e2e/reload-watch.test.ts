/**
 * `serve --watch-config` on the real CLI (under the runtime running the tests): a change to the
 * config file, the users file or the TLS files reloads the bridge as SIGHUP does, with the same log
 * lines. A rewrite and a replacement by rename both count, a burst of writes makes one reload, an
 * invalid config is refused and the old one stays, and a users file the new config moves is
 * followed. A second CLI on the same files without the flag changes nothing.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { maildirMessages } from "../support/bridge.ts"
import { servedFingerprint, testCertificate } from "../support/certs.ts"
import { type CliProcess, type Runtime, spawnCli } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const runtime: Runtime = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? "deno" : "bun"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const password = { alice: "alice-Secret-7Qz!", bob: "bob-Secret-4Kx!", carol: "carol-Secret-9Lp!", dave: "dave-Secret-2Wm!" }

const configText = (fields: Record<string, unknown>): string => `export default ${JSON.stringify(fields, null, 2)}\n`

/**
 * The first match of `pattern` in what `cli` logged after `since` (an offset into its output),
 * polling until `timeoutMs`: `waitForLog` would also match the lines of an earlier reload.
 */
const logAfter = async (cli: CliProcess, since: number, pattern: RegExp, timeoutMs = 20_000): Promise<string> => {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const match = cli.output().slice(since).match(pattern)
    if (match !== null) return match[0]
    if (Date.now() > deadline) throw new Error(`${runtime} CLI did not log ${pattern} within ${timeoutMs} ms:\n${cli.output().slice(since)}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const escape = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

const count = (text: string, pattern: RegExp): number => text.match(new RegExp(pattern.source, "g"))?.length ?? 0

const reloading = /[^\n]*reloading the config, users and TLS files/
const done = /reload done: new sessions use the new config; open sessions continue unchanged/
const refused = /[^\n]*reload refused, the running config stays active: [^\n]*/

/** S: 220 <hostname>, C: EHLO, C: AUTH PLAIN; returns the AUTH reply. */
const login = async (c: Client, hostname: string, user: keyof typeof password): Promise<string> => {
  expect(await c.read()).toMatch(new RegExp(`^220 ${escape(hostname)} `))
  expect(await c.command("EHLO client.test")).toMatch(/^250-/)
  return c.command(`AUTH PLAIN ${b64(`\0${user}\0${password[user]}`)}`)
}

describe(`--watch-config under ${runtime}`, () => {
  let dir: string
  let usersFile: string
  let configFile: string
  let maildir: string
  let base: Record<string, unknown>
  let watched: CliProcess
  let unwatched: CliProcess
  let port: number
  let unwatchedPort: number

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-watch-"))
    usersFile = path.join(dir, "users.htpasswd")
    fs.writeFileSync(usersFile, `alice:${await hashPassword(password.alice, 4)}\n`)
    configFile = path.join(dir, "smtp-bridge.config.ts")
    maildir = path.join(dir, "mail")
    base = {
      hostname: "watch.test",
      listen: ["127.0.0.1:0"],
      users: usersFile,
      allowInsecureAuth: true,
      maildir,
      senders: { alice: ["*"], bob: ["*"], carol: ["*"], dave: ["*"] },
      limits: { maxRecipients: 1 }
    }
    fs.writeFileSync(configFile, configText(base))
    ;[watched, unwatched] = await Promise.all([
      spawnCli(runtime, ["serve", "--config", configFile, "--watch-config", "--log-format", "json"]),
      spawnCli(runtime, ["serve", "--config", configFile, "--log-format", "json"])
    ])
    port = Number((await watched.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 60_000))[1])
    unwatchedPort = Number((await unwatched.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 60_000))[1])
    // Logged before the listeners bind: the watch is in place once the port is known.
    expect(watched.output()).toContain(`reload: watching ${configFile}, ${usersFile} for changes`)
  }, 90_000)
  afterAll(async () => {
    await Promise.all([watched?.kill(), unwatched?.kill()])
    fs.rmSync(dir, { recursive: true, force: true })
  })

  // Each test starts from a config of its own (written and reloaded here), so no test depends on
  // what an earlier one left behind, and each counts only the reloads its own changes caused.
  let start: string
  let since: number
  let round = 0
  const reset = async (fields: Record<string, unknown> = {}) => {
    start = `start-${++round}.test`
    const before = watched.output().length
    fs.writeFileSync(configFile, configText({ ...base, hostname: start, limits: { maxRecipients: 2 }, ...fields }))
    await logAfter(watched, before, done)
    since = watched.output().length
  }
  beforeEach(() => reset())
  /** The reloads logged since this test's own start. */
  const reloads = () => count(watched.output().slice(since), reloading)

  it("reloads once for a burst of writes to the config: new sessions get the new limit while an open session keeps the old one and delivers", async () => {
    await reset({ limits: { maxRecipients: 1 } })
    const open = await connect(port)
    expect(await login(open, start, "alice")).toBe("235 2.7.0 Authentication successful")
    expect(await open.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await open.command("RCPT TO:<r1@example.net>")).toBe("250 2.1.5 Ok")

    // A slow writer: truncate, then the file in pieces a few milliseconds apart (well inside the
    // quiet period). Half a file must never be loaded.
    const text = configText({ ...base, hostname: "rewritten.test", limits: { maxRecipients: 2 } })
    fs.writeFileSync(configFile, "")
    for (const piece of [text.slice(0, 20), text.slice(20, 60), text.slice(60)]) {
      await new Promise((resolve) => setTimeout(resolve, 30))
      fs.appendFileSync(configFile, piece)
    }
    await logAfter(watched, since, done)
    expect(await logAfter(watched, since, reloading)).toContain(`${configFile} changed: reloading`)
    expect(watched.output().slice(since)).not.toMatch(refused)

    const fresh = await connect(port)
    expect(await login(fresh, "rewritten.test", "alice")).toMatch(/^235 /)
    expect(await fresh.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await fresh.command("RCPT TO:<n1@example.net>")).toBe("250 2.1.5 Ok")
    expect(await fresh.command("RCPT TO:<n2@example.net>")).toBe("250 2.1.5 Ok")
    expect(await fresh.command("QUIT")).toMatch(/^221 /)

    // The open session still runs with maxRecipients 1, and its message is delivered.
    expect(await open.command("RCPT TO:<r2@example.net>")).toBe("452 4.5.3 Too many recipients")
    expect(await open.command("DATA")).toMatch(/^354 /)
    expect(await open.command("Subject: across a watched reload\r\n\r\nStill here.\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as /)
    expect(await open.command("QUIT")).toMatch(/^221 /)
    const delivered = maildirMessages(maildir)
    expect(delivered.some((m) => m.includes("Subject: across a watched reload"))).toBe(true)
    // One reload for the whole burst (the sessions above took longer than the quiet period).
    expect(reloads()).toBe(1)
  })

  it("reloads when the config is replaced by rename (write a temporary file, rename it over)", async () => {
    const temporary = path.join(dir, ".smtp-bridge.config.ts.tmp")
    fs.writeFileSync(temporary, configText({ ...base, hostname: "renamed.test", limits: { maxRecipients: 2 } }))
    fs.renameSync(temporary, configFile)
    await logAfter(watched, since, done)

    const c = await connect(port)
    expect(await login(c, "renamed.test", "alice")).toMatch(/^235 /)
    c.close()
    expect(reloads()).toBe(1)
  })

  it("refuses an invalid config with one log line naming the field, keeps the old one, and picks up the fixed file", async () => {
    fs.writeFileSync(configFile, configText({ ...base, hostname: "invalid.test", limits: { maxRecipients: -1 } }))
    const line = await logAfter(watched, since, refused)
    const record = JSON.parse(line) as Record<string, unknown>
    expect(record.level).toBe("ERROR")
    expect(record.message).toBe(
      `reload refused, the running config stays active: Invalid config: limits.maxRecipients: expected a positive integer, got -1 (${configFile})`
    )

    // Still this test's start config, with two recipients.
    const c = await connect(port)
    expect(await login(c, start, "alice")).toMatch(/^235 /)
    expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<a@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("RCPT TO:<c@example.net>")).toBe("452 4.5.3 Too many recipients")
    c.close()

    const fixing = watched.output().length
    fs.writeFileSync(configFile, configText({ ...base, hostname: "fixed.test", limits: { maxRecipients: 2 } }))
    await logAfter(watched, fixing, done)
    const fixed = await connect(port)
    expect(await login(fixed, "fixed.test", "alice")).toMatch(/^235 /)
    fixed.close()
    // The invalid file and its fix: two reloads, one refused.
    expect(reloads()).toBe(2)
    expect(count(watched.output().slice(since), /reload refused/)).toBe(1)
  })

  it("lets a user added to the users file AUTH without SIGHUP", async () => {
    const before = await connect(port)
    expect(await login(before, start, "bob")).toMatch(/^535 5\.7\.8 /)
    before.close()

    fs.appendFileSync(usersFile, `bob:${await hashPassword(password.bob, 4)}\n`)
    expect(await logAfter(watched, since, reloading)).toContain(`${usersFile} changed: reloading`)
    await logAfter(watched, since, done)

    const bob = await connect(port)
    expect(await login(bob, start, "bob")).toBe("235 2.7.0 Authentication successful")
    bob.close()
    expect(reloads()).toBe(1)
  })

  it("follows a users file that the new config moves to another directory", async () => {
    const elsewhere = fs.mkdtempSync(path.join(dir, "users-"))
    const movedUsers = path.join(elsewhere, "users.htpasswd")
    fs.writeFileSync(movedUsers, `carol:${await hashPassword(password.carol, 4)}\n`)
    fs.writeFileSync(configFile, configText({ ...base, hostname: "moved.test", users: movedUsers, limits: { maxRecipients: 2 } }))
    await logAfter(watched, since, done)
    await logAfter(watched, since, new RegExp(escape(`reload: watching ${configFile}, ${movedUsers} for changes`)))

    const appended = watched.output().length
    fs.appendFileSync(movedUsers, `dave:${await hashPassword(password.dave, 4)}\n`)
    expect(await logAfter(watched, appended, reloading)).toContain(`${movedUsers} changed: reloading`)
    await logAfter(watched, appended, done)
    const dave = await connect(port)
    expect(await login(dave, "moved.test", "dave")).toBe("235 2.7.0 Authentication successful")
    dave.close()
    expect(reloads()).toBe(2)
  })

  it("without --watch-config, the same changes reload nothing: the old hostname, users and limit stay", async () => {
    fs.writeFileSync(configFile, configText({ ...base, hostname: "last.test", limits: { maxRecipients: 3 } }))
    // The watching CLI saw this change (and every earlier one); give the other one several quiet
    // periods more to (not) react: a wait for something that must not happen, not a synchronisation.
    await logAfter(watched, since, done)
    await new Promise((resolve) => setTimeout(resolve, 2_000))

    expect(unwatched.output()).not.toMatch(/reload/)
    const c = await connect(unwatchedPort)
    expect(await login(c, "watch.test", "bob")).toMatch(/^535 5\.7\.8 /)
    c.close()
    const alice = await connect(unwatchedPort)
    expect(await login(alice, "watch.test", "alice")).toMatch(/^235 /)
    expect(await alice.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await alice.command("RCPT TO:<a@example.net>")).toBe("250 2.1.5 Ok")
    expect(await alice.command("RCPT TO:<b@example.net>")).toBe("452 4.5.3 Too many recipients")
    alice.close()
    expect(reloads()).toBe(1)
  })
})

describe(`--watch-config with TLS flags and no config file, under ${runtime}`, () => {
  it("serves a certificate renewed by rename (as certbot does) to new handshakes", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-watch-tls-"))
    const cert = path.join(dir, "fullchain.pem")
    const key = path.join(dir, "privkey.pem")
    fs.copyFileSync(testCertificate().cert, cert)
    fs.copyFileSync(testCertificate().key, key)
    const cli = await spawnCli(runtime, [
      "serve", "--listen-tls", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--hostname", "tls.test",
      "--maildir", path.join(dir, "mail"), "--watch-config", "--log-format", "json"
    ])
    try {
      const tlsPort = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+) \(implicit TLS\)/, 60_000))[1])
      expect(cli.output()).toContain(`reload: watching ${cert}, ${key} for changes`)
      const before = await servedFingerprint(tlsPort)

      execFileSync("openssl", [
        "req", "-x509", "-nodes", "-days", "1", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", `${key}.new`, "-out", `${cert}.new`, "-subj", "/CN=localhost"
      ], { stdio: "ignore", timeout: 20_000 })
      const since = cli.output().length
      fs.renameSync(`${key}.new`, key)
      fs.renameSync(`${cert}.new`, cert)
      await logAfter(cli, since, done)

      expect(await servedFingerprint(tlsPort)).not.toBe(before)
    } finally {
      await cli.kill()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 90_000)
})
