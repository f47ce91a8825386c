/**
 * One connection to Dovecot's auth service, shared by every session: requests are multiplexed by
 * id, the connection is re-opened with exponential backoff when Dovecot goes away (every open
 * request then ends as "unavailable", 454 4.7.0), and memory stays bounded whatever Dovecot
 * sends: lines are cut at `maxLineLength` (the connection is dropped), open requests at
 * `maxPending`, answers to ids nobody waits for are ignored.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { Connect } from "../../src/index.ts"
import type { Options } from "./options.ts"
import * as Protocol from "./Protocol.ts"

/** How a request went: Dovecot's answer, or no answer (not connected, too many requests, lost, timed out). */
export type Outcome = Protocol.Answer | { readonly _tag: "Unavailable"; readonly why: string }

interface Live {
  readonly socket: Connect.ClientSocket
  readonly mechs: ReadonlyArray<Protocol.Mech>
  /** Requests waiting for Dovecot's next answer. */
  readonly waiting: Map<number, Deferred.Deferred<Protocol.Answer | "lost">>
  /** Requests open in Dovecot (waiting, or between two steps of their exchange): bounded by `maxPending`. */
  readonly open: Set<number>
}

export interface Client {
  /** Dovecot's mechanisms while connected; none while not. */
  readonly mechanisms: () => ReadonlyArray<Protocol.Mech>
  /** A new request: its id and Dovecot's first answer. */
  readonly begin: (mechanism: string, client: Protocol.Client, initial: string | undefined) => Effect.Effect<{ readonly id: number; readonly outcome: Outcome }>
  /** The next response of an exchange Dovecot continued (`CONT`). */
  readonly next: (id: number, response: string) => Effect.Effect<Outcome>
  /** Ends an open exchange early (the SMTP client cancelled or left). */
  readonly cancel: (id: number) => Effect.Effect<void>
  readonly description: string
}

/** Mechanisms announced past this many are ignored (a hostile server cannot grow the list). */
const maxMechs = 64

const endpointOf = (options: Options): Connect.Endpoint =>
  options.path !== undefined ? { path: options.path } : { host: options.host!, port: options.port! }

/**
 * CPID names this connection in Dovecot's logs and must be unique among its clients (it drops a
 * connection that reuses a live one's). Several bridges, workers or a reload's new plugin may
 * share a process id, so a random number above any real pid (Linux's pid_max is at most 2^22).
 */
const cpid = (): number => 0x1000000 + Math.floor(Math.random() * 0x7e000000)

/** Starts the connection loop in the current scope (the server's) and gives the client. */
export const make = Effect.fn("auth-dovecot.make")(function*(options: Options) {
  const endpoint = endpointOf(options)
  const description = "path" in endpoint ? `unix:${endpoint.path}` : `${endpoint.host}:${endpoint.port}`
  const timeoutMs = Duration.toMillis(options.timeout)
  let live: Live | undefined
  let nextId = 0
  const newId = (): number => (nextId = nextId >= 0x7fffffff ? 1 : nextId + 1)

  const lose = (l: Live): void => {
    if (live === l) live = undefined
    for (const waiter of l.waiting.values()) Deferred.unsafeDone(waiter, Effect.succeed("lost" as const))
    l.waiting.clear()
    l.open.clear()
  }

  const deliver = (l: Live, line: string): void => {
    const answer = Protocol.parseAnswer(line)
    // Not an answer, or one for a request nobody waits for (timed out, cancelled, forged): ignored.
    if (answer === undefined) return
    const waiter = l.waiting.get(answer.id)
    if (waiter === undefined) return
    l.waiting.delete(answer.id)
    if (answer._tag !== "Cont") l.open.delete(answer.id)
    Deferred.unsafeDone(waiter, Effect.succeed(answer))
  }

  /** Reads Dovecot's handshake up to DONE within `connectTimeout`; gives its mechanisms and the lines after DONE. */
  const handshake = Effect.fnUntraced(function*(socket: Connect.ClientSocket, reader: Protocol.LineReader) {
    const deadline = Date.now() + Duration.toMillis(options.connectTimeout)
    const mechs: Array<Protocol.Mech> = []
    let version = false
    for (;;) {
      const chunk = yield* socket.readWithin(Math.max(1, deadline - Date.now()))
      if (chunk === "timeout") return yield* Effect.fail(`no handshake within ${Duration.format(options.connectTimeout)}`)
      if (chunk === undefined) return yield* Effect.fail("closed during the handshake")
      const lines = reader.push(chunk)
      if (lines === "too-long") return yield* Effect.fail(`a handshake line longer than ${options.maxLineLength} characters`)
      for (let i = 0; i < lines.length; i++) {
        const h = Protocol.parseHandshake(lines[i]!)
        if (h._tag === "Version") {
          if (h.major !== 1) return yield* Effect.fail(`protocol version ${h.major}, not 1`)
          version = true
        } else if (h._tag === "Mech" && mechs.length < maxMechs) mechs.push(h.mech)
        else if (h._tag === "Done") {
          if (!version) return yield* Effect.fail("no VERSION before DONE")
          return { mechs, rest: lines.slice(i + 1) }
        }
      }
    }
  })

  /** One connection, from connect to its loss; true when it got past the handshake. */
  const connection = Effect.scoped(Effect.gen(function*() {
    const socket = yield* Connect.connect(endpoint, { timeout: options.connectTimeout })
    yield* socket.writeWithin(Protocol.hello(cpid()), timeoutMs)
    const reader = new Protocol.LineReader(options.maxLineLength)
    const { mechs, rest } = yield* handshake(socket, reader)
    const l: Live = { socket, mechs, waiting: new Map(), open: new Set() }
    live = l
    yield* Effect.logInfo(`auth-dovecot: connected to ${description}; mechanisms ${mechs.map((m) => m.name).join(" ") || "none"}`)
    for (const line of rest) deliver(l, line)
    const why = yield* Effect.gen(function*() {
      for (;;) {
        const chunk = yield* socket.read
        if (chunk === undefined) return "the connection closed"
        const lines = reader.push(chunk)
        if (lines === "too-long") return `a line longer than ${options.maxLineLength} characters (maxLineLength)`
        for (const line of lines) deliver(l, line)
      }
    }).pipe(Effect.ensuring(Effect.sync(() => lose(l))))
    yield* Effect.logWarning(`auth-dovecot: ${description}: ${why}; reconnecting`)
    return true
  }))

  // Reconnects for the life of the server's scope: at once after a working connection ended
  // (after `backoff`), with a doubling wait after each failed attempt.
  const loop = Effect.gen(function*() {
    let delay = Duration.toMillis(options.backoff)
    let failing = false
    for (;;) {
      const ok = yield* connection.pipe(
        Effect.catchAll((error) => {
          const text = typeof error === "string" ? error : error instanceof Error ? error.message : String(error)
          // One warning when it starts failing, not one per attempt.
          return Effect.as(failing ? Effect.logDebug(`auth-dovecot: ${description}: ${text}`) : Effect.logWarning(`auth-dovecot: cannot use ${description}: ${text}`), false)
        })
      )
      if (ok) {
        failing = false
        delay = Duration.toMillis(options.backoff)
        yield* Effect.sleep(delay)
      } else {
        failing = true
        yield* Effect.sleep(delay)
        delay = Math.min(delay * 2, Duration.toMillis(options.maxBackoff))
      }
    }
  })
  yield* Effect.forkScoped(loop)

  const unavailable = (why: string): Outcome => ({ _tag: "Unavailable", why })

  /** Sends `line` for request `id` and waits for the answer. */
  const send = Effect.fnUntraced(function*(id: number, line: string, fresh: boolean) {
    const l = live
    if (l === undefined) return unavailable(`not connected to ${description}`)
    if (!fresh && !l.open.has(id)) return unavailable("the exchange is no longer open in Dovecot")
    if (fresh && l.open.size >= options.maxPending) return unavailable(`${options.maxPending} requests already wait for Dovecot (maxPending)`)
    const waiter = yield* Deferred.make<Protocol.Answer | "lost">()
    l.waiting.set(id, waiter)
    l.open.add(id)
    const written = yield* Effect.either(l.socket.writeWithin(line, timeoutMs))
    if (written._tag === "Left") {
      l.waiting.delete(id)
      l.open.delete(id)
      return unavailable(`cannot write to ${description}`)
    }
    const answer = yield* Deferred.await(waiter).pipe(Effect.timeout(options.timeout), Effect.option)
    if (Option.isNone(answer)) {
      l.waiting.delete(id)
      l.open.delete(id)
      yield* Effect.ignore(l.socket.writeWithin(Protocol.cancel(id), timeoutMs))
      return unavailable(`no answer within ${Duration.format(options.timeout)}`)
    }
    const a = answer.value
    return a === "lost" ? unavailable(`lost the connection to ${description}`) : a
  })

  const client: Client = {
    description,
    mechanisms: () => live?.mechs ?? [],
    begin: (mechanism, info, initial) => {
      const id = newId()
      return Effect.map(send(id, Protocol.auth(id, mechanism, info, initial), true), (outcome) => ({ id, outcome }))
    },
    next: (id, response) => send(id, Protocol.cont(id, response), false),
    cancel: (id) =>
      Effect.suspend(() => {
        const l = live
        if (l === undefined || !l.open.has(id)) return Effect.void
        l.open.delete(id)
        l.waiting.delete(id)
        return Effect.ignore(l.socket.writeWithin(Protocol.cancel(id), timeoutMs))
      })
  }
  return client
})
