/**
 * Network fuzzing against the real CLI: grammar-aware sessions (commands, pipelined
 * transactions, DATA and BDAT with smuggling spellings, 8-bit and invalid UTF-8 headers, AUTH,
 * overlong lines, junk), from a trusted address and from a stranger's, with these oracles:
 * the process stays alive; every reply is well-formed and arrives in time; every message
 * answered 250 is delivered exactly once, byte-exact after the trace headers the bridge adds;
 * no delivered file holds a bare CR or LF; a stranger never gets a recipient accepted nor a
 * message delivered; memory and file descriptors stay bounded.
 */
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { hashPassword } from "../../plugins/auth-htpasswd/index.ts"
import { type Runtime, spawnCli } from "../support/runtimes.ts"
import * as Client from "./Client.ts"
import * as Random from "./Random.ts"
import { referenceBdat, referenceData } from "../support/dataReference.ts"

export interface Options {
  readonly runtime: Runtime
  readonly seconds: number
  readonly concurrency: number
  readonly seed: number
  readonly replyTimeoutMs: number
}

export interface Report {
  readonly sessions: number
  readonly replies: number
  readonly accepted: number
  readonly violations: ReadonlyArray<string>
  readonly peakRssMiB: number
  readonly baseRssMiB: number
}

const TRUSTED = "127.0.0.1"
const STRANGER = "127.0.0.66"
const PASSWORD = "fuzz-Secret-1!"

const b64 = (s: string) => Buffer.from(s, "latin1").toString("base64")

/** A message: headers with the token first, random 8-bit bytes, dots and line-ending spellings. */
const message = (r: Random.Random, token: string): string => {
  const headerPieces = ["Subject: ", "From: <alice@example.com>", "X-8bit: \u00e9\u00c0\u00ae\u00ff", "Received: forged", "\r\n ", "=?utf-8?q?x?="]
  const bodyPieces = ["\r\n", ".", "..", "\r\n.\r", "\n.\n", "\r\n.\n", "line", "\r\n\r\n", "\u00e9", "\r"]
  const headers = `X-Fuzz-Id: ${token}\r\n` + Array.from({ length: r.int(4) }, () => `X-H${r.int(9)}: ${Random.latin1(r, headerPieces, r.int(5)).replace(/[\r\n]/g, "")}\r\n`).join("")
  return headers + "\r\n" + Random.latin1(r, bodyPieces, r.int(30))
}

/** What a Maildir file must hold from the token's header on. */
interface Expected {
  readonly token: string
  readonly bytes: string
  readonly stranger: boolean
}

const junkPieces = ["NOOP", "HELO", "EHLO x", "MAIL FROM:<a@b>", "RCPT TO:<c@d>", "VRFY", "HELP", " ", "\t", ":", "<", ">", "@", "\u00e9", "\u0000", "SIZE=", "=", "+"]

interface State {
  readonly r: Random.Random
  readonly s: Client.Session
  /** From the untrusted address and not (yet) authenticated: must never get mail through. */
  stranger: boolean
  readonly timeout: number
  replies: number
  readonly accepted: Array<Expected>
  readonly refused: Array<string>
  readonly violations: Array<string>
}

/** Sends `text` (split at random points) and reads `count` replies; false once the session closed. */
const exchange = async (st: State, text: string | Uint8Array, count: number): Promise<Array<string> | undefined> => {
  const bytes = typeof text === "string" ? Buffer.from(text, "latin1") : text
  for (const piece of Random.chunks(st.r, bytes)) await st.s.write(piece)
  const replies: Array<string> = []
  for (let i = 0; i < count; i++) {
    const reply = await st.s.reply(st.timeout)
    if (reply === "closed") return undefined
    st.replies++
    replies.push(reply)
    if (reply.startsWith("421")) return undefined
  }
  return replies
}

const transaction = async (st: State, seq: number): Promise<boolean> => {
  const { r } = st
  const token = `${r.seed.toString(36)}x${seq.toString(36)}x${r.int(1e9).toString(36)}`
  const rcpts = 1 + r.int(3)
  const mail = `MAIL FROM:<alice@example.com>${r.pick(["", " BODY=8BITMIME", " SIZE=1000", " SMTPUTF8", " BODY=BINARYMIME"])}\r\n`
  const rcptLines = Array.from({ length: rcpts }, (_, i) => `RCPT TO:<r${i}@example.net>\r\n`).join("")
  const useBdat = r.chance(0.3)
  const content = message(r, token)
  if (!useBdat) {
    // Dot-stuffed as a client must (at CRLF line starts only); the bare-LF spellings stay content.
    const data = content.split("\r\n").map((line) => (line.startsWith(".") ? `.${line}` : line)).join("\r\n") + "\r\n.\r\n"
    const replies = await exchange(st, mail + rcptLines + "DATA\r\n", 2 + rcpts)
    if (replies === undefined) return false
    if (st.stranger && replies.some((x) => x.startsWith("250 2.1.5"))) st.violations.push(`a stranger's RCPT was accepted: ${replies.join(" | ")}`)
    if (!replies[replies.length - 1]!.startsWith("354")) return true
    const end = await exchange(st, data, 1)
    if (end === undefined) return false
    const expected = referenceData(data)!
    if (end[0]!.startsWith("250")) st.accepted.push({ token, bytes: expected.output, stranger: st.stranger })
    else st.refused.push(token)
    return true
  }
  const replies = await exchange(st, mail + rcptLines, 1 + rcpts)
  if (replies === undefined) return false
  if (st.stranger && replies.some((x) => x.startsWith("250 2.1.5"))) st.violations.push(`a stranger's RCPT was accepted: ${replies.join(" | ")}`)
  const body = Buffer.from(content, "latin1")
  const cut = r.int(body.length + 1)
  const chunks = [body.subarray(0, cut), body.subarray(cut)]
  let last: Array<string> | undefined
  for (let i = 0; i < chunks.length; i++) {
    const chunk = chunks[i]!
    last = await exchange(st, Buffer.concat([Buffer.from(`BDAT ${chunk.length}${i === chunks.length - 1 ? " LAST" : ""}\r\n`), chunk]), 1)
    if (last === undefined) return false
  }
  if (last![0]!.startsWith("250 2.0.0")) st.accepted.push({ token, bytes: referenceBdat(content), stranger: st.stranger })
  else st.refused.push(token)
  return true
}

const session = async (port: number, r: Random.Random, timeout: number, seq: number, out: Pick<State, "accepted" | "refused" | "violations"> & { replies: number }) => {
  const stranger = r.chance(0.2)
  const s = await Client.open(port, stranger ? STRANGER : TRUSTED)
  const st: State = { r, s, stranger, timeout, replies: 0, accepted: out.accepted, refused: out.refused, violations: out.violations }
  try {
    const greeting = await s.reply(timeout)
    if (greeting === "closed" || !greeting.startsWith("220")) return
    let alive = (await exchange(st, `EHLO ${r.chance(0.8) ? "client.test" : Random.latin1(r, junkPieces, r.int(6)).replace(/[\r\n]/g, "")}\r\n`, 1)) !== undefined
    for (let step = 0; alive && step < 1 + r.int(10); step++) {
      const roll = r.int(10)
      if (roll < 4) alive = await transaction(st, seq * 100 + step)
      else if (roll < 6) {
        // Junk and near-miss commands, never a verb that switches modes (DATA, BDAT, AUTH, STARTTLS).
        const line = Random.latin1(r, junkPieces, 1 + r.int(8)).replace(/[\r\n]/g, "")
        const verb = line.trimStart().slice(0, 8).toUpperCase()
        if (/^(DATA|BDAT|AUTH|STARTTLS|QUIT)/.test(verb)) continue
        alive = (await exchange(st, `${line}\r\n`, 1)) !== undefined
      } else if (roll < 7) {
        alive = (await exchange(st, `NOOP ${"A ".repeat(r.int(3000))}x\r\n`, 1)) !== undefined
      } else if (roll < 8) {
        alive = (await exchange(st, `${"X".repeat(600 + r.int(6000))}\r\n`, 1)) !== undefined
      } else if (roll < 9) {
        const good = r.chance(0.7)
        const response = r.chance(0.1) ? "A".repeat(4095) : b64(`\0alice@example.com\0${good ? PASSWORD : "wrong"}`)
        const replies = await exchange(st, `AUTH PLAIN\r\n`, 1)
        if (replies === undefined) alive = false
        else if (replies[0]!.startsWith("334")) {
          const result = await exchange(st, `${response}\r\n`, 1)
          alive = result !== undefined
          if (result?.[0]?.startsWith("235") === true) st.stranger = false
        }
      } else {
        alive = (await exchange(st, r.pick(["RSET\r\n", "NOOP\r\n", "HELP\r\n", "VRFY x\r\n"]), 1)) !== undefined
      }
    }
    if (alive) await exchange(st, "QUIT\r\n", 1)
  } catch (error) {
    if (error instanceof Client.Violation) out.violations.push(`${stranger ? "untrusted" : "trusted"} session ${seq} (seed ${r.seed}): ${error.message}`)
    else throw error
  } finally {
    out.replies += st.replies
    s.close()
  }
}

const rssMiB = (pid: number): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))
  return m === null ? 0 : Number(m[1]) / 1024
}
const fds = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length

/** Each delivered file: the trace headers the bridge added, then the client's bytes from X-Fuzz-Id on. */
const checkDeliveries = (maildir: string, accepted: ReadonlyArray<Expected>, refused: ReadonlyArray<string>, violations: Array<string>) => {
  const files = fs.readdirSync(path.join(maildir, "new")).map((f) => fs.readFileSync(path.join(maildir, "new", f)).toString("latin1"))
  const byToken = new Map<string, Array<string>>()
  for (const file of files) {
    if (/\r(?!\n)|(?<!\r)\n/.test(file)) violations.push(`a delivered file holds a bare CR or LF: ${JSON.stringify(file.slice(0, 200))}`)
    const at = file.search(/^X-Fuzz-Id: /m)
    if (at === -1) {
      violations.push(`a delivered file without its token: ${JSON.stringify(file.slice(0, 200))}`)
      continue
    }
    const trace = file.slice(0, at)
    if (!/^(?:(?:Return-Path|Delivered-To|Received):[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)*$/.test(trace)) {
      violations.push(`a delivered file starts with more than trace headers: ${JSON.stringify(trace.slice(0, 300))}`)
    }
    const token = /^X-Fuzz-Id: (\S+)/m.exec(file.slice(at))![1]!
    byToken.set(token, [...(byToken.get(token) ?? []), file.slice(at)])
  }
  for (const expected of accepted) {
    const got = byToken.get(expected.token) ?? []
    if (expected.stranger) violations.push(`a stranger's message was accepted (${expected.token})`)
    if (got.length !== 1) violations.push(`message ${expected.token} answered 250 was delivered ${got.length} times`)
    else if (got[0] !== expected.bytes) {
      const i = [...expected.bytes].findIndex((c, k) => got[0]![k] !== c)
      violations.push(`message ${expected.token} altered at byte ${i}: sent ${JSON.stringify(expected.bytes.slice(Math.max(0, i - 20), i + 40))}, delivered ${JSON.stringify(got[0]!.slice(Math.max(0, i - 20), i + 40))}`)
    }
  }
  for (const token of refused) if (byToken.has(token)) violations.push(`message ${token} was refused but delivered`)
}

export const run = async (options: Options, progress: (line: string) => void): Promise<Report> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-fuzz-"))
  const maildir = path.join(dir, "mail")
  const users = path.join(dir, "users.htpasswd")
  fs.writeFileSync(users, `alice@example.com:${await hashPassword(PASSWORD, 4)}\n`)
  const cli = await spawnCli(options.runtime, [
    "serve", "--listen", "127.0.0.1:0", "--hostname", "fuzz.test", "--trust", `${TRUSTED}/32`, "--users", users,
    "--allow-insecure-auth", "--maildir", maildir
  ])
  const violations: Array<string> = []
  const out = { accepted: [] as Array<Expected>, refused: [] as Array<string>, violations, replies: 0 }
  let sessions = 0
  try {
    const port = Number((await cli.waitForLog(/listening on 127\.0\.0\.1:(\d+)/, 60_000))[1])
    const baseRss = rssMiB(cli.pid)
    const baseFds = fds(cli.pid)
    let peakRss = baseRss
    const deadline = Date.now() + options.seconds * 1000
    let nextReport = Date.now() + 30_000
    let seq = 0
    const worker = async (w: number) => {
      while (Date.now() < deadline && violations.length < 20) {
        const r = Random.make((options.seed + seq * 7919 + w) >>> 0)
        await session(port, r, options.replyTimeoutMs, seq++, out)
        sessions++
      }
    }
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, rssMiB(cli.pid))
      if (Date.now() > nextReport) {
        nextReport += 30_000
        progress(`  ${sessions} sessions, ${out.replies} replies, ${out.accepted.length} messages accepted, RSS ${rssMiB(cli.pid).toFixed(0)} MiB, ${fds(cli.pid)} fds`)
      }
    }, 500)
    await Promise.all(Array.from({ length: options.concurrency }, (_, w) => worker(w)))
    clearInterval(sampler)
    // Closed sessions linger up to 2 s (reading what a client still sends): then every fd is back.
    const settled = Date.now() + 10_000
    while (fds(cli.pid) > baseFds + 2 && Date.now() < settled) await new Promise((resolve) => setTimeout(resolve, 200))
    if (fds(cli.pid) > baseFds + 2) violations.push(`file descriptors leak: ${baseFds} at start, ${fds(cli.pid)} after every session closed`)
    if (peakRss > baseRss + 256) violations.push(`memory grew from ${baseRss.toFixed(0)} to ${peakRss.toFixed(0)} MiB`)
    const exit = await Promise.race([cli.exited, new Promise((resolve) => setTimeout(() => resolve(undefined), 0))])
    if (exit !== undefined) violations.push(`the bridge exited: ${JSON.stringify(exit)}\n${cli.output().slice(-2000)}`)
    checkDeliveries(maildir, out.accepted, out.refused, violations)
    return { sessions, replies: out.replies, accepted: out.accepted.length, violations, peakRssMiB: peakRss, baseRssMiB: baseRss }
  } finally {
    await cli.kill()
    fs.rmSync(dir, { recursive: true, force: true })
  }
}
