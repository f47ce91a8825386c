/**
 * rspamd: scans each message with rspamd's HTTP API (`/checkv2`, as rspamd's proxy and Haraka
 * use it), the message streamed from wherever it lives, with the envelope in request headers;
 * then does what rspamd's action says and applies its `milter` block (header fields to add and
 * remove). See README.md.
 *
 * @example
 * import { rspamd } from "./plugins/rspamd/index.ts"
 * defineConfig({ plugins: [rspamd({ url: "http://127.0.0.1:11333" })] })
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import { definePlugin, Verdict } from "../../src/index.ts"
import type { DataContext, Plugin } from "../../src/index.ts"
import * as Http from "./Http.ts"
import { Options, parseUrl } from "./options.ts"
import type { OptionsInput } from "./options.ts"

export type { OptionsInput as RspamdOptions } from "./options.ts"

const HeaderValue = Schema.Union(Schema.String, Schema.Struct({ value: Schema.String, order: Schema.optional(Schema.Number) }))

/** The part of rspamd's answer the bridge acts on; the rest (symbols) is only logged. */
const Result = Schema.Struct({
  action: Schema.String,
  score: Schema.optional(Schema.Number),
  required_score: Schema.optional(Schema.Number),
  subject: Schema.optional(Schema.String),
  messages: Schema.optional(Schema.Struct({ smtp_message: Schema.optional(Schema.String) })),
  milter: Schema.optional(Schema.Struct({
    add_headers: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Union(HeaderValue, Schema.Array(HeaderValue)) })),
    remove_headers: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number }))
  }))
})
type Result = typeof Result.Type

const decodeResult = Schema.decodeUnknownEither(Schema.parseJson(Result))

// RFC 5322 2.2: a field name is printable ASCII but the colon.
const fieldName = /^[\x21-\x39\x3b-\x7e]+$/

/** Printable ASCII, short, for a reply line (rspamd's smtp_message may come from a rule's text). */
const replyText = (text: string | undefined, fallback: string): string => {
  const clean = (text ?? "").replace(/[^\x20-\x7e]/g, "?").trim().slice(0, 200)
  return clean === "" ? fallback : clean
}

/** Our own verdict headers: a client's copies are removed so that none can be forged past the scan. */
const spamFields = ["X-Spam-Action", "X-Spam-Score", "X-Spam-Status"]

export const rspamd: (options: OptionsInput) => Plugin = definePlugin({
  name: "rspamd",
  options: Options,
  // Its own `timeout` bounds each scan (then `onError`); this only backs it up.
  timeout: "15 minutes",
  // A connection for each check, one check at a time per session.
  files: () => ({ perSession: 1 }),
  make: (options) => {
    const target = parseUrl(options.url)!
    const timeoutMs = Duration.toMillis(options.timeout)

    const failed = (why: string) =>
      options.onError === "accept"
        ? Effect.as(Effect.logWarning(`${why}; the message passes unscanned (onError: accept)`), Verdict.Continue)
        : Effect.as(Effect.logWarning(`${why}; answering 451`), Verdict.defer("Message could not be scanned, try again later", { code: 451, enhanced: "4.7.1" }))

    const apply = (result: Result, ctx: DataContext): Verdict.Verdict => {
      // rspamd's milter block first: its removals act on the fields as received.
      for (const name of Object.keys(result.milter?.remove_headers ?? {})) {
        if (fieldName.test(name)) ctx.removeHeader(name)
      }
      for (const [name, given] of Object.entries(result.milter?.add_headers ?? {})) {
        if (!fieldName.test(name)) continue
        for (const h of Array.isArray(given) ? given : [given]) {
          const value = typeof h === "string" ? h : h.value
          ctx.addHeader(name, value.replace(/[\x00-\x08\x0a-\x1f\x7f]+/g, " "))
        }
      }
      if (options.spamHeaders) {
        const score = (result.score ?? 0).toFixed(2)
        const required = (result.required_score ?? 0).toFixed(2)
        const spam = result.action !== "no action" && result.action !== "greylist"
        ctx.addHeader("X-Spam-Action", result.action.replace(/[^\x20-\x7e]/g, "?"))
        ctx.addHeader("X-Spam-Score", score)
        ctx.addHeader("X-Spam-Status", `${spam ? "Yes" : "No"}, score=${score} required=${required}`)
      }
      switch (result.action) {
        case "reject":
          return Verdict.reject(replyText(result.messages?.smtp_message, "Spam message rejected"), { code: 554, enhanced: "5.7.1" })
        case "soft reject":
          return Verdict.defer(replyText(result.messages?.smtp_message, "Try again later"), { code: 451, enhanced: "4.7.1" })
        case "greylist":
          return Verdict.defer(replyText(result.messages?.smtp_message, "Try again later"), { code: 451, enhanced: "4.7.1" })
        case "rewrite subject":
          if (result.subject !== undefined) {
            ctx.removeHeader("Subject")
            ctx.addHeader("Subject", result.subject.replace(/[\x00-\x08\x0a-\x1f\x7f]+/g, " "))
          }
          return Verdict.Continue
        case "add header":
          ctx.removeHeader(options.spamHeader)
          ctx.addHeader(options.spamHeader, "Yes")
          return Verdict.Continue
        default:
          return Verdict.Continue
      }
    }

    const data = Effect.fnUntraced(function*(ctx: DataContext) {
      const { session, transaction, message } = ctx
      // A client's own verdict fields never pass, whatever rspamd answers (or if it is skipped).
      if (options.spamHeaders) for (const name of [...spamFields, options.spamHeader]) ctx.removeHeader(name)
      if (options.skipAuthenticated && session.user !== undefined) return Verdict.Continue
      if (message.size > options.maxSize) {
        yield* Effect.logInfo(`rspamd: message of ${message.size} bytes not scanned (maxSize ${options.maxSize})`)
        return Verdict.Continue
      }
      const headers: Array<readonly [string, string]> = [
        ["From", transaction.mailFrom?.address ?? ""],
        ...transaction.recipients.map((r) => ["Rcpt", r.mailbox.address] as const),
        ["IP", session.remoteAddress],
        ["Helo", session.helo?.name ?? ""],
        ["Queue-Id", transaction.id],
        ["MTA-Name", session.hostname],
        ...(session.user === undefined ? [] : [["User", session.user] as const]),
        ...(session.tls === undefined ? [] : [["TLS-Cipher", session.tls.cipher] as const, ["TLS-Version", session.tls.protocol] as const]),
        ...(options.password === undefined ? [] : [["Password", options.password] as const])
      ]
      const answer = yield* Effect.either(Http.post(target, headers, message.size, message.stream(), { timeoutMs, maxAnswer: options.maxAnswer }))
      if (answer._tag === "Left") return yield* failed(answer.left.message)
      if (answer.right.status !== 200) return yield* failed(`rspamd ${options.url}: HTTP ${answer.right.status}`)
      const result = decodeResult(new TextDecoder().decode(answer.right.body))
      if (result._tag === "Left") return yield* failed(`rspamd ${options.url}: an answer without an action`)
      yield* Effect.logInfo(`rspamd: ${result.right.action}, score ${result.right.score ?? "?"}/${result.right.required_score ?? "?"}`)
      return apply(result.right, ctx)
    })

    return { data }
  }
})

export default rspamd
