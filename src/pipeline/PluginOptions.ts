/**
 * Plugin options declared as an `effect/Schema`: one decode for every plugin factory, whose
 * error names each offending option, so a typo in a config file fails start-up with the field.
 *
 * @example
 * const Options = Schema.Struct({ url: Schema.String })
 * PluginOptions.decode("my-plugin", Options, { url: 1 })
 * // throws Error: my-plugin: invalid options: option "url": Expected string, actual 1
 */
import { Either, ParseResult, Schema } from "effect"

/** `input` decoded with `schema`; throws an `Error` naming the plugin and every option in error (unknown options too). */
export const decode = <A, I>(plugin: string, schema: Schema.Schema<A, I>, input: unknown): A => {
  const decoded = Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })(input)
  if (Either.isRight(decoded)) return decoded.right
  const issues = ParseResult.ArrayFormatter.formatErrorSync(decoded.left)
  const lines = issues.map((i) => `option ${i.path.length === 0 ? "(all)" : JSON.stringify(i.path.join("."))}: ${i.message}`)
  throw new Error(`${plugin}: invalid options: ${lines.join("; ")}`)
}
