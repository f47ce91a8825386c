/**
 * Wiring: the validated config becomes the ordered plugin list, the transports and a running
 * server. Used by the CLI and by tests that start a bridge in-process.
 */
import { Data, Duration, Effect, type Scope } from "effect"
import { authHtpasswd } from "../plugins/auth-htpasswd/index.ts"
import { received } from "../plugins/received/index.ts"
import { relayPolicy } from "../plugins/relay-policy/index.ts"
import { routing } from "../plugins/routing/index.ts"
import { senderIdentity } from "../plugins/sender-identity/index.ts"
import type { BridgeConfig } from "./config/Config.ts"
import * as Resolver from "./dns/Resolver.ts"
import * as Pipeline from "./pipeline/Pipeline.ts"
import type { Plugin } from "./pipeline/Plugin.ts"
import * as SmtpServer from "./server/SmtpServer.ts"
import * as Build from "./transport/Build.ts"
import * as Spool from "./transport/Spool.ts"
import type { Transport } from "./transport/Transport.ts"

export class BridgeError extends Data.TaggedError("BridgeError")<{ readonly message: string }> {}

/** The plugins in the order they run: policy first, the user's own, then the trace header. */
export const plugins = (config: BridgeConfig): ReadonlyArray<Plugin> => [
  relayPolicy({ trust: config.trust }),
  ...(config.users !== undefined ? [authHtpasswd({ file: config.users })] : []),
  senderIdentity({ senders: config.senders }),
  ...config.plugins,
  ...(config.routes !== undefined ? [routing({ rules: config.routes, defaultTransport: config.defaultTransport })] : []),
  received()
]

export interface Running extends SmtpServer.RunningServer {
  readonly pipeline: Pipeline.Pipeline
  readonly transports: ReadonlyMap<string, Transport>
}

const describeListener = (l: SmtpServer.Bound, tls: boolean): string =>
  `${l.host.includes(":") ? `[${l.host}]` : l.host}:${l.port} (${l.mode === "implicit" ? "implicit TLS" : tls ? "plain+STARTTLS" : "plain"})`

/** Starts the bridge; it serves until the scope closes (which drains gracefully). */
export const start = (config: BridgeConfig): Effect.Effect<Running, BridgeError, Scope.Scope> =>
  Effect.gen(function*() {
    const pipeline = yield* Pipeline.make(plugins(config)).pipe(Effect.provide(Resolver.layer()))
    const transports = yield* Build.make(config.transports, config.hostname)
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
    const server = yield* SmtpServer.make({ config, pipeline, transports, spool })
    const listening = server.addresses.map((l) => describeListener(l, config.tls !== undefined)).join(", ")
    const order = pipeline.plugins.map((p) => `${p.name}[${p.hooks.join(",")}]`).join(" -> ")
    yield* Effect.logInfo(
      `smtp-bridge listening on ${listening}; hostname ${config.hostname}; ` +
        `TLS ${config.tls === undefined ? "off" : "on"}; AUTH ${pipeline.has("auth") ? (config.allowInsecureAuth ? "on (insecure allowed)" : "on (TLS only)") : "off"}; ` +
        `plugins ${order}; transports ${Build.describe(config.transports)}; spool ${config.spool === undefined ? "off" : config.spool.dir}; max size ${config.limits.maxMessageSize}; ` +
        `shutdown timeout ${Duration.format(config.shutdownTimeout)}`
    )
    return { ...server, pipeline, transports }
  }).pipe(Effect.mapError((e) => new BridgeError({ message: e.message })))

/** For the CLI: start and return once listening. */
export const run = (config: BridgeConfig): Effect.Effect<void, BridgeError, Scope.Scope> => Effect.asVoid(start(config))
