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
import { Effect } from "effect"
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
  readonly wake: () => void
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

export const make = (current: () => net.Socket, highWaterMark: number): Inbox => {
  const queue: Array<Uint8Array> = []
  let queued = 0
  let closed = false
  // The one wait in progress (`read`'s, `next`'s or `await`'s), its deadline and whether `wake` ends it.
  let waiter: ((next: Next) => void) | undefined
  let wakeable = false
  let until = Infinity
  // The lazy timer: when it fires (`armedAt`).
  let timer: ReturnType<typeof setTimeout> | undefined
  let armedAt = 0

  const arm = (deadline: number) => {
    if (timer !== undefined) {
      if (armedAt <= deadline) return
      clearTimeout(timer)
    }
    armedAt = deadline
    timer = setTimeout(fire, Math.max(0, deadline - now()))
  }
  const settle = (next: Next) => {
    const w = waiter
    waiter = undefined
    w?.(next)
  }
  const fire = () => {
    timer = undefined
    if (waiter === undefined || until === Infinity) return
    if (now() >= until) settle("timeout")
    else arm(until)
  }
  const disarm = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
  }

  const onData = (chunk: Buffer) => {
    if (waiter !== undefined) return settle(chunk)
    queue.push(chunk)
    queued += chunk.byteLength
    if (queued > highWaterMark) current().pause()
  }
  const onEnd = () => {
    closed = true
    disarm()
    settle("eof")
  }
  const shift = (): Uint8Array | undefined => {
    const chunk = queue.shift()
    if (chunk !== undefined) {
      queued -= chunk.byteLength
      const socket = current()
      if (queued <= highWaterMark && socket.isPaused()) socket.resume()
    }
    return chunk
  }

  const wait = (deadline: number, canWake: boolean, done: (next: Next) => void): void => {
    const chunk = shift()
    if (chunk !== undefined) return done(chunk)
    if (closed) return done("eof")
    until = deadline
    wakeable = canWake
    waiter = done
    if (deadline !== Infinity) arm(deadline)
  }
  const cancel = Effect.sync(() => {
    waiter = undefined
  })

  const read: Effect.Effect<Uint8Array | undefined> = Effect.suspend(() => {
    const chunk = shift()
    if (chunk !== undefined) return Effect.succeed(chunk)
    if (closed) return Effect.succeed(undefined)
    return Effect.async<Uint8Array | undefined>((resume) => {
      wait(Infinity, false, (c) => resume(Effect.succeed(typeof c === "string" ? undefined : c)))
      return cancel
    })
  })

  const next = (deadline: number, canWake: boolean): Effect.Effect<Next> =>
    Effect.suspend(() => {
      const chunk = shift()
      if (chunk !== undefined) return Effect.succeed(chunk)
      if (closed) return Effect.succeed("eof" as const)
      return Effect.async<Next>((resume) => {
        wait(deadline, canWake, (c) => resume(Effect.succeed(c)))
        return cancel
      })
    })

  return {
    attach: (s) => {
      s.on("data", onData)
      s.on("end", onEnd)
      s.on("close", onEnd)
      s.on("error", onEnd)
    },
    detach: (s) => {
      s.off("data", onData)
      s.off("end", onEnd)
      s.off("close", onEnd)
      s.off("error", onEnd)
    },
    read,
    next,
    await: wait,
    wake: () => {
      if (wakeable) settle("woken")
    },
    unread: (bytes) => {
      if (bytes.byteLength === 0) return
      queue.unshift(bytes)
      queued += bytes.byteLength
    },
    drain: () => {
      const all = queue.splice(0)
      queued = 0
      return all
    },
    ended: () => closed,
    end: onEnd,
    empty: () => queue.length === 0
  }
}
