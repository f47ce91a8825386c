import { expect, layer } from "@effect/vitest"
import * as Resolver from "../../../src/dns/Resolver.ts"
import { Effect, Runtime } from "effect"
import { routing, unknownTransports } from "../../../plugins/routing/index.ts"
import type { Dns, RouteContext } from "../../../src/index.ts"
import { costRatio } from "../../support/cost.ts"
import { Contexts } from "smtp-bridge/testing"

const route = (plugin: ReturnType<typeof routing>, ctx: Omit<RouteContext, "message" | "transports">) =>
  plugin.route!({ ...ctx, message: Contexts.content("Subject: hi\r\n\r\nbody\r\n"), transports: [] })

const summary = (routes: ReadonlyArray<{ transport: string; recipients: ReadonlyArray<{ mailbox: { address: string } }> }> | undefined) =>
  routes?.map((r) => [r.transport, r.recipients.map((x) => x.mailbox.address)])

layer(Resolver.layer())("routing", (it) => {
  it.effect("sends each recipient to the first rule matching its domain, the rest to the default", () =>
    Effect.gen(function*() {
      const plugin = routing({
        rules: [
          { recipientDomain: ["corp.example"], transport: "exchange" },
          { recipientDomain: [".tickets.example"], transport: "helpdesk" }
        ],
        defaultTransport: "postfix"
      })
      const t = Contexts.transaction({
        recipients: [Contexts.recipient("a@corp.example"), Contexts.recipient("b@eu.tickets.example"), Contexts.recipient("c@else.example"), Contexts.recipient("d@CORP.example")]
      })
      expect(summary(yield* route(plugin, { session: Contexts.session(), transaction: t }))).toEqual([
        ["exchange", ["a@corp.example", "d@CORP.example"]],
        ["helpdesk", ["b@eu.tickets.example"]],
        ["postfix", ["c@else.example"]]
      ])
    }))

  it.effect("matches recipient and sender patterns with wildcards, and <> for the null sender", () =>
    Effect.gen(function*() {
      const plugin = routing({
        rules: [
          { recipient: "billing+*@example.com", transport: "api" },
          { sender: "<>", transport: "bounces" },
          { sender: ["*@newsletter.example"], transport: "bulk" }
        ]
      })
      const s = Contexts.session()
      const plain = Contexts.transaction({ recipients: [Contexts.recipient("billing+42@example.com"), Contexts.recipient("x@example.com")] })
      expect(summary(yield* route(plugin, { session: s, transaction: plain }))).toEqual([
        ["api", ["billing+42@example.com"]],
        ["default", ["x@example.com"]]
      ])
      const bounce = Contexts.transaction({ mailFrom: null })
      expect(summary(yield* route(plugin, { session: s, transaction: bounce }))).toEqual([["bounces", ["bob@example.net"]]])
      const bulk = Contexts.transaction({ mailFrom: Contexts.mailbox("news@newsletter.example") })
      expect(summary(yield* route(plugin, { session: s, transaction: bulk }))).toEqual([["bulk", ["bob@example.net"]]])
    }))

  it.effect("matches by authenticated user and by client network", () =>
    Effect.gen(function*() {
      const plugin = routing({
        rules: [
          { user: ["app@example.com"], transport: "mail-api" },
          { network: ["10.0.0.0/8", "fd00::/8"], transport: "internal" }
        ]
      })
      const t = Contexts.transaction()
      const app = Contexts.session({ user: "app@example.com" })
      expect(summary(yield* route(plugin, { session: app, transaction: t }))).toEqual([["mail-api", ["bob@example.net"]]])
      const lan = Contexts.session({ remoteAddress: "10.1.2.3" })
      expect(summary(yield* route(plugin, { session: lan, transaction: t }))).toEqual([["internal", ["bob@example.net"]]])
      const v6 = Contexts.session({ remoteAddress: "fd00::1" })
      expect(summary(yield* route(plugin, { session: v6, transaction: t }))).toEqual([["internal", ["bob@example.net"]]])
      expect(summary(yield* route(plugin, { session: Contexts.session(), transaction: t }))).toEqual([["default", ["bob@example.net"]]])
    }))

  it.effect("matches patterns ASCII-case-insensitively, every star any run, and a Kelvin sign is no k", () =>
    Effect.gen(function*() {
      const plugin = routing({ rules: [{ recipient: ["*k*@*.example", "a*b*c@x"], transport: "t" }] })
      const to = (address: string) =>
        Effect.map(route(plugin, { session: Contexts.session(), transaction: Contexts.transaction({ recipients: [Contexts.recipient(address)] }) }), (r) => r?.[0]?.transport)
      expect(yield* to("BoOK@Mail.EXAMPLE")).toBe("t")
      expect(yield* to("kk@a.b.example")).toBe("t")
      expect(yield* to("abbbcc@x")).toBe("t")
      expect(yield* to("ac@x")).toBe("default")
      expect(yield* to("boo\u212a@mail.example")).toBe("default")
      expect(yield* to("book@example")).toBe("default")
    }))

  it.effect("matches a many-star pattern against an address that almost matches at most 10 times the cost of an ordinary one", () =>
    Effect.gen(function*() {
      const plugin = routing({ rules: [{ recipient: "*a*a*a*a*b@*", transport: "t" }] })
      const run = Runtime.runSync(yield* Effect.runtime<Dns>())
      const routeOf = (address: string) => {
        const t = Contexts.transaction({ recipients: [Contexts.recipient(address)] })
        return () => void run(route(plugin, { session: Contexts.session(), transaction: t }))
      }
      // `a`s that never end in `b`: a RegExp of `.*`s tries every way to split them among the stars
      // (34 ms for 40 of them, 490 ms for 60).
      const hostile = routeOf(`${"a".repeat(40)}@${"a".repeat(20)}.example`)
      const ordinary = routeOf(`${"x".repeat(40)}@${"x".repeat(20)}.example`)
      expect(costRatio(hostile, ordinary, { iterations: 20 })).toBeLessThan(10)
    }))

  it("refuses an invalid network naming the rule, and lists transports the config lacks", () => {
    expect(() => routing({ rules: [{ network: ["10.0.0.0/99"], transport: "x" }] })).toThrow(/rules\[0\]\.network/)
    expect(unknownTransports({ rules: [{ transport: "a" }, { transport: "b" }], defaultTransport: "c" }, ["a", "default"]))
      .toEqual(["b", "c"])
  })
})
