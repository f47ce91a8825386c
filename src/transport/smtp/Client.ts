/**
 * Opening an upstream SMTP or LMTP session: connect, greeting, EHLO (HELO as a fallback) or
 * LHLO, STARTTLS as the TLS mode asks, and AUTH when credentials are configured. The session
 * is then ready for transactions (`Transaction.ts`) and is reused by the pool.
 *
 * Failures while opening a session are about the link, not the message, so they are always
 * transient (4xx): a misconfigured relay defers mail instead of bouncing it, as Postfix does.
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Encoding from "effect/Encoding"
import type * as Scope from "effect/Scope"
import * as Connect from "../../runtime/Connect.ts"
import * as Reply from "../../protocol/Reply.ts"
import { TransportError } from "../Transport.ts"
import * as Replies from "./Replies.ts"
import type { Credentials, TlsMode } from "./Url.ts"
import * as Wire from "./Wire.ts"

export interface Timeouts {
  /** TCP connect plus an implicit TLS handshake. */
  readonly connect: Duration.DurationInput
  /** Each command's reply (greeting, EHLO, MAIL, RCPT, ...). */
  readonly command: Duration.DurationInput
  /** Writing the message and waiting for the reply to the final ".". */
  readonly data: Duration.DurationInput
}

export const defaultTimeouts: Timeouts = { connect: "30 seconds", command: "5 minutes", data: "10 minutes" }

export interface Options {
  /** The transport's name, in errors and replies. */
  readonly name: string
  readonly protocol: "smtp" | "lmtp"
  readonly endpoint: Connect.Endpoint
  readonly tls: TlsMode
  readonly tlsOptions: Connect.TlsOptions
  readonly credentials?: Credentials | undefined
  /** Send credentials over a connection without TLS (only for private links and tests). */
  readonly allowInsecureAuth: boolean
  /** The name we give in EHLO/LHLO. */
  readonly helo: string
  readonly timeouts: Timeouts
}

/** EHLO keywords, upper-cased, with their parameters (`SIZE` -> `"10240000"`). */
export type Capabilities = ReadonlyMap<string, string>

export interface Session {
  readonly wire: Wire.Wire
  readonly protocol: "smtp" | "lmtp"
  readonly capabilities: Capabilities
  readonly tls: Connect.TlsInfo | undefined
  /** Transactions started on this session so far. */
  transactions: number
}

/** Parses the EHLO reply's lines after the first (which is the server's name). */
export const parseCapabilities = (reply: Reply.Reply): Capabilities => {
  const out = new Map<string, string>()
  for (const line of reply.lines.slice(1)) {
    const [keyword, ...args] = line.trim().split(/\s+/)
    if (keyword !== undefined && keyword !== "") out.set(keyword.toUpperCase(), args.join(" "))
  }
  return out
}

const deferred = (options: Options, enhanced: string, text: string, message: string) =>
  new TransportError({
    transport: options.name,
    reason: "Rejected",
    message: `${options.name}: ${message}`,
    reply: Reply.make(451, enhanced, text)
  })

const expect = (options: Options, reply: Reply.Reply, code: number, stage: string, wire: Wire.Wire) =>
  Effect.suspend(() => {
    if (reply.code === code) return Effect.void
    wire.markBroken()
    const where = wire.socket.description
    return Effect.fail(deferred(options, "4.4.0", `upstream refused ${stage}`, `upstream ${where} answered ${stage} with ${Replies.describe(reply)}`))
  })

const hello = (options: Options, wire: Wire.Wire): Effect.Effect<Capabilities, TransportError> =>
  Effect.gen(function*() {
    const { command } = options.timeouts
    if (options.protocol === "lmtp") {
      const reply = yield* wire.command(`LHLO ${options.helo}`, command, "LHLO")
      yield* expect(options, reply, 250, "LHLO", wire)
      return parseCapabilities(reply)
    }
    const ehlo = yield* wire.command(`EHLO ${options.helo}`, command, "EHLO")
    if (ehlo.code === 250) return parseCapabilities(ehlo)
    // A server that predates ESMTP says 500/502; it still takes plain SMTP.
    if (ehlo.code < 500) yield* expect(options, ehlo, 250, "EHLO", wire)
    const helo = yield* wire.command(`HELO ${options.helo}`, command, "HELO")
    yield* expect(options, helo, 250, "HELO", wire)
    return new Map<string, string>()
  })

const startTls = (options: Options, wire: Wire.Wire, capabilities: Capabilities) =>
  Effect.gen(function*() {
    if (!capabilities.has("STARTTLS")) {
      if (options.tls === "opportunistic") return false
      return yield* Effect.fail(deferred(options, "4.7.0", "upstream does not offer STARTTLS, which is required", `upstream ${wire.socket.description} does not offer STARTTLS (tls=required)`))
    }
    const reply = yield* wire.command("STARTTLS", options.timeouts.command, "STARTTLS")
    if (reply.code !== 220) {
      if (options.tls === "opportunistic" && reply.code < 500 && reply.code >= 400) return false
      wire.markBroken()
      return yield* Effect.fail(deferred(options, "4.7.0", "upstream refused STARTTLS", `upstream ${wire.socket.description} answered STARTTLS with ${Replies.describe(reply)}`))
    }
    wire.clear()
    yield* wire.socket.upgradeTls(options.tlsOptions).pipe(
      Effect.timeoutFail({
        duration: options.timeouts.command,
        onTimeout: () => new Connect.ConnectError({ reason: "Timeout", message: "TLS handshake timed out" })
      }),
      Effect.mapError((e) => {
        wire.markBroken()
        return deferred(options, "4.7.5", "TLS with the upstream failed (certificate not trusted?)", e.message)
      })
    )
    return true
  })

const utf8 = (s: string) => Encoding.encodeBase64(new TextEncoder().encode(s))

const authenticate = (options: Options, wire: Wire.Wire, capabilities: Capabilities, credentials: Credentials, secure: boolean) =>
  Effect.gen(function*() {
    const where = wire.socket.description
    if (!secure && !options.allowInsecureAuth) {
      return yield* Effect.fail(deferred(options, "4.7.0", "not sending credentials to the upstream without TLS", `refusing to AUTH to ${where} without TLS (set allowInsecureAuth for a private link)`))
    }
    const mechanisms = (capabilities.get("AUTH") ?? "").toUpperCase().split(/\s+/)
    const { command } = options.timeouts
    let reply: Reply.Reply
    if (mechanisms.includes("PLAIN")) {
      reply = yield* wire.command(`AUTH PLAIN ${utf8(`\u0000${credentials.user}\u0000${credentials.password}`)}`, command, "AUTH")
    } else if (mechanisms.includes("LOGIN")) {
      reply = yield* wire.command("AUTH LOGIN", command, "AUTH")
      if (reply.code === 334) reply = yield* wire.command(utf8(credentials.user), command, "AUTH")
      if (reply.code === 334) reply = yield* wire.command(utf8(credentials.password), command, "AUTH")
    } else {
      return yield* Effect.fail(deferred(options, "4.7.0", "upstream offers no AUTH PLAIN or LOGIN", `upstream ${where} offers AUTH ${mechanisms.join(" ") || "nothing"}; PLAIN or LOGIN needed`))
    }
    if (reply.code !== 235) {
      // A 334 here means we are inside an exchange we cannot finish: the session is unusable.
      if (reply.code === 334) wire.markBroken()
      return yield* Effect.fail(deferred(options, "4.7.0", `upstream refused our credentials: ${reply.lines.join(" ")}`, `upstream ${where} refused AUTH as ${credentials.user}: ${Replies.describe(reply)}`))
    }
  })

const connectError = (options: Options) => (e: Connect.ConnectError) => {
  const reason = e.reason === "Timeout" ? "Timeout" : "Unreachable"
  if (e.reason === "Tls") return deferred(options, "4.7.5", "TLS with the upstream failed (certificate not trusted?)", e.message)
  return new TransportError({ transport: options.name, reason, message: `${options.name}: ${e.message}` })
}

/** A ready session; closing the scope sends QUIT (when the session is sound) and closes the socket. */
export const open = (options: Options): Effect.Effect<Session, TransportError, Scope.Scope> =>
  Effect.gen(function*() {
    const implicit = options.tls === "implicit"
    const socket = yield* Connect.connect(options.endpoint, {
      timeout: options.timeouts.connect,
      ...(implicit ? { tls: options.tlsOptions } : {})
    }).pipe(Effect.mapError(connectError(options)))
    const wire = Wire.make(options.name, socket)
    yield* Effect.addFinalizer(() =>
      wire.broken() || !socket.idle()
        ? Effect.void
        : wire.command("QUIT", "2 seconds", "QUIT").pipe(Effect.ignore)
    )
    const capabilities = yield* handshake(options, wire).pipe(
      // Interrupted halfway, the conversation is at an unknown point: no QUIT, just close.
      Effect.onInterrupt(() => Effect.sync(() => wire.markBroken()))
    )
    return { wire, protocol: options.protocol, capabilities, tls: socket.tls(), transactions: 0 }
  })

/** Greeting, EHLO, STARTTLS and AUTH: the capabilities the session ends up with. */
const handshake = (options: Options, wire: Wire.Wire): Effect.Effect<Capabilities, TransportError> =>
  Effect.gen(function*() {
    const implicit = options.tls === "implicit"
    const greeting = yield* wire.reply(options.timeouts.command, "the greeting")
    yield* expect(options, greeting, 220, "the connection", wire)
    let capabilities = yield* hello(options, wire)
    let secure = implicit
    if (!implicit && options.tls !== "none") {
      secure = yield* startTls(options, wire, capabilities)
      // RFC 3207: forget everything learnt before TLS and ask again.
      if (secure) capabilities = yield* hello(options, wire)
    }
    if (options.credentials !== undefined) {
      yield* authenticate(options, wire, capabilities, options.credentials, secure)
    }
    return capabilities
  })
