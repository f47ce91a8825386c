/**
 * A minimal Redis client: one pipelined RESP2 connection that reconnects by itself with capped
 * exponential backoff. While it is down, commands fail at once (no queueing behind an outage),
 * so a caller's fallback answers in microseconds instead of holding SMTP sessions; the outage
 * and the recovery are each logged once.
 *
 * @example
 * const redis = yield* RedisClient.make({ url: "redis://127.0.0.1:6379/0" })
 * const pong = yield* redis.command(["PING"]) // { _tag: "Simple", value: "PONG" }
 */
import { Deferred, Duration, Effect, Option, Ref } from "effect"
import type { Scope } from "effect"
import * as Connect from "../runtime/Connect.ts"
import * as RedisUrl from "./RedisUrl.ts"
import * as Resp from "./Resp.ts"
import { RateLimitStoreError } from "./Store.ts"

export interface RedisOptions {
  /** `redis://[user:password@]host[:port][/db]` or `rediss://` for TLS. */
  readonly url: string
  /** Bound on connecting (TCP, TLS, AUTH, SELECT); default 2 seconds. */
  readonly connectTimeout?: Duration.DurationInput
  /** Bound on one command; past it the connection counts as broken and is replaced. Default 1 second. */
  readonly commandTimeout?: Duration.DurationInput
  /** Longest wait between reconnection attempts; default 5 seconds (the first is 100 ms). */
  readonly maxBackoff?: Duration.DurationInput
  /** Run on every new connection before it serves commands (e.g. SCRIPT LOAD). */
  readonly onConnect?: (send: (args: ReadonlyArray<string | number>) => Effect.Effect<Resp.Value, RateLimitStoreError>) => Effect.Effect<void, RateLimitStoreError>
}

export interface RedisClient {
  readonly command: (args: ReadonlyArray<string | number>) => Effect.Effect<Resp.Value, RateLimitStoreError>
  /** Whether a connection is up now. */
  readonly connected: Effect.Effect<boolean>
  /** `redis://host:port/db`, never the password. */
  readonly description: string
}

/** A Redis URL's parts (see `RedisUrl.ts`, which the config check shares without loading this client). */
type Target = RedisUrl.Target
export const parseUrl = RedisUrl.parse

const failure = (reason: "Unavailable" | "Timeout" | "Protocol", message: string) => new RateLimitStoreError({ reason, message })

/** One live connection: pipelined commands answered in order. */
interface Connection {
  readonly send: (args: ReadonlyArray<string | number>) => Effect.Effect<Resp.Value, RateLimitStoreError>
  /** Completes when the connection is gone (peer closed, protocol error, command timeout). */
  readonly broken: Deferred.Deferred<string>
}

const maxPending = 10_000

const open = (target: Target, connectTimeout: Duration.Duration, commandTimeout: Duration.Duration): Effect.Effect<Connection, Connect.ConnectError, Scope.Scope> =>
  Effect.gen(function*() {
    const socket = yield* Connect.connect(target.endpoint, {
      timeout: connectTimeout,
      ...(target.tls ? { tls: { rejectUnauthorized: true } } : {})
    })
    const pending: Array<Deferred.Deferred<Resp.Value, RateLimitStoreError>> = []
    const broken = yield* Deferred.make<string>()
    const lock = yield* Effect.makeSemaphore(1)
    const decoder = Resp.decoder()

    const breakWith = (why: string) =>
      Effect.gen(function*() {
        yield* Deferred.succeed(broken, why)
        for (const d of pending.splice(0)) yield* Deferred.fail(d, failure("Unavailable", `Redis ${target.description}: ${why}`))
      })

    const reader = Effect.gen(function*() {
      while (true) {
        const chunk = yield* socket.read
        if (chunk === undefined) return yield* breakWith("connection closed")
        decoder.push(chunk)
        while (true) {
          let value: Resp.Value | undefined
          try {
            value = decoder.next()
          } catch (error) {
            return yield* breakWith(`protocol error: ${error instanceof Error ? error.message : String(error)}`)
          }
          if (value === undefined) break
          const waiter = pending.shift()
          if (waiter === undefined) return yield* breakWith("reply without a command")
          yield* Deferred.succeed(waiter, value)
        }
      }
    })
    yield* Effect.forkScoped(reader)

    const send = (args: ReadonlyArray<string | number>): Effect.Effect<Resp.Value, RateLimitStoreError> =>
      Effect.gen(function*() {
        // Enqueueing and writing under one lock keeps the queue in the order the bytes go out.
        const waiter = yield* lock.withPermits(1)(Effect.gen(function*() {
          if (yield* Deferred.isDone(broken)) return yield* failure("Unavailable", `Redis ${target.description} is not connected`)
          if (pending.length >= maxPending) return yield* failure("Unavailable", `Redis ${target.description}: too many commands waiting`)
          const d = yield* Deferred.make<Resp.Value, RateLimitStoreError>()
          pending.push(d)
          yield* Effect.mapError(socket.write(Resp.encode(args)), (e) => failure("Unavailable", e.message))
          return d
        }))
        return yield* Deferred.await(waiter).pipe(
          Effect.timeoutFail({
            duration: commandTimeout,
            onTimeout: () => failure("Timeout", `Redis ${target.description} did not answer within ${Duration.format(commandTimeout)}`)
          }),
          // A silent peer (a partition without RST) is only noticed here: replace the connection.
          Effect.tapError((e) => e.reason === "Timeout" ? breakWith("command timed out") : Effect.void)
        )
      })

    return { send, broken }
  })

const expectOk = (what: string) => (value: Resp.Value): Effect.Effect<void, RateLimitStoreError> =>
  value._tag === "Error" ? Effect.fail(failure("Protocol", `${what} failed: ${value.value}`)) : Effect.void

/**
 * Starts the client in the given scope: a fiber keeps one connection up until the scope closes.
 * Waits for the first attempt (bounded by `connectTimeout`), so a reachable Redis is in use from
 * the first request; an unreachable one is not an error here, only logged.
 */
export const make = (options: RedisOptions): Effect.Effect<RedisClient, string, Scope.Scope> =>
  Effect.gen(function*() {
    const target = parseUrl(options.url)
    if (typeof target === "string") return yield* Effect.fail(target)
    const connectTimeout = Duration.decode(options.connectTimeout ?? Duration.seconds(2))
    const commandTimeout = Duration.decode(options.commandTimeout ?? Duration.seconds(1))
    const maxBackoff = Duration.toMillis(Duration.decode(options.maxBackoff ?? Duration.seconds(5)))
    const current = yield* Ref.make<Option.Option<Connection>>(Option.none())
    const firstAttempt = yield* Deferred.make<void>()
    // undefined before the first attempt; an outage is logged on the transition from true.
    let healthy: boolean | undefined

    const handshake = (conn: Connection) =>
      Effect.gen(function*() {
        if (target.password !== undefined) {
          const auth = target.username !== undefined ? ["AUTH", target.username, target.password] : ["AUTH", target.password]
          yield* Effect.flatMap(conn.send(auth), expectOk("AUTH"))
        }
        if (target.db !== 0) yield* Effect.flatMap(conn.send(["SELECT", target.db]), expectOk("SELECT"))
        if (options.onConnect !== undefined) yield* options.onConnect(conn.send)
      })

    const session = Effect.scoped(Effect.gen(function*() {
      const conn = yield* open(target, connectTimeout, commandTimeout).pipe(
        Effect.timeoutFail({ duration: connectTimeout, onTimeout: () => failure("Timeout", `no connection within ${Duration.format(connectTimeout)}`) }),
        Effect.mapError((e) => e.message)
      )
      yield* handshake(conn).pipe(
        Effect.timeoutFail({ duration: connectTimeout, onTimeout: () => failure("Timeout", "handshake timed out") }),
        Effect.mapError((e) => e.message)
      )
      yield* Ref.set(current, Option.some(conn))
      if (healthy === false) yield* Effect.logInfo(`Redis ${target.description} is reachable again`)
      healthy = true
      yield* Deferred.succeed(firstAttempt, undefined)
      const why = yield* Deferred.await(conn.broken)
      return yield* Effect.fail(why)
    }).pipe(Effect.ensuring(Ref.set(current, Option.none()))))

    const loop = Effect.gen(function*() {
      let attempt = 0
      while (true) {
        const outcome = yield* Effect.either(session)
        const why = outcome._tag === "Left" ? outcome.left : "connection ended"
        if (healthy !== false) {
          yield* Effect.logWarning(`Redis ${target.description} is unreachable (${why}); retrying in the background`)
          attempt = 0
        }
        healthy = false
        yield* Deferred.succeed(firstAttempt, undefined)
        const base = Math.min(maxBackoff, 100 * 2 ** Math.min(attempt, 16))
        attempt++
        // Jitter keeps a fleet of bridges from reconnecting in lockstep after Redis restarts.
        yield* Effect.sleep(Duration.millis(base / 2 + Math.random() * base / 2))
      }
    })
    yield* Effect.forkScoped(loop)
    yield* Deferred.await(firstAttempt).pipe(Effect.timeout(Duration.sum(connectTimeout, Duration.millis(500))), Effect.ignore)

    const command = (args: ReadonlyArray<string | number>): Effect.Effect<Resp.Value, RateLimitStoreError> =>
      Effect.flatMap(Ref.get(current), (conn) =>
        Option.isNone(conn)
          ? Effect.fail(failure("Unavailable", `Redis ${target.description} is not connected`))
          : conn.value.send(args))

    return {
      command,
      connected: Effect.map(Ref.get(current), Option.isSome),
      description: target.description
    }
  })

