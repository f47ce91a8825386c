import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Schema } from "effect"
import * as Resolve from "../../../src/config/Resolve.ts"
import * as StaticDns from "../../../src/dns/Static.ts"
import * as Pipeline from "../../../src/pipeline/Pipeline.ts"
import { definePlugin } from "../../../src/pipeline/Plugin.ts"
import * as Verdict from "../../../src/pipeline/Verdict.ts"
import * as Units from "../../../src/util/Units.ts"
import { Contexts } from "smtp-bridge/testing"

// A user's plugin with an options schema, as docs/plugins.md shows: the factory keeps the
// options as given, the config loader checks them with the schema, `make` gets them decoded.
const made: Array<Duration.Duration> = []
const greylist = definePlugin({
  name: "greylist",
  options: Schema.Struct({
    delay: Units.Duration,
    networks: Schema.optionalWith(Schema.Array(Schema.String), { exact: true })
  }),
  make: ({ delay }) => {
    made.push(delay)
    return { rcptTo: () => Effect.succeed(Verdict.defer(`Greylisted for ${Duration.format(delay)}`, { code: 450 })) }
  }
})

const failure = (input: unknown) => Effect.flip(Resolve.resolve(input, "test.config.ts"))

describe("a user plugin's options schema", () => {
  it.effect("reports a bad option as one line naming the plugin, its position and the option", () =>
    Effect.gen(function*() {
      const error = yield* failure({ plugins: [greylist({ delay: "soon" })] })
      expect(error.message).toBe(
        "Invalid config: plugins[0] (greylist).delay: expected a duration like \"30 seconds\" or \"5 minutes\", or milliseconds above 0, got \"soon\" (test.config.ts)"
      )
      expect(error.field).toBe("plugins[0] (greylist).delay")
    }))

  it.effect("reports a missing option, a nested one and a misspelt one the same way", () =>
    Effect.gen(function*() {
      const noop = definePlugin({ name: "noop" })
      // @ts-expect-error: delay is required, as the type of the factory says too
      const missing = yield* failure({ plugins: [noop, greylist({})] })
      expect(missing.message).toBe(
        "Invalid config: plugins[1] (greylist).delay: expected a duration like \"30 seconds\" or \"5 minutes\", or milliseconds above 0, got nothing (test.config.ts)"
      )
      const nested = yield* failure({ plugins: [greylist({ delay: 1000, networks: ["10.0.0.0/8", 7 as unknown as string] })] })
      expect(nested.message).toBe("Invalid config: plugins[0] (greylist).networks[1]: expected a string, got 7 (test.config.ts)")
      // @ts-expect-error: no such option
      const misspelt = yield* failure({ plugins: [greylist({ delay: 1000, dealy: 5 })] })
      expect(misspelt.message).toBe("Invalid config: plugins[0] (greylist).dealy: unknown option, expected one of delay, networks (test.config.ts)")
    }))

  it.effect("reports a built-in's bad option in the same form", () =>
    Effect.gen(function*() {
      const error = yield* failure({ rateLimit: { authFailures: { delay: "soon" } } })
      expect(error.message).toBe(
        "Invalid config: rateLimit.authFailures.delay: expected a duration like \"30 seconds\" or \"5 minutes\", or milliseconds, got \"soon\" (test.config.ts)"
      )
    }))

  it.scoped("hands make the decoded options when the pipeline sets the plugin up", () =>
    Effect.gen(function*() {
      made.length = 0
      const config = yield* Resolve.resolve({ plugins: [greylist({ delay: "5 minutes" })] }, "test")
      expect(made).toEqual([])
      const pipeline = yield* Pipeline.make(config.plugins).pipe(Effect.provide(StaticDns.layer({})))
      expect(made.map(Duration.toMillis)).toEqual([300_000])
      expect(pipeline.plugins).toEqual([{ name: "greylist", hooks: ["rcptTo"] }])
      const outcome = yield* pipeline.run("rcptTo", { session: Contexts.session(), transaction: Contexts.transaction(), recipient: Contexts.recipient("bob@example.org") })
      expect(outcome.verdict).toEqual(Verdict.defer("Greylisted for 5m", { code: 450 }))
    }))

  it.scoped("fails set-up with the same line when the factory is used outside a config", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Pipeline.make([greylist({ delay: -5 })]).pipe(Effect.provide(StaticDns.layer({}))))
      expect(error.message).toContain("greylist: delay: expected a duration like \"30 seconds\" or \"5 minutes\", or milliseconds above 0, got -5")
    }))

  it.effect("leaves a plain definePlugin object as it is", () =>
    Effect.gen(function*() {
      const plain = definePlugin({ name: "plain", rcptTo: () => Effect.succeed(Verdict.Continue) })
      const config = yield* Resolve.resolve({ plugins: [plain] }, "test")
      expect(config.plugins[0]).toBe(plain)
      expect(Schema.is(Schema.Struct({ name: Schema.Literal("plain") }))(plain)).toBe(true)
    }))
})

describe("a user plugin's options, attacked", () => {
  const ldap = definePlugin({
    name: "ldap",
    options: Schema.Struct({ url: Schema.String, bindPassword: Schema.String.pipe(Schema.minLength(12)).annotations({ description: "a password of at least 12 characters" }) }),
    make: () => ({})
  })

  it.effect("never shows a secret option's value, in check-config's line or in the set-up error", () =>
    Effect.gen(function*() {
      const error = yield* failure({ plugins: [ldap({ url: "ldap://127.0.0.1", bindPassword: "hunter2" })] })
      expect(error.message).toBe("Invalid config: plugins[0] (ldap).bindPassword: expected a password of at least 12 characters, got \"(hidden)\" (test.config.ts)")
      const setup = yield* Effect.flip(Effect.scoped(Pipeline.make([ldap({ url: "ldap://127.0.0.1", bindPassword: "hunter2" })]).pipe(Effect.provide(StaticDns.layer({})))))
      expect(setup.message).toContain("ldap: bindPassword: expected a password of at least 12 characters, got \"(hidden)\"")
      expect(setup.message).not.toContain("hunter2")
    }))

  it.effect("reports an options schema that throws as a bad option, not a crash", () =>
    Effect.gen(function*() {
      const fragile = definePlugin({
        name: "fragile",
        options: Schema.Struct({ n: Schema.Number.pipe(Schema.filter(() => { throw new Error("boom") })) }),
        make: () => ({})
      })
      const error = yield* failure({ plugins: [fragile({ n: 1 })] })
      expect(error.message).toMatch(/^Invalid config: plugins\[0\] \(fragile\): expected .*\(the options schema failed: boom\), got an object \(test\.config\.ts\)$/)
      const setup = yield* Effect.flip(Effect.scoped(Pipeline.make([fragile({ n: 1 })]).pipe(Effect.provide(StaticDns.layer({})))))
      expect(setup.message).toContain("the options schema failed: boom")
    }))
})

describe("a user plugin's name in the error line", () => {
  it.effect("is escaped, so that a line break or a bidi control in it cannot forge or reorder log lines", () =>
    Effect.gen(function*() {
      const forged = definePlugin({ name: "evil\nInvalid config: all good\u202e", options: Schema.Struct({ n: Schema.Number }), make: () => ({}) })
      const error = yield* failure({ plugins: [forged({ n: "x" as unknown as number })] })
      expect(error.message).not.toContain("\n")
      expect(error.message).not.toContain("\u202e")
      expect(error.message).toBe("Invalid config: plugins[0] (evil\\u000aInvalid config: all good\\u202e).n: expected a number, got \"x\" (test.config.ts)")
    }))
})
