/**
 * The routing plugin's options as one `effect/Schema`; the config's `routes` are its rules.
 * Imports only `effect` and pure leaf modules, so that the config schema uses it without an
 * import circle.
 *
 * @example
 * Schema.decodeUnknownSync(Options)({ rules: [{ recipientDomain: ["corp.example"], transport: "exchange" }] })
 */
import * as Schema from "effect/Schema"
import * as Cidr from "../../src/util/Cidr.ts"

// Absent, never `undefined` (exactOptionalPropertyTypes).
const optional = <S extends Schema.Schema.AnyNoContext>(schema: S) => Schema.optionalWith(schema, { exact: true })

const NonEmpty = Schema.String.pipe(Schema.filter((s) => s.trim().length > 0))
const list = <S extends Schema.Schema.AnyNoContext>(item: S, what: string) => Schema.Array(item).annotations({ description: `an array of ${what}` })
const patterns = Schema.Union(Schema.String, Schema.Array(Schema.String)).annotations({ description: "a pattern or an array of patterns" })

/** One rule: every condition given must hold; lists match when any entry matches. */
export const Rule = Schema.Struct({
  transport: NonEmpty.annotations({ description: "a transport name" }),
  /** Recipient domains; `.example.com` also matches subdomains. */
  recipientDomain: optional(list(NonEmpty.annotations({ description: "a non-empty string" }), "domains")),
  /** Recipient address patterns with `*` wildcards (`*@example.com`, `billing+*@example.com`). */
  recipient: optional(patterns),
  /** Envelope sender patterns with `*` wildcards; `<>` matches the null sender. */
  sender: optional(patterns),
  /** Authenticated user names; `*` any authenticated user. */
  user: optional(list(NonEmpty.annotations({ description: "a non-empty string" }), "user names")),
  /** Client networks (CIDR). */
  network: optional(list(
    Schema.String.pipe(Schema.filter((s) => Cidr.parse(s) !== undefined)).annotations({ description: "a CIDR like 10.0.0.0/8" }),
    "CIDR strings like 10.0.0.0/8"
  ))
}).annotations({ description: "a route: { transport, recipientDomain?, recipient?, sender?, user?, network? }" })

export const Options = Schema.Struct({
  rules: Schema.Array(Rule).annotations({ description: "an array of routes" }),
  defaultTransport: optional(NonEmpty.annotations({ description: "a transport name" }))
})

export type Options = typeof Options.Type
export type OptionsInput = typeof Options.Encoded
export type Rule = typeof Rule.Type
