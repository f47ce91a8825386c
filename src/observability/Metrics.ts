/**
 * The bridge's metrics, as Effect `Metric`s in the process-wide registry; `Prometheus.ts` turns
 * a snapshot into the text format `/metrics` serves. Names carry the `smtp_bridge_` prefix so the
 * exposition can skip any metric some library registers.
 *
 * Plugins count their own events with the exported helpers, e.g. a rate limiter:
 *
 * @example
 * import { Metrics } from "smtp-bridge"
 * yield* Metrics.rateLimitHit({ plugin: "rate-limit", limit: "perUser" })
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricLabel from "effect/MetricLabel"
import * as Option from "effect/Option"
import type { AuthResultContext, DeliveredContext, DisconnectContext } from "../pipeline/Plugin.ts"
import type { Pipeline } from "../pipeline/Pipeline.ts"
import type { Reply } from "../protocol/Reply.ts"
import type { Transport } from "../transport/Transport.ts"

export const prefix = "smtp_bridge_"

/** How a session ended, for `smtp_bridge_sessions_total{outcome}`. */
export type SessionOutcome =
  /** The client said QUIT. */
  | "quit"
  /** The client closed the connection without QUIT. */
  | "disconnected"
  /** Idle, greeting or DATA timeout (421 4.4.2). */
  | "timeout"
  /** Graceful drain or forced shutdown (421 4.3.2). */
  | "shutdown"
  /** Refused before or at the greeting: connection limits, a `connect` verdict, a bad PROXY header. */
  | "refused"
  /** The server closed it: too many errors or AUTH failures, a Disconnect verdict, a failed TLS handshake. */
  | "closed"
  /** The connection fiber failed unexpectedly (logged). */
  | "error"

export const connectionsOpen = Metric.gauge(`${prefix}connections_open`, { description: "SMTP connections open now" })
export const connectionsTotal = Metric.counter(`${prefix}connections_total`, {
  description: "SMTP connections accepted since start, refused ones included",
  incremental: true
})
const sessions = Metric.counter(`${prefix}sessions_total`, { description: "SMTP sessions ended, by outcome", incremental: true })
const messagesAccepted = Metric.counter(`${prefix}messages_accepted_total`, {
  description: "Messages answered 250 after DATA or BDAT LAST",
  incremental: true
})
const bytesAccepted = Metric.counter(`${prefix}bytes_accepted_total`, {
  description: "Bytes of the messages accepted (as delivered, trace headers included)",
  incremental: true
})
const rejections = Metric.counter(`${prefix}rejections_total`, {
  description: "Negative replies (4xx and 5xx) sent to clients, by code and enhanced code",
  incremental: true
})
const pluginRejections = Metric.counter(`${prefix}plugin_rejections_total`, {
  description: "Verdicts that refused a command (Reject, Defer, Disconnect), by plugin, hook and code",
  incremental: true
})
const deliveries = Metric.histogram(
  `${prefix}delivery_duration_seconds`,
  // 5 ms to about 80 s: a local Maildir sits at the bottom, a slow upstream's DATA near the top.
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 15 }),
  "Time a transport took to deliver one message, by transport and outcome"
)
export const spoolDepth = Metric.gauge(`${prefix}spool_messages`, { description: "Messages waiting in the spool" })
export const spoolOldest = Metric.gauge(`${prefix}spool_oldest_age_seconds`, {
  description: "Age of the oldest message in the spool (0 when empty)"
})
const rateLimitHits = Metric.counter(`${prefix}rate_limit_hits_total`, {
  description: "Commands refused by a rate limit, by plugin and limit",
  incremental: true
})
const tlsSessions = Metric.counter(`${prefix}tls_sessions_total`, {
  description: "Sessions that ended encrypted, by mode (starttls or implicit)",
  incremental: true
})
const authAttempts = Metric.counter(`${prefix}auth_attempts_total`, {
  description: "AUTH exchanges checked by the auth plugins, by mechanism and result",
  incremental: true
})
const authFailures = Metric.counter(`${prefix}auth_failures_total`, {
  description: "Failed AUTH exchanges (each also logged at WARN), by mechanism and reason",
  incremental: true
})

/**
 * Why an AUTH exchange failed: `credentials` refused by the backend, `deferred` (a throttle or a
 * backend said not now), `malformed` (bad base64 or PLAIN layout), `too-long` (a response over
 * the line limit).
 */
export type AuthFailureReason = "credentials" | "deferred" | "malformed" | "too-long"

// Tagged metrics are made once per label set: making one builds and hashes a new key, several
// times per message otherwise. The label values come from a small fixed set (outcomes,
// transports, plugins, hooks, reply codes), so the cache stays small.
const taggedCache = new WeakMap<object, Map<string, unknown>>()

const tagged = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, tags: Record<string, string>): Metric.Metric<Type, In, Out> => {
  let byLabels = taggedCache.get(metric)
  if (byLabels === undefined) taggedCache.set(metric, byLabels = new Map())
  const key = JSON.stringify(tags)
  let made = byLabels.get(key) as Metric.Metric<Type, In, Out> | undefined
  if (made === undefined) {
    made = Metric.taggedWithLabels(metric, Object.entries(tags).map(([k, v]) => MetricLabel.make(k, v)))
    byLabels.set(key, made)
  }
  return made
}

/**
 * Metrics appear in a snapshot only once updated; adding zero to the unlabelled ones lets the
 * first scrape list them (Prometheus expects a series from the start, not from its first event).
 */
export const register: Effect.Effect<void> = Effect.all([
  Metric.incrementBy(connectionsOpen, 0),
  Metric.incrementBy(connectionsTotal, 0),
  Metric.incrementBy(messagesAccepted, 0),
  Metric.incrementBy(bytesAccepted, 0)
], { discard: true })

export const connectionOpened: Effect.Effect<void> = Effect.zipRight(
  Metric.increment(connectionsTotal),
  Metric.incrementBy(connectionsOpen, 1)
)
export const connectionClosed: Effect.Effect<void> = Metric.incrementBy(connectionsOpen, -1)

export const sessionEnded = (outcome: SessionOutcome): Effect.Effect<void> => Metric.increment(tagged(sessions, { outcome }))

/** Refused at accept (connection limit, draining): counted, but never open. */
export const connectionRefused: Effect.Effect<void> = Effect.zipRight(Metric.increment(connectionsTotal), sessionEnded("refused"))

export const messageAccepted = (bytes: number): Effect.Effect<void> =>
  Effect.zipRight(Metric.increment(messagesAccepted), Metric.incrementBy(bytesAccepted, bytes))

/**
 * Counts a 4xx or 5xx reply; other replies are ignored, so every reply may go through it.
 * Synchronous, because replies are queued by plain functions on the hot path.
 */
export const replied = (reply: Reply): void => {
  if (reply.code >= 400) {
    rejections.unsafeUpdate(1, [MetricLabel.make("code", String(reply.code)), MetricLabel.make("enhanced", reply.enhanced ?? "")])
  }
}

/** One failed AUTH exchange. */
export const authFailure = (options: { readonly mechanism: string; readonly reason: AuthFailureReason }): Effect.Effect<void> =>
  Metric.increment(tagged(authFailures, { mechanism: options.mechanism, reason: options.reason }))

/** For plugins: one command refused by a rate limit (`limit` names which one, e.g. `perUser`). */
export const rateLimitHit = (options: { readonly plugin: string; readonly limit: string }): Effect.Effect<void> =>
  Metric.increment(tagged(rateLimitHits, { plugin: options.plugin, limit: options.limit }))

const timedDelivery = Effect.fnUntraced(function*(name: string, transport: Transport, message: Parameters<Transport["deliver"]>[0]) {
  const started = yield* Clock.currentTimeMillis
  const exit = yield* Effect.exit(transport.deliver(message))
  const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
  const outcome = Exit.isSuccess(exit)
    ? "ok"
    : Option.match(Cause.failureOption(exit.cause), { onNone: () => "error", onSome: (e) => e.reason.toLowerCase() })
  yield* Metric.update(tagged(deliveries, { transport: name, outcome }), seconds)
  return yield* exit
})

/** Times every delivery of each transport (the spool's worker uses the same map, so its attempts count too). */
export const instrumentTransports = (transports: ReadonlyMap<string, Transport>): ReadonlyMap<string, Transport> =>
  new Map([...transports].map(([name, transport]) => [name, {
    ...transport,
    deliver: (message) => timedDelivery(name, transport, message)
  } satisfies Transport]))

type NotifyContext = AuthResultContext | DeliveredContext | DisconnectContext

/**
 * Counts plugin refusals, AUTH results and encrypted sessions by watching the pipeline, so that
 * neither the server nor the plugins need to know about metrics.
 */
export const instrumentPipeline = (pipeline: Pipeline): Pipeline => {
  const notify = pipeline.notify as (hook: "authResult" | "delivered" | "disconnect", ctx: NotifyContext) => Effect.Effect<void>
  const observe = (hook: "authResult" | "delivered" | "disconnect", ctx: NotifyContext): Effect.Effect<void> => {
    if (hook === "authResult" && "success" in ctx) {
      return Metric.increment(tagged(authAttempts, { mechanism: ctx.mechanism, result: ctx.outcome }))
    }
    const mode = ctx.session.tls?.mode
    return hook === "disconnect" && mode !== undefined ? Metric.increment(tagged(tlsSessions, { mode })) : Effect.void
  }
  return {
    ...pipeline,
    run: (hook, ctx) =>
      Effect.tap(pipeline.run(hook, ctx), ({ plugin, verdict }) =>
        verdict._tag === "Reject" || verdict._tag === "Defer" || verdict._tag === "Disconnect"
          ? Metric.increment(tagged(pluginRejections, { plugin: plugin ?? "", hook, code: String(verdict.code) }))
          : Effect.void),
    notify: ((hook: "authResult" | "delivered" | "disconnect", ctx: NotifyContext) =>
      Effect.zipRight(observe(hook, ctx), notify(hook, ctx))) as Pipeline["notify"]
  }
}
