/**
 * Gives memory back while clients stream bulk input that the bridge does not keep in memory: a
 * message past the spill threshold (on its way to the temporary file and again on its way out to
 * the transport), bytes past the size limit, an overlong command line being skipped.
 *
 * Every chunk a socket or a file read delivers is a fresh buffer that is garbage a moment later.
 * The runtimes collect such buffers late: a bare `node:net` reader of a 50 MB stream grows by
 * about 22 MB on Bun and 53 MB on Deno before a collection (V8 waits for tens of MB of external
 * memory). Collecting after every few MB of such input keeps the process within a few MB of
 * where it started. Small messages never get here, so the common path pays nothing.
 *
 * A collection is not free (about 15 ms for the bridge's heap on Bun and Node, up to 100 ms on
 * Deno), so after one that took d ms the next waits `spacing` × d ms. Streams go on meanwhile,
 * but one that has produced `cap` bytes of garbage by then waits (`settle`): many parallel
 * uploads slow down instead of piling up garbage or spending all the CPU in the collector.
 *
 * The only runtime-specific code is `collector`: Bun has `Bun.gc`; Node and Deno (V8) hand the
 * `gc` function to a new context once `--expose-gc` is set (set at first use, so every `vm`
 * context made afterwards has a `gc` global too). It has to be a full collection: the buffers wait
 * in queues long enough to reach V8's old generation.
 *
 * @example
 * yield* write(chunk)
 * yield* Memory.release(chunk.byteLength)
 */
import * as Effect from "effect/Effect"
import * as v8 from "node:v8"
import * as vm from "node:vm"

/** Bulk bytes between two collections, when the spacing allows one. */
export const every = 4 * 1024 * 1024
/** Bulk bytes after which a stream waits for the spacing to pass (the hard bound). */
export const cap = 16 * 1024 * 1024
/** Collections take at most 1 / (1 + spacing) of the time. */
const spacing = 1
/**
 * The longest a collection counts for when spacing the next: a process stopped in the middle of
 * one (SIGSTOP, a paused container, a stalled VM) must not make every stream sleep as long.
 */
const maxCostMs = 250

export type Collect = () => void

const collector = (): Collect => {
  const bun = (globalThis as { readonly Bun?: { readonly gc: (force: boolean) => void } }).Bun
  if (bun !== undefined) return () => bun.gc(true)
  try {
    v8.setFlagsFromString("--expose-gc")
    const gc = vm.runInNewContext("gc") as (() => void) | undefined
    if (typeof gc === "function") return () => gc()
  } catch {
    // A runtime that refuses the flag: its own schedule it is.
  }
  return () => {}
}

export interface Reclaimer {
  /** Counts `bytes` of input that are garbage now (or will be once the current chunk is written). */
  readonly released: (bytes: number) => void
  /** Whether enough garbage has piled up for `settle` to collect. */
  readonly due: () => boolean
  /**
   * Collects if due and the spacing since the previous collection has passed; a stream that has
   * produced `cap` bytes of garbage meanwhile waits for it.
   */
  readonly settle: Effect.Effect<void>
  /** `released` then `settle`. */
  readonly release: (bytes: number) => Effect.Effect<void>
}

/** Waits `ms` on a plain timer, the clock `now` reads (not Effect's, which tests may stop). */
const sleepMs = (ms: number): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    const timer = setTimeout(() => resume(Effect.void), ms)
    return Effect.sync(() => clearTimeout(timer))
  })

export const make = (
  collect: Collect,
  now: () => number = () => performance.now(),
  sleep: (ms: number) => Effect.Effect<void> = sleepMs
): Reclaimer => {
  let pending = 0
  let notBefore = 0

  const collectNow = (): void => {
    if (pending < every) return
    pending = 0
    const start = now()
    collect()
    const end = now()
    notBefore = end + spacing * Math.min(end - start, maxCostMs)
  }

  const settle: Effect.Effect<void> = Effect.suspend(() => {
    if (pending < every) return Effect.void
    const wait = notBefore - now()
    if (wait <= 0) return Effect.sync(collectNow)
    return pending < cap ? Effect.void : Effect.zipRight(sleep(Math.min(wait, spacing * maxCostMs)), Effect.sync(collectNow))
  })

  return {
    released: (bytes) => {
      pending += bytes
    },
    due: () => pending >= every,
    settle,
    release: (bytes) => {
      pending += bytes
      return pending >= every ? settle : Effect.void
    }
  }
}

let runtimeCollect: Collect | undefined

/** A full collection now, with the runtime's collector (what tests call before they measure memory). */
export const collectNow: Collect = () => (runtimeCollect ??= collector())()

/** The process-wide reclaimer, collecting with the runtime's collector (looked up at first use). */
const shared = make(collectNow)

export const { due, release, released, settle } = shared
