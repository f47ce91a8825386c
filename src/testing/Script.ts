/**
 * A session written as a transcript: `C:` lines are what the client sends, `S:` lines the replies
 * it must get, in order. Every `C:` line before an `S:` line is sent first (pipelined), so DATA's
 * content is simply more `C:` lines, ending with `C: .`. Replies of `C:` lines after the last `S:`
 * line are kept in the result but not checked.
 *
 * An `S:` line matches one reply by its first line (`250-` read as `250 `): equal to it, or a prefix
 * of it ending at a space. `S: 250` matches `250 2.1.0 Ok`; `S: 250 2.1.5 Ok` only that reply.
 * Blank lines and `#` comments are skipped.
 *
 * @example
 * const t = yield* script({ plugins: [myPlugin()] }, `
 *   S: 220
 *   C: EHLO client.test
 *   S: 250
 *   C: MAIL FROM:<alice@example.org>
 *   S: 250 2.1.0 Ok
 * `)
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Harness from "./Harness.ts"
import * as Interpreter from "./Interpreter.ts"
import type * as MemoryTransport from "./MemoryTransport.ts"

export class ScriptError extends Data.TaggedError("ScriptError")<{
  readonly reason: "Syntax" | "Mismatch" | "Missing"
  readonly message: string
}> {}

export interface Transcript {
  readonly exchanges: ReadonlyArray<Interpreter.Exchange>
  /** Every reply, as its first line (`250 2.1.0 Ok`). */
  readonly replies: ReadonlyArray<string>
  readonly delivered: ReadonlyArray<MemoryTransport.Delivered>
  /** The exchanges as C:/S: lines, for a failure's message. */
  readonly text: string
}

type Step = { readonly kind: "C"; readonly text: string } | { readonly kind: "S"; readonly text: string; readonly line: number }

const parse = (source: string): Effect.Effect<ReadonlyArray<Step>, ScriptError> =>
  Effect.suspend(() => {
    const steps: Array<Step> = []
    const lines = source.split(/\r?\n/)
    for (const [i, raw] of lines.entries()) {
      const line = raw.replace(/^\s+/, "")
      if (line === "" || line.startsWith("#")) continue
      const m = /^([CS]):(?: (.*))?$/.exec(line)
      if (m === null) return Effect.fail(new ScriptError({ reason: "Syntax", message: `line ${i + 1}: expected "C: ..." or "S: ...", got ${JSON.stringify(line)}` }))
      steps.push(m[1] === "C" ? { kind: "C", text: m[2] ?? "" } : { kind: "S", text: m[2] ?? "", line: i + 1 })
    }
    return Effect.succeed(steps)
  })

/** Whether `expected` (an `S:` line) names the reply whose first line is `actual`. */
export const matches = (expected: string, actual: string): boolean => actual === expected || actual.startsWith(`${expected} `)

/** The exchanges as C:/S: lines. */
export const format = (exchanges: ReadonlyArray<Interpreter.Exchange>): string =>
  exchanges.flatMap((e) => [
    ...(e.input.startsWith("(") ? [`   ${e.input}`] : [`C: ${e.input}`]),
    ...e.replies.map((r) => `S: ${Interpreter.show(r)}`)
  ]).join("\n")

/** Runs `source` against the harness's plugins or config; fails at the first reply that differs. */
export const run = (
  session: Interpreter.Session,
  delivered: ReadonlyArray<MemoryTransport.Delivered>,
  source: string
): Effect.Effect<Transcript, ScriptError> =>
  Effect.gen(function*() {
    const steps = yield* parse(source)
    const queue = session.exchanges.flatMap((e) => e.replies.map(Interpreter.show))
    let pending = ""
    const transcript = (): Transcript => ({
      exchanges: session.exchanges,
      replies: session.exchanges.flatMap((e) => e.replies.map(Interpreter.show)),
      delivered,
      text: format(session.exchanges)
    })
    for (const step of steps) {
      if (step.kind === "C") {
        pending += `${step.text}\r\n`
        continue
      }
      if (pending !== "") {
        queue.push(...(yield* session.write(pending)).map(Interpreter.show))
        pending = ""
      }
      const actual = queue.shift()
      if (actual === undefined) {
        return yield* new ScriptError({ reason: "Missing", message: `line ${step.line}: expected S: ${step.text}, but no reply came\n${transcript().text}` })
      }
      if (!matches(step.text, actual)) {
        return yield* new ScriptError({ reason: "Mismatch", message: `line ${step.line}: expected S: ${step.text}, got S: ${actual}\n${transcript().text}` })
      }
    }
    if (pending !== "") yield* session.write(pending)
    yield* session.end
    return transcript()
  })

/**
 * A harness (plugins or config), one session from `client`, the script run through it; the
 * plugins' resources are released when it ends.
 */
export const script = (options: Harness.Options & { readonly client?: Harness.ClientInput }, source: string) =>
  Harness.use(options, (harness) => Effect.flatMap(harness.open(options.client), (session) => run(session, harness.delivered, source)))
