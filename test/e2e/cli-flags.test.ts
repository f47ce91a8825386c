// The mail-authentication and rate-limit flags of `serve` and `check-config`, through the real
// CLI under Bun (src/cli.ts in a child process), against real DNS (dnsmasq) and an independent
// DKIM verifier (dkimpy).
//
//   $ smtp-bridge dkim keygen --domain example.com --selector s1 --out KEY
//   v=DKIM1; k=rsa; p=...                        (published at s1._domainkey.example.com)
//   $ smtp-bridge serve --dkim-sign example.com:s1:KEY --dkim-trusted-from 127.0.0.0/8=@example.com --verify --dns 127.0.0.1:PORT ...
//   C: MAIL FROM:<a@example.com> ... DATA (From: a@example.com)
//   S: 250 2.0.0 Ok: queued as ...    -> DKIM-Signature: ... d=example.com; s=s1 ...
//                                        Authentication-Results: cli-flags.test; ...
//
//   $ smtp-bridge serve --rate-limit user=2/hour --users FILE --allow-insecure-auth ...
//   (alice sent two messages)
//   C: MAIL FROM:<alice@example.org>
//   S: 451 4.7.1 Message rate limit exceeded for alice@example.org, try again in ...
//
//   $ smtp-bridge check-config --rate-limit user=2/fortnight      -> exit 2, "Invalid config: rateLimit.limits[0]: ..."
//   $ smtp-bridge check-config --dns not-a-server:99999           -> exit 2, "Invalid config: dns...."
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { maildirFiles } from "../support/bridge.ts"
import { type Dnsmasq, startDnsmasq, txt } from "../support/dnsmasq.ts"
import { type CliProcess, runCli, spawnCli } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"
import * as Dkimpy from "./mailauth/dkimpy.ts"


/** `serve ARGS --listen 127.0.0.1:0` under Bun; the port it logged. */
const serve = async (args: ReadonlyArray<string>): Promise<{ readonly cli: CliProcess; readonly port: number }> => {
  const cli = await spawnCli("bun", ["serve", "--listen", "127.0.0.1:0", ...args])
  try {
    const [, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
    return { cli, port: Number(port) }
  } catch (error) {
    await cli.kill()
    throw error
  }
}

const headerBlock = (message: string): string => message.slice(0, message.indexOf("\r\n\r\n") + 2)
/** The unfolded value of every `name:` field in the header. */
const fields = (message: string, name: string): ReadonlyArray<string> =>
  [...headerBlock(message).matchAll(new RegExp(`^${name}:[ \\t]*(.*(?:\\r\\n[ \\t].*)*)`, "gim"))]
    .map((m) => m[1]!.replace(/\r\n[ \t]+/g, " "))

describe("serve --dkim-sign --verify --dns (real CLI under Bun)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-cli-dkim-"))
  const keyFile = path.join(dir, "s1.pem")
  const maildir = path.join(dir, "mail")
  let record = ""
  let dns: Dnsmasq
  let bridge: { readonly cli: CliProcess; readonly port: number }

  beforeAll(async () => {
    const keygen = await runCli(["dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--out", keyFile])
    expect(keygen.code, keygen.stderr).toBe(0)
    record = keygen.stdout.trim()
    dns = await startDnsmasq({ zones: ["example.com"], lines: [txt("s1._domainkey.example.com", record)] })
    bridge = await serve([
      "--hostname", "cli-flags.test",
      "--dkim-sign", `example.com:s1:${keyFile}`,
      "--dkim-trusted-from", "127.0.0.0/8=@example.com",
      "--verify",
      "--dns", dns.server,
      "--trust", "127.0.0.0/8",
      "--maildir", maildir
    ])
  }, 60_000)
  afterAll(async () => {
    await bridge?.cli.kill()
    await dns?.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("keygen wrote a private key file (0600) and printed an RSA v=DKIM1 record", () => {
    expect(record).toMatch(/^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+$/)
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600)
  })

  it("delivers mail From: a@example.com signed d=example.com; s=s1 with Authentication-Results, and dkimpy verifies the signature", async () => {
    const c: Client = await connect(bridge.port)
    try {
      expect(await c.read()).toMatch(/^220 cli-flags\.test /)
      expect(await c.command("EHLO client.example.com")).toMatch(/^250-/)
      expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      const reply = await c.command(
        "From: A <a@example.com>\r\nTo: b@example.net\r\nSubject: signed by the CLI\r\n" +
          "Date: Tue, 01 Jul 2025 12:00:00 +0000\r\nMessage-ID: <cli-1@example.com>\r\n\r\nHello  B, \r\n\r\n.",
        30_000
      )
      expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as /)
    } finally {
      c.close()
    }
    const files = maildirFiles(maildir)
    expect(files).toHaveLength(1)
    const stored = files[0]!.toString("utf8")
    const signatures = fields(stored, "DKIM-Signature")
    expect(signatures).toHaveLength(1)
    expect(signatures[0]).toMatch(/(?:^|;)\s*d=example\.com;/)
    expect(signatures[0]).toMatch(/(?:^|;)\s*s=s1;/)
    const results = fields(stored, "Authentication-Results")
    expect(results).toHaveLength(1)
    expect(results[0]).toMatch(/^cli-flags\.test;/)
    // Everything the bridge put on top (Return-Path, Received, ...) stays: dkimpy checks the file as delivered.
    expect(await Dkimpy.verify(files[0]!, { "s1._domainkey.example.com": record })).toEqual([true])
    // A wrong key in DNS makes the same check fail: the verification above is not vacuous.
    const other = await runCli(["dkim", "keygen", "--domain", "example.com", "--selector", "s1", "--out", path.join(dir, "other.pem")])
    expect(await Dkimpy.verify(files[0]!, { "s1._domainkey.example.com": other.stdout.trim() })).toEqual([false])
  }, 60_000)
})

describe("serve --rate-limit user=2/hour --users --allow-insecure-auth (real CLI under Bun)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-cli-rl-"))
  const maildir = path.join(dir, "mail")
  let bridge: { readonly cli: CliProcess; readonly port: number }

  beforeAll(async () => {
    const hashed = await runCli(["hash-password", "--user", "alice@example.org", "--password", "s3cret"])
    expect(hashed.code, hashed.stderr).toBe(0)
    const users = path.join(dir, "users.htpasswd")
    fs.writeFileSync(users, hashed.stdout)
    bridge = await serve(["--hostname", "cli-rl.test", "--users", users, "--allow-insecure-auth", "--rate-limit", "user=2/hour", "--maildir", maildir])
  }, 60_000)
  afterAll(async () => {
    await bridge?.cli.kill()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  /** C: AUTH PLAIN as alice, MAIL, and (when MAIL passed) RCPT, DATA; the MAIL reply or the final reply. */
  const send = async (n: number): Promise<string> => {
    const c = await connect(bridge.port)
    try {
      await c.read()
      expect(await c.command("EHLO client.test")).toMatch(/^250[- ]AUTH /m)
      expect(await c.command(`AUTH PLAIN ${Buffer.from("\0alice@example.org\0s3cret").toString("base64")}`)).toBe(
        "235 2.7.0 Authentication successful"
      )
      const mail = await c.command("MAIL FROM:<alice@example.org>")
      if (!mail.startsWith("250")) return mail
      expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      return await c.command(`Subject: rate ${n}\r\n\r\nhello\r\n.`)
    } finally {
      c.close()
    }
  }

  it("accepts two messages from alice and refuses the third with 451 4.7.1 and a retry hint", async () => {
    expect(await send(1)).toMatch(/^250 2\.0\.0 /)
    expect(await send(2)).toMatch(/^250 2\.0\.0 /)
    expect(await send(3)).toMatch(/^451 4\.7\.1 Message rate limit exceeded for alice@example\.org, try again in \d+ minutes?$/)
    expect(maildirFiles(maildir)).toHaveLength(2)
  }, 60_000)
})

describe("check-config rejects bad --rate-limit and --dns with exit 2 (real CLI under Bun)", () => {
  it("exits 2 with one line naming rateLimit for --rate-limit user=2/fortnight", async () => {
    const r = await runCli(["check-config", "--rate-limit", "user=2/fortnight"])
    expect(r.code).toBe(2)
    const lines = r.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^Invalid config: rateLimit\.limits\[0\]: expected a rate limit like "user=100\/hour" .*"2\/fortnight".*\(flags\)$/)
    expect(r.stdout).toBe("")
  })

  it("exits 2 with one line naming dns for --dns not-a-server:99999", async () => {
    const r = await runCli(["check-config", "--dns", "not-a-server:99999"])
    expect(r.code).toBe(2)
    const lines = r.stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/^Invalid config: dns\b.*not-a-server:99999/)
    expect(r.stdout).toBe("")
  })

  it("exits 0 for the same flags when they are valid (user=2/hour, --dns 127.0.0.1:53)", async () => {
    const r = await runCli(["check-config", "--rate-limit", "user=2/hour", "--dns", "127.0.0.1:53"])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^config ok: /)
  })
})

describe("--log-level anywhere among a command's flags (real CLI under Bun)", () => {
  it("serve --listen 127.0.0.1:0 --trust 127.0.0.1/32 --log-level info starts (it was refused as an unknown argument)", async () => {
    const { cli, port } = await serve(["--trust", "127.0.0.1/32", "--log-level", "info"])
    try {
      expect(port).toBeGreaterThan(0)
      expect(cli.output()).not.toContain("unknown argument")
    } finally {
      await cli.kill()
    }
  })

  it("check-config --trust 127.0.0.1/32 --log-level=warning exits 0", async () => {
    expect(await runCli(["check-config", "--trust", "127.0.0.1/32", "--log-level=warning"])).toMatchObject({ code: 0 })
  })
})
