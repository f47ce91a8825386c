/**
 * Client-side connections (TCP, implicit TLS, unix sockets) for the relay transports, with a
 * client STARTTLS upgrade that verifies the upstream's certificate. Like `Socket.ts`, this is
 * one of the few files that touch `node:net` and `node:tls`; Bun, Deno and Node share it.
 *
 * @example
 * const socket = yield* Connect.connect({ host: "127.0.0.1", port: 25 }, { timeout: "30 seconds" })
 * yield* socket.write("EHLO me\r\n")
 * const chunk = yield* socket.read
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as net from "node:net"
import * as tls from "node:tls"
import * as Inbox from "./Inbox.ts"

export class ConnectError extends Data.TaggedError("ConnectError")<{
  readonly reason: "Refused" | "Timeout" | "Tls" | "Closed"
  readonly message: string
}> {}

export type Endpoint =
  | { readonly host: string; readonly port: number }
  | { readonly path: string }

export interface TlsOptions {
  /** SNI and the name the certificate must carry; default the endpoint's host. */
  readonly servername?: string | undefined
  /** PEM CA certificate(s) trusted instead of the system roots. */
  readonly ca?: string | undefined
  readonly rejectUnauthorized: boolean
}

export interface ConnectOptions {
  /** Implicit TLS from the first byte (smtps). */
  readonly tls?: TlsOptions | undefined
  /** Bound on TCP connect plus the TLS handshake. */
  readonly timeout: Duration.DurationInput
}

export interface TlsInfo {
  /** The certificate chain verified against the trusted CAs and the expected name. */
  readonly authorized: boolean
  readonly protocol: string
  readonly cipher: string
}

export interface ClientSocket {
  /** The next chunk from the peer; `undefined` once it closed or the socket failed. */
  readonly read: Effect.Effect<Uint8Array | undefined>
  /** Like `read`, or `"timeout"` when nothing came within `timeoutMs`. */
  readonly readWithin: (timeoutMs: number) => Effect.Effect<Uint8Array | undefined | "timeout">
  /** Like `write`, failing with `"timeout"` when the kernel did not take the bytes within `timeoutMs`. */
  readonly writeWithin: (data: string | Uint8Array, timeoutMs: number) => Effect.Effect<void, ConnectError | "timeout">
  /** Writes and waits until the kernel took the bytes; fails when the connection is gone. */
  readonly write: (data: string | Uint8Array) => Effect.Effect<void, ConnectError>
  /** Client-side TLS handshake on the same connection (STARTTLS). */
  readonly upgradeTls: (options: TlsOptions) => Effect.Effect<TlsInfo, ConnectError>
  readonly tls: () => TlsInfo | undefined
  /** True while the peer has neither closed nor sent anything unasked (a pooled session is then stale). */
  readonly idle: () => boolean
  /** Half-closes after pending writes, then destroys; bounded. */
  readonly close: Effect.Effect<void>
  readonly description: string
}

/** Bytes buffered from the peer before the socket is paused. */
const highWaterMark = 256 * 1024

const describe = (endpoint: Endpoint): string =>
  "path" in endpoint ? endpoint.path : `${endpoint.host.includes(":") ? `[${endpoint.host}]` : endpoint.host}:${endpoint.port}`

/** SNI must be a host name: an IP literal is only checked against the certificate, never sent. */
const tlsConnectOptions = (options: TlsOptions, host: string | undefined, socket?: net.Socket): tls.ConnectionOptions => {
  const name = options.servername ?? host ?? "localhost"
  return {
    ...(socket !== undefined ? { socket } : {}),
    ...(net.isIP(name) === 0 ? { servername: name } : {}),
    host: name,
    rejectUnauthorized: options.rejectUnauthorized,
    minVersion: "TLSv1.2",
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
    // Node checks the name against `host` here; the explicit check keeps IP literals working.
    checkServerIdentity: (_: string, cert) => tls.checkServerIdentity(name, cert)
  }
}

const tlsInfo = (secure: tls.TLSSocket): TlsInfo => {
  const cipher = secure.getCipher()
  return {
    authorized: secure.authorized,
    protocol: secure.getProtocol() ?? "TLS",
    cipher: cipher?.standardName ?? cipher?.name ?? "unknown"
  }
}

const wrap = (raw: net.Socket, endpoint: Endpoint, initialTls: TlsInfo | undefined): ClientSocket => {
  let socket: net.Socket = raw
  const inbox = Inbox.make(() => socket, highWaterMark)
  let secured = initialTls
  inbox.attach(raw)

  // The inbox's one lazy timer: the relay's per-command deadlines sit on the hot path.
  const readWithin = (timeoutMs: number): Effect.Effect<Uint8Array | undefined | "timeout"> =>
    // Never woken: the client side does not wait `wakeable`.
    Effect.map(Effect.suspend(() => inbox.next(Inbox.now() + timeoutMs, false)), (chunk) => (chunk === "eof" ? undefined : chunk === "woken" ? "timeout" : chunk))

  // Commands and small messages are taken by the kernel during `write` (nothing left in
  // `writableLength`): no timer and no wait then. Only a backlog waits, bounded by the timer.
  const writeWithin = (data: string | Uint8Array, timeoutMs: number): Effect.Effect<void, ConnectError | "timeout"> =>
    Effect.suspend(() => {
      const s = socket
      const closed = () => new ConnectError({ reason: "Closed", message: `connection to ${describe(endpoint)} closed` })
      if (inbox.ended() || s.destroyed || !s.writable) return Effect.fail(closed())
      let result: Effect.Effect<void, ConnectError> | undefined
      let wake: ((r: Effect.Effect<void, ConnectError>) => void) | undefined
      s.write(data, (error) => {
        result = error ? Effect.fail(closed()) : Effect.void
        wake?.(result)
      })
      if (result !== undefined) return result
      if (s.writableLength === 0) return Effect.void
      return Effect.async<void, ConnectError | "timeout">((resume) => {
        if (result !== undefined) return resume(result)
        const timer = setTimeout(() => {
          wake = undefined
          resume(Effect.fail("timeout" as const))
        }, Math.max(0, timeoutMs))
        wake = (r) => {
          clearTimeout(timer)
          resume(r)
        }
        return Effect.sync(() => {
          clearTimeout(timer)
          wake = undefined
        })
      })
    })

  const write = (data: string | Uint8Array): Effect.Effect<void, ConnectError> =>
    Effect.async<void, ConnectError>((resume) => {
      const s = socket
      const closed = () => new ConnectError({ reason: "Closed", message: `connection to ${describe(endpoint)} closed` })
      if (inbox.ended() || s.destroyed || !s.writable) return resume(Effect.fail(closed()))
      s.write(data, (error) => resume(error ? Effect.fail(closed()) : Effect.void))
    })

  const upgradeTls = (options: TlsOptions): Effect.Effect<TlsInfo, ConnectError> =>
    Effect.async<TlsInfo, ConnectError>((resume) => {
      // Whatever the server sent before the handshake was plaintext and must not be read as a reply.
      inbox.drain()
      inbox.detach(raw)
      const host = "host" in endpoint ? endpoint.host : undefined
      const secure = tls.connect(tlsConnectOptions(options, host, raw))
      const fail = (error: Error) => {
        secure.off("secureConnect", ok)
        inbox.end()
        secure.destroy()
        raw.destroy()
        resume(Effect.fail(new ConnectError({ reason: "Tls", message: `TLS with ${describe(endpoint)} failed: ${error.message}` })))
      }
      const ok = () => {
        secure.off("error", fail)
        secured = tlsInfo(secure)
        socket = secure
        inbox.attach(secure)
        secure.on("error", () => {})
        resume(Effect.succeed(secured))
      }
      secure.once("secureConnect", ok)
      secure.once("error", fail)
      return Effect.sync(() => {
        secure.off("secureConnect", ok)
        secure.off("error", fail)
        secure.destroy()
        raw.destroy()
      })
    })

  const close = Effect.async<void>((resume) => {
    const s = socket
    if (s.destroyed) return resume(Effect.void)
    const timer = setTimeout(() => {
      s.destroy()
      resume(Effect.void)
    }, 2000)
    s.end(() => {
      clearTimeout(timer)
      s.destroy()
      resume(Effect.void)
    })
  })

  return {
    read: inbox.read,
    readWithin,
    write,
    writeWithin,
    upgradeTls,
    tls: () => secured,
    idle: () => !inbox.ended() && inbox.empty() && !socket.destroyed,
    close,
    description: describe(endpoint)
  }
}

/** Opens the connection (and the implicit TLS handshake); bounded by `options.timeout`. */
const open = (endpoint: Endpoint, options: ConnectOptions): Effect.Effect<ClientSocket, ConnectError> =>
  Effect.async<ClientSocket, ConnectError>((resume) => {
    const where = describe(endpoint)
    const tlsOptions = options.tls
    const host = "host" in endpoint ? endpoint.host : undefined
    const socket: net.Socket = tlsOptions === undefined
      ? net.connect("path" in endpoint ? { path: endpoint.path } : { host: endpoint.host, port: endpoint.port })
      : tls.connect({
        ...tlsConnectOptions(tlsOptions, host),
        ...("path" in endpoint ? { path: endpoint.path } : { port: endpoint.port }),
        ...(host !== undefined ? { host } : {})
      })
    const onError = (error: Error) => {
      socket.destroy()
      // System call failures (refused, unreachable, no such socket) carry `syscall`; TLS failures do not.
      const reason = tlsOptions !== undefined && !("syscall" in error) ? "Tls" : "Refused"
      resume(Effect.fail(new ConnectError({ reason, message: `cannot connect to ${where}: ${error.message}` })))
    }
    const onConnect = () => {
      socket.off("error", onError)
      // Swallowed here: read sees the close, write fails.
      socket.on("error", () => {})
      if ("setNoDelay" in socket && "host" in endpoint) socket.setNoDelay(true)
      resume(Effect.succeed(wrap(socket, endpoint, socket instanceof tls.TLSSocket ? tlsInfo(socket) : undefined)))
    }
    socket.once("error", onError)
    socket.once(tlsOptions === undefined ? "connect" : "secureConnect", onConnect)
    return Effect.sync(() => {
      socket.off("error", onError)
      socket.destroy()
    })
  }).pipe(
    Effect.timeoutFail({
      duration: options.timeout,
      onTimeout: () =>
        new ConnectError({
          reason: "Timeout",
          message: `cannot connect to ${describe(endpoint)}: no answer within ${Duration.format(Duration.decode(options.timeout))}`
        })
    })
  )

/** A connection closed when the scope closes. */
export const connect = (endpoint: Endpoint, options: ConnectOptions): Effect.Effect<ClientSocket, ConnectError, Scope.Scope> =>
  Effect.acquireRelease(open(endpoint, options), (socket) => socket.close)
