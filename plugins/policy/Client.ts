/**
 * A pooled client of one policy service: a request out, one answer back, on connections that are
 * reused as Postfix's smtpd reuses its policy connection (`smtpd_policy_service_max_idle`,
 * `_max_ttl`). A connection whose exchange failed or was cut in any way is closed, never reused:
 * the next answer read on it could be the previous request's.
 *
 * @example
 * const client = yield* Client.make({ endpoint: { host: "127.0.0.1", port: 10023 }, ... })
 * const answer = yield* client.ask("request=smtpd_access_policy\n...\n\n") // "action=DUNNO\n\n"
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import { Connect, Pool } from "../../src/index.ts"
import type { Endpoint } from "./options.ts"
import * as Protocol from "./Protocol.ts"

export class PolicyError extends Schema.TaggedError<PolicyError>()("PolicyError", {
  reason: Schema.Literal("Unreachable", "Timeout", "Closed", "TooLong", "Busy"),
  message: Schema.String
}) {}

export interface ClientOptions {
  readonly endpoint: Endpoint
  readonly timeout: Duration.Duration
  readonly maxIdle: Duration.Duration
  readonly maxTtl: Duration.Duration
  readonly connections: number
  readonly maxAnswer: number
}

export interface Client {
  /** Sends one request (as `Protocol.encode` makes it) and gives the answer up to its empty line. */
  readonly ask: (request: string) => Effect.Effect<string, PolicyError>
}

interface Connection {
  readonly socket: Connect.ClientSocket
  readonly created: number
  /** Set until an exchange ends cleanly: a connection left in the middle of one is closed. */
  broken: boolean
}

const describe = (endpoint: Endpoint): string => ("path" in endpoint ? `unix:${endpoint.path}` : `inet:${endpoint.host}:${endpoint.port}`)

export const make = (options: ClientOptions): Effect.Effect<Client, never, Scope.Scope> =>
  Effect.gen(function*() {
    const where = describe(options.endpoint)
    const timeoutMs = Duration.toMillis(options.timeout)
    const ttlMs = Duration.toMillis(options.maxTtl)
    const pool = yield* Pool.make<Connection, PolicyError>({
      acquire: Connect.connect(options.endpoint, { timeout: options.timeout }).pipe(
        Effect.map((socket): Connection => ({ socket, created: Date.now(), broken: false })),
        Effect.mapError((e) => new PolicyError({ reason: e.reason === "Timeout" ? "Timeout" : "Unreachable", message: `policy service ${where}: ${e.message}` }))
      ),
      max: options.connections,
      idleTimeout: options.maxIdle,
      acquireTimeout: options.timeout,
      reusable: (c) => !c.broken && c.socket.idle() && Date.now() - c.created < ttlMs,
      onExhausted: () => new PolicyError({ reason: "Busy", message: `policy service ${where}: all ${options.connections} connections busy for ${Duration.format(options.timeout)}` })
    })

    const fail = (reason: PolicyError["reason"], detail: string) => Effect.fail(new PolicyError({ reason, message: `policy service ${where}: ${detail}` }))

    // One deadline for the write and the whole answer: a server that trickles bytes, or answers
    // forever, is cut by time or by size, whichever comes first.
    const exchange = (connection: Connection, request: string, deadline: number): Effect.Effect<string, PolicyError> =>
      Effect.gen(function*() {
        connection.broken = true
        const written = yield* Effect.either(connection.socket.writeWithin(request, Math.max(1, deadline - Date.now())))
        if (written._tag === "Left") return yield* fail(written.left === "timeout" ? "Timeout" : "Closed", "cannot send the request")
        const decoder = new TextDecoder("utf-8", { fatal: false })
        let text = ""
        let bytes = 0
        for (;;) {
          const left = deadline - Date.now()
          if (left <= 0) return yield* fail("Timeout", `no complete answer within ${Duration.format(options.timeout)}`)
          const chunk = yield* connection.socket.readWithin(left)
          if (chunk === "timeout") return yield* fail("Timeout", `no complete answer within ${Duration.format(options.timeout)}`)
          if (chunk === undefined) return yield* fail("Closed", "closed the connection before answering")
          bytes += chunk.byteLength
          if (bytes > options.maxAnswer) return yield* fail("TooLong", `answer longer than ${options.maxAnswer} bytes`)
          text += decoder.decode(chunk, { stream: true })
          const end = Protocol.answerEnd(text)
          if (end !== -1) {
            // Bytes past the empty line answer nothing we asked: the connection is out of step.
            connection.broken = end !== text.length
            return text.slice(0, end)
          }
        }
      })

    const ask = (request: string): Effect.Effect<string, PolicyError> =>
      Effect.suspend(() => {
        const deadline = Date.now() + timeoutMs
        // The pool takes the connection back after every exchange; a failed one is `broken`, so closed.
        const once = (fresh: boolean) =>
          pool.use((connection, reused) => Effect.map(Effect.either(exchange(connection, request, deadline)), (result) => ({ result, reused })), { fresh })
        // A reused connection the server closed while idle fails at once; one retry on a new
        // connection, as Postfix's `smtpd_policy_service_try_limit` (2) does.
        return Effect.flatMap(once(false), ({ result, reused }) =>
          Either.isRight(result) || !reused || result.left.reason !== "Closed" ? result : Effect.flatMap(once(true), (retry) => retry.result))
      })

    return { ask }
  })
