/**
 * The @effect/cli command tree: `serve`, `check-config`, `plugins`, `hash-password`, `queue`,
 * `dkim` and `replay`, with @effect/cli's built-in flags (`--version`, `--log-level`,
 * `--completions`...). cli.ts imports it for every line that `ConfigFlags.plain` does not take.
 *
 * @example
 * Main.runMain((await import("./commands/Cli.ts")).run(process.argv))
 */
import type * as CliApp from "@effect/cli/CliApp"
import * as Command from "@effect/cli/Command"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import packageJson from "../../package.json" with { type: "json" }
import * as Backends from "../auth/Backends.ts"
import type { BridgeConfig } from "../config/Config.ts"
import * as Load from "../config/Load.ts"
import * as Telemetry from "../config/Telemetry.ts"
import * as Redact from "../util/Redact.ts"
import * as Build from "../transport/Build.ts"
import { dkim } from "./Dkim.ts"
import * as FlagOptions from "./FlagOptions.ts"
import * as Files from "./Files.ts"
import { hashPasswordCommand } from "./HashPassword.ts"
import * as Help from "./Help.ts"
import * as Plugins from "./Plugins.ts"
import { queue } from "./Queue.ts"
import * as Replay from "./Replay.ts"
import * as Serve from "./Serve.ts"

const serve = Command.make("serve", FlagOptions.options, Serve.run).pipe(Command.withDescription(Help.commands.serve))

const pluginsCommand = Command.make("plugins", FlagOptions.options, (o) => Effect.flatMap(Serve.loadConfig(o), Plugins.print)).pipe(
  Command.withDescription(Help.commands.plugins)
)

const summary = (config: BridgeConfig, users: number | undefined): string => {
  const listeners = config.listeners
    .map((l) => `${l.host.includes(":") ? `[${l.host}]` : l.host}:${l.port}${l.mode === "implicit" ? " (TLS)" : ""}`)
    .join(", ")
  return [
    `hostname ${config.hostname}`,
    `listen ${listeners}`,
    `TLS ${config.tls === undefined ? "off" : "on"}`,
    `AUTH ${
      users === undefined && config.auth.length === 0
        ? "off"
        : `${users === undefined ? "on" : `${users} user${users === 1 ? "" : "s"}`}${config.allowInsecureAuth ? " (insecure allowed)" : ""}`
    }`,
    `auth ${Backends.describe(config)}`,
    `trust ${config.trust.length === 0 ? "none" : config.trust.join(" ")}`,
    `transports ${Build.describe(config.transports)}`,
    `routes ${config.routes === undefined ? "none" : config.routes.length}`,
    `spool ${config.spool === undefined ? "off" : config.spool.dir}`,
    `max size ${config.limits.maxMessageSize}`,
    `max recipients ${config.limits.maxRecipients}`,
    `idle timeout ${Duration.format(config.limits.idleTimeout)}`,
    `plugins ${config.plugins.length === 0 ? "none" : config.plugins.map((p) => p.name).join(", ")}`,
    `policy service ${config.policy === undefined ? "off" : `${config.policy.server} at ${config.policy.stage}`}`,
    `rspamd ${config.rspamd === undefined ? "off" : Redact.url(config.rspamd.url)}`,
    `admin ${config.admin === undefined ? "off" : `${config.admin.host.includes(":") ? `[${config.admin.host}]` : config.admin.host}:${config.admin.port}${config.admin.token === undefined ? "" : " (bearer token)"}`}`,
    `telemetry ${Telemetry.describe(config.telemetry)}`
  ].join("; ")
}

const checkConfig = Command.make("check-config", FlagOptions.options, (o) =>
  Effect.gen(function*() {
    const config = yield* Load.load({ ...Serve.given("file", o.config), flags: Serve.flagsOf(o) })
    const { users } = yield* Files.check(config)
    yield* Console.log(`config ok: ${summary(config, users)}`)
  })).pipe(Command.withDescription(Help.commands["check-config"]))

const command = Command.make("smtp-bridge").pipe(
  Command.withDescription("SMTP submission bridge"),
  Command.withSubcommands([serve, checkConfig, hashPasswordCommand, queue, dkim, pluginsCommand, Replay.command])
)

/** Parses `argv` (with the runtime and script first, as process.argv) and runs the command it names. */
// Typed by hand: the inferred type names effect's internal modules, which a declaration file cannot.
export const run: (args: ReadonlyArray<string>) => Effect.Effect<void, unknown, CliApp.CliApp.Environment> = Command.run(command, {
  name: "smtp-bridge",
  version: packageJson.version
})
