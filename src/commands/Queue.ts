/**
 * `smtp-bridge queue list | flush | remove ID`: works on the spool directory directly, so it
 * needs no running bridge; a running one notices within a second (the worker re-scans).
 */
import { Args, Command, Options } from "@effect/cli"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Load from "../config/Load.ts"
import type { ConfigError } from "../config/Resolve.ts"
import * as Spool from "../transport/Spool.ts"

class QueueError extends Data.TaggedError("QueueError")<{ readonly message: string }> {}

const options = {
  spool: Options.text("spool").pipe(Options.withPseudoName("DIR"), Options.withDescription("The spool directory"), Options.optional),
  config: Options.text("config").pipe(
    Options.withPseudoName("FILE"),
    Options.withDescription("Config file whose spool to use"),
    Options.optional
  )
}

const spoolDir = (o: { readonly spool: Option.Option<string>; readonly config: Option.Option<string> }): Effect.Effect<string, QueueError | ConfigError> =>
  Option.isSome(o.spool)
    ? Effect.succeed(o.spool.value)
    : Effect.gen(function*() {
      const config = yield* Load.load({ ...(Option.isSome(o.config) ? { file: o.config.value } : {}), flags: {} })
      if (config.spool === undefined) return yield* new QueueError({ message: "no spool configured: give --spool DIR or a config with spool" })
      return config.spool.dir
    })

const failed = (e: Spool.SpoolError) => new QueueError({ message: e.message })

const list = Command.make("list", options, (o) =>
  Effect.gen(function*() {
    const entries = yield* Effect.mapError(Spool.list(yield* spoolDir(o)), failed)
    if (entries.length === 0) return yield* Console.log("queue empty")
    for (const e of entries) {
      yield* Console.log(
        `${e.id}  ${e.size} bytes  from <${e.sender?.address ?? ""}>  queued ${e.created.toISOString()}  ` +
          `next ${e.nextAttempt.toISOString()}  attempts ${e.attempts}`
      )
      for (const r of e.recipients) {
        const last = r.lastReply === undefined ? "" : `  last: ${r.lastReply.code} ${r.lastReply.enhanced ?? ""} ${r.lastReply.lines.join(" ")}`
        yield* Console.log(`    <${r.address}> via ${r.transport}: ${r.state}${last}`)
      }
    }
    yield* Console.log(`${entries.length} message(s)`)
  })).pipe(Command.withDescription("List queued messages with their recipients and last replies"))

const flush = Command.make("flush", options, (o) =>
  Effect.gen(function*() {
    const n = yield* Effect.mapError(Spool.flush(yield* spoolDir(o)), failed)
    yield* Console.log(`${n} message(s) due now`)
  })).pipe(Command.withDescription("Make every queued message due for delivery now"))

const remove = Command.make("remove", { ...options, id: Args.text({ name: "ID" }) }, (o) =>
  Effect.gen(function*() {
    const removed = yield* Effect.mapError(Spool.remove(yield* spoolDir(o), o.id), failed)
    if (!removed) return yield* new QueueError({ message: `no queued message ${o.id}` })
    yield* Console.log(`removed ${o.id}`)
  })).pipe(Command.withDescription("Delete a queued message (no DSN is sent)"))

export const queue = Command.make("queue").pipe(
  Command.withDescription("Inspect and manage the spool"),
  Command.withSubcommands([list, flush, remove])
)
