/**
 * SIGHUP to the real CLI (under the runtime running the tests): a changed users file and config
 * apply to new sessions while open ones carry on; an invalid config is refused with one clear log
 * line and the old one stays. Its JSON log lines carry session and transaction ids, and never an
 * AUTH secret. Then, in-process, a replaced TLS certificate is served to new handshakes.
 */
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import * as Resolve from "../../src/config/Resolve.ts"
import { startBridge } from "../support/bridge.ts"
import { servedFingerprint, testCertificate } from "../support/certs.ts"
import { type CliProcess, type Runtime, spawnCli } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

const runtime: Runtime = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined" ? "deno" : "bun"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")
const alicePassword = "alice-Secret-7Qz!"
const bobPassword = "bob-Secret-4Kx!"

const writeConfig = (file: string, fields: Record<string, unknown>) =>
  fs.writeFileSync(file, `export default ${JSON.stringify(fields, null, 2)}\n`)

/** C: EHLO, AUTH PLAIN; returns the AUTH reply. */
const login = async (c: Client, user: string, password: string): Promise<string> => {
  expect(await c.read()).toMatch(/^220 reload\.test /)
  expect(await c.command("EHLO client.test")).toMatch(/^250-/)
  return c.command(`AUTH PLAIN ${b64(`\0${user}\0${password}`)}`)
}

describe(`SIGHUP reload of the CLI under ${runtime}`, () => {
  let dir: string
  let users: string
  let configFile: string
  let baseConfig: Record<string, unknown>
  let cli: CliProcess
  let port: number

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-reload-"))
    users = path.join(dir, "users.htpasswd")
    fs.writeFileSync(users, `alice:${await hashPassword(alicePassword, 4)}\n`)
    configFile = path.join(dir, "smtp-bridge.config.ts")
    baseConfig = {
      hostname: "reload.test",
      listen: ["127.0.0.1:0"],
      users,
      allowInsecureAuth: true,
      maildir: path.join(dir, "mail"),
      senders: { alice: ["*"], bob: ["*"] }
    }
    writeConfig(configFile, baseConfig)
    cli = await spawnCli(runtime, ["serve", "--config", configFile, "--log-format", "json"])
    port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 60_000))[1])
  }, 90_000)
  afterAll(() => cli?.kill())

  it("logs one JSON object per line, with the session and transaction ids of the 250 reply, and never the AUTH password", async () => {
    const c = await connect(port)
    expect(await login(c, "alice", alicePassword)).toBe("235 2.7.0 Authentication successful")
    expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354 /)
    const queued = await c.command("Subject: logs\r\n\r\nThe body is private.\r\n.")
    const id = /^250 2\.0\.0 Ok: queued as (\w+)$/.exec(queued)?.[1]
    expect(id).toBeDefined()
    await c.command("QUIT")
    await cli.waitForLog(new RegExp(`"message":"message accepted".*"transaction":"${id}"`))

    const lines = cli.stdout().trim().split("\n")
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
    for (const r of records) expect(Object.keys(r)).toEqual(expect.arrayContaining(["time", "level", "message"]))
    const message = records.find((r) => r.transaction === id && r.message === "message accepted")
    expect(message).toMatchObject({ user: "alice", recipients: 1 })
    expect(message?.session).toMatch(/^[0-9A-F]{16}$/)
    const output = cli.output()
    expect(output).not.toContain(alicePassword)
    expect(output).not.toContain(b64(`\0alice\0${alicePassword}`))
    expect(output).not.toContain("The body is private")
  })

  it("applies a changed users file to new sessions (the new user can AUTH) while an open session carries on", async () => {
    const open = await connect(port)
    expect(await login(open, "alice", alicePassword)).toMatch(/^235 /)
    expect(await open.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")

    fs.appendFileSync(users, `bob:${await hashPassword(bobPassword, 4)}\n`)
    cli.signal("SIGHUP")
    await cli.waitForLog(/reload done/)

    const bob = await connect(port)
    expect(await login(bob, "bob", bobPassword)).toBe("235 2.7.0 Authentication successful")
    bob.close()

    // The session opened before the reload finishes its transaction on the same connection.
    expect(await open.command("RCPT TO:<carol@example.net>")).toBe("250 2.1.5 Ok")
    expect(await open.command("DATA")).toMatch(/^354 /)
    expect(await open.command("Subject: across a reload\r\n\r\nStill here.\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as /)
    expect(await open.command("QUIT")).toMatch(/^221 /)
  })

  it("refuses an invalid new config with one log line naming the field, and keeps serving with the old one", async () => {
    writeConfig(configFile, { ...baseConfig, hostname: "changed.test", limits: { maxRecipients: -1 } })
    cli.signal("SIGHUP")
    const [line] = await cli.waitForLog(/.*reload refused.*/)
    const record = JSON.parse(line) as Record<string, unknown>
    expect(record.level).toBe("ERROR")
    expect(record.message).toMatch(/reload refused, the running config stays active: Invalid config: limits\.maxRecipients: expected a positive integer, got -1/)

    const c = await connect(port)
    // Still the old hostname, and bob (from the last good reload) still authenticates.
    expect(await login(c, "bob", bobPassword)).toMatch(/^235 /)
    c.close()
  })
})

describe("TLS certificate reload", () => {
  it("serves a replaced certificate to new handshakes after a reload", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-tls-reload-"))
    const cert = path.join(dir, "cert.pem")
    const key = path.join(dir, "key.pem")
    fs.copyFileSync(testCertificate().cert, cert)
    fs.copyFileSync(testCertificate().key, key)
    const input = { listen: ["127.0.0.1:0"], listenTls: ["127.0.0.1:0"], tls: { cert, key }, hostname: "bridge.test", maildir: path.join(dir, "mail") }
    const bridge = await startBridge(input)
    try {
      const before = await servedFingerprint(bridge.tlsPort!)
      execFileSync("openssl", [
        "req", "-x509", "-nodes", "-days", "1", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", key, "-out", cert, "-subj", "/CN=localhost"
      ], { stdio: "ignore" })
      const config = await Effect.runPromise(Resolve.resolve(input, "test"))
      await Effect.runPromise(bridge.running.reload(config))
      const after = await servedFingerprint(bridge.tlsPort!)
      expect(after).not.toBe(before)
    } finally {
      await bridge.stop()
    }
  })
})
