/**
 * `smtp-bridge dkim keygen --domain D --selector S [--algorithm rsa|ed25519] --out FILE`: writes
 * a new private key (PEM, mode 0600, never over an existing file) and prints the TXT record
 * value to publish at `S._domainkey.D` on standard output; the record name goes to stderr so
 * that `> record.txt` captures the value alone.
 */
import { Command, Options } from "@effect/cli"
import * as Console from "effect/Console"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { writeFile } from "node:fs/promises"
import * as Keys from "../dkim/Keys.ts"

export class DkimError extends Data.TaggedError("DkimError")<{
  readonly reason: "Exists" | "Write" | "Input"
  readonly message: string
}> {}

const label = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/
const validDomain = (d: string): boolean => d.length <= 253 && d.split(".").every((l) => label.test(l))

/** Generates the key and writes it to `out`; the caller prints the record. */
export const keygenToFile = (options: {
  readonly domain: string
  readonly selector: string
  readonly algorithm: Keys.Algorithm
  readonly out: string
}): Effect.Effect<Keys.GeneratedKey, DkimError> =>
  Effect.gen(function*() {
    if (!validDomain(options.domain)) return yield* new DkimError({ reason: "Input", message: `"${options.domain}" is not a domain name` })
    if (!validDomain(options.selector)) {
      return yield* new DkimError({ reason: "Input", message: `"${options.selector}" is not a valid selector (letters, digits, hyphens, dots)` })
    }
    const key = Keys.keygen(options)
    yield* Effect.tryPromise({
      // "wx": an existing key is somebody's published key; overwriting it would break their mail.
      try: () => writeFile(options.out, key.privateKeyPem, { mode: 0o600, flag: "wx" }),
      catch: (e) =>
        (e as { code?: string }).code === "EEXIST"
          ? new DkimError({ reason: "Exists", message: `${options.out} exists; not overwriting a key (remove it or choose another --out)` })
          : new DkimError({ reason: "Write", message: `cannot write ${options.out}: ${e instanceof Error ? e.message : String(e)}` })
    })
    return key
  })

const keygen = Command.make("keygen", {
  domain: Options.text("domain").pipe(Options.withPseudoName("DOMAIN"), Options.withDescription("The signing domain (d=)")),
  selector: Options.text("selector").pipe(Options.withPseudoName("SELECTOR"), Options.withDescription("The selector (s=)")),
  algorithm: Options.choice("algorithm", ["rsa", "ed25519"]).pipe(
    Options.withDescription("rsa (2048 bits, verified everywhere) or ed25519 (RFC 8463; sign with both for now)"),
    Options.withDefault("rsa" as const)
  ),
  out: Options.text("out").pipe(Options.withPseudoName("FILE"), Options.withDescription("Where to write the private key (PEM, mode 0600)"))
}, (o) =>
  Effect.gen(function*() {
    const key = yield* keygenToFile(o)
    yield* Console.error(`Publish this TXT record at ${key.dnsRecordName}:`)
    yield* Console.log(key.txtValue)
  })).pipe(Command.withDescription("Generate a DKIM key and print its DNS TXT record"))

/** `smtp-bridge dkim ...`: add to the CLI's subcommands. */
export const dkim = Command.make("dkim").pipe(
  Command.withDescription("DKIM key tools"),
  Command.withSubcommands([keygen])
)
