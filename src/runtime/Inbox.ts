/**
 * Buffered, backpressured reads from a `node:net` socket, shared by the server-side and the
 * client-side wrappers: chunks queue up to a high-water mark (then the socket pauses), and a
 * reader waits until an absolute deadline with one plain timer rather than a forked timeout fiber.
 *
 * The timer is lazy: it stays armed across reads and is only replaced when a wait's deadline is
 * earlier than the one it is armed for. When it fires before the current deadline it re-arms for
 * the rest. A stream of chunks (a message body, a command line dribbled byte by byte) then costs
 * one deadline comparison per read instead of a setTimeout/clearTimeout pair.
 */
import * as Effect from "effect/Effect"
import type * as net from "node:net"

export type Next = Uint8Array | "eof" | "timeout" | "woken"

export interface Inbox {
  /** Starts (or, after a TLS upgrade, resumes) reading from `socket`. */
  readonly attach: (socket: net.Socket) => void
  readonly detach: (socket: net.Socket) => void
  /** The next chunk; `undefined` once the peer closed or the socket failed. */
  readonly read: Effect.Effect<Uint8Array | undefined>
  /**
   * The next chunk, or `timeout` once `until` (a `now()` time) has passed without one; `woken` when
   * `wake` is called during a `wakeable` wait. A chunk already queued is returned whatever the time.
   */
  readonly next: (until: number, wakeable: boolean) => Effect.Effect<Next>
  /**
   * What `next` would give, handed to `done` once, with no fiber waiting for it: a session that
   * waits for its client's next command holds only this callback. `done` is called at once when a
   * chunk is queued or the stream is over. One wait at a time, `read`'s and `next`'s included.
   */
  readonly await: (until: number, wakeable: boolean, done: (next: Next) => void) => void
  /**
   * Ends a `wakeable` wait in progress, and every later one at once (once no chunk is queued): a
   * drain wakes each socket once, and a fiber may yield between its look at the drain and its wait.
   */
  readonly wake: () => void
  /** Whether `wake` was called. */
  readonly woken: () => boolean
  /** Puts bytes back in front (what a header parser did not use). */
  readonly unread: (bytes: Uint8Array) => void
  /** Drops and returns everything buffered. */
  readonly drain: () => ReadonlyArray<Uint8Array>
  readonly ended: () => boolean
  /** Marks the stream over (a failed handshake) and wakes a waiting reader. */
  readonly end: () => void
  readonly empty: () => boolean
}

/** The clock of every read deadline: monotonic, so a wall-clock step neither ends nor stretches a wait. */
export const now = (): number => performance.now()

const resumeWith = (resume: (effect: Effect.Effect<Next>) => void) => (next: Next) => resume(Effect.succeed(next))
const fire = (inbox: Store) => inbox.fire()

// A class rather than closures: every session has one for as long as it is open, and an idle one
// kept 12 closures, their scope and two Effects (~1 KB on Bun); the prototype's methods are shared.
class Store implements Inbox {
  private readonly queue: Array<Uint8Array> = []
  private queued = 0
  private closed = false
  // The one wait in progress (`read`'s, `next`'s or `await`'s), its deadline and whether `wake` ends it.
  private waiter: ((next: Next) => void) | undefined = undefined
  private wakeable = false
  private wokenUp = false
  private until = Infinity
  // The lazy timer: when it fires (`armedAt`).
  private timer: ReturnType<typeof setTimeout> | undefined = undefined
  private armedAt = 0
  private readonly current: () => net.Socket
  private readonly highWaterMark: number

  constructor(current: () => net.Socket, highWaterMark: number) {
    this.current = current
    this.highWaterMark = highWaterMark
  }

  // Socket listeners, so bound to this inbox.
  private readonly onData = (chunk: Buffer): void => {
    if (this.waiter !== undefined) return this.settle(chunk)
    this.queue.push(chunk)
    this.queued += chunk.byteLength
    if (this.queued > this.highWaterMark) this.current().pause()
  }
  private readonly onEnd = (): void => {
    this.closed = true
    this.disarm()
    this.settle("eof")
  }

  private arm(deadline: number): void {
    if (this.timer !== undefined) {
      if (this.armedAt <= deadline) return
      clearTimeout(this.timer)
    }
    this.armedAt = deadline
    this.timer = setTimeout(fire, Math.max(0, deadline - now()), this)
  }
  fire(): void {
    this.timer = undefined
    if (this.waiter === undefined || this.until === Infinity) return
    if (now() >= this.until) this.settle("timeout")
    else this.arm(this.until)
  }
  private disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }
  private settle(next: Next): void {
    const w = this.waiter
    this.waiter = undefined
    w?.(next)
  }
  private shift(): Uint8Array | undefined {
    const chunk = this.queue.shift()
    if (chunk !== undefined) {
      this.queued -= chunk.byteLength
      const socket = this.current()
      if (this.queued <= this.highWaterMark && socket.isPaused()) socket.resume()
    }
    return chunk
  }
  private readonly cancel = (): void => {
    this.waiter = undefined
  }

  attach(s: net.Socket): void {
    s.on("data", this.onData)
    s.on("end", this.onEnd)
    s.on("close", this.onEnd)
    s.on("error", this.onEnd)
  }
  detach(s: net.Socket): void {
    s.off("data", this.onData)
    s.off("end", this.onEnd)
    s.off("close", this.onEnd)
    s.off("error", this.onEnd)
  }
  await(deadline: number, wakeable: boolean, done: (next: Next) => void): void {
    const chunk = this.shift()
    if (chunk !== undefined) return done(chunk)
    if (this.closed) return done("eof")
    if (wakeable && this.wokenUp) return done("woken")
    this.until = deadline
    this.wakeable = wakeable
    this.waiter = done
    if (deadline !== Infinity) this.arm(deadline)
  }
  get read(): Effect.Effect<Uint8Array | undefined> {
    return Effect.map(this.next(Infinity, false), (next) => (typeof next === "string" ? undefined : next))
  }
  next(deadline: number, wakeable: boolean): Effect.Effect<Next> {
    return Effect.suspend(() => {
      const chunk = this.shift()
      if (chunk !== undefined) return Effect.succeed(chunk)
      if (this.closed) return Effect.succeed("eof" as const)
      return Effect.async<Next>((resume) => {
        this.await(deadline, wakeable, resumeWith(resume))
        return Effect.sync(this.cancel)
      })
    })
  }
  wake(): void {
    this.wokenUp = true
    if (this.wakeable) this.settle("woken")
  }
  woken(): boolean {
    return this.wokenUp
  }
  unread(bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return
    this.queue.unshift(bytes)
    this.queued += bytes.byteLength
  }
  drain(): ReadonlyArray<Uint8Array> {
    const all = this.queue.splice(0)
    this.queued = 0
    return all
  }
  ended(): boolean {
    return this.closed
  }
  end(): void {
    this.onEnd()
  }
  empty(): boolean {
    return this.queue.length === 0
  }
}

export const make = (current: () => net.Socket, highWaterMark: number): Inbox => new Store(current, highWaterMark)
