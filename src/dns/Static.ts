/**
 * A `Dns` layer over a fixed zone, for tests and examples: no sockets, answers with a TTL of
 * 300 s, and names marked `"TEMPFAIL"` fail as a timed-out server would.
 *
 * @example
 * Static.layer({
 *   "example.org": { TXT: ["v=spf1 ip4:192.0.2.0/24 -all"], MX: [{ exchange: "mx.example.org", priority: 10 }] },
 *   "_dmarc.example.org": { TXT: ["v=DMARC1; p=reject"] },
 *   "broken.example": "TEMPFAIL"
 * })
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Dns, DnsError, type MxRecord, type Resolver } from "./Dns.ts"
import * as Resolvers from "./Resolver.ts"
import type * as Udp from "./Udp.ts"
import * as Wire from "./Wire.ts"

export interface Records {
  readonly A?: ReadonlyArray<string>
  readonly AAAA?: ReadonlyArray<string>
  /** One string per record (split into 255-octet strings as on the wire), or the strings of one record. */
  readonly TXT?: ReadonlyArray<string | ReadonlyArray<string>>
  readonly MX?: ReadonlyArray<MxRecord>
  readonly PTR?: ReadonlyArray<string>
  readonly CNAME?: ReadonlyArray<string>
}

export type Zone = Readonly<Record<string, Records | "TEMPFAIL">>

const chunks = (s: string): ReadonlyArray<string> => {
  const out: Array<string> = []
  for (let i = 0; i < s.length; i += 255) out.push(s.slice(i, i + 255))
  return out.length > 0 ? out : [""]
}

const dataOf = (records: Records, type: Wire.RRType): ReadonlyArray<Wire.RecordData> => {
  switch (type) {
    case "TXT":
      return (records.TXT ?? []).map((t) => ({ type, value: typeof t === "string" ? chunks(t) : t }))
    case "MX":
      return (records.MX ?? []).map((value) => ({ type, value }))
    case "NS":
      return []
    default:
      return (records[type] ?? []).map((value) => ({ type, value }))
  }
}

export const lookup = (zone: Zone): Udp.Lookup => {
  const byName = new Map(Object.entries(zone).map(([k, v]) => [Wire.normalizeName(k), v]))
  return (name, type) => {
    const records = byName.get(Wire.normalizeName(name))
    if (records === "TEMPFAIL") {
      return Effect.fail(new DnsError({ reason: "Temporary", code: "ETIMEOUT", name, rrtype: type, message: `${type} ${name}: timed out` }))
    }
    if (records === undefined) return Effect.succeed({ _tag: "NoRecords", code: "ENOTFOUND", ttl: 300 })
    const data = dataOf(records, type)
    return Effect.succeed(data.length > 0 ? { _tag: "Records", records: data, ttl: 300 } : { _tag: "NoRecords", code: "ENODATA", ttl: 300 })
  }
}

export const make = (zone: Zone): Resolver => Resolvers.fromLookup(lookup(zone))

export const layer = (zone: Zone): Layer.Layer<Dns> => Layer.succeed(Dns, make(zone))
