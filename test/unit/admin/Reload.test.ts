import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Reload from "../../../src/admin/Reload.ts"
import type { ConfigInput } from "../../../src/config/Input.ts"
import * as Resolve from "../../../src/config/Resolve.ts"

const config = (input: ConfigInput) => Resolve.resolve({ hostname: "mx.test", maildir: "/tmp/sb-reload-unit", ...input }, "test")

describe("Reload.plan", () => {
  it.effect("applies session settings (limits, trust) to new sessions without rebuilding unchanged transports", () =>
    Effect.gen(function*() {
      const plan = Reload.plan(yield* config({}), yield* config({ trust: ["10.0.0.0/8"], limits: { maxRecipients: 5 } }), { spool: false })
      expect(plan.notes).toEqual([])
      expect(plan.rebuildTransports).toBe(false)
      expect(plan.config.trust).toEqual(["10.0.0.0/8"])
      expect(plan.config.limits.maxRecipients).toBe(5)
    }))

  it.effect("keeps the running listeners and admin address, saying a restart is needed", () =>
    Effect.gen(function*() {
      const running = yield* config({ listen: ["127.0.0.1:2525"] })
      const plan = Reload.plan(running, yield* config({ listen: ["127.0.0.1:2626"], admin: "127.0.0.1:9100" }), { spool: false })
      expect(plan.config.listeners).toEqual(running.listeners)
      expect(plan.config.admin).toBeUndefined()
      expect(plan.notes).toEqual([
        "listeners changed: restart to apply; keeping 127.0.0.1:2525",
        "admin changed: restart to apply; keeping no admin listener"
      ])
    }))

  it.effect("rebuilds transports that changed, unless a spool delivers through the running ones", () =>
    Effect.gen(function*() {
      const running = yield* config({})
      const next = yield* config({ relay: "smtp://relay.test:25" })
      expect(Reload.plan(running, next, { spool: false }).rebuildTransports).toBe(true)
      const spooled = Reload.plan(running, next, { spool: true })
      expect(spooled.rebuildTransports).toBe(false)
      expect(spooled.config.transports).toEqual(running.transports)
      expect(spooled.notes[0]).toMatch(/^transports changed: restart to apply/)
    }))

  it.effect("keeps the running telemetry: the tracer is installed once, at start", () =>
    Effect.gen(function*() {
      const running = yield* config({})
      const plan = Reload.plan(running, yield* config({ telemetry: { otlpEndpoint: "http://collector:4318", headers: { "x-api-key": "k1" } } }), { spool: false })
      expect(plan.config.telemetry).toBeUndefined()
      expect(plan.notes).toEqual(["telemetry changed: restart to apply; keeping telemetry off"])
    }))
})

describe("Reload.watchedFiles", () => {
  const files = { users: "users.htpasswd", allowInsecureAuth: true, tls: { cert: "cert.pem", key: "key.pem" } }

  it.effect("watches nothing unless watchConfig is on", () =>
    Effect.gen(function*() {
      expect(Reload.watchedFiles(yield* config(files), "smtp-bridge.config.ts")).toEqual([])
    }))

  it.effect("watches the config file, the users file and the TLS certificate and key", () =>
    Effect.gen(function*() {
      const watching = yield* config({ ...files, watchConfig: true })
      expect(Reload.watchedFiles(watching, "smtp-bridge.config.ts")).toEqual(["smtp-bridge.config.ts", "users.htpasswd", "cert.pem", "key.pem"])
      // Flags alone: no config file to watch.
      expect(Reload.watchedFiles(yield* config({ watchConfig: true }), undefined)).toEqual([])
    }))

  it.effect("watches the htpasswd files of auth backends as users files", () =>
    Effect.gen(function*() {
      const watching = yield* config({ ...files, watchConfig: true, auth: [{ type: "htpasswd", file: "staff.htpasswd" }, "http://127.0.0.1/auth"] })
      expect(Reload.watchedFiles(watching, undefined)).toEqual(["users.htpasswd", "staff.htpasswd", "cert.pem", "key.pem"])
    }))
})
