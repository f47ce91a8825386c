/**
 * Cookbook: per-user daily quotas of messages and recipients. An authenticated user (or, without
 * AUTH, the client's address) may send `messages` messages and `recipients` recipients in any 24
 * hours; past either, RCPT or DATA gets a 452 4.2.2 (so the client retries tomorrow, nothing
 * bounces). Counts live in the store of `shared-store.ts` (memory or Redis): list it first.
 *
 * @example
 * plugins: [sharedStore({ redis: "redis://127.0.0.1:6379" }), quotas({ messages: 500, recipients: 2000 })]
 */
import { Effect, Schema } from "effect"
import { definePlugin, PluginError, RateLimit, Verdict } from "smtp-bridge"
import type { Hooks, SessionInfo } from "smtp-bridge"

const day = 24 * 60 * 60 * 1000
const Count = Schema.Int.pipe(Schema.positive()).annotations({ description: "a positive integer" })

export const quotas = definePlugin({
  name: "quotas",
  options: Schema.Struct({ messages: Count, recipients: Schema.optionalWith(Count, { exact: true }) }),
  make: ({ messages, recipients }) => ({
    setup: Effect.gen(function*() {
      const store = yield* RateLimit.RateLimitStore
      const who = (session: SessionInfo) => session.user ?? session.remoteAddress
      const acquire = (key: string, count: number, cost: number) =>
        store.update("acquire", [{ key, rate: { count, periodMs: day }, cost }]).pipe(
          Effect.map(([r]) => r!),
          Effect.mapError((e) => new PluginError({ reason: "Unavailable", message: e.message }))
        )
      const over = (what: string) => Verdict.defer(`Daily ${what} quota reached, try again tomorrow`, { code: 452, enhanced: "4.2.2" })
      return {
        rcptTo: Effect.fnUntraced(function*({ session }) {
          if (recipients === undefined) return Verdict.Continue
          return (yield* acquire(`quota:rcpt:${who(session)}`, recipients, 1)).allowed ? Verdict.Continue : over("recipient")
        }),
        data: Effect.fnUntraced(function*({ session }) {
          return (yield* acquire(`quota:msg:${who(session)}`, messages, 1)).allowed ? Verdict.Continue : over("message")
        })
      } satisfies Hooks
    })
  })
})

export default quotas
