/**
 * Postfix's `smtp-sink` as a real upstream on a free loopback port: started, waited for, its
 * delivered messages read back from its dump directory, its session and message counters read
 * from `-c`, and stopped by its PID.
 *
 * @example
 * const sink = await startSink({ reject: { hard: ["RCPT"] } })
 * try {
 *   // ... relay to 127.0.0.1:sink.port ...
 *   expect(sink.messages()).toHaveLength(1)
 * } finally {
 *   await sink.stop()
 * }
 */
import { Stream } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Notes from "../../src/pipeline/Notes.ts"
import type { Mailbox, MailParams, RcptParams } from "../../src/protocol/Envelope.ts"
import type { OutgoingMessage } from "../../src/transport/Transport.ts"
import { listeningPort, waitForPort } from "./process.ts"

export interface SinkOptions {
  /** Listen on this loopback port (e.g. one a transport already names while the sink was down); a free one by default. */
  readonly port?: number
  /** Commands answered 4xx (`-r`) or 5xx (`-f`): "MAIL", "RCPT", "DATA", "." ... (both imply no PIPELINING). */
  readonly reject?: { readonly soft?: ReadonlyArray<string>; readonly hard?: ReadonlyArray<string> }
  /** Commands after which the sink drops the connection without a reply (`-q`). */
  readonly disconnect?: ReadonlyArray<string>
  /** Do not announce PIPELINING (`-p`), 8BITMIME (`-8`), DSN (`-N`). */
  readonly noPipelining?: boolean
  readonly no8BitMime?: boolean
  readonly noDsn?: boolean
  /** Speak LMTP (`-L`). */
  readonly lmtp?: boolean
  /** Seconds to wait before answering DATA (`-w`). */
  readonly dataDelay?: number
}

export interface Counters {
  readonly sessions: number
  readonly quits: number
  readonly messages: number
}

export interface Sink {
  readonly port: number
  readonly pid: number
  /** Every message dumped so far, oldest first: smtp-sink's X-* lines, a Received field, then the message (LF line endings). */
  readonly messages: () => ReadonlyArray<string>
  /** The same dumps as bytes, exactly as written (for byte-exact comparisons of 8-bit content). */
  readonly files: () => ReadonlyArray<Buffer>
  /** The latest `-c` counters (updated when a session ends, on QUIT and on "."). */
  readonly counters: () => Counters
  /** Resolves once `predicate(counters)` holds; rejects after `timeoutMs`. */
  readonly waitFor: (predicate: (c: Counters) => boolean, timeoutMs?: number) => Promise<Counters>
  readonly stop: () => Promise<void>
}

export const startSink = async (options: SinkOptions = {}): Promise<Sink> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sb-sink-"))
  // smtp-sink drops privileges to `nobody` when started as root, and must still write here.
  fs.chmodSync(dir, 0o777)
  // Port 0 unless the caller names one (a sink restarted where a transport already points):
  // the kernel picks the port and it is read back, with no probe-then-bind race.
  const wanted = options.port ?? 0
  const args: Array<string> = []
  if (process.getuid?.() === 0) args.push("-u", "nobody")
  args.push("-c", "-d", path.join(dir, "%Y%m%d%H%M%S."))
  if (options.reject?.soft !== undefined) args.push("-r", options.reject.soft.join(","))
  if (options.reject?.hard !== undefined) args.push("-f", options.reject.hard.join(","))
  if (options.disconnect !== undefined) args.push("-q", options.disconnect.join(","))
  if (options.noPipelining === true) args.push("-p")
  if (options.no8BitMime === true) args.push("-8")
  if (options.noDsn === true) args.push("-N")
  if (options.lmtp === true) args.push("-L")
  if (options.dataDelay !== undefined) args.push("-w", String(options.dataDelay))
  args.push(`127.0.0.1:${wanted}`, "16")
  const child = spawn("/usr/sbin/smtp-sink", args, { stdio: ["ignore", "pipe", "pipe"] })
  const pid = child.pid
  if (pid === undefined) throw new Error("cannot start /usr/sbin/smtp-sink")
  let counters: Counters = { sessions: 0, quits: 0, messages: 0 }
  let base = 0
  const listeners = new Set<() => void>()
  child.stdout.setEncoding("utf8").on("data", (text: string) => {
    for (const m of text.matchAll(/sess=(\d+) quit=(\d+) mesg=(\d+)/g)) {
      counters = { sessions: Number(m[1]) - base, quits: Number(m[2]), messages: Number(m[3]) }
    }
    for (const l of [...listeners]) l()
  })
  child.stderr.resume()
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()))
  // The readiness probe is a session too: wait until the sink counted it, then leave it out.
  const probed = new Promise<void>((resolve) => {
    const check = () => {
      if (counters.sessions < 1) return
      listeners.delete(check)
      resolve()
    }
    listeners.add(check)
  })
  let port = wanted
  try {
    if (port === 0) port = await listeningPort(pid, "smtp-sink")
    await waitForPort(port, "no smtp-sink")
    await Promise.race([probed, new Promise((_, reject) => setTimeout(() => reject(new Error("smtp-sink did not count its probe")), 5_000))])
  } catch (error) {
    process.kill(pid, "SIGKILL")
    throw error
  }
  base = 1
  counters = { ...counters, sessions: counters.sessions - base }
  return {
    port,
    pid,
    messages: () =>
      fs.readdirSync(dir).sort().map((f) => fs.readFileSync(path.join(dir, f), "utf8")),
    files: () => fs.readdirSync(dir).sort().map((f) => fs.readFileSync(path.join(dir, f))),
    counters: () => counters,
    waitFor: (predicate, timeoutMs = 5_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (!predicate(counters)) return
          clearTimeout(timer)
          listeners.delete(check)
          resolve(counters)
        }
        const timer = setTimeout(() => {
          listeners.delete(check)
          reject(new Error(`smtp-sink counters stayed at ${JSON.stringify(counters)}`))
        }, timeoutMs)
        listeners.add(check)
        check()
      }),
    stop: async () => {
      try {
        process.kill(pid, "SIGTERM")
      } catch {
        // Already gone.
      }
      const timer = setTimeout(() => {
        try {
          process.kill(pid, "SIGKILL")
        } catch {
          // Already gone.
        }
      }, 2_000)
      await exited
      clearTimeout(timer)
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

/** The message part of a dump: what follows smtp-sink's own header lines and its Received field. */
export const dumpedMessage = (dump: string): string =>
  dump.replace(/^(?:X-[A-Za-z-]+: .*\n)*Received: .*\n(?:[ \t].*\n)*/, "")

/** The `X-Mail-Args` and `X-Rcpt-Args` lines of a dump: the envelope as the sink received it. */
export const dumpedEnvelope = (dump: string): { readonly mail: string; readonly rcpts: ReadonlyArray<string> } => ({
  mail: /^X-Mail-Args: (.*)$/m.exec(dump)?.[1] ?? "",
  rcpts: [...dump.matchAll(/^X-Rcpt-Args: (.*)$/gm)].map((m) => m[1]!)
})

/** An `OutgoingMessage` for relay tests: addresses as strings, content as the chunks given. */
export const outgoing = (
  chunks: ReadonlyArray<string>,
  options: {
    readonly from?: string | null
    readonly to?: ReadonlyArray<string>
    readonly id?: string
    readonly mailParams?: Omit<MailParams, "raw">
    readonly rcptParams?: Omit<RcptParams, "raw">
  } = {}
): OutgoingMessage => {
  const mailbox = (address: string): Mailbox => {
    const at = address.lastIndexOf("@")
    return { local: address.slice(0, at), domain: address.slice(at + 1), address }
  }
  const bytes = chunks.map((c) => new TextEncoder().encode(c))
  return {
    id: options.id ?? "T1",
    envelope: {
      mailFrom: options.from === null ? null : mailbox(options.from ?? "alice@example.org"),
      mailParams: { raw: {}, ...options.mailParams },
      recipients: (options.to ?? ["bob@example.net"]).map((a) => ({ mailbox: mailbox(a), params: { raw: {}, ...options.rcptParams } }))
    },
    session: {
      id: "S1", remoteAddress: "127.0.0.1", remotePort: 40000, localAddress: "127.0.0.1", localPort: 2525,
      hostname: "bridge.test", tls: undefined, helo: undefined, user: undefined, authMechanism: undefined,
      notes: Notes.make()
    },
    size: bytes.reduce((n, b) => n + b.byteLength, 0),
    content: () => Stream.fromIterable(bytes)
  }
}
