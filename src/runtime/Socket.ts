/**
 * The one place that touches `node:net` and `node:tls`: a connection as an Effect-friendly
 * object with backpressured reads, batched writes and an in-place STARTTLS upgrade.
 * Bun, Deno and Node all run this same code; any runtime difference belongs here.
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as net from "node:net"
import * as tls from "node:tls"
import * as Inbox from "./Inbox.ts"

export class SocketError extends Data.TaggedError("SocketError")<{
  readonly reason: "Closed" | "Tls" | "Write" | "Listen"
  readonly message: string
}> {}

/** Bytes buffered from the peer before the socket is paused. */
const highWaterMark = 256 * 1024
/** How long a closed session's socket keeps reading, at most, for the client to close too. */
const lingerMs = 2000
const ignore = () => {}

export interface TlsState {
  readonly protocol: string
  readonly cipher: string
}

export interface SmtpSocket {
  /**
   * The next chunk, or why there is none: the peer closed (`eof`), nothing came before `until`
   * (a `now()` time: `timeout`), or `wake` was called while waiting with `wakeable` (`woken`).
   */
  readonly next: (until: number, wakeable: boolean) => Effect.Effect<Uint8Array | "eof" | "timeout" | "woken">
  /**
   * What `next` would give, handed to `done` once, with no fiber waiting: an idle session holds only
   * this callback until its client sends something (or the wait times out, or is woken).
   */
  readonly await: (until: number, wakeable: boolean, done: (next: Next) => void) => void
  /**
   * Ends a `wakeable` wait or handshake in progress, and every later one at once: a shutdown's drain
   * wakes each socket once, and must not be missed by a wait that begins just after it.
   */
  readonly wake: () => void
  /**
   * Writes and waits until the kernel took it (or the socket is gone); no wait when it took it at
   * once. A peer that does not take it within the write timeout (it does not read, so its receive
   * window stays shut) is cut off: the connection is destroyed, unread input dropped, and the next
   * read says `eof`.
   */
  readonly write: (data: string | Uint8Array) => Effect.Effect<void>
  /** Whether the write timeout cut the peer off. */
  readonly stalled: () => boolean
  /** Drops whatever the peer sent that was not read yet (plaintext pipelined after STARTTLS). */
  readonly discardInput: () => void
  /** Gives bytes back: the next `read` returns them first (what a PROXY header parser did not use). */
  readonly unread: (bytes: Uint8Array) => void
  /**
   * Runs a server-side TLS handshake on the same connection. Buffered input is dropped (after
   * STARTTLS it was plaintext that must never be read as a command) unless `keepBuffered` says it
   * is the start of the handshake (implicit TLS behind a PROXY header; after STARTTLS, once the
   * plaintext sent before the 220 was dropped with `discardInput`). A `wakeable` handshake fails
   * when `wake` is called (or was): a client that never finishes one must not hold a shutdown.
   */
  readonly upgradeTls: (context: tls.SecureContext, options?: UpgradeOptions) => Effect.Effect<void, SocketError>
  readonly tls: () => TlsState | undefined
  /** Half-closes after pending writes, then destroys. */
  readonly close: Effect.Effect<void>
  /**
   * Closes once pending writes are with the kernel, without lingering for the peer: for a
   * connection refused before its greeting, whose client (if it follows RFC 5321) has sent
   * nothing, so the reply is not lost to a reset. A flood of refused connections then holds no
   * descriptor past its reply.
   */
  readonly closeNow: Effect.Effect<void>
  readonly remoteAddress: string
  readonly remotePort: number
  readonly localAddress: string
  readonly localPort: number
}

export type SecureContext = tls.SecureContext

export interface UpgradeOptions {
  readonly keepBuffered?: boolean
  readonly wakeable?: boolean
}

/** A chunk, or why there is none (see `next`). */
export type Next = Inbox.Next

export const secureContext = (options: { readonly cert: string; readonly key: string }): tls.SecureContext =>
  tls.createSecureContext({ cert: options.cert, key: options.key, minVersion: "TLSv1.2" })

const normaliseAddress = (address: string | undefined): string =>
  address === undefined ? "" : address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address

/** The clock of `next`'s deadlines. */
export const now = Inbox.now

export interface WrapOptions {
  /** How long a write may wait for the peer to take it before the connection is cut off. */
  readonly writeTimeoutMs: number
}

// A class rather than closures: every session holds one for as long as it is open (an idle one
// kept 13 closures, their scope and the close Effect, ~0.7 KB on Bun); the methods are shared.
class Wrapped implements SmtpSocket {
  private socket: net.Socket
  private readonly raw: net.Socket
  private readonly inbox: Inbox.Inbox
  private secured: TlsState | undefined = undefined
  private isStalled = false
  // Fails the `wakeable` handshake in progress.
  private abandon: (() => void) | undefined = undefined
  private readonly writeTimeoutMs: number
  readonly remoteAddress: string
  readonly remotePort: number
  readonly localAddress: string
  readonly localPort: number

  constructor(raw: net.Socket, options: WrapOptions) {
    this.raw = raw
    this.socket = raw
    this.writeTimeoutMs = options.writeTimeoutMs
    this.inbox = Inbox.make(this.current, highWaterMark)
    this.remoteAddress = normaliseAddress(raw.remoteAddress)
    this.remotePort = raw.remotePort ?? 0
    this.localAddress = normaliseAddress(raw.localAddress)
    this.localPort = raw.localPort ?? 0
    raw.setNoDelay(true)
    this.inbox.attach(raw)
  }

  private readonly current = (): net.Socket => this.socket

  next(until: number, wakeable: boolean): Effect.Effect<Next> {
    return this.inbox.next(until, wakeable)
  }
  await(until: number, wakeable: boolean, done: (next: Next) => void): void {
    this.inbox.await(until, wakeable, done)
  }
  wake(): void {
    this.inbox.wake()
    this.abandon?.()
  }
  stalled(): boolean {
    return this.isStalled
  }
  unread(bytes: Uint8Array): void {
    this.inbox.unread(bytes)
  }
  discardInput(): void {
    this.inbox.drain()
  }
  tls(): TlsState | undefined {
    return this.secured
  }

  // A client that does not read: nothing it sent after this point may be acted upon (its replies
  // could never reach it), and the session must see the end of the stream at once.
  private cutOff(): void {
    this.isStalled = true
    this.inbox.drain()
    this.inbox.end()
    this.socket.destroy()
  }

  // A reply is small: the kernel takes it during `write` on every runtime (nothing is left in
  // `writableLength`), and then there is nothing to wait for. Only a backlog waits for the
  // callback, and then with a timer: without one a client that never reads held its session (and
  // the replies queued for it) for ever.
  write(data: string | Uint8Array): Effect.Effect<void> {
    return Effect.suspend(() => {
      const s = this.socket
      if (this.isStalled || s.destroyed || !s.writable) return Effect.void
      let written = false
      let wake: (() => void) | undefined
      s.write(data, () => {
        written = true
        wake?.()
      })
      if (written || s.writableLength === 0) return Effect.void
      return Effect.async<void>((resume) => {
        if (written) return resume(Effect.void)
        const timer = setTimeout(() => {
          wake = undefined
          this.cutOff()
          resume(Effect.void)
        }, this.writeTimeoutMs)
        wake = () => {
          clearTimeout(timer)
          resume(Effect.void)
        }
        return Effect.sync(() => {
          clearTimeout(timer)
          wake = undefined
        })
      })
    })
  }

  upgradeTls(context: tls.SecureContext, options: UpgradeOptions = {}): Effect.Effect<void, SocketError> {
    const { raw, inbox } = this
    const wakeable = options.wakeable === true
    return Effect.async<void, SocketError>((resume) => {
      if (wakeable && inbox.woken()) return resume(Effect.fail(new SocketError({ reason: "Tls", message: "TLS handshake not begun: shutting down" })))
      // Anything the client sent after STARTTLS was plaintext: it must never be read as a command.
      const pending = inbox.drain()
      const buffered = options.keepBuffered === true && pending.length > 0 ? Buffer.concat(pending) : undefined
      inbox.detach(raw)
      // Paused first: unshifted onto a flowing socket with no "data" listener left, the bytes
      // (a ClientHello that came in the same packet as a PROXY header) are emitted to nobody.
      if (buffered !== undefined) {
        raw.pause()
        raw.unshift(buffered)
      }
      const secure = new tls.TLSSocket(raw, { isServer: true, secureContext: context })
      const fail = (error: Error) => {
        this.abandon = undefined
        secure.off("secure", ok)
        secure.off("error", fail)
        secure.off("close", closed)
        // A late error from the dying socket must not become an uncaught exception.
        secure.on("error", () => {})
        inbox.end()
        secure.destroy()
        resume(Effect.fail(new SocketError({ reason: "Tls", message: `TLS handshake failed: ${error.message}` })))
      }
      // Deno ends and closes the TLS socket without an "error" when the peer leaves mid-handshake.
      const closed = () => fail(new Error("connection closed during the handshake"))
      const ok = () => {
        this.abandon = undefined
        secure.off("error", fail)
        secure.off("close", closed)
        const cipher = secure.getCipher()
        this.secured = { protocol: secure.getProtocol() ?? "TLS", cipher: cipher?.standardName ?? cipher?.name ?? "unknown" }
        this.socket = secure
        inbox.attach(secure)
        if (raw.isPaused()) raw.resume()
        resume(Effect.void)
      }
      secure.once("secure", ok)
      secure.once("error", fail)
      secure.once("close", closed)
      if (wakeable) this.abandon = () => fail(new Error("shutting down"))
      return Effect.sync(() => {
        this.abandon = undefined
        secure.off("secure", ok)
        secure.off("error", fail)
        secure.off("close", closed)
        secure.destroy()
      })
    })
  }

  // A lingering close: after our last reply and FIN, whatever the client still sends is read and
  // dropped until it closes too (or `lingerMs` passes). Destroying a socket with unread input
  // makes the kernel answer with a reset, which can destroy that last reply before the client
  // reads it (a 421 to a client still pipelining or streaming a line). The session does not wait
  // for the lingering: it ends once the reply and FIN are with the kernel.
  get close(): Effect.Effect<void> {
    return this.ending(true)
  }

  get closeNow(): Effect.Effect<void> {
    return this.ending(false)
  }

  private ending(linger: boolean): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      const s = this.socket
      // Also stops the inbox's read timer, which would otherwise outlive the session.
      this.inbox.end()
      if (s.destroyed) return resume(Effect.void)
      this.inbox.detach(s)
      s.on("error", ignore)
      // Not waited for longer than this: a peer that neither reads nor closes (for `closeNow`,
      // one that never opened its window to the few bytes of a refusal).
      const timer = setTimeout(() => s.destroy(), lingerMs)
      let done = false
      const finish = () => {
        if (done) return
        done = true
        resume(Effect.void)
      }
      s.once("close", () => {
        clearTimeout(timer)
        finish()
      })
      // Done once the reply and FIN are with the kernel, as a lingering close is: a refusal by a
      // session holds a session slot until then, and waiting for "close" too (16-37 ms under Bun)
      // let a flood from one address fill every slot, refusing all other addresses.
      if (!linger) {
        return void s.end(() => {
          s.destroy()
          finish()
        })
      }
      s.on("data", ignore)
      if (s.isPaused()) s.resume()
      s.once("end", () => s.destroy())
      s.end(finish)
    })
  }
}

export const wrap = (raw: net.Socket, options: WrapOptions): SmtpSocket => new Wrapped(raw, options)

export interface Listening {
  readonly host: string
  readonly port: number
  readonly close: Effect.Effect<void>
}

/** Binds a TCP listener; each accepted connection is handed to `onConnection` synchronously. */
export const listen = (
  host: string,
  port: number,
  onConnection: (socket: net.Socket) => void
): Effect.Effect<Listening, SocketError> =>
  Effect.async<Listening, SocketError>((resume) => {
    const server = net.createServer({ noDelay: true, pauseOnConnect: false }, onConnection)
    const onError = (error: Error) =>
      resume(Effect.fail(new SocketError({ reason: "Listen", message: `cannot listen on ${host}:${port}: ${error.message}` })))
    server.once("error", onError)
    server.listen({ host, port, exclusive: true }, () => {
      server.off("error", onError)
      server.on("error", () => {})
      const address = server.address()
      const bound = typeof address === "object" && address !== null ? address.port : port
      resume(Effect.succeed({
        host,
        port: bound,
        // Stops accepting only; connections already open are drained by their own fibers.
        close: Effect.sync(() => void server.close())
      }))
    })
  })
