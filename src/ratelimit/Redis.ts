/**
 * The Redis connection behind the shared stores, as operators run Redis: one server, TLS
 * (`rediss://`), ACL users, Sentinel (a master name and its sentinels) or Cluster.
 *
 * The client is ioredis: it runs on Bun, Deno and Node (TLS and Cluster included; the e2e tests
 * run each set-up under Bun and Deno), it speaks Sentinel and Cluster with their redirections and
 * failovers, and Effect's own Redis packages use it too. node-redis was the other candidate; its
 * Sentinel client is younger and its cluster client names nodes by URL only.
 *
 * Set up for a limiter on the SMTP path, as the hand-written client before it was:
 * - no queueing behind an outage (`enableOfflineQueue: false`, `maxRetriesPerRequest: 0`): while
 *   Redis is down a command fails at once, so the caller's fallback (fail open or closed)
 *   answers in microseconds instead of holding SMTP sessions;
 * - reconnection by itself with capped, jittered exponential backoff;
 * - a command that times out drops the connection (a silent peer, e.g. a partition without a
 *   RST, is noticed only that way) and a READONLY reply (a demoted master) reconnects through
 *   the sentinels;
 * - the outage and the recovery are each logged once, without the password.
 *
 * @example
 * const redis = yield* Redis.make({ url: "redis://127.0.0.1:6379/0" })
 * const pong = yield* redis.call("PING") // "PONG"
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import type { Cluster, ClusterOptions, Redis as Client, RedisOptions as ClientOptions } from "ioredis"
import * as Fs from "node:fs"
import * as RedisUrl from "./RedisUrl.ts"
import { RateLimitStoreError } from "./Store.ts"

export interface SentinelOptions {
  /** The master's name, as the sentinels know it (`sentinel monitor NAME ...`). */
  readonly name: string
  /** The sentinels as `"host:port"`; any one that answers names the current master. */
  readonly sentinels: ReadonlyArray<string>
  /** The sentinels' own ACL user and password, when they require one. */
  readonly username?: string
  readonly password?: string
}

export interface ClusterSeeds {
  /** More nodes to learn the cluster from, as `"host:port"`, beside the URL's. */
  readonly nodes?: ReadonlyArray<string>
}

export interface RedisOptions {
  /**
   * `redis://[user:password@]host[:port][/db]`, or `rediss://` for TLS. With `sentinel` its host
   * is not used (the sentinels name the master); with `cluster` it is the first node to ask.
   */
  readonly url: string
  /** Find the master through Redis Sentinel (and follow its failovers). */
  readonly sentinel?: SentinelOptions
  /** Speak Redis Cluster; keys of one script must then share a hash slot (see `hashTagged`). */
  readonly cluster?: ClusterSeeds
  /** A PEM file of the certificate authorities to trust for `rediss://`, instead of the system's. */
  readonly tlsCa?: string
  /** Bound on connecting (TCP, TLS, AUTH, SELECT); default 2 seconds. */
  readonly connectTimeout?: Duration.DurationInput
  /** Bound on one command; past it the connection counts as broken and is replaced. Default 1 second. */
  readonly commandTimeout?: Duration.DurationInput
  /** Longest wait between reconnection attempts; default 5 seconds (the first is 100 ms). */
  readonly maxBackoff?: Duration.DurationInput
}

export interface Redis {
  /** One command; the reply as ioredis gives it (strings, numbers, arrays). */
  readonly call: (command: string, ...args: ReadonlyArray<string | number>) => Effect.Effect<unknown, RateLimitStoreError>
  /** `redis://host:port/db`, `redis-sentinel://name@host:port,.../db` or `redis-cluster://host:port,...`; never a password. */
  readonly description: string
  /** Whether keys of one command must share a hash slot. */
  readonly cluster: boolean
}

const failure = (reason: "Unavailable" | "Timeout" | "Protocol", message: string) => new RateLimitStoreError({ reason, message })

const shownNode = (n: { readonly host: string; readonly port: number }) => `${n.host.includes(":") ? `[${n.host}]` : n.host}:${n.port}`

const nodesOf = (texts: ReadonlyArray<string>, defaultPort: number) => {
  const nodes = texts.map((t) => RedisUrl.parseNode(t, defaultPort))
  const bad = nodes.find((n) => typeof n === "string")
  return typeof bad === "string" ? bad : nodes as ReadonlyArray<{ readonly host: string; readonly port: number }>
}

/**
 * The prefix of every key in Cluster mode: wrapped in braces (a hash tag) unless it has one, so
 * that all the keys of one decision live in one slot and its script stays one atomic step.
 */
export const hashTagged = (prefix: string): string => /\{[^}]+\}/.test(prefix) ? prefix : `{${prefix}}`

/**
 * Connects in the given scope and returns the client. Waits for the first attempt (bounded by
 * `connectTimeout`), so a reachable Redis is in use from the first request; an unreachable one
 * is not an error here, only logged, and retried in the background.
 */
export const make = (options: RedisOptions): Effect.Effect<Redis, string, Scope.Scope> =>
  Effect.gen(function*() {
    const target = RedisUrl.parse(options.url)
    if (typeof target === "string") return yield* Effect.fail(target)
    // ioredis is loaded when a Redis store is made, not when the bridge starts (start-up time).
    const { Cluster, Redis: Client } = yield* Effect.promise(() => import("ioredis"))
    const connectTimeout = Duration.toMillis(Duration.decode(options.connectTimeout ?? Duration.seconds(2)))
    const commandTimeout = Duration.decode(options.commandTimeout ?? Duration.seconds(1))
    const maxBackoff = Duration.toMillis(Duration.decode(options.maxBackoff ?? Duration.seconds(5)))
    const ca = options.tlsCa === undefined ? undefined : yield* Effect.try({
      try: () => Fs.readFileSync(options.tlsCa!, "utf8"),
      catch: (error) => `cannot read the Redis TLS CA file ${options.tlsCa}: ${error instanceof Error ? error.message : String(error)}`
    })

    // Jitter keeps a fleet of bridges from reconnecting in lockstep after Redis restarts.
    const backoff = (times: number) => {
      const base = Math.min(maxBackoff, 100 * 2 ** Math.min(times - 1, 16))
      return Math.round(base / 2 + Math.random() * base / 2)
    }
    const perNode = {
      connectTimeout,
      maxRetriesPerRequest: 0,
      enableReadyCheck: true,
      ...(target.username === undefined ? {} : { username: target.username }),
      ...(target.password === undefined ? {} : { password: target.password }),
      ...(target.tls ? { tls: ca === undefined ? {} : { ca } } : {}),
      // A demoted master answers writes with READONLY: reconnect, which asks the sentinels again.
      reconnectOnError: (error: Error) => error.message.startsWith("READONLY") ? 1 as const : false
    } satisfies ClientOptions
    const common: ClientOptions = { ...perNode, enableOfflineQueue: false }

    let client: Client | Cluster
    let description: string
    if (options.sentinel !== undefined) {
      const sentinels = nodesOf(options.sentinel.sentinels, 26_379)
      if (typeof sentinels === "string") return yield* Effect.fail(sentinels)
      if (sentinels.length === 0) return yield* Effect.fail("Redis sentinel needs at least one sentinel (HOST:PORT)")
      description = `redis-sentinel://${options.sentinel.name}@${sentinels.map(shownNode).join(",")}/${target.db}`
      client = new Client({
        ...common,
        db: target.db,
        name: options.sentinel.name,
        sentinels: sentinels.map((n) => ({ host: n.host, port: n.port })),
        ...(options.sentinel.username === undefined ? {} : { sentinelUsername: options.sentinel.username }),
        ...(options.sentinel.password === undefined ? {} : { sentinelPassword: options.sentinel.password }),
        ...(target.tls ? { enableTLSForSentinelMode: true } : {}),
        retryStrategy: backoff,
        sentinelRetryStrategy: backoff
      })
    } else if (options.cluster !== undefined) {
      if (target.db !== 0) return yield* Effect.fail("Redis Cluster has only database 0; remove the /db from the URL")
      const extra = nodesOf(options.cluster.nodes ?? [], 6379)
      if (typeof extra === "string") return yield* Effect.fail(extra)
      const seeds = [target.endpoint, ...extra]
      description = `redis-cluster://${seeds.map(shownNode).join(",")}`
      const clusterOptions: ClusterOptions = {
        enableOfflineQueue: false,
        enableReadyCheck: true,
        maxRedirections: 4,
        clusterRetryStrategy: backoff,
        redisOptions: perNode
      }
      client = new Cluster(seeds.map((n) => ({ host: n.host, port: n.port })), clusterOptions)
    } else {
      description = target.description
      client = new Client({ ...common, host: target.endpoint.host, port: target.endpoint.port, db: target.db, retryStrategy: backoff })
    }

    // ioredis reports from its own callbacks: run the log lines in this scope's runtime (its logger).
    const runtime = yield* Effect.runtime<never>()
    const log = (effect: Effect.Effect<void>) => void Runtime.runFork(runtime)(effect)
    // undefined before the first attempt; an outage is logged once, on the way down.
    let healthy: boolean | undefined
    let lastError = "connection closed"
    let settleFirst: () => void = () => {}
    const firstAttempt = new Promise<void>((resolve) => settleFirst = resolve)
    let closing = false
    const down = () => {
      if (closing) return
      if (healthy !== false) log(Effect.logWarning(`Redis ${description} is unreachable (${lastError}); retrying in the background`))
      healthy = false
      settleFirst()
    }
    client.on("error", (error: Error) => void (lastError = error.message))
    client.on("close", down)
    client.on("end", down)
    client.on("ready", () => {
      if (healthy === false) log(Effect.logInfo(`Redis ${description} is reachable again`))
      healthy = true
      settleFirst()
    })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closing = true
        client.disconnect()
      })
    )
    yield* Effect.promise(() => firstAttempt).pipe(Effect.timeout(Duration.millis(connectTimeout + 500)), Effect.ignore)

    const call = (command: string, ...args: ReadonlyArray<string | number>): Effect.Effect<unknown, RateLimitStoreError> =>
      Effect.tryPromise({
        try: () => client.call(command, ...args),
        catch: (error) => {
          const message = error instanceof Error ? error.message : String(error)
          // A reply error is Redis's answer (a script error, CROSSSLOT); anything else is the connection.
          return error instanceof Error && error.name === "ReplyError"
            ? failure("Protocol", `Redis ${description}: ${message}`)
            : failure("Unavailable", `Redis ${description}: ${message}`)
        }
      }).pipe(
        Effect.timeoutFail({
          duration: commandTimeout,
          onTimeout: () => failure("Timeout", `Redis ${description} did not answer within ${Duration.format(commandTimeout)}`)
        }),
        Effect.tapError((e) =>
          e.reason === "Timeout" && client instanceof Client ? Effect.sync(() => client.disconnect(true)) : Effect.void)
      )

    return { call, description, cluster: client instanceof Cluster }
  })
