// `serve` in the plain form is parsed by ConfigFlags.plain, without @effect/cli (issue 16: start-up
// time); every other line by @effect/cli. These tests hold the two to the same options on every
// line that plain accepts, and list the lines it leaves to @effect/cli.
import { Command } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Console, Effect, FastCheck as fc, Option } from "effect"
import * as ConfigFlags from "../../../src/commands/ConfigFlags.ts"
import * as FlagOptions from "../../../src/commands/FlagOptions.ts"

const silent = Console.withConsole({ ...globalThis.console, error: () => Effect.void, log: () => Effect.void } as unknown as Console.Console)

/** What @effect/cli gives `serve` for `args`, in a tree with the same command names as Cli.ts. */
const parsedByCli = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    let parsed: ConfigFlags.ConfigOptions | undefined
    const serve = Command.make("serve", FlagOptions.options, (o) => Effect.sync(() => void (parsed = o)))
    const others = ["check-config", "hash-password", "queue", "dkim", "plugins", "replay"].map((name) => Command.make(name))
    const root = Command.make("smtp-bridge").pipe(Command.withSubcommands([serve, ...others]))
    const run = Command.run(root, { name: "smtp-bridge", version: "0.0.0" })
    yield* run(["node", "smtp-bridge", "serve", ...args]).pipe(Effect.provide(NodeContext.layer), Effect.either, silent)
    return parsed
  })

const keys = Object.keys(ConfigFlags.docs) as Array<keyof typeof ConfigFlags.docs>

const value = fc.oneof(
  fc.constantFrom("127.0.0.1:2525", "[::1]:587", "json", "pretty", "serve", "queue", "smtp-bridge", "true", "false", "yes", "a=b", "x y", "25MB", "0", "/tmp/a b"),
  fc.string({ minLength: 1, maxLength: 6 }),
  fc.constantFrom("-1", " padded", "", "--listen"),
  // Secrets and paths as people write them: control characters, non-ASCII, dashes, encoded dots.
  fc.constantFrom("s3cr3t\nX-Injected: 1", "p\u00e4ssw\u00f6rd", "--", "-", "a\u0000b", "%2F..%2Fetc", "tab\tbed", "end ")
)

const flag = fc.tuple(fc.constantFrom(...keys), value).map(([key, v]) => {
  const doc: ConfigFlags.FlagDoc = ConfigFlags.docs[key]
  return doc.pseudo === undefined ? [`--${doc.name}`] : [`--${doc.name}`, v]
})

/** Lines made of the serve flags: mostly plain ones, with repeats, switches, odd values and stray words. */
const line = fc.array(fc.oneof({ weight: 12, arbitrary: flag }, { weight: 1, arbitrary: value.map((v) => [v]) }), { maxLength: 6 })
  .map((parts) => parts.flat())

describe("ConfigFlags.plain", () => {
  it.effect("gives what @effect/cli gives serve on every line it accepts", () =>
    Effect.gen(function*() {
      let accepted = 0
      const samples = fc.sample(line, { numRuns: 300, seed: 16 })
      for (const args of samples) {
        const plain = ConfigFlags.plain(args)
        if (plain === undefined) continue
        accepted++
        expect(yield* parsedByCli(args), args.join(" ")).toEqual(plain)
      }
      // The comparison means something only if most lines were plain.
      expect(accepted).toBeGreaterThan(100)
    }), 60_000)

  it.effect("gives no flag given as @effect/cli does: empty lists, Option.none, false", () =>
    Effect.gen(function*() {
      const none = ConfigFlags.plain([])!
      expect(none.listen).toEqual([])
      expect(none.config).toEqual(Option.none())
      expect(none.verify).toBe(false)
      expect(yield* parsedByCli([])).toEqual(none)
    }))

  it("keeps repeated flags in order and reads switches and choices", () => {
    const o = ConfigFlags.plain(["--listen", "127.0.0.1:25", "--trust", "10.0.0.0/8", "--listen", "[::1]:25", "--verify", "--log-format", "json"])!
    expect(o.listen).toEqual(["127.0.0.1:25", "[::1]:25"])
    expect(o.trust).toEqual(["10.0.0.0/8"])
    expect(o.verify).toBe(true)
    expect(o.logFormat).toEqual(Option.some("json"))
  })

  it("leaves to @effect/cli every line not in the plain form", () => {
    for (
      const args of [
        ["--listen=127.0.0.1:25"],
        ["--LISTEN", "127.0.0.1:25"],
        ["--verify", "true"],
        ["--hostname", "a", "--hostname", "b"],
        ["--verify", "--verify"],
        ["--log-format", "xml"],
        ["--listen"],
        ["--listen", "-1"],
        ["--listen", " x"],
        ["--listen", ""],
        ["--log-level", "debug"],
        ["--help"],
        ["--version"],
        ["--bogus"],
        ["extra"]
      ]
    ) expect(ConfigFlags.plain(args), args.join(" ")).toBeUndefined()
  })
})
