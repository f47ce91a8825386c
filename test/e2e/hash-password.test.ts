/**
 * `hash-password` and the 72-byte limit of bcrypt, through the real CLI under Bun: a password
 * longer than 72 bytes is refused when hashing (bcrypt would silently ignore the rest), and at
 * login a password over 72 bytes never authenticates, even when its first 72 bytes are right.
 *
 *   $ smtp-bridge hash-password --password <73 bytes>     exit != 0, no hash printed
 *   C: AUTH PLAIN <user, the 72-byte password + "X">      S: 535 5.7.8 Authentication credentials invalid
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type CliProcess, runCli, spawnCli } from "../support/runtimes.ts"
import { connect } from "../support/SmtpClient.ts"


const plain = (user: string, password: string): string => Buffer.from(`\0${user}\0${password}`, "utf8").toString("base64")

// 72 bytes in UTF-8: 36 two-byte letters; bcrypt counts bytes, not characters.
const longest = "é".repeat(36)

describe("hash-password and passwords over 72 bytes (real CLI under Bun)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-hash-"))
  let cli: CliProcess
  let port = 0

  beforeAll(async () => {
    const hashed = await runCli(["hash-password", "--user", "erin", "--password", longest])
    expect(hashed.code, hashed.stderr).toBe(0)
    fs.writeFileSync(path.join(dir, "users.htpasswd"), hashed.stdout)
    cli = await spawnCli("bun", [
      "serve", "--listen", "127.0.0.1:0", "--users", path.join(dir, "users.htpasswd"), "--allow-insecure-auth", "--maildir", path.join(dir, "mail")
    ])
    const [, bound] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
    port = Number(bound)
  }, 60_000)
  afterAll(async () => {
    await cli.kill()
  })

  it("refuses a 73-byte password with a message naming the 72-byte limit, and prints no hash", async () => {
    const r = await runCli(["hash-password", "--user", "erin", "--password", `${longest}X`])
    expect(r.code).not.toBe(0)
    expect(r.stderr + r.stdout).toMatch(/73 bytes long, but bcrypt uses only the first 72/)
    expect(r.stdout).not.toMatch(/\$2y\$/)
  })

  it("hashes a password of exactly 72 bytes, which then logs in: 235 2.7.0", async () => {
    const c = await connect(port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      await c.command("EHLO client.test")
      expect(await c.command(`AUTH PLAIN ${plain("erin", longest)}`)).toBe("235 2.7.0 Authentication successful")
    } finally {
      c.close()
    }
  })

  it("never authenticates a password over 72 bytes, even one whose first 72 bytes are right: 535 5.7.8", async () => {
    const c = await connect(port)
    try {
      expect(await c.read()).toMatch(/^220 /)
      await c.command("EHLO client.test")
      expect(await c.command(`AUTH PLAIN ${plain("erin", `${longest}X`)}`)).toBe("535 5.7.8 Authentication credentials invalid")
    } finally {
      c.close()
    }
  })
})
