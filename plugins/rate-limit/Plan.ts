/**
 * The rate-limit plugin's options turned into the plan its hooks run. The options are checked
 * first against their schema (`options.ts`), so every mistake throws at creation as one line
 * naming the option, and a typo fails at start-up instead of silently limiting nothing.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { Cidr, decodeOptions, RateLimit } from "../../src/index.ts"
import { type AuthFailureOptions as AuthFailureSchema, Options, type OptionsInput, type Rate, type Rates, type RedisOptions, type UserOverride as UserOverrideSchema } from "./options.ts"

export type RateInput = typeof Rate.Encoded
export type RatesInput = typeof Rates.Encoded
export type UserOverride = typeof UserOverrideSchema.Encoded
export type AuthFailureOptions = typeof AuthFailureSchema.Encoded
export type RedisInput = typeof RedisOptions.Encoded
/** The options as a user writes them; `options.ts` holds their schema and every check. */
export type RateLimitOptions = OptionsInput

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

// The schema checked every value already: these only convert.
const rateOf = (input: RateInput): RateLimit.Rate =>
  typeof input === "string" ? Either.getOrElse(RateLimit.parseRate(input), () => ({ count: 1, periodMs: 1 })) : input

const rulesOf = (scope: RateLimit.Scope, input: RatesInput | undefined): Array<Rule> => {
  if (input === undefined) return []
  const list: ReadonlyArray<RateInput> = Array.isArray(input) ? input : [input as RateInput]
  return list.map((item) => {
    const rate = rateOf(item)
    return { scope, rate, id: `${rate.count}/${rate.periodMs}` }
  })
}

const durationOf = (input: Duration.DurationInput | undefined, fallback: Duration.Duration): Duration.Duration =>
  input === undefined ? fallback : Duration.decode(input)

/** Checks the options against their schema; throws an `Error` of one line, `rate-limit: <option>: <why>`. */
export const check = (input: unknown): Options =>
  Either.getOrThrowWith(Effect.runSync(Effect.either(decodeOptions("rate-limit", Options, input))), (e) => new Error(e.message))

/** The plan of checked options (`check`). */
export const plan = (options: Options): Plan => {
  const rules: Array<Rule> = [
    ...rulesOf("ip", options.perIp),
    ...rulesOf("user", options.perUser),
    ...rulesOf("sender-domain", options.perSenderDomain),
    ...rulesOf("recipients", options.recipients)
  ]
  for (const limit of options.limits ?? []) {
    const parsed = typeof limit === "string" ? Either.getOrThrow(RateLimit.parseLimit(limit)) : limit
    rules.push(...rulesOf(parsed.scope, { count: parsed.count, periodMs: parsed.periodMs }))
  }
  const overrides = new Map<string, { user?: ReadonlyArray<Rule>; recipients?: ReadonlyArray<Rule> }>()
  for (const [user, o] of Object.entries(options.users ?? {})) {
    const entry: { user?: ReadonlyArray<Rule>; recipients?: ReadonlyArray<Rule> } = {}
    if (o.perUser !== undefined) entry.user = o.perUser === "unlimited" ? [] : rulesOf("user", o.perUser)
    if (o.recipients !== undefined) entry.recipients = o.recipients === "unlimited" ? [] : rulesOf("recipients", o.recipients)
    overrides.set(user, entry)
  }
  const exempt = Cidr.parseList(options.exempt ?? [])
  const auth = options.authFailures === false ? undefined : options.authFailures ?? {}
  return {
    rules,
    // Same scope as perIp, its own key prefix: connections and messages count apart.
    connections: rulesOf("ip", options.connections).map((r) => ({ ...r, id: `conn:${r.id}` })),
    overrides,
    ipv4Prefix: options.ipv4Prefix ?? 32,
    ipv6Prefix: options.ipv6Prefix ?? 64,
    exempt: "ok" in exempt ? exempt.ok : [],
    auth: auth === undefined ? undefined : {
      perIp: rateOf(auth.perIp ?? "30/hour"),
      perUser: rateOf(auth.perUser ?? "5/15 minutes"),
      delay: durationOf(auth.delay, Duration.seconds(1)),
      maxDelay: durationOf(auth.maxDelay, Duration.seconds(8)),
      ipv4Prefix: auth.ipv4Prefix ?? 24,
      ipv6Prefix: auth.ipv6Prefix ?? 64
    },
    onStoreError: options.onStoreError ?? "allow"
  }
}
