/**
 * HTTP webhook transport: POSTs each message with its envelope, signed with HMAC-SHA256 over
 * the timestamp and the body, with an idempotency key that stays the same when a delivery is
 * retried, so the receiver can drop duplicates.
 *
 * A message that spilled to disk is never held whole: the signature is computed in a first pass
 * over its file and the body streamed (chunked) in a second (see WebhookBody.ts).
 *
 * Replies: 2xx → delivered; 408, 429, 5xx, network errors and timeouts → transient (4xx to the
 * client); any other status → permanent (5xx).
 *
 * Redirects are never followed: a 307/308 would re-send the body, the signature and the
 * configured headers to wherever `Location` points, and a 301/302/303 would turn the POST into a
 * bodiless GET whose 200 looks like a delivery. Any 3xx (and the status-0 "opaqueredirect"
 * answer a spec-following fetch gives for `redirect: "manual"`) is a transient failure, logged
 * with the status and the redacted Location, so that the spool or the client retries once the
 * configuration is fixed.
 *
 * @example
 * const hook = yield* Webhook.make({ name: "api", url: "https://api.example.com/inbound", secret: "s3cret" })
 */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { createHash, createHmac } from "node:crypto"
import { formatPath } from "../protocol/Address.ts"
import * as Reply from "../protocol/Reply.ts"
import * as Fetch from "../runtime/Fetch.ts"
import * as Redact from "../util/Redact.ts"
import { type OutgoingMessage, type Transport, TransportError } from "./Transport.ts"
import * as WebhookBody from "./WebhookBody.ts"
import { sign } from "./WebhookSign.ts"

export interface WebhookOptions {
  readonly name?: string
  readonly url: string
  /** HMAC-SHA256 key; without it requests are unsigned. */
  readonly secret?: string | undefined
  /** `raw`: the message as `message/rfc822` with the envelope in headers; `json`: one JSON document. */
  readonly format?: "raw" | "json"
  readonly timeout?: Duration.DurationInput
  /** Extra request headers (e.g. an Authorization header). */
  readonly headers?: Readonly<Record<string, string>>
}

export { sign }

/** `sign` over a body that is read as a stream (a first pass over the re-readable content). */
const signStream = <E>(secret: string, timestamp: string, body: Stream.Stream<Uint8Array, E>): Effect.Effect<string, E> =>
  Effect.map(
    Stream.runFold(body, createHmac("sha256", secret).update(`${timestamp}.`), (hmac, chunk) => hmac.update(chunk)),
    (hmac) => hmac.digest("hex")
  )

/** Stable across retries of the same message to the same recipients of this transport. */
export const idempotencyKey = (name: string, message: OutgoingMessage): string =>
  createHash("sha256")
    .update(`${name}\n${message.id}\n${message.envelope.recipients.map((r) => r.mailbox.address).join(",")}`)
    .digest("hex")
    .slice(0, 32)

/** Asks fetch for the 3xx itself instead of following it (Bun, Deno and Node all honour it). */
const noRedirects: globalThis.RequestInit = { redirect: "manual" }

/** Header values must be one line of visible ASCII. */
const headerSafe = (s: string): string => s.replace(/[^\x20-\x7e]/g, (c) => encodeURIComponent(c))

/**
 * The platform's own error messages end with the full request URL, and Deno's fetch errors repeat
 * it ("error sending request for url (...)"): a token in the webhook's path or query would reach
 * the logs. The message is rebuilt around the redacted URL instead.
 */
const httpError = (reason: string, cause: unknown, url: string): string => {
  const shown = Redact.url(url)
  let detail = cause instanceof Error ? cause.message : cause === undefined ? "" : String(cause)
  const forms = [url]
  try {
    forms.push(new URL(url).href)
  } catch {
    // Not parseable: the raw form is all there is to hide.
  }
  for (const form of forms) detail = detail.split(form).join(shown)
  return `POST ${shown}: ${reason} error${detail === "" ? "" : `: ${detail}`}`
}

/** A relative Location is shown against the configured URL, so the log names the full target. */
const resolveLocation = (location: string, base: string): string => {
  try {
    return new URL(location, base).href
  } catch {
    return location
  }
}

export const make = (options: WebhookOptions): Effect.Effect<Transport> =>
  Effect.gen(function*() {
    const name = options.name ?? "webhook"
    const format = options.format ?? "raw"
    const timeout = Duration.decode(options.timeout ?? Duration.seconds(30))
    // Through the bounded pool (Deno's own fetch keeps every idle connection it ever opened).
    const client = yield* Effect.provide(
      HttpClient.HttpClient,
      Layer.provideMerge(FetchHttpClient.layer, Layer.succeed(FetchHttpClient.Fetch, Fetch.boundedFetch as typeof fetch))
    )
    const fail = (reason: TransportError["reason"], message: string, reply?: Reply.Reply) =>
      new TransportError({ transport: name, reason, message, reply })

    const deliver = (message: OutgoingMessage) =>
      Effect.gen(function*() {
        // RFC 8689: a REQUIRETLS message may only leave over TLS.
        if (message.envelope.mailParams.requireTls === true && !/^https:/i.test(options.url)) {
          return yield* Effect.fail(fail("Rejected", "REQUIRETLS message and a plain-HTTP webhook", Reply.make(550, "5.7.30", "REQUIRETLS support required: the webhook is not HTTPS")))
        }
        const timestamp = String(Math.floor(Date.now() / 1000))
        const headers: Record<string, string> = {
          ...options.headers,
          "idempotency-key": idempotencyKey(name, message),
          "x-smtp-bridge-id": message.id,
          "x-smtp-bridge-timestamp": timestamp,
          "x-smtp-bridge-mail-from": headerSafe(formatPath(message.envelope.mailFrom)),
          "x-smtp-bridge-rcpt-to": headerSafe(message.envelope.recipients.map((r) => formatPath(r.mailbox)).join(", ")),
          "x-smtp-bridge-client": headerSafe(message.session.remoteAddress)
        }
        const contentType = format === "json" ? "application/json" : "message/rfc822"
        // A small message goes as one buffer (with a Content-Length); a larger one is read twice
        // from its file (the signature, then the body), so the bridge never holds it whole.
        const whole = yield* Effect.mapError(WebhookBody.small(message, format), (e) => fail("Storage", e.message))
        if (options.secret !== undefined) {
          const signature = whole !== undefined
            ? sign(options.secret, timestamp, whole)
            : yield* Effect.mapError(signStream(options.secret, timestamp, WebhookBody.stream(message, format)), (e) => fail("Storage", e.message))
          headers["x-smtp-bridge-signature"] = `v1=${signature}`
        }
        const request = HttpClientRequest.post(options.url).pipe(
          HttpClientRequest.setHeaders(headers),
          whole !== undefined
            ? HttpClientRequest.bodyUint8Array(whole, contentType)
            : HttpClientRequest.bodyStream(WebhookBody.stream(message, format), { contentType })
        )
        const response = yield* client.execute(request).pipe(
          Effect.scoped,
          Effect.provideService(FetchHttpClient.RequestInit, noRedirects),
          // A fetch in flight may not stop at once: answer the client on time regardless. If the
          // receiver still took it, the retry carries the same idempotency key.
          Effect.disconnect,
          Effect.timeoutFail({ duration: timeout, onTimeout: () => fail("Timeout", `no answer within ${Duration.format(timeout)}`) }),
          Effect.catchTag("RequestError", (e) => Effect.fail(fail("Unreachable", httpError(e.reason, e.cause, options.url)))),
          Effect.catchTag("ResponseError", (e) => Effect.fail(fail("Protocol", httpError(e.reason, e.cause, options.url))))
        )
        const status = response.status
        if (status >= 200 && status < 300) {
          return {
            recipients: message.envelope.recipients.map((recipient) => ({
              recipient,
              reply: Reply.make(250, "2.0.0", `${name}: accepted (HTTP ${status})`)
            }))
          }
        }
        if ((status >= 300 && status < 400) || status === 0) {
          const location = response.headers["location"]
          const shown = location === undefined ? "(none)" : Redact.url(resolveLocation(location, options.url))
          yield* Effect.logWarning(`${name}: webhook answered HTTP ${status} with Location ${shown}; redirects are never followed`).pipe(
            Effect.annotateLogs({ transport: name, status, location: shown })
          )
          return yield* Effect.fail(fail(
            "Rejected",
            `HTTP ${status} redirect to ${shown} (not followed)`,
            Reply.make(451, "4.4.0", `webhook answered HTTP ${status} (a redirect, not followed), try again later`)
          ))
        }
        const transient = status === 408 || status === 429 || status >= 500
        return yield* Effect.fail(fail(
          "Rejected",
          `HTTP ${status}`,
          transient
            ? Reply.make(451, "4.4.0", `webhook answered HTTP ${status}, try again later`)
            : Reply.make(554, "5.6.0", `webhook refused the message (HTTP ${status})`)
        ))
      })

    return { name, upstream: origin(options.url), deliver }
  })

/** Scheme, host and port only: a webhook URL's path, query or userinfo may hold a token. */
const origin = (url: string): string | undefined => {
  try {
    const u = new URL(url)
    const port = u.port !== "" ? u.port : u.protocol === "https:" ? "443" : "80"
    return `${u.protocol}//${u.hostname}:${port}`
  } catch {
    return undefined
  }
}
