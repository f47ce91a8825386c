/**
 * `smtp-bridge replay DIR --config new.config.ts [--json]`: runs the sessions `serve --capture`
 * recorded through another config, delivering nothing, and prints where the replies differ. Exits
 * 1 when any session changed (or a file could not be read), so CI can gate a policy change on it.
 */
import { Args, Command, Options } from "@effect/cli"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import * as Option from "effect/Option"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Load from "../config/Load.ts"
import * as Replay from "../testing/Replay.ts"

export class ReplayDifferences extends Data.TaggedError("ReplayDifferences")<{ readonly message: string }> {}

const readCaptures = (dir: string) =>
  Effect.tryPromise({
    try: async () => {
      const names = (await fs.readdir(dir)).filter((n) => n.endsWith(".json") && !n.startsWith(".")).sort()
      return Promise.all(names.map(async (name) => {
        const text = await fs.readFile(path.join(dir, name), "utf8")
        try {
          return { file: name, content: JSON.parse(text) as unknown }
        } catch {
          return { file: name, content: undefined }
        }
      }))
    },
    catch: (e) => new ReplayDifferences({ message: `cannot read captures in ${dir}: ${e instanceof Error ? e.message : String(e)}` })
  })

const options = {
  dir: Args.directory({ name: "DIR", exists: "yes" }).pipe(Args.withDescription("Directory of capture files (serve --capture DIR)")),
  config: Options.file("config").pipe(Options.withDescription("The config to replay the sessions through"), Options.optional),
  json: Options.boolean("json").pipe(Options.withDescription("Print the report as JSON"))
}

export const command = Command.make("replay", options, (o) =>
  Effect.gen(function*() {
    const config = yield* Load.load({ ...(Option.isSome(o.config) ? { file: o.config.value } : {}), flags: {} })
    const captures = yield* readCaptures(o.dir)
    const report = yield* Effect.scoped(Replay.run(config, captures)).pipe(
      // Warnings (a plugin that failed) go to stderr; stdout keeps the report alone.
      Effect.provide(Logger.replace(Logger.defaultLogger, Logger.withLeveledConsole(Logger.logfmtLogger))),
      Logger.withMinimumLogLevel(LogLevel.Warning)
    )
    yield* Console.log(o.json ? JSON.stringify(report, null, 2) : Replay.format(report))
    if (report.changed > 0 || report.unreadable.length > 0) {
      return yield* new ReplayDifferences({ message: `replay: ${report.changed} of ${report.sessions.length} sessions changed${report.unreadable.length > 0 ? `, ${report.unreadable.length} unreadable` : ""}` })
    }
  })).pipe(Command.withDescription("Replay captured sessions through a config without delivering; exit 1 when replies differ"))
