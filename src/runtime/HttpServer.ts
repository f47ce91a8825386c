/**
 * The HTTP listener behind the admin endpoint: `@effect/platform`'s `HttpServer`, made by
 * `@effect/platform-node` over `node:http`. Bun and Deno run it through their `node:http`
 * compatibility (both tested in test/e2e/admin*.test.ts); `@effect/platform-bun`'s server is
 * `Bun.serve`, which Deno has not, so one implementation serves every runtime.
 *
 * Loaded on first use: a bridge without an admin listener does not pay for the platform's HTTP
 * server (and the WebSocket and HTTP client modules it imports) at start-up.
 *
 * @example
 * const server = yield* HttpServer.make({ host: "127.0.0.1", port: 0, keepAliveTimeoutMs: 5_000 })
 * yield* server.serve(app)
 */
import type { HttpServer, HttpServerError } from "@effect/platform"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as Http from "node:http"

export const make = (options: {
  readonly host: string
  readonly port: number
  /** How long an idle keep-alive connection stays open. */
  readonly keepAliveTimeoutMs: number
}): Effect.Effect<HttpServer.HttpServer, HttpServerError.ServeError, Scope.Scope> =>
  Effect.gen(function*() {
    const NodeHttpServer = yield* Effect.promise(() => import("@effect/platform-node/NodeHttpServer"))
    let server: Http.Server | undefined
    const made = yield* NodeHttpServer.make(() => {
      server = Http.createServer()
      server.keepAliveTimeout = options.keepAliveTimeoutMs
      return server
    }, { host: options.host, port: options.port })
    // Runs before the platform's own `close`, which closes idle connections but waits for busy
    // ones: a client that sent half a request held the shutdown for 8.8 s on Bun (measured in
    // test/e2e/admin.test.ts), up to the headers timeout.
    yield* Effect.addFinalizer(() => Effect.sync(() => server?.closeAllConnections()))
    return made
  })
