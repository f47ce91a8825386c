import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Logger, Ref } from "effect"
import * as StaticDns from "../../../src/dns/Static.ts"
import * as Pipeline from "../../../src/pipeline/Pipeline.ts"
import { definePlugin, type Hooks, PluginError } from "../../../src/pipeline/Plugin.ts"
import type { Verdict as VerdictType } from "../../../src/pipeline/Verdict.ts"
import * as Verdict from "../../../src/pipeline/Verdict.ts"
import { Contexts, script } from "../../../src/testing.ts"

// One connection shared by two plugins: the store plugin provides it, the others need it.
class Counter extends Context.Tag("test/Counter")<Counter, { readonly bump: (key: string) => Effect.Effect<number> }>() {}

const opened: Array<string> = []
const store = definePlugin({
  name: "store",
  provides: Layer.scoped(
    Counter,
    Effect.gen(function*() {
      const counts = yield* Ref.make(new Map<string, number>())
      yield* Effect.acquireRelease(Effect.sync(() => opened.push("open")), () => Effect.sync(() => opened.push("close")))
      return { bump: (key) => Ref.modify(counts, (m) => [(m.get(key) ?? 0) + 1, new Map(m).set(key, (m.get(key) ?? 0) + 1)]) }
    })
  )
})

const limit = (name: string, max: number) =>
  definePlugin({
    name,
    setup: Effect.gen(function*() {
      const counter = yield* Counter
      return {
        rcptTo: ({ recipient }) =>
          Effect.map(counter.bump(recipient.mailbox.address), (n) => (n > max ? Verdict.defer(`${name}: ${n} > ${max}`, { code: 452, enhanced: "4.2.2" }) : Verdict.Continue))
      } satisfies Hooks
    })
  })

const capture = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message, annotations }) => {
    const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
    lines.push(`${text} ${JSON.stringify(Object.fromEntries(annotations))}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

describe("plugin services", () => {
  it.effect("shares one provided service between the plugins after it, built once and released at the end", () =>
    Effect.gen(function*() {
      opened.length = 0
      // Both count on one counter, twice per RCPT: with counters of their own the 2nd RCPT would pass (2 <= 2).
      yield* script({ plugins: [store, limit("greylist", 5), limit("quota", 2)] }, `
        S: 220
        C: EHLO client.test
        S: 250
        C: MAIL FROM:<a@example.org>
        S: 250
        C: RCPT TO:<b@example.net>
        S: 250 2.1.5 Ok
        C: RCPT TO:<b@example.net>
        S: 452 4.2.2 quota: 4 > 2
      `)
      expect(opened).toEqual(["open", "close"])
    }))

  it.scoped("refuses to start when a plugin needs a service no plugin before it provides, naming both", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Pipeline.make([limit("quota", 1), store]).pipe(Effect.provide(StaticDns.layer({}))))
      expect(error.message).toBe("quota needs the service test/Counter: list a plugin that provides it before quota")
      expect(error.plugin).toBe("quota")
    }))

  it.effect("logs a PluginError with the plugin, the hook and its reason, and answers 451 4.3.0", () =>
    Effect.gen(function*() {
      const { lines, layer } = capture()
      const down = definePlugin({
        name: "remote-check",
        mailFrom: () => Effect.fail(new PluginError({ reason: "Unavailable", message: "policy server 127.0.0.1:10040 refused the connection" }))
      })
      yield* script({ plugins: [down] }, `
        S: 220
        C: EHLO client.test
        S: 250
        C: MAIL FROM:<a@example.org>
        S: 451 4.3.0 Temporary failure, please try again later
      `).pipe(Effect.provide(layer))
      const line = lines.find((l) => l.startsWith("plugin remote-check failed in mailFrom"))
      expect(line).toContain("plugin remote-check failed in mailFrom: Unavailable: policy server 127.0.0.1:10040 refused the connection")
      expect(line).toContain(`"reason":"Unavailable"`)
    }))
})

describe("definePlugin's types", () => {
  it.effect("keeps a defined hook defined, and its effect's own error and requirements (none here)", () =>
    Effect.gen(function*() {
      const plugin = definePlugin({
        name: "typed",
        rcptTo: ({ recipient }) => Effect.succeed(recipient.mailbox.domain === "example.com" ? Verdict.reject("no") : Verdict.Continue)
      })
      // No `!`, no Dns to provide: this line does not compile against a definePlugin that widens to Plugin.
      const run: Effect.Effect<VerdictType, never, never> = plugin.rcptTo(Contexts.rcptTo("bob@example.com"))
      expect((yield* run)._tag).toBe("Reject")
    }))
})
