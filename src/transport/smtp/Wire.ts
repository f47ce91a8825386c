/**
 * Commands and replies over one upstream connection, each bounded by a timeout. Any I/O error,
 * timeout or garbled reply marks the connection broken: the pool then discards it rather than
 * risk reading a late reply as the answer to the next command. Timeouts are best given decoded
 * (`Duration`): a text such as "5 minutes" is parsed again on every call.
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import type { ClientSocket } from "../../runtime/Connect.ts"
import type * as Reply from "../../protocol/Reply.ts"
import { TransportError } from "../Transport.ts"
import * as Replies from "./Replies.ts"

export interface Wire {
  readonly socket: ClientSocket
  /** Writes without waiting for a reply (pipelining, message content). */
  readonly send: (data: string | Uint8Array, timeout: Duration.DurationInput, stage: string) => Effect.Effect<void, TransportError>
  /** The next reply. */
  readonly reply: (timeout: Duration.DurationInput, stage: string) => Effect.Effect<Reply.Reply, TransportError>
  /** Sends one command line (CRLF added) and reads its reply. */
  readonly command: (line: string, timeout: Duration.DurationInput, stage: string) => Effect.Effect<Reply.Reply, TransportError>
  /**
   * Set after an I/O error, a timeout or a reply that is not SMTP; callers mark it on interruption
   * too (once per exchange of commands rather than on every one).
   */
  readonly broken: () => boolean
  readonly markBroken: () => void
  /** Forgets buffered replies: after STARTTLS, anything sent before the handshake is void. */
  readonly clear: () => void
}

export const make = (transport: string, socket: ClientSocket): Wire => {
  let reader = Replies.makeReader()
  const ready: Array<Reply.Reply> = []
  let broken = false

  const failure = (reason: TransportError["reason"], message: string) => {
    broken = true
    return new TransportError({ transport, reason, message: `${transport}: upstream ${socket.description} ${message}` })
  }

  const timedOut = (timeout: Duration.DurationInput, stage: string) =>
    failure("Timeout", `did not answer ${stage} within ${Duration.format(Duration.decode(timeout))}`)

  /** Reads until a whole reply is there or the deadline (epoch millis) passes. */
  const readReply = (stage: string, timeout: Duration.DurationInput, deadline: number): Effect.Effect<Reply.Reply, TransportError> =>
    Effect.suspend(() => {
      const next = ready.shift()
      if (next !== undefined) return Effect.succeed(next)
      return Effect.flatMap(socket.readWithin(deadline - Date.now()), (chunk) => {
        if (chunk === "timeout") return Effect.fail(timedOut(timeout, stage))
        if (chunk === undefined) return Effect.fail(failure("Unreachable", `closed the connection at ${stage}`))
        const parsed = reader.feed(chunk)
        if (Either.isLeft(parsed)) return Effect.fail(failure("Protocol", `sent garbage at ${stage}: ${parsed.left}`))
        ready.push(...parsed.right)
        return readReply(stage, timeout, deadline)
      })
    })

  const send = (data: string | Uint8Array, timeout: Duration.DurationInput, stage: string) =>
    Effect.mapError(
      socket.writeWithin(data, Duration.toMillis(timeout)),
      (e) => e === "timeout" ? timedOut(timeout, stage) : failure("Unreachable", `closed the connection at ${stage}`)
    )

  const reply = (timeout: Duration.DurationInput, stage: string) => Effect.suspend(() => readReply(stage, timeout, Date.now() + Duration.toMillis(timeout)))

  return {
    socket,
    send,
    reply,
    command: (line, timeout, stage) => Effect.zipRight(send(`${line}\r\n`, timeout, stage), reply(timeout, stage)),
    broken: () => broken,
    markBroken: () => {
      broken = true
    },
    clear: () => {
      ready.length = 0
      reader = Replies.makeReader()
    }
  }
}
