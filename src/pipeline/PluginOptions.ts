/**
 * A plugin's options: where a plugin made by an options factory keeps them as given, and their
 * check against the plugin's schema, a bad option failing as one line that names the plugin and
 * the option (its value hidden when its name says it is a secret). The config loader and
 * `check-config` check them before anything starts; `definePlugin` (Plugin.ts) decodes them at
 * set-up.
 */
import * as Effect from "effect/Effect"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Issue from "../util/Issue.ts"
import * as Redact from "../util/Redact.ts"

/**
 * Where a plugin made by an options factory keeps its options as given, so that the config loader
 * (and `check-config`) can check them before anything starts. A symbol, so it is never a hook.
 */
export const OptionsKey: unique symbol = Symbol.for("smtp-bridge/Plugin/options")

/** The options a plugin was given and the check of them (from its schema). */
export interface PluginOptions {
  readonly input: unknown
  readonly decode: (input: unknown) => Effect.Effect<unknown, ParseResult.ParseIssue>
}

/** A bad option, as one line naming the plugin and the option. */
export class PluginOptionsError extends Schema.TaggedError<PluginOptionsError>()("PluginOptionsError", {
  plugin: Schema.String,
  message: Schema.String
}) {}

// A filter of the author's that throws is reported as a problem with the options, never a crash.
export const checkOptions = <A, I>(schema: Schema.Schema<A, I, never>) => (input: unknown): Effect.Effect<A, ParseResult.ParseIssue> =>
  // Suspended: the parser runs synchronously when called, so a throwing filter throws right there.
  Effect.suspend(() => ParseResult.decodeUnknown(schema)(input, { onExcessProperty: "error" })).pipe(
    Effect.catchAllDefect((defect) =>
      Effect.fail(new ParseResult.Type(schema.ast, input, `the options schema failed: ${defect instanceof Error ? defect.message : String(defect)}`))
    )
  )

/** One line for a bad option, its value hidden when the option's name says it is a secret (`password`, `token`). */
const describeIssue = (issue: ParseResult.ParseIssue): string => {
  const problem = Issue.first(issue)
  return Issue.line({ ...problem, actual: Redact.value(Issue.formatPath(problem.path), problem.actual) })
}

/**
 * Decodes `input` with a plugin's options schema; a bad option fails as one line naming the
 * plugin and the option (`greylist: delay: expected ..., got "soon"`).
 */
export const decodeOptions = <A, I>(plugin: string, schema: Schema.Schema<A, I, never>, input: unknown): Effect.Effect<A, PluginOptionsError> =>
  Effect.mapError(
    checkOptions(schema)(input),
    (issue) => new PluginOptionsError({ plugin, message: `${plugin}: ${describeIssue(issue)}` })
  )
