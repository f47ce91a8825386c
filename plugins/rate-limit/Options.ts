/**
 * The options of the rate-limit plugin as a user writes them, and their validation into the
 * plan the hooks run. Every mistake throws at creation, naming the option, so a typo fails at
 * start-up instead of silently limiting nothing.
 */
import { Duration, Either } from "effect"
import { Cidr, RateLimit } from "../../src/index.ts"
import type { Layer } from "effect"

/** `"100/hour"`, `"1000 recipients/day"`, or `{ count, periodMs }`. */
export type RateInput = string | RateLimit.Rate

/** One rate or several (all must hold: `["20/minute", "500/day"]`). */
export type RatesInput = RateInput | ReadonlyArray<RateInput>

export interface UserOverride {
  /** Replaces `perUser` for this user; `"unlimited"` lifts it. */
  readonly perUser?: RatesInput | "unlimited"
  /** Replaces `recipients` for this user; `"unlimited"` lifts it. */
  readonly recipients?: RatesInput | "unlimited"
}

export interface AuthFailureOptions {
  /** AUTH attempts (failed or in progress) from one client network (see `ipv4Prefix`); default `"30/hour"`. */
  readonly perIp?: RateInput
  /**
   * AUTH attempts for one user name from one client network; default `"5/15 minutes"`. Never
   * counted across networks: an attacker must not be able to lock the owner out.
   */
  readonly perUser?: RateInput
  /** Delay of the first failure's reply, doubled per attempt already counted; default 1 second. */
  readonly delay?: Duration.DurationInput
  /** Longest delay, also that of the 454 once a limit is reached; default 8 seconds. */
  readonly maxDelay?: Duration.DurationInput
  /** IPv4 clients count together per network of this prefix; default 24. */
  readonly ipv4Prefix?: number
  /** IPv6 clients count together per network of this prefix; default 64. */
  readonly ipv6Prefix?: number
}

export interface RedisInput {
  readonly url: string
  readonly prefix?: string
  readonly connectTimeout?: Duration.DurationInput
  readonly commandTimeout?: Duration.DurationInput
  readonly maxBackoff?: Duration.DurationInput
}

export interface RateLimitOptions {
  /** Connections from one client network, counted when accepted; refused at connect (421). */
  readonly connections?: RatesInput
  /** Messages accepted from one client network (see `ipv4Prefix`, `ipv6Prefix`); checked at connect and MAIL. */
  readonly perIp?: RatesInput
  /** Messages accepted from one authenticated user; checked at MAIL. */
  readonly perUser?: RatesInput
  /** Messages accepted with one envelope sender domain; checked at MAIL. */
  readonly perSenderDomain?: RatesInput
  /** Recipients accepted per authenticated user (per client network without AUTH); checked at RCPT. */
  readonly recipients?: RatesInput
  /** `--rate-limit` values (`"user=100/hour"`), added to the options above. */
  readonly limits?: ReadonlyArray<string | RateLimit.Limit>
  /** Per-user overrides, by authenticated identity. */
  readonly users?: Readonly<Record<string, UserOverride>>
  /** IPv4 clients count together per network of this prefix; default 32 (each address alone). */
  readonly ipv4Prefix?: number
  /** IPv6 clients count together per network of this prefix; default 64 (one customer's LAN). */
  readonly ipv6Prefix?: number
  /** Networks never limited (monitoring, the operator's own hosts). */
  readonly exempt?: ReadonlyArray<string>
  /** AUTH brute-force control; on by default, `false` turns it off. */
  readonly authFailures?: AuthFailureOptions | false
  /** Share counts through Redis (a URL or options); default an in-memory store. */
  readonly redis?: string | RedisInput
  /** Keys the in-memory store keeps at most; default 100 000. */
  readonly maxKeys?: number
  /** A store of your own (tests, another backend); wins over `redis`. */
  readonly store?: Layer.Layer<RateLimit.RateLimitStore, unknown>
  /**
   * When the store cannot answer: `"allow"` (default, fail open: mail flows unlimited during a
   * Redis outage) or `"deny"` (fail closed: MAIL, RCPT and AUTH get 4xx until it returns).
   */
  readonly onStoreError?: "allow" | "deny"
}

export interface Rule {
  readonly scope: RateLimit.Scope
  readonly rate: RateLimit.Rate
  /** Part of the key, so two limits on one scope count separately. */
  readonly id: string
}

export interface Plan {
  readonly rules: ReadonlyArray<Rule>
  readonly connections: ReadonlyArray<Rule>
  readonly overrides: ReadonlyMap<string, { readonly user?: ReadonlyArray<Rule>; readonly recipients?: ReadonlyArray<Rule> }>
  readonly ipv4Prefix: number
  readonly ipv6Prefix: number
  readonly exempt: ReadonlyArray<Cidr.Cidr>
  readonly auth: {
    readonly perIp: RateLimit.Rate
    readonly perUser: RateLimit.Rate
    readonly delay: Duration.Duration
    readonly maxDelay: Duration.Duration
    readonly ipv4Prefix: number
    readonly ipv6Prefix: number
  } | undefined
  readonly onStoreError: "allow" | "deny"
}

const fail = (message: string): never => {
  throw new Error(`rate-limit: ${message}`)
}

const rateOf = (input: RateInput, where: string): RateLimit.Rate => {
  if (typeof input !== "string") {
    const ok = Number.isSafeInteger(input.count) && input.count >= 1 && Number.isFinite(input.periodMs) && input.periodMs > 0
    return ok ? input : fail(`${where}: a rate needs a whole count >= 1 and a positive periodMs`)
  }
  return Either.getOrElse(RateLimit.parseRate(input), (why) => fail(`${where}: ${why}`))
}

const rulesOf = (scope: RateLimit.Scope, input: RatesInput | undefined, where: string): Array<Rule> => {
  if (input === undefined) return []
  const list: ReadonlyArray<RateInput> = typeof input === "string" || !Array.isArray(input) ? [input as RateInput] : input
  return list.map((item) => {
    const rate = rateOf(item, where)
    return { scope, rate, id: `${rate.count}/${rate.periodMs}` }
  })
}

const prefixOf = (value: number | undefined, fallback: number, max: number, where: string): number => {
  if (value === undefined) return fallback
  return Number.isInteger(value) && value >= 0 && value <= max ? value : fail(`${where} must be a whole number from 0 to ${max}`)
}

const durationOf = (input: Duration.DurationInput | undefined, fallback: Duration.Duration, where: string): Duration.Duration => {
  if (input === undefined) return fallback
  const decoded = Duration.decodeUnknown(input)
  return decoded._tag === "Some" ? decoded.value : fail(`${where}: invalid duration ${JSON.stringify(input)}`)
}

/** Validates the options; throws an `Error` starting with `rate-limit:` naming the bad one. */
export const plan = (options: RateLimitOptions): Plan => {
  const rules: Array<Rule> = [
    ...rulesOf("ip", options.perIp, "perIp"),
    ...rulesOf("user", options.perUser, "perUser"),
    ...rulesOf("sender-domain", options.perSenderDomain, "perSenderDomain"),
    ...rulesOf("recipients", options.recipients, "recipients")
  ]
  for (const limit of options.limits ?? []) {
    const parsed = typeof limit === "string" ? Either.getOrElse(RateLimit.parseLimit(limit), (why) => fail(why)) : limit
    rules.push(...rulesOf(parsed.scope, { count: parsed.count, periodMs: parsed.periodMs }, `limits (${RateLimit.formatLimit(parsed)})`))
  }
  const overrides = new Map<string, { user?: ReadonlyArray<Rule>; recipients?: ReadonlyArray<Rule> }>()
  for (const [user, o] of Object.entries(options.users ?? {})) {
    const entry: { user?: ReadonlyArray<Rule>; recipients?: ReadonlyArray<Rule> } = {}
    if (o.perUser !== undefined) entry.user = o.perUser === "unlimited" ? [] : rulesOf("user", o.perUser, `users.${user}.perUser`)
    if (o.recipients !== undefined) {
      entry.recipients = o.recipients === "unlimited" ? [] : rulesOf("recipients", o.recipients, `users.${user}.recipients`)
    }
    overrides.set(user, entry)
  }
  const exempt = Cidr.parseList(options.exempt ?? [])
  if ("error" in exempt) fail(`exempt: ${exempt.error}`)
  if (options.redis !== undefined) {
    const target = RateLimit.parseRedisUrl(typeof options.redis === "string" ? options.redis : options.redis.url)
    if (typeof target === "string") fail(`redis: ${target}`)
  }
  const auth = options.authFailures === false ? undefined : options.authFailures ?? {}
  const onStoreError = options.onStoreError ?? "allow"
  if (onStoreError !== "allow" && onStoreError !== "deny") fail(`onStoreError must be "allow" or "deny"`)
  return {
    rules,
    // Same scope as perIp, its own key prefix: connections and messages count apart.
    connections: rulesOf("ip", options.connections, "connections").map((r) => ({ ...r, id: `conn:${r.id}` })),
    overrides,
    ipv4Prefix: prefixOf(options.ipv4Prefix, 32, 32, "ipv4Prefix"),
    ipv6Prefix: prefixOf(options.ipv6Prefix, 64, 128, "ipv6Prefix"),
    exempt: "ok" in exempt ? exempt.ok : [],
    auth: auth === undefined ? undefined : {
      perIp: rateOf(auth.perIp ?? "30/hour", "authFailures.perIp"),
      perUser: rateOf(auth.perUser ?? "5/15 minutes", "authFailures.perUser"),
      delay: durationOf(auth.delay, Duration.seconds(1), "authFailures.delay"),
      maxDelay: durationOf(auth.maxDelay, Duration.seconds(8), "authFailures.maxDelay"),
      ipv4Prefix: prefixOf(auth.ipv4Prefix, 24, 32, "authFailures.ipv4Prefix"),
      ipv6Prefix: prefixOf(auth.ipv6Prefix, 64, 128, "authFailures.ipv6Prefix")
    },
    onStoreError
  }
}
