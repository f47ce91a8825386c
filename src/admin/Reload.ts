/**
 * Reloading on SIGHUP: which parts of a new config apply to a running bridge, and the signal
 * itself as a queue the `serve` command takes from.
 *
 * Applied to new sessions: everything about sessions and delivery (hostname, limits, trust,
 * senders, users, TLS files, plugins, routes, transports). Needing a restart, kept at their
 * running values with a warning: the SMTP listeners, the admin listener, the spool, the log
 * format and the shutdown timeout. With a spool, the transports are kept too: the spool's worker
 * delivers through the ones it started with.
 *
 * @example
 * const plan = Reload.plan(running, next, { spool: false })
 * plan.notes // ["listen changed: restart to apply; keeping 127.0.0.1:2525"]
 */
import { Duration, Effect, Queue, type Scope } from "effect"
import type { BridgeConfig } from "../config/Config.ts"

export interface Plan {
  /** The config the new generation runs with. */
  readonly config: BridgeConfig
  /** Whether transports must be built again (their config or the EHLO name changed). */
  readonly rebuildTransports: boolean
  /** One line per change that was not applied. */
  readonly notes: ReadonlyArray<string>
}

// Durations serialise through their toJSON, so this compares config values structurally.
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b)

const listeners = (c: BridgeConfig) =>
  c.listeners.map((l) => `${l.host.includes(":") ? `[${l.host}]` : l.host}:${l.port}${l.mode === "implicit" ? " (TLS)" : ""}`).join(", ")

export const plan = (running: BridgeConfig, next: BridgeConfig, options: { readonly spool: boolean }): Plan => {
  const notes: Array<string> = []
  const keep = <K extends keyof BridgeConfig>(key: K, shown: (c: BridgeConfig) => string): Pick<BridgeConfig, K> | undefined => {
    if (same(running[key], next[key])) return undefined
    notes.push(`${key} changed: restart to apply; keeping ${shown(running)}`)
    return { [key]: running[key] } as Pick<BridgeConfig, K>
  }
  const kept = {
    ...keep("listeners", listeners),
    ...keep("admin", (c) => (c.admin === undefined ? "no admin listener" : `${c.admin.host}:${c.admin.port}`)),
    ...keep("spool", (c) => (c.spool === undefined ? "no spool" : c.spool.dir)),
    ...keep("logFormat", (c) => c.logFormat ?? "the automatic format"),
    ...keep("shutdownTimeout", (c) => Duration.format(c.shutdownTimeout))
  }
  const transportsChanged = !same(running.transports, next.transports) || running.hostname !== next.hostname
  if (transportsChanged && options.spool) {
    notes.push("transports changed: restart to apply (the spool delivers through the transports it started with)")
    return {
      config: { ...next, ...kept, transports: running.transports, defaultTransport: running.defaultTransport },
      rebuildTransports: false,
      notes
    }
  }
  return { config: { ...next, ...kept }, rebuildTransports: transportsChanged, notes }
}

/**
 * A queue that receives one item per `signal` (coalescing a burst into one). The handler is
 * installed at once, so that the signal's default action (SIGHUP ends the process) is replaced
 * before the server starts, and removed when the scope closes.
 */
export const signals = (signal: NodeJS.Signals): Effect.Effect<Queue.Dequeue<void>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Queue.sliding<void>(1)
    const handler = () => void Queue.unsafeOffer(queue, undefined)
    yield* Effect.acquireRelease(
      Effect.sync(() => process.on(signal, handler)),
      () => Effect.sync(() => process.off(signal, handler))
    )
    return queue
  })
