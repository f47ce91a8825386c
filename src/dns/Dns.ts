/**
 * The DNS service every plugin and mailauth share: one resolver configuration, one cache.
 *
 * @example
 * const dns = yield* Dns
 * const txt = yield* dns.txt("example.com")
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"

export class DnsError extends Data.TaggedError("DnsError")<{
  /** `NotFound` (NXDOMAIN or no data) is an answer; `Temporary` (timeout, SERVFAIL) is not. */
  readonly reason: "NotFound" | "Temporary" | "Invalid"
  /**
   * The `node:dns` code mailauth and other callers understand: ENOTFOUND (NXDOMAIN), ENODATA (no
   * record of this type), ETIMEOUT, ESERVFAIL, EREFUSED, EBADRESP, EBADNAME.
   */
  readonly code: string
  readonly name: string
  readonly rrtype: string
  readonly message: string
}> {}

export interface MxRecord {
  readonly exchange: string
  readonly priority: number
}

export interface Resolver {
  readonly txt: (name: string) => Effect.Effect<ReadonlyArray<ReadonlyArray<string>>, DnsError>
  readonly mx: (name: string) => Effect.Effect<ReadonlyArray<MxRecord>, DnsError>
  readonly a: (name: string) => Effect.Effect<ReadonlyArray<string>, DnsError>
  readonly aaaa: (name: string) => Effect.Effect<ReadonlyArray<string>, DnsError>
  readonly ptr: (address: string) => Effect.Effect<ReadonlyArray<string>, DnsError>
  /**
   * Any record type by name, as `node:dns`'s `resolve(name, rrtype)` answers: TXT as arrays of
   * strings, MX as `{ exchange, priority }`, others as strings. mailauth's lookups run through it
   * on the calling fiber, so what watches that fiber's lookups (a captured session) sees them.
   */
  readonly query: (name: string, rrtype: string) => Effect.Effect<unknown, DnsError>
  /**
   * The callback form mailauth takes as its `resolver` option: `(name, rrtype) => Promise`,
   * rejecting with an error whose `code` is a `node:dns` code (ENOTFOUND, ENODATA, ETIMEOUT...).
   */
  readonly mailauth: (name: string, rrtype: string) => Promise<unknown>
}

export class Dns extends Context.Tag("smtp-bridge/Dns")<Dns, Resolver>() {}
