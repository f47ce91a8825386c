import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Dgram from "node:dgram"
import * as Resolver from "../../../src/dns/Resolver.ts"
import { type Dnsmasq, startDnsmasq, txt } from "../../support/dnsmasq.ts"

const LONG = `v=DKIM1; k=rsa; p=${"A".repeat(600)}`

describe("Dns against a real server (dnsmasq on loopback)", () => {
  let dns: Dnsmasq
  beforeAll(async () => {
    dns = await startDnsmasq({
      zones: ["example.test"],
      ttl: 120,
      lines: [
        txt("example.test", "v=spf1 ip4:127.0.0.1 -all"),
        txt("sel._domainkey.example.test", LONG),
        "mx-host=example.test,mx.example.test,10",
        "host-record=mx.example.test,127.0.0.2,::2"
      ]
    })
  })
  afterAll(() => dns?.stop())

  it.live("resolves TXT, a long TXT record in 255-octet strings, MX, A and AAAA", () =>
    Effect.gen(function*() {
      const r = yield* Resolver.make({ servers: [dns.server], timeoutMs: 1000 })
      expect(yield* r.txt("example.test")).toEqual([["v=spf1 ip4:127.0.0.1 -all"]])
      const [key] = yield* r.txt("sel._domainkey.example.test")
      expect(key!.join("")).toBe(LONG)
      expect(yield* r.mx("example.test")).toEqual([{ exchange: "mx.example.test", priority: 10 }])
      expect(yield* r.a("mx.example.test")).toEqual(["127.0.0.2"])
      expect(yield* r.aaaa("mx.example.test")).toEqual(["::2"])
    }))

  it.live("answers NXDOMAIN inside the zone as NotFound, and a refused query as Temporary", () =>
    Effect.gen(function*() {
      const r = yield* Resolver.make({ servers: [dns.server], timeoutMs: 1000 })
      expect(yield* Effect.flip(r.txt("nope.example.test"))).toMatchObject({ reason: "NotFound", code: "ENOTFOUND" })
      expect(yield* Effect.flip(r.txt("elsewhere.invalid"))).toMatchObject({ reason: "Temporary", code: "EREFUSED" })
    }))

  it.live("answers a name that exists without the type asked (no data) as NotFound with ENODATA", () =>
    Effect.gen(function*() {
      const r = yield* Resolver.make({ servers: [dns.server], timeoutMs: 1000 })
      // example.test holds TXT and MX only; mx.example.test holds A and AAAA only.
      expect(yield* Effect.flip(r.aaaa("example.test"))).toMatchObject({ reason: "NotFound", code: "ENODATA" })
      expect(yield* Effect.flip(r.txt("mx.example.test"))).toMatchObject({ reason: "NotFound", code: "ENODATA" })
    }))

  it.live("gives mailauth the node:dns shapes and error codes: ENOTFOUND, ENODATA, EREFUSED", () =>
    Effect.gen(function*() {
      const r = yield* Resolver.make({ servers: [dns.server], timeoutMs: 1000 })
      const codeOf = (p: Promise<unknown>) => Effect.promise(() => p.then(() => "resolved", (e: { code?: string }) => e.code))
      expect(yield* Effect.promise(() => r.mailauth("example.test", "TXT"))).toEqual([["v=spf1 ip4:127.0.0.1 -all"]])
      expect(yield* Effect.promise(() => r.mailauth("example.test", "MX"))).toEqual([{ exchange: "mx.example.test", priority: 10 }])
      expect(yield* codeOf(r.mailauth("nope.example.test", "TXT"))).toBe("ENOTFOUND")
      expect(yield* codeOf(r.mailauth("example.test", "AAAA"))).toBe("ENODATA")
      expect(yield* codeOf(r.mailauth("elsewhere.invalid", "TXT"))).toBe("EREFUSED")
    }))

  it.live("keeps answers for their TTL: a cached name still resolves after the server is gone", () =>
    Effect.gen(function*() {
      const other = yield* Effect.promise(() =>
        startDnsmasq({ zones: ["cache.test"], ttl: 300, lines: [txt("cache.test", "cached")] })
      )
      const { cache, resolver } = yield* Resolver.makeWithCache({ servers: [other.server], timeoutMs: 300, attempts: 1 })
      expect(yield* resolver.txt("cache.test")).toEqual([["cached"]])
      yield* Effect.promise(() => other.stop())
      expect(yield* resolver.txt("cache.test")).toEqual([["cached"]])
      cache.clear()
      expect(yield* Effect.flip(resolver.txt("cache.test"))).toMatchObject({ reason: "Temporary" })
    }))

  it.live("times out a silent server with ETIMEOUT, and mailauth sees the same code", () =>
    Effect.gen(function*() {
      // A bound UDP socket that never answers.
      const silent = Dgram.createSocket("udp4")
      const port = yield* Effect.async<number>((resume) => {
        silent.bind(0, "127.0.0.1", () => resume(Effect.succeed(silent.address().port)))
      })
      const r = yield* Resolver.make({ servers: [`127.0.0.1:${port}`], timeoutMs: 200, attempts: 2 })
      const started = Date.now()
      expect(yield* Effect.flip(r.txt("example.test"))).toMatchObject({ reason: "Temporary", code: "ETIMEOUT" })
      expect(Date.now() - started).toBeLessThan(2000)
      const code = yield* Effect.promise(() => r.mailauth("example.test", "TXT").then(() => "ok", (e: { code?: string }) => e.code))
      expect(code).toBe("ETIMEOUT")
      silent.close()
    }))
})
