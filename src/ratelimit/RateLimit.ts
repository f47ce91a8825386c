/**
 * Rate limiting for plugins: the GCRA arithmetic, the `RateLimitStore` port and its two layers.
 * Exported from the public API as `RateLimit`, so plugins/rate-limit (and a user's own limiter)
 * use nothing else.
 *
 * @example
 * import { RateLimit } from "smtp-bridge"
 * const limit = RateLimit.parseLimit("user=100/hour") // Either of a Limit or the reason
 * const layer = RateLimit.layerRedis({ url: "redis://127.0.0.1:6379" }) // or RateLimit.layerMemory()
 */
export {
  evaluate, format as formatLimit, formatRetry, intervalOf, parseLimit, parseRate, periods, scopes, used
} from "./Limiter.ts"
export type { Decision, Limit, Period, Rate, Scope } from "./Limiter.ts"
export { RateLimitStore, RateLimitStoreError } from "./Store.ts"
export type { Mode, Request, Result, Store } from "./Store.ts"
export { defaultMaxKeys, layer as layerMemory, make as makeMemory } from "./MemoryStore.ts"
export type { MemoryOptions, MemoryStore } from "./MemoryStore.ts"
export { layer as layerRedis, make as makeRedis } from "./RedisStore.ts"
export type { RedisStoreOptions } from "./RedisStore.ts"
export { parse as parseRedisUrl } from "./RedisUrl.ts"
export { hashTagged as redisHashTagged } from "./Redis.ts"
export type { ClusterSeeds as RedisClusterSeeds, RedisOptions, SentinelOptions as RedisSentinelOptions } from "./Redis.ts"
