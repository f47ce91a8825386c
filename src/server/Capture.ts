/**
 * Session capture (`serve --capture DIR`): each sampled session is written, when it ends, as one
 * JSON file in the format of docs/capture-format.md (version 1), for `smtp-bridge replay`. What
 * is kept: the connection's facts, TLS and AUTH facts (mechanism, user name, outcome), every
 * command line with its replies, timing and the plugin that refused it, and each message (whole
 * up to `maxMessageSize`, else its header section). What is never kept: passwords and every SASL
 * response (written `*`, the user name of AUTH LOGIN included, which the AUTH facts carry), and
 * AUTH's initial response. And the DNS answers the session's plugins got (first per name and type,
 * bounded), so that replay answers them the same way.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import type * as Observe from "../dns/Observe.ts"
import * as Wire from "../dns/Wire.ts"
import type { Content } from "../pipeline/Message.ts"
import type { AuthResultContext } from "../pipeline/Plugin.ts"
import type { SessionInfo, TlsInfo } from "../pipeline/Session.ts"
import * as Reply from "../protocol/Reply.ts"

/**
 * Exchanges kept per session: a client sending NOOP for hours must not grow the recorder without
 * bound (each exchange is ~100 bytes). Past it the file says `truncated` and replays what it has.
 */
export const maxExchanges = 10_000

/**
 * DNS answers kept per session, and their size. An SPF walk is at most 10 lookups with their MX
 * and A, a message at most 16 DKIM keys (`Mailauth.maxKeyLookups`) with DMARC and ARC: a few
 * dozen answers and some KB. A session naming thousands of domains (a RCPT each, checked by a
 * plugin) stops being recorded here, says `dnsTruncated`, and replay asks its resolver for the rest.
 */
export const maxDnsAnswers = 1_000
export const maxDnsBytes = 256 * 1024

export const formatName = "smtp-bridge-capture"
export const formatVersion = 1

export interface CaptureConfig {
  readonly dir: string
  /** The share of sessions captured, 0 to 1. */
  readonly sample: number
  /** Messages larger than this are captured as their header section only. */
  readonly maxMessageSize: number
  readonly headersOnly: boolean
}

/** One input of the client and the replies it got (format v1). */
export interface CapturedExchange {
  /** Milliseconds from the connection's start to the input. */
  readonly at: number
  /** The command line, `*` for a SASL response, `AUTH <mech> *` with an initial response, or `(connect)`, `(message)`, `(line too long)`, `(end)`. */
  readonly input: string
  /** Each reply as sent, its lines joined by LF (`250-a\n250 b`). */
  readonly replies: ReadonlyArray<string>
  /** Milliseconds from the input to its last reply. */
  readonly ms: number
  /** Who refused: a plugin's name, or `bridge`. */
  readonly refusedBy?: string
}

export interface CapturedMessage {
  /** The index of the exchange (`(message)`, or the BDAT LAST line) whose content it is. */
  readonly exchange: number
  readonly transaction: string
  /** Its size as received, in bytes. */
  readonly size: number
  /** `full`: `data` is the whole message; `headers`: only its header section (and the blank line). */
  readonly content: "full" | "headers"
  /** Base64 of the bytes, CRLF line endings, not dot-stuffed. */
  readonly data: string
}

/** One DNS answer as a hook got it (format v1, optional field `dns`). */
export interface CapturedDns {
  /** Milliseconds from the connection's start to the answer. */
  readonly at: number
  /** The name as asked; replay matches it without case and trailing dot. */
  readonly name: string
  readonly type: Wire.RRType
  /** The records: strings (A, AAAA, CNAME, NS, PTR), arrays of strings (TXT), `{ exchange, priority }` (MX). */
  readonly records?: ReadonlyArray<Wire.RecordData["value"]>
  /** Or why there are none: `ENOTFOUND`, `ENODATA` (answers), or a failure: `ETIMEOUT`, `ESERVFAIL`, `EREFUSED`, ... */
  readonly code?: string
}

/** A captured answer's key: the name without case and trailing dot, and its type. */
export const dnsKey = (name: string, type: string): string => `${type} ${Wire.normalizeName(name)}`

const capturedDns = (at: number, name: string, type: Wire.RRType, answer: Observe.Answer): CapturedDns =>
  answer._tag === "Records"
    ? { at, name, type, records: answer.records.map((r) => r.value) }
    : { at, name, type, code: answer._tag === "NoRecords" ? answer.code : answer.error.code }

export interface CaptureFile {
  readonly format: typeof formatName
  readonly version: typeof formatVersion
  readonly session: string
  /** The connection's start, ISO 8601 and milliseconds since the epoch. */
  readonly start: string
  readonly startMs: number
  readonly client: { readonly remoteAddress: string; readonly remotePort: number; readonly localAddress: string; readonly localPort: number }
  readonly hostname: string
  /** Each handshake: `mode` `implicit` (at 0) for an implicit-TLS listener, `starttls` after STARTTLS. */
  readonly tls: ReadonlyArray<TlsInfo & { readonly at: number }>
  readonly auth: ReadonlyArray<{ readonly at: number; readonly mechanism: string; readonly username: string; readonly outcome: AuthResultContext["outcome"] }>
  readonly exchanges: ReadonlyArray<CapturedExchange>
  readonly messages: ReadonlyArray<CapturedMessage>
  /** How the session ended. */
  readonly outcome: string
  /** Set when the session had more than 10,000 exchanges: only the first ones are kept. */
  readonly truncated?: true
  /** The first answer to each name and type the plugins looked up; absent in captures older than it. */
  readonly dns?: ReadonlyArray<CapturedDns>
  /** Set when the session looked up more than `maxDnsAnswers` names (or `maxDnsBytes`): the rest is not kept. */
  readonly dnsTruncated?: true
}

export interface Recorder {
  readonly input: (label: string) => void
  readonly reply: (r: Reply.Reply) => void
  readonly refused: (by: string) => void
  readonly tls: (tls: TlsInfo) => void
  readonly auth: (ctx: AuthResultContext) => void
  readonly message: (content: Content, transaction: string) => Effect.Effect<void>
  /** Records a DNS answer; set as the session fiber's `Observe.current`. */
  readonly dns: Observe.Observer
  /** Writes the file (atomically: a temporary name, then renamed); a failure is logged, never fatal. */
  readonly finish: (outcome: string) => Effect.Effect<void>
}

/** What a client line is called in a capture: never a credential. */
export const label = (saslResponse: boolean, line: string): string => {
  if (saslResponse) return "*"
  const auth = /^(AUTH\s+\S+)\s+\S/i.exec(line)
  return auth === null ? line : `${auth[1]} *`
}

const crlf = new Uint8Array([13, 10])

/** A recorder for this session, or undefined when capture is off or the session is not sampled. */
export const begin = (config: CaptureConfig | undefined, session: SessionInfo, now: () => number = Date.now): Recorder | undefined => {
  if (config === undefined || Math.random() >= config.sample) return undefined
  const startMs = now()
  const exchanges: Array<{ at: number; input: string; replies: Array<string>; ms: number; refusedBy?: string }> = []
  const tls: Array<TlsInfo & { at: number }> = []
  const auth: Array<CaptureFile["auth"][number]> = []
  const messages: Array<CapturedMessage> = []
  let truncated = false
  const dns: Array<CapturedDns> = []
  const dnsSeen = new Set<string>()
  let dnsBytes = 0
  let dnsTruncated = false
  // Once truncated, nothing more is recorded: replies would land on the wrong exchange.
  const last = () => (truncated ? undefined : exchanges[exchanges.length - 1])
  return {
    input: (input) => {
      if (truncated || exchanges.length >= maxExchanges) {
        truncated = true
        return
      }
      exchanges.push({ at: now() - startMs, input, replies: [], ms: 0 })
    },
    reply: (r) => {
      const e = last()
      if (e === undefined) return
      e.replies.push(Reply.format(r).replace(/\r\n$/, "").split("\r\n").join("\n"))
      e.ms = now() - startMs - e.at
    },
    refused: (by) => {
      const e = last()
      if (e !== undefined) e.refusedBy = by
    },
    tls: (info) => void tls.push({ ...info, at: now() - startMs }),
    auth: (ctx) => void auth.push({ at: now() - startMs, mechanism: ctx.mechanism, username: ctx.username, outcome: ctx.outcome }),
    dns: (name, type, answer) => {
      const key = dnsKey(name, type)
      if (dnsSeen.has(key) || dnsTruncated) return
      const entry = capturedDns(now() - startMs, name, type, answer)
      const bytes = Buffer.byteLength(JSON.stringify(entry))
      if (dns.length >= maxDnsAnswers || dnsBytes + bytes > maxDnsBytes) {
        dnsTruncated = true
        return
      }
      dnsSeen.add(key)
      dnsBytes += bytes
      dns.push(entry)
    },
    message: (content, transaction) =>
      truncated ? Effect.void : Effect.gen(function*() {
        const full = !config.headersOnly && content.size <= config.maxMessageSize
        // Only the header section when that is all we keep: a 50 MB body is never loaded.
        const parts = full ? [...(yield* Stream.runCollect(content.stream()))] : [...content.headers.map((h) => h.bytes), crlf]
        const kept = new Uint8Array(parts.reduce((n, x) => n + x.byteLength, 0))
        let offset = 0
        for (const part of parts) {
          kept.set(part, offset)
          offset += part.byteLength
        }
        messages.push({ exchange: exchanges.length - 1, transaction, size: content.size, content: full ? "full" : "headers", data: Buffer.from(kept).toString("base64") })
      }).pipe(Effect.catchAll((e) => Effect.logWarning(`capture: cannot read message ${transaction}: ${e.message}`))),
    finish: (outcome) =>
      Effect.tryPromise(async () => {
        const file: CaptureFile = {
          format: formatName,
          version: formatVersion,
          session: session.id,
          start: new Date(startMs).toISOString(),
          startMs,
          client: { remoteAddress: session.remoteAddress, remotePort: session.remotePort, localAddress: session.localAddress, localPort: session.localPort },
          hostname: session.hostname,
          tls,
          auth,
          exchanges,
          messages,
          outcome,
          ...(truncated ? { truncated: true as const } : {}),
          dns,
          ...(dnsTruncated ? { dnsTruncated: true as const } : {})
        }
        const name = `${new Date(startMs).toISOString().replace(/[:.]/g, "-")}-${session.id}.json`
        const tmp = path.join(config.dir, `.${name}.${randomBytes(4).toString("hex")}.tmp`)
        await fs.mkdir(config.dir, { recursive: true, mode: 0o700 })
        await fs.writeFile(tmp, JSON.stringify(file, null, 2), { mode: 0o600 })
        await fs.rename(tmp, path.join(config.dir, name))
      }).pipe(Effect.catchAll((e) => Effect.logWarning(`capture: cannot write session ${session.id}: ${String(e.error)}`)))
  }
}
