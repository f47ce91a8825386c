/**
 * The spool's promise under a crash: every message answered 250 reaches the upstream after a
 * `kill -9` of the bridge and a restart on the same spool directory (at least once), and the
 * spool ends empty.
 *
 * C: N messages, each answered 250 while the upstream (Postfix's smtp-sink) is down
 * -- SIGKILL the bridge; start the sink; start the bridge again; `queue flush` --
 * every message is dumped by the sink at least once; no state file is left.
 */
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import * as Spool from "../../src/transport/Spool.ts"
import { connect } from "../support/SmtpClient.ts"
import { freePort, type Runtime, spawnCli } from "../support/runtimes.ts"

const messages = 5

/** smtp-sink on `port`, dumping each message into `dumps`; stopped by its PID. */
const startSink = async (port: number, dumps: string, dataDelay?: number) => {
  const args: Array<string> = []
  // smtp-sink drops privileges to `nobody` when started as root, and must still write the dumps.
  if (process.getuid?.() === 0) args.push("-u", "nobody")
  if (dataDelay !== undefined) args.push("-w", String(dataDelay))
  args.push("-c", "-d", path.join(dumps, "%Y%m%d%H%M%S."), `127.0.0.1:${port}`, "100")
  const child = spawn("/usr/sbin/smtp-sink", args, { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr.setEncoding("utf8").on("data", (t: string) => void (stderr += t))
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()))
  const pid = child.pid
  if (pid === undefined) throw new Error("cannot start /usr/sbin/smtp-sink")
  for (let i = 0; ; i++) {
    const up = await connect(port, { timeoutMs: 1_000 }).then((c) => (c.close(), true), () => false)
    if (up) break
    if (i > 100) throw new Error(`smtp-sink did not listen on ${port}: ${stderr}`)
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    stop: async () => {
      try {
        process.kill(pid, "SIGKILL")
      } catch {
        // Already gone.
      }
      await exited
    }
  }
}

const submit = async (port: number, i: number): Promise<string> => {
  const c = await connect(port)
  try {
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.test")).toMatch(/^250/)
    expect(await c.command("MAIL FROM:<alice@example.com>")).toMatch(/^250/)
    expect(await c.command(`RCPT TO:<bob${i}@example.net>`)).toMatch(/^250/)
    expect(await c.command("DATA")).toMatch(/^354/)
    c.send(`From: alice@example.com\r\nTo: bob${i}@example.net\r\nSubject: spool crash ${i}\r\n\r\nmessage ${i}\r\n.\r\n`)
    const reply = await c.read(30_000)
    await c.command("QUIT")
    return reply
  } finally {
    c.close()
  }
}

const until = async (check: () => boolean, timeoutMs: number, what: () => string) => {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what()}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

interface Scenario {
  /** smtp-sink answers DATA only after this many seconds (`-w`), so that deliveries are in flight at the kill. */
  readonly slowSink?: number
  /** Whether the sink is up before the kill; when not, it starts only for the restart. */
  readonly sinkUpFirst: boolean
}

/**
 * Submits `messages` messages (each must get 250), kills the bridge with SIGKILL, restarts it on
 * the same spool with the sink up, flushes the queue, and waits until the sink has every message
 * at least once and the spool is empty. Returns how many copies of each message the sink got.
 */
const crashAndRecover = async (runtime: Runtime, scenario: Scenario): Promise<ReadonlyArray<number>> => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `sb-spool-crash-${runtime}-`))
  const spool = path.join(root, "spool")
  // Its own directory: smtp-sink may run as `nobody`, which cannot enter the 0700 `root`.
  const dumps = fs.mkdtempSync(path.join(os.tmpdir(), "sb-spool-crash-dumps-"))
  fs.chmodSync(dumps, 0o777)
  const sinkPort = await freePort()
  const args = [
    "serve", "--listen", "127.0.0.1:0", "--hostname", "crash.test", "--trust", "127.0.0.0/8",
    "--spool", spool, "--relay", `smtp://127.0.0.1:${sinkPort}`
  ]
  let sink = scenario.sinkUpFirst ? await startSink(sinkPort, dumps, scenario.slowSink) : undefined
  try {
    const first = await spawnCli(runtime, args)
    try {
      const [, port] = await first.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
      for (let i = 1; i <= messages; i++) expect(await submit(Number(port), i)).toMatch(/^250 /)
      first.signal("SIGKILL")
      expect((await first.exited).signal).toBe("SIGKILL")
    } finally {
      await first.kill()
    }
    // Every 250 left a committed entry, except those whose delivery finished before the kill.
    const queued = await Effect.runPromise(Spool.list(spool))
    if (!scenario.sinkUpFirst) expect(queued).toHaveLength(messages)

    sink ??= await startSink(sinkPort, dumps, scenario.slowSink)
    const second = await spawnCli(runtime, args)
    try {
      await second.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 30_000)
      // What `smtp-bridge queue flush` does: attempts that failed before the kill put the next
      // retry minutes away.
      await Effect.runPromise(Spool.flush(spool))
      // smtp-sink deletes the dump of a transaction that never completed (the one the kill cut
      // off), so a file may vanish between listing and reading: it was no delivery.
      const dumped = () =>
        fs.readdirSync(dumps).flatMap((f) => {
          try {
            return [fs.readFileSync(path.join(dumps, f), "utf8")]
          } catch (error) {
            if ((error as { code?: unknown }).code === "ENOENT") return []
            throw error
          }
        })
      const copies = () =>
        Array.from({ length: messages }, (_, k) => dumped().filter((d) => d.includes(`Subject: spool crash ${k + 1}\n`)).length)
      const missing = () => copies().flatMap((n, k) => (n === 0 ? [k + 1] : []))
      await until(() => missing().length === 0, 30_000, () => `messages ${missing().join(", ")} at the sink:\n${second.output()}`)
      await until(
        () => fs.readdirSync(spool).filter((f) => f.endsWith(".json") || f.endsWith(".eml")).length === 0,
        10_000,
        () => `an empty spool, still ${fs.readdirSync(spool).join(", ")}`
      )
      return copies()
    } finally {
      await second.kill()
    }
  } finally {
    await sink?.stop()
    fs.rmSync(root, { recursive: true, force: true })
    fs.rmSync(dumps, { recursive: true, force: true })
  }
}

describe.each<Runtime>(["bun", "deno"])("spool crash under %s", (runtime) => {
  it("answers 250 with the upstream down, and after kill -9 and a restart delivers every message and empties the spool", async () => {
    const copies = await crashAndRecover(runtime, { sinkUpFirst: false })
    // Nothing reached the sink before the kill, so nothing can have been repeated.
    expect(copies).toEqual(Array.from({ length: messages }, () => 1))
  }, 120_000)

  it("delivers at least once when kill -9 lands while deliveries to the upstream are in flight", async () => {
    const copies = await crashAndRecover(runtime, { sinkUpFirst: true, slowSink: 1 })
    // A delivery the upstream finished but the spool had not yet recorded is repeated (at-least-once).
    for (const n of copies) expect(n).toBeGreaterThanOrEqual(1)
  }, 120_000)
})
