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
 *   rcptTo: Effect.fn("no-example.rcptTo")(function* ({ recipient }) {
 *     return recipient.mailbox.domain === "example.com"
 *       ? Verdict.reject("No mail for example.com", { code: 550, enhanced: "5.1.2" })
 *       : Verdict.Continue
 *   })
 * })
 */
import type { Duration, Effect, Scope } from "effect"
import type { Dns } from "../dns/Dns.ts"
import type { Mailbox, MailParams, Recipient } from "../protocol/Envelope.ts"
import type { Reply } from "../protocol/Reply.ts"
import type { Content } from "./Message.ts"
import type { SessionInfo, TransactionInfo } from "./Session.ts"
import type { Verdict } from "./Verdict.ts"

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
  readonly mechanism: "PLAIN" | "LOGIN"
  readonly username: string
  readonly password: string
  /** The authorization identity of SASL PLAIN, when the client sent one. */
  readonly authzid: string | undefined
}

export interface AuthResultContext {
  readonly session: SessionInfo
  readonly mechanism: "PLAIN" | "LOGIN"
  readonly username: string
  /** Whether the exchange authenticated the session; never carries the password. */
  readonly success: boolean
  /**
   * `failure`: the credentials were checked and refused; `deferred`: a hook answered Defer or
   * Disconnect (a backend down, a throttle), so nothing was learnt about the password.
   */
  readonly outcome: "success" | "failure" | "deferred"
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
  /** After each AUTH exchange that reached the `auth` hooks (brute-force counters, audit logs). */
  readonly authResult?: Hook<AuthResultContext, void>
  readonly delivered?: Hook<DeliveredContext, void>
  readonly disconnect?: Hook<DisconnectContext, void>
}

export type HookName = keyof Hooks
export type VerdictHook = "connect" | "helo" | "auth" | "mailFrom" | "rcptTo" | "data"

export const hookNames: ReadonlyArray<HookName> = [
  "connect", "helo", "auth", "authResult", "mailFrom", "rcptTo", "data", "route", "delivered", "disconnect"
]

export interface Plugin extends Hooks {
  readonly name: string
  /** Longest time one hook may take before it counts as failed (451 4.3.0). Default 30 seconds. */
  readonly timeout?: Duration.DurationInput
  /**
   * Runs once when the server starts, in the server's scope: acquire connections, watch files,
   * then return hooks, which are added to the static ones above.
   */
  readonly setup?: Effect.Effect<Hooks, unknown, Scope.Scope | Services>
}

/** Identity function that gives plugin authors type inference for hook contexts. */
export const definePlugin = (plugin: Plugin): Plugin => plugin
