import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Resolver from "../../../src/dns/Resolver.ts"
import * as Static from "../../../src/dns/Static.ts"
import * as Udp from "../../../src/dns/Udp.ts"

const zone = Static.make({
  "example.test": { TXT: ["v=spf1 -all", ["v=DKIM1; ", "p=abc"]], MX: [{ exchange: "mx.example.test", priority: 10 }], A: ["192.0.2.1"] },
  "1.2.0.192.in-addr.arpa": { PTR: ["host.example.test"] },
  "broken.test": "TEMPFAIL"
})

const codeOf = (p: Promise<unknown>) => p.then(() => "resolved", (e: { code?: string }) => e.code)

describe("Resolver", () => {
  it.effect("answers TXT as the strings of each record, MX, A and PTR by address", () =>
    Effect.gen(function*() {
      expect(yield* zone.txt("example.test")).toEqual([["v=spf1 -all"], ["v=DKIM1; ", "p=abc"]])
      expect(yield* zone.mx("EXAMPLE.test.")).toEqual([{ exchange: "mx.example.test", priority: 10 }])
      expect(yield* zone.a("example.test")).toEqual(["192.0.2.1"])
      expect(yield* zone.ptr("192.0.2.1")).toEqual(["host.example.test"])
    }))

  it.effect("fails with NotFound for NXDOMAIN and no data, Temporary for a timeout", () =>
    Effect.gen(function*() {
      expect(yield* Effect.flip(zone.txt("nope.test"))).toMatchObject({ reason: "NotFound", code: "ENOTFOUND" })
      expect(yield* Effect.flip(zone.aaaa("example.test"))).toMatchObject({ reason: "NotFound", code: "ENODATA" })
      expect(yield* Effect.flip(zone.txt("broken.test"))).toMatchObject({ reason: "Temporary", code: "ETIMEOUT" })
    }))

  it("gives mailauth node:dns shapes and error codes", async () => {
    expect(await zone.mailauth("example.test", "TXT")).toEqual([["v=spf1 -all"], ["v=DKIM1; ", "p=abc"]])
    expect(await zone.mailauth("example.test", "MX")).toEqual([{ exchange: "mx.example.test", priority: 10 }])
    expect(await codeOf(zone.mailauth("nope.test", "TXT"))).toBe("ENOTFOUND")
    expect(await codeOf(zone.mailauth("example.test", "AAAA"))).toBe("ENODATA")
    expect(await codeOf(zone.mailauth("broken.test", "TXT"))).toBe("ETIMEOUT")
    expect(await codeOf(zone.mailauth("example.test", "CAA"))).toBe("ENOTIMP")
  })

  it("writes reverse names for IPv4 and IPv6", () => {
    expect(Resolver.reverseName("192.0.2.1")).toBe("1.2.0.192.in-addr.arpa")
    expect(Resolver.reverseName("2001:db8::1")).toBe(
      "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
    )
  })

  it("parses servers as host, host:port, [v6]:port or a bare IPv6 address", () => {
    expect(Udp.parseServer("127.0.0.1:5353")).toEqual({ host: "127.0.0.1", port: 5353 })
    expect(Udp.parseServer("dns.test")).toEqual({ host: "dns.test", port: 53 })
    expect(Udp.parseServer("[::1]:5353")).toEqual({ host: "::1", port: 5353 })
    expect(Udp.parseServer("2001:db8::53")).toEqual({ host: "2001:db8::53", port: 53 })
    expect(Udp.parseServer("127.0.0.1:99999")).toBeUndefined()
    expect(Udp.parseServer("bad host")).toBeUndefined()
  })

  it.effect("refuses a server list entry that is not host[:port]", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Resolver.make({ servers: ["1.1.1.1", "nope nope"] }))
      expect(error.message).toBe(`DNS server "nope nope" is not host[:port]`)
    }))
})
