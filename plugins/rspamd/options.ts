/**
 * The rspamd plugin's options as one `effect/Schema` (what a user writes is `OptionsInput`), so
 * that `check-config` reports a bad URL or choice as one line naming the option. Imports only
 * `effect` and pure leaf modules, so that the config schema can use it.
 *
 * @example
 * Schema.decodeUnknownSync(Options)({ url: "http://127.0.0.1:11333" })
 */
import * as Schema from "effect/Schema"
import * as Units from "../../src/util/Units.ts"

/** The URL's parts the client needs, or undefined when it is not an http(s) URL, or holds credentials (they go in `password`, never in a URL that logs may show). */
export const parseUrl = (text: string): { readonly host: string; readonly port: number; readonly tls: boolean; readonly path: string } | undefined => {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return undefined
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "" || url.username !== "" || url.password !== "") return undefined
  const tls = url.protocol === "https:"
  const base = url.pathname.replace(/\/+$/, "")
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: url.port === "" ? (tls ? 443 : 80) : Number(url.port),
    tls,
    // rspamd's normal worker answers /checkv2 (as its proxy and Haraka ask it).
    path: base.endsWith("/checkv2") ? base : `${base}/checkv2`
  }
}

export const Url = Schema.String.pipe(Schema.filter((s) => parseUrl(s) !== undefined || "an http:// or https:// URL of rspamd's normal worker, like http://127.0.0.1:11333"))

const optional = <S extends Schema.Schema.AnyNoContext>(schema: S) => Schema.optionalWith(schema, { exact: true })

export const Options = Schema.Struct({
  /** rspamd's normal worker (or its proxy in self-scan mode); `/checkv2` is added. */
  url: Url,
  /** Longest wait for the whole scan (sending the message included); default 30 seconds, then `onError`. */
  timeout: Schema.optionalWith(Units.Duration, { default: () => Units.parseDuration("30 seconds")! }),
  /** Messages larger than this are not scanned (rspamd's own `max_message` is 50MB); default 20MB. */
  maxSize: Schema.optionalWith(Units.Size, { default: () => 20 * 1024 * 1024 }),
  /** When rspamd is down, slow or answers nonsense: `"tempfail"` (451 4.7.1, default) or `"accept"` (unscanned, logged). */
  onError: Schema.optionalWith(Schema.Literal("tempfail", "accept"), { default: () => "tempfail" as const }),
  /** Add `X-Spam-Action`, `X-Spam-Score` and `X-Spam-Status` (the client's own are removed first); default true. */
  spamHeaders: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  /** The header field set to `Yes` for rspamd's `add header` action; default `X-Spam`. */
  spamHeader: Schema.optionalWith(Schema.String.pipe(Schema.pattern(/^[\x21-\x39\x3b-\x7e]+$/)), { default: () => "X-Spam" }),
  /** Skip the scan for authenticated users (mail they submit); default false. */
  skipAuthenticated: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Sent as the `Password` header, for a worker that requires one. */
  password: optional(Schema.String),
  /** Largest answer read, in bytes; default 1MB. */
  maxAnswer: Schema.optionalWith(Schema.Int.pipe(Schema.between(1024, 64 * 1024 * 1024)), { default: () => 1024 * 1024 })
})

export type Options = Schema.Schema.Type<typeof Options>
/** What a user writes (defaults optional). */
export type OptionsInput = Schema.Schema.Encoded<typeof Options>
