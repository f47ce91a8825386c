// A user's plugin with an options schema (docs/plugins.md's greylist, verbatim) loaded from a
// config file through the real CLI: check-config reports its bad option in one line naming the
// plugin and the option, as it reports a built-in's; serve hands it the decoded options.
//
//   $ smtp-bridge check-config --config smtp-bridge.config.ts      (plugins: [greylist({ delay: "soon" })])
//   Invalid config: plugins[0] (greylist).delay: expected a duration like "30 seconds" ..., got "soon" (...)   exit 2
//   $ smtp-bridge serve --config smtp-bridge.config.ts             (plugins: [greylist({ delay: "1 second" })])
//   C: RCPT TO:<bob@example.test>
//   S: 450 4.7.1 Greylisted, try again in 1s
//   (a second later, the retry)
//   C: RCPT TO:<bob@example.test>
//   S: 250 2.1.5 Ok
import * as fs from "node:fs"
import * as path from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { connect } from "../support/SmtpClient.ts"
import { projectRoot, runCli, type Runtime, spawnCli } from "../support/runtimes.ts"

const guide = fs.readFileSync(path.join(projectRoot, "docs", "plugins.md"), "utf8")
const block = (file: string): string => {
  const match = new RegExp(`^\`\`\`ts\\n// ${file.replace(/[.]/g, "\\.")}\\n([\\s\\S]*?)^\`\`\``, "m").exec(guide)
  if (match === null) throw new Error(`docs/plugins.md has no ${file} block`)
  return match[1]!
}

// Inside the project, so that "smtp-bridge" resolves as a dependency would (package.json
// self-reference on Bun, the deno.json import map on Deno).
fs.mkdirSync(path.join(projectRoot, ".tmp"), { recursive: true })
const dir = fs.mkdtempSync(path.join(projectRoot, ".tmp", "plugin-options-"))
fs.mkdirSync(path.join(dir, "my-plugins"))
fs.writeFileSync(path.join(dir, "my-plugins", "greylist.ts"), block("my-plugins/greylist.ts"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

const config = (name: string, body: string): string => {
  const file = path.join(dir, name)
  fs.writeFileSync(file, `import { defineConfig } from "smtp-bridge"\nimport { greylist } from "./my-plugins/greylist.ts"\n\nexport default defineConfig(${body})\n`)
  return file
}

/** check-config exits 2 with exactly one line on stderr, which is returned. */
const refused = async (file: string): Promise<string> => {
  const r = await runCli(["check-config", "--config", file])
  expect(r.stdout).not.toContain("config ok")
  expect(r.code, r.output).toBe(2)
  const lines = r.stderr.trimEnd().split("\n")
  expect(lines).toHaveLength(1)
  return lines[0]!
}

const oneLine = /^Invalid config: (\S+(?: \([\w-]+\)\S*)?): expected (.+), got (.+) \((.+)\)$/

describe("check-config reports a plugin's bad option in one line naming the field (real CLI under Bun)", () => {
  it("names plugins[0] (greylist).delay for a user plugin's bad duration, as docs/plugins.md shows", async () => {
    const file = config("bad-user.config.ts", `{ trust: ["127.0.0.1/32"], plugins: [greylist({ delay: "soon" })] }`)
    const line = await refused(file)
    expect(line).toBe(
      `Invalid config: plugins[0] (greylist).delay: expected a duration like "30 seconds" or "5 minutes", or milliseconds above 0, got "soon" (${file})`
    )
    // The guide quotes this very line (with the file's name as the reader would give it).
    expect(guide).toContain(line.replace(file, "smtp-bridge.config.ts"))
    expect(line).toMatch(oneLine)
  })

  it("names the plugin's option for a missing one and a misspelt one", async () => {
    const missing = await refused(config("missing.config.ts", `{ plugins: [greylist({} as { delay: string })] }`))
    expect(missing).toMatch(/^Invalid config: plugins\[0\] \(greylist\)\.delay: expected a duration like .*, got nothing \(/)
    const misspelt = await refused(config("misspelt.config.ts", `{ plugins: [greylist({ delay: "1 minute", maxEntires: 5 } as { delay: string })] }`))
    expect(misspelt).toMatch(/^Invalid config: plugins\[0\] \(greylist\)\.maxEntires: unknown option, expected one of delay, maxEntries \(/)
  })

  it("names rateLimit.perUser for a built-in's bad rate, in the same form", async () => {
    const file = config("bad-builtin.config.ts", `{ trust: ["127.0.0.1/32"], rateLimit: { perUser: "100/week" } }`)
    const line = await refused(file)
    expect(line).toMatch(/^Invalid config: rateLimit\.perUser: expected a rate like "100\/hour" .*invalid rate "100\/week".*, got "100\/week" \(/)
    expect(line).toMatch(oneLine)
    expect(line.endsWith(`(${file})`)).toBe(true)
  })

  it("says config ok and lists the plugin for good options", async () => {
    const r = await runCli(["check-config", "--config", config("good.config.ts", `{ trust: ["127.0.0.1/32"], plugins: [greylist({ delay: "5 minutes" })] }`)])
    expect(r.code, r.output).toBe(0)
    expect(r.stdout).toMatch(/^config ok: .*plugins greylist;/)
  })
})

describe.each<Runtime>(["bun", "deno"])("serve hands a user plugin its decoded options (real CLI under %s)", (runtime) => {
  it("defers a new triplet with 450 4.7.1 for the configured delay, then accepts the retry with 250", async () => {
    const maildir = path.join(dir, `mail-${runtime}`)
    const file = config(`serve-${runtime}.config.ts`, `{ hostname: "mx.greylist.test", plugins: [greylist({ delay: "1 second" })] }`)
    const serve = await spawnCli(runtime, ["serve", "--config", file, "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--maildir", maildir])
    try {
      const started = await serve.waitForLog(/listening on 127\.0\.0\.1:(\d+).*$/m, 40_000)
      expect(started[0]).toMatch(/-> greylist\[rcptTo\] ->/)
      const c = await connect(Number(started[1]))
      expect(await c.read()).toBe("220 mx.greylist.test ESMTP smtp-bridge")
      expect(await c.command("EHLO client.test")).toMatch(/^250-mx\.greylist\.test /)
      expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.test>")).toBe("450 4.7.1 Greylisted, try again in 1s")
      await new Promise((resolve) => setTimeout(resolve, 1_100))
      expect(await c.command("RCPT TO:<bob@example.test>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      expect(await c.command("Subject: greylisted\r\n\r\nHello Bob.\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as \S+$/)
      expect(await c.command("QUIT")).toMatch(/^221 /)
      c.close()
      expect(fs.readdirSync(path.join(maildir, "new"))).toHaveLength(1)
    } finally {
      await serve.kill()
    }
  }, 60_000)
})
