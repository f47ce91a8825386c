// `--auth dovecot://` through the real CLI under Bun and Deno, against a real Dovecot auth
// service started by the test, chained after an htpasswd file (`--users`):
//
//   $ smtp-bridge serve --users FILE --auth dovecot:///SOCKET (Bun) | --auth dovecot://127.0.0.1:PORT (Deno) \
//       --config FILE (auth: [{ type: "dovecot", penalty: false }]) --tls-cert ... --admin 127.0.0.1:0
//   ... auth backends htpasswd FILE -> dovecot unix:SOCKET; mechanisms PLAIN LOGIN Dovecot's; cache ttl 1m, negative 10s
//   C: EHLO   S: 250-AUTH PLAIN LOGIN SCRAM-SHA-256 ...
//   C: AUTH PLAIN (carol, the file's)  S: 235    C: AUTH PLAIN (bob, Dovecot's)  S: 235    C: AUTH SCRAM-SHA-256 (alice)  S: 235
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { testCertificate } from "../support/certs.ts"
import { type DovecotAuth, dovecotAuthAvailable, startDovecotAuth } from "../support/dovecotAuth.ts"
import { until } from "../support/eventually.ts"
import { type Runtime, spawnCli } from "../support/runtimes.ts"
import { scramSha256 } from "../support/scram.ts"
import { type Client, connect } from "../support/SmtpClient.ts"
import { needTool } from "../support/tools.ts"

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64")

const users = [
  { name: "alice@example.test", password: "alice-secret", scheme: "SCRAM-SHA-256" },
  { name: "bob@example.test", password: "bob-secret", scheme: "BLF-CRYPT" }
] as const

const secured = async (port: number): Promise<{ c: Client; ehlo: string }> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  await c.command("EHLO client.test")
  expect(await c.command("STARTTLS")).toMatch(/^220 /)
  await c.startTls()
  return { c, ehlo: await c.command("EHLO client.test") }
}

const plain = async (port: number, user: string, password: string): Promise<string> => {
  const { c } = await secured(port)
  try {
    return await c.command(`AUTH PLAIN ${b64(`\0${user}\0${password}`)}`)
  } finally {
    c.close()
  }
}

const sample = (text: string, name: string, labels: Record<string, string>): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1))
}

describe.skipIf(!needTool("dovecot", dovecotAuthAvailable()))("serve --users FILE --auth dovecot://...", () => {
  let dovecot: DovecotAuth
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-cli-dovecot-"))
  const { cert, key } = testCertificate()
  let config: string

  beforeAll(async () => {
    dovecot = await startDovecotAuth({ users })
    fs.writeFileSync(path.join(dir, "users"), `carol:${await hashPassword("carol-pw", 4)}\n`)
    config = path.join(dir, "smtp-bridge.config.ts")
    // The flag says where Dovecot is; the file's entry of the same type adds its other options.
    fs.writeFileSync(config, `export default { auth: [{ type: "dovecot", penalty: false }], authCache: {}, rateLimit: { authFailures: false } }\n`)
  }, 30_000)
  afterAll(async () => {
    await dovecot?.remove()
  })

  it.each<[Runtime, string]>([["bun", "unix socket"], ["deno", "TCP"]])("under %s, over its %s: htpasswd and Dovecot users log in, SCRAM-SHA-256 is relayed, and the dovecot backend is metered", async (runtime, over) => {
    const url = over === "TCP" ? `dovecot://127.0.0.1:${dovecot.port}` : `dovecot://${dovecot.socket}`
    const cli = await spawnCli(runtime, [
      "serve", "--config", config, "--listen", "127.0.0.1:0", "--hostname", "bridge.test", "--maildir", path.join(dir, "mail"),
      "--tls-cert", cert, "--tls-key", key, "--admin", "127.0.0.1:0", "--users", path.join(dir, "users"), "--auth", url
    ])
    try {
      const [line, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+).*/, 30_000)
      const [, admin] = await cli.waitForLog(/admin listening on http:\/\/127\.0\.0\.1:(\d+)/, 30_000)
      const where = over === "TCP" ? `dovecot 127.0.0.1:${dovecot.port}` : `dovecot unix:${dovecot.socket}`
      expect(line).toContain(`auth backends htpasswd ${path.join(dir, "users")} -> ${where}; mechanisms PLAIN LOGIN Dovecot's; cache ttl 1m, negative 10s`)
      const p = Number(port)
      await until("Dovecot's mechanisms advertised", async () => {
        const { c, ehlo } = await secured(p)
        c.close()
        return ehlo.includes("SCRAM-SHA-256")
      })
      expect(await plain(p, "carol", "carol-pw")).toMatch(/^235 2\.7\.0 /)
      expect(await plain(p, users[1].name, users[1].password)).toMatch(/^235 2\.7\.0 /)
      expect(await plain(p, users[1].name, "wrong")).toMatch(/^535 5\.7\.8 /)
      expect(await plain(p, "nobody@example.test", "x")).toMatch(/^535 5\.7\.8 /)
      const { c } = await secured(p)
      expect((await scramSha256(c, users[0].name, users[0].password)).reply).toBe("235 2.7.0 Authentication successful")
      c.close()
      const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text()
      // bob, bob's wrong password, nobody (a user Dovecot does not know is refused by it), and SCRAM.
      expect(sample(metrics, "smtp_bridge_auth_backend_requests_total", { backend: "dovecot", result: "accepted" })).toBe(2)
      expect(sample(metrics, "smtp_bridge_auth_backend_failures_total", { backend: "dovecot", reason: "invalid" })).toBe(2)
      expect(sample(metrics, "smtp_bridge_auth_backend_requests_total", { backend: "htpasswd", result: "accepted" })).toBe(1)
    } finally {
      await cli.kill()
    }
  }, 90_000)
})
