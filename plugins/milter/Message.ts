/**
 * The `data` stage for one milter: DATA, the header fields, end of headers, the body in chunks
 * of up to 64 KB streamed from the message (never loaded whole), end of message, then the
 * milter's modifications applied through the plugin API's `MessageEdits` as they arrive. A
 * replaced body streams into the bridge's spill file chunk by chunk.
 */
import * as Effect from "effect/Effect"
import * as Streams from "../../src/util/Streams.ts"
import type { BodyWriter, DataContext } from "../../src/index.ts"
import type * as Link from "./Link.ts"
import { MilterError } from "./Link.ts"
import * as Protocol from "./Protocol.ts"

const { Cmd, Step } = Protocol

export type Final = Protocol.Response & { readonly _tag: "Accept" | "Continue" | "Discard" | "Reject" | "Tempfail" | "ReplyCode" }

export interface Timeouts {
  readonly command: number
  readonly content: number
}

/** Modifications one milter may make to one message: beyond this it is a broken milter. */
const maxModifications = 10_000
/** Bytes of header names and values one milter may add or change per message (the header section's own bound). */
const maxHeaderBytes = 256 * 1024

const isFinal = (r: Protocol.Response): r is Final =>
  r._tag === "Accept" || r._tag === "Continue" || r._tag === "Discard" || r._tag === "Reject" || r._tag === "Tempfail" || r._tag === "ReplyCode"

const protocolError = (link: Link.Link, message: string) => new MilterError({ reason: "Protocol", message: `milter ${link.name}: ${message}` })

/** Sends one command; its answer unless the milter negotiated not to give one (`noReply` step). */
export const command = Effect.fnUntraced(function*(link: Link.Link, frame: Uint8Array, noReply: number, timeoutMs: number) {
  yield* link.send(frame, timeoutMs)
  if ((link.negotiated.steps & noReply) !== 0) return undefined
  const answer = yield* link.answer(timeoutMs)
  if (!isFinal(answer) && answer._tag !== "Skip") return yield* protocolError(link, `answer ${answer._tag} outside the end of message`)
  return answer
})

const encoder = new TextEncoder()

/** A field as a milter sees it: the value without the space after the colon (unless asked for), folds as LF, no final CRLF. */
const headerFrame = (bytes: Uint8Array, name: string, leadingSpace: boolean): Uint8Array => {
  const colon = bytes.indexOf(58)
  let value = bytes.subarray(colon + 1, bytes[bytes.byteLength - 2] === 13 ? bytes.byteLength - 2 : bytes.byteLength)
  if (!leadingSpace && value[0] === 32) value = value.subarray(1)
  const out: Array<number> = []
  for (let i = 0; i < value.byteLength; i++) if (!(value[i] === 13 && value[i + 1] === 10)) out.push(value[i]!)
  return Protocol.frame(Cmd.Header, Protocol.cstring(encoder.encode(name)), Protocol.cstring(Uint8Array.from(out)))
}

/** Sends the message to one milter; gives its final answer (or `undefined` when it skipped to the end without one). */
export const run = Effect.fnUntraced(function*(
  link: Link.Link,
  ctx: DataContext,
  macros: (stage: Protocol.MacroStage) => Uint8Array | undefined,
  t: Timeouts
) {
  const steps = link.negotiated.steps
  const early = (r: Protocol.Response | undefined): r is Protocol.Response => r !== undefined && r._tag !== "Continue" && r._tag !== "Skip"
  const withMacros = (stage: Protocol.MacroStage, frame: Uint8Array) => {
    const m = macros(stage)
    return m === undefined ? frame : concat(m, frame)
  }
  if ((steps & Step.NoData) === 0) {
    const r = yield* command(link, withMacros("data", Protocol.frame(Cmd.Data)), Step.NrData, t.command)
    if (early(r)) return r
  }
  if ((steps & Step.NoHeaders) === 0) {
    const leading = (steps & Step.HeaderLeadingSpace) !== 0
    for (const field of ctx.edit.headers()) {
      const r = yield* command(link, headerFrame(field.bytes, field.name, leading), Step.NrHeader, t.command)
      if (early(r)) return r
    }
  }
  if ((steps & Step.NoEoh) === 0) {
    const r = yield* command(link, withMacros("eoh", Protocol.frame(Cmd.Eoh)), Step.NrEoh, t.command)
    if (early(r)) return r
  }
  if ((steps & Step.NoBody) === 0) {
    let verdict: Protocol.Response | undefined
    // One chunk at a time (not Stream.runForEachWhile, which kept every chunk until the end).
    yield* Streams.forEachWhile(ctx.edit.body(), (chunk) =>
      Effect.gen(function*() {
        for (let at = 0; at < chunk.byteLength; at += Protocol.chunkSize) {
          const piece = chunk.subarray(at, at + Protocol.chunkSize)
          yield* link.send(Protocol.frameHead(Cmd.Body, piece.byteLength), t.content)
          const r = yield* command(link, piece, Step.NrBody, t.content)
          if (r?._tag === "Skip") return false
          if (early(r)) {
            verdict = r
            return false
          }
        }
        return true
      })).pipe(Effect.mapError((e) => e instanceof MilterError ? e : protocolError(link, `reading the message: ${e.message}`)))
    if (verdict !== undefined) return verdict
  }
  yield* link.send(withMacros("eom", Protocol.frame(Cmd.Eom)), t.content)
  return yield* endOfMessage(link, ctx, t.content)
})

const concat = (a: Uint8Array, b: Uint8Array): Uint8Array => {
  const out = new Uint8Array(a.byteLength + b.byteLength)
  out.set(a)
  out.set(b, a.byteLength)
  return out
}

/** Modifications until the final answer; a modification the milter did not negotiate, or that the edit API refuses, is a protocol error. */
const endOfMessage = Effect.fnUntraced(function*(link: Link.Link, ctx: DataContext, timeoutMs: number) {
  let count = 0
  let headerBytes = 0
  let body: BodyWriter | undefined
  for (;;) {
    const r = yield* link.answer(timeoutMs)
    if (isFinal(r)) {
      if (body !== undefined && (r._tag === "Accept" || r._tag === "Continue")) {
        yield* Effect.mapError(body.end(), (e) => protocolError(link, e.message))
      }
      return r
    }
    if (r._tag === "Skip") return yield* protocolError(link, "SMFIR_SKIP at the end of message")
    const needed = Protocol.actionFor(r)!
    if ((link.negotiated.actions & needed) === 0) return yield* protocolError(link, `${r._tag} without negotiating it`)
    if (++count > maxModifications) return yield* protocolError(link, `more than ${maxModifications} modifications`)
    if (r._tag === "AddHeader" || r._tag === "ChangeHeader" || r._tag === "InsertHeader") {
      headerBytes += r.name.length + r.value.length
      if (headerBytes > maxHeaderBytes) return yield* protocolError(link, `more than ${maxHeaderBytes} bytes of header changes`)
    }
    if (r._tag === "ReplaceBody") {
      body ??= ctx.edit.replaceBody()
      yield* Effect.mapError(body.write(r.chunk), (e) => protocolError(link, e.message))
      continue
    }
    // With HDR_LEADSPC the milter's values carry the space after the colon themselves.
    const leading = (link.negotiated.steps & Protocol.Step.HeaderLeadingSpace) !== 0
    const value = (v: string) => leading ? v.replace(/^[ \t]/, "") : v
    yield* Effect.try({
      try: () => {
        switch (r._tag) {
          case "AddHeader":
            return ctx.edit.insertHeader(ctx.edit.headers().length, r.name, value(r.value))
          case "ChangeHeader":
            return ctx.edit.changeHeader(r.name, Math.max(r.index, 1), r.value === "" ? undefined : value(r.value))
          case "InsertHeader":
            return ctx.edit.insertHeader(r.index, r.name, value(r.value))
          case "ChangeFrom":
            return ctx.edit.setSender(r.address)
          case "AddRcpt":
            return ctx.edit.addRecipient(r.address)
          case "DelRcpt":
            return void ctx.edit.removeRecipient(r.address)
          case "Quarantine":
            return ctx.edit.quarantine(r.reason)
        }
      },
      catch: (e) => protocolError(link, e instanceof Error ? e.message : String(e))
    })
  }
})
