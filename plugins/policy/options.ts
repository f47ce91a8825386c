/**
 * The policy plugin's options as one `effect/Schema` (what a user writes is `OptionsInput`), so
 * that `check-config` reports a bad server, stage or action as one line naming the option.
 * Imports only `effect` and pure leaf modules, so that the config schema can use it.
 *
 * @example
 * Schema.decodeUnknownSync(Options)({ server: "inet:127.0.0.1:10023" })
 */
import * as Schema from "effect/Schema"
import * as Units from "../../src/util/Units.ts"
import * as Protocol from "./Protocol.ts"

export type Endpoint = { readonly host: string; readonly port: number } | { readonly path: string }

/** `inet:HOST:PORT` (`inet:[::1]:10023`) or `unix:/path`, as Postfix's `check_policy_service` names a server. */
export const parseServer = (text: string): Endpoint | undefined => {
  if (text.startsWith("unix:")) {
    const path = text.slice("unix:".length)
    return path.startsWith("/") && !/[\x00-\x1f]/.test(path) ? { path } : undefined
  }
  const inet = /^inet:(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text)
  if (inet === null || Number(inet[3]) > 65535 || Number(inet[3]) === 0) return undefined
  return { host: inet[1] ?? inet[2]!, port: Number(inet[3]) }
}

export const Server = Schema.String.pipe(Schema.filter((s) => parseServer(s) !== undefined || "inet:HOST:PORT or unix:/absolute/path"))

/** An action the bridge can carry out (not HOLD, DISCARD, ...): a default must never be one it cannot. */
export const DefaultAction = Schema.String.pipe(
  Schema.filter((s) => Protocol.action(s)._tag !== "Unsupported" || "a policy action like \"451 4.3.5 Server configuration problem\", DEFER text or DUNNO")
)

const optional = <S extends Schema.Schema.AnyNoContext>(schema: S) => Schema.optionalWith(schema, { exact: true })

export const Options = Schema.Struct({
  /** The policy service: `inet:127.0.0.1:10023` or `unix:/run/postgrey.sock`. */
  server: Server,
  /** When to ask: at each RCPT (`"rcpt"`, default; greylisting, SPF) or once at the end of the message (`"end-of-message"`; size, quotas). */
  stage: Schema.optionalWith(Schema.Literal("rcpt", "end-of-message"), { default: () => "rcpt" as const }),
  /** Longest wait to connect and for one whole answer; default 10 seconds (then `defaultAction`). */
  timeout: Schema.optionalWith(Units.Duration, { default: () => Units.parseDuration("10 seconds")! }),
  /** An unused connection is closed after this long; default 300 seconds (Postfix's `smtpd_policy_service_max_idle`). */
  maxIdle: Schema.optionalWith(Units.Duration, { default: () => Units.parseDuration("300 seconds")! }),
  /** A connection is not reused past this age; default 1000 seconds (Postfix's `smtpd_policy_service_max_ttl`). */
  maxTtl: Schema.optionalWith(Units.Duration, { default: () => Units.parseDuration("1000 seconds")! }),
  /** Connections open at once; default 16. */
  connections: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1024)), { default: () => 16 }),
  /** Largest answer read, in bytes; a longer one counts as a failure. Default 4096. */
  maxAnswer: Schema.optionalWith(Schema.Int.pipe(Schema.between(64, 1024 * 1024)), { default: () => 4096 }),
  /**
   * What to answer when the service is down, slow or answers nonsense (and for HOLD, DISCARD,
   * FILTER, REDIRECT, BCC, which the bridge cannot carry out); default Postfix's
   * `451 4.3.5 Server configuration problem`. `"DUNNO"` fails open.
   */
  defaultAction: Schema.optionalWith(DefaultAction, { default: () => "451 4.3.5 Server configuration problem" }),
  /** The `policy_context` attribute, to tell this bridge's requests apart (Postfix 3.1). */
  context: optional(Schema.String)
})

export type Options = Schema.Schema.Type<typeof Options>
/** What a user writes (defaults optional). */
export type OptionsInput = Schema.Schema.Encoded<typeof Options>
