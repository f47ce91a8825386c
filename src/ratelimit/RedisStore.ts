/**
 * The shared store: every decision is one `EVALSHA` of one Lua script, so it is atomic and one
 * round trip whatever the number of keys. The script runs the same GCRA as `Limiter.evaluate`
 * on Redis's own clock (`TIME`), so bridges with skewed clocks still agree, and stores each TAT
 * with `PX` expiry: a key disappears once it holds nothing.
 *
 * All keys of one call go to one Redis. On Redis Cluster the prefix becomes a hash tag
 * (`{smtp-bridge:rl:}user:alice`), so every key lives in one slot and the script stays one atomic
 * step over them; the price is that one primary holds all the counts (a few bytes per key, one
 * small script per decision: far below what one Redis serves), the cluster still giving failover.
 *
 * @example
 * const store = yield* RedisStore.make({ url: "redis://127.0.0.1:6379" })
 * yield* store.update("peek", [{ key: "user:alice", rate: { count: 100, periodMs: 3_600_000 }, cost: 1 }])
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { createHash } from "node:crypto"
import * as Limiter from "./Limiter.ts"
import * as Redis from "./Redis.ts"
import { RateLimitStore, RateLimitStoreError, type Result, type Store } from "./Store.ts"

export interface RedisStoreOptions extends Redis.RedisOptions {
  /** Prefix of every key; default `smtp-bridge:rl:`. Several deployments may share one Redis. */
  readonly prefix?: string
}

// ARGV: mode, then interval, period, cost and tolerance per key. Mirrors Limiter.evaluate and
// Limiter.used operation for operation (Lua numbers are doubles too), and keeps
// every TAT at full precision (%.17g): rounded to %.3f, the next decision drifted from the memory
// store's by one event near the limit (found by test/e2e/rate-limit/redis-script.test.ts).
export const script = `
local mode = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local nexts = {}
local all = 1
for i = 1, #KEYS do
  local interval = tonumber(ARGV[i * 4 - 2])
  local period = tonumber(ARGV[i * 4 - 1])
  local cost = tonumber(ARGV[i * 4])
  local tolerance = tonumber(ARGV[i * 4 + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  local used = 0
  if tat > now then used = math.max(0, math.ceil((tat - now - tolerance) / interval)) else tat = now end
  local nxt = tat + cost * interval
  local excess = nxt - now - period
  local allowed, remaining, retry = 1, 0, 0
  if excess > tolerance then
    allowed = 0
    all = 0
    retry = math.ceil(excess)
  else
    remaining = math.max(0, math.floor((period - (nxt - now) + tolerance) / interval))
  end
  nexts[i] = nxt
  out[i] = { allowed, remaining, retry, used }
end
if mode == 'reset' then
  for i = 1, #KEYS do redis.call('DEL', KEYS[i]) end
elseif mode == 'consume' or (mode == 'acquire' and all == 1) then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%.17g', nexts[i]), 'PX', math.max(1, math.ceil(nexts[i] - now)))
  end
end
if mode == 'acquire' then
  for i = 1, #KEYS do out[i][1] = all end
end
return out
`

const protocol = (message: string) => new RateLimitStoreError({ reason: "Protocol", message })

const sha = createHash("sha1").update(script).digest("hex")

const decodeResults = (value: unknown, count: number): Effect.Effect<ReadonlyArray<Result>, RateLimitStoreError> => {
  if (!Array.isArray(value) || value.length !== count) {
    return Effect.fail(protocol(`rate limit script answered ${JSON.stringify(value)?.slice(0, 80)} instead of ${count} results`))
  }
  const results: Array<Result> = []
  for (const item of value) {
    const [allowed, remaining, retry, used] = Array.isArray(item) ? item : []
    if (![allowed, remaining, retry, used].every((n) => typeof n === "number")) {
      return Effect.fail(protocol("rate limit script answered a malformed result"))
    }
    results.push({ allowed: allowed === 1, remaining, retryAfterMs: retry, used })
  }
  return Effect.succeed(results)
}

/** Connects (in the scope) and returns the store; Redis being down is not an error here. */
export const make = (options: RedisStoreOptions): Effect.Effect<Store, string, Scope.Scope> =>
  Effect.gen(function*() {
    const redis = yield* Redis.make(options)
    const given = options.prefix ?? "smtp-bridge:rl:"
    const prefix = redis.cluster ? Redis.hashTagged(given) : given

    const update: Store["update"] = (mode, requests) => {
      if (requests.length === 0) return Effect.succeed([])
      const keys = requests.map((r) => prefix + r.key)
      const argv: Array<string | number> = [mode]
      for (const r of requests) argv.push(Limiter.intervalOf(r.rate), r.rate.periodMs, r.cost, Limiter.toleranceOf(r.rate))
      return redis.call("EVALSHA", sha, keys.length, ...keys, ...argv).pipe(
        // A Redis that restarted, failed over or ran SCRIPT FLUSH has forgotten the script: EVAL
        // runs it and caches it again, so only that one decision takes a second round trip.
        Effect.catchIf(
          (e) => e.reason === "Protocol" && e.message.includes("NOSCRIPT"),
          () => redis.call("EVAL", script, keys.length, ...keys, ...argv)
        ),
        Effect.flatMap((value) => decodeResults(value, requests.length))
      )
    }

    return { update, description: redis.description }
  })

/** The store as a layer; it connects when built and disconnects when its scope closes. */
export const layer = (options: RedisStoreOptions): Layer.Layer<RateLimitStore, string> => Layer.scoped(RateLimitStore, make(options))
