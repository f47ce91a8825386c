import { Effect, Metric } from "effect"
import { describe, expect, it } from "vitest"
import * as Cache from "../../../src/auth/Cache.ts"
import * as Instrument from "../../../src/auth/Instrument.ts"
import * as Prometheus from "../../../src/observability/Prometheus.ts"
import type { AuthContext, Plugin, SaslStep } from "../../../src/pipeline/Plugin.ts"
import * as Verdict from "../../../src/pipeline/Verdict.ts"
import { Contexts } from "smtp-bridge/testing"

const series = async (name: string, labels: Record<string, string>): Promise<number> => {
  const text = Prometheus.format(await Effect.runPromise(Metric.snapshot), { prefix: "smtp_bridge_auth_" })
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)))
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1))
}

const ctx = (username: string, password: string): AuthContext => ({ session: Contexts.session(), mechanism: "PLAIN", username, password, authzid: undefined })

describe("a backend's meters and cache", () => {
  it("counts the checks that reach the backend by result, and the cache's hits and misses", async () => {
    let calls = 0
    const backend: Plugin = {
      name: "auth-fake",
      auth: ({ password }) => Effect.sync(() => (calls++, password === "right" ? Verdict.accept({ identity: "ann" }) : Verdict.reject("no", { code: 535, enhanced: "5.7.8" })))
    }
    const wrapped = Instrument.wrap(backend, "fake-a", Cache.make({ ttlMs: 60_000, negativeTtlMs: 60_000, maxEntries: 10 }))
    const run = (password: string) => Effect.runPromise(wrapped.auth!(ctx("ann", password)) as Effect.Effect<Verdict.Verdict>)
    expect((await run("right"))._tag).toBe("Accept")
    expect((await run("right"))._tag).toBe("Accept")
    expect((await run("wrong"))._tag).toBe("Reject")
    expect((await run("wrong"))._tag).toBe("Reject")
    expect(calls).toBe(2)
    expect(await series("smtp_bridge_auth_backend_requests_total", { backend: "fake-a", result: "accepted" })).toBe(1)
    expect(await series("smtp_bridge_auth_backend_requests_total", { backend: "fake-a", result: "invalid" })).toBe(1)
    expect(await series("smtp_bridge_auth_backend_failures_total", { backend: "fake-a", reason: "invalid" })).toBe(1)
    expect(await series("smtp_bridge_auth_cache_total", { backend: "fake-a", result: "hit" })).toBe(1)
    expect(await series("smtp_bridge_auth_cache_total", { backend: "fake-a", result: "negative_hit" })).toBe(1)
    expect(await series("smtp_bridge_auth_cache_total", { backend: "fake-a", result: "miss" })).toBe(2)
  })

  it("counts a failing hook as error and a hook set up later as well", async () => {
    const backend: Plugin = {
      name: "auth-fake",
      setup: Effect.succeed({ auth: () => Effect.fail(new Error("boom")) })
    }
    const wrapped = Instrument.wrap(backend, "fake-b", undefined)
    const hooks = await Effect.runPromise(Effect.scoped(wrapped.setup! as Effect.Effect<Plugin>))
    await Effect.runPromise(Effect.either(hooks.auth!(ctx("ann", "x")) as Effect.Effect<Verdict.Verdict, unknown>))
    expect(await series("smtp_bridge_auth_backend_failures_total", { backend: "fake-b", reason: "error" })).toBe(1)
  })

  it("counts a backend that hangs until the bridge's hook timeout interrupts it as timeout", async () => {
    const backend: Plugin = { name: "auth-fake", auth: () => Effect.never }
    const wrapped = Instrument.wrap(backend, "fake-d", Cache.make({ ttlMs: 60_000, negativeTtlMs: 60_000, maxEntries: 10 }))
    const hook = wrapped.auth!(ctx("ann", "x")) as Effect.Effect<Verdict.Verdict>
    expect(await Effect.runPromise(Effect.timeoutTo(hook, { duration: "20 millis", onSuccess: () => "answered", onTimeout: () => "timed out" }))).toBe("timed out")
    expect(await series("smtp_bridge_auth_backend_failures_total", { backend: "fake-d", reason: "timeout" })).toBe(1)
  })

  it("counts one request per SASL exchange, when its last step decides", async () => {
    const steps: Array<SaslStep> = [
      { _tag: "Challenge", text: "" },
      { _tag: "Done", verdict: Verdict.accept({ identity: "ann" }), username: "ann" }
    ]
    const backend: Plugin = {
      name: "auth-fake",
      sasl: () => Effect.succeed({ step: () => Effect.succeed(steps.shift()!) })
    }
    const wrapped = Instrument.wrap(backend, "fake-c", undefined)
    const exchange = await Effect.runPromise(wrapped.sasl!({ session: Contexts.session(), mechanism: "X-FAKE" }) as Effect.Effect<{ step: (r: string | undefined) => Effect.Effect<SaslStep> }>)
    expect((await Effect.runPromise(exchange.step(undefined)))._tag).toBe("Challenge")
    expect(await series("smtp_bridge_auth_backend_requests_total", { backend: "fake-c", result: "accepted" })).toBe(0)
    expect((await Effect.runPromise(exchange.step("")))._tag).toBe("Done")
    expect(await series("smtp_bridge_auth_backend_requests_total", { backend: "fake-c", result: "accepted" })).toBe(1)
    expect(await series("smtp_bridge_auth_backend_duration_seconds_count", { backend: "fake-c" })).toBe(1)
  })
})
