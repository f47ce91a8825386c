// What a plugin says it opens (`files`): the session cap divides the process's open-files limit
// by it, so the pipeline refuses a count that would lift the cap (negative, fractional, NaN), and
// a plugin with options counts from its decoded options (defaults applied), never throwing on
// options the config check reports.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as StaticDns from "../../../src/dns/Static.ts"
import * as Pipeline from "../../../src/pipeline/Pipeline.ts"
import { definePlugin, type Files, type Plugin } from "../../../src/pipeline/Plugin.ts"
import { httpHooks } from "../../../plugins/http-hooks/index.ts"
import { milter } from "../../../plugins/milter/index.ts"
import { policy } from "../../../plugins/policy/index.ts"

const make = (plugins: ReadonlyArray<Plugin<unknown>>) => Pipeline.make(plugins).pipe(Effect.provide(StaticDns.layer({})))

const pooled = definePlugin({
  name: "pooled",
  options: Schema.Struct({ pool: Schema.optionalWith(Schema.Int, { default: () => 8 }), endpoints: Schema.Array(Schema.String) }),
  files: (o) => ({ perSession: o.endpoints.length, held: o.pool }),
  make: () => ({})
})

describe("a plugin's files", () => {
  it.scoped("are listed with the pipeline's plugins, from the decoded options with their defaults", () =>
    Effect.gen(function*() {
      const pipeline = yield* make([pooled({ endpoints: ["a", "b", "c"] }), milter({ milters: ["inet:127.0.0.1:1", "inet:127.0.0.1:2"] }), policy({ server: "inet:127.0.0.1:1" })])
      expect(pipeline.plugins.map((p) => [p.name, p.files])).toEqual([
        ["pooled", { perSession: 3, held: 8 }],
        ["milter", { perSession: 2 }],
        ["policy", { held: 16 }]
      ])
    }))

  it("count http-hooks' idle connections for each host it calls, and its body listener and the connections it takes at once with body: \"url\", held for the server's life", () => {
    const hooks = [{ stage: "data" as const, url: "http://127.0.0.1:1/hook" }]
    expect(httpHooks({ hooks }).files).toEqual({ perSession: 2, held: 16 })
    const twoHosts = [...hooks, { stage: "rcptTo" as const, url: "http://127.0.0.1:2/hook" }, { stage: "helo" as const, url: "http://127.0.0.1:1/other" }]
    expect(httpHooks({ hooks: twoHosts }).files).toEqual({ perSession: 2, held: 2 * 16 })
    expect(httpHooks({ hooks, body: "url" }).files).toEqual({ perSession: 2, held: 16 + 1 + 16 })
    expect(httpHooks({ hooks, body: "url", bodyServer: { maxConnections: 64 } }).files).toEqual({ perSession: 2, held: 16 + 1 + 64 })
  })

  it("count none for options that do not decode, and the factory does not throw: the config check names the option", () => {
    const bad = pooled({ endpoints: "a" } as never)
    expect(bad.files).toBeUndefined()
    expect(milter({} as never).files).toBeUndefined()
  })

  for (const [value, shown] of [[-1, "-1"], [1.5, "1.5"], [Number.NaN, "NaN"], [Number.POSITIVE_INFINITY, "Infinity"]] as const) {
    it.scoped(`stop the server when a count is ${shown}, naming the plugin and the field`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(make([definePlugin({ name: "odd", files: { perSession: value } })]))
        expect(error.plugin).toBe("odd")
        expect(error.message).toBe(`files.perSession must be a whole number from 0, not ${shown}`)
      }))
  }

  // A plugin is often plain JavaScript from a config file: what `files` is, and what reading it
  // does, is not known until the server reads it.
  for (const [what, files] of [["a string", "3"], ["a number", 3], ["null", null], ["an array", [2]]] as const) {
    it.scoped(`stop the server when files is ${what}, not { perSession?, held? }, naming the plugin`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(make([definePlugin({ name: "odd", files: files as never })]))
        expect(error.plugin).toBe("odd")
        expect(error.message).toBe(`files must be { perSession?, held? }, not ${JSON.stringify(files)}`)
      }))
  }

  it.scoped("stop the server when reading files throws, naming the plugin and what it threw", () =>
    Effect.gen(function*() {
      const plugin = {
        name: "getter",
        get files(): never {
          throw new Error("no count here")
        }
      }
      const error = yield* Effect.flip(make([plugin]))
      expect(error.plugin).toBe("getter")
      expect(error.message).toBe("files: no count here")
    }))

  it.scoped("count what was checked: a files that answers otherwise on a later read (a Proxy) is read once", () =>
    Effect.gen(function*() {
      let reads = 0
      const files = new Proxy({}, { get: (_, key) => (key === "perSession" ? (reads++ === 0 ? 1 : -1000) : undefined) })
      const pipeline = yield* make([definePlugin({ name: "shifty", files })])
      const counted = pipeline.plugins[0]!.files
      expect([counted?.perSession, counted?.perSession]).toEqual([1, 1])
    }))

  it.scoped("stop the server when a plugin's files function throws on options that decode, naming the plugin and what it threw", () =>
    Effect.gen(function*() {
      const broken = definePlugin({
        name: "broken",
        options: Schema.Struct({ endpoints: Schema.Array(Schema.String) }),
        files: (o): Files => {
          if (o.endpoints.length > 1) throw new Error("cannot count several endpoints")
          return { perSession: 1 }
        },
        make: () => ({})
      })
      const error = yield* Effect.flip(make([broken({ endpoints: ["a", "b"] })]))
      expect(error.plugin).toBe("broken")
      expect(error.message).toBe("files: cannot count several endpoints")
    }))

  it.scoped("accept 0 and leave a plugin without files at none", () =>
    Effect.gen(function*() {
      const pipeline = yield* make([definePlugin({ name: "zero", files: { held: 0 } }), definePlugin({ name: "plain" })])
      expect(pipeline.plugins.map((p) => p.files)).toEqual([{ held: 0 }, undefined])
    }))
})
