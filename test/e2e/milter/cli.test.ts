// `--milter` through the real CLI under Bun, and check-config's check of it.
//
//   $ smtp-bridge serve --milter inet:127.0.0.1:PORT ...
//   C: ... Subject: reject ... .
//   S: 554 5.7.0 rejected by the test milter
//
//   $ smtp-bridge check-config --milter tcp:somewhere       -> exit 2, "Invalid config: milter.milters[0]: ..."
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type RunningMilter, startEditorMilter } from "../../support/milter.ts"
import { type CliProcess, runCli, spawnCli } from "../../support/runtimes.ts"
import { connect } from "../../support/SmtpClient.ts"

describe("serve --milter (real CLI under Bun)", () => {
  let editor: RunningMilter
  let cli: CliProcess
  let port: number
  beforeAll(async () => {
    editor = await startEditorMilter()
    cli = await spawnCli("bun", ["serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--milter", `inet:127.0.0.1:${editor.port}`])
    port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
  }, 40_000)
  afterAll(async () => {
    await cli?.kill()
    await editor?.stop()
  })

  it("passes each message through the milter: S: 554 5.7.0 from the milter's reply", async () => {
    const c = await connect(port)
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    await c.command("DATA")
    expect(await c.command("Subject: reject\r\n\r\nhi\r\n.", 20_000)).toBe("554 5.7.0 rejected by the test milter")
    c.close()
  })
})

describe("check-config --milter", () => {
  it("refuses a socket that is neither inet: nor unix:, naming the field: exit 2", async () => {
    const result = await runCli(["check-config", "--milter", "tcp:somewhere"])
    expect(result.code).toBe(2)
    expect(result.output).toMatch(/milter\.milters\[0\]: .*inet:HOST:PORT or unix:\/PATH/)
  }, 40_000)

  it("accepts inet: and unix: sockets: exit 0", async () => {
    const result = await runCli(["check-config", "--milter", "inet:127.0.0.1:8891", "--milter", "unix:/run/opendkim.sock"])
    expect(result.output).not.toMatch(/Invalid/)
    expect(result.code).toBe(0)
  }, 40_000)
})
