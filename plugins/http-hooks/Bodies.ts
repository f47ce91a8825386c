/**
 * The messages a data hook may fetch while its request is pending (`body: "url"`): each request
 * gets a one-time URL of the plugin's own listener, `/message/<token>` with 256 random bits, that
 * serves the message as the earlier hooks left it, streamed (from the spill file for a large one)
 * with its Content-Length. The first GET takes the URL; once the hook answered (or failed, or
 * timed out) the URL is gone (404) and a transfer still running is cut, so no fetch outlives the
 * hook call that offered it and a reader that never reads holds nothing past the hook's timeout.
 *
 * @example
 * const bodies = yield* Bodies.make({ listen: "127.0.0.1:0", maxConnections: 16, ... })
 * const { url, size } = yield* bodies.offer(ctx.edit.rendered())   // valid until the scope closes
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { randomBytes, timingSafeEqual } from "node:crypto"
import { HttpListener, signRequest } from "../../src/index.ts"
import type { Message } from "../../src/index.ts"

export interface Offered {
  readonly url: string
  readonly size: number
}

export interface Bodies {
  /** A URL for `message`, served until the calling scope closes. */
  readonly offer: (message: { readonly size: number; readonly stream: () => Stream.Stream<Uint8Array, Message.MessageError> }) => Effect.Effect<Offered, never, Scope.Scope>
  /** Offers live now. */
  readonly pending: () => number
  readonly listener: HttpListener.Listener
}

export interface Options {
  readonly host: string
  readonly port: number
  /** Without a trailing slash; default `http://<host>:<port>` of the listener. */
  readonly baseUrl: string | undefined
  readonly maxConnections: number
  /** When set, a fetch must be signed with it: `x-smtp-bridge-signature: v1=<hex HMAC of "<timestamp>.<path>">`. */
  readonly secret: string | undefined
  /** How long a transfer may wait for the peer to read. */
  readonly writeTimeoutMs: number
}

interface Entry {
  readonly size: number
  readonly stream: () => Stream.Stream<Uint8Array, Message.MessageError>
  /** Done when the offer ends: a transfer in progress stops there. */
  readonly revoked: Deferred.Deferred<void>
  taken: boolean
}

const PREFIX = "/message/"
/** A signed fetch's timestamp may be this far from the bridge's clock (the webhook's receivers use 5 minutes too). */
const skewSeconds = 300
const encoder = new TextEncoder()

const text = (status: number, body: string): HttpListener.Response => ({
  status,
  headers: { "content-type": "text/plain; charset=utf-8" },
  body: HttpListener.bytes(body + "\n")
})

const signedBy = (secret: string, request: HttpListener.Request, now: number): boolean => {
  const timestamp = request.headers.get("x-smtp-bridge-timestamp") ?? ""
  const given = /^v1=([0-9a-f]{64})$/.exec(request.headers.get("x-smtp-bridge-signature") ?? "")?.[1]
  if (given === undefined || !/^\d{1,12}$/.test(timestamp) || Math.abs(now - Number(timestamp)) > skewSeconds) return false
  const expected = signRequest(secret, timestamp, encoder.encode(request.path))
  return timingSafeEqual(Buffer.from(given, "hex"), Buffer.from(expected, "hex"))
}

export const make = (options: Options): Effect.Effect<Bodies, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const entries = new Map<string, Entry>()

    const handle = (request: HttpListener.Request): Effect.Effect<HttpListener.Response> =>
      Effect.sync(() => {
        if (request.method !== "GET" && request.method !== "HEAD") {
          return { ...text(405, "only GET and HEAD"), headers: { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" } }
        }
        // Checked before the path is looked up: an unsigned caller learns nothing about which URLs exist.
        if (options.secret !== undefined && !signedBy(options.secret, request, Math.floor(Date.now() / 1000))) return text(403, "not signed")
        // An exact match on the whole target: no decoding, no normalising, so no other path reaches an entry.
        const entry = request.path.startsWith(PREFIX) ? entries.get(request.path.slice(PREFIX.length)) : undefined
        if (entry === undefined || entry.taken) return text(404, "no such message (the hook call it was offered to has ended, or it was fetched)")
        const headers = { "content-type": "message/rfc822" }
        if (request.method === "HEAD") return { status: 200, headers, body: { size: entry.size, stream: () => Stream.empty } }
        entry.taken = true
        return {
          status: 200,
          headers,
          body: { size: entry.size, stream: entry.stream, until: Deferred.await(entry.revoked) }
        }
      })

    const listener = yield* HttpListener.make({
      host: options.host,
      port: options.port,
      maxConnections: options.maxConnections,
      writeTimeoutMs: options.writeTimeoutMs
    }, handle)
    const base = options.baseUrl ?? `http://${listener.host.includes(":") ? `[${listener.host}]` : listener.host}:${listener.port}`
    yield* Effect.logInfo(`http-hooks: message bodies served on ${listener.host}:${listener.port}`)

    const offer: Bodies["offer"] = (message) =>
      Effect.acquireRelease(
        Effect.gen(function*() {
          const token = randomBytes(32).toString("base64url")
          const revoked = yield* Deferred.make<void>()
          entries.set(token, { size: message.size, stream: message.stream, revoked, taken: false })
          return { token, revoked, offered: { url: `${base.replace(/\/+$/, "")}${PREFIX}${token}`, size: message.size } }
        }),
        ({ revoked, token }) =>
          Effect.gen(function*() {
            entries.delete(token)
            yield* Deferred.succeed(revoked, undefined)
          })
      ).pipe(Effect.map(({ offered }) => offered))

    return { offer, pending: () => entries.size, listener }
  })
