/**
 * The UDP stub resolver against real sockets on loopback: an answer counts only when it comes
 * from the server's address AND port, with the question's id. A forger on another loopback
 * address (127.0.0.2) that learned the port and the id is ignored.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Dgram from "node:dgram"
import * as Udp from "../../../src/dns/Udp.ts"

/** An answer to `query` with one A record 192.0.2.<last>: the question echoed, QR set. */
const answerA = (query: Uint8Array, last: number): Uint8Array => {
  const question = query.slice(0, query.byteLength - 11) // without the OPT record
  const rr = new Uint8Array([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, last])
  const out = new Uint8Array(question.byteLength + rr.byteLength)
  out.set(question)
  out.set(rr, question.byteLength)
  const v = new DataView(out.buffer)
  v.setUint16(2, 0x8180)
  v.setUint16(6, 1)
  v.setUint16(10, 0)
  return out
}

const bind = (address: string, port: number): Promise<Dgram.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Dgram.createSocket("udp4")
    socket.once("error", reject)
    socket.bind(port, address, () => resolve(socket))
  })

/**
 * The real server on 127.0.0.1 hands each query to a forger bound to the same port on 127.0.0.2,
 * which answers at once with the right id; the real server answers itself only if `honest`.
 */
const servers = async (honest: boolean) => {
  const real = await bind("127.0.0.1", 0)
  const port = real.address().port
  const forger = await bind("127.0.0.2", port)
  real.on("message", (query: Buffer, from: Dgram.RemoteInfo) => {
    forger.send(answerA(query, 66), from.port, from.address)
    if (honest) setTimeout(() => real.send(answerA(query, 1), from.port, from.address), 50)
  })
  return { port, close: () => { real.close(); forger.close() } }
}

describe("UDP stub resolver", () => {
  it.live("ignores an answer with the right port and id from another address (127.0.0.2) and times out", () =>
    Effect.gen(function*() {
      const s = yield* Effect.promise(() => servers(false))
      try {
        const lookup = Udp.lookup({ servers: [{ host: "127.0.0.1", port: s.port }], timeoutMs: 500, attempts: 1 })
        const error = yield* Effect.flip(lookup("spoof.test", "A"))
        expect(error.code).toBe("ETIMEOUT")
      } finally {
        s.close()
      }
    }))

  it.live("takes the real server's answer that arrives after the forged one", () =>
    Effect.gen(function*() {
      const s = yield* Effect.promise(() => servers(true))
      try {
        const lookup = Udp.lookup({ servers: [{ host: "127.0.0.1", port: s.port }], timeoutMs: 2000, attempts: 1 })
        expect(yield* lookup("spoof.test", "A")).toEqual({ _tag: "Records", records: [{ type: "A", value: "192.0.2.1" }], ttl: 60 })
      } finally {
        s.close()
      }
    }))

  it.live("checks the address of a server given by name against the address it was sent to", () =>
    Effect.gen(function*() {
      const s = yield* Effect.promise(() => servers(true))
      try {
        const lookup = Udp.lookup({ servers: [{ host: "localhost", port: s.port }], timeoutMs: 2000, attempts: 1 })
        expect(yield* lookup("spoof.test", "A")).toMatchObject({ records: [{ type: "A", value: "192.0.2.1" }] })
      } finally {
        s.close()
      }
    }))
})
