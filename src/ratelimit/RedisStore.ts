/**
 * The shared store: every decision is one `EVALSHA` of one Lua script, so it is atomic and one
 * round trip whatever the number of keys. The script runs the same GCRA as `Limiter.evaluate`
 * on Redis's own clock (`TIME`), so bridges with skewed clocks still agree, and stores each TAT
 * with `PX` expiry: a key disappears once it holds nothing.
 *
 * All keys of one call go to one Redis; on Redis Cluster they would have to share a hash slot,
 * which this store does not arrange (use a single primary, with replicas for failover).
 *
 * @example
 * const store = yield* RedisStore.make({ url: "redis://127.0.0.1:6379" })
 * yield* store.update("peek", [{ key: "user:alice", rate: { count: 100, periodMs: 3_600_000 }, cost: 1 }])
 */
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import * as Limiter from "./Limiter.ts"
import * as RedisClient from "./RedisClient.ts"
import type * as Resp from "./Resp.ts"
import { RateLimitStore, RateLimitStoreError, type Result, type Store } from "./Store.ts"

export interface RedisStoreOptions extends Omit<RedisClient.RedisOptions, "onConnect"> {
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

const integerAt = (value: Resp.Value, index: number): number | undefined => {
  if (value._tag !== "Array" || value.value === null) return undefined
  const item = value.value[index]
  return item?._tag === "Integer" ? item.value : undefined
}

const decodeResults = (value: Resp.Value, count: number): Effect.Effect<ReadonlyArray<Result>, RateLimitStoreError> => {
  if (value._tag === "Error") return Effect.fail(protocol(`rate limit script failed: ${value.value}`))
  if (value._tag !== "Array" || value.value === null || value.value.length !== count) {
    return Effect.fail(protocol(`rate limit script answered ${value._tag} instead of ${count} results`))
  }
  const results: Array<Result> = []
  for (const item of value.value) {
    const [allowed, remaining, retry, used] = [0, 1, 2, 3].map((i) => integerAt(item, i))
    if (allowed === undefined || remaining === undefined || retry === undefined || used === undefined) {
      return Effect.fail(protocol("rate limit script answered a malformed result"))
    }
    results.push({ allowed: allowed === 1, remaining, retryAfterMs: retry, used })
  }
  return Effect.succeed(results)
}

/** Connects (in the scope) and returns the store; Redis being down is not an error here. */
export const make = (options: RedisStoreOptions): Effect.Effect<Store, string, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options.prefix ?? "smtp-bridge:rl:"
    let sha: string | undefined
    const client = yield* RedisClient.make({
      ...options,
      // Loaded on every connection: a restarted Redis has forgotten its scripts.
      onConnect: (send) =>
        Effect.flatMap(send(["SCRIPT", "LOAD", script]), (value) =>
          value._tag === "Bulk" && value.value !== null
            ? Effect.sync(() => void (sha = value.value ?? undefined))
            : Effect.fail(protocol(`SCRIPT LOAD answered ${value._tag}`)))
    })

    const update: Store["update"] = (mode, requests) => {
      if (requests.length === 0) return Effect.succeed([])
      const keys = requests.map((r) => prefix + r.key)
      const argv: Array<string | number> = [mode]
      for (const r of requests) argv.push(Limiter.intervalOf(r.rate), r.rate.periodMs, r.cost, Limiter.toleranceOf(r.rate))
      const evalsha = sha === undefined
        ? client.command(["EVAL", script, keys.length, ...keys, ...argv])
        : client.command(["EVALSHA", sha, keys.length, ...keys, ...argv])
      return evalsha.pipe(
        // SCRIPT FLUSH between two connections' loads: fall back to EVAL once, which also caches it.
        Effect.flatMap((value) =>
          value._tag === "Error" && value.value.startsWith("NOSCRIPT")
            ? client.command(["EVAL", script, keys.length, ...keys, ...argv])
            : Effect.succeed(value)),
        Effect.flatMap((value) => decodeResults(value, requests.length))
      )
    }

    return { update, description: client.description }
  })

/** The store as a layer; it connects when built and disconnects when its scope closes. */
export const layer = (options: RedisStoreOptions): Layer.Layer<RateLimitStore, string> => Layer.scoped(RateLimitStore, make(options))
