/**
 * The SMTP and LMTP relay transport: pass-through delivery to an upstream over a pool of
 * sessions. `deliver` succeeds only with the upstream's own replies: 2xx when the upstream took
 * the message, its 4xx/5xx per refused recipient; anything else (unreachable, timeout, a refusal
 * at MAIL or DATA, a read error) is a `TransportError`, which the server turns into 4xx or the
 * upstream's 5xx. A message is never reported delivered unless the reply to "." was 2xx.
 *
 * @example
 * const relay = yield* SmtpRelay.fromUrl("smtp://user:secret@smarthost.example:587?tls=required", {
 *   name: "default",
 *   helo: "mx.example.com"
 * })
 * const report = yield* relay.deliver(message)
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Scope from "effect/Scope"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import type { RelayTransportConfig } from "../../config/Config.ts"
import * as Tracing from "../../util/Tracing.ts"
import type { DeliveryReport, OutgoingMessage, Transport } from "../Transport.ts"
import { TransportError } from "../Transport.ts"
import * as Client from "./Client.ts"
import * as Pool from "./Pool.ts"
import * as Transaction from "./Transaction.ts"
import * as Url from "./Url.ts"

export interface TlsSettings {
  /** PEM CA certificate(s) to trust instead of the system roots. */
  readonly ca?: string | undefined
  /** The name for SNI and the certificate check; default the target's host. */
  readonly servername?: string | undefined
  /** Verify the certificate (default: the target's `verify`, which defaults to true). */
  readonly rejectUnauthorized?: boolean | undefined
}

export interface PoolSettings {
  /** Sessions open at once to this upstream; default 16 (Postfix's destination concurrency is 20). */
  readonly max?: number
  /** An unused session is closed (QUIT) after this; default 30 seconds. */
  readonly idleTimeout?: Duration.DurationInput
  /** How long a message waits for a free session when all are busy; default 1 minute. */
  readonly acquireTimeout?: Duration.DurationInput
  /** Messages sent over one session before it is replaced; default 100. */
  readonly maxMessages?: number
}

export interface Options {
  readonly target: Url.RelayTarget
  /** The transport's name, in logs and in replies quoting the upstream; default "smtp" or "lmtp". */
  readonly name?: string
  readonly tls?: TlsSettings
  /** Overrides the credentials from the URL. */
  readonly credentials?: Url.Credentials
  /** Send credentials without TLS: only for private links and tests. */
  readonly allowInsecureAuth?: boolean
  /** Our name in EHLO/LHLO; default the machine's host name. */
  readonly helo?: string
  readonly pool?: PoolSettings
  /** Defaults: connect 30 seconds, command 5 minutes, data 10 minutes. */
  readonly timeouts?: Partial<Client.Timeouts>
}

export class RelayConfigError extends Data.TaggedError("RelayConfigError")<{
  readonly reason: "Url" | "CaFile"
  readonly message: string
}> {}

const clientOptions = (options: Options, name: string): Client.Options => {
  const { target } = options
  const tls = options.tls ?? {}
  return {
    name,
    protocol: target.protocol,
    endpoint: target.endpoint,
    tls: target.tls,
    tlsOptions: {
      servername: tls.servername ?? target.servername,
      ca: tls.ca,
      rejectUnauthorized: tls.rejectUnauthorized ?? target.verify
    },
    credentials: options.credentials ?? target.credentials,
    allowInsecureAuth: options.allowInsecureAuth ?? false,
    helo: options.helo ?? Os.hostname(),
    timeouts: decodeTimeouts({ ...Client.defaultTimeouts, ...options.timeouts })
  }
}

// Decoded once: a text like "5 minutes" would otherwise be parsed on every command and reply.
const decodeTimeouts = (t: Client.Timeouts): Client.Timeouts => ({
  connect: Duration.decode(t.connect),
  command: Duration.decode(t.command),
  data: Duration.decode(t.data)
})

/** Upstream sessions per relay transport unless configured. */
export const defaultPoolSize = 16

/** The relay transport; its pooled sessions close (QUIT) when the scope closes. */
export const make = (options: Options): Effect.Effect<Transport, never, Scope.Scope> =>
  Effect.gen(function*() {
    const name = options.name ?? options.target.protocol
    const client = clientOptions(options, name)
    const poolSettings = options.pool ?? {}
    const max = poolSettings.max ?? defaultPoolSize
    const maxMessages = poolSettings.maxMessages ?? 100
    const acquireTimeout = poolSettings.acquireTimeout ?? "1 minute"
    const pool = yield* Pool.make<Client.Session, TransportError>({
      acquire: Client.open(client),
      max,
      idleTimeout: poolSettings.idleTimeout ?? "30 seconds",
      acquireTimeout,
      reusable: (s) => !s.wire.broken() && s.wire.socket.idle() && s.transactions < maxMessages,
      onExhausted: () =>
        new TransportError({
          transport: name,
          reason: "Timeout",
          message: `${name}: all ${max} upstream connections stayed busy for ${Duration.format(Duration.decode(acquireTimeout))}`
        })
    })
    const where = Url.describe(options.target)

    const attempt = (message: OutgoingMessage, fresh: boolean) =>
      pool.use((session) => Transaction.send(name, session, message, client.timeouts), { fresh })

    const deliver = (message: OutgoingMessage): Effect.Effect<DeliveryReport, TransportError> => {
      if (message.envelope.recipients.length === 0) return Effect.succeed({ recipients: [] })
      return attempt(message, false).pipe(
        // An idle upstream connection that the server closed meanwhile: one retry on a new one.
        Effect.catchIf(
          (e): e is Transaction.TransactionFailure => e._tag === "TransactionFailure" && e.stale,
          (e) => Effect.zipRight(Effect.logDebug(`${name}: pooled session was stale (${e.error.message}), reconnecting`), attempt(message, true))
        ),
        Effect.mapError((e) => (e._tag === "TransactionFailure" ? e.error : e)),
        Tracing.withSpan("smtp-relay.deliver", { attributes: { "message.id": message.id, transport: name, upstream: where } })
      )
    }

    return { name, upstream: where, deliver }
  })

const readCa = (url: string, file: string) =>
  Effect.tryPromise({
    try: () => Fs.readFile(file, "utf8"),
    catch: (e) =>
      new RelayConfigError({
        reason: "CaFile",
        message: `relay ${Url.redact(url)}: cannot read CA file ${file}: ${e instanceof Error ? e.message : String(e)}`
      })
  })

const parseUrl = (url: string) =>
  Either.mapLeft(Url.parse(url), (e) => new RelayConfigError({ reason: "Url", message: e.message }))

/** Parses `url` (see `Url.ts`), reads the `ca=` file when one is named, and makes the transport. */
export const fromUrl = (
  url: string,
  options: Omit<Options, "target"> = {}
): Effect.Effect<Transport, RelayConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const target = yield* parseUrl(url)
    const ca = options.tls?.ca ?? (target.caFile !== undefined ? yield* readCa(url, target.caFile) : undefined)
    return yield* make({ ...options, target, tls: { ...options.tls, ca } })
  })

/**
 * The transport for a resolved `smtp`/`lmtp` entry of the config. The config's `ca` file wins
 * over the URL's `ca=`; verification is off only if the config or the URL (`verify=false`) says so.
 */
export const fromConfig = (
  name: string,
  config: RelayTransportConfig,
  extra: { readonly helo?: string; readonly allowInsecureAuth?: boolean } = {}
): Effect.Effect<Transport, RelayConfigError, Scope.Scope> => Effect.flatMap(optionsFromConfig(name, config, extra), make)

const optionsFromConfig = (
  name: string,
  config: RelayTransportConfig,
  extra: { readonly helo?: string; readonly allowInsecureAuth?: boolean }
): Effect.Effect<Options, RelayConfigError> =>
  Effect.gen(function*() {
    const target = yield* parseUrl(config.url)
    const caFile = config.ca ?? target.caFile
    const ca = caFile !== undefined ? yield* readCa(config.url, caFile) : undefined
    return {
      target,
      name,
      tls: {
        ca,
        servername: config.servername ?? target.servername,
        rejectUnauthorized: config.rejectUnauthorized && target.verify
      },
      ...(extra.helo !== undefined ? { helo: extra.helo } : {}),
      ...(extra.allowInsecureAuth !== undefined ? { allowInsecureAuth: extra.allowInsecureAuth } : {}),
      pool: { max: config.poolSize, idleTimeout: config.idleTimeout },
      timeouts: { connect: config.connectTimeout, command: config.commandTimeout, data: config.dataTimeout }
    }
  })

/** The upstream session options of a resolved relay entry, as its transport opens them (for recipient probes). */
export const clientOptionsFromConfig = (
  name: string,
  config: RelayTransportConfig,
  extra: { readonly helo?: string; readonly allowInsecureAuth?: boolean } = {}
): Effect.Effect<Client.Options, RelayConfigError> => Effect.map(optionsFromConfig(name, config, extra), (o) => clientOptions(o, name))
