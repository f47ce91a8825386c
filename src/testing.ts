/**
 * smtp-bridge's test kit, for plugin authors (`import ... from "smtp-bridge/testing"`): hook
 * contexts in one line, and whole SMTP sessions run in-process against a plugin list or a config,
 * through the real session machine, pipeline and delivery path, into in-memory transports. It
 * needs no test runner of its own: each function is an `Effect`, so it works under vitest,
 * `bun test` and `deno test` alike (`await Effect.runPromise(...)`).
 *
 * @example
 * import { Effect } from "effect"
 * import { Contexts, script } from "smtp-bridge/testing"
 *
 * const verdict = await Effect.runPromise(plugin.rcptTo(Contexts.rcptTo("bob@example.com")))
 * const t = await Effect.runPromise(script({ plugins: [plugin] }, `
 *   S: 220
 *   C: EHLO client.test
 *   S: 250
 *   C: MAIL FROM:<alice@example.org>
 *   S: 250 2.1.0 Ok
 *   C: RCPT TO:<bob@example.com>
 *   S: 550 5.1.2
 * `))
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type { Dns } from "./dns/Dns.ts"
import type { Hooks, Plugin } from "./pipeline/Plugin.ts"

export * as Contexts from "./testing/Contexts.ts"
export * as Harness from "./testing/Harness.ts"
export type { ClientInput, Options as HarnessOptions } from "./testing/Harness.ts"
export type { Exchange, Session } from "./testing/Interpreter.ts"
export { dataOf, show } from "./testing/Interpreter.ts"
export type { Answer, Delivered } from "./testing/MemoryTransport.ts"
export { format, matches, script, ScriptError } from "./testing/Script.ts"
export type { Transcript } from "./testing/Script.ts"
export * as StaticDns from "./dns/Static.ts"

/**
 * A plugin's hooks as the server would run them: its `setup` run (in the current scope) and its
 * hooks merged over the static ones. For a plugin made with `definePlugin({ options, make })`,
 * whose hooks all come from `setup`.
 */
export const hooks = (plugin: Plugin): Effect.Effect<Hooks, unknown, Scope.Scope | Dns> =>
  Effect.gen(function*() {
    const { name: _n, timeout: _t, setup, ...own } = plugin
    const hooks: Hooks = own
    return setup === undefined ? hooks : { ...hooks, ...(yield* setup) }
  })
