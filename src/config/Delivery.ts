/**
 * The delivery part of the config: transports, routes and the spool, validated with the same
 * one-line errors as the rest.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import * as Routing from "../../plugins/routing/options.ts"
import * as Url from "../transport/smtp/Url.ts"
import { Bool, withDefault, expecting, FilePath, list, NonEmptyString, optional, PositiveInt, SpillSize, Timeout } from "./Fields.ts"

// The filter's message says what is wrong (which parameter, which values it allows).
const RelayUrl = Schema.String.pipe(Schema.filter((s) => Either.match(Url.parse(s), { onLeft: (e) => e.detail, onRight: () => true })))
  .annotations(expecting("a URL like smtp://[user:pass@]host:port[?tls=required], smtps://host:465, lmtp://host:24 or lmtp:///path/to/socket"))
const HttpUrl = Schema.String.pipe(Schema.filter((s) => /^https?:\/\/\S+$/i.test(s)))
  .annotations(expecting("an http:// or https:// URL"))

const TransportSchema = Schema.Struct({
  type: Schema.Literal("smtp", "lmtp", "webhook", "maildir").annotations(expecting("\"smtp\", \"lmtp\", \"webhook\" or \"maildir\"")),
  /** `smtp://[user:pass@]host:port[?tls=required|opportunistic|none]`, `smtps://...`, `lmtp://host:port`, `lmtp:///path/to/socket`, or the webhook's `https://...`. */
  url: optional(NonEmptyString.annotations(expecting("a URL"))),
  /** Maildir directory (`type: "maildir"`). */
  dir: optional(FilePath.annotations(expecting("a directory path"))),
  /** Relays: TLS verification of the upstream. */
  tls: optional(Schema.Struct({
    ca: optional(FilePath),
    servername: optional(NonEmptyString),
    rejectUnauthorized: optional(Bool)
  }).annotations(expecting("{ ca?, servername?, rejectUnauthorized? }"))),
  /** Relays: upstream connections kept for reuse (default 16) and how long an idle one lives (default 30 seconds). */
  pool: optional(Schema.Struct({ size: optional(PositiveInt), idleTimeout: optional(Timeout) })
    .annotations(expecting("{ size?, idleTimeout? }"))),
  /** Relays: connect, command and data timeouts; defaults 30 seconds, 5 minutes, 10 minutes. */
  timeouts: optional(Schema.Struct({ connect: optional(Timeout), command: optional(Timeout), data: optional(Timeout) })
    .annotations(expecting("{ connect?, command?, data? }"))),
  /** Relays: ask the upstream about each recipient at RCPT time (as `?verify=rcpt` on the URL); unknown ones are refused in the session. */
  verifyRecipients: optional(Bool),
  /** Relays: how long verification answers are remembered; defaults 1 hour (accepted) and 5 minutes (refused), like Postfix's verify(8). */
  verifyCache: optional(Schema.Struct({ positive: optional(Timeout), negative: optional(Timeout) })
    .annotations(expecting("{ positive?, negative? }"))),
  /** Webhook: HMAC-SHA256 key for the signature header. */
  secret: optional(NonEmptyString),
  /** Webhook: `raw` (message/rfc822, envelope in headers; default) or `json`. */
  format: optional(Schema.Literal("raw", "json").annotations(expecting("\"raw\" or \"json\""))),
  /** Webhook: default 30 seconds. */
  timeout: optional(Timeout),
  headers: optional(Schema.Record({ key: Schema.String, value: Schema.String }).annotations(expecting("an object of header names to values")))
}).annotations(expecting("a transport: { type, url | dir, ... }"))

/** Postfix keeps 1.5 x the message size limit free; a fixed floor on top of SIZE says the same here. */
const defaultMinFreeSpace = 1024 * 1024

// Retries as Postfix does: backoff from 5 minutes up to 1 hour, for 5 days.
const SpoolObject = Schema.Struct({
  dir: FilePath.annotations(expecting("a directory path")),
  initialDelay: withDefault(Timeout, () => Duration.minutes(5)),
  maxDelay: withDefault(Timeout, () => Duration.hours(1)),
  maxAge: withDefault(Timeout, () => Duration.days(5)),
  concurrency: withDefault(PositiveInt, () => 4),
  /**
   * Free space the spool's file system keeps (`--spool-min-free`): MAIL FROM gets 452 4.3.1 when
   * less than this plus the message's declared SIZE is free, rather than 451 after all the data
   * was read. Default 1MB.
   */
  minFreeSpace: withDefault(SpillSize, () => defaultMinFreeSpace)
})

/** The durable queue, checked and with its defaults: messages are written to disk before the 250 and delivered by a worker. */
export type SpoolConfig = typeof SpoolObject.Type

const SpoolSchema = Schema.Union(
  Schema.transform(FilePath.annotations(expecting("a directory path")), Schema.typeSchema(SpoolObject), {
    strict: true,
    decode: (dir) => Schema.decodeSync(SpoolObject)({ dir }),
    encode: (spool) => spool.dir
  }),
  SpoolObject
).annotations(expecting("a directory path or { dir, initialDelay?, maxDelay?, maxAge?, concurrency?, minFreeSpace? }"))

/** The fields this module adds to the config file's schema. */
export const fields = {
  /** Relay everything (the `default` transport) to this upstream: `smtp://`, `smtps://` or `lmtp://`. */
  relay: optional(RelayUrl),
  /** Deliver everything (the `default` transport) to this HTTP endpoint. */
  webhook: optional(HttpUrl),
  /** HMAC key for `webhook`. */
  webhookSecret: optional(NonEmptyString),
  /** Named transports that `routes` can pick; one named `default` replaces the Maildir default. */
  transports: optional(Schema.Record({ key: Schema.String, value: TransportSchema }).annotations(
    expecting("an object mapping transport names to transports")
  )),
  /** Routing rules, first match wins (see plugins/routing/README.md). */
  routes: optional(list(Routing.Rule, "routes")),
  /** The transport for recipients no route claims; default `"default"`. */
  defaultTransport: optional(NonEmptyString.annotations(expecting("a transport name"))),
  /** Write each message to disk before answering 250 and deliver it with retries. */
  spool: optional(SpoolSchema)
}

type Decoded = Schema.Struct.Type<typeof fields> & { readonly maildir?: string }
type Invalid<E> = (field: string, expected: string, got: unknown) => E

const time = (decoded: Duration.Duration | undefined, fallback: Duration.DurationInput): Duration.Duration =>
  decoded ?? Duration.decode(fallback)

const transport = <E>(
  name: string,
  t: Schema.Schema.Type<typeof TransportSchema>,
  invalid: Invalid<E>
): Effect.Effect<TransportConfig, E> => {
  const field = `transports.${name}`
  switch (t.type) {
    case "maildir":
      return t.dir === undefined
        ? Effect.fail(invalid(`${field}.dir`, "a directory path", undefined))
        : Effect.succeed({ type: "maildir", dir: t.dir })
    case "webhook":
      if (t.url === undefined || !Schema.is(HttpUrl)(t.url)) return Effect.fail(invalid(`${field}.url`, "an http:// or https:// URL", t.url))
      return Effect.succeed({
        type: "webhook",
        url: t.url,
        secret: t.secret,
        format: t.format ?? "raw",
        timeout: time(t.timeout, "30 seconds"),
        headers: t.headers ?? {}
      })
    case "smtp":
    case "lmtp": {
      const scheme = t.type === "lmtp" ? /^lmtp:/i : /^smtps?:/i
      const expected = t.type === "lmtp" ? "an lmtp:// URL" : "an smtp:// or smtps:// URL"
      if (t.url === undefined || !scheme.test(t.url)) return Effect.fail(invalid(`${field}.url`, expected, t.url))
      const parsed = Url.parse(t.url)
      if (Either.isLeft(parsed)) return Effect.fail(invalid(`${field}.url`, `${expected} (${parsed.left.detail})`, t.url))
      return Effect.succeed(relay(t.url, t))
    }
  }
}

const relay = (url: string, t: Partial<Schema.Schema.Type<typeof TransportSchema>> = {}): TransportConfig => ({
  type: /^lmtp:/i.test(url) ? "lmtp" : "smtp",
  url,
  ca: t.tls?.ca,
  servername: t.tls?.servername,
  rejectUnauthorized: t.tls?.rejectUnauthorized ?? true,
  poolSize: t.pool?.size ?? 16,
  idleTimeout: time(t.pool?.idleTimeout, "30 seconds"),
  connectTimeout: time(t.timeouts?.connect, "30 seconds"),
  commandTimeout: time(t.timeouts?.command, "5 minutes"),
  dataTimeout: time(t.timeouts?.data, "10 minutes"),
  verifyRecipients: t.verifyRecipients ?? Either.match(Url.parse(url), { onLeft: () => false, onRight: (target) => target.verifyRecipients === true }),
  verifyPositiveTtl: time(t.verifyCache?.positive, "1 hour"),
  verifyNegativeTtl: time(t.verifyCache?.negative, "5 minutes")
})

/** Builds the transports, checks that routes name defined transports, and the spool. */
export const resolve = <E>(input: Decoded, maildir: string, invalid: Invalid<E>): Effect.Effect<DeliveryConfig, E> =>
  Effect.gen(function*() {
    if (input.relay !== undefined && input.webhook !== undefined) {
      return yield* Effect.fail(invalid("webhook", "either relay or webhook as the default transport, not both", input.webhook))
    }
    const transports: Record<string, TransportConfig> = { default: { type: "maildir", dir: maildir } }
    for (const [name, t] of Object.entries(input.transports ?? {})) transports[name] = yield* transport(name, t, invalid)
    if (input.relay !== undefined) transports.default = relay(input.relay)
    if (input.webhook !== undefined) {
      transports.default = {
        type: "webhook",
        url: input.webhook,
        secret: input.webhookSecret,
        format: "raw",
        timeout: Duration.seconds(30),
        headers: {}
      }
    }
    const defaultTransport = input.defaultTransport ?? "default"
    if (transports[defaultTransport] === undefined) {
      return yield* Effect.fail(invalid("defaultTransport", `one of ${Object.keys(transports).join(", ")}`, defaultTransport))
    }
    const routes: ReadonlyArray<RouteRule> | undefined = input.routes
    for (const [i, r] of (routes ?? []).entries()) {
      if (transports[r.transport] === undefined) {
        return yield* Effect.fail(invalid(`routes[${i}].transport`, `one of ${Object.keys(transports).join(", ")}`, r.transport))
      }
    }
    return { transports, routes, defaultTransport, spool: input.spool }
  })

/** A relay to existing mail infrastructure (`smtp://`, `smtps://`, `lmtp://`). */
export interface RelayTransportConfig {
  readonly type: "smtp" | "lmtp"
  /** Carries host, port, credentials and TLS mode (`?tls=required|opportunistic|none`). */
  readonly url: string
  /** PEM file of the CA that signs the upstream's certificate (default: the system's). */
  readonly ca: string | undefined
  /** Name to verify the certificate against and send as SNI (default: the URL's host). */
  readonly servername: string | undefined
  /** Verify the upstream's certificate; on by default. */
  readonly rejectUnauthorized: boolean
  readonly poolSize: number
  readonly idleTimeout: Duration.Duration
  readonly connectTimeout: Duration.Duration
  readonly commandTimeout: Duration.Duration
  readonly dataTimeout: Duration.Duration
  /** Recipients are checked with the upstream at RCPT time (`verifyRecipients`, `?verify=rcpt`). */
  readonly verifyRecipients: boolean
  readonly verifyPositiveTtl: Duration.Duration
  readonly verifyNegativeTtl: Duration.Duration
}

export interface WebhookTransportConfig {
  readonly type: "webhook"
  readonly url: string
  readonly secret: string | undefined
  readonly format: "raw" | "json"
  readonly timeout: Duration.Duration
  readonly headers: Readonly<Record<string, string>>
}

export interface MaildirTransportConfig {
  readonly type: "maildir"
  readonly dir: string
}

export type TransportConfig = RelayTransportConfig | WebhookTransportConfig | MaildirTransportConfig

/** One routing rule (see plugins/routing): every condition given must hold. */
export type RouteRule = Routing.Rule


export interface DeliveryConfig {
  /** Every transport by name; `default` always exists (Maildir unless `relay` or `webhook` says otherwise). */
  readonly transports: Readonly<Record<string, TransportConfig>>
  /** Routing rules; when present the routing plugin runs. */
  readonly routes: ReadonlyArray<RouteRule> | undefined
  readonly defaultTransport: string
  /** When set, messages are written to disk before the 250 and delivered by a worker. */
  readonly spool: SpoolConfig | undefined
}
