/**
 * Who is watching this fiber's DNS lookups: a captured session (`serve --capture`) records the
 * answers its plugins got, so that `smtp-bridge replay` can give them the same answers later. The
 * observer lives in a fiber ref, set on the session's fiber: hooks run on child fibers that
 * inherit it (`Pipeline.guard`), and mailauth's lookups run on the hook's runtime
 * (`Mailauth.resolverFor`), so one shared resolver serves every session and still tells each
 * session's capture only about its own lookups.
 *
 * @example
 * Effect.locally(session, Observe.current, (name, type, answer) => recorder.dns(name, type, answer))
 */
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import type { DnsError } from "./Dns.ts"
import type * as Udp from "./Udp.ts"
import type * as Wire from "./Wire.ts"

/** What one lookup gave: records, a negative answer (`NoRecords`), or a failure (timeout, SERVFAIL...). */
export type Answer = Udp.Outcome | { readonly _tag: "Failed"; readonly error: DnsError }

export type Observer = (name: string, type: Wire.RRType, answer: Answer) => void

export const current: FiberRef.FiberRef<Observer | undefined> = FiberRef.unsafeMake<Observer | undefined>(undefined)

/**
 * A lookup that tells the fiber's observer what it gave. Without an observer (every session that
 * is not captured) it is the lookup itself, read from the fiber ref and nothing more. An
 * interrupted lookup gave nothing and is not told.
 */
export const observed = (lookup: Udp.Lookup): Udp.Lookup => (name, type) =>
  Effect.withFiberRuntime((fiber) => {
    const observer = fiber.getFiberRef(current)
    if (observer === undefined) return lookup(name, type)
    return lookup(name, type).pipe(
      Effect.tap((outcome) => Effect.sync(() => observer(name, type, outcome))),
      Effect.tapError((error) => Effect.sync(() => observer(name, type, { _tag: "Failed", error })))
    )
  })
