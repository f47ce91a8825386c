/**
 * Cookbook: greylisting. The first attempt from a (client /24, sender, recipient) triplet gets a
 * 451 4.7.1; a retry after `delay` passes, and so does the triplet for `remember` after that.
 * Real MTAs retry; most spam cannons do not. Counts live in the store `shared-store.ts` provides
 * (memory or Redis), so list it first. Authenticated clients are never greylisted.
 *
 * @example
 * plugins: [sharedStore(), greylist({ delay: "5 minutes" })]
 */
import { Duration, Effect, Schema } from "effect"
import { definePlugin, PluginError, RateLimit, Units, Verdict } from "smtp-bridge"
import type { Hooks } from "smtp-bridge"

const network = (ip: string): string => {
  const v4 = /^(?:::ffff:)?(\d+\.\d+\.\d+)\.\d+$/.exec(ip)
  // IPv6: the /64, the usual size of one site.
  return v4 !== null ? `${v4[1]}.0/24` : `${ip.split(":").slice(0, 4).join(":")}::/64`
}

export const greylist = definePlugin({
  name: "greylist",
  options: Schema.Struct({
    delay: Units.Duration,
    remember: Schema.optionalWith(Units.Duration, { exact: true })
  }),
  make: ({ delay, remember }) => ({
    setup: Effect.gen(function*() {
      const store = yield* RateLimit.RateLimitStore
      const wait = { count: 1, periodMs: Duration.toMillis(delay) }
      const seen = { count: 1, periodMs: Duration.toMillis(remember ?? Duration.days(35)) }
      const update = (mode: RateLimit.Mode, requests: ReadonlyArray<RateLimit.Request>) =>
        store.update(mode, requests).pipe(Effect.mapError((e) => new PluginError({ reason: "Unavailable", message: e.message })))
      return {
        rcptTo: Effect.fnUntraced(function*({ session, transaction, recipient }) {
          if (session.user !== undefined) return Verdict.Continue
          const triplet = `${network(session.remoteAddress)}|${transaction.mailFrom?.address ?? "<>"}|${recipient.mailbox.address}`.toLowerCase()
          const keys = { wait: { key: `grey:wait:${triplet}`, rate: wait, cost: 1 }, seen: { key: `grey:seen:${triplet}`, rate: seen, cost: 1 } }
          const [known] = yield* update("peek", [keys.seen])
          if (known!.used === 0) {
            yield* update("consume", [keys.wait, keys.seen])
            return Verdict.defer("Greylisted, please try again later", { code: 451, enhanced: "4.7.1" })
          }
          const [early] = yield* update("peek", [keys.wait])
          return early!.allowed ? Verdict.Continue : Verdict.defer("Greylisted, please try again later", { code: 451, enhanced: "4.7.1" })
        })
      } satisfies Hooks
    })
  })
})

export default greylist
