/**
 * A small HTTP/1.1 listener for plugins that let a service they call fetch something back (the
 * HTTP hooks' message bodies): one request per connection, no request bodies, a bounded number of
 * connections, a request head of at most `maxHeadBytes` that must arrive within `headTimeoutMs`,
 * responses streamed with backpressure (a peer that stops reading is cut off after
 * `writeTimeoutMs`). Built on the same sockets as the SMTP listener rather than `node:http`, whose
 * limits (header size, connection count, timeouts) Bun and Deno do not all honour; the only
 * request this has to understand is a GET.
 *
 * @example
 * const listener = yield* HttpListener.make({ host: "127.0.0.1", port: 0 }, (request) =>
 *   Effect.succeed(request.path === "/hello" ? { status: 200, body: HttpListener.bytes("hi") } : { status: 404 }))
 * listener.port
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Runtime from "effect/Runtime"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import type * as net from "node:net"
import * as Streams from "../util/Streams.ts"
import * as Socket from "./Socket.ts"

export interface Request {
  /** As sent, in capitals for the usual ones (`GET`, `HEAD`). */
  readonly method: string
  /** The request target (origin form: starts with `/`), undecoded. */
  readonly path: string
  /** Header fields, names in lower case; a repeated field's values joined with ", ". */
  readonly headers: ReadonlyMap<string, string>
  readonly remoteAddress: string
}

export interface Body {
  /** Exactly the bytes `stream` gives: sent as Content-Length. A stream that ends short or fails cuts the connection. */
  readonly size: number
  readonly stream: () => Stream.Stream<Uint8Array, unknown>
  /** When this completes, a transfer still running is cut (the connection is destroyed), even one waiting for a slow reader. */
  readonly until?: Effect.Effect<void>
}

export interface Response {
  readonly status: number
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: Body
}

export interface Options {
  readonly host: string
  /** 0 for any free port. */
  readonly port: number
  /** Connections open at once, past which new ones are closed at once (default 16). */
  readonly maxConnections?: number
  /** Longest request head, request line included (default 8 KiB): past it, 431. */
  readonly maxHeadBytes?: number
  /** Time for the whole request head to arrive (default 5 s): past it, the connection is closed. */
  readonly headTimeoutMs?: number
  /** Time a write may wait for the peer to take it (default 10 s): past it, the connection is cut off. */
  readonly writeTimeoutMs?: number
}

export interface Listener {
  readonly host: string
  readonly port: number
  /** Connections open now. */
  readonly connections: () => number
}

/** A body held in memory. */
export const bytes = (data: string | Uint8Array): Body => {
  const buffer = typeof data === "string" ? new TextEncoder().encode(data) : data
  return { size: buffer.byteLength, stream: () => Stream.succeed(buffer) }
}

const reasons: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable"
}

const HEAD_END = Buffer.from("\r\n\r\n")

type Head = { readonly _tag: "Request"; readonly request: Omit<Request, "remoteAddress"> } | { readonly _tag: "Bad"; readonly status: number }

/**
 * Parses a request head (up to, not including, the blank line). Strict: CRLF line ends, a token
 * method, an origin-form target of visible ASCII, HTTP/1.0 or 1.1, `name: value` fields without
 * folding; a request with a body (Content-Length other than 0, Transfer-Encoding) is refused.
 */
export const parseHead = (head: string): Head => {
  const lines = head.split("\r\n")
  const line = /^([A-Z][A-Z0-9-]{0,15}) (\/[\x21-\x7e]*) HTTP\/1\.[01]$/.exec(lines[0] ?? "")
  if (line === null) return { _tag: "Bad", status: 400 }
  const headers = new Map<string, string>()
  for (const field of lines.slice(1)) {
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n\0]*?)[ \t]*$/.exec(field)
    if (m === null) return { _tag: "Bad", status: 400 }
    const name = m[1]!.toLowerCase()
    const before = headers.get(name)
    headers.set(name, before === undefined ? m[2]! : `${before}, ${m[2]!}`)
  }
  const length = headers.get("content-length")
  if (headers.has("transfer-encoding") || (length !== undefined && length !== "0")) return { _tag: "Bad", status: 400 }
  return { _tag: "Request", request: { method: line[1]!, path: line[2]!, headers } }
}

const headOf = (status: number, headers: Readonly<Record<string, string>>, length: number): string => {
  let text = `HTTP/1.1 ${status} ${reasons[status] ?? "Status"}\r\ncontent-length: ${length}\r\nconnection: close\r\ncache-control: no-store\r\n`
  for (const [name, value] of Object.entries(headers)) text += `${name}: ${value.replace(/[\r\n]/g, " ")}\r\n`
  return text + "\r\n"
}

/** Reads the request head: its text, `"big"` past `max` bytes, `"gone"` when the peer left or time ran out. */
const readHead = (socket: Socket.SmtpSocket, max: number, until: number) =>
  Effect.gen(function*() {
    let received = Buffer.alloc(0)
    while (true) {
      const end = received.indexOf(HEAD_END)
      if (end !== -1) return end > max ? "big" as const : received.subarray(0, end).toString("latin1")
      if (received.byteLength > max + HEAD_END.byteLength) return "big" as const
      const chunk = yield* socket.next(until, false)
      if (typeof chunk === "string") return "gone" as const
      received = Buffer.concat([received, chunk])
    }
  })

const serveOne = (
  raw: net.Socket,
  handle: (request: Request) => Effect.Effect<Response>,
  limits: { readonly maxHeadBytes: number; readonly headTimeoutMs: number; readonly writeTimeoutMs: number }
) =>
  Effect.gen(function*() {
    const socket = Socket.wrap(raw, { writeTimeoutMs: limits.writeTimeoutMs })
    const head = yield* readHead(socket, limits.maxHeadBytes, Socket.now() + limits.headTimeoutMs)
    if (head === "gone") return yield* Effect.sync(() => void raw.destroy())
    const parsed: Head = head === "big" ? { _tag: "Bad", status: 431 } : parseHead(head)
    if (parsed._tag === "Bad") {
      yield* socket.write(headOf(parsed.status, {}, 0))
      return yield* socket.close
    }
    const request = { ...parsed.request, remoteAddress: socket.remoteAddress }
    const response = yield* handle(request).pipe(Effect.catchAllCause(() => Effect.succeed<Response>({ status: 500 })))
    const body = response.body
    yield* socket.write(headOf(response.status, response.headers ?? {}, body?.size ?? 0))
    if (body === undefined || request.method === "HEAD") return yield* socket.close
    let sent = 0
    // One chunk at a time: Stream.runForEachWhile kept every chunk of the body until its end.
    const transfer = Streams.forEachWhile(body.stream(), (chunk) =>
      Effect.gen(function*() {
        if (sent + chunk.byteLength > body.size) return false
        sent += chunk.byteLength
        yield* socket.write(chunk)
        return !socket.stalled()
      }))
    const streamed = yield* (body.until === undefined ? transfer : Effect.raceFirst(transfer, Effect.zipRight(body.until, Effect.fail("cut")))).pipe(Effect.exit)
    // Fewer bytes than announced (a failed or interrupted source, a peer cut off): the peer must
    // see a broken response, never a short one it could take for the whole.
    if (Exit.isFailure(streamed) || sent !== body.size || socket.stalled()) return yield* Effect.sync(() => void raw.destroy())
    yield* socket.close
  }).pipe(Effect.onInterrupt(() => Effect.sync(() => void raw.destroy())))

/**
 * Listens until the scope closes; then it stops accepting and cuts every connection still open.
 * `handle` answers each request; a defect in it gives 500.
 */
export const make = (
  options: Options,
  handle: (request: Request) => Effect.Effect<Response>
): Effect.Effect<Listener, Socket.SocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const runtime = yield* Effect.runtime<never>()
    const run = Runtime.runFork(runtime)
    const limits = {
      maxHeadBytes: options.maxHeadBytes ?? 8 * 1024,
      headTimeoutMs: options.headTimeoutMs ?? 5_000,
      writeTimeoutMs: options.writeTimeoutMs ?? 10_000
    }
    const maxConnections = options.maxConnections ?? 16
    const open = new Set<net.Socket>()
    const fibers = new Set<Fiber.RuntimeFiber<void>>()
    let closed = false
    const listening = yield* Effect.acquireRelease(
      Socket.listen(options.host, options.port, (raw) => {
        raw.on("error", () => {})
        // Counted until the socket is gone, lingering included: the bound is on what the kernel holds.
        if (closed || open.size >= maxConnections) return void raw.destroy()
        open.add(raw)
        raw.once("close", () => open.delete(raw))
        const fiber = run(serveOne(raw, handle, limits))
        fibers.add(fiber)
        fiber.addObserver(() => fibers.delete(fiber))
      }),
      (l) =>
        Effect.gen(function*() {
          closed = true
          yield* l.close
          yield* Fiber.interruptAll([...fibers])
          for (const raw of open) raw.destroy()
        })
    )
    return { host: listening.host, port: listening.port, connections: () => open.size }
  })
