/**
 * rate-limit: limits messages per client network, per authenticated user and per sender domain,
 * and recipients per user, over rolling windows (GCRA); and slows down, then defers, AUTH brute
 * force per client network and per (network, user) (Auth.ts). Counts live in memory or in Redis, shared by every bridge instance.
 *
 * Checks peek (MAIL, RCPT, connect) and only delivered mail is counted (in `delivered`), so a
 * refused RCPT or a failed delivery burns nothing. See README.md for the replies and the races.
 *
 * @example
 * import { rateLimit } from "./plugins/rate-limit/index.ts"
 * rateLimit({ perUser: "100/hour", recipients: "1000/day", redis: "redis://127.0.0.1:6379" })
 */
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Cidr, definePlugin, Metrics, RateLimit, Verdict } from "../../src/index.ts"
import type {
  ConnectContext, DeliveredContext, MailFromContext, Plugin, RcptToContext, SessionInfo
} from "../../src/index.ts"
import { authHooks } from "./Auth.ts"
import type { Options } from "./options.ts"
import { check, plan as planOf, type Plan, type RateLimitOptions, type Rule } from "./Plan.ts"

export type { AuthFailureOptions, RateInput, RatesInput, RateLimitOptions, RedisInput, UserOverride } from "./Plan.ts"

/**
 * Parses one `--rate-limit SCOPE=COUNT/PERIOD` value for the CLI; the left side is a message
 * for the user.
 *
 * @example
 * parseLimit("user=100/hour") // Either.right({ scope: "user", count: 100, periodMs: 3600000 })
 */
export const parseLimit = RateLimit.parseLimit

interface Keyed {
  readonly request: RateLimit.Request
  /** Words for the reply: `for alice`, `for sender domain example.org`. */
  readonly what: string
}

const keyed = (rule: Rule, value: string, what: string, cost = 1): Keyed => ({
  request: { key: `${rule.scope}:${rule.id}:${value}`, rate: rule.rate, cost },
  what
})

/** The most restrictive refusal among the results, or undefined when all allow. */
const refusal = (keys: ReadonlyArray<Keyed>, results: ReadonlyArray<RateLimit.Result>) => {
  let worst: { readonly what: string; readonly retryAfterMs: number } | undefined
  results.forEach((r, i) => {
    if (!r.allowed && (worst === undefined || r.retryAfterMs > worst.retryAfterMs)) {
      worst = { what: keys[i]!.what, retryAfterMs: r.retryAfterMs }
    }
  })
  return worst
}

const unavailable = Verdict.defer("Rate limit service unavailable, try again later", { code: 451, enhanced: "4.3.0" })

const storeOf = (options: Options): Layer.Layer<RateLimit.RateLimitStore, unknown> => {
  if (options.store !== undefined) return options.store
  if (options.redis === undefined) return RateLimit.layerMemory(options.maxKeys === undefined ? {} : { maxKeys: options.maxKeys })
  return RateLimit.layerRedis(typeof options.redis === "string" ? { url: options.redis } : options.redis)
}

/** The hooks over a store; exported for unit tests that bring their own store. */
export const hooksFor = (plan: Plan, store: RateLimit.Store) => {
  const network = (session: SessionInfo) => Cidr.aggregate(session.remoteAddress, plan.ipv4Prefix, plan.ipv6Prefix)
  // Replies name a single address without its /32 or /128.
  const shown = (net: string) => net.replace(/\/(32|128)$/, "")
  const exempt = (session: SessionInfo) => plan.exempt.length > 0 && Cidr.matchAny(plan.exempt, session.remoteAddress)
  const rulesFor = (scope: RateLimit.Scope, user: string | undefined): ReadonlyArray<Rule> => {
    const override = user === undefined ? undefined : plan.overrides.get(user)
    if (scope === "user" && override?.user !== undefined) return override.user
    if (scope === "recipients" && override?.recipients !== undefined) return override.recipients
    return plan.rules.filter((r) => r.scope === scope)
  }

  /** The message-counting keys of a transaction (or, at connect, of the session alone). */
  const messageKeys = (session: SessionInfo, from: string | null | undefined): Array<Keyed> => {
    const net = network(session)
    const keys = rulesFor("ip", undefined).map((r) => keyed(r, net, `for ${shown(net)}`))
    if (session.user !== undefined) keys.push(...rulesFor("user", session.user).map((r) => keyed(r, session.user!, `for ${session.user}`)))
    if (from !== undefined && from !== null) {
      const domain = from.toLowerCase()
      keys.push(...rulesFor("sender-domain", undefined).map((r) => keyed(r, domain, `for sender domain ${domain}`)))
    }
    return keys
  }

  const recipientKeys = (session: SessionInfo, cost: number): Array<Keyed> => {
    const who = session.user !== undefined ? `user:${session.user}` : `ip:${network(session)}`
    return rulesFor("recipients", session.user).map((r) => keyed(r, who, "for recipients", cost))
  }

  const decide = (mode: RateLimit.Mode, keys: ReadonlyArray<Keyed>) =>
    keys.length === 0 ? Effect.succeed([]) : store.update(mode, keys.map((k) => k.request))

  const onError = (fallback: Verdict.Verdict) => (error: RateLimit.RateLimitStoreError) =>
    Effect.as(
      Effect.logDebug(`rate-limit: store ${store.description} failed (${error.reason}): ${error.message}`),
      plan.onStoreError === "allow" ? Verdict.Continue : fallback
    )

  const retry = (ms: number) => `try again in ${RateLimit.formatRetry(ms)}`

  return {
    connect: Effect.fnUntraced(function*({ session }: ConnectContext) {
      if (exempt(session)) return Verdict.Continue
      const keys = messageKeys(session, undefined)
      // AUTH failures never refuse a connection: its mail may be legitimate (Auth.ts).
      const verdict = yield* Effect.catchAll(
        Effect.map(decide("peek", keys), (results) => {
          const worst = refusal(keys, results)
          return worst === undefined ? Verdict.Continue : Verdict.disconnect(`Too many messages ${worst.what}, ${retry(worst.retryAfterMs)}`)
        }),
        // At connect a store failure never disconnects: "deny" refuses at MAIL and AUTH instead.
        onError(Verdict.Continue)
      )
      if (verdict._tag !== "Continue" || plan.connections.length === 0) return verdict
      // Counted only once the connection is otherwise welcome, so refused attempts add no debt.
      const net = network(session)
      const conn = plan.connections.map((r) => keyed(r, net, `from ${shown(net)}`))
      return yield* Effect.catchAll(
        Effect.map(decide("acquire", conn), (results) => {
          const worst = refusal(conn, results)
          return worst === undefined ? Verdict.Continue : Verdict.disconnect(`Too many connections ${worst.what}, ${retry(worst.retryAfterMs)}`)
        }),
        onError(Verdict.Continue)
      )
    }),

    ...authHooks(plan.auth, store, { exempt, onStoreError: plan.onStoreError }),

    mailFrom: Effect.fnUntraced(function*({ from, session }: MailFromContext) {
      if (exempt(session)) return Verdict.Continue
      const keys = messageKeys(session, from === null ? null : from.domain)
      return yield* Effect.catchAll(
        Effect.map(decide("peek", keys), (results) => {
          const worst = refusal(keys, results)
          return worst === undefined
            ? Verdict.Continue
            : Verdict.defer(`Message rate limit exceeded ${worst.what}, ${retry(worst.retryAfterMs)}`, { code: 451, enhanced: "4.7.1" })
        }),
        onError(unavailable)
      )
    }),

    // The recipients of this transaction are not counted yet (that happens on delivery), so the
    // check asks whether all of them plus this one would fit.
    rcptTo: Effect.fnUntraced(function*({ session, transaction }: RcptToContext) {
      if (exempt(session)) return Verdict.Continue
      const keys = recipientKeys(session, transaction.recipients.length + 1)
      return yield* Effect.catchAll(
        Effect.map(decide("peek", keys), (results) => {
          const worst = refusal(keys, results)
          return worst === undefined
            ? Verdict.Continue
            : Verdict.defer(`Recipient rate limit exceeded, ${retry(worst.retryAfterMs)}`, { code: 450, enhanced: "4.7.1" })
        }),
        onError(unavailable)
      )
    }),

    delivered: Effect.fnUntraced(function*({ results, session, transaction }: DeliveredContext) {
      if (exempt(session)) return
      const accepted = results.filter((r) => r.reply.code >= 200 && r.reply.code < 300).length
      if (accepted === 0) return
      const keys = [...messageKeys(session, transaction.mailFrom?.domain ?? null), ...recipientKeys(session, accepted)]
      yield* Effect.catchAll(decide("consume", keys), onError(Verdict.Continue))
    })
  }
}

/** Every refusal also counts in the `rate_limit_hits_total` metric, labelled with the hook. */
const counted = (hooks: ReturnType<typeof hooksFor>): ReturnType<typeof hooksFor> => {
  const wrap = <C>(name: string, hook: (ctx: C) => Effect.Effect<Verdict.Verdict>) => (ctx: C): Effect.Effect<Verdict.Verdict> =>
    Effect.tap(hook(ctx), (verdict) => verdict._tag === "Continue" ? Effect.void : Metrics.rateLimitHit({ plugin: "rate-limit", limit: name }))
  return {
    ...hooks,
    connect: wrap("connect", hooks.connect),
    authAttempt: wrap("auth", hooks.authAttempt),
    mailFrom: wrap("mailFrom", hooks.mailFrom),
    rcptTo: wrap("rcptTo", hooks.rcptTo)
  }
}

/**
 * Creates the plugin. Throws an `Error` starting with `rate-limit:` when an option is invalid.
 * Its `authAttempt` hook delays and refuses AUTH before any backend checks the credentials, wherever it is in the list.
 *
 * @example
 * rateLimit({ perIp: "200/hour", ipv4Prefix: 24, perUser: ["20/minute", "500/day"], users: { bulk: { perUser: "unlimited" } } })
 */
export const rateLimit = (input: RateLimitOptions = {}): Plugin => {
  const options = check(input)
  const plan = planOf(options)
  const longest = plan.auth === undefined ? Duration.zero : plan.auth.maxDelay
  return definePlugin({
    name: "rate-limit",
    // The Redis client's connection, shared by every session.
    ...(options.redis === undefined ? {} : { files: { held: 1 } }),
    // The AUTH delay must not count as a hung hook.
    // An attempt may also wait up to maxDelay for the attempts ahead of it (Gate.ts).
    timeout: Duration.max(Duration.seconds(30), Duration.sum(Duration.times(longest, 2), Duration.seconds(10))),
    setup: Effect.gen(function*() {
      const context = yield* Layer.build(storeOf(options))
      const store = Context.get(context, RateLimit.RateLimitStore)
      const described = plan.rules.map((r) => RateLimit.formatLimit({ scope: r.scope, ...r.rate }))
      yield* Effect.logInfo(
        `rate-limit: store ${store.description}, limits ${described.length === 0 ? "none" : described.join(" ")}, ` +
          `auth failures ${plan.auth === undefined ? "off" : "on"}, on store error ${plan.onStoreError}`
      )
      return counted(hooksFor(plan, store))
    })
  })
}

export default rateLimit
