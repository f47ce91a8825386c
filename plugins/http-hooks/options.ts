/**
 * The options of the http-hooks plugin, as one `effect/Schema`; `--hook STAGE=URL` gives the
 * same shape. Imports nothing but `effect`.
 */
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

const DurationInput = Schema.Union(Schema.Number, Schema.String).pipe(
  Schema.filter((input) => Option.isSome(Duration.decodeUnknown(input)) || "a duration such as \"5 seconds\" or a number of milliseconds")
)

const isHttpUrl = (text: string): boolean => {
  try {
    const url = new URL(text)
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== ""
  } catch {
    return false
  }
}

/** `host:port` (`[::1]:port` for IPv6; port 0 for any free one), or `undefined` when it is not one. */
export const parseListen = (text: string): { readonly host: string; readonly port: number } | undefined => {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text)
  const port = m === null ? NaN : Number(m[3])
  return m === null || port > 65535 ? undefined : { host: m[1] ?? m[2]!, port }
}

export const BodyServer = Schema.Struct({
  /** Where the plugin listens for body fetches: loopback and any free port unless told. */
  listen: Schema.optionalWith(Schema.String.pipe(Schema.filter((t) => parseListen(t) !== undefined || "host:port, such as 127.0.0.1:8025 or [::1]:0")), {
    default: () => "127.0.0.1:0"
  }),
  /** The base URL the hook service reaches that listener at (behind a proxy, in another container); default `http://<listen address>`. */
  baseUrl: Schema.optional(Schema.String.pipe(Schema.filter((u) => isHttpUrl(u) || "an http:// or https:// URL"))),
  /** Refuse (403) a fetch not signed with the secret (`x-smtp-bridge-signature` over `<timestamp>.<path>`). */
  requireSignature: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Connections open at once; past it, new ones are closed. */
  maxConnections: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1024)), { default: () => 16 })
})

export const Hook = Schema.Struct({
  /** The plugin hook it runs at. */
  stage: Schema.Literal("connect", "helo", "mailFrom", "rcptTo", "data"),
  url: Schema.String.pipe(Schema.filter((u) => isHttpUrl(u) || "an http:// or https:// URL"))
})

export const Options = Schema.Struct({
  hooks: Schema.Array(Hook).pipe(Schema.minItems(1, { message: () => "at least one hook" })),
  /** HMAC-SHA256 key the requests are signed with, as the webhook transport signs (`x-smtp-bridge-signature`). */
  secret: Schema.optional(Schema.String.pipe(Schema.minLength(16, { message: () => "at least 16 characters" }))),
  /** Environment variable holding that key instead (read when the server starts). */
  secretEnv: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  /** Longest wait for a whole answer. */
  timeout: Schema.optionalWith(DurationInput, { default: () => "10 seconds" }),
  /** When a hook is down, slow, redirects or answers what is not the schema: `tempfail` (451 4.7.1) or `accept`. */
  defaultAction: Schema.optionalWith(Schema.Literal("tempfail", "accept"), { default: () => "tempfail" as const }),
  /** Largest answer read. */
  maxResponseBytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(64, 1024 * 1024)), { default: () => 64 * 1024 }),
  /** At data, the message goes in the request (base64) when it is at most this big; larger ones get the headers only. */
  maxMessageBytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(0, 64 * 1024 * 1024)), { default: () => 1024 * 1024 }),
  /**
   * At data, how the hook gets the message: `inline` (base64 in the request, up to
   * `maxMessageBytes`) or `url` (a one-time URL of the plugin's own listener, `bodyServer`, that
   * the hook service may GET while its request is pending; any size).
   */
  body: Schema.optionalWith(Schema.Literal("inline", "url"), { default: () => "inline" as const }),
  bodyServer: Schema.optionalWith(BodyServer, { default: () => ({ listen: "127.0.0.1:0", requireSignature: false, maxConnections: 16 }) })
}).pipe(
  Schema.filter((o) => o.secret === undefined || o.secretEnv === undefined || { path: ["secretEnv"], message: "give either secret or secretEnv, not both" }),
  Schema.filter((o) =>
    !o.bodyServer.requireSignature || o.secret !== undefined || o.secretEnv !== undefined ||
    { path: ["bodyServer", "requireSignature"], message: "needs secret or secretEnv" }
  )
)

export type Options = Schema.Schema.Type<typeof Options>
export type OptionsInput = Schema.Schema.Encoded<typeof Options>
