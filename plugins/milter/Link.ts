/**
 * One connection to one milter for one SMTP session: connect, negotiate options, then send
 * frames and read answers, each within its deadline. A milter that closes, stalls or sends a
 * frame that is not the protocol fails with a `MilterError`; the plugin applies the default action.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import { Connect } from "../../src/index.ts"
import * as Protocol from "./Protocol.ts"

export class MilterError extends Data.TaggedError("MilterError")<{
  readonly reason: "Connect" | "Timeout" | "Closed" | "Protocol"
  readonly message: string
}> {}

export interface Link {
  readonly name: string
  readonly negotiated: Protocol.Negotiated
  readonly send: (frame: Uint8Array, timeoutMs: number) => Effect.Effect<void, MilterError>
  /** The next answer; `Progress` answers restart the deadline and are not returned. */
  readonly answer: (timeoutMs: number) => Effect.Effect<Protocol.Response, MilterError>
  /** SMFIC_QUIT, then the socket closed. */
  readonly quit: Effect.Effect<void>
}

export type Endpoint = { readonly host: string; readonly port: number } | { readonly path: string }

export const open = (name: string, endpoint: Endpoint, connectTimeoutMs: number): Effect.Effect<Link, MilterError> =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const socket = yield* Connect.connect(endpoint, { timeout: connectTimeoutMs }).pipe(
      Scope.extend(scope),
      Effect.mapError((e) => new MilterError({ reason: "Connect", message: `milter ${name}: ${e.message}` })),
      Effect.tapError(() => Scope.close(scope, Exit.void))
    )
    const frames = Protocol.reader()
    const fail = (reason: MilterError["reason"], message: string) => new MilterError({ reason, message: `milter ${name}: ${message}` })
    const send = (frame: Uint8Array, timeoutMs: number) =>
      Effect.mapError(socket.writeWithin(frame, timeoutMs), (e) => e === "timeout" ? fail("Timeout", "write timed out") : fail("Closed", e.message))
    const frame = (timeoutMs: number): Effect.Effect<Protocol.Frame, MilterError> =>
      Effect.suspend(() => {
        const next = frames.next()
        if (typeof next === "string") return Effect.fail(fail("Protocol", next))
        if (next !== undefined) return Effect.succeed(next)
        return Effect.flatMap(socket.readWithin(timeoutMs), (chunk) => {
          if (chunk === "timeout") return Effect.fail(fail("Timeout", `no answer within ${timeoutMs} ms`))
          if (chunk === undefined) return Effect.fail(fail("Closed", "closed the connection"))
          frames.push(chunk)
          return frame(timeoutMs)
        })
      })
    const answer = (timeoutMs: number): Effect.Effect<Protocol.Response, MilterError> =>
      Effect.flatMap(frame(timeoutMs), (f) => {
        const r = Protocol.parseResponse(f)
        if (typeof r === "string") return Effect.fail(fail("Protocol", r))
        return r._tag === "Progress" ? answer(timeoutMs) : Effect.succeed(r)
      })
    const close = Scope.close(scope, Exit.void)
    const negotiated = yield* Effect.gen(function*() {
      yield* send(Protocol.optionNegotiation(), connectTimeoutMs)
      const reply = Protocol.parseNegotiation(yield* frame(connectTimeoutMs))
      if (typeof reply === "string") return yield* fail("Protocol", reply)
      return reply
    }).pipe(Effect.tapError(() => close))
    return {
      name,
      negotiated,
      send,
      answer,
      quit: Effect.ignore(send(Protocol.frame(Protocol.Cmd.Quit), 1000)).pipe(Effect.zipRight(close))
    }
  })
