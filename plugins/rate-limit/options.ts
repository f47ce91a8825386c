/**
 * The rate-limit plugin's options as one `effect/Schema`: what a user writes (`OptionsInput`), and
 * every check, so that a bad rate, network, Redis URL or choice is reported by `check-config` as
 * one line naming the option. Imports only `effect` and pure leaf modules (no plugin API, no
 * config), so that the config schema can use it without an import circle.
 *
 * @example
 * Schema.decodeUnknownSync(Options)({ perUser: "100/hour", redis: "redis://127.0.0.1:6379" })
 */
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Cidr from "../../src/util/Cidr.ts"
import * as Limiter from "../../src/ratelimit/Limiter.ts"
import * as RedisUrl from "../../src/ratelimit/RedisUrl.ts"
import type { RateLimitStore } from "../../src/ratelimit/Store.ts"
import * as Units from "../../src/util/Units.ts"

// Absent, never `undefined` (exactOptionalPropertyTypes).
const optional = <S extends Schema.Schema.AnyNoContext>(schema: S) => Schema.optionalWith(schema, { exact: true })

const detail = <A>(result: Either.Either<A, string>): true | string => Either.match(result, { onLeft: (why) => why, onRight: () => true })

const RateText = Schema.String.pipe(Schema.filter((s) => detail(Limiter.parseRate(s))))
const RateObject = Schema.Struct({ count: Schema.Number, periodMs: Schema.Number }).pipe(
  Schema.filter((r) => (Number.isSafeInteger(r.count) && r.count >= 1 && Number.isFinite(r.periodMs) && r.periodMs > 0) ||
    "a rate needs a whole count >= 1 and a positive periodMs")
)

/** `"100/hour"`, `"1000 recipients/day"`, `"5/10 minutes"`, or `{ count, periodMs }`. */
export const Rate = Schema.Union(RateText, RateObject).annotations({
  description: "a rate like \"100/hour\" or \"5/10 minutes\" (COUNT/PERIOD, PERIOD one of second, minute, hour, day)"
})

/** One rate or several (all must hold: `["20/minute", "500/day"]`). */
export const Rates = Schema.Union(Rate, Schema.Array(Rate)).annotations({ description: "a rate like \"100/hour\" or an array of rates" })

const Unlimited = Schema.Literal("unlimited")

const Scope = Schema.Literal(...Limiter.scopes)

/** A `--rate-limit` value (`"user=100/hour"`) or `{ scope, count, periodMs }`. */
export const Limit = Schema.Union(
  Schema.String.pipe(Schema.filter((s) => detail(Limiter.parseLimit(s)))),
  Schema.Struct({ scope: Scope, count: Schema.Number, periodMs: Schema.Number })
).annotations({ description: "a rate limit like \"user=100/hour\"" })

const prefix = (bits: 32 | 128) =>
  Schema.Number.pipe(Schema.filter((n) => Number.isSafeInteger(n) && n >= 0 && n <= bits)).annotations({
    description: `a whole number from 0 to ${bits}`
  })

const CidrText = Schema.String.pipe(Schema.filter((s) => Cidr.parse(s) !== undefined)).annotations({
  description: "an address or a network such as 192.0.2.0/24 or 2001:db8::/32"
})

const RedisUrlText = Schema.String.pipe(Schema.filter((s) => {
  const target = RedisUrl.parse(s)
  return typeof target === "string" ? target : true
})).annotations({ description: "a URL like redis://[user:password@]host[:port][/db] or rediss://..." })

export const UserOverride = Schema.Struct({
  /** Replaces `perUser` for this user; `"unlimited"` lifts it. */
  perUser: optional(Schema.Union(Unlimited, Rates)),
  /** Replaces `recipients` for this user; `"unlimited"` lifts it. */
  recipients: optional(Schema.Union(Unlimited, Rates))
})

export const AuthFailureOptions = Schema.Struct({
  /** AUTH attempts (failed or in progress) from one client network (see `ipv4Prefix`); default `"30/hour"`. */
  perIp: optional(Rate),
  /**
   * AUTH attempts for one user name from one client network; default `"5/15 minutes"`. Never
   * counted across networks: an attacker must not be able to lock the owner out.
   */
  perUser: optional(Rate),
  /** Delay of the first failure's reply, doubled per attempt already counted; default 1 second. */
  delay: optional(Units.DurationText),
  /** Longest delay, also that of the 454 once a limit is reached; default 8 seconds. */
  maxDelay: optional(Units.DurationText),
  /** IPv4 clients count together per network of this prefix; default 24. */
  ipv4Prefix: optional(prefix(32)),
  /** IPv6 clients count together per network of this prefix; default 64. */
  ipv6Prefix: optional(prefix(128))
})

const NodeText = Schema.String.pipe(Schema.filter((s) => {
  const node = RedisUrl.parseNode(s, 6379)
  return typeof node === "string" ? node : true
})).annotations({ description: "a HOST:PORT string" })

const NonEmpty = Schema.String.pipe(Schema.minLength(1)).annotations({ description: "a non-empty string" })

export const RedisOptions = Schema.Struct({
  url: RedisUrlText,
  /** Find the master through Redis Sentinel: its name and the sentinels (`"host:port"`). */
  sentinel: optional(Schema.Struct({
    name: NonEmpty,
    sentinels: Schema.Array(NodeText).pipe(Schema.minItems(1)),
    username: optional(Schema.String),
    password: optional(Schema.String)
  })),
  /** Speak Redis Cluster; `nodes` are more seeds beside the URL's host. */
  cluster: optional(Schema.Struct({ nodes: optional(Schema.Array(NodeText)) })),
  /** PEM file of the CAs to trust for `rediss://`. */
  tlsCa: optional(Schema.String),
  prefix: optional(Schema.String),
  connectTimeout: optional(Units.DurationText),
  commandTimeout: optional(Units.DurationText),
  maxBackoff: optional(Units.DurationText)
})

const Store = Schema.declare((u: unknown): u is Layer.Layer<RateLimitStore, unknown> => Layer.isLayer(u)).annotations({
  description: "a Layer providing RateLimitStore"
})

export const Options = Schema.Struct({
  /** Connections from one client network, counted when accepted; refused at connect (421). */
  connections: optional(Rates),
  /** Messages accepted from one client network (see `ipv4Prefix`, `ipv6Prefix`); checked at connect and MAIL. */
  perIp: optional(Rates),
  /** Messages accepted from one authenticated user; checked at MAIL. */
  perUser: optional(Rates),
  /** Messages accepted with one envelope sender domain; checked at MAIL. */
  perSenderDomain: optional(Rates),
  /** Recipients accepted per authenticated user (per client network without AUTH); checked at RCPT. */
  recipients: optional(Rates),
  /** `--rate-limit` values (`"user=100/hour"`), added to the options above. */
  limits: optional(Schema.Array(Limit)),
  /** Per-user overrides, by authenticated identity. */
  users: optional(Schema.Record({ key: Schema.String, value: UserOverride })),
  /** IPv4 clients count together per network of this prefix; default 32 (each address alone). */
  ipv4Prefix: optional(prefix(32)),
  /** IPv6 clients count together per network of this prefix; default 64 (one customer's LAN). */
  ipv6Prefix: optional(prefix(128)),
  /** Networks never limited (monitoring, the operator's own hosts). */
  exempt: optional(Schema.Array(CidrText)),
  /** AUTH brute-force control; on by default, `false` turns it off. */
  authFailures: optional(Schema.Union(Schema.Literal(false), AuthFailureOptions)),
  /** Share counts through Redis (a URL or options); default an in-memory store. */
  redis: optional(Schema.Union(RedisUrlText, RedisOptions)),
  /** Keys the in-memory store keeps at most; default 100 000. */
  maxKeys: optional(Schema.Number.pipe(Schema.filter((n) => Number.isSafeInteger(n) && n >= 1)).annotations({ description: "a positive integer" })),
  /** A store of your own (tests, another backend); wins over `redis`. */
  store: optional(Store),
  /**
   * When the store cannot answer: `"allow"` (default, fail open: mail flows unlimited during a
   * Redis outage) or `"deny"` (fail closed: MAIL, RCPT and AUTH get 4xx until it returns).
   */
  onStoreError: optional(Schema.Literal("allow", "deny").annotations({ description: "\"allow\" or \"deny\"" }))
}).annotations({ description: "rate-limit options: { perIp?, perUser?, limits?, redis?, ... }" })

export type Options = typeof Options.Type
export type OptionsInput = typeof Options.Encoded
