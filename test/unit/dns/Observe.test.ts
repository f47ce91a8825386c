import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Observe from "../../../src/dns/Observe.ts"
import * as Static from "../../../src/dns/Static.ts"
import * as Mailauth from "../../../src/mailauth/Mailauth.ts"

const zone = Static.make({
  "a.example": { TXT: ["v=spf1 ip4:192.0.2.1 -all"] },
  "b.example": { TXT: ["v=spf1 a:mail.b.example -all"] },
  "mail.b.example": { A: ["192.0.2.2"] }
})

/** An observer that keeps `TYPE name -> outcome` lines. */
const watcher = () => {
  const seen: Array<string> = []
  const observer: Observe.Observer = (name, type, answer) =>
    void seen.push(`${type} ${name} ${answer._tag === "Records" ? answer.records.length : answer._tag === "NoRecords" ? answer.code : answer.error.code}`)
  return { seen, observer }
}

describe("DNS lookups observed per fiber", () => {
  it.effect("tells the fiber's observer each lookup of the shared resolver, and no other fiber's", () =>
    Effect.gen(function*() {
      const one = watcher()
      const two = watcher()
      yield* Effect.all([
        Effect.locally(Effect.zipRight(zone.txt("a.example"), Effect.either(zone.txt("none.example"))), Observe.current, one.observer),
        Effect.locally(zone.a("mail.b.example"), Observe.current, two.observer),
        zone.txt("b.example")
      ], { concurrency: "unbounded" })
      expect(one.seen).toEqual(["TXT a.example 1", "TXT none.example ENOTFOUND"])
      expect(two.seen).toEqual(["A mail.b.example 1"])
    }))

  it.effect("sees mailauth's lookups too: they run on the calling fiber's runtime, not a fresh one", () =>
    Effect.gen(function*() {
      const w = watcher()
      const spf = yield* Mailauth.spf({ ip: "192.0.2.2", helo: "client.test", sender: "x@b.example", authservId: "mx.test", dns: zone }).pipe(
        Effect.locally(Observe.current, w.observer)
      )
      expect(spf.result).toBe("pass")
      // mailauth asks A and AAAA at once for `a:`.
      expect([...w.seen].sort()).toEqual(["A mail.b.example 1", "AAAA mail.b.example ENODATA", "TXT b.example 1"])
    }))
})
