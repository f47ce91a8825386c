/**
 * The admin HTTP listener (`serve --admin HOST:PORT`, off by default): `GET /metrics` in the
 * Prometheus text format, `GET /healthz` (200 while the process serves HTTP at all) and
 * `GET /readyz` (200 when every readiness probe passes, else 503 with the failing ones). With a
 * `token`, every path answers 401 unless the request carries `Authorization: Bearer <token>`
 * (compared in constant time); without one, bind it to loopback or a private network (the bridge
 * warns at start-up when it is not loopback).
 *
 * @example
 * const admin = yield* Admin.make({ host: "127.0.0.1", port: 9100, ready: Readiness.run(probes), beforeScrape: Effect.void })
 * admin.port // the bound port (useful with port 0)
 */
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type * as Scope from "effect/Scope"
import { createHash, timingSafeEqual } from "node:crypto"
import * as HttpServer from "../runtime/HttpServer.ts"
import * as Cidr from "../util/Cidr.ts"
import * as Metrics from "../observability/Metrics.ts"
import * as Prometheus from "../observability/Prometheus.ts"
import type * as Readiness from "./Readiness.ts"

export class AdminError extends Data.TaggedError("AdminError")<{
  readonly reason: "Listen"
  readonly message: string
}> {}

export interface Options {
  readonly host: string
  readonly port: number
  readonly ready: Effect.Effect<Readiness.Report>
  /** Runs before each scrape: refreshes gauges that are read rather than counted (spool depth). */
  readonly beforeScrape: Effect.Effect<void>
  /** When set, every request needs `Authorization: Bearer <token>`. */
  readonly token?: string | undefined
}

export interface Admin {
  readonly host: string
  readonly port: number
}

interface Response {
  readonly status: number
  readonly type: string
  readonly body: string
}

const textType = "text/plain; charset=utf-8"

// Digests of equal length, so that neither the comparison's time nor an early length check tells
// a guesser how much of the token was right.
const digest = (s: string): Buffer => createHash("sha256").update(s).digest()

const authorized = (expected: Buffer, header: string | undefined): boolean => {
  const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header)
  return m !== null && timingSafeEqual(digest(m[1]!), expected)
}

const loopback = [Cidr.parse("127.0.0.0/8")!, Cidr.parse("::1/128")!]

/**
 * The start-up warning for a listener others may reach (`0.0.0.0`, `::`, a public or private
 * address), or undefined on loopback.
 */
export const exposureWarning = (host: string, token: boolean): string | undefined => {
  if (host.toLowerCase() === "localhost" || Cidr.matchAny(loopback, host)) return undefined
  const shown = host.includes(":") ? `[${host}]` : host
  return token
    ? `admin listener on ${shown} is not loopback: reachable by others, who need the bearer token`
    : `admin listener on ${shown} is not loopback and has no token: anyone who reaches it reads /metrics and /readyz; ` +
      `bind it to 127.0.0.1 or set adminTokenFile (--admin-token-file) or SMTP_BRIDGE_ADMIN_TOKEN`
}

const route = (options: Options, method: string, path: string): Effect.Effect<Response> => {
  if (method !== "GET" && method !== "HEAD") return Effect.succeed({ status: 405, type: textType, body: "method not allowed\n" })
  switch (path) {
    case "/metrics":
      return Effect.zipRight(
        options.beforeScrape,
        Effect.map(Metric.snapshot, (snapshot) => ({
          status: 200,
          type: Prometheus.contentType,
          body: Prometheus.format(snapshot, { prefix: Metrics.prefix })
        }))
      )
    case "/healthz":
      return Effect.succeed({ status: 200, type: textType, body: "ok\n" })
    case "/readyz":
      return Effect.map(options.ready, (report) => ({
        status: report.ready ? 200 : 503,
        type: textType,
        body: report.checks.map((c) => `${c.ok ? "ok" : c.advisory === true ? "down" : "FAIL"} ${c.name}${c.detail === undefined ? "" : `: ${c.detail}`}${!c.ok && c.advisory === true ? " (not counted: the spool accepts mail meanwhile)" : ""}\n`).join("") ||
          "ok\n"
      }))
    default:
      return Effect.succeed({ status: 404, type: textType, body: "not found: try /metrics, /healthz or /readyz\n" })
  }
}

/**
 * The request target's path, or undefined when it is no URL at all: `GET //[ HTTP/1.1` made the
 * node:http listener this replaced throw from its request handler, an uncaught exception.
 */
const pathOf = (target: string): string | undefined => {
  try {
    return new URL(target, "http://admin").pathname
  } catch {
    return undefined
  }
}

const respond = (r: Response, headers: Readonly<Record<string, string>> = {}) =>
  HttpServerResponse.text(r.body, { status: r.status, contentType: r.type, headers: { "cache-control": "no-store", ...headers } })

const unauthorized = respond(
  { status: 401, type: textType, body: "unauthorized: send Authorization: Bearer <token>\n" },
  { "www-authenticate": `Bearer realm="smtp-bridge admin"` }
)

/** Listens until the scope closes. */
export const make = (options: Options): Effect.Effect<Admin, AdminError, Scope.Scope> =>
  Effect.gen(function*() {
    yield* Metrics.register
    const expected = options.token === undefined ? undefined : digest(options.token)
    const app = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      if (expected !== undefined && !authorized(expected, request.headers["authorization"])) return unauthorized
      const path = pathOf(request.url)
      if (path === undefined) return respond({ status: 400, type: textType, body: "bad request: unparseable request target\n" })
      return respond(yield* route(options, request.method, path))
    }).pipe(
      Effect.catchAllCause((cause) =>
        Effect.succeed(respond({ status: 500, type: textType, body: `internal error: ${String(Cause.squash(cause))}\n` }))
      )
    )
    const server = yield* HttpServer.make({ host: options.host, port: options.port, keepAliveTimeoutMs: 5_000 }).pipe(
      Effect.mapError((e) => new AdminError({ reason: "Listen", message: `admin listener ${options.host}:${options.port}: ${listenCause(e.cause)}` }))
    )
    // Scrapes are not traced: a span per Prometheus poll would drown the mail in a trace backend.
    yield* server.serve(app).pipe(HttpMiddleware.withTracerDisabledWhenEffect(() => true))
    const address = server.address
    return { host: options.host, port: address._tag === "TcpAddress" ? address.port : options.port }
  })

const listenCause = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))
