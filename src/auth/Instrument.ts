/**
 * Puts the result cache (`Cache.ts`), per-backend metrics and a log line around one
 * authentication backend's `auth` hook, and the metrics and log line around its own SASL
 * exchanges (`sasl`). The plugin stays as it is otherwise; the hooks it gets from `setup` are
 * wrapped too.
 *
 * Metrics, labelled `backend` (`ldap`, `http`, `htpasswd`, ..., `ldap#2` for a second one):
 * - `smtp_bridge_auth_backend_requests_total{backend,result}`: checks that reached the backend,
 *   `result` accepted | invalid | unknown (it does not know the user) | unavailable (454) | error
 *   (the hook failed: 451) | timeout (the hook's time ran out: 451);
 * - `smtp_bridge_auth_backend_failures_total{backend,reason}`: the failed ones, reason invalid |
 *   unavailable | error | timeout;
 * - `smtp_bridge_auth_backend_duration_seconds{backend}`: how long the backend took;
 * - `smtp_bridge_auth_cache_total{backend,result}`: hit (accepted from the cache), negative_hit,
 *   miss.
 *
 * The log line (debug) names the backend, the user (printable) and the result: never a password.
 */
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as Metrics from "../observability/Metrics.ts"
import type { AuthContext, Hooks, Plugin, SaslContext, SaslExchange, SaslStep, Services } from "../pipeline/Plugin.ts"
import * as Senders from "../pipeline/Senders.ts"
import type { Verdict } from "../pipeline/Verdict.ts"
import type * as Cache from "./Cache.ts"

type AuthHook = NonNullable<Hooks["auth"]>
type SaslHook = NonNullable<Hooks["sasl"]>
type Result = "accepted" | "invalid" | "unknown" | "unavailable" | "error" | "timeout"

const requests = Metric.counter(`${Metrics.prefix}auth_backend_requests_total`, {
  description: "Checks an authentication backend answered, by backend and result",
  incremental: true
})
const failures = Metric.counter(`${Metrics.prefix}auth_backend_failures_total`, {
  description: "Checks an authentication backend refused or could not answer, by backend and reason",
  incremental: true
})
const duration = Metric.histogram(
  `${Metrics.prefix}auth_backend_duration_seconds`,
  // 1 ms (a cached bcrypt is never here; a local file's cheap hash is) to about 16 s (a timeout).
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 15 }),
  "Time an authentication backend took to answer one check, by backend"
)
const cacheLookups = Metric.counter(`${Metrics.prefix}auth_cache_total`, {
  description: "Lookups in the authentication result cache, by backend and result (hit, negative_hit, miss)",
  incremental: true
})

interface Meters {
  readonly label: string
  readonly request: (result: Result) => Effect.Effect<void>
  readonly took: (seconds: number) => Effect.Effect<void>
  readonly cache: (result: "hit" | "negative_hit" | "miss") => Effect.Effect<void>
}

const meters = (label: string): Meters => {
  const byResult = new Map<string, Effect.Effect<void>>()
  const once = (key: string, make: () => Effect.Effect<void>): Effect.Effect<void> => {
    let made = byResult.get(key)
    if (made === undefined) byResult.set(key, made = make())
    return made
  }
  const timer = Metric.tagged(duration, "backend", label)
  return {
    label,
    request: (result) =>
      once(`r:${result}`, () =>
        Effect.zipRight(
          Metric.increment(Metric.tagged(Metric.tagged(requests, "backend", label), "result", result)),
          result === "accepted" || result === "unknown" ? Effect.void : Metric.increment(Metric.tagged(Metric.tagged(failures, "backend", label), "reason", result))
        )),
    took: (seconds) => Metric.update(timer, seconds),
    cache: (result) => once(`c:${result}`, () => Metric.increment(Metric.tagged(Metric.tagged(cacheLookups, "backend", label), "result", result)))
  }
}

const resultOf = (verdict: Verdict): Result =>
  verdict._tag === "Accept" ? "accepted" : verdict._tag === "Reject" ? "invalid" : verdict._tag === "Continue" ? "unknown" : "unavailable"

/** A cached answer as the backend gave it; an Accept puts the senders it granted back on the session. */
const replay = (ctx: AuthContext, entry: Cache.Entry): Verdict => {
  if (entry.grant !== undefined) ctx.session.notes.set(Senders.Granted, entry.grant)
  return entry.verdict
}

const record = Effect.fnUntraced(function*(meter: Meters, ctx: AuthContext, start: number, result: Result) {
  const end = yield* Clock.currentTimeMillis
  yield* meter.took((end - start) / 1000)
  yield* meter.request(result)
  yield* Effect.logDebug(`auth: ${meter.label}: user ${Senders.printable(ctx.username)}: ${result} in ${end - start} ms`).pipe(
    Effect.annotateLogs({ backend: meter.label, result })
  )
})

const ask = Effect.fnUntraced(function*(meter: Meters, auth: AuthHook, ctx: AuthContext) {
  const start = yield* Clock.currentTimeMillis
  // The pipeline's hook timeout interrupts this fiber: the finalizer still counts it.
  const exit = yield* Effect.exit(auth(ctx)).pipe(Effect.onInterrupt(() => record(meter, ctx, start, "timeout")))
  yield* record(meter, ctx, start, Exit.isSuccess(exit) ? resultOf(exit.value) : Cause.isInterruptedOnly(exit.cause) ? "timeout" : "error")
  return yield* exit
})

const check = Effect.fnUntraced(function*(meter: Meters, cache: Cache.Cache | undefined, auth: AuthHook, ctx: AuthContext) {
  if (cache === undefined) return yield* ask(meter, auth, ctx)
  const key = cache.key({ username: ctx.username, authzid: ctx.authzid, password: ctx.password, tls: ctx.session.tls !== undefined })
  const now = yield* Clock.currentTimeMillis
  const hit = cache.get(key, now)
  if (hit !== undefined) {
    yield* meter.cache(hit.verdict._tag === "Accept" ? "hit" : "negative_hit")
    return replay(ctx, hit)
  }
  yield* meter.cache("miss")
  const verdict = yield* ask(meter, auth, ctx)
  const granted = ctx.session.notes.get(Senders.Granted)
  const grant = verdict._tag === "Accept" && granted !== undefined && granted.identity === verdict.identity ? granted : undefined
  cache.put(ctx.username, key, verdict, grant, yield* Clock.currentTimeMillis)
  return verdict
})

const wrapHook = (meter: Meters, cache: Cache.Cache | undefined, auth: AuthHook): AuthHook => (ctx: AuthContext): Effect.Effect<Verdict, unknown, Services> =>
  check(meter, cache, auth, ctx)

/**
 * A SASL exchange of the backend's own mechanisms (SCRAM through Dovecot, OAUTHBEARER): the time
 * of its steps is the backend's (the client's think time between them is not), and its `Done`
 * counts as one request. Nothing of it is cached: each exchange is new by design.
 */
const meteredExchange = (meter: Meters, exchange: SaslExchange): SaslExchange => {
  let spent = 0
  const step = Effect.fnUntraced(function*(response: string | undefined) {
    const start = yield* Clock.currentTimeMillis
    const exit = yield* Effect.exit(exchange.step(response))
    const end = yield* Clock.currentTimeMillis
    spent += end - start
    const done: SaslStep | undefined = Exit.isSuccess(exit) && exit.value._tag === "Done" ? exit.value : undefined
    if (Exit.isFailure(exit) || done !== undefined) {
      const result: Result = done !== undefined ? resultOf(done.verdict) : Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) ? "timeout" : "error"
      yield* meter.took(spent / 1000)
      yield* meter.request(result)
      const user = done?.username === undefined ? "" : ` user ${Senders.printable(done.username)}:`
      yield* Effect.logDebug(`auth: ${meter.label}: SASL${user} ${result} in ${spent} ms`).pipe(Effect.annotateLogs({ backend: meter.label, result }))
    }
    return yield* exit
  })
  return { ...exchange, step }
}

const wrapSasl = (meter: Meters, sasl: SaslHook): SaslHook => (ctx: SaslContext): Effect.Effect<SaslExchange, unknown, Services> =>
  Effect.map(sasl(ctx), (exchange) => meteredExchange(meter, exchange))

/** `auth` and `sasl` of `hooks` wrapped; the rest as they are. */
const wrapHooks = <H extends Hooks>(meter: Meters, cache: Cache.Cache | undefined, hooks: H): H => ({
  ...hooks,
  ...(hooks.auth === undefined ? {} : { auth: wrapHook(meter, cache, hooks.auth) }),
  ...(hooks.sasl === undefined ? {} : { sasl: wrapSasl(meter, hooks.sasl) })
})

/**
 * The plugin with its `auth` hook (static, or the one `setup` returns) behind the cache and the
 * meters of backend `label`. One cache per call: a reload makes new plugins, so it starts empty.
 */
export const wrap = <R>(plugin: Plugin<R>, label: string, cache: Cache.Cache | undefined): Plugin<R> => {
  const meter = meters(label)
  const { setup } = plugin
  return {
    ...wrapHooks(meter, cache, plugin),
    ...(setup === undefined ? {} : { setup: Effect.map(setup, (hooks) => wrapHooks(meter, cache, hooks)) })
  }
}
