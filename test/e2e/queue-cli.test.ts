// `smtp-bridge queue list | flush | remove ID` through the real CLI under Bun, on a spool that a
// real `serve` filled: one message whose relay (a closed port) could not be reached.
//
//   $ smtp-bridge serve --spool DIR --relay smtp://127.0.0.1:<closed>
//   C: MAIL FROM:<alice@example.com> / RCPT TO:<bob@example.net> / DATA
//   S: 250 2.0.0 Ok: queued as <ID>
//   $ smtp-bridge queue list --spool DIR     ->  <ID> ... from <alice@example.com> ...
//                                                 <bob@example.net> via default: pending  last: 451 4.4.1 ...
//   $ smtp-bridge queue flush --spool DIR    ->  1 message(s) due now
//   $ smtp-bridge queue remove ID --spool DIR ->  removed <ID>            (again: exit 1, no queued message <ID>)
//   $ smtp-bridge queue list --spool DIR     ->  queue empty
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type CliProcess, spawnCli, type SpawnOptions } from "../support/runtimes.ts"
import { connect } from "../support/SmtpClient.ts"

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `smtp-bridge <args>` under Bun to completion. */
const cli = async (args: ReadonlyArray<string>, options: SpawnOptions = {}): Promise<Ran> => {
  const p = await spawnCli("bun", args, options)
  const timer = setTimeout(() => void p.kill(), 20_000)
  try {
    const exit = await p.exited
    return { code: exit.code, stdout: p.stdout(), stderr: p.stderr() }
  } finally {
    clearTimeout(timer)
  }
}

describe("smtp-bridge queue, on a spool with one undeliverable message", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-queue-cli-"))
  let id = ""

  beforeAll(async () => {
    // Nothing listens on port 1 (tests only bind port 0, so no other test can take it).
    const closed = 1
    let serve: CliProcess | undefined
    try {
      serve = await spawnCli("bun", [
        "serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--spool", dir, "--relay", `smtp://127.0.0.1:${closed}`
      ])
      const port = Number((await serve.waitForLog(/listening on 127\.0\.0\.1:(\d+)/))[1])
      const c = await connect(port)
      expect(await c.read()).toMatch(/^220 /)
      expect(await c.command("EHLO client.example.test")).toMatch(/^250[ -]/)
      expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      const queued = (await c.command("Subject: queued\r\n\r\nHello Bob.\r\n.")).match(/^250 2\.0\.0 Ok: queued as (\S+)$/)
      expect(queued).not.toBeNull()
      id = queued![1]!
      c.close()
      // The first attempt meets the closed port; its reply is what `queue list` shows.
      await serve.waitForLog(new RegExp(`"message":"delivery via default [^\\n]*failed[^\\n]*"id":"${id}"`))
      expect(await serve.kill()).toEqual({ code: 0, signal: null })
    } finally {
      await serve?.kill()
    }
  }, 60_000)

  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it("queue list prints the id, the sender, and the recipient pending with the last 451 4.4.1 reply", async () => {
    const r = await cli(["queue", "list", "--spool", dir])
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split("\n")
    expect(lines[0]).toMatch(new RegExp(`^${id}  \\d+ bytes  from <alice@example\\.com>  queued \\S+  next \\S+  attempts 1$`))
    expect(lines[1]).toMatch(/^ {4}<bob@example\.net> via default: pending {2}last: 451 4\.4\.1 .*cannot connect to 127\.0\.0\.1:\d+/)
    expect(lines.at(-1)).toBe("1 message(s)")
  })

  it("queue flush prints \"1 message(s) due now\" and exits 0", async () => {
    const r = await cli(["queue", "flush", "--spool", dir])
    expect(r).toMatchObject({ code: 0, stdout: "1 message(s) due now\n" })
  })

  it("queue flush on a directory no bridge has spooled into prints \"0 message(s) due now\" and exits 0", async () => {
    const fresh = fs.mkdtempSync(path.join(os.tmpdir(), "sb-queue-fresh-"))
    try {
      expect(await cli(["queue", "flush", "--spool", fresh])).toMatchObject({ code: 0, stdout: "0 message(s) due now\n" })
    } finally {
      fs.rmSync(fresh, { recursive: true, force: true })
    }
  })

  it("queue remove ID prints \"removed ID\" and exits 0; a second remove exits 1 with \"no queued message ID\"", async () => {
    expect(await cli(["queue", "remove", id, "--spool", dir])).toMatchObject({ code: 0, stdout: `removed ${id}\n` })
    const again = await cli(["queue", "remove", id, "--spool", dir])
    expect(again.code).toBe(1)
    expect(again.stdout).toBe("")
    expect(again.stderr).toContain(`no queued message ${id}`)
  })

  it("queue list then prints \"queue empty\"", async () => {
    expect(await cli(["queue", "list", "--spool", dir])).toMatchObject({ code: 0, stdout: "queue empty\n" })
  })
})

describe("smtp-bridge queue without a spool", () => {
  it("queue list with neither --spool nor a config with spool exits non-zero with a one-line message", async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), "sb-queue-none-"))
    try {
      const r = await cli(["queue", "list"], { cwd: empty })
      expect(r.code).not.toBe(0)
      expect(r.code).not.toBeNull()
      expect(r.stdout).toBe("")
      expect(r.stderr.trimEnd().split("\n")).toEqual(["smtp-bridge: no spool configured: give --spool DIR or a config with spool"])
    } finally {
      fs.rmSync(empty, { recursive: true, force: true })
    }
  })
})
