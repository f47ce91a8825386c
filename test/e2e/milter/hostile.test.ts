// The milter plugin against hostile or broken milters (a loopback server written here): a 4 GB
// frame length, garbage, silence, a modification it never negotiated. Each is a failed milter:
// its default action applies (tempfail: 451 4.7.1; accept: the mail goes through without it),
// quickly, without allocating what the milter announced.
//
//   (milter answers the option negotiation with a frame length of 0xFFFFFFFF)
//   C: (connects)
//   S: 451 4.7.1 Service unavailable - try again later
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as net from "node:net"
import { milter } from "../../../plugins/milter/index.ts"
import { startBridge, type TestBridge } from "../../support/bridge.ts"
import { connect } from "../../support/SmtpClient.ts"

type Behaviour = "huge" | "garbage" | "silent" | "silent-eom" | "undeclared" | "progress-then-accept" | "drop-after-mail"

const frame = (cmd: string, data: Uint8Array = new Uint8Array(0)): Buffer => {
  const out = Buffer.alloc(5 + data.byteLength)
  out.writeUInt32BE(1 + data.byteLength, 0)
  out.write(cmd, 4, "latin1")
  out.set(data, 5)
  return out
}

const u32 = (...n: Array<number>): Buffer => {
  const b = Buffer.alloc(4 * n.length)
  n.forEach((v, i) => b.writeUInt32BE(v, i * 4))
  return b
}

/** A milter that speaks the protocol until its behaviour says otherwise. */
const startFake = async (behaviour: Behaviour) => {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on("close", () => sockets.delete(socket))
    socket.on("error", () => undefined)
    let buffered = Buffer.alloc(0)
    socket.on("data", (chunk) => {
      buffered = Buffer.concat([buffered, chunk])
      while (buffered.length >= 5 && buffered.length >= 4 + buffered.readUInt32BE(0)) {
        const length = buffered.readUInt32BE(0)
        const cmd = String.fromCharCode(buffered[4]!)
        buffered = buffered.subarray(4 + length)
        if (cmd === "O") {
          if (behaviour === "huge") socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x4f]))
          else if (behaviour === "garbage") socket.write("HTTP/1.1 400 Bad Request\r\n\r\n")
          else if (behaviour !== "silent") socket.write(frame("O", u32(6, 0, 0)))
          continue
        }
        if (cmd === "D" || cmd === "A" || cmd === "Q") continue
        if (cmd === "M" && behaviour === "drop-after-mail") {
          socket.destroy()
          return
        }
        if (cmd === "E") {
          if (behaviour === "silent-eom") continue
          if (behaviour === "undeclared") socket.write(frame("h", Buffer.from("X-Sneaky\0yes\0")))
          if (behaviour === "progress-then-accept") {
            socket.write(frame("p"))
            setTimeout(() => socket.writable && socket.write(frame("p")), 300)
            setTimeout(() => socket.writable && socket.write(frame("a")), 600)
            continue
          }
        }
        socket.write(frame("c"))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      })
  }
}

const tempfail = "451 4.7.1 Service unavailable - try again later"

/** C: one message; every reply the bridge gave, in order, until the first refusal. */
const transaction = async (port: number): Promise<ReadonlyArray<string>> => {
  const c = await connect(port)
  const replies: Array<string> = []
  try {
    const greeting = await c.read(10_000)
    replies.push(greeting)
    if (!greeting.startsWith("220")) return replies
    for (const line of ["EHLO client.test", "MAIL FROM:<alice@example.org>", "RCPT TO:<bob@example.net>", "DATA"]) {
      const reply = await c.command(line, 10_000)
      replies.push(reply)
      if (!/^[23]/.test(reply)) return replies
    }
    replies.push(await c.command("Subject: hostile\r\n\r\nbody\r\n.", 10_000))
    return replies
  } finally {
    c.close()
  }
}

const fastOptions = { connectTimeout: "1 second", commandTimeout: "1 second", contentTimeout: "1 second" }

describe.each([
  ["huge", "a frame length of 4 GB"],
  ["garbage", "an HTTP reply instead of a frame"],
  ["silent", "no answer to the option negotiation"]
] as const)("a milter that sends %s (%s)", (behaviour, _what) => {
  let fake: Awaited<ReturnType<typeof startFake>>
  let strict: TestBridge
  let lenient: TestBridge
  beforeAll(async () => {
    fake = await startFake(behaviour)
    const socket = `inet:127.0.0.1:${fake.port}`
    strict = await startBridge({ trust: ["127.0.0.0/8"], plugins: [milter({ milters: [socket], ...fastOptions })] })
    lenient = await startBridge({ trust: ["127.0.0.0/8"], plugins: [milter({ milters: [{ socket, defaultAction: "accept" }], ...fastOptions })] })
  })
  afterAll(async () => {
    await strict?.stop()
    await lenient?.stop()
    await fake?.stop()
  })

  it("with default action tempfail: S: 451 4.7.1 at connect, within the connect timeout", async () => {
    const started = Date.now()
    const replies = await transaction(strict.port)
    expect(replies[0]).toMatch(/^4\d\d 4\.7\.1 Service unavailable - try again later/)
    expect(Date.now() - started).toBeLessThan(5_000)
  })

  it("with default action accept: the message goes through without it: S: 250", async () => {
    const replies = await transaction(lenient.port)
    expect(replies.at(-1)).toMatch(/^250 2\.0\.0 Ok: queued as /)
    expect(lenient.delivered()).toHaveLength(1)
  })
})

describe.each([
  ["silent-eom", "never answers the end of message"],
  ["undeclared", "adds a header it never negotiated"],
  ["drop-after-mail", "closes the connection at MAIL"]
] as const)("a milter that %s (%s)", (behaviour, _what) => {
  let fake: Awaited<ReturnType<typeof startFake>>
  let bridge: TestBridge
  beforeAll(async () => {
    fake = await startFake(behaviour)
    bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [milter({ milters: [`inet:127.0.0.1:${fake.port}`], ...fastOptions })] })
  })
  afterAll(async () => {
    await bridge?.stop()
    await fake?.stop()
  })

  it("fails the transaction with the default action: S: 451 4.7.1, nothing delivered", async () => {
    const replies = await transaction(bridge.port)
    expect(replies.at(-1)).toBe(tempfail)
    expect(bridge.delivered()).toHaveLength(0)
  })
})

describe("a milter that answers the end of message with progress, then accepts after 600 ms", () => {
  it("waits through each progress answer (command timeout 1 s each): S: 250", async () => {
    const fake = await startFake("progress-then-accept")
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [milter({ milters: [`inet:127.0.0.1:${fake.port}`], contentTimeout: "450 millis" })] })
    try {
      const replies = await transaction(bridge.port)
      expect(replies.at(-1)).toMatch(/^250 2\.0\.0 /)
    } finally {
      await bridge.stop()
      await fake.stop()
    }
  })
})
