/**
 * Cookbook: a recipient allow-list file, reloaded when it changes. One address (`bob@corp.test`)
 * or domain (`@corp.test`) per line, `#` comments. Any other recipient gets 550 5.1.1. The file
 * is checked every `interval` (a changed modification time or size is read again); a file that
 * cannot be read keeps the last good list and logs why. Polling, not a file watcher: it behaves
 * the same on Bun, Deno and Node and over network file systems.
 *
 * @example
 * plugins: [allowList({ file: "/etc/smtp-bridge/recipients.txt" })]
 */
import { Duration, Effect, Ref, Schedule, Schema } from "effect"
import * as fs from "node:fs/promises"
import { definePlugin, Units, Verdict } from "smtp-bridge"
import type { Hooks } from "smtp-bridge"

const parse = (text: string): ReadonlySet<string> =>
  new Set(text.split(/\r?\n/).map((l) => l.replace(/#.*/, "").trim().toLowerCase()).filter((l) => l.length > 0))

export const allowList = definePlugin({
  name: "allow-list",
  options: Schema.Struct({ file: Schema.String, interval: Schema.optionalWith(Units.Duration, { exact: true }) }),
  make: ({ file, interval }) => ({
    setup: Effect.gen(function*() {
      const read = Effect.tryPromise({
        try: async () => {
          const stat = await fs.stat(file)
          return { stamp: `${stat.mtimeMs}:${stat.size}`, list: parse(await fs.readFile(file, "utf8")) }
        },
        catch: (e) => new Error(`allow-list: cannot read ${file}: ${e instanceof Error ? e.message : String(e)}`)
      })
      // A missing file at start-up stops the server: an empty list would refuse every recipient.
      const current = yield* Ref.make(yield* read)
      const refresh = Effect.gen(function*() {
        const { stamp } = yield* Ref.get(current)
        const stat = yield* Effect.tryPromise({ try: () => fs.stat(file), catch: (e) => new Error(e instanceof Error ? e.message : String(e)) })
        if (`${stat.mtimeMs}:${stat.size}` === stamp) return
        const next = yield* read
        yield* Ref.set(current, next)
        yield* Effect.logInfo(`allow-list: ${file} reloaded, ${next.list.size} entries`)
      }).pipe(Effect.catchAll((e) => Effect.logWarning(`allow-list: cannot reload ${file}, keeping the last list: ${e.message}`)))
      yield* Effect.forkScoped(Effect.repeat(refresh, Schedule.spaced(interval ?? Duration.seconds(2))))
      return {
        rcptTo: Effect.fnUntraced(function*({ recipient }) {
          const { list } = yield* Ref.get(current)
          const address = recipient.mailbox.address.toLowerCase()
          return list.has(address) || list.has(`@${recipient.mailbox.domain.toLowerCase()}`)
            ? Verdict.Continue
            : Verdict.reject(`No such recipient here: ${recipient.mailbox.address}`, { code: 550, enhanced: "5.1.1" })
        })
      } satisfies Hooks
    })
  })
})

export default allowList
