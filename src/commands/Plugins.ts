/**
 * `smtp-bridge plugins [--config FILE] [flags]`: the plugins the config enables and, for each
 * hook, the order in which they are called. The plugins are set up (and torn down at once) as
 * the server would, so hooks that a plugin's `setup` returns are listed too, and a users file
 * that cannot be read fails here as it would at start.
 */
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Bridge from "../Bridge.ts"
import type { BridgeConfig } from "../config/Config.ts"
import * as Resolver from "../dns/Resolver.ts"
import * as Pipeline from "../pipeline/Pipeline.ts"
import { hookNames } from "../pipeline/Plugin.ts"

class PluginsError extends Data.TaggedError("PluginsError")<{ readonly reason: "Setup"; readonly message: string }> {}

/** Plugins with their hooks in run order; then hook by hook, who is called and in which order. */
export const listing = (plugins: Pipeline.Pipeline["plugins"]): string => {
  const width = Math.max(0, ...plugins.map((p) => p.name.length))
  const byPlugin = plugins.map((p, i) =>
    `${String(i + 1).padStart(3)}. ${p.name.padEnd(width)}  ${p.hooks.length === 0 ? "(no hooks)" : hookNames.filter((h) => p.hooks.includes(h)).join(", ")}`
  )
  const hookWidth = Math.max(...hookNames.map((h) => h.length))
  const byHook = hookNames.flatMap((hook) => {
    const names = plugins.filter((p) => p.hooks.includes(hook)).map((p) => p.name)
    return names.length === 0 ? [] : [`  ${`${hook}:`.padEnd(hookWidth + 1)} ${names.join(" -> ")}`]
  })
  return [
    "Plugins in run order (for each hook, the first verdict other than Continue wins):",
    ...byPlugin,
    "",
    "Hooks:",
    ...byHook
  ].join("\n")
}

/** Sets the plugins up in a scope of their own, reads their hooks, and tears them down. */
export const describe = (config: BridgeConfig): Effect.Effect<string, PluginsError> =>
  Bridge.plugins(config).pipe(
    Effect.mapError((e) => new PluginsError({ reason: "Setup", message: e.message })),
    Effect.flatMap((plugins) =>
      Pipeline.make(plugins).pipe(
        Effect.provide(Resolver.layer()),
        Effect.map((pipeline) => listing(pipeline.plugins)),
        Effect.scoped,
        Effect.mapError((e) => new PluginsError({ reason: "Setup", message: `plugin ${e.plugin}: ${e.message}` }))
      )
    )
  )

/** What the `plugins` subcommand runs once cli.ts has loaded the config from its options. */
export const print = (config: BridgeConfig): Effect.Effect<void, PluginsError> => Effect.flatMap(describe(config), Console.log)

export const description = "List the plugins the config enables and their hooks, in the order they run"
