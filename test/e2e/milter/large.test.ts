// A 100 MB message through a milter (the python3-milter test filter, which counts the body bytes
// it gets) with the real CLI under the runtime running the test: the body is streamed to the
// milter in 64 KB chunks from the spill file, so the bridge's peak memory stays within 32 MB of
// what the same message costs without a milter (the relay's own bound), far below the message's
// size. (With Stream.runForEachWhile, which kept every chunk until the end, it was +93 MB.)
//
//   $ smtp-bridge serve --milter inet:127.0.0.1:PORT --max-size 128MB ...
//   C: DATA <100 MB> .
//   S: 250 2.0.0 Ok: queued as ...      (the milter saw 100 MB of body; VmHWM within 32 MB of no milter)
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type RunningMilter, startEditorMilter } from "../../support/milter.ts"
import { currentRuntime, spawnCli } from "../../support/runtimes.ts"
import { connect } from "../../support/SmtpClient.ts"

const size = 100 * 1024 * 1024
const line = `${"x".repeat(1022)}\r\n`

const peakKb = (pid: number): number => Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1])

/** Serves, sends one 50 MB message, and gives the reply and the server's peak resident memory in MB. */
const run = async (extra: ReadonlyArray<string>, maildir: string) => {
  const cli = await spawnCli(currentRuntime, ["serve", "--listen", "127.0.0.1:0", "--trust", "127.0.0.0/8", "--max-size", "128MB", "--maildir", maildir, ...extra])
  try {
    const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000))[1])
    const c = await connect(port)
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    await c.command("DATA")
    c.send("Subject: large\r\n\r\n")
    const block = line.repeat(1024)
    for (let sent = 0; sent < size; sent += block.length) c.send(block)
    const reply = await c.command(".", 120_000)
    c.close()
    return { reply, peakMb: peakKb(cli.pid) / 1024 }
  } finally {
    await cli.kill()
  }
}

describe(`a 100 MB message through a milter (real CLI under ${currentRuntime})`, () => {
  let editor: RunningMilter & { readonly seen: () => ReadonlyArray<Record<string, unknown>> }
  let dir: string
  beforeAll(async () => {
    editor = await startEditorMilter()
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-milter-large-"))
  })
  afterAll(async () => {
    await editor?.stop()
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true })
  })

  it("streams the body to the milter: S: 250; peak memory within 32 MB of the same message without a milter", async () => {
    const without = await run([], path.join(dir, "plain"))
    const withMilter = await run(["--milter", `inet:127.0.0.1:${editor.port}`], path.join(dir, "milter"))
    expect(without.reply).toMatch(/^250 2\.0\.0 /)
    expect(withMilter.reply).toMatch(/^250 2\.0\.0 /)
    const seen = editor.seen().find((s) => s.subject === "large")!
    expect(seen.body).toBe(size)
    console.log(`peak RSS: ${without.peakMb.toFixed(0)} MB without a milter, ${withMilter.peakMb.toFixed(0)} MB with one`)
    expect(withMilter.peakMb - without.peakMb).toBeLessThan(32)
  }, 240_000)
})
