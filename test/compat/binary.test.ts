/**
 * Single executables: `bun build --compile` (the `build:bun` script) makes one file that serves
 * and delivers without the sources or node_modules beside it. `deno compile` (`build:deno`) is not
 * tested: it downloads Deno's `denort` base binary at build time, which a test may not do (see the
 * README's Development section).
 */
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { run } from "../support/exec.ts"
import { bunBinary, projectRoot } from "../support/runtimes.ts"
import { type Client, connect } from "../support/SmtpClient.ts"

/**
 * Starts the binary from `dir` (an empty directory by default), sends one message, stops it with
 * SIGTERM. `beforeData` runs on the session after a first accepted RCPT.
 */
const deliverThrough = async (
  binary: string,
  options: { readonly dir?: string; readonly args?: ReadonlyArray<string>; readonly beforeData?: (c: Client) => Promise<void> } = {}
) => {
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "sb-binary-run-"))
  const maildir = path.join(dir, "mail")
  const args = ["serve", "--listen", "127.0.0.1:0", "--hostname", "binary.test", "--maildir", maildir, "--trust", "127.0.0.1/32", ...(options.args ?? [])]
  const child = spawn(binary, args, {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout.setEncoding("utf8").on("data", (t: string) => (output += t))
  child.stderr.setEncoding("utf8").on("data", (t: string) => (output += t))
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)))
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setInterval(() => {
        const match = /listening on 127\.0\.0\.1:(\d+)/.exec(output)
        if (match !== null) {
          clearInterval(timer)
          resolve(Number(match[1]))
        }
      }, 50)
      setTimeout(() => {
        clearInterval(timer)
        reject(new Error(`the binary did not start:\n${output}`))
      }, 30_000)
    })
    const c = await connect(port)
    expect(await c.read()).toMatch(/^220 binary\.test /)
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    await options.beforeData?.(c)
    expect(await c.command("DATA")).toMatch(/^354 /)
    expect(await c.command("Subject: single binary\r\n\r\nDelivered by one file.\r\n.")).toMatch(/^250 2\.0\.0 Ok: queued as \w+$/)
    await c.command("QUIT")
    const files = fs.readdirSync(path.join(maildir, "new"))
    expect(files).toHaveLength(1)
    expect(fs.readFileSync(path.join(maildir, "new", files[0]!), "utf8")).toContain("Delivered by one file.")
    child.kill("SIGTERM")
    expect(await exited).toBe(0)
  } finally {
    if (child.exitCode === null) child.kill("SIGKILL")
  }
}

describe("single executables", () => {
  it("bun build --compile makes a binary that delivers a message into the Maildir", async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sb-binary-")), "smtp-bridge")
    const build = await run(await bunBinary(), ["build", "--compile", path.join(projectRoot, "src", "cli.ts"), "--outfile", out], {
      cwd: projectRoot,
      timeoutMs: 120_000
    })
    expect(build.code, build.stdout + build.stderr).toBe(0)
    try {
      await deliverThrough(out)
    } finally {
      fs.rmSync(path.dirname(out), { recursive: true, force: true })
    }
  }, 180_000)

  it("the Bun binary loads a config file that imports smtp-bridge and a custom plugin, which refuses RCPT with 550 5.1.2", async () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "sb-binary-")), "smtp-bridge")
    const build = await run(await bunBinary(), ["build", "--compile", path.join(projectRoot, "src", "cli.ts"), "--outfile", out], {
      cwd: projectRoot,
      timeoutMs: 120_000
    })
    expect(build.code, build.stdout + build.stderr).toBe(0)
    // The example config and plugin (they import "smtp-bridge" and "effect"), in a directory with no node_modules.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-binary-config-"))
    for (const file of ["smtp-bridge.config.ts", "no-example-dot-com.ts"]) {
      fs.copyFileSync(path.join(projectRoot, "docs", "examples", file), path.join(dir, file))
    }
    try {
      await deliverThrough(out, {
        dir,
        args: ["--config", "smtp-bridge.config.ts"],
        beforeData: async (c) => {
          expect(await c.command("RCPT TO:<carol@example.com>")).toBe("550 5.1.2 Domain example.com does not accept mail")
        }
      })
    } finally {
      fs.rmSync(path.dirname(out), { recursive: true, force: true })
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 180_000)
})
