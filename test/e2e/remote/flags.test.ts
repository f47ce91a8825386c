/**
 * The remote-stage flags through the real CLI under Bun:
 *   $ smtp-bridge check-config --policy 127.0.0.1:10023          -> exit 2, "Invalid config: policy: ..."
 *   $ smtp-bridge check-config --rspamd ftp://x                  -> exit 2, "Invalid config: rspamd: ..."
 *   $ smtp-bridge check-config --relay 'smtp://h:25?verify=maybe' -> exit 2, "... verify must be true, false or rcpt ..."
 *   $ smtp-bridge serve --policy inet:127.0.0.1:PORT --trust ... -> RCPT answered as the policy service says
 */
import * as net from "node:net"
import { describe, expect, it } from "vitest"
import { runCli, spawnCli } from "../../support/runtimes.ts"
import { connect } from "../../support/SmtpClient.ts"

describe("check-config with --policy, --rspamd and ?verify=rcpt (real CLI under Bun)", () => {
  it("exits 2 with one line naming the field for a bad value of each", async () => {
    for (
      const [args, pattern] of [
        [["--policy", "127.0.0.1:10023"], /^Invalid config: policy: expected inet:HOST:PORT, unix:\/path .*\(flags\)$/],
        [["--rspamd", "ftp://127.0.0.1"], /^Invalid config: rspamd: expected an http:\/\/ URL .*\(flags\)$/],
        [["--relay", "smtp://127.0.0.1:25?verify=maybe"], /^Invalid config: relay: .*verify must be true, false or rcpt, not "maybe"/]
      ] as const
    ) {
      const r = await runCli(["check-config", ...args])
      expect(r.code, r.stdout).toBe(2)
      expect(r.stderr.trim().split("\n")).toHaveLength(1)
      expect(r.stderr.trim()).toMatch(pattern)
    }
  }, 60_000)

  it("refuses a password in the rspamd URL without repeating it (use the password option)", async () => {
    const r = await runCli(["check-config", "--rspamd", "http://scanner:hunter2secret@127.0.0.1:11333"])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(/^Invalid config: rspamd: /)
    expect(r.stderr + r.stdout).not.toContain("hunter2secret")
  }, 30_000)

  it("exits 0 and names the policy service and rspamd when they are valid", async () => {
    const r = await runCli([
      "check-config", "--trust", "127.0.0.1", "--policy", "inet:127.0.0.1:10023", "--rspamd", "http://127.0.0.1:11333", "--relay", "lmtp://127.0.0.1:24?verify=rcpt"
    ])
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/policy service inet:127\.0\.0\.1:10023 at rcpt; rspamd http:\/\/127\.0\.0\.1:11333;/)
    expect(r.stdout).toMatch(/transports default=lmtp lmtp:\/\/127\.0\.0\.1:24\?verify=rcpt/)
  }, 30_000)
})

describe("serve --policy (real CLI under Bun)", () => {
  it("answers RCPT with the policy service's REJECT text as 554 5.7.1", async () => {
    const server = net.createServer((socket) => {
      socket.on("error", () => {})
      socket.setEncoding("utf8").on("data", (text: string) => {
        if (text.includes("\n\n")) socket.write("action=REJECT 5.7.9 not from here\n\n")
      })
    })
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
    const port = (server.address() as net.AddressInfo).port
    const cli = await spawnCli("bun", ["serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.1", "--policy", `inet:127.0.0.1:${port}`])
    try {
      const [, smtpPort] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
      const c = await connect(Number(smtpPort))
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO client.test")).toMatch(/^250-/)
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.net>")).toBe("554 5.7.9 <bob@example.net>: Recipient address rejected: not from here")
      c.close()
    } finally {
      await cli.kill()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }, 60_000)
})
