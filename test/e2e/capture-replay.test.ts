// Capture real sessions (swaks, Python smtplib) with `serve --capture`, then replay them through
// the real CLI: the same config shows no difference (exit 0); a config that refuses example.com
// shows exactly the RCPTs it now refuses and what follows from them (exit 1), delivering nothing.
//
//   $ smtp-bridge serve --config old.config.ts --capture DIR ...   (4 sessions: swaks, smtplib with AUTH, swaks with AUTH LOGIN,
//                                                                    STARTTLS then BDAT in two chunks)
//   $ smtp-bridge replay DIR --config old.config.ts                replayed 4 sessions: 0 changed, 4 unchanged     exit 0
//   $ smtp-bridge replay DIR --config new.config.ts --json         RCPT TO:<bob@example.com> 250 -> 550 5.1.2 ... exit 1
//
// The CLI runs under the runtime running this file: Bun in the Bun run of the suite, Deno in the Deno run.
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { run } from "../support/exec.ts"
import { testCertificate } from "../support/certs.ts"
import { until } from "../support/eventually.ts"
import { connect } from "../support/SmtpClient.ts"
import { currentRuntime, projectRoot, runCli, spawnCli } from "../support/runtimes.ts"

fs.mkdirSync(path.join(projectRoot, ".tmp"), { recursive: true })
const dir = fs.mkdtempSync(path.join(projectRoot, ".tmp", "capture-replay-"))
const captures = path.join(dir, "captures")
const maildir = path.join(dir, "mail")
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const config = (name: string, plugins: string): string => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, [
    `import { defineConfig } from "smtp-bridge"`,
    `import { noExampleDotCom } from "../../docs/examples/no-example-dot-com.ts"`,
    `export default defineConfig({ hostname: "mx.replay.test", trust: ["127.0.0.0/8"], maildir: ${JSON.stringify(maildir)},`,
    `  users: ${JSON.stringify(path.join(dir, "users"))}, allowInsecureAuth: true,`,
    `  tls: { cert: ${JSON.stringify(testCertificate().cert)}, key: ${JSON.stringify(testCertificate().key)} },`,
    `  senders: { alice: ["@example.org"] }, plugins: [${plugins}] })`,
    `void noExampleDotCom`
  ].join("\n"))
  return file
}

const files = (): Array<string> => (fs.existsSync(captures) ? fs.readdirSync(captures).filter((n) => n.endsWith(".json")).sort() : [])
const delivered = (): number => (fs.existsSync(path.join(maildir, "new")) ? fs.readdirSync(path.join(maildir, "new")).length : 0)

let oldConfig = ""
let newConfig = ""

beforeAll(async () => {
  const users = await run("htpasswd", ["-nbBC", "4", "alice", "s3cret-pass"])
  fs.writeFileSync(path.join(dir, "users"), users.stdout)
  oldConfig = config("old.config.ts", "")
  newConfig = config("new.config.ts", `noExampleDotCom({ domains: ["example.com"] })`)
  const cli = await spawnCli(currentRuntime, ["serve", "--config", oldConfig, "--listen", "127.0.0.1:0", "--capture", captures])
  try {
    const [, port] = await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
    const swaks = await run("swaks", ["--server", `127.0.0.1:${port}`, "--ehlo", "client.test", "--from", "a@example.org", "--to", "bob@example.com,carol@corp.test"])
    expect(swaks.code, swaks.stdout).toBe(0)
    const py = await run("python3", ["-c", [
      "import smtplib, sys",
      `s = smtplib.SMTP("127.0.0.1", ${port}); s.ehlo("py.test"); s.login("alice", "s3cret-pass")`,
      `s.sendmail("alice@example.org", ["dave@example.com"], "Subject: py\\r\\n\\r\\nhello\\r\\n.dot line\\r\\n"); s.quit()`
    ].join("\n")])
    expect(py.code, py.stderr).toBe(0)
    const login = await run("swaks", ["--server", `127.0.0.1:${port}`, "--ehlo", "login.test", "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "s3cret-pass", "--from", "alice@example.org", "--to", "erin@corp.test"])
    expect(login.code, login.stdout).toBe(0)
    // STARTTLS (the session starts over inside TLS), then a message in two BDAT chunks.
    const c = await connect(Number(port))
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO bdat.test")).toMatch(/STARTTLS/)
    expect(await c.command("STARTTLS")).toMatch(/^220 /)
    await c.startTls({ servername: "localhost" })
    expect(await c.command("EHLO bdat.test")).toMatch(/CHUNKING/)
    expect(await c.command("MAIL FROM:<a@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<frank@corp.test>")).toBe("250 2.1.5 Ok")
    c.send("BDAT 19\r\nSubject: chunks\r\n\r\n")
    expect(await c.read()).toMatch(/^250 /)
    // command() adds the CRLF: the chunk is "hello\r\n", 7 bytes.
    expect(await c.command("BDAT 7 LAST\r\nhello")).toMatch(/^250 2\.0\.0 Ok: queued as /)
    expect(await c.command("QUIT")).toMatch(/^221 /)
    await until("four capture files", () => files().length === 4)
  } finally {
    await cli.kill()
  }
}, 90_000)

describe(`capture and replay through the CLI (under ${currentRuntime}, the runtime running this test)`, () => {
  it("captures one file per session, with AUTH facts but never the password or a SASL response", () => {
    const texts = files().map((f) => fs.readFileSync(path.join(captures, f), "utf8"))
    for (const text of texts) {
      expect(text).not.toContain("s3cret-pass")
      expect(text).not.toContain(Buffer.from("s3cret-pass").toString("base64").slice(0, 12))
      expect(text).not.toContain(Buffer.from("\0alice\0s3cret-pass").toString("base64").slice(0, 12))
    }
    const parsed = texts.map((t) => JSON.parse(t))
    expect(parsed.every((p) => p.format === "smtp-bridge-capture" && p.version === 1)).toBe(true)
    const py = parsed.find((p) => p.exchanges.some((e: { input: string }) => e.input === "ehlo py.test"))
    expect(py.auth).toEqual([{ at: expect.any(Number), mechanism: "PLAIN", username: "alice", outcome: "success" }])
    expect(py.exchanges.map((e: { input: string }) => e.input)).toContain("AUTH PLAIN *")
    expect(Buffer.from(py.messages[0].data, "base64").toString()).toContain("\r\n.dot line\r\n")
    const login = parsed.find((p) => p.exchanges.some((e: { input: string }) => e.input === "EHLO login.test"))
    expect(login.exchanges.filter((e: { input: string }) => e.input === "*")).toHaveLength(2)
    const bdat = parsed.find((p) => p.exchanges.some((e: { input: string }) => e.input === "EHLO bdat.test"))
    expect(bdat.tls).toEqual([{ at: expect.any(Number), protocol: expect.stringMatching(/^TLSv1\.[23]$/), cipher: expect.any(String), mode: "starttls" }])
    expect(bdat.exchanges.map((e: { input: string }) => e.input)).toEqual([
      "(connect)", "EHLO bdat.test", "STARTTLS", "EHLO bdat.test", "MAIL FROM:<a@example.org>", "RCPT TO:<frank@corp.test>",
      "BDAT 19", "(message)", "BDAT 7 LAST", "(message)", "QUIT"
    ])
  })

  it("replays through the same config with no difference and exit 0", async () => {
    const r = await runCli(["replay", captures, "--config", oldConfig], currentRuntime)
    expect(r.code, r.output).toBe(0)
    expect(r.stdout.trim()).toBe("replayed 4 sessions: 0 changed, 4 unchanged")
  }, 40_000)

  it("shows exactly the RCPTs the new rule refuses, naming the plugin, exits 1 and delivers nothing", async () => {
    const before = delivered()
    const r = await runCli(["replay", captures, "--config", newConfig, "--json"], currentRuntime)
    expect(r.code, r.output).toBe(1)
    expect(r.stderr).toContain("replay: 2 of 4 sessions changed")
    const report = JSON.parse(r.stdout)
    const changes = report.sessions.flatMap((s: { differences: Array<Record<string, unknown>> }) =>
      s.differences.map((d) => [d.input, d.old, d.new, d.newBy])
    )
    expect(changes).toEqual([
      ["RCPT TO:<bob@example.com>", ["250 2.1.5 Ok"], ["550 5.1.2 Domain example.com does not accept mail"], "no-example-dot-com"],
      ["rcpt TO:<dave@example.com>", ["250 2.1.5 Ok"], ["550 5.1.2 Domain example.com does not accept mail"], "no-example-dot-com"],
      ["data", ["354 End data with <CR><LF>.<CR><LF>"], ["554 5.5.1 No valid recipients"], undefined],
      ["(message)", [expect.stringMatching(/^250 2\.0\.0 Ok: queued as /)], [], undefined]
    ])
    expect(delivered()).toBe(before)
  }, 40_000)
})
