/**
 * The plugin API: a plugin is a named value with any of these hooks, each an `Effect` of a
 * `Verdict`. Built-in plugins in `plugins/` use nothing but this module's exports.
 *
 * @example
 * import { definePlugin, Verdict } from "smtp-bridge"
 * import { Effect } from "effect"
 *
 * export const noExample = definePlugin({
 *   name: "no-example",
 *   rcptTo: Effect.fnUntraced(function* ({ recipient }) {
 *     return recipient.mailbox.domain === "example.com"
 *       ? Verdict.reject("No mail for example.com", { code: 550, enhanced: "5.1.2" })
 *       : Verdict.Continue
 *   })
 * })
 */
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Stream from "effect/Stream"
import type { Dns } from "../dns/Dns.ts"
import type { Mailbox, MailParams, Recipient } from "../protocol/Envelope.ts"
import type { Reply } from "../protocol/Reply.ts"
import type { Content, EditError, Field, MessageError } from "./Message.ts"
import type { SessionInfo, TransactionInfo } from "./Session.ts"
import type { Verdict } from "./Verdict.ts"
import { checkOptions, decodeOptions, OptionsKey, type PluginOptions } from "./PluginOptions.ts"

export interface ConnectContext {
  readonly session: SessionInfo
}

export interface HeloContext {
  readonly session: SessionInfo
  readonly verb: "EHLO" | "HELO" | "LHLO"
  readonly name: string
}

export interface AuthContext {
  readonly session: SessionInfo
  /** The bridge's own mechanisms: a plugin's SASL mechanisms go to its `sasl` exchange instead. */
  readonly mechanism: "PLAIN" | "LOGIN"
  readonly username: string
  readonly password: string
  /** The authorization identity of SASL PLAIN, when the client sent one. */
  readonly authzid: string | undefined
}

export interface AuthResultContext {
  readonly session: SessionInfo
  /** PLAIN, LOGIN, or a plugin's mechanism (SCRAM-SHA-256, OAUTHBEARER, ...). */
  readonly mechanism: string
  /** The user the client named; empty when a plugin's exchange ended before naming one. */
  readonly username: string
  /** Whether the exchange authenticated the session; never carries the password. */
  readonly success: boolean
  /**
   * `failure`: the credentials were checked and refused; `deferred`: a hook answered Defer or
   * Disconnect (a backend down, a throttle), so nothing was learnt about the password.
   */
  readonly outcome: "success" | "failure" | "deferred"
}

/** A plugin's SASL exchange decided: what the throttle sees before the client hears the result. */
export interface AuthAttemptContext {
  readonly session: SessionInfo
  readonly mechanism: string
  readonly username: string
}

/** The start of an exchange of a plugin's SASL mechanism (`AUTH <mechanism>`). */
export interface SaslContext {
  readonly session: SessionInfo
  /** In capitals, one of those the plugin's `saslMechanisms` gave. */
  readonly mechanism: string
}

/**
 * What one step of a SASL exchange gives: another challenge (sent as `334 <text>`; `text` is the
 * base64 of the challenge, `""` for an empty one), or the end with its verdict: `Accept` with an
 * `identity` authenticates the session, `Reject` is a failed attempt (535 5.7.8 unless it says
 * otherwise), `Defer` a temporary failure (454 4.7.0) that does not count against the client.
 */
export type SaslStep =
  | { readonly _tag: "Challenge"; readonly text: string }
  | {
    readonly _tag: "Done"
    readonly verdict: Verdict
    /** The user the client named (for logs and the AUTH throttle), when the mechanism learnt one. */
    readonly username: string | undefined
  }

/**
 * One SASL exchange of a plugin's mechanism, from `AUTH` to its verdict. The bridge calls `step`
 * with the client's initial response (`undefined` when it sent none; `""` for RFC 4954's `=`),
 * then with each response to a challenge, all as the client sent them (base64, checked by the
 * bridge), until a step gives `Done`. When the client cancels (`*`), leaves or times out, or the
 * session closes, `abort` runs instead of the next step. Neither a response nor a challenge is
 * ever kept in the session's state or logged.
 */
export interface SaslExchange {
  readonly step: (response: string | undefined) => Effect.Effect<SaslStep, unknown, Services>
  readonly abort?: Effect.Effect<void>
}

export interface MailFromContext {
  readonly session: SessionInfo
  /** `null` is the null reverse-path. */
  readonly from: Mailbox | null
  readonly params: MailParams
}

export interface RcptToContext {
  readonly session: SessionInfo
  readonly transaction: TransactionInfo
  readonly recipient: Recipient
}

export interface DataContext {
  readonly session: SessionInfo
  readonly transaction: TransactionInfo
  readonly message: Content
  /** Adds a header field on top of the message (later additions go above earlier ones). */
  readonly addHeader: (name: string, value: string) => void
  /** Removes every original header field with this name (case-insensitive), or that the predicate selects. */
  readonly removeHeader: (name: string, predicate?: (value: string) => boolean) => void
  /**
   * The edits below are what remote stages (milter, HTTP hooks) ask for. They throw an
   * `EditError` on a bad name, value or address (the hook then fails: 451 4.3.0, logged), so a
   * header can never carry CR or LF into the message and no recipient is unparseable.
   */
  readonly edit: MessageEdits
}

/**
 * Changes to the message and its envelope made by a `data` hook. Recipients and sender changed
 * here are the ones delivered, spooled and reported to the `delivered` hooks.
 *
 * @example
 * data: ({ edit }) => Effect.sync(() => {
 *   edit.changeHeader("Subject", 1, "[ext] hello")
 *   edit.addRecipient("archive@example.com")
 *   return Verdict.Continue
 * })
 */
export interface MessageEdits {
  /** The header section as it stands after every edit so far, in order (each field's bytes as they will be sent). */
  readonly headers: () => ReadonlyArray<Field>
  /** The body (the bytes after the blank line) as it stands: the replacement once one ended, else the original. */
  readonly body: () => Stream.Stream<Uint8Array, MessageError>
  /**
   * The same bytes as `body()` when they are held in memory (a message under the spill threshold
   * whose body no hook replaced), `undefined` otherwise: per-message work on small messages can
   * then skip running a stream.
   */
  readonly bodyInMemory: () => ReadonlyArray<Uint8Array> | undefined
  /**
   * The whole message as the edits so far make it (what is delivered if no later hook changes
   * it): its size and its bytes, streamed (from the spill file for a large message, never whole
   * in memory). A snapshot: later edits do not change it.
   */
  readonly rendered: () => { readonly size: number; readonly stream: () => Stream.Stream<Uint8Array, MessageError> }
  /**
   * Sets the `index`-th (1-based) field named `name` (case-insensitive) to `value`, or removes
   * it when `value` is `undefined` (milter's CHGHEADER); a missing one is added at the end when
   * there is a value.
   */
  readonly changeHeader: (name: string, index: number, value: string | undefined) => void
  /** Inserts a field before the `index`-th (0-based) field of the current section (milter's INSHEADER). */
  readonly insertHeader: (index: number, name: string, value: string) => void
  /** The envelope as it stands after every edit so far. */
  readonly envelope: () => { readonly mailFrom: Mailbox | null; readonly recipients: ReadonlyArray<Recipient> }
  /** Sets the envelope sender; `null` or `""` is the null sender `<>`. Angle brackets are optional. */
  readonly setSender: (address: string | null) => void
  /** Adds a recipient (a duplicate is ignored); at most `limits.maxRecipients` in all. */
  readonly addRecipient: (address: string) => void
  /** Removes a recipient (the address compared case-insensitively); true when one was removed. */
  readonly removeRecipient: (address: string) => boolean
  /**
   * Starts a new body (the bytes after the blank line). The bytes go to a temporary file past
   * the spill threshold, never whole in memory; line endings become CRLF. The body replaces the
   * message's once `end` succeeded; the size limit is `limits.maxMessageSize`.
   */
  readonly replaceBody: () => BodyWriter
  /** Accepts the message (250) and delivers it to nobody (milter's DISCARD). */
  readonly discard: (reason: string) => void
  /**
   * Holds the message for review: every recipient goes to the transport named `quarantine`
   * (a Maildir, say); without one the message is refused 451 4.7.1 and the client retries.
   */
  readonly quarantine: (reason: string) => void
}

export interface BodyWriter {
  readonly write: (chunk: Uint8Array) => Effect.Effect<void, EditError>
  readonly end: () => Effect.Effect<void, EditError>
}

/** Which transport delivers which recipients. */
export interface Route {
  readonly transport: string
  readonly recipients: ReadonlyArray<Recipient>
}

export interface RouteContext {
  readonly session: SessionInfo
  readonly transaction: TransactionInfo
  readonly message: Content
  /** The names of the configured transports. */
  readonly transports: ReadonlyArray<string>
}

export interface RecipientResult {
  readonly recipient: Recipient
  readonly transport: string
  readonly reply: Reply
}

export interface DeliveredContext {
  readonly session: SessionInfo
  readonly transaction: TransactionInfo
  readonly results: ReadonlyArray<RecipientResult>
}

export interface DisconnectContext {
  readonly session: SessionInfo
}

/** Services the bridge provides to every hook (and to `setup`). */
export type Services = Dns

type Hook<Ctx, A> = (ctx: Ctx) => Effect.Effect<A, unknown, Services>

export interface Hooks {
  readonly connect?: Hook<ConnectContext, Verdict>
  readonly helo?: Hook<HeloContext, Verdict>
  /** Accept with an `identity` to authenticate the session. */
  readonly auth?: Hook<AuthContext, Verdict>
  readonly mailFrom?: Hook<MailFromContext, Verdict>
  readonly rcptTo?: Hook<RcptToContext, Verdict>
  readonly data?: Hook<DataContext, Verdict>
  /** The first plugin that returns routes decides; `undefined` passes. */
  readonly route?: Hook<RouteContext, ReadonlyArray<Route> | undefined>
  /** After each AUTH exchange that reached the `auth` hooks or a plugin's exchange's end (brute-force counters, audit logs). */
  readonly authResult?: Hook<AuthResultContext, void>
  /**
   * SASL mechanisms this plugin offers besides the bridge's PLAIN and LOGIN, asked at each EHLO
   * and AUTH (a backend may learn its list at run time). Names in capitals (RFC 4422 3.1); the
   * first plugin that offers a mechanism runs its exchanges.
   *
   * @example
   * saslMechanisms: () => ["OAUTHBEARER", "XOAUTH2"]
   */
  readonly saslMechanisms?: (session: SessionInfo) => ReadonlyArray<string>
  /** Starts an exchange of one of `saslMechanisms`' mechanisms. */
  readonly sasl?: Hook<SaslContext, SaslExchange>
  /**
   * After a plugin's SASL exchange decided and before the client hears it, with the user it
   * named: a verdict other than `Continue` replaces the exchange's (the AUTH throttle defers
   * here, since a multi-step exchange names its user only inside the mechanism).
   */
  readonly authAttempt?: Hook<AuthAttemptContext, Verdict>
  readonly delivered?: Hook<DeliveredContext, void>
  readonly disconnect?: Hook<DisconnectContext, void>
}

export type HookName = keyof Hooks
export type VerdictHook = "connect" | "helo" | "auth" | "authAttempt" | "mailFrom" | "rcptTo" | "data"

export const hookNames: ReadonlyArray<HookName> = [
  "connect", "helo", "auth", "authAttempt", "authResult", "saslMechanisms", "sasl", "mailFrom", "rcptTo", "data", "route", "delivered",
  "disconnect"
]

// Where they were defined before their own module: import sites keep naming Plugin.ts.
export { decodeOptions, OptionsKey, PluginOptionsError } from "./PluginOptions.ts"
export type { PluginOptions } from "./PluginOptions.ts"

/**
 * What a hook fails with when it knows why: the pipeline logs the plugin, the hook and the
 * `reason` (the client gets 451 4.3.0, as for any failed hook). Any other failure is logged as it is.
 *
 * @example
 * Effect.fail(new PluginError({ reason: "Unavailable", message: "redis at 127.0.0.1:6379 refused the connection" }))
 */
export class PluginError extends Schema.TaggedError<PluginError>()("PluginError", {
  reason: Schema.Literal("Unavailable", "Timeout", "BadResponse", "Misconfigured", "Internal"),
  message: Schema.String
}) {}

/**
 * A plugin. `R` is what its `setup` needs besides the bridge's `Services`: services that a plugin
 * before it `provides` (checked when the server starts; a missing one stops it, naming both).
 */
export interface Plugin<R = never> extends Hooks {
  readonly name: string
  /** Set by `definePlugin` for a plugin with an options schema; the config loader checks them. */
  readonly [OptionsKey]?: PluginOptions
  /** Longest time one hook may take before it counts as failed (451 4.3.0). Default 30 seconds. */
  readonly timeout?: Duration.DurationInput
  /** Descriptors the plugin opens of its own; leave it out when it opens none. */
  readonly files?: Files
  /**
   * Runs once when the server starts, in the server's scope: acquire connections, watch files,
   * then return hooks, which are added to the static ones above.
   */
  readonly setup?: Effect.Effect<Hooks, unknown, Scope.Scope | Services | R>
  /**
   * Services this plugin offers to itself and to the plugins after it, built once in the server's
   * scope before its `setup` (one Redis connection shared by greylisting and quotas).
   */
  readonly provides?: Layer.Layer<never, unknown, unknown>
}

/**
 * Descriptors (sockets, files) a plugin keeps open: `perSession` at most at once for each session
 * (a connection of its own to a service for each session, as a milter's), `held` for as long as
 * the server runs (a pool's connections, a Redis client). Past the process's open-files limit
 * `accept` and `connect` fail; the server takes only the sessions the limit carries, counting
 * these (a warning names `limits.maxConnections` when that is fewer than it says).
 */
export interface Files {
  readonly perSession?: number
  readonly held?: number
}

/** What `make` returns: hooks, and a `setup` for resources, as a plugin has. */
export interface Made<R = never> extends Hooks {
  /** May need services a plugin listed before provides (`R`). */
  readonly setup?: Effect.Effect<Hooks, unknown, Scope.Scope | Services | R>
}

/** A plugin with options: their schema and how the plugin is made from the decoded options. */
export interface Definition<A, I, R = never> {
  readonly name: string
  /** An `effect/Schema` of the options; `description` annotations phrase what a field expects. */
  readonly options: Schema.Schema<A, I, never>
  readonly timeout?: Duration.DurationInput
  /**
   * The descriptors a plugin made from `options` (decoded, defaults applied) opens of its own (see
   * `Files`). Options that do not decode count none: the server does not start with them.
   */
  readonly files?: (options: A) => Files
  readonly make: (options: A) => Made<R>
}

const isDefinition = <A, I, R>(u: Plugin<unknown> | Definition<A, I, R>): u is Definition<A, I, R> =>
  "make" in u && typeof u.make === "function" && Schema.isSchema(u.options)

// Decoded here as well as in `setup`: the count is needed before the plugins are set up, and bad
// options are reported by the config check, not by a `files` that reads a field they lack. A
// `files` that throws on options that decode is the plugin's bug: its `setup` fails with it, naming
// the plugin (counted as none, the server ran with a cap that left out what the plugin opens).
const filesOf = <A, I>(
  schema: Schema.Schema<A, I, never>,
  files: (options: A) => Files,
  input: I
): { readonly files?: Files; readonly failed?: string } => {
  let decoded: Either.Either<A, unknown>
  try {
    decoded = Schema.decodeUnknownEither(schema)(input)
  } catch {
    return {}
  }
  if (Either.isLeft(decoded)) return {}
  try {
    return { files: files(decoded.right) }
  } catch (e) {
    let text: string
    try {
      text = e instanceof Error ? e.message : String(e)
    } catch {
      text = "a value that is not an Error"
    }
    return { failed: `files: ${text}` }
  }
}

/**
 * Gives plugin authors type inference for hook contexts. With an options schema it returns a
 * factory: `greylist({ delay: "5 minutes" })` is a plugin whose options the config loader checks
 * (`check-config` reports a bad one as `plugins[0] (greylist).delay: expected ...`), decoded and
 * handed to `make` when the server starts.
 *
 * @example
 * export const greylist = definePlugin({
 *   name: "greylist",
 *   options: Schema.Struct({ delay: Units.Duration }),
 *   make: ({ delay }) => ({ rcptTo: () => Effect.succeed(Verdict.Continue) })
 * })
 */
export function definePlugin<A, I, R = never>(definition: Definition<A, I, R>): (options: I) => Plugin<R>
/** The plugin as written: a hook it defines is known to be there, with its own effect type. */
export function definePlugin<const P extends Plugin<unknown> & { readonly make?: never }>(plugin: P): P
export function definePlugin<A, I, R>(plugin: Plugin<unknown> | Definition<A, I, R>): Plugin<unknown> | ((options: I) => Plugin<R>) {
  if (!isDefinition(plugin)) return plugin
  const definition = plugin
  return (input: I): Plugin<R> => {
    const { files, failed } = definition.files === undefined ? {} : filesOf(definition.options, definition.files, input)
    return {
      name: definition.name,
      ...(definition.timeout === undefined ? {} : { timeout: definition.timeout }),
      ...(files === undefined ? {} : { files }),
      [OptionsKey]: { input, decode: checkOptions(definition.options) },
      setup: Effect.gen(function*() {
        if (failed !== undefined) return yield* Effect.die(new Error(failed))
        const { setup, ...hooks } = definition.make(yield* decodeOptions(definition.name, definition.options, input))
        return setup === undefined ? hooks : { ...hooks, ...(yield* setup) }
      })
    }
  }
}
