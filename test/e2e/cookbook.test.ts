// The cookbook's plugins (docs/examples/) loaded from a config file by the real CLI, under Bun and
// Deno: greylisting and quotas on one shared store, the allow-list file, the archive copy, the
// attachment check (postal-mime).
//
//   C: RCPT TO:<bob@corp.test>            S: 451 4.7.1 Greylisted, please try again later   (first attempt)
//   C: RCPT TO:<bob@corp.test>            S: 250 2.1.5 Ok                                   (after the delay)
//   C: RCPT TO:<mallory@corp.test>        S: 550 5.1.1 No such recipient here: mallory@corp.test
//   C: DATA (an .exe attached) .          S: 554 5.7.1 Attachment type not allowed: invoice.pdf.exe
//   C: DATA ... .                         S: 250   -> one copy in the Maildir, one in the archive
//   (the second message of the day)       S: 452 4.2.2 Daily message quota reached, try again tomorrow
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { until } from "../support/eventually.ts"
import { connect } from "../support/SmtpClient.ts"
import { projectRoot, type Runtime, spawnCli } from "../support/runtimes.ts"

fs.mkdirSync(path.join(projectRoot, ".tmp"), { recursive: true })
const root = fs.mkdtempSync(path.join(projectRoot, ".tmp", "cookbook-"))
afterAll(() => fs.rmSync(root, { recursive: true, force: true }))

const setup = (runtime: Runtime) => {
  const dir = path.join(root, runtime)
  fs.mkdirSync(dir)
  fs.writeFileSync(path.join(dir, "recipients.txt"), "bob@corp.test\ncarol@corp.test\n")
  const file = path.join(dir, "smtp-bridge.config.ts")
  fs.writeFileSync(file, `import { defineConfig } from "smtp-bridge"
import { allowList } from "../../../docs/examples/allow-list.ts"
import { archive } from "../../../docs/examples/archive.ts"
import { attachments } from "../../../docs/examples/attachments.ts"
import { greylist } from "../../../docs/examples/greylist.ts"
import { quotas } from "../../../docs/examples/quotas.ts"
import { sharedStore } from "../../../docs/examples/shared-store.ts"

export default defineConfig({
  hostname: "mx.cookbook.test",
  trust: ["127.0.0.0/8"],
  maildir: ${JSON.stringify(path.join(dir, "mail"))},
  transports: { archive: { type: "maildir", dir: ${JSON.stringify(path.join(dir, "archive"))} } },
  plugins: [
    allowList({ file: ${JSON.stringify(path.join(dir, "recipients.txt"))}, interval: "100 millis" }),
    sharedStore(),
    greylist({ delay: "1 second" }),
    attachments({}),
    quotas({ messages: 1, recipients: 10 }),
    archive({ transport: "archive" })
  ]
})
`)
  return { dir, file }
}

const exe = [
  "Subject: invoice", "MIME-Version: 1.0", "Content-Type: multipart/mixed; boundary=\"b1\"", "", "--b1", "Content-Type: text/plain", "", "see attached",
  "--b1", "Content-Type: application/octet-stream", "Content-Disposition: attachment; filename=\"invoice.pdf.exe\"", "Content-Transfer-Encoding: base64", "",
  "TVqQAAMAAAAEAAAA", "--b1--", "."
].join("\r\n")

const count = (dir: string): number => (fs.existsSync(path.join(dir, "new")) ? fs.readdirSync(path.join(dir, "new")).length : 0)

describe.each(["bun", "deno"] as const)("cookbook plugins from a config file under %s", (runtime) => {
  it("greylists, allows only listed recipients (reloaded), archives a copy and enforces the daily quota", async () => {
    const { dir, file } = setup(runtime)
    const cli = await spawnCli(runtime, ["serve", "--config", file, "--listen", "127.0.0.1:0"])
    try {
      const [, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 45_000)
      const c = await connect(Number(port))
      expect(await c.read()).toMatch(/^220 mx\.cookbook\.test /)
      expect(await c.command("EHLO client.test")).toMatch(/^250-/)
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<mallory@corp.test>")).toBe("550 5.1.1 No such recipient here: mallory@corp.test")
      expect(await c.command("RCPT TO:<bob@corp.test>")).toBe("451 4.7.1 Greylisted, please try again later")
      await new Promise((r) => setTimeout(r, 1200))
      expect(await c.command("RCPT TO:<bob@corp.test>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      // postal-mime parses the MIME tree under this runtime: the .exe is refused before the quota counts it.
      expect(await c.command(exe)).toBe("554 5.7.1 Attachment type not allowed: invoice.pdf.exe")
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@corp.test>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: cookbook\r\n\r\nhello\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as /)
      expect(count(path.join(dir, "mail"))).toBe(1)
      expect(count(path.join(dir, "archive"))).toBe(1)
      // The list file changes: mallory is now a recipient here (greylisted first, as anyone new).
      fs.writeFileSync(path.join(dir, "recipients.txt"), "bob@corp.test\nmallory@corp.test\n")
      await until("the new list", async () => {
        expect(await c.command("RSET")).toBe("250 2.0.0 Ok")
        expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
        return (await c.command("RCPT TO:<mallory@corp.test>")).startsWith("451 4.7.1")
      })
      expect(await c.command("RCPT TO:<bob@corp.test>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: second\r\n\r\nhello\r\n.")).toBe("452 4.2.2 Daily message quota reached, try again tomorrow")
      expect(await c.command("QUIT")).toMatch(/^221 /)
    } finally {
      await cli.kill()
    }
  }, 90_000)
})
