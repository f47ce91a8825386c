/**
 * What `/readyz` checks, each as a named probe:
 *
 * - `listeners`: every SMTP listener is bound and the server is not draining;
 * - `transport <name>` for each `smtp`/`lmtp` relay: a TCP (or unix socket) connection to the
 *   upstream opens within 2 seconds, and is closed at once without speaking SMTP (no greeting
 *   is awaited, so a probe never holds an upstream session);
 * - `spool`: a file can be written in the spool directory.
 *
 * With a spool, mail is accepted while a relay is down (it waits in the queue), so readiness is
 * the spool's: the relay probes are still shown, as `advisory`, but do not make `/readyz` fail.
 *
 * Webhooks and Maildirs are not probed: an HTTP endpoint may not accept a bodiless request, and
 * a Maildir problem shows up as 451 replies and in the logs.
 *
 * @example
 * const report = yield* Readiness.run(probes)
 * report.ready // false when any probe failed
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { BridgeConfig } from "../config/Config.ts"
import * as Connect from "../runtime/Connect.ts"
import * as Spool from "../transport/Spool.ts"
import * as Url from "../transport/smtp/Url.ts"

export interface Probe {
  readonly name: string
  /** Succeeds when healthy; the failure is a short reason shown in the `/readyz` body. */
  readonly check: Effect.Effect<void, string>
  /** Shown, but not counted: a failure does not make the bridge unready. */
  readonly advisory?: boolean
}

type Check = { readonly name: string; readonly ok: boolean; readonly detail?: string; readonly advisory?: boolean }

export interface Report {
  readonly ready: boolean
  readonly checks: ReadonlyArray<Check>
}

const probeTimeout = Duration.seconds(2)

/** Opens and closes a connection to the relay's upstream. */
export const upstream = (name: string, url: string, advisory = false): Probe => ({
  name: `transport ${name}`,
  advisory,
  check: Either.match(Url.parse(url), {
    onLeft: (error) => Effect.fail(error.message),
    onRight: (target) =>
      Effect.scoped(Effect.flatMap(Connect.connect(target.endpoint, { timeout: probeTimeout }), (socket) => socket.close)).pipe(
        Effect.mapError((error) => `${Url.describe(target)}: ${error.message}`)
      )
  })
})

export const spool = (dir: string): Probe => ({
  name: "spool",
  check: Effect.mapError(Spool.probeWritable(dir), (error) => error.message)
})

/** The probes for a config, besides `listeners` (which the bridge adds, as it knows the server). */
export const forConfig = (config: BridgeConfig): ReadonlyArray<Probe> => [
  ...Object.entries(config.transports).flatMap(([name, t]) =>
    t.type === "smtp" || t.type === "lmtp" ? [upstream(name, t.url, config.spool !== undefined)] : []
  ),
  ...(config.spool === undefined ? [] : [spool(config.spool.dir)])
]

/** Runs every probe concurrently; each is bounded, so `/readyz` answers within a few seconds. */
export const run = (probes: ReadonlyArray<Probe>): Effect.Effect<Report> =>
  Effect.forEach(probes, (probe) =>
    probe.check.pipe(
      Effect.timeoutFail({ duration: Duration.sum(probeTimeout, Duration.seconds(1)), onTimeout: () => "timed out" }),
      Effect.match({
        onFailure: (detail): Check => ({ name: probe.name, ok: false, detail }),
        onSuccess: (): Check => ({ name: probe.name, ok: true })
      }),
      Effect.map((check) => (probe.advisory === true ? { ...check, advisory: true } : check))
    ), { concurrency: "unbounded" }).pipe(
    Effect.map((checks) => ({ ready: checks.every((c) => c.ok || c.advisory === true), checks }))
  )
