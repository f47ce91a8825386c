/**
 * Replays captured sessions (docs/capture-format.md) through another config without delivering
 * anything: each session runs in the test kit's in-memory interpreter (transports replaced by
 * in-memory ones), its inputs sent as captured, the clock set to the capture's time of each input,
 * and every reply compared with the captured one. AUTH is answered as it was captured (passwords
 * are never captured): the user it authenticated, or its failure. DNS is answered from the capture
 * where it was recorded (`ReplayDns.ts`); other lookups go to the config's resolver and are counted.
 */
import * as Clock from "effect/Clock"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import type { BridgeConfig } from "../config/Config.ts"
import type * as Resolve from "../config/Resolve.ts"
import { Dns } from "../dns/Dns.ts"
import * as Resolver from "../dns/Resolver.ts"
import type * as Pipeline from "../pipeline/Pipeline.ts"
import type { AuthContext } from "../pipeline/Plugin.ts"
import * as Verdict from "../pipeline/Verdict.ts"
import * as Reply from "../protocol/Reply.ts"
import type * as Capture from "../server/Capture.ts"
import * as Harness from "./Harness.ts"
import type * as Interpreter from "./Interpreter.ts"
import * as ReplayDns from "./ReplayDns.ts"

/** A reply that changed: the captured one, the replayed one, and who refused in each. */
export interface Difference {
  /** The index of the captured exchange. */
  readonly exchange: number
  readonly input: string
  readonly old: ReadonlyArray<string>
  readonly new: ReadonlyArray<string>
  readonly oldBy: string | undefined
  readonly newBy: string | undefined
}

export interface SessionReport {
  readonly file: string
  readonly session: string
  readonly client: string
  readonly differences: ReadonlyArray<Difference>
  /** Lookups the capture did not answer (the config's resolver did, with today's DNS), and their distinct `TYPE name`s. */
  readonly dns: { readonly notCaptured: number; readonly queries: ReadonlyArray<string> }
}

export interface Report {
  readonly sessions: ReadonlyArray<SessionReport>
  /** Files that are no capture of a version this replay reads. */
  readonly unreadable: ReadonlyArray<{ readonly file: string; readonly problem: string }>
  readonly changed: number
  /** Lookups, over all sessions, that the captures did not answer. */
  readonly dnsNotCaptured: number
}

/** Transaction ids differ on every run: compared as `<id>`. */
const normalize = (reply: string): string => reply.replace(/queued as [A-Za-z0-9._-]+/g, "queued as <id>")

const lines = (replies: ReadonlyArray<Reply.Reply>): Array<string> =>
  replies.map((r) => Reply.format(r).replace(/\r\n$/, "").split("\r\n").join("\n"))

/** A clock at the capture's time of the input being replayed. */
const fixedClock = (now: { ms: number }): Clock.Clock => ({
  [Clock.ClockTypeId]: Clock.ClockTypeId,
  unsafeCurrentTimeMillis: () => now.ms,
  unsafeCurrentTimeNanos: () => BigInt(now.ms) * 1_000_000n,
  currentTimeMillis: Effect.sync(() => now.ms),
  currentTimeNanos: Effect.sync(() => BigInt(now.ms) * 1_000_000n),
  sleep: (d: Duration.Duration) => Effect.sleep(d).pipe(Effect.withClock(Clock.make()))
})

/** Checks a parsed file is a capture this replay reads; gives the problem otherwise. */
export const problemOf = (file: unknown): string | undefined => {
  const f = file as Partial<Capture.CaptureFile> | null
  if (typeof f !== "object" || f === null || f.format !== "smtp-bridge-capture") return "not an smtp-bridge capture"
  if (f.version !== 1) return `capture format version ${String(f.version)}; this replay reads version 1`
  if (!Array.isArray(f.exchanges) || !Array.isArray(f.messages) || !Array.isArray(f.auth) || typeof f.client !== "object") return "a capture with missing fields"
  // An input is one line: a line break in one would replay as several commands nobody sent.
  const bad = f.exchanges.findIndex((e) => typeof e?.input !== "string" || /[\r\n]/.test(e.input) || !Array.isArray(e.replies))
  if (bad >= 0) return `exchange ${bad} is not one line with its replies`
  return ReplayDns.problemOf(f.dns)
}

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64")

/** Dot-stuffs message bytes (kept as latin1 text, byte for byte) and adds the final dot. */
const stuffed = (bytes: Buffer): Buffer => {
  const text = bytes.toString("latin1")
  const body = text.endsWith("\r\n") || text.length === 0 ? text : `${text}\r\n`
  return Buffer.from(`${body.replace(/^\./gm, "..")}.\r\n`, "latin1")
}

/** Runs one captured session; `auth` holds the AUTH outcome the wrapped pipeline answers with. */
const replaySession = Effect.fnUntraced(function*(
  harness: Harness.Harness,
  capture: Capture.CaptureFile,
  file: string,
  auth: { current: Capture.CaptureFile["auth"][number] | undefined },
  dns: ReplayDns.Current,
  maxLineLength: number
) {
  const now = { ms: capture.startMs }
  const answers = ReplayDns.session(capture)
  dns.session = answers
  const implicit = capture.tls.find((t) => t.mode === "implicit")
  const withClock = Effect.withClock(fixedClock(now))
  const session: Interpreter.Session = yield* withClock(harness.open({
    remoteAddress: capture.client.remoteAddress,
    remotePort: capture.client.remotePort,
    localAddress: capture.client.localAddress,
    localPort: capture.client.localPort,
    trusted: false,
    ...(implicit === undefined ? {} : { tls: { protocol: implicit.protocol, cipher: implicit.cipher, mode: "implicit" as const } })
  }))
  const differences: Array<Difference> = []
  const authQueue = [...capture.auth]
  let sasl: Array<string> = []
  let chunk: { size: number; offset: number; last: boolean } | undefined
  // Where the next BDAT chunk starts in the message; 0 again after a LAST chunk or a DATA message.
  let offset = 0
  const compare = (i: number, replies: ReadonlyArray<Reply.Reply>, by: string | undefined) => {
    const e = capture.exchanges[i]!
    const now_ = lines(replies)
    if (now_.map(normalize).join("\n") !== e.replies.map(normalize).join("\n") || (replies.length > 0 && by !== e.refusedBy)) {
      differences.push({ exchange: i, input: e.input, old: e.replies, new: now_, oldBy: e.refusedBy, newBy: by })
    }
  }
  compare(0, session.exchanges[0]?.replies ?? [], session.exchanges[0]?.refusedBy)
  for (let i = 1; i < capture.exchanges.length; i++) {
    const e = capture.exchanges[i]!
    now.ms = capture.startMs + e.at
    if (e.input === "(end)") {
      const before = session.exchanges.length
      yield* withClock(session.end)
      compare(i, session.exchanges.slice(before).flatMap((x) => x.replies), undefined)
      continue
    }
    let bytes: string | Uint8Array
    if (e.input === "(message)") {
      const message = capture.messages.find((m) => m.exchange >= i)
      const data = message === undefined ? Buffer.alloc(0) : Buffer.from(message.data, "base64")
      if (chunk !== undefined) {
        // A BDAT chunk: its bytes of the message (a headers-only capture gives what it has, padded).
        const part = Buffer.alloc(chunk.size, 0x20)
        data.subarray(chunk.offset, chunk.offset + chunk.size).copy(part)
        bytes = part
        if (chunk.last) offset = 0
        chunk = undefined
      } else {
        bytes = session.state().phase._tag === "Data" ? stuffed(data) : ""
        offset = 0
      }
    } else if (e.input === "(line too long)") {
      bytes = `${"X".repeat(maxLineLength + 1)}\r\n`
    } else if (e.input === "*") {
      bytes = `${sasl.shift() ?? "*"}\r\n`
    } else {
      const authCmd = /^AUTH\s+(PLAIN|LOGIN)(\s+\*)?$/i.exec(e.input)
      const bdat = /^BDAT\s+(\d+)(\s+LAST)?\s*$/i.exec(e.input)
      if (authCmd !== null) {
        const fact = authQueue.shift()
        auth.current = fact
        const user = fact?.username ?? "unknown"
        const plain = b64(`\0${user}\0replay`)
        const initial = authCmd[2] !== undefined
        sasl = authCmd[1]!.toUpperCase() === "PLAIN" ? (initial ? [] : [plain]) : [b64(user), b64("replay")]
        bytes = initial ? `AUTH ${authCmd[1]} ${plain}\r\n` : `${e.input}\r\n`
      } else {
        if (bdat !== null) {
          chunk = { size: Number(bdat[1]), offset, last: bdat[2] !== undefined }
          offset += Number(bdat[1])
        }
        bytes = `${e.input}\r\n`
      }
    }
    const before = session.exchanges.length
    const replies = session.closed() ? [] : yield* withClock(session.write(bytes))
    const by = session.exchanges.slice(before).map((x) => x.refusedBy).find((x) => x !== undefined)
    compare(i, replies, by)
  }
  if (!session.closed()) yield* session.end
  dns.session = undefined
  return {
    file,
    session: capture.session,
    client: capture.client.remoteAddress,
    differences,
    dns: { notCaptured: answers.notCaptured, queries: [...answers.missing] }
  } satisfies SessionReport
})

/** AUTH answered from the capture: the user it authenticated, or a failure (535) or deferral (454). */
const captured = (auth: { current: Capture.CaptureFile["auth"][number] | undefined }) => (pipeline: Pipeline.Pipeline): Pipeline.Pipeline => ({
  ...pipeline,
  run: ((hook: Parameters<Pipeline.Pipeline["run"]>[0], ctx: AuthContext) => {
    if (hook !== "auth") return pipeline.run(hook, ctx as never)
    const fact = auth.current
    const verdict = fact?.outcome === "success"
      ? Verdict.accept({ identity: fact.username })
      : fact?.outcome === "deferred"
      ? Verdict.defer("Authentication deferred (as captured)", { code: 454, enhanced: "4.7.0" })
      : Verdict.Continue
    return Effect.succeed({ verdict, plugin: fact === undefined ? undefined : "replay" })
  }) as Pipeline.Pipeline["run"]
})

/** Replays every capture against `config`. */
export const run = (
  config: BridgeConfig,
  captures: ReadonlyArray<{ readonly file: string; readonly content: unknown }>
): Effect.Effect<Report, Resolve.ConfigError | Pipeline.PluginSetupError, Scope.Scope> =>
  Effect.gen(function*() {
    const auth: { current: Capture.CaptureFile["auth"][number] | undefined } = { current: undefined }
    const dns: ReplayDns.Current = { session: undefined }
    // Server entries were checked with the config: one that still fails is a defect (as in Resolver.layer).
    const { cache } = yield* Effect.orDie(Resolver.makeWithCache(config.dns))
    const harness = yield* Harness.make({
      resolved: config,
      dns: Layer.succeed(Dns, Resolver.fromLookup(ReplayDns.lookup(cache.lookup, dns))),
      starttls: config.tls !== undefined,
      pipeline: captured(auth)
    })
    const sessions: Array<SessionReport> = []
    const unreadable: Array<{ file: string; problem: string }> = []
    for (const { file, content } of captures) {
      const problem = problemOf(content)
      if (problem !== undefined) unreadable.push({ file, problem })
      else sessions.push(yield* replaySession(harness, content as Capture.CaptureFile, file, auth, dns, config.limits.maxLineLength))
    }
    return {
      sessions,
      unreadable,
      changed: sessions.filter((s) => s.differences.length > 0).length,
      dnsNotCaptured: sessions.reduce((n, s) => n + s.dns.notCaptured, 0)
    }
  })

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`

/** The lookups a session's capture did not answer, the first few named. */
const notCaptured = (s: SessionReport): string => {
  const named = s.dns.queries.slice(0, 5).join(", ") + (s.dns.queries.length > 5 ? `, ... (${s.dns.queries.length} names)` : "")
  return `${s.dns.notCaptured} DNS quer${s.dns.notCaptured === 1 ? "y" : "ies"} not in the capture, answered by the config's resolver: ${named}`
}

/**
 * The report as text: per changed session its differences, per session that asked DNS what its
 * capture did not hold the count of those lookups, then a summary line.
 */
export const format = (report: Report): string => {
  const out: Array<string> = []
  for (const s of report.sessions) {
    if (s.differences.length === 0) {
      if (s.dns.notCaptured > 0) out.push(`${s.file} (session ${s.session} from ${s.client}): no difference; ${notCaptured(s)}`)
      continue
    }
    out.push(`${s.file} (session ${s.session} from ${s.client}): ${plural(s.differences.length, "difference")}`)
    if (s.dns.notCaptured > 0) out.push(`  ${notCaptured(s)}`)
    for (const d of s.differences) {
      out.push(`  ${d.input}`)
      out.push(`    old: ${d.old.length === 0 ? "(no reply)" : d.old.map((r) => r.split("\n")[0]).join(" | ")}${d.oldBy === undefined ? "" : ` (by ${d.oldBy})`}`)
      out.push(`    new: ${d.new.length === 0 ? "(no reply)" : d.new.map((r) => r.split("\n")[0]).join(" | ")}${d.newBy === undefined ? "" : ` (by ${d.newBy})`}`)
    }
  }
  for (const u of report.unreadable) out.push(`${u.file}: ${u.problem}`)
  out.push(
    `replayed ${report.sessions.length} session${report.sessions.length === 1 ? "" : "s"}: ${report.changed} changed, ${report.sessions.length - report.changed} unchanged` +
      (report.unreadable.length > 0 ? `; ${report.unreadable.length} unreadable` : "") +
      (report.dnsNotCaptured > 0 ? `; ${report.dnsNotCaptured} DNS quer${report.dnsNotCaptured === 1 ? "y" : "ies"} not in the captures` : "")
  )
  return out.join("\n")
}
