import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Either, Stream } from "effect"
import * as Notes from "../../../src/pipeline/Notes.ts"
import { mailbox } from "../../../src/protocol/Address.ts"
import type { OutgoingMessage } from "../../../src/transport/Transport.ts"
import * as WebhookBody from "../../../src/transport/WebhookBody.ts"

/** Bytes 0..255 in a pattern that is not a multiple of 3 long, cut into chunks of the given sizes. */
const bytes = (size: number): Uint8Array => Uint8Array.from({ length: size }, (_, i) => (i * 37 + (i >> 8)) & 0xff)

const chunked = (data: Uint8Array, sizes: ReadonlyArray<number>): ReadonlyArray<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let at = 0, i = 0; at < data.byteLength; i++) {
    const n = sizes[i % sizes.length]!
    out.push(data.subarray(at, at + n))
    at += n
  }
  return out
}

const message = (parts: ReadonlyArray<Uint8Array>, size: number, inMemory = false): OutgoingMessage => ({
  id: "TX1",
  envelope: {
    mailFrom: mailbox("alice", "example.com"),
    mailParams: { raw: { BODY: "8BITMIME" } },
    recipients: [{ mailbox: mailbox("bob", "example.net"), params: { raw: {}, notify: ["FAILURE"], orcpt: "rfc822;b\"ob@example.net" } }]
  },
  session: {
    id: "S1", remoteAddress: "127.0.0.1", remotePort: 1, localAddress: "127.0.0.1", localPort: 2,
    hostname: "bridge.test", tls: undefined, helo: { verb: "EHLO", name: "client\u00e9" }, user: "alice@example.com",
    authMechanism: "PLAIN", notes: Notes.make()
  },
  size,
  content: () => Stream.fromIterable(parts),
  inMemory: () => (inMemory ? parts : undefined)
})

/** What the webhook sent before it streamed: JSON.stringify of the whole document. */
const wholeDocument = (m: OutgoingMessage, raw: Uint8Array): string =>
  JSON.stringify({
    id: m.id,
    envelope: {
      mailFrom: m.envelope.mailFrom?.address ?? "",
      recipients: m.envelope.recipients.map((r) => ({ address: r.mailbox.address, notify: r.params.notify, orcpt: r.params.orcpt })),
      params: m.envelope.mailParams.raw
    },
    session: { id: m.session.id, remoteAddress: m.session.remoteAddress, helo: m.session.helo?.name ?? null, user: m.session.user ?? null, tls: null },
    size: raw.byteLength,
    message: Buffer.from(raw).toString("base64")
  })

const run = (s: Stream.Stream<Uint8Array, unknown>) =>
  Effect.map(Stream.runCollect(s), (c) => Buffer.concat(Chunk.toArray(c)).toString("latin1"))

describe("WebhookBody", () => {
  it.effect("streams the same JSON document, byte for byte, as JSON.stringify of the whole, however the content is chunked", () =>
    Effect.gen(function*() {
      for (const size of [0, 1, 2, 3, 4, 10_001, 30_002]) {
        const data = bytes(size)
        for (const sizes of [[1], [2], [3], [7, 1, 64 * 1024], [64 * 1024]]) {
          const m = message(chunked(data, sizes), size)
          expect(yield* run(WebhookBody.stream(m, "json"))).toBe(Buffer.from(wholeDocument(m, data)).toString("latin1"))
        }
      }
    }))

  it.effect("gives a message held in memory, or read from a stream up to 256 KiB, whole: the same bytes as the stream", () =>
    Effect.gen(function*() {
      const data = bytes(100_001)
      for (const held of [true, false]) {
        const m = message(chunked(data, [4096, 5]), data.byteLength, held)
        for (const format of ["raw", "json"] as const) {
          const whole = yield* WebhookBody.small(m, format)
          expect(Buffer.from(whole!).toString("latin1")).toBe(yield* run(WebhookBody.stream(m, format)))
        }
      }
      const large = bytes(WebhookBody.wholeUpTo + 1)
      expect(yield* WebhookBody.small(message([large], large.byteLength), "raw")).toBeUndefined()
      expect((yield* WebhookBody.small(message([large], large.byteLength, true), "raw"))?.byteLength).toBe(large.byteLength)
    }))

  it.effect("fails with a read error when the content does not hold the announced size, instead of sending it", () =>
    Effect.gen(function*() {
      const data = bytes(1000)
      for (const format of ["raw", "json"] as const) {
        for (const size of [999, 1001]) {
          const result = yield* Effect.either(run(WebhookBody.stream(message([data], size), format)))
          expect(Either.isLeft(result) && String((result.left as Error).message)).toBe(`message content has 1000 bytes, ${size} expected`)
        }
      }
    }))
})
