/**
 * Wiring: the validated config becomes the ordered plugin list, the transports and a running
 * server. Used by the CLI and by tests that start a bridge in-process.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ExecutionStrategy from "effect/ExecutionStrategy"
import * as Exit from "effect/Exit"
import * as Metric from "effect/Metric"
import * as Schema from "effect/Schema"
import * as Scope from "effect/Scope"
import { Options as PolicyOptions } from "../plugins/policy/options.ts"
import { received } from "../plugins/received/index.ts"
import { Options as RspamdOptions } from "../plugins/rspamd/options.ts"
import { relayPolicy } from "../plugins/relay-policy/index.ts"
import { senderIdentity } from "../plugins/sender-identity/index.ts"
import type * as Admin from "./admin/Admin.ts"
import * as Readiness from "./admin/Readiness.ts"
import * as Backends from "./auth/Backends.ts"
import * as Reload from "./admin/Reload.ts"
import type { BridgeConfig } from "./config/Config.ts"
import * as Resolver from "./dns/Resolver.ts"
import * as Metrics from "./observability/Metrics.ts"
import * as Telemetry from "./observability/Telemetry.ts"
import * as Pipeline from "./pipeline/Pipeline.ts"
import type { Plugin } from "./pipeline/Plugin.ts"
import * as SmtpServer from "./server/SmtpServer.ts"
import * as Build from "./transport/Build.ts"
import * as Spool from "./transport/Spool.ts"
import type { Transport } from "./transport/Transport.ts"

export class BridgeError extends Data.TaggedError("BridgeError")<{ readonly message: string }> {}

/**
 * Whether AUTH is checked by anything: `users`, `auth` backends, or a configured plugin with an
 * `auth` hook or SASL mechanisms. A plugin made by `definePlugin({ options, make })` shows its
 * hooks only once set up, so the authentication backends' names (`auth-*`, as the built-in ones
 * are named) count too.
 */
const authenticates = (config: BridgeConfig): boolean =>
  config.users !== undefined || config.auth.length > 0 ||
  config.plugins.some((p) => p.auth !== undefined || p.sasl !== undefined || p.name.startsWith("auth-"))

/** Whether the config's plugins already bring their own rate-limit plugin (and so their own AUTH throttle). */
const throttled = (config: BridgeConfig): boolean => config.plugins.some((p) => p.name === "rate-limit")

/** The rate-limit plugin's options: the configured ones, or none but the AUTH throttle when something authenticates. */
const rateLimitOptions = (config: BridgeConfig): BridgeConfig["rateLimit"] =>
  config.rateLimit !== undefined ? config.rateLimit : authenticates(config) && !throttled(config) ? {} : undefined

/**
 * `[make(module, options)]` once the plugin's module is imported; no import, and nothing, when the
 * config leaves it out. The built-in plugins a config does not use are never loaded: together
 * they cost start-up some 40 ms (issue 16, bench/startup.py; the LDAP and OAuth clients most of it).
 */
export const lazy = <O, M>(
  options: O | undefined,
  module: () => Promise<M>,
  make: (module: M, options: O) => Plugin<unknown>
): Promise<ReadonlyArray<Plugin<unknown>>> => (options === undefined ? Promise.resolve([]) : module().then((m) => [make(m, options)]))

/** The plugins in the order they run: policy first, the user's own, then the trace header. */
export const plugins = (config: BridgeConfig): Effect.Effect<ReadonlyArray<Plugin<unknown>>, BridgeError> =>
  Effect.tryPromise({
    try: async () =>
      (await Promise.all([
        [relayPolicy({ trust: config.trust })],
        // Its authAttempt hook counts each AUTH attempt before credentials are checked, and slows down
        // and defers brute force. With users (or an auth plugin) and no rate limits configured it runs for AUTH alone, in memory.
        lazy(rateLimitOptions(config), () => import("../plugins/rate-limit/index.ts"), (m, o) => m.rateLimit(o)),
        // `users`, then the `auth` backends in order: the first that knows the user decides.
        Backends.plugins(config),
        [senderIdentity({ senders: config.senders, forgedFrom: config.forgedFrom })],
        lazy(config.verify, () => import("../plugins/mailauth-verify/index.ts"), (m, o) => m.mailauthVerify(o)),
        // After the relay policy: only a client allowed to relay may learn which addresses exist.
        verifiers(config),
        // After the relay policy, as Postfix's check_policy_service follows reject_unauth_destination.
        lazy(config.policy, () => import("../plugins/policy/index.ts"), (m, o) => m.policy(Schema.encodeSync(PolicyOptions)(o))),
        lazy(config.rspamd, () => import("../plugins/rspamd/index.ts"), (m, o) => m.rspamd(Schema.encodeSync(RspamdOptions)(o))),
        config.plugins,
        // After the user's plugins, as Postfix runs milters after its own checks; their edits are what routing and delivery see.
        lazy(config.milter, () => import("../plugins/milter/index.ts"), (m, o) => m.milter(o)),
        lazy(config.httpHooks, () => import("../plugins/http-hooks/index.ts"), (m, o) => m.httpHooks(o)),
        lazy(
          config.routes,
          () => import("../plugins/routing/index.ts"),
          (m, rules) => m.routing({ rules, defaultTransport: config.defaultTransport })
        ),
        // Signing sees the message as earlier hooks left it (a milter's or an HTTP hook's edits), as it will be sent.
        lazy(config.dkimSign, () => import("../plugins/dkim-sign/index.ts"), (m, o) => m.dkimSign(o)),
        lazy(config.arcSeal, () => import("../plugins/arc-seal/index.ts"), (m, o) => m.arcSeal(o)),
        [received()]
      ])).flat(),
    catch: (e) => new BridgeError({ message: e instanceof Error ? e.message : String(e) })
  })

/**
 * One recipient-verify plugin per relay transport with `verifyRecipients`: the default transport
 * without routes checks every recipient; otherwise the domains its `recipientDomain` routes send it.
 */
const verifiers = async (config: BridgeConfig): Promise<ReadonlyArray<Plugin>> => {
  const relays = Object.entries(config.transports).flatMap(([name, t]) => (t.type === "smtp" || t.type === "lmtp") && t.verifyRecipients ? [[name, t] as const] : [])
  if (relays.length === 0) return []
  const { recipientVerify } = await import("../plugins/recipient-verify/index.ts")
  return relays.map(([name, relay]) => {
    const domains = config.routes === undefined
      ? (name === config.defaultTransport ? undefined : [])
      : config.routes.filter((r) => r.transport === name).flatMap((r) => r.recipientDomain ?? [])
    return recipientVerify({ transport: name, relay, helo: config.hostname, domains })
  })
}

export interface Running extends Omit<SmtpServer.RunningServer, "reload"> {
  readonly pipeline: Pipeline.Pipeline
  readonly transports: ReadonlyMap<string, Transport>
  /** The admin HTTP listener, when `admin` is configured. */
  readonly admin: Admin.Admin | undefined
  /**
   * Applies a new config without dropping sessions (SIGHUP): plugins are set up again (the users
   * file is re-read), the TLS files re-read, transports rebuilt when they changed. Fails, leaving
   * the running config in place, when any of that fails. See `Reload.plan` for what needs a restart.
   */
  readonly reload: (config: BridgeConfig) => Effect.Effect<void, BridgeError>
}

const describeListener = (l: SmtpServer.Bound, tls: boolean): string =>
  `${l.host.includes(":") ? `[${l.host}]` : l.host}:${l.port} (${l.mode === "implicit" ? "implicit TLS" : tls ? "plain+STARTTLS" : "plain"})`

const message = (e: { readonly message: string }) => new BridgeError({ message: e.message })

/** The plugins, set up in `scope`, wrapped so that their verdicts are counted. */
const pipelineIn = (config: BridgeConfig, scope: Scope.Scope) =>
  plugins(config).pipe(Effect.flatMap(Pipeline.make), Effect.provide(Resolver.layer(config.dns)), Scope.extend(scope), Effect.map(Metrics.instrumentPipeline))

/**
 * A transports scope and how many generations use it: a reload that keeps the transports shares
 * them with the generation before, and a generation is released after its own last session, in
 * whatever order. The scope closes with the last generation that used it, so that a session of an older
 * generation never relays through a pool a younger one closed.
 */
interface Held {
  readonly scope: Scope.CloseableScope
  generations: number
}

const held = (scope: Scope.CloseableScope): Held => ({ scope, generations: 1 })

const letGo = (h: Held): Effect.Effect<void> =>
  Effect.suspend(() => (--h.generations === 0 ? Scope.close(h.scope, Exit.void) : Effect.void))

const transportsIn = (config: BridgeConfig, scope: Scope.Scope) =>
  Build.make(config.transports, config.hostname).pipe(Scope.extend(scope), Effect.map(Metrics.instrumentTransports))

/**
 * Starts the bridge; it serves until the scope closes (which drains gracefully). With
 * `telemetry`, it runs under that tracer, which closes last: the drained sessions' spans go too.
 */
export const start = (config: BridgeConfig): Effect.Effect<Running, BridgeError, Scope.Scope> =>
  serve(config).pipe(Telemetry.withTracing(config.telemetry), Effect.mapError(message))

const serve = (config: BridgeConfig): Effect.Effect<Running, BridgeError, Scope.Scope> =>
  Effect.gen(function*() {
    // Every generation's plugins and transports live in scopes under this one, made before the
    // server so that on shutdown the server drains first and they close after.
    const generations = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    const child = Scope.fork(generations, ExecutionStrategy.sequential)
    const pipelineScope = yield* child
    const transportsScope = yield* child
    const pipeline = yield* pipelineIn(config, pipelineScope)
    const transports = yield* transportsIn(config, transportsScope)
    // Made after the transports and before the server: on close the server drains first, then
    // the worker stops (a delivery in flight is retried after restart), then the transports close.
    const spool = config.spool === undefined ? undefined : yield* Spool.make({
      dir: config.spool.dir,
      transports,
      hostname: config.hostname,
      retry: { initialDelay: config.spool.initialDelay, maxDelay: config.spool.maxDelay, maxAge: config.spool.maxAge },
      concurrency: config.spool.concurrency,
      bounceTransport: config.defaultTransport
    })
    let state = { config, pipeline, transports, pipelineScope, transportsHeld: held(transportsScope) }
    const bound: { server: SmtpServer.RunningServer | undefined } = { server: undefined }
    // The admin listener comes before the server: it answers 503 while the listeners bind and
    // while they drain, rather than refusing connections.
    const adminConfig = config.admin
    const admin = adminConfig === undefined ? undefined : yield* Effect.gen(function*() {
      // Imported only when configured: the HTTP server modules cost start-up some 15 ms (bench/startup.py).
      const Admin = yield* Effect.promise(() => import("./admin/Admin.ts"))
      const exposure = Admin.exposureWarning(adminConfig.host, adminConfig.token !== undefined)
      if (exposure !== undefined) yield* Effect.logWarning(exposure)
      return yield* Admin.make({
        host: adminConfig.host,
        port: adminConfig.port,
        token: adminConfig.token,
        // Read at each request: a reload may change the transports to probe.
        ready: Effect.suspend(() => Readiness.run([{ name: "listeners", check: listenersReady(bound.server) }, ...Readiness.forConfig(state.config)])),
        beforeScrape: config.spool === undefined ? Effect.void : spoolGauges(config.spool.dir)
      })
    })
    const server = yield* SmtpServer.make({ config, pipeline, transports, spool })
    bound.server = server
    const listening = server.addresses.map((l) => describeListener(l, config.tls !== undefined)).join(", ")
    const order = pipeline.plugins.map((p) => `${p.name}[${p.hooks.join(",")}]`).join(" -> ")
    yield* Effect.logInfo(
      `smtp-bridge listening on ${listening}; hostname ${config.hostname}; ` +
        `TLS ${config.tls === undefined ? "off" : "on"}; AUTH ${pipeline.has("auth") || pipeline.has("sasl") ? (config.allowInsecureAuth ? "on (insecure allowed)" : "on (TLS only)") : "off"}; ` +
        `auth ${Backends.describe(config)}; ` +
        `plugins ${order}; transports ${Build.describe(config.transports)}; spool ${config.spool === undefined ? "off" : config.spool.dir}; max size ${config.limits.maxMessageSize}; ` +
        `shutdown timeout ${Duration.format(config.shutdownTimeout)}; telemetry ${Telemetry.describe(config.telemetry)}`
    )
    // relay-policy refuses MAIL without AUTH or a trusted network: with neither, every client
    // would get 530 and the operator no hint why.
    if (!pipeline.has("auth") && !pipeline.has("sasl") && config.trust.length === 0) {
      yield* Effect.logWarning("no users and no trusted networks: every message will be refused; try --trust 127.0.0.1/32 or --users FILE")
    }
    if (admin !== undefined) yield* Effect.logInfo(`admin listening on http://${admin.host.includes(":") ? `[${admin.host}]` : admin.host}:${admin.port} (/metrics, /healthz, /readyz)`)

    // One reload at a time: each builds on the state the previous one left.
    const reloading = yield* Effect.makeSemaphore(1)
    const reload = (next: BridgeConfig) =>
      Effect.gen(function*() {
        const plan = Reload.plan(state.config, next, { spool: spool !== undefined })
        for (const note of plan.notes) yield* Effect.logWarning(`reload: ${note}`)
        const newPipelineScope = yield* child
        const newTransportsScope = plan.rebuildTransports ? yield* child : undefined
        const discard = Effect.zipRight(
          Scope.close(newPipelineScope, Exit.void),
          newTransportsScope === undefined ? Effect.void : Scope.close(newTransportsScope, Exit.void)
        )
        const built = yield* Effect.all({
          pipeline: pipelineIn(plan.config, newPipelineScope),
          transports: newTransportsScope === undefined ? Effect.succeed(state.transports) : transportsIn(plan.config, newTransportsScope)
        }).pipe(Effect.mapError(message), Effect.tapError(() => discard))
        const old = state
        // Kept transports are shared with the generation before, which may outlive this one. Counted
        // before the server switches: the old generation, with no session left, is released at once.
        const transportsHeld = newTransportsScope === undefined ? old.transportsHeld : held(newTransportsScope)
        if (newTransportsScope === undefined) transportsHeld.generations++
        const unshare = Effect.sync(() => {
          if (newTransportsScope === undefined) transportsHeld.generations--
        })
        yield* server.reload({
          config: plan.config,
          ...built,
          release: Effect.zipRight(Scope.close(old.pipelineScope, Exit.void), letGo(old.transportsHeld))
        }).pipe(Effect.mapError(message), Effect.tapError(() => Effect.zipRight(unshare, discard)))
        state = { config: plan.config, ...built, pipelineScope: newPipelineScope, transportsHeld }
      }).pipe(reloading.withPermits(1))

    return {
      ...server,
      get pipeline() {
        return state.pipeline
      },
      get transports() {
        return state.transports
      },
      admin,
      reload
    }
  }).pipe(Effect.mapError((e) => new BridgeError({ message: e.message })))

const listenersReady = (server: SmtpServer.RunningServer | undefined): Effect.Effect<void, string> =>
  server === undefined ? Effect.fail("not bound yet") : server.draining() ? Effect.fail("draining") : Effect.void

/** Spool depth and age are read from the directory at scrape time rather than tracked. */
const spoolGauges = (dir: string): Effect.Effect<void> =>
  Spool.list(dir).pipe(
    Effect.flatMap((entries) =>
      Effect.zipRight(
        Metric.set(Metrics.spoolDepth, entries.length),
        Metric.set(Metrics.spoolOldest, entries.length === 0 ? 0 : Math.max(0, (Date.now() - entries[0]!.created.getTime()) / 1000))
      )
    ),
    Effect.catchAll((error) => Effect.logWarning(`metrics: cannot read the spool: ${error.message}`))
  )

/** For the CLI: start and return once listening. */
export const run = (config: BridgeConfig): Effect.Effect<Running, BridgeError, Scope.Scope> => start(config)
