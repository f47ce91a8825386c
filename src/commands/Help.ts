/**
 * `smtp-bridge serve --help` (and `check-config`, `plugins`): one line per flag with its default,
 * in groups. @effect/cli's own help gives each option a block of four lines led by its type's
 * generic text ("A user-defined piece of text.") and has no option groups, which made `serve
 * --help` 262 lines; so these commands' help is rendered here from `ConfigFlags.docs`, and
 * @effect/cli still renders the help of the other commands.
 *
 * Colour only when stdout is a terminal and NO_COLOR is unset (https://no-color.org); the same
 * rule strips @effect/cli's ANSI codes from everything printed through `Console` otherwise.
 *
 * @example
 * const help = Help.requested(process.argv.slice(2))
 * const program = help === undefined ? cli(process.argv) : Console.log(Help.render(help, Help.colour()))
 */
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as ConfigFlags from "./ConfigFlags.ts"
import * as Plugins from "./Plugins.ts"

/** The one-line description of each command that takes the config flags. */
export const commands = {
  serve: "Start the bridge",
  "check-config": "Validate the config file and flags, then exit (0 ok, 2 invalid)",
  plugins: Plugins.description
} as const

export type HelpCommand = keyof typeof commands

/** Whether colour may be used on stdout. */
export const colour = (): boolean => process.stdout.isTTY === true && (process.env.NO_COLOR ?? "") === ""

/** The command whose grouped help `args` (the arguments after the program) ask for, if any. */
export const requested = (args: ReadonlyArray<string>): HelpCommand | undefined => {
  const [command, ...rest] = args
  if (command === undefined || !(command in commands)) return undefined
  return rest.includes("--help") || rest.includes("-h") ? (command as HelpCommand) : undefined
}

/**
 * @effect/cli reads its built-in `--log-level` only before a command's own options, yet the help
 * lists it with them: `serve --listen X --log-level debug` was refused as an unknown argument. The
 * flag (`--log-level L` or `--log-level=L`) is moved to right after the subcommand, wherever it was
 * written; everything else keeps its order.
 */
export const hoistLogLevel = (args: ReadonlyArray<string>): Array<string> => {
  const [command, ...rest] = args
  if (command === undefined || command.startsWith("-")) return [...args]
  const i = rest.findIndex((a) => a === "--log-level" || a.startsWith("--log-level="))
  if (i <= 0) return [...args]
  const width = rest[i] === "--log-level" && i + 1 < rest.length ? 2 : 1
  const flag = rest.slice(i, i + width)
  return [command, ...flag, ...rest.slice(0, i), ...rest.slice(i + width)]
}

const flagColumn = (doc: ConfigFlags.FlagDoc): string =>
  `--${doc.name}${doc.pseudo === undefined ? "" : ` ${doc.pseudo}`}${doc.repeatable === true ? " ..." : ""}`

/** The help of one of the config-taking commands; `useColour` makes the headings bold. */
export const render = (command: HelpCommand, useColour: boolean): string => {
  const bold = (s: string) => (useColour ? `\u001b[1m${s}\u001b[0m` : s)
  const docs: ReadonlyArray<ConfigFlags.FlagDoc> = Object.values(ConfigFlags.docs)
  const width = Math.max(...docs.map((d) => flagColumn(d).length)) + 2
  const lines = [
    `${bold(`smtp-bridge ${command}`)}: ${commands[command]}`,
    "",
    `Usage: smtp-bridge ${command} [flags]`,
    "",
    "Flags override the config file (--config) field by field; a flag not given keeps the file's",
    "value, or the default shown. A flag followed by ... may be given several times.",
    "Every config field is described in the README's configuration reference."
  ]
  for (const group of ConfigFlags.groups) {
    lines.push("", bold(group))
    for (const doc of docs.filter((d) => d.group === group)) {
      lines.push(`  ${flagColumn(doc).padEnd(width)}${doc.description} [default: ${doc.default}]`)
    }
  }
  lines.push(
    "",
    bold("Common"),
    `  ${"--log-level LEVEL".padEnd(width)}Least severe log level shown: all, trace, debug, info, warning, error, fatal, none [default: info]`,
    `  ${"--help, -h".padEnd(width)}This help`,
    `  ${"--version".padEnd(width)}The version`
  )
  return lines.join("\n")
}

// Control Sequence Introducer sequences (colours, cursor moves) as @effect/cli writes them.
const ansi = /\u001b\[[0-9;?]*[ -/]*[@-~]/g

const strip = (args: ReadonlyArray<unknown>): Array<unknown> => args.map((a) => (typeof a === "string" ? a.replace(ansi, "") : a))

/** Runs `effect` with a Console that drops ANSI codes from `log`/`error` when colour is not wanted. */
export const plainUnlessColour = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.console, (console) => {
    const stdoutColour = colour()
    const stderrColour = process.stderr.isTTY === true && (process.env.NO_COLOR ?? "") === ""
    return stdoutColour && stderrColour ? effect : Console.withConsole(effect, {
      ...console,
      log: (...args: ReadonlyArray<unknown>) => console.log(...(stdoutColour ? args : strip(args))),
      error: (...args: ReadonlyArray<unknown>) => console.error(...(stderrColour ? args : strip(args)))
    })
  })
