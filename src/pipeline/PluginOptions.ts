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
import * as Redact from "../util/Redact.ts"

/** `input` decoded with `schema`; throws an `Error` naming the plugin and every option in error (unknown options too). */
export const decode = <A, I>(plugin: string, schema: Schema.Schema<A, I>, input: unknown): A => {
  const decoded = Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })(input)
  if (Either.isRight(decoded)) return decoded.right
  // One message per option: an optional option that fails its refinement also fails the union's
  // other member ("Expected undefined"), which says nothing to the reader.
  const byPath = new Map<string, string>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(decoded.left)) {
    const key = issue.path.join(".")
    const path = issue.path.length === 0 ? "(all)" : JSON.stringify(key)
    // A secret (or a URL, which may hold one) given with the wrong type is not repeated back.
    const message = Redact.isSecretField(key) || /(?:^|\.)url$/i.test(key) ? issue.message.replace(/,? actual [\s\S]*$/, "") : issue.message
    if (!byPath.has(path)) byPath.set(path, message)
  }
  const lines = [...byPath].map(([path, message]) => `option ${path}: ${message}`)
  throw new Error(`${plugin}: invalid options: ${lines.join("; ")}`)
}
