/**
 * arc-seal: adds an ARC set (RFC 8617: ARC-Authentication-Results, ARC-Message-Signature,
 * ARC-Seal) so that mail this bridge forwards keeps its authentication results past changes
 * that break DKIM or SPF. The chain found on the message is validated first; its result is the
 * seal's `cv=`. A chain that already failed is not sealed again. The seal covers the message as
 * it will be sent, after the edits of the plugins before this one.
 *
 * @example
 * import { arcSeal } from "./plugins/arc-seal/index.ts"
 * arcSeal({ domain: "forwarder.example", selector: "arc2025", keyFile: "/etc/smtp-bridge/arc.pem" })
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { readFile } from "node:fs/promises"
import { definePlugin, Dkim, Dns, Mailauth, Verdict } from "../../src/index.ts"
import type { DataContext, Plugin } from "../../src/index.ts"
import type { OptionsInput } from "./options.ts"

/** The options as a user writes them; their schema is in `options.ts`. */
export type ArcSealOptions = OptionsInput

export class ArcSealError extends Schema.TaggedError<ArcSealError>()("ArcSealError", {
  reason: Schema.Literal("Read", "Key", "Config"),
  message: Schema.String
}) {}

const loadPem = (options: ArcSealOptions): Effect.Effect<string, ArcSealError> =>
  Effect.gen(function*() {
    const label = `${options.selector}._domainkey.${options.domain}`
    const pem = options.privateKey ?? (options.keyFile !== undefined
      ? yield* Effect.tryPromise({
        try: () => readFile(options.keyFile!, "utf8"),
        catch: (e) => new ArcSealError({ reason: "Read", message: `arc-seal: cannot read key file ${options.keyFile} for ${label}: ${String(e)}` })
      })
      : undefined)
    if (pem === undefined) return yield* new ArcSealError({ reason: "Config", message: `arc-seal: ${label} needs keyFile or privateKey` })
    yield* Effect.try({
      try: () => Dkim.Keys.privateKeyOf(pem),
      catch: (e) => new ArcSealError({ reason: "Key", message: `arc-seal: key for ${label}: ${e instanceof Error ? e.message : String(e)}` })
    })
    return pem
  })

const CRLF = Uint8Array.of(13, 10)

/**
 * Creates the plugin. The results and the chain's validation are those of the message as
 * received; the seal covers the message as it will be sent, with the edits (`edit.headers`,
 * `edit.body`) of the plugins before this one (a milter's new Subject, an HTTP hook's header),
 * as dkim-sign signs it. Run it last among the plugins that change the message. Sealing problems
 * are logged and the message passes unsealed.
 */
export const arcSeal = (options: ArcSealOptions): Plugin =>
  definePlugin({
    name: "arc-seal",
    // It authenticates the message first (SPF, DKIM, ARC, DMARC): DNS lookups, each in flight with
    // a UDP socket of its own, at most this many at once.
    files: { perSession: Mailauth.lookupsInFlight },
    setup: Effect.gen(function*() {
      Mailauth.preload()
      const privateKey = yield* loadPem(options)
      const key = {
        domain: options.domain,
        selector: options.selector,
        privateKey,
        ...(options.headers !== undefined ? { headerList: options.headers } : {})
      }
      return {
        data: Effect.fnUntraced(function*({ session, transaction, message, addHeader, edit }: DataContext) {
          const dns = yield* Dns
          const authservId = options.authservId ?? session.hostname
          const auth = yield* Mailauth.authenticate(message.inMemory?.() ?? message.stream(), {
            ip: session.remoteAddress,
            helo: session.helo?.name,
            sender: transaction.mailFrom?.address,
            authservId,
            dns
          })
          const chain = auth.arc
          if (chain === undefined || !chain.sealable || chain.result !== "none" && chain.result !== "pass" && chain.result !== "fail") {
            const why = chain === undefined ? "no ARC result" : `the ARC chain as received is ${chain.result}${chain.sealable ? "" : " and its newest seal says cv=fail"}`
            yield* Effect.logWarning(`arc-seal: message not sealed: ${why}`)
            return Verdict.Continue
          }
          const sent = Stream.concat(Stream.fromIterable(edit.headers().map((f) => f.bytes)), Stream.concat(Stream.succeed(CRLF), edit.body()))
          const sealed = yield* Mailauth.seal(sent, { ...key, cv: chain.result, authResults: auth.authenticationResults })
          if (sealed.arcSet.length === 0) {
            yield* Effect.logWarning(`arc-seal: message not sealed: ${sealed.error ?? "unknown reason"}`)
            return Verdict.Continue
          }
          // ARC fields are relaxed-canonicalised, so the bridge's own folding keeps them valid.
          for (let i = sealed.arcSet.length - 1; i >= 0; i--) addHeader(sealed.arcSet[i]!.name, sealed.arcSet[i]!.value)
          return Verdict.Continue
        })
      }
    })
  })

export default arcSeal
