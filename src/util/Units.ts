/**
 * Sizes and durations as people write them in a config file ("25MB", "5 minutes"), as
 * `effect/Schema`s. A pure leaf (it imports only `effect`), so that the config schema, the
 * built-in plugins' `options.ts` and a user's plugin can all share them.
 *
 * @example
 * import { Schema } from "effect"
 * import { Units } from "smtp-bridge"
 * const Options = Schema.Struct({ delay: Units.Duration, maxSize: Units.Size })
 * Schema.decodeUnknownSync(Options)({ delay: "5 minutes", maxSize: "1MB" }) // { delay: Duration(5m), maxSize: 1048576 }
 */
import * as D from "effect/Duration"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

const units: Readonly<Record<string, number>> = {
  "": 1, b: 1,
  k: 1024, kb: 1024, kib: 1024,
  m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3
}

/**
 * Bytes from a number or a string like `"25MB"`. K, M and G are powers of 1024, as mail
 * administrators expect ("25MB" is the 26214400 that SIZE advertises).
 */
export const parseSize = (input: unknown): number | undefined => {
  if (typeof input === "number") return Number.isSafeInteger(input) && input >= 0 ? input : undefined
  if (typeof input !== "string") return undefined
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input)
  if (match === null) return undefined
  const unit = units[match[2]!.toLowerCase()]
  if (unit === undefined) return undefined
  const bytes = Math.floor(Number(match[1]) * unit)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** A finite duration from milliseconds (a number of at least 0) or an Effect duration string. */
export const parseDuration = (input: unknown): D.Duration | undefined => {
  if (typeof input === "number" && !(input >= 0)) return undefined
  const decoded = Option.getOrUndefined(D.decodeUnknown(input))
  return decoded !== undefined && D.isFinite(decoded) ? decoded : undefined
}

/** What a user may write for a size or a duration. */
export const SizeInput = Schema.Union(Schema.Number, Schema.String)
export const DurationInput = Schema.Union(Schema.Number, Schema.String)

/** Bytes of at least `min`: a number, or a string like `"25MB"`; decodes to the number of bytes. */
export const sizeAtLeast = (min: number, description = `a size in bytes of at least ${min}, or a string like "25MB"`) =>
  Schema.transform(
    SizeInput.pipe(Schema.filter((s) => (parseSize(s) ?? -1) >= min)),
    Schema.Number,
    { strict: true, decode: (s) => parseSize(s) ?? 0, encode: (n) => n }
  ).annotations({ description })

/** A finite duration: milliseconds or a string like `"30 seconds"`; decodes to an Effect `Duration`. */
export const durationWith = (
  allowZero: boolean,
  description = `a duration like "30 seconds" or "5 minutes", or milliseconds${allowZero ? "" : " above 0"}`
) =>
  Schema.transform(
    DurationInput.pipe(Schema.filter((input) => {
      const d = parseDuration(input)
      return d !== undefined && (allowZero || D.greaterThan(d, D.zero))
    })),
    Schema.DurationFromSelf,
    { strict: true, decode: (input) => parseDuration(input) ?? D.zero, encode: (d) => D.toMillis(d) }
  ).annotations({ description })

/** Bytes: `1048576`, `"512KB"`, `"25MB"`, `"1GB"`. */
export const Size = sizeAtLeast(0, "a size in bytes, or a string like \"25MB\"")

/** A duration above zero: `1500` (milliseconds), `"30 seconds"`, `"5 minutes"`. */
export const Duration = durationWith(false)

/** A duration checked but kept as written: milliseconds, a string like `"5 minutes"`, or an Effect `Duration`. */
export const DurationText = Schema.declare((u: unknown): u is D.DurationInput => parseDuration(u) !== undefined).annotations({
  description: "a duration like \"30 seconds\" or \"5 minutes\", or milliseconds"
})
