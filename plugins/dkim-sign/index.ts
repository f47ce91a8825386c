/**
 * dkim-sign: signs each message with DKIM for the domain of its From address: RSA-SHA256,
 * Ed25519-SHA256 or both (one signature per key), relaxed/relaxed, with oversigning. A message
 * from a domain without a key passes unsigned or is refused, as configured.
 *
 * Run it after every plugin that changes signed header fields (it signs the header fields as
 * received); trace fields added later (Received) are not signed and do not break it.
 *
 * @example
 * import { dkimSign } from "./plugins/dkim-sign/index.ts"
 * dkimSign({ keys: [{ domain: "example.org", selector: "s2025", keyFile: "/etc/smtp-bridge/example.org.pem" }] })
 */
import { Clock, Duration, Effect, Schema } from "effect"
import { readFile } from "node:fs/promises"
import { definePlugin, Dkim, Message, Verdict } from "../../src/index.ts"
import type { Plugin } from "../../src/index.ts"

export interface KeyConfig {
  /** The signing domain (d=). */
  readonly domain: string
  /** The selector (s=): the key is published at `selector._domainkey.domain`. */
  readonly selector: string
  /** A PEM file (RSA or Ed25519), read once at start. */
  readonly keyFile?: string
  /** Or the PEM itself. */
  readonly privateKey?: string
}

export interface DkimSignOptions {
  /** Several keys for one domain sign it several times (e.g. RSA and Ed25519). */
  readonly keys: ReadonlyArray<KeyConfig>
  /** Header fields to sign (default `Dkim.Sign.DEFAULT_HEADERS`). */
  readonly headers?: ReadonlyArray<string>
  /** Header fields signed once more than they occur, so none can be added (default `Dkim.Sign.DEFAULT_OVERSIGN`). */
  readonly oversign?: ReadonlyArray<string>
  /** Signature lifetime (x=); none by default. */
  readonly expires?: Duration.DurationInput
  /** A From domain without a key: `pass` it unsigned (default) or `reject` it with 550 5.7.1. */
  readonly unsigned?: "pass" | "reject"
  /** Sign mail from a subdomain with its parent domain's key (default true; DMARC relaxed alignment accepts it). */
  readonly subdomains?: boolean
}

/** A key could not be read (`Read`) or is not an RSA or Ed25519 private key (`Key`). */
export class DkimSignError extends Schema.TaggedError<DkimSignError>()("DkimSignError", {
  reason: Schema.Literal("Read", "Key", "Config"),
  message: Schema.String
}) {}

/** The domain of the first address in a From field value, lower case. */
export const fromDomain = (value: string): string | undefined => {
  const angle = /<[^<>]*@([^<>@\s]+)>/.exec(value)
  const bare = angle ?? /@([A-Za-z0-9.-]+)/.exec(value)
  return bare?.[1]?.toLowerCase().replace(/\.$/, "")
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
    return { domain: config.domain.toLowerCase(), selector: config.selector, key }
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
export const dkimSign = (options: DkimSignOptions): Plugin =>
  definePlugin({
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
        data: Effect.fn("dkim-sign.data")(function*({ message, addHeader }) {
          const from = Message.header(message, "From")
          const domain = from === undefined ? undefined : fromDomain(from)
          const signing = domain === undefined ? [] : keysFor(keys, domain, subdomains)
          if (signing.length === 0) {
            if (options.unsigned !== "reject") return Verdict.Continue
            return Verdict.reject(
              domain === undefined
                ? "Message has no From address to sign for"
                : `No DKIM key for ${domain}: this server does not send mail from that domain`,
              { code: 550, enhanced: "5.7.1" }
            )
          }
          const time = Math.floor((yield* Clock.currentTimeMillis) / 1000)
          const values = yield* Dkim.Sign.sign(
            { headers: message.headers, body: message.stream(message.bodyOffset) },
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

export default dkimSign
