/** The mutable state of one connection, shared by the command handlers. */
import { Effect } from "effect"
import type { BridgeConfig } from "../config/Config.ts"
import * as Metrics from "../observability/Metrics.ts"
import type * as Notes from "../pipeline/Notes.ts"
import type { Pipeline } from "../pipeline/Pipeline.ts"
import type { SessionInfo, TlsInfo, TransactionInfo } from "../pipeline/Session.ts"
import type { Command } from "../protocol/Command.ts"
import type { Mailbox, MailParams, Recipient } from "../protocol/Envelope.ts"
import type * as LineDecoder from "../protocol/LineDecoder.ts"
import type * as LineEndings from "../protocol/LineEndings.ts"
import * as Reply from "../protocol/Reply.ts"
import type { SecureContext, SmtpSocket } from "../runtime/Socket.ts"
import type * as Spool from "../transport/Spool.ts"
import type { Transport } from "../transport/Transport.ts"
import type { MessageBuffer } from "./MessageBuffer.ts"
import type { Trace } from "./Spans.ts"
import { randomBytes } from "node:crypto"
import type * as Cidr from "../util/Cidr.ts"

/** What every connection of one server shares. */
export interface ServerEnv {
  readonly config: BridgeConfig
  readonly pipeline: Pipeline
  readonly transports: ReadonlyMap<string, Transport>
  /** The durable queue, when configured: messages are enqueued before the 250. */
  readonly spool: Spool.Spool | undefined
  /** The current TLS context (reloadable), or undefined when TLS is not configured. */
  readonly tls: () => SecureContext | undefined
  readonly isDraining: () => boolean
  /** Load balancers whose connections start with a PROXY header. */
  readonly proxies: ReadonlyArray<Cidr.Cidr>
  /**
   * Counts a connection from this client address, or says which limit refuses it:
   * `maxConnectionsPerIp` (`address`) or `maxConnectionsPerNetwork` (`network`).
   */
  readonly admit: (ip: string) => "admitted" | "address" | "network"
  readonly release: (ip: string) => void
}

export type Mutable<T> = { -readonly [K in keyof T]: T[K] }

export interface Transaction extends Mutable<TransactionInfo> {
  mailFrom: Mailbox | null
  mailParams: MailParams
  recipients: Array<Recipient>
  notes: Notes.Notes
}

export interface Chunking {
  readonly buffer: MessageBuffer
  /** When the whole BDAT transfer must be over (`Socket.now()` time): `transferTimeout` after the first BDAT. */
  readonly deadline: number
  readonly normalizer: LineEndings.Normalizer
  bare: boolean
}

export interface Conn {
  readonly socket: SmtpSocket
  readonly env: ServerEnv
  readonly lines: LineDecoder.LineDecoder
  readonly session: Mutable<SessionInfo> & { tls: TlsInfo | undefined }
  /** Replies waiting for the next flush: pipelined replies leave in one write. */
  readonly out: Array<string>
  /** Their length in characters (bytes: replies are ASCII but for SMTPUTF8 text), to bound the backlog. */
  outBytes: number
  /** When the command line being received must be complete (`Socket.now()` time); 0 while none is. */
  lineDeadline: number
  /** When the first command line must be complete (the greeting timeout); only read before the first command. */
  greetingDeadline: number
  tx: Transaction | undefined
  /** A BDAT transfer in progress. */
  chunking: Chunking | undefined
  invalid: number
  authFailures: number
  /** Set when the connection must close after the pending replies. */
  closing: boolean
  /** Commands received so far; the greeting timeout applies until the first. */
  commands: number
  /** The session's open spans, when a tracer collects them (`Spans.ts`). */
  trace?: Trace
  /** The command being answered, for the refusal log line; undefined before the first. */
  command?: Command | undefined
  /** Refusals so far (the log shows the first `maxLoggedRefusals`). */
  refusals?: number
}

export const reply = (c: Conn, r: Reply.Reply): void => {
  Metrics.replied(r)
  const text = Reply.format(r)
  c.outBytes += text.length
  c.out.push(text)
}

/** Queues a reply and marks the connection to close after it. */
export const replyAndClose = (c: Conn, r: Reply.Reply): void => {
  reply(c, r)
  c.closing = true
}

export const flush = (c: Conn): Effect.Effect<void> => {
  if (c.out.length === 0) return Effect.void
  const data = c.out.length === 1 ? c.out[0]! : c.out.join("")
  c.out.length = 0
  c.outBytes = 0
  return c.socket.write(data)
}

/** The command as a log shows it: verb and address or name, never an AUTH response. */
export const describeCommand = (command: Command | undefined): string =>
  // Client text: control characters escaped, so a line in a terminal cannot be forged.
  describeRaw(command).replace(/[\x00-\x1f\x7f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, "0")}`)

const describeRaw = (command: Command | undefined): string => {
  if (command === undefined) return "connect"
  switch (command.verb) {
    case "MAIL":
      return `MAIL FROM:<${command.from?.address ?? ""}>`
    case "RCPT":
      return `RCPT TO:<${command.to.address}>`
    case "EHLO":
    case "HELO":
    case "LHLO":
      return `${command.verb} ${command.domain}`
    case "BDAT":
      return `BDAT ${command.size}${command.last ? " LAST" : ""}`
    case "AUTH":
      // The initial response is the credentials: never logged.
      return `AUTH ${command.mechanism}`
    default:
      return command.verb
  }
}

/** Refusals logged per session; see `refused`. */
export const maxLoggedRefusals = 100

/**
 * Answers with a policy refusal and logs it: the one place a refusal reply is produced, so that
 * an operator sees every one (INFO: refusing is policy working, not the bridge failing). `by` is
 * the plugin that decided, or "bridge" for the bridge's own policy. AUTH failures (535) are
 * logged where they are counted, not here.
 */
export const refused = (c: Conn, r: Reply.Reply, by: string, options: { readonly close?: boolean } = {}): Effect.Effect<void> => {
  if (options.close === true) replyAndClose(c, r)
  else reply(c, r)
  // A client refused over and over (a dictionary of RCPTs) would otherwise write to the log
  // several times the bytes it sends: past the cap, one line says so and the rest are counted.
  c.refusals = (c.refusals ?? 0) + 1
  if (c.refusals > maxLoggedRefusals + 1) return Effect.void
  if (c.refusals === maxLoggedRefusals + 1) {
    return Effect.logInfo(`more than ${maxLoggedRefusals} refusals in this session: further ones are not logged`).pipe(
      Effect.annotateLogs({ session: c.session.id, client: c.session.remoteAddress })
    )
  }
  const command = describeCommand(c.command)
  const text = `${r.code}${r.enhanced === undefined ? "" : ` ${r.enhanced}`} ${r.lines.join(" ")}`
  return Effect.logInfo(`refused ${command}: ${text}`).pipe(
    Effect.annotateLogs({
      session: c.session.id,
      client: c.session.remoteAddress,
      ...(c.session.user === undefined ? {} : { user: c.session.user }),
      command,
      reply: text,
      plugin: by
    })
  )
}

/** Short, unique, log-friendly ids (session and transaction). */
export const newId = (): string => randomBytes(8).toString("hex").toUpperCase()

/** Counts a syntax or sequence error; past the limit the connection is closed with 421. */
export const invalid = (c: Conn, r: Reply.Reply): void => {
  c.invalid++
  if (c.invalid > c.env.config.limits.maxInvalidCommands) {
    replyAndClose(c, Reply.make(421, "4.7.0", "Too many errors, closing connection"))
  } else reply(c, r)
}
