/**
 * Produces the one validated `BridgeConfig` from an optional config file and the CLI flags:
 * the file's default export, the flags merged over it, then `Resolve.resolve`.
 *
 * @example
 * const config = yield* Load.load({ file: "smtp-bridge.config.ts", flags: { listen: ["0.0.0.0:587"] } })
 */
import * as Effect from "effect/Effect"
import * as Path from "node:path"
import { pathToFileURL } from "node:url"
import type { BridgeConfig } from "./Config.ts"
import type * as DkimSign from "../../plugins/dkim-sign/options.ts"
import type { ConfigInput, LimitsInput, SpoolInput, TlsInput } from "./Input.ts"
import * as AuthConfig from "./Auth.ts"
import * as Resolve from "./Resolve.ts"

/**
 * Flags are a `Partial<ConfigInput>`, except that `tls` may be half given (`--tls-cert` alone
 * completes the file's `tls`), and so may `dkimSign` (`--dkim-trusted-from` alone completes the
 * file's keys).
 */
export type Flags = Omit<Partial<ConfigInput>, "tls" | "limits" | "dkimSign" | "spool"> & {
  readonly tls?: Partial<TlsInput>
  readonly limits?: LimitsInput
  readonly dkimSign?: Partial<DkimSign.OptionsInput>
  /** `--spool-min-free` alone completes the file's spool object. */
  readonly spool?: string | Partial<SpoolInput>
}

const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u)

/**
 * Flags override the file key by key; nested objects (`limits`, `tls`) merge one level down, and
 * arrays are replaced, not appended: `--listen` names every listener.
 */
export const merge = (file: unknown, flags: Flags): unknown => {
  if (!isRecord(file)) return Object.keys(flags).length === 0 ? file : merge({}, flags)
  const out: Record<string, unknown> = { ...file }
  for (const [key, value] of Object.entries(flags)) {
    if (value === undefined) continue
    const base = out[key]
    out[key] = key === "auth" && Array.isArray(value)
      ? AuthConfig.mergeFlags(base, value)
      : isRecord(value) && isRecord(base) ? { ...base, ...withoutUndefined(value) } : value
  }
  return out
}

const withoutUndefined = (record: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined))

const messageOf = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error)).split("\n")[0]!.trim()

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

/**
 * Why the config file could not be imported, with the line (and column) when the runtime says:
 * Bun reports a syntax error as an AggregateError of build messages with a `position`; Deno and
 * Node put `file:line:column` in the message or stack. The offending line's text is not shown:
 * it may hold a password.
 */
export const importProblem = (error: unknown, file: string): string => {
  const first = (error as { errors?: ReadonlyArray<unknown> } | null)?.errors?.[0]
  const position = (first as { position?: { line?: unknown; column?: unknown } } | undefined)?.position
  if (typeof position?.line === "number") {
    const column = typeof position.column === "number" ? `, column ${position.column}` : ""
    const message = (first as { message?: unknown }).message
    return `line ${position.line}${column}: ${typeof message === "string" ? message.split("\n")[0]!.trim() : messageOf(first)}`
  }
  const text = error instanceof Error ? `${error.message}\n${error.stack ?? ""}` : String(error)
  const at = new RegExp(`${escape(Path.resolve(file))}:(\\d+)(?::(\\d+))?`).exec(text)
  const message = messageOf(error).replace(/^(TypeError: )?SyntaxError: /, "SyntaxError: ")
  return at === null ? message : `line ${at[1]}${at[2] === undefined ? "" : `, column ${at[2]}`}: ${message}`
}

const unreadable = (file: string, expected: string, detail: string): Resolve.ConfigError =>
  new Resolve.ConfigError({
    reason: "Unreadable",
    field: "config",
    expected,
    source: file,
    message: `Invalid config: config: cannot load ${file}: ${detail}`
  })

let generation = 0

/**
 * Imports the config file's default export (`.ts` works on Bun, Deno and Node >= 22.19).
 * `fresh` evaluates the file again (a reload): modules are cached by URL, so a new query string
 * is the portable way to see the file's new content. Modules it imports stay cached.
 */
export const importFile = (file: string, options: { readonly fresh?: boolean } = {}): Effect.Effect<unknown, Resolve.ConfigError> =>
  Effect.gen(function*() {
    const absolute = Path.resolve(file)
    // Bun ignores the query of a file: URL when caching, but not of a plain path; Node wants a
    // URL for a Windows path. A plain absolute path is a valid specifier elsewhere.
    const base = process.platform === "win32" ? pathToFileURL(absolute).href : absolute
    const url = options.fresh === true ? `${base}?reload=${++generation}` : pathToFileURL(absolute).href
    const module = yield* Effect.tryPromise({
      try: (): Promise<unknown> => import(url),
      catch: (error) => unreadable(file, "a config file that can be imported", importProblem(error, file))
    })
    if (!isRecord(module) || !("default" in module) || module.default === undefined) {
      return yield* Effect.fail(
        unreadable(file, "a default export", "it has no default export (export default defineConfig({ ... }))")
      )
    }
    return module.default
  })

/** Whether the flags set the field at this path, so that an error can blame the right source. */
const fromFlags = (flags: Flags, field: string): boolean => {
  const [top, nested] = field.replace(/\[.*$/, "").split(".")
  const value: unknown = Object.entries(flags).find(([key]) => key === top)?.[1]
  if (value === undefined) return false
  return nested === undefined || !isRecord(value) || value[nested] !== undefined
}

export const load = (
  options: { readonly file?: string; readonly flags: Flags; readonly fresh?: boolean }
): Effect.Effect<BridgeConfig, Resolve.ConfigError> =>
  Effect.gen(function*() {
    const { file, flags } = options
    const fileInput = file === undefined ? {} : yield* importFile(file, { fresh: options.fresh === true })
    // An error names where the bad value came from: the flags when they set that field, else the file.
    const source = (field: string): string => (file === undefined || fromFlags(flags, field) ? "flags" : file)
    return yield* Resolve.resolve(merge(fileInput, flags), source)
  })
