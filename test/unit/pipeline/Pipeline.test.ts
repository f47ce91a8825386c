import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Logger, Scope, Tracer } from "effect"
import * as Pipeline from "../../../src/pipeline/Pipeline.ts"
import * as Resolver from "../../../src/dns/Resolver.ts"
import type { Hooks, Plugin, RcptToContext, Route, RouteContext } from "../../../src/pipeline/Plugin.ts"
import * as Verdict from "../../../src/pipeline/Verdict.ts"
import { Contexts } from "smtp-bridge/testing"

const rcptCtx: RcptToContext = { session: Contexts.session(), transaction: Contexts.transaction(), recipient: Contexts.recipient("bob@example.net") }
const routeCtx: RouteContext = Contexts.route(undefined, { transports: ["default", "other"] })
const failed = Verdict.Defer({ code: 451, enhanced: "4.3.0", text: "Temporary failure, please try again later" })

/** A plugin whose rcptTo records its name in `calls` and answers `verdict`. */
const voter = (name: string, calls: Array<string>, verdict: Verdict.Verdict, extra: Partial<Plugin> = {}): Plugin => ({
  name,
  rcptTo: () => Effect.sync(() => (calls.push(name), verdict)),
  ...extra
})

const router = (name: string, routes: ReadonlyArray<Route> | undefined): Plugin => ({ name, route: () => Effect.succeed(routes) })

/** Log messages, to check that a failing hook is logged with its plugin's name. */
const capture = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ message }) => void lines.push(Array.isArray(message) ? message.map(String).join(" ") : String(message)))
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** The pipeline with the system resolver as the `Dns` service hooks may use. */
const make = (plugins: Parameters<typeof Pipeline.make>[0]) => Pipeline.make(plugins).pipe(Effect.provide(Resolver.layer()))

describe("Pipeline", () => {
  describe("verdict hooks", () => {
    it.scoped("runs the plugins in configured order and continues when all continue", () =>
      Effect.gen(function*() {
        const calls: Array<string> = []
        const p = yield* make([voter("a", calls, Verdict.Continue), voter("b", calls, Verdict.Continue), voter("c", calls, Verdict.Continue)])
        expect(yield* p.run("rcptTo", rcptCtx)).toEqual({ verdict: Verdict.Continue, plugin: undefined })
        expect(calls).toEqual(["a", "b", "c"])
      }))

    it.scoped("stops at the first verdict other than Continue, which wins, and names its plugin", () =>
      Effect.gen(function*() {
        const calls: Array<string> = []
        const reject = Verdict.reject("No such user", { code: 550, enhanced: "5.1.1" })
        const p = yield* make([
          voter("a", calls, Verdict.Continue),
          voter("b", calls, reject),
          voter("c", calls, Verdict.accept())
        ])
        expect(yield* p.run("rcptTo", rcptCtx)).toEqual({ verdict: reject, plugin: "b" })
        expect(calls).toEqual(["a", "b"])
      }))

    it.scoped("lets Accept win over later Reject", () =>
      Effect.gen(function*() {
        const calls: Array<string> = []
        const p = yield* make([voter("a", calls, Verdict.accept()), voter("b", calls, Verdict.reject("no"))])
        const outcome = yield* p.run("rcptTo", rcptCtx)
        expect(outcome.verdict._tag).toBe("Accept")
        expect(outcome.plugin).toBe("a")
        expect(calls).toEqual(["a"])
      }))

    it.scoped("skips plugins without the hook and continues when none has it", () =>
      Effect.gen(function*() {
        const calls: Array<string> = []
        const p = yield* make([{ name: "quiet" }, voter("a", calls, Verdict.Continue)])
        expect(p.has("rcptTo")).toBe(true)
        expect(p.has("helo")).toBe(false)
        expect(yield* p.run("helo", { session: Contexts.session(), verb: "EHLO", name: "x" })).toEqual({ verdict: Verdict.Continue, plugin: undefined })
        expect(p.plugins).toEqual([{ name: "quiet", hooks: [] }, { name: "a", hooks: ["rcptTo"] }])
      }))

    it.scoped("turns a hook that fails into Defer 451 4.3.0, logged with the plugin's name, and runs no later plugin", () =>
      Effect.gen(function*() {
        const calls: Array<string> = []
        const log = capture()
        const p = yield* make([
          { name: "broken", rcptTo: () => Effect.fail(new Error("lookup failed")) },
          voter("after", calls, Verdict.Continue)
        ])
        const outcome = yield* p.run("rcptTo", rcptCtx).pipe(Effect.provide(log.layer))
        expect(outcome).toEqual({ verdict: failed, plugin: "broken" })
        expect(calls).toEqual([])
        expect(log.lines.join("\n")).toMatch(/plugin broken failed in rcptTo/)
      }))

    it.scoped("turns a hook that dies or throws into Defer 451 4.3.0", () =>
      Effect.gen(function*() {
        const log = capture()
        const dies = yield* make([{ name: "dies", rcptTo: () => Effect.die("bug") }])
        const throws = yield* make([{
          name: "throws",
          rcptTo: () => {
            throw new Error("thrown before returning an Effect")
          }
        }])
        expect(yield* dies.run("rcptTo", rcptCtx).pipe(Effect.provide(log.layer))).toEqual({ verdict: failed, plugin: "dies" })
        expect(yield* throws.run("rcptTo", rcptCtx).pipe(Effect.provide(log.layer))).toEqual({ verdict: failed, plugin: "throws" })
      }))

    // Hook deadlines are real timers (cheaper than a racing fiber on the hot path): live clock.
    it.scopedLive("turns a hook past the plugin's timeout into Defer 451 4.3.0, not earlier", () =>
      Effect.gen(function*() {
        const log = capture()
        const p = yield* make([{ name: "slow", timeout: "300 millis", rcptTo: () => Effect.never }])
        const started = performance.now()
        expect(yield* p.run("rcptTo", rcptCtx).pipe(Effect.provide(log.layer))).toEqual({ verdict: failed, plugin: "slow" })
        // A lower bound only: a loaded machine may answer late, never early (timers round down by 1 ms at most).
        expect(performance.now() - started).toBeGreaterThanOrEqual(299)
        expect(log.lines.join("\n")).toMatch(/plugin slow failed in rcptTo/)
      }))

    it.scopedLive("gives a hook 30 seconds by default: a slow hook that answers in time still decides", () =>
      Effect.gen(function*() {
        const log = capture()
        const p = yield* make([{ name: "slow", rcptTo: () => Effect.as(Effect.sleep("400 millis"), Verdict.accept()) }])
        expect((yield* p.run("rcptTo", rcptCtx).pipe(Effect.provide(log.layer))).verdict._tag).toBe("Accept")
        expect(log.lines).toEqual([])
      }))

    it.scoped("names each hook call in a span plugin.<name>.<hook> when a tracer collects spans", () =>
      Effect.gen(function*() {
        const names: Array<string> = []
        const builtIn = yield* Effect.tracer
        const recording = Tracer.make({
          span: (name, ...rest) => {
            names.push(name)
            return builtIn.span(name, ...rest)
          },
          context: builtIn.context
        })
        const p = yield* make([voter("a", [], Verdict.Continue)])
        yield* p.run("rcptTo", rcptCtx).pipe(Effect.withTracer(recording))
        expect(names).toEqual(["plugin.a.rcptTo"])
      }))

    it.scoped("lets an interruption through instead of turning it into a verdict", () =>
      Effect.gen(function*() {
        const p = yield* make([{ name: "waits", rcptTo: () => Effect.never }])
        const fiber = yield* Effect.fork(p.run("rcptTo", rcptCtx))
        yield* Effect.yieldNow()
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
      }))
  })

  describe("setup", () => {
    it.effect("merges the hooks setup returns with the static ones, in the server's scope", () =>
      Effect.gen(function*() {
        const calls: Array<string> = []
        const scope = yield* Scope.make()
        const plugin: Plugin = {
          name: "dynamic",
          rcptTo: () => Effect.sync(() => (calls.push("static rcptTo"), Verdict.Continue)),
          setup: Effect.gen(function*() {
            yield* Effect.addFinalizer(() => Effect.sync(() => calls.push("released")))
            calls.push("setup")
            const hooks: Hooks = { helo: () => Effect.sync(() => (calls.push("setup helo"), Verdict.reject("no"))) }
            return hooks
          })
        }
        const p = yield* make([plugin]).pipe(Scope.extend(scope))
        expect(p.plugins).toEqual([{ name: "dynamic", hooks: ["rcptTo", "helo"] }])
        yield* p.run("rcptTo", rcptCtx)
        expect((yield* p.run("helo", { session: Contexts.session(), verb: "EHLO", name: "x" })).verdict._tag).toBe("Reject")
        expect(calls).toEqual(["setup", "static rcptTo", "setup helo"])
        yield* Scope.close(scope, Exit.void)
        expect(calls.at(-1)).toBe("released")
      }))

    it.effect("fails with PluginSetupError naming the plugin when setup fails", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.scoped(make([
          { name: "fine" },
          { name: "redis", setup: Effect.fail(new Error("connection refused")) }
        ])))
        expect(error).toBeInstanceOf(Pipeline.PluginSetupError)
        expect(error.plugin).toBe("redis")
        expect(error.message).toBe("connection refused")
      }))
  })

  describe("route", () => {
    const one: ReadonlyArray<Route> = [{ transport: "default", recipients: [Contexts.recipient("bob@example.net")] }]
    const two: ReadonlyArray<Route> = [{ transport: "other", recipients: [Contexts.recipient("bob@example.net")] }]

    it.scoped("takes the routes of the first plugin that defines some", () =>
      Effect.gen(function*() {
        const p = yield* make([router("passes", undefined), router("first", one), router("second", two)])
        expect(yield* p.route(routeCtx)).toBe(one)
      }))

    it.scoped("is undefined when every plugin passes, or there is none", () =>
      Effect.gen(function*() {
        expect(yield* (yield* make([router("passes", undefined)])).route(routeCtx)).toBeUndefined()
        expect(yield* (yield* make([])).route(routeCtx)).toBeUndefined()
      }))

    it.scoped("passes over a route hook that fails, to the next plugin", () =>
      Effect.gen(function*() {
        const log = capture()
        const p = yield* make([{ name: "broken", route: () => Effect.fail("no map") }, router("second", two)])
        expect(yield* p.route(routeCtx).pipe(Effect.provide(log.layer))).toBe(two)
      }))
  })

  describe("notify", () => {
    it.scopedLive("calls every delivered hook in order and never fails, whatever a hook does", () =>
      Effect.gen(function*() {
        const log = capture()
        const calls: Array<string> = []
        const seen = (name: string) => () => Effect.sync(() => void calls.push(name))
        const p = yield* make([
          { name: "a", delivered: seen("a") },
          { name: "fails", delivered: () => Effect.fail("metrics down") },
          { name: "dies", delivered: () => Effect.die("bug") },
          { name: "hangs", timeout: "200 millis", delivered: () => Effect.never },
          { name: "b", delivered: seen("b"), disconnect: seen("b disconnect") }
        ])
        const fiber = yield* Effect.fork(
          p.notify("delivered", { session: Contexts.session(), transaction: Contexts.transaction(), results: [] }).pipe(Effect.provide(log.layer), Effect.exit)
        )
        expect(Exit.isSuccess(yield* Fiber.join(fiber))).toBe(true)
        expect(calls).toEqual(["a", "b"])
        yield* p.notify("disconnect", { session: Contexts.session() })
        expect(calls).toEqual(["a", "b", "b disconnect"])
      }))
  })
})
