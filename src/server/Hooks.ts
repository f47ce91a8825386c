/**
 * The hooks the session machine asks for (`Run` actions), run through the pipeline and answered
 * as `Verdict` inputs: one table for the socket interpreter (`Connection.ts`) and the in-memory
 * one of the test kit (`src/testing/Interpreter.ts`). The `data` hooks need the message the
 * interpreter holds, so each interpreter runs those itself (`data`).
 */
import * as Effect from "effect/Effect"
import type * as Pipeline from "../pipeline/Pipeline.ts"
import type * as Engine from "../session/Engine.ts"

export const verdictOf = (outcome: Pipeline.Outcome): Engine.Input => ({ _tag: "Verdict", verdict: outcome.verdict, plugin: outcome.plugin })

type DataCtx = Extract<Engine.Run, { hook: "data" }>["ctx"]

export const run = (
  pipeline: Pipeline.Pipeline,
  action: Engine.Run,
  data: (ctx: DataCtx) => Effect.Effect<Engine.Input>
): Effect.Effect<Engine.Input> => {
  switch (action.hook) {
    case "connect":
      return Effect.map(pipeline.run("connect", action.ctx), verdictOf)
    case "helo":
      return Effect.map(pipeline.run("helo", action.ctx), verdictOf)
    case "mailFrom":
      return Effect.map(pipeline.run("mailFrom", action.ctx), verdictOf)
    case "rcptTo":
      return Effect.map(pipeline.run("rcptTo", action.ctx), verdictOf)
    case "auth":
      return Effect.map(pipeline.run("auth", action.ctx), verdictOf)
    case "authAttempt":
      return Effect.map(pipeline.run("authAttempt", action.ctx), verdictOf)
    case "data":
      return data(action.ctx)
  }
}
