/**
 * The arc-seal plugin's options as one `effect/Schema` (imports only `effect`, so that the
 * config schema uses it without an import circle).
 *
 * @example
 * Schema.decodeUnknownSync(Options)({ domain: "forwarder.example", selector: "arc2025", keyFile: "/etc/arc.pem" })
 */
import * as Schema from "effect/Schema"

// Absent, never `undefined` (exactOptionalPropertyTypes).
const optional = <S extends Schema.Schema.AnyNoContext>(schema: S) => Schema.optionalWith(schema, { exact: true })

export const Options = Schema.Struct({
  /** The sealing domain (d=) and selector (s=); the key is published like a DKIM key. */
  domain: Schema.String.pipe(Schema.nonEmptyString()).annotations({ description: "the sealing domain (d=)" }),
  selector: Schema.String.pipe(Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._-]*$/)).annotations({ description: "a selector (s=) like arc2025" }),
  keyFile: optional(Schema.String),
  privateKey: optional(Schema.String),
  /** The authserv-id of the ARC-Authentication-Results (default: the session's hostname). */
  authservId: optional(Schema.String),
  /** Header fields the ARC-Message-Signature covers (default: mailauth's list). */
  headers: optional(Schema.Array(Schema.String))
}).pipe(Schema.filter((o) => Boolean(o.keyFile) || Boolean(o.privateKey) || "keyFile or privateKey is required"))
  .annotations({ description: "arc-seal options: { domain, selector, keyFile }" })

export type Options = typeof Options.Type
export type OptionsInput = typeof Options.Encoded
