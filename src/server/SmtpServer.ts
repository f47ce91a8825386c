/**
 * Listeners, connection limits and graceful drain. Closing the server's scope stops accepting,
 * sends 421 4.3.2 to idle sessions, lets transactions in flight finish until the shutdown
 * deadline, then interrupts whatever is left.
 */
import { Deferred, Duration, Effect, FiberSet, type Scope } from "effect"
import * as fs from "node:fs"
import type { BridgeConfig } from "../config/Config.ts"
import type { Pipeline } from "../pipeline/Pipeline.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Socket from "../runtime/Socket.ts"
import * as Cidr from "../util/Cidr.ts"
import type * as Spool from "../transport/Spool.ts"
import type { Transport } from "../transport/Transport.ts"
import * as Connection from "./Connection.ts"
import type { ServerEnv } from "./State.ts"

export interface Bound {
  readonly host: string
  readonly port: number
  readonly mode: "plain" | "implicit"
}

export interface RunningServer {
  readonly addresses: ReadonlyArray<Bound>
  /** Connections open right now. */
  readonly connections: () => number
  /** Re-reads the TLS certificate and key; new handshakes use them. */
  readonly reloadTls: Effect.Effect<void, Socket.SocketError>
}

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
    let tlsContext = yield* loadTls(config)
    const parsedProxies = Cidr.parseList(config.proxyProtocol)
    if ("error" in parsedProxies) return yield* new Socket.SocketError({ reason: "Listen", message: `proxyProtocol: ${parsedProxies.error}` })
    const proxies = parsedProxies.ok
    const draining = yield* Deferred.make<void>()
    let isDraining = false
    const env: ServerEnv = {
      config,
      pipeline: options.pipeline,
      transports: options.transports,
      spool: options.spool,
      tls: () => tlsContext,
      draining,
      isDraining: () => isDraining,
      proxies,
      admit: (ip) => {
        const n = perIp.get(ip) ?? 0
        if (n >= config.limits.maxConnectionsPerIp) return false
        perIp.set(ip, n + 1)
        return true
      },
      release: (ip) => {
        const n = (perIp.get(ip) ?? 1) - 1
        if (n <= 0) perIp.delete(ip)
        else perIp.set(ip, n)
      }
    }
    let open = 0
    const sockets = new Set<Socket.SmtpSocket>()
    const perIp = new Map<string, number>()
    const fibers = yield* FiberSet.make<void>()
    const run = yield* FiberSet.runtime(fibers)<never>()

    const accept = (raw: Parameters<typeof Socket.wrap>[0], mode: "plain" | "implicit") => {
      const socket = Socket.wrap(raw)
      if (isDraining || open >= config.limits.maxConnections) {
        // Refused before any session exists: one reply, then close.
        Effect.runFork(Effect.zipRight(socket.write(tooMany), socket.close))
        return
      }
      open++
      sockets.add(socket)
      // The per-address limit applies to the real client, known after a PROXY header: see Connection.
      run(Connection.handle(env, { socket, implicitTls: mode === "implicit" }).pipe(
        Effect.catchAllCause((cause) => Effect.logError("connection failed", cause)),
        Effect.ensuring(Effect.sync(() => {
          open--
          sockets.delete(socket)
        }))
      ))
    }

    const addresses: Array<Bound> = []
    const listeners: Array<Socket.Listening> = []
    for (const listener of config.listeners) {
      if (listener.mode === "implicit" && tlsContext === undefined) {
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
        yield* Deferred.succeed(draining, undefined)
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
      reloadTls: Effect.map(loadTls(config), (context) => {
        tlsContext = context
      })
    }
  })
