/**
 * DNS during `smtp-bridge replay`: the session being replayed gets the answers its capture
 * recorded (docs/capture-format.md, `dns`), failures included, so SPF, DKIM and DMARC decide as
 * they did then whatever the DNS says today. A name and type the capture does not hold (a capture
 * older than DNS recording, one past its cap, or a lookup only the new config makes) goes to the
 * new config's resolver, and is counted so that the report can say the replay depended on today's
 * DNS.
 *
 * @example
 * const current: ReplayDns.Current = { session: undefined }
 * Layer.succeed(Dns, Resolver.fromLookup(ReplayDns.lookup(fallback, current)))
 * current.session = ReplayDns.session(capture)
 */
import * as Effect from "effect/Effect"
import { DnsError } from "../dns/Dns.ts"
import type * as Udp from "../dns/Udp.ts"
import * as Wire from "../dns/Wire.ts"
import * as Capture from "../server/Capture.ts"

export interface Session {
  readonly answers: ReadonlyMap<string, Capture.CapturedDns>
  /** Lookups the capture did not answer, and their distinct `TYPE name`s. */
  notCaptured: number
  readonly missing: Set<string>
}

/** The session being replayed; replay runs one at a time. */
export interface Current {
  session: Session | undefined
}

export const session = (capture: Capture.CaptureFile): Session => ({
  answers: new Map((capture.dns ?? []).map((d) => [Capture.dnsKey(d.name, d.type), d])),
  notCaptured: 0,
  missing: new Set()
})

// Replay keeps nothing between lookups, so the TTL only has to be a number.
const ttl = 300

const invalidCodes = new Set(["EBADNAME", "ENOTIMP"])

/** A recorded answer as the lookup gave it then. */
export const outcomeOf = (d: Capture.CapturedDns): Effect.Effect<Udp.Outcome, DnsError> => {
  if (d.records !== undefined) {
    return Effect.succeed({ _tag: "Records", records: d.records.map((value) => ({ type: d.type, value }) as Wire.RecordData), ttl })
  }
  const code = d.code ?? "ESERVFAIL"
  if (code === "ENOTFOUND" || code === "ENODATA") return Effect.succeed({ _tag: "NoRecords", code, ttl })
  return Effect.fail(
    new DnsError({ reason: invalidCodes.has(code) ? "Invalid" : "Temporary", code, name: d.name, rrtype: d.type, message: `${d.type} ${d.name}: ${code} (as captured)` })
  )
}

/** Answers from the current session's capture, else from `fallback` (counted). */
export const lookup = (fallback: Udp.Lookup, current: Current): Udp.Lookup => (name, type) =>
  Effect.suspend(() => {
    const s = current.session
    if (s === undefined) return fallback(name, type)
    const key = Capture.dnsKey(name, type)
    const recorded = s.answers.get(key)
    if (recorded !== undefined) return outcomeOf(recorded)
    s.notCaptured++
    s.missing.add(key)
    return fallback(name, type)
  })

const isString = (v: unknown): v is string => typeof v === "string"

const validValue = (type: Wire.RRType, v: unknown): boolean => {
  if (type === "TXT") return Array.isArray(v) && v.every(isString)
  if (type === "MX") {
    const mx = v as { exchange?: unknown; priority?: unknown } | null
    return typeof mx === "object" && mx !== null && isString(mx.exchange) && typeof mx.priority === "number"
  }
  return isString(v)
}

/** Checks a capture's `dns` field (absent is fine); gives the problem otherwise. */
export const problemOf = (dns: unknown): string | undefined => {
  if (dns === undefined) return undefined
  if (!Array.isArray(dns)) return "dns is not a list"
  const bad = dns.findIndex((d: Partial<Record<keyof Capture.CapturedDns, unknown>> | null) =>
    typeof d !== "object" || d === null || !isString(d.name) || !isString(d.type) || !Wire.isRRType(d.type) ||
    (d.records === undefined
      ? !isString(d.code)
      : !Array.isArray(d.records) || !d.records.every((v) => validValue(d.type as Wire.RRType, v)))
  )
  return bad >= 0 ? `dns answer ${bad} is not a name, a record type and its records or code` : undefined
}
