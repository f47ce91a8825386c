/**
 * The real CLI under Bun, Deno and Node >= 22.19: a user made by `hash-password`, a mail client
 * doing STARTTLS and AUTH, delivery into the Maildir, and a clean SIGTERM.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import nodemailer from "nodemailer"
import { describe, expect, it } from "vitest"
import { testCertificate } from "../support/certs.ts"
import { runtimes, spawnCli } from "../support/runtimes.ts"

const runToExit = async (runtime: (typeof runtimes)[number], args: ReadonlyArray<string>) => {
  const cli = await spawnCli(runtime, args)
  try {
    const exit = await cli.exited
    return { exit, stdout: cli.stdout(), stderr: cli.stderr() }
  } finally {
    await cli.kill()
  }
}

describe.each(runtimes)("smtp-bridge CLI under %s", (runtime) => {
  it("hashes a password, serves STARTTLS + AUTH, delivers into the Maildir and exits 0 on SIGTERM", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sb-compat-${runtime}-`))
    const hashed = await runToExit(runtime, ["hash-password", "--user", "alice@example.com", "--password", "s3cret pass"])
    expect(hashed.exit.code).toBe(0)
    expect(hashed.stdout.trim()).toMatch(/^alice@example\.com:\$2y\$\d\d\$.{53}$/)
    const users = path.join(dir, "users.htpasswd")
    fs.writeFileSync(users, hashed.stdout)
    const maildir = path.join(dir, "mail")
    const { cert, key } = testCertificate()

    const bridge = await spawnCli(runtime, [
      "serve", "--listen", "127.0.0.1:0", "--hostname", "compat.test",
      "--tls-cert", cert, "--tls-key", key, "--users", users, "--maildir", maildir
    ])
    try {
      const [, port] = await bridge.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
      const transport = nodemailer.createTransport({
        host: "127.0.0.1",
        port: Number(port),
        secure: false,
        requireTLS: true,
        tls: { rejectUnauthorized: false },
        auth: { user: "alice@example.com", pass: "s3cret pass" }
      })
      const info = await transport.sendMail({
        from: "alice@example.com",
        to: "bob@example.net",
        subject: `compat ${runtime}`,
        text: "Hello from the compatibility test.\n.\nStill here."
      })
      transport.close()
      expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as \w+/)
      const files = fs.readdirSync(path.join(maildir, "new"))
      expect(files).toHaveLength(1)
      const stored = fs.readFileSync(path.join(maildir, "new", files[0]!), "utf8")
      expect(stored).toContain(`Subject: compat ${runtime}`)
      expect(stored).toMatch(/Received: from \S+ \(\[127\.0\.0\.1\]\)\s+by compat\.test \(smtp-bridge\) with\s+ESMTPSA/)
      expect(stored).toContain("Hello from the compatibility test.\r\n.\r\nStill here.")
      expect(stored).not.toContain("s3cret")

      bridge.signal("SIGTERM")
      const exit = await bridge.exited
      expect(exit).toEqual({ code: 0, signal: null })
    } finally {
      await bridge.kill()
    }
  }, 120_000)

  it("refuses an invalid flag with a one-line error naming the field and exit code 2", async () => {
    const result = await runToExit(runtime, ["check-config", "--max-recipients", "-1"])
    expect(result.exit.code).toBe(2)
    expect(result.stderr.trim().split("\n")).toHaveLength(1)
    expect(result.stderr).toMatch(/maxRecipients/)
  }, 60_000)
})
