/**
 * Listeners, connection limits and graceful drain. Closing the server's scope stops accepting,
 * sends 421 4.3.2 to idle sessions, lets transactions in flight finish until the shutdown
 * deadline, then interrupts whatever is left.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberSet from "effect/FiberSet"
import type * as Scope from "effect/Scope"
import * as fs from "node:fs"
import type { BridgeConfig } from "../config/Config.ts"
import * as Metrics from "../observability/Metrics.ts"
import type { Pipeline } from "../pipeline/Pipeline.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Fetch from "../runtime/Fetch.ts"
import * as FileLimit from "../runtime/FileLimit.ts"
import * as Socket from "../runtime/Socket.ts"
import * as Cidr from "../util/Cidr.ts"
import type * as Spool from "../transport/Spool.ts"
import type { Transport } from "../transport/Transport.ts"
import * as Lifecycle from "./Lifecycle.ts"
import type { ServerEnv } from "./Env.ts"

export interface Bound {
  readonly host: string
  readonly port: number
  readonly mode: "plain" | "implicit"
}

export interface RunningServer {
  readonly addresses: ReadonlyArray<Bound>
  /** Connections open right now. */
  readonly connections: () => number
  /**
   * Session runs in progress: fibers working for a connection right now. An idle session (waiting
   * for its client's next command) has none: it waits with only a callback on its socket.
   */
  readonly runs: Effect.Effect<number>
  /** Re-reads the TLS certificate and key; new handshakes use them. */
  readonly reloadTls: Effect.Effect<void, Socket.SocketError>
  /**
   * New connections use this config, pipeline and transports from now on; open sessions finish
   * with the ones they started with, and `next.release` (what the old generation used) runs after
   * the last of them. Listeners are not rebound. Fails, changing nothing, when the new TLS files cannot be read.
   */
  readonly reload: (next: Generation) => Effect.Effect<void, Socket.SocketError>
  /** True once the server has started to drain (shutdown). */
  readonly draining: () => boolean
}

/** What one configuration generation of the server runs with. */
export interface Generation {
  readonly config: BridgeConfig
  readonly pipeline: Pipeline
  readonly transports: ReadonlyMap<string, Transport>
  /**
   * Frees what the generation this one replaces used and this one does not (its plugins' scope, its
   * transports' when they were rebuilt): the caller knows that only when it builds the new one.
   */
  readonly release?: Effect.Effect<void> | undefined
}

/** A generation in service: its sessions are counted so that it is released after the last one. */
interface Live {
  readonly env: ServerEnv
  /** `limits.maxConnections`, or fewer when the process may not open enough files for that many. */
  readonly maxConnections: number
  /** Descriptors a session it takes may hold (`filesPerSession`), counted until that session ends. */
  readonly each: number
  /** Descriptors left for sessions under the open-files limit (undefined: no known limit). */
  readonly budget: number | undefined
  /** What its plugins hold (`files.held`): still open after a reload until it is released. */
  readonly held: number
  /** Set when a reload replaces it: the next generation's `release`. */
  release: Effect.Effect<void>
  tls: Socket.SecureContext | undefined
  active: number
  retired: boolean
}

/** What a generation's plugins hold for its life (a policy service's pool, Redis): `files.held`. */
const pluginsHeld = (gen: Generation): number => gen.pipeline.plugins.reduce((n, p) => n + (p.files?.held ?? 0), 0)

/**
 * Descriptors set aside from the sessions': listeners and the connections each has accepted but not
 * yet closed, upstream sessions (each relay's pool, a webhook's connections), what plugins hold
 * for the server's life, DNS, logs.
 */
const reservedFiles = (gen: Generation): number =>
  64 + gen.config.listeners.length * FileLimit.perListener +
  Object.values(gen.config.transports).reduce((n, t) => n + (t.type === "smtp" || t.type === "lmtp" ? t.poolSize : t.type === "webhook" ? Fetch.maxIdlePerHost : 0), 0) +
  pluginsHeld(gen)

/** Descriptors one session may hold: its own, and what plugins open for it (a connection to each milter). */
const filesPerSession = (gen: Generation): number =>
  FileLimit.perSession + gen.pipeline.plugins.reduce((n, p) => n + (p.files?.perSession ?? 0), 0)

const loadTls = (config: BridgeConfig): Effect.Effect<Socket.SecureContext | undefined, Socket.SocketError> =>
  config.tls === undefined ? Effect.succeed(undefined) : Effect.try({
    try: () =>
      Socket.secureContext({
        cert: fs.readFileSync(config.tls!.cert, "utf8"),
        key: fs.readFileSync(config.tls!.key, "utf8")
      }),
    catch: (e) =>
      new Socket.SocketError({ reason: "Tls", message: `cannot load TLS certificate or key: ${e instanceof Error ? e.message : String(e)}` })
  })

export const tooMany = Reply.format(Reply.make(421, "4.7.0", "Too many connections, try again later"))

export const make = (options: {
  readonly config: BridgeConfig
  readonly pipeline: Pipeline
  readonly transports: ReadonlyMap<string, Transport>
  readonly spool?: Spool.Spool | undefined
}): Effect.Effect<RunningServer, Socket.SocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const { config } = options
    let isDraining = false
    const perIp = new Map<string, number>()
    // Keyed by the network (`192.0.2.0/24`) under the generation's prefixes; a session releases
    // under the key it was admitted with, so a reload that changes the prefixes stays balanced.
    const perNetwork = new Map<string, number>()
    const decrement = (counts: Map<string, number>, key: string) => {
      const n = (counts.get(key) ?? 1) - 1
      if (n <= 0) counts.delete(key)
      else counts.set(key, n)
    }
    const goLive = (gen: Generation) =>
      Effect.gen(function*() {
        const tls = yield* loadTls(gen.config)
        const parsedProxies = Cidr.parseList(gen.config.proxyProtocol)
        if ("error" in parsedProxies) return yield* new Socket.SocketError({ reason: "Listen", message: `proxyProtocol: ${parsedProxies.error}` })
        // Like Postfix's smtpd_client_event_limit_exceptions: trusted networks (often the
        // application servers themselves) are not held to the per-address connection limit.
        const parsedTrust = Cidr.parseList(gen.config.trust)
        const exempt = "error" in parsedTrust ? [] : parsedTrust.ok
        const networkOf = (ip: string) => Cidr.aggregate(ip, gen.config.limits.ipv4NetworkPrefix, gen.config.limits.ipv6NetworkPrefix)
        // Sessions this process can hold: limits.maxConnections, or fewer when the open-files limit
        // cannot carry that many. Past that limit `accept` fails, and the runtimes do not survive
        // it alike (Bun spins a core, Deno's listener stops accepting for good): 421 is better.
        const limit = FileLimit.openFiles()
        const each = filesPerSession(gen)
        const reserved = reservedFiles(gen)
        const configured = gen.config.limits.maxConnections
        const maxConnections = limit === undefined ? configured : Math.min(configured, FileLimit.sessionsAllowed(limit, reserved, each))
        if (maxConnections < configured) {
          yield* Effect.logWarning(
            `limits.maxConnections is ${configured}, but this process may open only ${limit} files ` +
              `(about ${each} per session, plus ${reserved} for listeners, upstream sessions, plugins and DNS): ` +
              `at most ${maxConnections} sessions are taken, 421 4.7.0 past them. ` +
              `Raise the open-files limit (systemd LimitNOFILE=, ulimit -n) or lower limits.maxConnections`
          )
        }
        const live: Live = {
          maxConnections,
          each,
          budget: limit === undefined ? undefined : limit - reserved,
          held: pluginsHeld(gen),
          tls,
          active: 0,
          retired: false,
          release: Effect.void,
          env: {
            config: gen.config,
            pipeline: gen.pipeline,
            transports: gen.transports,
            spool: options.spool,
            tls: () => live.tls,
            isDraining: () => isDraining,
            proxies: parsedProxies.ok,
            // One address, or one network of slow clients, must not take every slot: 30
            // addresses of one /24 dribbling a byte every 3 s held all 1,000 of them.
            admit: (ip) => {
              if (Cidr.matchAny(exempt, ip)) return "admitted"
              const { limits } = gen.config
              const n = perIp.get(ip) ?? 0
              if (n >= limits.maxConnectionsPerIp) return "address"
              const network = networkOf(ip)
              const m = perNetwork.get(network) ?? 0
              if (m >= limits.maxConnectionsPerNetwork) return "network"
              perIp.set(ip, n + 1)
              perNetwork.set(network, m + 1)
              return "admitted"
            },
            release: (ip) => {
              if (Cidr.matchAny(exempt, ip)) return
              decrement(perIp, ip)
              decrement(perNetwork, networkOf(ip))
            }
          }
        }
        return live
      })
    let current = yield* goLive(options)
    let open = 0
    // Descriptors counted for the open sessions, each at its own generation's count, and for
    // retired generations' plugins until their release. A reload that removes four milters
    // counted the sessions still holding their connections at three (their new count) where they
    // held seven: at 300 files it let 45 more in past the 33 open (1 now), and deliveries failed.
    let counted = 0
    const fits = (live: Live): boolean => open === 0 || live.budget === undefined || counted + live.each <= live.budget
    const sockets = new Set<Socket.SmtpSocket>()
    const fibers = yield* FiberSet.make<void>()
    const run = yield* FiberSet.runtime(fibers)<never>()
    // A parked session's next run starts from a socket event; it runs on the scheduler, as a fiber
    // resumed by that event did, not inside the event's handler.
    const fork = (effect: Effect.Effect<unknown>): void => void run(effect, { immediate: false })

    const accept = (raw: Parameters<typeof Socket.wrap>[0], mode: "plain" | "implicit") => {
      const live = current
      // A client that does not read its replies is given as long as an idle one.
      const socket = Socket.wrap(raw, { writeTimeoutMs: Duration.toMillis(live.env.config.limits.idleTimeout) })
      if (isDraining || open >= live.maxConnections || !fits(live)) {
        // Refused before a session exists: one reply (none on an implicit-TLS listener), then
        // close at once (a flood of refused connections must not hold a descriptor each while lingering).
        Effect.runFork(Effect.zipRight(Lifecycle.refusal(socket, tooMany, mode === "implicit"), Metrics.connectionRefused))
        return
      }
      open++
      counted += live.each
      live.active++
      sockets.add(socket)
      // When the session is over (on whichever of its fibers: an idle session has none, see Connection).
      const ended = (exit: Exit.Exit<Metrics.SessionOutcome>): Effect.Effect<void> =>
        Effect.zipRight(
          Metrics.sessionEnded(Exit.isSuccess(exit) ? exit.value : Cause.isInterruptedOnly(exit.cause) ? "shutdown" : "error"),
          Exit.isFailure(exit) && !Cause.isInterruptedOnly(exit.cause) ? Effect.logError("connection failed", exit.cause) : Effect.void
        ).pipe(
          Effect.ensuring(Effect.suspend(() => {
            open--
            counted -= live.each
            live.active--
            sockets.delete(socket)
            if (live.retired && live.active === 0) counted -= live.held
            return Effect.zipRight(Metrics.connectionClosed, live.retired && live.active === 0 ? live.release : Effect.void)
          }))
        )
      // The per-address limit applies to the real client, known after a PROXY header: see Lifecycle.
      run(Effect.zipRight(Metrics.connectionOpened, Lifecycle.handle(live.env, { socket, implicitTls: mode === "implicit" }, { fork, ended })))
    }

    const addresses: Array<Bound> = []
    const listeners: Array<Socket.Listening> = []
    for (const listener of config.listeners) {
      if (listener.mode === "implicit" && current.tls === undefined) {
        return yield* new Socket.SocketError({ reason: "Listen", message: `implicit TLS on ${listener.host}:${listener.port} needs a certificate (tls)` })
      }
      const bound = yield* Socket.listen(listener.host, listener.port, (raw) => accept(raw, listener.mode))
      listeners.push(bound)
      addresses.push({ host: listener.host, port: bound.port, mode: listener.mode })
    }

    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        isDraining = true
        yield* Effect.forEach(listeners, (l) => l.close, { discard: true })
        for (const socket of sockets) socket.wake()
        const size = yield* FiberSet.size(fibers)
        if (size > 0) {
          yield* Effect.logInfo(`draining ${size} connection(s), up to ${Duration.format(config.shutdownTimeout)}`)
          // Finalizers run uninterruptibly: without `interruptible` the timeout could not stop the wait.
          yield* FiberSet.awaitEmpty(fibers).pipe(Effect.interruptible, Effect.timeout(config.shutdownTimeout), Effect.ignore)
        }
        // FiberSet's own finalizer interrupts the rest; each says 421 4.3.2 on its way out.
      })
    )

    return {
      addresses,
      connections: () => open,
      runs: FiberSet.size(fibers),
      reloadTls: Effect.suspend(() => {
        const live = current
        return Effect.map(loadTls(live.env.config), (context) => {
          live.tls = context
        })
      }),
      reload: (next) =>
        Effect.gen(function*() {
          const old = current
          current = yield* goLive(next)
          // What the old generation used is freed after its own last session, not the next one's.
          old.release = next.release ?? Effect.void
          old.retired = true
          if (old.active === 0) yield* old.release
          else counted += old.held
        }),
      draining: () => isDraining
    }
  })
