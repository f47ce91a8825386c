/**
 * Reloading on SIGHUP or when a watched file changes: which parts of a new config apply to a
 * running bridge, and the requests (signals, file changes) as one queue the `serve` command takes
 * from.
 *
 * Applied to new sessions: everything about sessions and delivery (hostname, limits, trust,
 * senders, users, TLS files, plugins, routes, transports). Needing a restart, kept at their
 * running values with a warning: the SMTP listeners, the admin listener, the spool, the log
 * format, the shutdown timeout and telemetry (its tracer is installed once, at start). With a
 * spool, the transports are kept too: the spool's worker delivers through the ones it started
 * with.
 *
 * @example
 * const plan = Reload.plan(running, next, { spool: false })
 * plan.notes // ["listen changed: restart to apply; keeping 127.0.0.1:2525"]
 */
import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import { type FSWatcher, watch as watchDirectory } from "node:fs"
import { stat } from "node:fs/promises"
import * as Path from "node:path"
import type { BridgeConfig } from "../config/Config.ts"
import * as Telemetry from "../config/Telemetry.ts"

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
    ...keep("shutdownTimeout", (c) => Duration.format(c.shutdownTimeout)),
    ...keep("telemetry", (c) => `telemetry ${Telemetry.describe(c.telemetry)}`)
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

/** What asked for a reload, as the first words of its log line: `SIGHUP`, or the files that changed. */
export type Request = string

/**
 * The one queue that `serve` takes reload requests from, fed by `signals` and `watch`. It holds
 * at most one request: whatever arrives during a reload makes one more reload after it, never a
 * backlog.
 */
export const requests: Effect.Effect<Queue.Queue<Request>> = Queue.sliding<Request>(1)

/**
 * Offers a request to `queue` on each `signal`. The handler is installed at once, so that the
 * signal's default action (SIGHUP ends the process) is replaced before the server starts, and
 * removed when the scope closes.
 */
export const signals = (signal: NodeJS.Signals, queue: Queue.Enqueue<Request>): Effect.Effect<void, never, Scope.Scope> =>
  Effect.asVoid(Effect.acquireRelease(
    Effect.sync(() => {
      const handler = () => void Queue.unsafeOffer(queue, signal)
      process.on(signal, handler)
      return handler
    }),
    (handler) => Effect.sync(() => process.off(signal, handler))
  ))

/**
 * The files whose changes reload the bridge when `watchConfig` is on: the config file (if there
 * is one), the users file and the TLS certificate and key. None when it is off.
 */
export const watchedFiles = (config: BridgeConfig, configFile: string | undefined): ReadonlyArray<string> =>
  config.watchConfig
    ? [
      configFile,
      config.users,
      // The htpasswd backends of `auth` are users files too.
      ...config.auth.map((backend) => (backend.type === "htpasswd" ? backend.options.file : undefined)),
      config.tls?.cert,
      config.tls?.key
    ].filter((file): file is string => file !== undefined)
    : []

/** A burst of changes (an editor's save, a rename, a certbot renewal) ends after this much quiet. */
export const quietPeriod: Duration.Duration = Duration.millis(300)

export interface Watcher {
  /** Watches exactly these files from now on (none stops watching); logs the list when it changes. */
  readonly set: (files: ReadonlyArray<string>) => Effect.Effect<void>
}

// The access time is left out: a reload reads the files, and must not look like a change to them.
const fingerprint = (file: string): Effect.Effect<string> =>
  Effect.tryPromise(() => stat(file)).pipe(
    Effect.map((s) => `${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`),
    Effect.orElseSucceed(() => "absent")
  )

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/**
 * Offers a request to `queue` when watched files change, once a burst of events has been quiet for
 * `quiet`. It watches each file's directory and matches events by file name: editors and certbot
 * replace a file by renaming another over it, which a watch on the file itself would miss. An
 * event that left the file's inode, size and modification and change times as they were (an
 * attribute-only event) is not a change. The directory watchers close with the scope.
 *
 * @example
 * const queue = yield* Reload.requests
 * const watcher = yield* Reload.watch(queue)
 * yield* watcher.set(Reload.watchedFiles(config, "smtp-bridge.config.ts"))
 * yield* Queue.take(queue) // "/etc/smtp-bridge/users.htpasswd changed"
 */
export const watch = (
  queue: Queue.Enqueue<Request>,
  options: { readonly quiet?: Duration.DurationInput } = {}
): Effect.Effect<Watcher, never, Scope.Scope> =>
  Effect.gen(function*() {
    const quiet = options.quiet ?? quietPeriod
    // For log lines from the watchers' callbacks, with the logger `serve` set up.
    const runtime = yield* Effect.runtime<never>()
    // Absolute path -> its fingerprint when last seen.
    let files = new Map<string, string>()
    const named = yield* Queue.unbounded<string>()
    const directories = yield* Effect.acquireRelease(
      Effect.sync(() => new Map<string, FSWatcher>()),
      (open) =>
        Effect.sync(() => {
          for (const watcher of open.values()) watcher.close()
          open.clear()
        })
    )

    const open = (directory: string): Effect.Effect<void> =>
      Effect.try({
        try: () => {
          const watcher = watchDirectory(directory, (_event, name) => {
            for (const file of files.keys()) {
              // Without a name (some platforms), every watched file there may have changed.
              const match = name === null || Path.basename(String(name)) === Path.basename(file)
              if (match && Path.dirname(file) === directory) Queue.unsafeOffer(named, file)
            }
          })
          // Unhandled, an FSWatcher's error would end the process.
          watcher.on("error", (error) => {
            watcher.close()
            if (directories.get(directory) === watcher) directories.delete(directory)
            Runtime.runFork(runtime)(Effect.logWarning(`reload: stopped watching ${directory}: ${error.message}; SIGHUP still reloads`))
          })
          directories.set(directory, watcher)
        },
        catch: messageOf
      }).pipe(Effect.catchAll((error) => Effect.logWarning(`reload: cannot watch ${directory}: ${error}; changes there need SIGHUP`)))

    const settle = (seen: ReadonlySet<string>): Effect.Effect<ReadonlySet<string>> =>
      Effect.sleep(quiet).pipe(
        Effect.zipRight(Queue.takeAll(named)),
        Effect.flatMap((more) => Chunk.isEmpty(more) ? Effect.succeed(seen) : settle(new Set([...seen, ...more])))
      )

    const changed = (seen: ReadonlySet<string>): Effect.Effect<ReadonlyArray<string>> =>
      Effect.forEach([...seen], (file) => Effect.map(fingerprint(file), (now) => [file, now] as const)).pipe(
        Effect.map((checked) =>
          checked.filter(([file, now]) => {
            const before = files.get(file)
            // Unwatched since the event, or only touched in ways that do not count.
            if (before === undefined || before === now) return false
            files.set(file, now)
            return true
          }).map(([file]) => file)
        )
      )

    yield* Queue.take(named).pipe(
      Effect.flatMap((first) => settle(new Set([first]))),
      Effect.flatMap(changed),
      Effect.flatMap((changedFiles) =>
        changedFiles.length === 0 ? Effect.void : Queue.offer(queue, `${changedFiles.join(", ")} changed`)
      ),
      Effect.forever,
      Effect.forkScoped
    )

    const set = (wanted: ReadonlyArray<string>): Effect.Effect<void> =>
      Effect.gen(function*() {
        const absolute = [...new Set(wanted.map((file) => Path.resolve(file)))]
        const added = yield* Effect.forEach(
          absolute.filter((file) => !files.has(file)),
          (file) => Effect.map(fingerprint(file), (now) => [file, now] as const)
        )
        const before = [...files.keys()]
        files = new Map([...absolute.flatMap((file) => (files.has(file) ? [[file, files.get(file)!] as const] : [])), ...added])
        const needed = new Set(absolute.map((file) => Path.dirname(file)))
        for (const [directory, watcher] of directories) {
          if (!needed.has(directory)) {
            watcher.close()
            directories.delete(directory)
          }
        }
        for (const directory of needed) if (!directories.has(directory)) yield* open(directory)
        if (same([...before].sort(), [...absolute].sort())) return
        yield* Effect.logInfo(absolute.length === 0 ? "reload: no longer watching files" : `reload: watching ${absolute.join(", ")} for changes`)
      })

    return { set }
  })
