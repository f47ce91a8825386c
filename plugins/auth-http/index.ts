/**
 * auth-http: checks AUTH PLAIN / LOGIN credentials with an HTTP service. Each AUTH is a POST of
 * `{ username, password, mechanism, client, tls }` as JSON, signed with HMAC-SHA256 as the
 * webhook transport signs its requests (`x-smtp-bridge-timestamp`, `x-smtp-bridge-signature:
 * v1=<hex of HMAC(secret, "<timestamp>.<body>")>`), so the service can refuse forged or replayed
 * checks.
 *
 * Answers: `200 { identity, senders? }` → Accept (the session's user is `identity`; `senders`,
 * addresses, `@domain` or `*`, are what it may send as); `401`/`403` → Reject 535 5.7.8; `404` →
 * Continue (the service does not know the user: a later backend may); anything else, a redirect
 * (never followed: it would re-send the password elsewhere), invalid JSON, an answer over
 * `maxResponseBytes` or no answer within `timeout` → Defer 454 4.7.0.
 *
 * @example
 * import { authHttp } from "./plugins/auth-http/index.ts"
 * authHttp({ url: "https://auth.internal.example/smtp", secretEnv: "SMTP_AUTH_HMAC" })
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { Bytes, definePlugin, Fetch, Redact, Senders, signRequest, Verdict } from "../../src/index.ts"
import type { AuthContext } from "../../src/index.ts"
import { Options } from "./options.ts"

export { Options } from "./options.ts"
export type { OptionsInput } from "./options.ts"

const invalid = Verdict.Reject({ code: 535, enhanced: "5.7.8", text: "Authentication credentials invalid" })
const unavailable = Verdict.Defer({ code: 454, enhanced: "4.7.0", text: "Temporary authentication failure, try again later" })

/** A 200's body. The identity becomes the session's user: logged and written into Received, so one visible token. */
const Accepted = Schema.Struct({
  identity: Schema.String.pipe(Schema.pattern(/^[^\x00-\x20\x7f]{1,256}$/)),
  senders: Schema.optional(Schema.Array(Schema.String))
})
const decodeAccepted = Schema.decodeUnknownEither(Schema.parseJson(Accepted))

class Unavailable extends Error {}

/** The body as text, or `Unavailable` once it passes `max` bytes (the rest is never read). */
const readCapped = async (response: Response, max: number): Promise<string> => {
  const body = await Bytes.readCapped(response, max)
  if (body === undefined) throw new Unavailable(`the answer is longer than ${max} bytes (maxResponseBytes)`)
  return decoder.decode(body)
}

const decoder = new TextDecoder()

type Answer =
  | { readonly _tag: "Status"; readonly status: number; readonly location: string | null }
  | { readonly _tag: "Ok"; readonly body: string }

/** `secretEnv` names a variable that is not set (found when the server starts). */
export class AuthHttpSetupError extends Schema.TaggedError<AuthHttpSetupError>()("AuthHttpSetupError", {
  message: Schema.String
}) {}

/** The hooks, made from the decoded options (see `authHttp`). */
const make = (options: Options) => {
  const timeout = Duration.decode(options.timeout as Duration.DurationInput)
  // The URL may hold a token (path, query, userinfo): logs show it redacted, and the runtime's own
  // error texts, which repeat the URL, get the redacted form too.
  const shown = Redact.url(options.url)
  // fetch refuses a URL with credentials (WHATWG Fetch): `https://user:pass@host/` becomes HTTP
  // Basic authentication (RFC 7617) to the URL without them.
  const target = new URL(options.url)
  const basic = target.username === "" && target.password === ""
    ? undefined
    : `Basic ${Buffer.from(`${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`, "utf8").toString("base64")}`
  target.username = ""
  target.password = ""
  const endpoint = target.href
  const hide = (text: string): string => [options.url, new URL(options.url).href, endpoint].reduce((t, form) => t.split(form).join(shown), text)

  const call = async (secret: string | undefined, body: string, signal: AbortSignal): Promise<Answer> => {
    const timestamp = String(Math.floor(Date.now() / 1000))
    const headers: Record<string, string> = { "content-type": "application/json", "x-smtp-bridge-timestamp": timestamp }
    if (basic !== undefined) headers["authorization"] = basic
    if (secret !== undefined) headers["x-smtp-bridge-signature"] = `v1=${signRequest(secret, timestamp, new TextEncoder().encode(body))}`
    // `manual`: a 3xx comes back as it is, never followed (Bun, Deno and Node honour it).
    const response = await Fetch.boundedFetch(endpoint, { method: "POST", headers, body, redirect: "manual", signal })
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined)
      return { _tag: "Status", status: response.status, location: response.headers.get("location") }
    }
    return { _tag: "Ok", body: await readCapped(response, options.maxResponseBytes) }
  }

  const auth = (secret: string | undefined) => Effect.fnUntraced(function*({ session, username, password, mechanism, authzid }: AuthContext) {
    if (password === "") return invalid
    if (authzid !== undefined && authzid !== "" && authzid !== username) return invalid
    const body = JSON.stringify({ username, password, mechanism, client: session.remoteAddress, tls: session.tls !== undefined })
    const answer = yield* Effect.tryPromise({
      try: (signal) => call(secret, body, signal),
      catch: (cause) => hide(cause instanceof Error ? cause.message : String(cause))
    }).pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => `no answer within ${Duration.format(timeout)}` }),
      Effect.either
    )
    const warn = (why: string) => Effect.as(Effect.logWarning(`auth-http: ${shown}: ${why}`), unavailable)
    if (Either.isLeft(answer)) return yield* warn(answer.left)
    const result = answer.right
    if (result._tag === "Status") {
      if (result.status === 401 || result.status === 403) return invalid
      if (result.status === 404) return Verdict.Continue
      if ((result.status >= 300 && result.status < 400) || result.status === 0) {
        return yield* warn(`HTTP ${result.status} redirect to ${result.location === null ? "(none)" : Redact.url(result.location)} (never followed)`)
      }
      return yield* warn(`HTTP ${result.status}`)
    }
    const accepted = decodeAccepted(result.body)
    if (Either.isLeft(accepted)) return yield* warn("200 without a valid JSON { identity, senders? } body")
    const { identity, senders } = accepted.right
    const bad = Senders.grant(session.notes, identity, senders ?? [])
    if (bad.length > 0) yield* Effect.logWarning(`auth-http: ignored senders of ${identity} that are no address: ${bad.map(Senders.printable).join(", ")}`)
    return Verdict.accept({ identity })
  })

  return {
    // The variable is read when the server starts (and on each reload), as a file would be.
    setup: Effect.gen(function*() {
      const secret = options.secretEnv === undefined ? options.secret : globalThis.process?.env[options.secretEnv]
      if (options.secretEnv !== undefined && (secret === undefined || secret === "")) {
        return yield* new AuthHttpSetupError({ message: `auth-http: option "secretEnv": the environment variable ${options.secretEnv} is not set` })
      }
      return { auth: auth(secret) }
    })
  }
}

/**
 * Creates the plugin. A bad option is reported by `check-config` (and fails start-up) as one
 * line naming it; a `secretEnv` that is not set fails start-up.
 *
 * @example
 * defineConfig({ plugins: [authHttp({ url: "http://127.0.0.1:8080/auth", secretEnv: "AUTH_KEY" })] })
 */
export const authHttp = definePlugin({
  name: "auth-http",
  options: Options,
  // Longer than the longest request timeout the options allow (1 minute), so that the request
  // answers 454 first.
  timeout: "65 seconds",
  // One request at a time per session, through fetch's pool: up to two connections a session under
  // Deno, as for http-hooks (test/e2e/file-limit-http-hooks.test.ts), and the idle ones it keeps.
  files: () => ({ perSession: 2, held: Fetch.maxIdlePerHost }),
  make
})

export default authHttp
