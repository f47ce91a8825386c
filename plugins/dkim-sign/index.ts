/**
 * dkim-sign: signs each message with DKIM for the domain of its From address: RSA-SHA256,
 * Ed25519-SHA256 or both (one signature per key), relaxed/relaxed, with oversigning. A message
 * from a domain without a key passes unsigned or is refused, as configured.
 *
 * A signature makes a From pass DMARC, so it is given only to a From the client may use: for an
 * authenticated user, when sender-identity found the header From and Sender to be theirs (the
 * `Senders.HeaderFromAllowed` note); for a client without AUTH, when its network's entry in
 * `trustedFrom` allows every address in them. By default nothing from such a client is signed.
 *
 * Run it after every plugin that changes signed header fields (it signs the header fields as
 * received); trace fields added later (Received) are not signed and do not break it.
 *
 * @example
 * import { dkimSign } from "./plugins/dkim-sign/index.ts"
 * dkimSign({ keys: [{ domain: "example.org", selector: "s2025", keyFile: "/etc/smtp-bridge/example.org.pem" }] })
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { readFile } from "node:fs/promises"
import { Cidr, definePlugin, Dkim, Senders, Verdict } from "../../src/index.ts"
import type { DataContext, Mailbox, Plugin } from "../../src/index.ts"
import type { KeyConfig, OptionsInput } from "./options.ts"

const CRLF = Uint8Array.of(13, 10)

export type { KeyConfig } from "./options.ts"
/** The options as a user writes them; their schema and checks are in `options.ts`. */
export type DkimSignOptions = OptionsInput

/** A key could not be read (`Read`) or is not an RSA or Ed25519 private key (`Key`). */
export class DkimSignError extends Schema.TaggedError<DkimSignError>()("DkimSignError", {
  reason: Schema.Literal("Read", "Key", "Config"),
  message: Schema.String
}) {}

/** One `trustedFrom` entry, parsed. */
interface TrustedEntry {
  readonly network: Cidr.Cidr
  readonly patterns: ReadonlyArray<Senders.Pattern>
}

/** Parses `trustedFrom`; throws naming the entry that is no CIDR or no sender pattern. */
export const parseTrustedFrom = (trustedFrom: Readonly<Record<string, ReadonlyArray<string>>>): ReadonlyArray<TrustedEntry> =>
  Object.entries(trustedFrom).map(([network, entries]) => {
    const parsed = Cidr.parseList([network])
    if ("error" in parsed) throw new Error(`dkim-sign: trustedFrom: invalid network ${JSON.stringify(network)}: ${parsed.error}`)
    const patterns = entries.map((entry) => {
      const pattern = Senders.parsePattern(entry)
      if (pattern === undefined) {
        throw new Error(`dkim-sign: trustedFrom[${JSON.stringify(network)}]: invalid sender ${JSON.stringify(entry)}; expected local@domain, @domain or *`)
      }
      return pattern
    })
    return { network: parsed.ok[0]!, patterns }
  })

/**
 * Whether this message's From may be signed for this client, and its From mailboxes: an
 * authenticated user's only after sender-identity allowed it, another client's only through
 * `trusted`. A From field that is absent, repeated or unparseable is never signed.
 */
export const signable = (
  ctx: Pick<DataContext, "session" | "transaction" | "message">,
  trusted: ReadonlyArray<TrustedEntry>
): { readonly from: ReadonlyArray<Mailbox>; readonly allowed: boolean } => {
  const headers = Senders.fromHeaders(ctx.message.headers)
  if (headers._tag === "Invalid") return { from: [], allowed: false }
  if (ctx.session.user !== undefined) {
    return { from: headers.from, allowed: ctx.transaction.notes.get(Senders.HeaderFromAllowed) === true }
  }
  const patterns = trusted.filter((t) => Cidr.matchAny([t.network], ctx.session.remoteAddress)).flatMap((t) => t.patterns)
  const claimed = headers.sender === undefined ? headers.from : [...headers.from, headers.sender]
  return { from: headers.from, allowed: claimed.every((mailbox) => Senders.allows(patterns, mailbox)) }
}

const loadKey = (config: KeyConfig): Effect.Effect<Dkim.Sign.Key, DkimSignError> =>
  Effect.gen(function*() {
    const label = `${config.selector}._domainkey.${config.domain}`
    const pem = config.privateKey ?? (config.keyFile !== undefined
      ? yield* Effect.tryPromise({
        try: () => readFile(config.keyFile!, "utf8"),
        catch: (e) => new DkimSignError({ reason: "Read", message: `dkim-sign: cannot read key file ${config.keyFile} for ${label}: ${String(e)}` })
      })
      : undefined)
    if (pem === undefined) {
      return yield* new DkimSignError({ reason: "Config", message: `dkim-sign: ${label} needs keyFile or privateKey` })
    }
    const key = yield* Effect.try({
      try: () => Dkim.Keys.privateKeyOf(pem),
      catch: (e) => new DkimSignError({ reason: "Key", message: `dkim-sign: key for ${label}: ${e instanceof Error ? e.message : String(e)}` })
    })
    return { domain: Senders.canonicalDomain(config.domain) ?? config.domain.toLowerCase(), selector: config.selector, key }
  })

/** The keys that sign for `domain`: its own, else (with `subdomains`) the nearest parent's. */
export const keysFor = (keys: ReadonlyArray<Dkim.Sign.Key>, domain: string, subdomains: boolean): ReadonlyArray<Dkim.Sign.Key> => {
  const own = keys.filter((k) => k.domain === domain)
  if (own.length > 0 || !subdomains) return own
  const labels = domain.split(".")
  for (let i = 1; i < labels.length - 1; i++) {
    const parent = labels.slice(i).join(".")
    const found = keys.filter((k) => k.domain === parent)
    if (found.length > 0) return found
  }
  return []
}

/**
 * Creates the plugin. Keys are read when the server starts; a missing or invalid key stops the
 * start with a `DkimSignError` naming it.
 *
 * @example
 * dkimSign({
 *   keys: [
 *     { domain: "example.org", selector: "rsa2025", keyFile: "keys/example.org.rsa.pem" },
 *     { domain: "example.org", selector: "ed2025", keyFile: "keys/example.org.ed25519.pem" }
 *   ],
 *   unsigned: "reject"
 * })
 */
export const dkimSign = (options: DkimSignOptions): Plugin => {
  const trusted = parseTrustedFrom(options.trustedFrom ?? {})
  const unsigned = (text: string) =>
    options.unsigned === "reject" ? Verdict.reject(text, { code: 550, enhanced: "5.7.1" }) : Verdict.Continue
  return definePlugin({
    name: "dkim-sign",
    setup: Effect.gen(function*() {
      const keys = yield* Effect.forEach(options.keys, loadKey)
      const subdomains = options.subdomains ?? true
      const signOptions = {
        ...(options.headers !== undefined ? { headers: options.headers } : {}),
        ...(options.oversign !== undefined ? { oversign: options.oversign } : {}),
        ...(options.expires !== undefined ? { expires: Math.floor(Duration.toSeconds(options.expires)) } : {})
      }
      return {
        data: Effect.fnUntraced(function*(ctx: DataContext) {
          const { addHeader } = ctx
          const { from, allowed } = signable(ctx, trusted)
          const first = from[0]
          if (first === undefined) return unsigned("Message has no From address to sign for")
          if (!allowed) return unsigned("Not signing: the From or Sender address is not one this client may use")
          const domain = Senders.canonicalDomain(first.domain)
          const signing = domain === undefined ? [] : keysFor(keys, domain, subdomains)
          if (signing.length === 0) {
            return unsigned(`No DKIM key for ${domain ?? "that domain"}: this server does not send mail from that domain`)
          }
          const time = Math.floor((yield* Clock.currentTimeMillis) / 1000)
          // The message as it will be sent: a milter or an HTTP hook before this plugin may have
          // changed a signed field or replaced the body (edit.headers/body show their edits).
          const edited = ctx.edit.headers().map((f) => ({ name: f.name, raw: "", bytes: f.bytes }))
          // A small message's body is in memory: hashed without running a stream (~100 µs each).
          const inMemory = ctx.edit.bodyInMemory()
          const values = yield* Dkim.Sign.sign(
            { headers: edited, body: inMemory !== undefined ? [CRLF, ...inMemory] : Stream.concat(Stream.succeed(CRLF), ctx.edit.body()) },
            signing,
            { ...signOptions, time }
          )
          // Added fields go on top in reverse order of adding: the first key's signature ends up first.
          for (let i = values.length - 1; i >= 0; i--) addHeader("DKIM-Signature", values[i]!)
          return Verdict.Continue
        })
      }
    })
  })
}

export default dkimSign
