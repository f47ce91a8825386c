/**
 * A message being received, for an interpreter of the session machine (the socket one in
 * `Connection.ts`, the in-memory one of the test kit): its buffer (memory, then a spill file),
 * when its transfer must be over, the `data` hooks' edits, and the answers to the machine's
 * `Seal`, `Run data` and `Deliver` actions. It owns its state; the interpreters only call it.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type * as Message from "../pipeline/Message.ts"
import type { SessionInfo, TransactionInfo } from "../pipeline/Session.ts"
import type * as Engine from "../session/Engine.ts"
import * as Delivery from "./Delivery.ts"
import * as Draft from "./Draft.ts"
import type { ServerEnv } from "./Env.ts"
import * as Hooks from "./Hooks.ts"
import * as MessageBuffer from "./MessageBuffer.ts"

export interface Incoming {
  /** When the transfer must be over (the interpreter's clock): `transferTimeout` after it opened. */
  readonly deadline: number
  /** Content bytes in; a storage error is logged once, and the rest is only counted. */
  readonly store: (parts: ReadonlyArray<Uint8Array>) => Effect.Effect<void>
  /** The facts the machine's `ContentEnd` carries about the content. */
  readonly facts: () => { readonly tooBig: boolean; readonly storageFailed: boolean }
  /** Finishes the buffer: the answer to `Seal`. */
  readonly seal: Effect.Effect<Engine.Input>
  /** The sealed message, once `seal` said ok. */
  readonly content: () => Message.Content | undefined
  /** Runs the `data` hooks with the edit API over the sealed message: the answer to `Run data`. */
  readonly runData: (ctx: { readonly session: SessionInfo; readonly transaction: TransactionInfo }) => Effect.Effect<Engine.Input>
  /** Routes and delivers the edited message: the answer to `Deliver`. */
  readonly deliver: (session: SessionInfo, transaction: TransactionInfo) => Effect.Effect<Engine.Input>
  /** Frees the buffer and any body the hooks wrote. */
  readonly dispose: Effect.Effect<void>
}

const sealed = (result: "ok" | "failed" | "headerTooLarge"): Engine.Input => ({ _tag: "Sealed", result })

/** A message opened now (`now` on the interpreter's clock, for its deadline). */
export const open = (env: ServerEnv, now: number): Incoming => {
  const limits = env.config.limits
  const buffer = MessageBuffer.make({ threshold: limits.spillThreshold, maxSize: limits.maxMessageSize, tempDir: env.config.tempDir })
  let storageFailed = false
  let content: Message.Content | undefined
  let draft: Draft.Draft | undefined

  const store = Effect.fnUntraced(function*(parts: ReadonlyArray<Uint8Array>) {
    for (const part of parts) {
      if (storageFailed) return
      const stored = yield* Effect.either(buffer.append(part))
      if (Either.isLeft(stored)) {
        storageFailed = true
        yield* Effect.logError(`cannot store message: ${stored.left.message}`)
      }
    }
  })

  const seal = Effect.suspend(() => Effect.flatMap(Effect.either(buffer.finish()), (finished) => {
    if (Either.isLeft(finished)) return Effect.as(Effect.logError(`cannot store message: ${finished.left.message}`), sealed("failed"))
    if (buffer.headerSectionTooLarge()) return Effect.succeed(sealed("headerTooLarge"))
    content = finished.right
    return Effect.succeed(sealed("ok"))
  }))

  const runData = (ctx: { readonly session: SessionInfo; readonly transaction: TransactionInfo }) =>
    Effect.suspend(() => {
      const edits = draft = Draft.make(content!, ctx.transaction, {
        maxRecipients: limits.maxRecipients,
        maxMessageSize: limits.maxMessageSize,
        spillThreshold: limits.spillThreshold,
        tempDir: env.config.tempDir
      })
      return Effect.map(
        env.pipeline.run("data", { ...ctx, message: content!, addHeader: edits.addHeader, removeHeader: edits.removeHeader, edit: edits.edits }),
        Hooks.verdictOf
      )
    })

  return {
    deadline: now + Duration.toMillis(limits.transferTimeout),
    store,
    facts: () => ({ tooBig: buffer.tooBig(), storageFailed }),
    seal,
    content: () => content,
    runData,
    deliver: (session, transaction) =>
      Effect.suspend(() =>
        Effect.map(Delivery.deliver(env, session, transaction, { message: content!, draft }), (reply): Engine.Input => ({ _tag: "Delivered", reply }))
      ),
    dispose: Effect.suspend(() => (draft === undefined ? buffer.dispose : Effect.zipRight(draft.dispose, buffer.dispose)))
  }
}
