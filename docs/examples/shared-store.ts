/**
 * Cookbook: one counter store for several plugins. It `provides` the `RateLimit.RateLimitStore`
 * service — in memory, or in Redis so that every bridge instance shares the counts — and the
 * plugins listed after it (greylist.ts, quotas.ts) use that one store: one Redis connection.
 *
 * @example
 * plugins: [sharedStore({ redis: "redis://127.0.0.1:6379" }), greylist({ delay: "5 minutes" }), quotas({ messages: 200 })]
 */
import { Layer } from "effect"
import { definePlugin, RateLimit } from "smtp-bridge"

export interface SharedStoreOptions {
  /** `redis://host:port[/db]`; without it, counts live in this process's memory. */
  readonly redis?: string
  /** Prefix of every Redis key, so that deployments can share a Redis. */
  readonly prefix?: string
}

export const sharedStore = (options: SharedStoreOptions = {}) =>
  definePlugin({
    name: "shared-store",
    provides: options.redis === undefined
      ? RateLimit.layerMemory()
      : RateLimit.layerRedis({ url: options.redis, prefix: options.prefix ?? "smtp-bridge:cookbook:" }).pipe(Layer.orDie)
  })

export default sharedStore
