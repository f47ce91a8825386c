// The inbox's read deadlines: one lazy timer serves successive waits, yet each wait ends at its
// own deadline, neither earlier (a timer armed for an earlier deadline re-arms for the rest) nor
// later (a wait with an earlier deadline than the armed timer replaces it).
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { EventEmitter } from "node:events"
import type * as net from "node:net"
import * as Inbox from "../../../src/runtime/Inbox.ts"

/** Enough of a socket for the inbox: events, pause and resume. */
const fakeSocket = () => {
  const emitter = new EventEmitter() as EventEmitter & { paused: boolean }
  emitter.paused = false
  return Object.assign(emitter, {
    pause: () => void (emitter.paused = true),
    resume: () => void (emitter.paused = false),
    isPaused: () => emitter.paused
  }) as unknown as net.Socket & EventEmitter
}

const make = () => {
  const socket = fakeSocket()
  const inbox = Inbox.make(() => socket, 1024)
  inbox.attach(socket)
  return { socket, inbox }
}

describe("Inbox deadlines", () => {
  it.live("times out at the deadline, not before, after a timer armed for an earlier one", () =>
    Effect.gen(function*() {
      const { inbox, socket } = make()
      // A first wait arms the timer for +50 ms and is answered by data at once.
      const first = inbox.next(Inbox.now() + 50, false)
      setTimeout(() => socket.emit("data", Buffer.from("a")), 5)
      expect(yield* first).toBeInstanceOf(Uint8Array)
      // The next wait is longer: the timer fires at +50 ms and must re-arm, not time out.
      const start = Inbox.now()
      expect(yield* inbox.next(start + 200, false)).toBe("timeout")
      expect(Inbox.now() - start).toBeGreaterThanOrEqual(190)
      inbox.end()
    }))

  it.live("times out at an earlier deadline than the one the timer is armed for", () =>
    Effect.gen(function*() {
      const { inbox, socket } = make()
      const first = inbox.next(Inbox.now() + 5_000, false)
      setTimeout(() => socket.emit("data", Buffer.from("a")), 5)
      yield* first
      const start = Inbox.now()
      expect(yield* inbox.next(start + 60, false)).toBe("timeout")
      const took = Inbox.now() - start
      expect(took).toBeGreaterThanOrEqual(55)
      expect(took).toBeLessThan(1_000)
      inbox.end()
    }))

  it.live("gives a queued chunk whatever the time, and eof once the socket ended", () =>
    Effect.gen(function*() {
      const { inbox, socket } = make()
      socket.emit("data", Buffer.from("late"))
      expect(yield* inbox.next(Inbox.now() - 1_000, false)).toEqual(Buffer.from("late"))
      socket.emit("end")
      expect(yield* inbox.next(Inbox.now() + 5_000, false)).toBe("eof")
    }))
})

describe("Inbox wake-ups", () => {
  it.live("a wakeable wait begun after `wake` ends at once with woken (a queued chunk first); a wait that is not wakeable is not woken", () =>
    Effect.gen(function*() {
      const { inbox, socket } = make()
      inbox.wake()
      socket.emit("data", Buffer.from("queued"))
      expect(yield* inbox.next(Inbox.now() + 5_000, true)).toEqual(Buffer.from("queued"))
      expect(yield* inbox.next(Inbox.now() + 5_000, true)).toBe("woken")
      const woken = yield* Effect.async<Inbox.Next>((resume) => inbox.await(Inbox.now() + 5_000, true, (next) => resume(Effect.succeed(next))))
      expect(woken).toBe("woken")
      expect(yield* inbox.next(Inbox.now() + 30, false)).toBe("timeout")
      inbox.end()
    }))
})
