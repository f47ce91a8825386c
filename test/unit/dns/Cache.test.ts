import { expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import * as Cache from "../../../src/dns/Cache.ts"
import { DnsError } from "../../../src/dns/Dns.ts"
import type * as Udp from "../../../src/dns/Udp.ts"

/** A lookup that counts the questions that reach it and answers with `outcome`. */
const counting = (outcome: (name: string) => Effect.Effect<Udp.Outcome, DnsError>) => {
  const asked: Array<string> = []
  const lookup: Udp.Lookup = (name, type) => {
    asked.push(`${type} ${name}`)
    return outcome(name)
  }
  return { asked, lookup }
}

const records = (ttl: number): Effect.Effect<Udp.Outcome> =>
  Effect.succeed({ _tag: "Records", records: [{ type: "TXT", value: ["v=spf1 -all"] }], ttl })

it.effect("answers again from the cache until the TTL runs out, with the TTL that is left", () =>
  Effect.gen(function*() {
    const inner = counting(() => records(60))
    const cache = Cache.make(inner.lookup)
    yield* cache.lookup("Example.test.", "TXT")
    yield* TestClock.adjust("59 seconds")
    const again = yield* cache.lookup("example.test", "TXT")
    expect(again.ttl).toBe(1)
    expect(inner.asked).toHaveLength(1)
    yield* TestClock.adjust("1 second")
    yield* cache.lookup("example.test", "TXT")
    expect(inner.asked).toHaveLength(2)
  }))

it.effect("keeps negative answers no longer than maxNegativeTtl", () =>
  Effect.gen(function*() {
    const inner = counting(() => Effect.succeed({ _tag: "NoRecords", code: "ENOTFOUND", ttl: 86_400 }))
    const cache = Cache.make(inner.lookup, { maxNegativeTtl: 30 })
    yield* cache.lookup("nope.test", "TXT")
    yield* TestClock.adjust("29 seconds")
    yield* cache.lookup("nope.test", "TXT")
    expect(inner.asked).toHaveLength(1)
    yield* TestClock.adjust("1 second")
    yield* cache.lookup("nope.test", "TXT")
    expect(inner.asked).toHaveLength(2)
  }))

it.effect("never keeps a temporary failure: the next lookup asks again", () =>
  Effect.gen(function*() {
    const inner = counting((name) =>
      Effect.fail(new DnsError({ reason: "Temporary", code: "ETIMEOUT", name, rrtype: "TXT", message: "timeout" }))
    )
    const cache = Cache.make(inner.lookup)
    expect((yield* Effect.flip(cache.lookup("slow.test", "TXT"))).code).toBe("ETIMEOUT")
    yield* Effect.flip(cache.lookup("slow.test", "TXT"))
    expect(inner.asked).toHaveLength(2)
    expect(cache.size()).toBe(0)
  }))

it.effect("holds at most maxEntries, pushing out the least recently used", () =>
  Effect.gen(function*() {
    const inner = counting(() => records(300))
    const cache = Cache.make(inner.lookup, { maxEntries: 2 })
    yield* cache.lookup("a.test", "TXT")
    yield* cache.lookup("b.test", "TXT")
    yield* cache.lookup("a.test", "TXT") // a is now the most recent
    yield* cache.lookup("c.test", "TXT") // pushes b out
    expect(cache.size()).toBe(2)
    yield* cache.lookup("a.test", "TXT")
    yield* cache.lookup("b.test", "TXT")
    expect(inner.asked).toEqual(["TXT a.test", "TXT b.test", "TXT c.test", "TXT b.test"])
  }))

it.effect("caps positive TTLs at maxTtl and raises them to minTtl", () =>
  Effect.gen(function*() {
    const long = counting(() => records(1_000_000))
    const capped = Cache.make(long.lookup, { maxTtl: 10 })
    yield* capped.lookup("a.test", "TXT")
    yield* TestClock.adjust("10 seconds")
    yield* capped.lookup("a.test", "TXT")
    expect(long.asked).toHaveLength(2)
    const zero = counting(() => records(0))
    const floored = Cache.make(zero.lookup, { minTtl: 5 })
    yield* floored.lookup("a.test", "TXT")
    yield* floored.lookup("a.test", "TXT")
    expect(zero.asked).toHaveLength(1)
  }))
