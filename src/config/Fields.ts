/** Field schemas shared by the config sections: each carries the phrase its error message uses. */
import type * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as SchemaAST from "effect/SchemaAST"
import * as Units from "../util/Units.ts"
import * as Syntax from "./Syntax.ts"

export const Expected = Symbol.for("smtp-bridge/config/Expected")
export const expecting = (text: string) => ({ [Expected]: text })

/**
 * The phrase for what a schema expects: the config's own annotation, else the schema's
 * `description`, which is how a plugin's options schema (built-in or a user's) says it.
 */
export const expectedOf = (ast: SchemaAST.Annotated): string | undefined =>
  Option.getOrUndefined(Option.orElse(SchemaAST.getAnnotation<string>(Expected)(ast), () => SchemaAST.getDescriptionAnnotation(ast)))

export const NonEmptyString = Schema.String.pipe(Schema.filter((s) => s.trim().length > 0)).annotations(
  expecting("a non-empty string")
)
export const FilePath = NonEmptyString.annotations(expecting("a file path"))
export const Hostname = Schema.String.pipe(Schema.filter(Syntax.isHostname)).annotations(
  expecting("a host name like mx.example.com")
)
export const ListenAddress = Schema.String.pipe(Schema.filter((s) => Syntax.parseHostPort(s) !== undefined)).annotations(
  expecting("HOST:PORT like 127.0.0.1:2525 or [::1]:2525, with a port from 0 to 65535")
)
export const Cidr = Schema.String.pipe(Schema.filter(Syntax.isCidr)).annotations(expecting("a CIDR like 10.0.0.0/8"))
export const SenderPattern = Schema.String.pipe(Schema.filter(Syntax.isSenderPattern)).annotations(
  expecting("an address (alice@example.com), a domain (@example.com) or *")
)
export const Bool = Schema.Boolean.annotations(expecting("true or false"))

export const integer = (min: number, phrase: string) =>
  Schema.Number.pipe(Schema.filter((n) => Number.isSafeInteger(n) && n >= min)).annotations(expecting(phrase))
export const PositiveInt = integer(1, "a positive integer")
export const PrefixLength = (bits: 32 | 128) =>
  Schema.Number.pipe(Schema.filter((n) => Number.isSafeInteger(n) && n >= 0 && n <= bits)).annotations(
    expecting(`a prefix length from 0 to ${bits}`)
  )
export const LineLength = integer(512, "an integer of at least 512 (the RFC 5321 minimum)")

// Sizes and durations decode to bytes and Effect Durations: what a user writes is the schema's
// encoded side (`ConfigInput`), what the server runs with its type side (`BridgeConfig`).
export const size = (min: number, phrase: string) => Units.sizeAtLeast(min).annotations(expecting(phrase))
export const MessageSize = size(1, "a positive size in bytes, or a string like \"25MB\"")
export const SpillSize = size(0, "a size in bytes, or a string like \"256KB\"")

export const decodeDuration = (input: unknown): Duration.Duration | undefined => Units.parseDuration(input)

export const duration = (allowZero: boolean) =>
  Units.durationWith(allowZero).annotations(expecting(`a duration like "30 seconds" or "5 minutes", or milliseconds${allowZero ? "" : " above 0"}`))
export const Timeout = duration(false)
export const ShutdownTimeout = duration(true)

export const list = <S extends Schema.Schema.AnyNoContext>(item: S, what: string) =>
  Schema.Array(item).annotations(expecting(`an array of ${what}`))

/** Optional in the file, `value` when absent once decoded. */
export const withDefault = <S extends Schema.Schema.AnyNoContext>(schema: S, value: () => Schema.Schema.Type<S>) =>
  Schema.optionalWith(schema, { exact: true, default: value })

export const optional = <S extends Schema.Schema.AnyNoContext>(schema: S) => Schema.optionalWith(schema, { exact: true })

