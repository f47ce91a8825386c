/**
 * The dkim-sign plugin's options as one `effect/Schema`: the type a user writes and every check
 * that `check-config` reports as one line naming the option. Imports only `effect` and pure leaf
 * modules, so that the config schema uses it without an import circle.
 *
 * @example
 * Schema.decodeUnknownSync(Options)({ keys: [{ domain: "example.org", selector: "s2025", keyFile: "/etc/dkim.pem" }] })
 */
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Cidr from "../../src/util/Cidr.ts"
import * as Units from "../../src/util/Units.ts"

// Absent, never `undefined` (exactOptionalPropertyTypes).
const optional = <S extends Schema.Schema.AnyNoContext>(schema: S) => Schema.optionalWith(schema, { exact: true })

// RFC 1123 labels, as the config's host names.
const isDomain = (s: string): boolean =>
  s.length > 0 && s.length <= 253 && s.replace(/\.$/, "").split(".").every((l) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i.test(l))

export const Key = Schema.Struct({
  /** The signing domain (d=). */
  domain: Schema.String,
  /** The selector (s=): the key is published at `selector._domainkey.domain`. */
  selector: Schema.String,
  /** A PEM file (RSA or Ed25519), read once at start. */
  keyFile: optional(Schema.String),
  /** Or the PEM itself. */
  privateKey: optional(Schema.String)
}).pipe(Schema.filter((k) =>
  isDomain(k.domain) && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(k.selector) && (Boolean(k.keyFile) || Boolean(k.privateKey))
)).annotations({ description: "{ domain, selector, keyFile or privateKey } (flag: DOMAIN:SELECTOR:KEYFILE)" })

const CidrKey = Schema.String.annotations({ description: "a CIDR like 10.0.0.0/8 as the key (flag: CIDR=SENDER)" })
// `*`, `@domain` or `local@domain`; the plugin reads them with the sender rules at creation.
const isSenderPattern = (s: string): boolean => /^(\*|@[^\s@<>]+|[^\s@<>]+@[^\s@<>]+)$/.test(s.trim())
const Senders = Schema.Array(Schema.String).pipe(Schema.filter((list) => list.every(isSenderPattern))).annotations({
  description: "an array of addresses (a@example.com), domains (@example.com) or *"
})

// A bad network is reported at its own key, as a bad list of senders is.
const TrustedFrom = Schema.Record({ key: Schema.String, value: Schema.Array(Schema.String) }).pipe(Schema.filter((record) => {
  for (const [network, senders] of Object.entries(record)) {
    if (Cidr.parse(network) === undefined) return new ParseResult.Pointer([network], record, new ParseResult.Type(CidrKey.ast, network))
    if (!Schema.is(Senders)(senders)) return new ParseResult.Pointer([network], record, new ParseResult.Type(Senders.ast, senders))
  }
  return true
})).annotations({ description: "an object mapping CIDRs to arrays of senders" })

export const Options = Schema.Struct({
  /** Several keys for one domain sign it several times (e.g. RSA and Ed25519). */
  keys: Schema.Array(Key).pipe(Schema.minItems(1)).annotations({ description: "at least one { domain, selector, keyFile }" }),
  /** Header fields to sign (default `Dkim.Sign.DEFAULT_HEADERS`). */
  headers: optional(Schema.Array(Schema.String)),
  /** Header fields signed once more than they occur, so none can be added (default `Dkim.Sign.DEFAULT_OVERSIGN`). */
  oversign: optional(Schema.Array(Schema.String)),
  /** Signature lifetime (x=); none by default. */
  expires: optional(Units.DurationText),
  /** A From domain without a key: `pass` it unsigned (default) or `reject` it with 550 5.7.1. */
  unsigned: optional(Schema.Literal("pass", "reject").annotations({ description: "\"pass\" or \"reject\"" })),
  /** Sign mail from a subdomain with its parent domain's key (default true; DMARC relaxed alignment accepts it). */
  subdomains: optional(Schema.Boolean),
  /**
   * Clients without AUTH (trusted networks): per client network (CIDR), the From and Sender
   * addresses signed for it, as sender patterns (`a@example.com`, `@example.com`, `*`). Default
   * none: nothing a client without AUTH sends is signed.
   *
   * @example
   * trustedFrom: { "10.1.0.0/16": ["@example.com"], "10.2.0.5/32": ["billing@example.com"] }
   */
  trustedFrom: optional(TrustedFrom)
}).annotations({ description: "dkim-sign options: { keys: [{ domain, selector, keyFile }] }" })

export type Options = typeof Options.Type
export type OptionsInput = typeof Options.Encoded
export type KeyConfig = typeof Key.Encoded
