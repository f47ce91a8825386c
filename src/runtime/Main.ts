/**
 * The process entry for every runtime: Bun gets `@effect/platform-bun`, Node and Deno get
 * `@effect/platform-node` (Deno runs it through its Node compatibility). SIGINT and SIGTERM
 * interrupt the main fiber, so every scope closes and its finalizers (the graceful drain) run
 * before the process exits 0.
 *
 * Exit codes: 0 success or signal, 2 invalid configuration or command line, 1 anything else.
 *
 * @example
 * import * as Main from "./runtime/Main.ts"
 * Main.runMain(program)
 */
import type { FileSystem } from "@effect/platform/FileSystem"
import type { Path } from "@effect/platform/Path"
import type { Teardown } from "@effect/platform/Runtime"
import type { Terminal } from "@effect/platform/Terminal"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * What the platform layer provides: what the command line (@effect/cli) needs, file system, path
 * and terminal. Not the whole platform context: its command executor and workers are never used,
 * and loading them (node:worker_threads, child processes) cost start-up time.
 */
export type PlatformServices = FileSystem | Path | Terminal

interface Platform {
  readonly layer: Layer.Layer<PlatformServices>
  readonly runMain: (effect: Effect.Effect<unknown, unknown>, options: { readonly disableErrorReporting: boolean; readonly teardown: Teardown }) => void
}

const isBun = (): boolean => typeof (globalThis as { readonly Bun?: unknown }).Bun !== "undefined"

// Loaded lazily: importing the Bun platform elsewhere (or the Node one under Bun) would pull in
// code written for the other runtime.
const platform = async (): Promise<Platform> => {
  if (isBun()) {
    const [runtime, fs, path, terminal] = await Promise.all([
      import("@effect/platform-bun/BunRuntime"),
      import("@effect/platform-bun/BunFileSystem"),
      import("@effect/platform-bun/BunPath"),
      import("@effect/platform-bun/BunTerminal")
    ])
    return { layer: Layer.mergeAll(fs.layer, path.layer, terminal.layer), runMain: runtime.runMain }
  }
  const [runtime, fs, path, terminal] = await Promise.all([
    import("@effect/platform-node/NodeRuntime"),
    import("@effect/platform-node/NodeFileSystem"),
    import("@effect/platform-node/NodePath"),
    import("@effect/platform-node/NodeTerminal")
  ])
  return { layer: Layer.mergeAll(fs.layer, path.layer, terminal.layer), runMain: runtime.runMain }
}

const stderr = (line: string): void => void process.stderr.write(line.endsWith("\n") ? line : `${line}\n`)

const isTaggedError = (u: unknown): u is { readonly _tag: string; readonly message: string } =>
  typeof u === "object" && u !== null && "_tag" in u && typeof u._tag === "string" &&
  "message" in u && typeof u.message === "string" && u.message !== ""

// @effect/cli's ValidationErrorTypeId, by its key: importing @effect/cli/ValidationError loads most
// of @effect/cli (its help printer), some 90 ms under Bun, which a plain `serve` does not need
// (issue 16). test/unit/runtime/main.test.ts checks it against the real one.
const validationErrorTypeId = Symbol.for("@effect/cli/ValidationError")

const isValidationError = (u: unknown): boolean => typeof u === "object" && u !== null && validationErrorTypeId in u

/** Maps how the program ended to an exit code, printing one line for failures a user can fix. */
export const teardown: Teardown = (exit, onExit) => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return onExit(0)
  const failure = Option.getOrUndefined(Cause.failureOption(exit.cause))
  // A configuration error (config/Resolve.ts' ConfigError) is known by its tag: the runtime layer
  // does not import the config layer above it.
  if (isTaggedError(failure) && failure._tag === "ConfigError") {
    stderr(failure.message)
    return onExit(2)
  }
  // @effect/cli has already printed what was wrong with the command line.
  if (isValidationError(failure)) return onExit(2)
  if (isTaggedError(failure)) {
    stderr(`smtp-bridge: ${failure.message}`)
    return onExit(1)
  }
  stderr(Cause.pretty(exit.cause))
  onExit(1)
}

/** Runs the program with the current runtime's platform services until it ends or a signal stops it. */
export const runMain = <E, A>(effect: Effect.Effect<A, E, PlatformServices>): void => {
  platform().then(
    ({ layer, runMain }) => runMain(Effect.provide(effect, layer), { disableErrorReporting: true, teardown }),
    (error: unknown) => {
      stderr(`smtp-bridge: cannot load the platform runtime: ${error instanceof Error ? error.message : String(error)}`)
      process.exit(1)
    }
  )
}
