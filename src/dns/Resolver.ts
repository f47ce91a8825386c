/**
 * The `Dns` service: a UDP stub resolver (the system's servers by default, or the configured
 * `host:port` ones) behind a TTL cache of bounded size. DNS failures are values (`DnsError`),
 * never crashes; mailauth gets the same lookups and the same cache through `Resolver.mailauth`.
 *
 * @example
 * Resolver.layer({ servers: ["127.0.0.1:5353"], timeoutMs: 2000, cache: { maxEntries: 5000 } })
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Cidr from "../util/Cidr.ts"
import * as Cache from "./Cache.ts"
import { Dns, DnsError, type MxRecord, type Resolver } from "./Dns.ts"
import * as Observe from "./Observe.ts"
import * as Udp from "./Udp.ts"
import * as Wire from "./Wire.ts"

export interface ResolverOptions {
  /** `host`, `host:port` or `[v6]:port`; empty or absent means the system's resolvers. */
  readonly servers?: ReadonlyArray<string>
  /** Per attempt, in milliseconds (default 2000). */
  readonly timeoutMs?: number
  /** Rounds over the servers before a lookup fails with ETIMEOUT (default 2). */
  readonly attempts?: number
  readonly cache?: Cache.CacheOptions
}

/** Parses the server list, failing with the first entry that is not `host[:port]`. */
export const parseServers = (specs: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Udp.Server>, DnsError> =>
  Effect.forEach(specs, (spec) => {
    const server = Udp.parseServer(spec)
    return server !== undefined
      ? Effect.succeed(server)
      : Effect.fail(
        new DnsError({ reason: "Invalid", code: "EBADSERVER", name: spec, rrtype: "-", message: `DNS server "${spec}" is not host[:port]` })
      )
  })

/** The reverse-lookup name of an address: `4.3.2.1.in-addr.arpa` or the nibbles of `ip6.arpa`. */
export const reverseName = (address: string): string | undefined => {
  const cidr = Cidr.parse(address)
  if (cidr === undefined) return undefined
  if (cidr.family === 4) {
    return [0n, 8n, 16n, 24n].map((s) => String((cidr.network >> s) & 0xffn)).join(".") + ".in-addr.arpa"
  }
  const nibbles: Array<string> = []
  for (let s = 0n; s < 128n; s += 4n) nibbles.push(((cidr.network >> s) & 0xfn).toString(16))
  return nibbles.join(".") + ".ip6.arpa"
}

const notFound = (name: string, type: string, code: string) =>
  new DnsError({
    reason: "NotFound",
    code,
    name,
    rrtype: type,
    message: `${type} ${name}: ${code === "ENOTFOUND" ? "no such domain" : "no records"}`
  })

const records = (lookup: Udp.Lookup, name: string, type: Wire.RRType) =>
  Effect.flatMap(lookup(name, type), (outcome) =>
    outcome._tag === "Records" ? Effect.succeed(outcome.records) : Effect.fail(notFound(name, type, outcome.code)))

const strings = (lookup: Udp.Lookup, name: string, type: "A" | "AAAA" | "PTR" | "CNAME" | "NS") =>
  Effect.map(records(lookup, name, type), (rs) => rs.flatMap((r) => (r.type === type ? [r.value] : [])))

/** mailauth's resolver contract is `node:dns`'s `resolve(name, rrtype)`: same shapes, same error codes. */
const mailauthValue = (rs: ReadonlyArray<Wire.RecordData>): Array<Array<string>> | Array<string> | Array<MxRecord> => {
  const txt: Array<Array<string>> = []
  const mx: Array<MxRecord> = []
  const plain: Array<string> = []
  for (const r of rs) {
    if (r.type === "TXT") txt.push([...r.value])
    else if (r.type === "MX") mx.push({ exchange: r.value.exchange, priority: r.value.priority })
    else plain.push(r.value)
  }
  return txt.length > 0 ? txt : mx.length > 0 ? mx : plain
}

/** A `DnsError` as `node:dns` rejects: an `Error` with its `code` (mailauth reads it) and `hostname`. */
export const asNodeError = (e: DnsError): Error & { code: string; hostname: string } =>
  Object.assign(new Error(e.message), { code: e.code, hostname: e.name })

/**
 * A `Resolver` over any lookup (UDP, cached, or a static test zone). Every lookup is told to the
 * fiber's observer, if any (`Observe.ts`: a captured session's recorder).
 */
export const fromLookup = (plain: Udp.Lookup): Resolver => {
  const lookup = Observe.observed(plain)
  const query = (name: string, rrtype: string) => {
    const type = rrtype.toUpperCase()
    return Wire.isRRType(type)
      ? Effect.map(records(lookup, name, type), mailauthValue)
      : Effect.fail(new DnsError({ reason: "Invalid", code: "ENOTIMP", name, rrtype, message: `${rrtype} ${name}: record type not supported` }))
  }
  return {
    txt: (name) => Effect.map(records(lookup, name, "TXT"), (rs) => rs.flatMap((r) => (r.type === "TXT" ? [r.value] : []))),
    mx: (name) => Effect.map(records(lookup, name, "MX"), (rs) => rs.flatMap((r) => (r.type === "MX" ? [r.value] : []))),
    a: (name) => strings(lookup, name, "A"),
    aaaa: (name) => strings(lookup, name, "AAAA"),
    ptr: (address) => {
      const name = reverseName(address)
      return name === undefined
        ? Effect.fail(new DnsError({ reason: "Invalid", code: "EBADNAME", name: address, rrtype: "PTR", message: `PTR ${address}: not an IP address` }))
        : strings(lookup, name, "PTR")
    },
    query,
    mailauth: async (name, rrtype) => {
      const result = await Effect.runPromise(Effect.either(query(name, rrtype)))
      if (Either.isLeft(result)) throw asNodeError(result.left)
      return result.right
    }
  }
}

export interface Running {
  readonly resolver: Resolver
  readonly cache: Cache.Cached
}

/** Builds the resolver with its cache; fails only on a server entry that is not `host[:port]`. */
export const makeWithCache = (options: ResolverOptions = {}): Effect.Effect<Running, DnsError> =>
  Effect.gen(function*() {
    const configured = yield* parseServers(options.servers ?? [])
    const servers = configured.length > 0 ? configured : Udp.systemServers()
    const udp = Udp.lookup({ servers, timeoutMs: options.timeoutMs ?? 2000, attempts: options.attempts ?? 2 })
    const cache = Cache.make(udp, options.cache)
    return { resolver: fromLookup(cache.lookup), cache }
  })

export const make = (options: ResolverOptions = {}): Effect.Effect<Resolver, DnsError> =>
  Effect.map(makeWithCache(options), (r) => r.resolver)

/**
 * The `Dns` layer the bridge provides to plugins. Server entries are checked when the config is
 * validated (`Udp.parseServer`), so one that still fails here is a defect, not a runtime error.
 */
export const layer = (options: ResolverOptions = {}): Layer.Layer<Dns> => Layer.effect(Dns, Effect.orDie(make(options)))
