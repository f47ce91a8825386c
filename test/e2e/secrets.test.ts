// Secrets never reach the terminal or the logs: relay passwords with the characters that break
// naive URL handling, webhook tokens in the path and the query, header values and tokens pasted
// into the wrong field. Through the real CLI under Bun (src/cli.ts in a child process).
//
//   $ smtp-bridge check-config --relay 'smtp://bob:Pw/Secret1@relay.example:587'
//   Invalid config: relay: expected a URL like ..., got "smtp://****@relay.example:587" (flags)
//   $ smtp-bridge check-config --webhook 'https://hooks.example/services/PathToken?token=QueryToken'
//   config ok: ... default=webhook https://hooks.example/****?token=**** ...
//   $ smtp-bridge serve --webhook 'http://127.0.0.1:9/services/PathToken?token=QueryToken' ...
//   smtp-bridge listening on ...; transports default=webhook http://127.0.0.1:9/****?token=**** ...
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { runCli, spawnCli } from "../support/runtimes.ts"
import { connect } from "../support/SmtpClient.ts"

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-secrets-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))


const configFile = (name: string, source: string): string => {
  const file = path.join(dir, `${name}.config.ts`)
  fs.writeFileSync(file, source)
  return file
}

describe("secrets in check-config, config errors and logs", () => {
  // Invalid as written (an unencoded "/", "?" or "%"): a config error that names no part of the userinfo.
  for (const [password, why] of [["Pw/Secret1", "/"], ["Pw?Secret2", "?"], ["Pw%Secret3", "%"], ["Pw#Secret6", "#"]] as const) {
    it(`hides a relay password with "${why}" in the config error (exit 2)`, async () => {
      const { code, output } = await runCli(["check-config", "--relay", `smtp://bob:${password}@relay.example:587`])
      expect(code).toBe(2)
      expect(output).toContain(`Invalid config: relay: `)
      expect(output).toContain(`got "smtp://****@relay.example:587" (flags)`)
      expect(output).not.toMatch(/Secret|bob/)
    })
  }

  // Valid as written (the last "@" ends the userinfo; a ":" after the first belongs to the password).
  for (const [password, why] of [["Pw@Secret4", "@"], ["Pw:Secret5", ":"]] as const) {
    it(`hides a relay password with "${why}" in check-config's summary`, async () => {
      const { code, output } = await runCli(["check-config", "--relay", `smtp://bob:${password}@relay.example:587?tls=required`])
      expect(code).toBe(0)
      expect(output).toContain("default=smtp smtp://****@relay.example:587?tls=required")
      expect(output).not.toMatch(/Secret|bob/)
    })
  }

  it("shows a webhook URL as scheme://host/**** with every query value hidden in check-config", async () => {
    const { code, output } = await runCli(["check-config", "--webhook", "https://hooks.example:8443/services/PathToken?token=QueryToken&v=2"])
    expect(code).toBe(0)
    expect(output).toContain("default=webhook https://hooks.example:8443/****?token=****&v=****")
    expect(output).not.toMatch(/PathToken|QueryToken/)
  })

  it("hides a header value that is not a string, naming the field", async () => {
    const file = configFile("header", `export default { transports: { api: { type: "webhook", url: "https://hooks.example/in", headers: { authorization: 1234567 } } } }\n`)
    const { code, output } = await runCli(["check-config", "--config", file])
    expect(code).toBe(2)
    expect(output).toContain(`Invalid config: transports.api.headers.authorization: expected a string, got "(hidden)"`)
    expect(output).not.toContain("1234567")
  })

  it("hides a token pasted where a URL belongs, and a webhook secret of the wrong type", async () => {
    const pasted = await runCli(["check-config", "--config", configFile("pasted", `export default { webhook: "whsec_PastedToken" }\n`)])
    expect(pasted.code).toBe(2)
    expect(pasted.output).toContain(`Invalid config: webhook: expected an http:// or https:// URL, got "(hidden: not a URL)"`)
    expect(pasted.output).not.toContain("PastedToken")
    const typed = await runCli(["check-config", "--config", configFile("typed", `export default { transports: { api: { type: "webhook", url: "https://hooks.example/in", secret: 987654321 } } }\n`)])
    expect(typed.code).toBe(2)
    expect(typed.output).toContain("transports.api.secret")
    expect(typed.output).not.toContain("987654321")
  })

  it("keeps webhook tokens out of the serve start-up line and out of the delivery failure logged for an unreachable webhook", async () => {
    // Port 9 on loopback: nothing listens, so delivery fails and the failure is logged.
    const cli = await spawnCli("bun", [
      "serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8",
      "--webhook", "http://127.0.0.1:9/services/PathToken?token=QueryToken"
    ])
    try {
      const [line, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+).*/, 30_000)
      expect(line).toContain("default=webhook http://127.0.0.1:9/****?token=****")
      const c = await connect(Number(port))
      try {
        await c.read()
        await c.command("EHLO client.test")
        expect(await c.command("MAIL FROM:<a@example.com>")).toBe("250 2.1.0 Ok")
        expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
        expect(await c.command("DATA")).toMatch(/^354 /)
        expect(await c.command("Subject: t\r\n\r\nx\r\n.")).toMatch(/^451 /)
      } finally {
        c.close()
      }
      await cli.waitForLog(/delivery via default \(http:\/\/127\.0\.0\.1:9\) failed: .*/, 10_000)
      expect(cli.output()).toContain("POST http://127.0.0.1:9/****?token=****")
      expect(cli.output()).not.toMatch(/PathToken|QueryToken/)
    } finally {
      await cli.kill()
    }
  })
})
