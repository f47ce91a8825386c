/** Scripted transports, entries and waiting helpers shared by the spool specifications. */
import { Effect, Stream } from "effect"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Message from "../../../src/pipeline/Message.ts"
import type { Mailbox, Recipient } from "../../../src/protocol/Envelope.ts"
import * as Reply from "../../../src/protocol/Reply.ts"
import type * as Spool from "../../../src/transport/Spool.ts"
import type { DeliveryReport, OutgoingMessage, Transport, TransportError } from "../../../src/transport/Transport.ts"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export const mailbox = (address: string): Mailbox => {
  const at = address.lastIndexOf("@")
  return { local: address.slice(0, at), domain: address.slice(at + 1), address }
}

export const recipient = (address: string, params: Partial<Recipient["params"]> = {}): Recipient => ({
  mailbox: mailbox(address),
  params: { raw: {}, ...params }
})

export const ok = Reply.make(250, "2.0.0", "Ok")
export const later = Reply.make(451, "4.3.0", "Try again later")
export const unknownUser = Reply.make(550, "5.1.1", "User unknown")

export interface Call {
  readonly id: string
  readonly at: number
  readonly mailFrom: string | null
  readonly recipients: ReadonlyArray<string>
  readonly text: string
  readonly message: OutgoingMessage
}

export interface Scripted {
  readonly transport: Transport
  readonly calls: Array<Call>
}

/**
 * A transport that records each delivery (with the message text it read) and answers per
 * recipient with `answer(address, callNumber)`, or fails the whole delivery when it returns a
 * TransportError.
 */
export const scripted = (
  name: string,
  answer: (address: string, call: number) => Reply.Reply | TransportError = () => ok
): Scripted => {
  const calls: Array<Call> = []
  const transport: Transport = {
    name,
    deliver: (message) =>
      Effect.gen(function*() {
        const bytes = yield* Effect.orDie(Message.collect(message.content()))
        const call = calls.length + 1
        calls.push({
          id: message.id,
          at: Date.now(),
          mailFrom: message.envelope.mailFrom?.address ?? null,
          recipients: message.envelope.recipients.map((r) => r.mailbox.address),
          text: decoder.decode(bytes),
          message
        })
        const replies = message.envelope.recipients.map((r) => ({ recipient: r, reply: answer(r.mailbox.address, call) }))
        const error = replies.find((r) => "_tag" in r.reply)
        if (error !== undefined) return yield* Effect.fail(error.reply as TransportError)
        return { recipients: replies } as DeliveryReport
      })
  }
  return { transport, calls }
}

export const body = "From: alice@example.com\r\nSubject: queued\r\nMessage-ID: <q1@example.com>\r\n\r\nHello from the spool.\r\n"

let counter = 0

export const entry = (
  routes: ReadonlyArray<{ readonly transport: string; readonly recipients: ReadonlyArray<Recipient> }>,
  options: { readonly from?: string | null; readonly ret?: "FULL" | "HDRS"; readonly id?: string } = {}
): Spool.Entry => {
  const bytes = encoder.encode(body)
  counter++
  return {
    id: options.id ?? `T${Date.now().toString(36).toUpperCase()}${counter}`,
    mailFrom: options.from === null ? null : mailbox(options.from ?? "alice@example.com"),
    mailParams: { raw: { RET: options.ret }, ...(options.ret === undefined ? {} : { ret: options.ret }) },
    routes,
    size: bytes.byteLength,
    content: () => Stream.succeed(bytes),
    session: { id: "S1", remoteAddress: "203.0.113.5", helo: { verb: "EHLO", name: "client.test" }, user: "alice", tls: undefined }
  }
}

export const tempDir = Effect.acquireRelease(
  Effect.promise(() => Fs.mkdtemp(Path.join(Os.tmpdir(), "spool-test-"))),
  (dir) => Effect.promise(() => Fs.rm(dir, { recursive: true, force: true }))
)

export const files = (dir: string) =>
  Effect.promise(() => Fs.readdir(dir).then((names) => names.filter((n) => n.endsWith(".json") || n.endsWith(".eml")).sort()))

/** Polls `check` every 20 ms until it holds, for at most `timeoutMs` (real time). */
export const eventually = <A>(effect: Effect.Effect<A>, check: (a: A) => boolean, timeoutMs = 5_000) =>
  Effect.gen(function*() {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const value = yield* effect
      if (check(value)) return value
      if (Date.now() > deadline) return yield* Effect.die(new Error(`condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(value)}`))
      yield* Effect.sleep("20 millis")
    }
  })

/** The `message/delivery-status` part of a DSN, as its field groups. */
export const deliveryStatus = (text: string): Array<Record<string, string>> => {
  const start = text.search(/Content-Type: message\/delivery-status\r\n\r\n/)
  const from = text.indexOf("\r\n\r\n", start) + 4
  const to = text.indexOf("\r\n--", from)
  return text.slice(from, to).split("\r\n\r\n").map((group) => {
    const out: Record<string, string> = {}
    for (const line of group.replace(/\r\n(?=[ \t])/g, "").split("\r\n")) {
      const colon = line.indexOf(":")
      if (colon > 0) out[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
    }
    return out
  })
}
