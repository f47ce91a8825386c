// The example third-party plugin (docs/examples/no-example-dot-com.ts), loaded from the example
// user config file through the real CLI under Bun and Deno: the `smtp-bridge` import resolves
// (package.json self-reference on Bun, the deno.json import map on Deno) and flags override the
// file (--maildir, --trust).
//
//   $ smtp-bridge serve --config docs/examples/smtp-bridge.config.ts --maildir TMP ...
//   S: 220 mx.bridge.test ESMTP smtp-bridge
//   C: RCPT TO:<bob@example.com>
//   S: 550 5.1.2 Domain example.com does not accept mail
//   C: RCPT TO:<dave@example.net>
//   S: 250 2.1.5 Ok
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Runtime, spawnCli } from "../support/runtimes.ts"
import { connect } from "../support/SmtpClient.ts"

const runtimes: ReadonlyArray<Runtime> = ["bun", "deno"]

describe.each(runtimes)("docs/examples/smtp-bridge.config.ts under %s", (runtime) => {
  it("lists no-example-dot-com in the plugin order, refuses its domains with 550 5.1.2 and delivers to another recipient", async () => {
    const maildir = fs.mkdtempSync(path.join(os.tmpdir(), `sb-example-${runtime}-`))
    const serve = await spawnCli(runtime, [
      "serve", "--config", "docs/examples/smtp-bridge.config.ts",
      "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--maildir", maildir
    ])
    try {
      const started = await serve.waitForLog(/listening on 127\.0\.0\.1:(\d+).*$/m, 40_000)
      // The user's plugin runs after the built-in rcptTo checks and before the Received header.
      expect(started[0]).toMatch(/plugins [^;]*sender-identity\[mailFrom,data\] -> no-example-dot-com\[rcptTo\] -> received\[data\]/)
      expect(started[0]).toContain(`default=maildir ${maildir}`)
      const c = await connect(Number(started[1]))
      expect(await c.read()).toBe("220 mx.bridge.test ESMTP smtp-bridge")
      expect(await c.command("EHLO client.example.test")).toMatch(/^250-mx\.bridge\.test /)
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.com>")).toBe("550 5.1.2 Domain example.com does not accept mail")
      expect(await c.command("RCPT TO:<carol@Sub.Example.COM>")).toBe("550 5.1.2 Domain Sub.Example.COM does not accept mail")
      // The config blocks example.com only, not the plugin's other defaults.
      expect(await c.command("RCPT TO:<dave@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: example config\r\n\r\nHello Dave.\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as \S+$/)
      expect(await c.command("QUIT")).toMatch(/^221 /)
      c.close()
      const files = fs.readdirSync(path.join(maildir, "new"))
      expect(files).toHaveLength(1)
      const delivered = fs.readFileSync(path.join(maildir, "new", files[0]!), "utf8")
      expect(delivered).toMatch(/^Delivered-To: dave@example\.net\r\n/m)
      expect(delivered).toContain("\r\n\r\nHello Dave.\r\n")
      expect(delivered).not.toContain("bob@example.com")
    } finally {
      await serve.kill()
      fs.rmSync(maildir, { recursive: true, force: true })
    }
  }, 60_000)
})
