/**
 * The one place that calls mailauth: its Promise API becomes Effects, its loosely typed results
 * (untyped records in places, `temperr` spelled two ways) become the small typed values
 * below, and every lookup goes through the `Dns` service, so DNS failures come back as
 * `temperror` results instead of exceptions.
 *
 * @example
 * const auth = yield* Mailauth.authenticate(message.stream(), { ip, helo, sender, authservId, dns })
 * auth.dmarc?.result // "pass" | "fail" | ...
 * // The message as it will be sent (after other plugins' edits), sealed with what was found on it as received:
 * const set = yield* Mailauth.seal(edited, { ...key, cv: auth.arc!.result, authResults: auth.authenticationResults })
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Runtime from "effect/Runtime"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import type { AuthStatus, DNSResolver } from "mailauth"
import { Readable } from "node:stream"
import type { Resolver } from "../dns/Dns.ts"
import { asNodeError } from "../dns/Resolver.ts"
import * as Bytes from "../util/Bytes.ts"

/** RFC 8601 result keywords. */
export type Result = "pass" | "fail" | "softfail" | "neutral" | "none" | "temperror" | "permerror" | "policy"

export class MailauthError extends Schema.TaggedError<MailauthError>()("MailauthError", {
  /** `Read`: the message could not be read; `Check`: mailauth itself threw (a bug or an input it refuses). */
  reason: Schema.Literal("Read", "Check"),
  message: Schema.String
}) {}

export interface SpfOutcome {
  readonly result: Result
  readonly domain: string
  /** The domain's `exp=` text for a fail: third-party text, never put into a reply unchecked. */
  readonly explanation: string | undefined
  /** The `spf=...` clause of Authentication-Results. */
  readonly info: string
}

export interface DkimOutcome {
  readonly result: Result
  readonly domain: string | undefined
  readonly selector: string | undefined
  readonly algorithm: string | undefined
  /** Whether the signing domain aligns with the From domain (DMARC). */
  readonly aligned: boolean
  readonly info: string
}

export interface DmarcOutcome {
  readonly result: Result
  /** The policy that applies to this message, `none` when no record was found. */
  readonly policy: "none" | "quarantine" | "reject"
  readonly domain: string | undefined
  readonly info: string
}

export interface ArcOutcome {
  readonly result: Result
  /** The highest ARC instance on the message, 0 without a chain. */
  readonly instance: number
  readonly info: string
  /**
   * Whether a new ARC set may go on: the chain passed or there was none, or it failed while its
   * newest seal still said `cv=pass` (the new set then says `cv=fail`, RFC 8617 §5.1.2).
   */
  readonly sealable: boolean
}

export interface BimiOutcome {
  readonly result: Result | "skipped" | "declined"
  readonly location: string | undefined
  readonly info: string
}

export interface HeaderField {
  readonly name: string
  /** Unfolded value. */
  readonly value: string
}

export interface Authentication {
  readonly spf: SpfOutcome | undefined
  /** One per DKIM-Signature, in message order; empty for an unsigned message. */
  readonly dkim: ReadonlyArray<DkimOutcome>
  readonly dmarc: DmarcOutcome | undefined
  readonly arc: ArcOutcome | undefined
  readonly bimi: BimiOutcome | undefined
  /** The value of the Authentication-Results field mailauth wrote (authserv-id first). */
  readonly authenticationResults: string
  /** ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results when sealing was asked, in order, top first. */
  readonly arcSet: ReadonlyArray<HeaderField>
  /** Why sealing was asked but gave no set. */
  readonly sealError: string | undefined
}

export interface Seal {
  readonly domain: string
  readonly selector: string
  /** PEM (RSA or Ed25519). */
  readonly privateKey: string
  readonly headerList?: ReadonlyArray<string>
}

export interface AuthenticateOptions {
  /** The client's address: SPF and ARC use it. */
  readonly ip: string
  /** The EHLO/HELO name. */
  readonly helo: string | undefined
  /** The MAIL FROM address; empty or undefined for the null sender (SPF then checks the HELO name). */
  readonly sender: string | undefined
  /** The authserv-id of Authentication-Results: this bridge's hostname. */
  readonly authservId: string
  readonly dns: Resolver
  /** Shortest RSA key accepted (default 1024). */
  readonly minBitLength?: number
  readonly bimi?: boolean
  readonly seal?: Seal
}

const results: ReadonlySet<string> = new Set(["pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy"])

/** mailauth spells temperror `temperr` in older results; anything unknown counts as `neutral`. */
export const resultOf = (status: AuthStatus | undefined): Result => {
  const raw = status?.result === "temperr" ? "temperror" : status?.result
  return raw !== undefined && results.has(raw) ? (raw as Result) : "neutral"
}

// mailauth (without `strict`) calls a body-hash mismatch `neutral`; RFC 6376 §6.1.3 and RFC 8601
// §2.7.1 call it a failure. The signature was present and did not verify.
const neutralBodyHash = /dkim=neutral (\(body hash did not verify\))/g
const bodyHashFailed = (info: unknown): boolean =>
  typeof info === "string" && /dkim=neutral \(body hash did not verify\)/.test(info)

const stringOr = (v: unknown): string | undefined => (typeof v === "string" && v.length > 0 ? v : undefined)

/**
 * Distinct DKIM and ARC keys (`<selector>._domainkey.<domain>`) looked up for one message. Each
 * DKIM-Signature field names a key of its sender's choosing, and a 256 KiB header section holds
 * about 2,000 of them: one message made the bridge send 2,000 DNS queries for names its sender
 * picked (a DNS flood on anyone's servers, at the bridge's expense). RFC 6376 §6.1 lets a verifier
 * limit the signatures it checks (OpenDKIM checks 3 by default, rspamd 5); 16 leaves room for a
 * long ARC chain. Past it a key is not looked up and its signature's result is temperror.
 */
export const maxKeyLookups = 16

const keyName = /\._domainkey\./i

/**
 * DNS lookups one check keeps in flight at once, each holding a UDP socket of its own (the session
 * cap counts them: a plugin that checks says `files: { perSession: lookupsInFlight }`). mailauth
 * starts SPF's A and AAAA lookups together, and all of a `ptr` mechanism's at once: up to ten, for
 * names the client's PTR records choose (RFC 7208 5.5), so that a sender owning its reverse zone and
 * an SPF record `v=spf1 ptr -all` had each session hold ten sockets where two were counted (80 for
 * 8 sessions, test/e2e/file-limit-dns.test.ts). The others wait for a turn.
 */
export const lookupsInFlight = 2

// mailauth's resolver type omits MX objects, which it does receive from `node:dns`-shaped resolvers.
// One per message: the key budget above is counted per message. Lookups run on the caller's
// runtime, not a fresh one: its fiber refs say who observes them (a captured session, Observe.ts).
const resolverFor = (dns: Resolver, runtime: Runtime.Runtime<never>): DNSResolver => {
  const run = Runtime.runPromise(runtime)
  const keys = new Set<string>()
  const turns = Effect.unsafeMakeSemaphore(lookupsInFlight)
  return (name, rrtype) => {
    if (keyName.test(name)) {
      const key = name.toLowerCase().replace(/\.$/, "")
      if (!keys.has(key) && keys.size >= maxKeyLookups) {
        return Promise.reject(Object.assign(new Error(`${name}: not looked up, the message names more than ${maxKeyLookups} keys`), { code: "ETOOMANYKEYS" }))
      }
      keys.add(key)
    }
    return run(turns.withPermits(1)(Effect.either(dns.query(name, rrtype)))).then((r) => {
      if (Either.isLeft(r)) throw asNodeError(r.left)
      return r.right
    }) as ReturnType<DNSResolver>
  }
}

/** Splits a block of header fields (CRLF, folded) into unfolded name/value pairs. */
export const parseFields = (block: string): ReadonlyArray<HeaderField> =>
  block.split(/\r?\n(?![ \t])/).flatMap((line) => {
    const colon = line.indexOf(":")
    if (colon <= 0) return []
    return [{ name: line.slice(0, colon).trim(), value: line.slice(colon + 1).replace(/\r?\n(?=[ \t])/g, "").trim() }]
  })

const readable = <E>(stream: Stream.Stream<Uint8Array, E>): Readable => Readable.from(Stream.toAsyncIterable(stream))

/**
 * What mailauth reads: a message held in memory as one Buffer (mailauth takes Buffers as they are),
 * else a stream as a Readable. Turning a one-chunk stream into a Readable costs more than the
 * DKIM check of a small message.
 */
const input = <E>(message: Stream.Stream<Uint8Array, E> | ReadonlyArray<Uint8Array>): Readable | Buffer =>
  Bytes.isChunks(message) ? Buffer.concat(message) : readable(message)


type Library = typeof import("mailauth")

/**
 * mailauth (and what it brings: joi, libmime, ASN.1 schemas, ...) is loaded on the first check,
 * not when the bridge starts: a config without mail authentication never pays for it (issue 16,
 * start-up time).
 */
let library: Promise<Library> | undefined
const load = (): Promise<Library> => (library ??= import("mailauth"))

/**
 * Starts loading mailauth now, without waiting: the plugins that use it call this when they are
 * made (a config that uses them), so that the first message does not pay for the load. A failure
 * to load is reported by the first check.
 */
export const preload = (): void => void load().catch(() => undefined)

const check = <A>(what: string, run: (lib: Library) => Promise<A>) =>
  Effect.tryPromise({
    try: () => load().then(run),
    catch: (e) => new MailauthError({ reason: "Check", message: `${what}: ${e instanceof Error ? e.message : String(e)}` })
  })

/** SPF alone, for MAIL FROM (RFC 7208 §2.4: with the null sender, the HELO identity is checked). */
export const spf = (options: Omit<AuthenticateOptions, "seal" | "bimi" | "minBitLength">): Effect.Effect<SpfOutcome, MailauthError> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const r = yield* check("spf", (Mailauth) =>
      Mailauth.spf({
        ip: options.ip,
        ...(options.helo !== undefined ? { helo: options.helo } : {}),
        ...(options.sender !== undefined && options.sender !== "" ? { sender: options.sender } : {}),
        mta: options.authservId,
        resolver: resolverFor(options.dns, runtime)
      }))
    return { result: resultOf(r.status), domain: r.domain, explanation: stringOr(r.explanation), info: r.info }
  })

/** SPF, DKIM, ARC, DMARC (and BIMI when asked) for a whole message; seals an ARC set when `seal` is given. */
export const authenticate = <E>(
  /** The whole message: a stream, or its chunks when it is held in memory. */
  message: Stream.Stream<Uint8Array, E> | ReadonlyArray<Uint8Array>,
  options: AuthenticateOptions
): Effect.Effect<Authentication, MailauthError> =>
  Effect.gen(function*() {
    const seal = options.seal
    const runtime = yield* Effect.runtime<never>()
    const r = yield* check("authenticate", (Mailauth) =>
      Mailauth.authenticate(input(message), {
        ip: options.ip,
        ...(options.helo !== undefined ? { helo: options.helo } : {}),
        ...(options.sender !== undefined && options.sender !== "" ? { sender: options.sender } : {}),
        mta: options.authservId,
        resolver: resolverFor(options.dns, runtime),
        minBitLength: options.minBitLength ?? 1024,
        disableBimi: options.bimi !== true,
        trustReceived: false,
        ...(seal !== undefined
          ? {
            seal: {
              signingDomain: seal.domain,
              selector: seal.selector,
              privateKey: seal.privateKey,
              ...(seal.headerList !== undefined ? { headerList: [...seal.headerList] } : {})
            }
          }
          : {})
      }))
    const fields = parseFields(r.headers)
    const dmarc = r.dmarc
    const arcSet = fields.filter((f) => /^arc-/i.test(f.name))
    return {
      spf: r.spf === false ? undefined : {
        result: resultOf(r.spf.status),
        domain: r.spf.domain,
        explanation: stringOr(r.spf.explanation),
        info: r.spf.info
      },
      dkim: r.dkim.results.map((d) => ({
        result: bodyHashFailed(d.info) ? "fail" : resultOf(d.status),
        domain: stringOr(d.signingDomain),
        selector: stringOr(d.selector),
        algorithm: stringOr(d.algo),
        aligned: typeof d.status.aligned === "string",
        info: d.info
      })),
      dmarc: dmarc === false ? undefined : {
        result: resultOf(dmarc.status),
        policy: dmarc.policy === "reject" || dmarc.policy === "quarantine" ? dmarc.policy : "none",
        domain: stringOr(dmarc.domain),
        info: dmarc.info
      },
      arc: r.arc === false ? undefined : {
        result: resultOf(r.arc.status),
        instance: typeof r.arc.i === "number" ? r.arc.i : 0,
        info: r.arc.info ?? "",
        sealable: r.arc.status.result === "none" || r.arc.status.result === "pass" || r.arc.status.shouldSeal === true
      },
      bimi: r.bimi === false ? undefined : {
        result: r.bimi.status.result === "skipped" || r.bimi.status.result === "declined"
          ? r.bimi.status.result
          : resultOf(r.bimi.status),
        location: stringOr(r.bimi.location),
        info: r.bimi.info
      },
      authenticationResults: (fields.find((f) => f.name.toLowerCase() === "authentication-results")?.value ??
        `${options.authservId}; none`).replace(neutralBodyHash, "dkim=fail $1"),
      arcSet,
      sealError: seal !== undefined && arcSet.length === 0
        ? (r.arc !== false ? r.arc.sealErrors?.map((e) => e.err.message).join("; ") : undefined) ?? "no ARC set was created"
        : undefined
    }
  })

export interface SealRequest extends Seal {
  /** The chain's validation as received (`ArcOutcome.result`): `none`, `pass` or `fail`. */
  readonly cv: "none" | "pass" | "fail"
  /** The ARC-Authentication-Results value: what was found as received (`Authentication.authenticationResults`). */
  readonly authResults: string
}

export interface Sealed {
  /** ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results, top first; empty when none could be made. */
  readonly arcSet: ReadonlyArray<HeaderField>
  /** Why there is no set. */
  readonly error: string | undefined
}

/**
 * An ARC set over `message`, which may differ from the one authenticated: a forwarder seals the
 * message as it sends it (RFC 8617 §5.1: the ARC-Message-Signature covers the message as it
 * leaves), with the results found on it as it came in.
 */
export const seal = <E>(message: Stream.Stream<Uint8Array, E>, request: SealRequest): Effect.Effect<Sealed, MailauthError> =>
  Effect.map(
    check("seal", (Mailauth) =>
      Mailauth.createSeal(readable(message), {
        seal: {
          signingDomain: request.domain,
          selector: request.selector,
          privateKey: request.privateKey,
          cv: request.cv,
          authResults: request.authResults,
          signTime: new Date(),
          ...(request.headerList !== undefined ? { headerList: [...request.headerList] } : {})
        }
      })),
    (r) => {
      const arcSet = r.headers.flatMap((h) => parseFields(h))
      return {
        arcSet,
        error: arcSet.length > 0 ? undefined : r.errors.map((e) => e.err.message).join("; ") || "no ARC set was created"
      }
    }
  )
