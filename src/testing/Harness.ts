/**
 * A whole SMTP session in-process: the session machine (`session/Engine.ts`) driven by an
 * in-memory interpreter instead of `server/Connection.ts`. The hooks run through the real
 * `Pipeline` (timeouts, failures as 451 4.3.0), the message through the real `StreamDecoder`
 * (dot-unstuffing, line endings) and `MessageBuffer`, and delivery through the real
 * `server/Delivery.ts` (routes, fan-out, partial delivery) into in-memory transports. No socket,
 * no timer but the plugins' own: what a test sees is what a client of the bridge would.
 *
 * @example
 * const harness = yield* Harness.make({ plugins: [myPlugin()] })
 * const s = yield* harness.open()
 * yield* s.send("EHLO client.test")
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import * as Bridge from "../Bridge.ts"
import type { BridgeConfig } from "../config/Config.ts"
import * as Resolve from "../config/Resolve.ts"
import type { Dns } from "../dns/Dns.ts"
import * as StaticDns from "../dns/Static.ts"
import * as Pipeline from "../pipeline/Pipeline.ts"
import type { Plugin } from "../pipeline/Plugin.ts"
import * as Notes from "../pipeline/Notes.ts"
import * as Relay from "../pipeline/Relay.ts"
import type { SessionInfo, TlsInfo } from "../pipeline/Session.ts"
import * as Settings from "../server/Settings.ts"
import type { ServerEnv } from "../server/Env.ts"
import type * as Engine from "../session/Engine.ts"
import * as Interpreter from "./Interpreter.ts"
import * as MemoryTransport from "./MemoryTransport.ts"

export type { Exchange, Session } from "./Interpreter.ts"

/** The client of one session: where it comes from, and whether it arrives over implicit TLS. */
export interface ClientInput {
  readonly remoteAddress?: string
  readonly remotePort?: number
  readonly localAddress?: string
  readonly localPort?: number
  /** The session starts encrypted (an implicit-TLS listener). */
  readonly tls?: TlsInfo
  /** Sets `Relay.Trusted` on the session from the start (default: true for a plugin list, false for a config). */
  readonly trusted?: boolean
}

export interface Options {
  /** Run exactly these plugins (no built-in policy), in this order. */
  readonly plugins?: ReadonlyArray<Plugin<unknown>>
  /** Or a whole config, as a config file exports it: its plugins in the order the server runs them. */
  readonly config?: unknown
  /** Or a config already resolved (as `smtp-bridge replay` loads it). */
  readonly resolved?: BridgeConfig
  /** Wraps the pipeline the sessions use (replay answers AUTH from the capture this way). */
  readonly pipeline?: (pipeline: Pipeline.Pipeline) => Pipeline.Pipeline
  /** Names the config field errors come from (default "test config"). */
  readonly source?: string
  /** DNS for the hooks: a fixed zone, or a layer (default: an empty zone, every name unknown). */
  readonly dns?: StaticDns.Zone | Layer.Layer<Dns>
  /** How each in-memory transport answers (default: 250 for every recipient). */
  readonly answer?: MemoryTransport.Answer
  /** STARTTLS is offered, and the handshake always succeeds (default false). */
  readonly starttls?: boolean
  /** AUTH may be offered without TLS (default true with a plugin list; the config's value otherwise). */
  readonly allowInsecureAuth?: boolean
  /** The name in the greeting (default: the config's, or mx.bridge.test). */
  readonly hostname?: string
  /** Log lines below this level are dropped (default Warning: a failed hook is shown, a delivery is not). */
  readonly logLevel?: LogLevel.LogLevel
}

export interface Harness {
  readonly config: BridgeConfig
  readonly env: ServerEnv
  /** Every message the in-memory transports received, in order. */
  readonly delivered: ReadonlyArray<MemoryTransport.Delivered>
  /** A new session: the `connect` hooks have run and the greeting (or refusal) is in `exchanges`. */
  readonly open: (client?: ClientInput) => Effect.Effect<Interpreter.Session>
}

const defaultConfig = { hostname: "mx.bridge.test" }

const dnsLayer = (dns: Options["dns"]): Layer.Layer<Dns> =>
  dns === undefined ? StaticDns.layer({}) : Layer.isLayer(dns) ? dns as Layer.Layer<Dns> : StaticDns.layer(dns as StaticDns.Zone)

let sessions = 0

/**
 * Sets up the plugins (their `setup` runs in the current scope) and the in-memory transports: one
 * per transport the config names, under its name, so routes work as configured.
 */
export const make = (options: Options = {}): Effect.Effect<Harness, Resolve.ConfigError | Pipeline.PluginSetupError, Scope.Scope> =>
  Effect.gen(function*() {
    const listed = options.config === undefined && options.resolved === undefined
    const input = options.config === undefined ? { ...defaultConfig, allowInsecureAuth: true } : options.config
    const resolved = options.resolved ?? (yield* Resolve.resolve(input, options.source ?? "test config"))
    const config: BridgeConfig = {
      ...resolved,
      ...(options.hostname === undefined ? {} : { hostname: options.hostname }),
      ...(options.allowInsecureAuth === undefined ? {} : { allowInsecureAuth: options.allowInsecureAuth }),
      // Delivery never spools in memory: a message the transports refuse is refused to the client.
      spool: undefined
    }
    const plugins = listed ? options.plugins ?? [] : [...(yield* Effect.orDie(Bridge.plugins(config))), ...(options.plugins ?? [])]
    const made = yield* Pipeline.make(plugins).pipe(Effect.provide(dnsLayer(options.dns)))
    const pipeline = options.pipeline === undefined ? made : options.pipeline(made)
    const delivered: Array<MemoryTransport.Delivered> = []
    const names = new Set([...Object.keys(config.transports), config.defaultTransport])
    const transports = new Map([...names].map((name) => [name, MemoryTransport.make(name, delivered, options.answer)]))
    const env: ServerEnv = {
      config,
      pipeline,
      transports,
      spool: undefined,
      tls: () => undefined,
      isDraining: () => false,
      proxies: [],
      admit: () => "admitted",
      release: () => undefined
    }
    const settings: Engine.Settings = { ...Settings.of(env), tls: options.starttls === true }
    const open = (client: ClientInput = {}) =>
      Effect.suspend(() => {
        const info: SessionInfo = {
          id: `S${++sessions}`,
          remoteAddress: client.remoteAddress ?? "192.0.2.10",
          remotePort: client.remotePort ?? 50000,
          localAddress: client.localAddress ?? "192.0.2.1",
          localPort: client.localPort ?? 587,
          hostname: config.hostname,
          tls: client.tls,
          helo: undefined,
          user: undefined,
          authMechanism: undefined,
          notes: Notes.make()
        }
        if (client.trusted ?? listed) info.notes.set(Relay.Trusted, true)
        return Interpreter.open(env, settings, info, options.logLevel ?? LogLevel.Warning)
      })
    return { config, env, delivered, open }
  })

/** `make` in a scope of its own, closed when `f` ends: plugins' resources are released. */
export const use = <A, E, R>(
  options: Options,
  f: (harness: Harness) => Effect.Effect<A, E, R>
): Effect.Effect<A, E | Resolve.ConfigError | Pipeline.PluginSetupError, Exclude<R, Scope.Scope>> =>
  Effect.scoped(Effect.flatMap(make(options), f))
