/**
 * The spool's 250 is a promise that the message survives a power loss (DESIGN.md section 4), and
 * a crash test cannot see a missing fsync: the page cache survives `kill -9`. So the bridge runs
 * under strace, and the order of its system calls is the assertion: for the message file and for
 * the state file (the commit point), fsync of the file in tmp/, then its rename into the spool,
 * then fsync of the spool directory, and only then the write of the 250 to the client.
 *
 * C: one message through the CLI with `--spool` and the upstream down
 * S: 250 2.0.0 Ok: queued as ID
 * strace: fsync(tmp/ID.eml.*) < rename(-> ID.eml) < fsync(spool/) < fsync(tmp/ID.json.*) <
 *         rename(-> ID.json) < fsync(spool/) < write("250 2.0.0 Ok: queued as ID")
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import { connect } from "../support/SmtpClient.ts"
import { freePort, type Runtime, spawnCli } from "../support/runtimes.ts"
import { installed, needTool } from "../support/tools.ts"

const hasStrace = needTool("strace", installed("/usr/bin/strace"))

interface Call {
  readonly name: string
  /** The whole call as strace printed it, with `-y` paths for file descriptors. */
  readonly text: string
  /** Position of the line where the call returned: what happened before it is complete. */
  readonly done: number
  /** Position of the line where it started. */
  readonly start: number
}

// strace -f interleaves threads: a call may be split into "<unfinished ...>" and "<... resumed>".
const parse = (output: string): ReadonlyArray<Call> => {
  const calls: Array<Call> = []
  const open = new Map<string, { name: string; text: string; start: number }>()
  output.split("\n").forEach((raw, index) => {
    const line = raw.replace(/^\d+\s+/, "")
    const pid = /^(\d+)\s/.exec(raw)?.[1] ?? ""
    const unfinished = /^(\w+)\((.*) <unfinished \.\.\.>$/.exec(line)
    if (unfinished !== null) return void open.set(pid, { name: unfinished[1]!, text: line, start: index })
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(line)
    if (resumed !== null) {
      const begun = open.get(pid)
      open.delete(pid)
      if (begun !== undefined) calls.push({ name: begun.name, text: begun.text + resumed[2], done: index, start: begun.start })
      return
    }
    const whole = /^(\w+)\(/.exec(line)
    if (whole !== null) calls.push({ name: whole[1]!, text: line, done: index, start: index })
  })
  return calls
}

const succeeded = (call: Call) => / = 0$/.test(call.text) || / = \d+$/.test(call.text)

const submit = async (port: number): Promise<string> => {
  const c = await connect(port)
  try {
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.test")).toMatch(/^250/)
    expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("DATA")).toMatch(/^354/)
    c.send("From: alice@example.com\r\nTo: bob@example.net\r\nSubject: durable\r\n\r\nkeep me\r\n.\r\n")
    const reply = await c.read(30_000)
    await c.command("QUIT")
    return reply
  } finally {
    c.close()
  }
}

// strace does not take its tracee along when it is stopped: the bridge is found as strace's
// child (by PID, in /proc) and killed first.
const tracees = (stracePid: number): ReadonlyArray<number> => {
  try {
    return fs.readFileSync(`/proc/${stracePid}/task/${stracePid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

describe.each<Runtime>(["bun", "deno"])("spool durability under %s (strace)", (runtime) => {
  it.skipIf(!hasStrace)("fsyncs each file, renames it, fsyncs the directory, and only then answers 250", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), `sb-spool-durable-${runtime}-`))
    const spool = path.join(root, "spool")
    const trace = path.join(root, "strace.txt")
    const upstream = await freePort()
    const bridge = await spawnCli(runtime, [
      "serve", "--listen", "127.0.0.1:0", "--hostname", "durable.test", "--trust", "127.0.0.0/8",
      "--spool", spool, "--relay", `smtp://127.0.0.1:${upstream}`
    ], {
      prefix: [
        "strace", "-f", "-qq", "-y", "-s", "80", "-o", trace,
        "-e", "trace=fsync,fdatasync,rename,renameat,renameat2,write,writev,sendto,sendmsg", "--"
      ]
    })
    let reply = ""
    try {
      const [, port] = await bridge.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 60_000)
      reply = await submit(Number(port))
    } finally {
      for (const pid of tracees(bridge.pid)) process.kill(pid, "SIGKILL")
      await bridge.kill()
    }
    try {
      const match = /^250 2\.0\.0 Ok: queued as (\S+)$/.exec(reply)
      expect(match, reply).not.toBeNull()
      const id = match![1]!
      const calls = parse(fs.readFileSync(trace, "utf8"))
      const realSpool = fs.realpathSync(spool)
      const find = (what: string, test: (c: Call) => boolean): Call => {
        const call = calls.find((c) => test(c) && succeeded(c))
        if (call === undefined) throw new Error(`no ${what} in the trace:\n${calls.map((c) => c.text).join("\n").slice(-4000)}`)
        return call
      }
      const syncName = (c: Call) => c.name === "fsync" || c.name === "fdatasync"
      const step = (ext: string) => {
        const file = find(`fsync of tmp/${id}${ext}.*`, (c) => syncName(c) && c.text.includes(`${realSpool}/tmp/${id}${ext}.`))
        const rename = find(`rename into ${id}${ext}`, (c) => c.name.startsWith("rename") && c.text.includes(`${realSpool}/${id}${ext}"`))
        const dir = find(`fsync of ${realSpool} after ${id}${ext}`, (c) => syncName(c) && c.text.includes(`<${realSpool}>`) && c.start > rename.done)
        return { file, rename, dir }
      }
      const message = step(".eml")
      const record = step(".json")
      const answer = find("the 250 to the client", (c) => !c.name.startsWith("rename") && !syncName(c) && c.text.includes(`250 2.0.0 Ok: queued as ${id}`))
      const order = [message.file, message.rename, message.dir, record.file, record.rename, record.dir]
      for (let i = 1; i < order.length; i++) expect(order[i]!.start, `${order[i - 1]!.text}\nbefore\n${order[i]!.text}`).toBeGreaterThan(order[i - 1]!.done)
      expect(answer.start, `${record.dir.text}\nbefore\n${answer.text}`).toBeGreaterThan(record.dir.done)
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  }, 120_000)
})
