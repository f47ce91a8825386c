// Pass-through end to end: a client talks to the bridge, the bridge relays to smtp-sink, and the
// client's reply to the final dot is the upstream's verdict (DESIGN.md section 4).
import { describe, expect, it } from "vitest"
import { startBridge } from "../../support/bridge.ts"
import { dumpedMessage, type SinkOptions, startSink } from "../../support/sink.ts"
import { connect } from "../../support/SmtpClient.ts"

/** C: one transaction to the bridge; returns the reply to the final dot. */
const send = async (port: number, body: string): Promise<string> => {
  const c = await connect(port)
  try {
    await c.read()
    await c.command("EHLO client.test")
    expect(await c.command("MAIL FROM:<alice@example.org>")).toMatch(/^250/)
    expect(await c.command("RCPT TO:<bob@example.net>")).toMatch(/^250/)
    expect(await c.command("DATA")).toMatch(/^354/)
    return await c.command(`${body}.`)
  } finally {
    c.close()
  }
}

const withRelay = async (sinkOptions: SinkOptions | "down", run: (bridgePort: number, sink: Awaited<ReturnType<typeof startSink>> | undefined) => Promise<void>) => {
  const sink = sinkOptions === "down" ? undefined : await startSink(sinkOptions)
  // "down": port 1 — tests only ever bind port 0, so nothing can take it meanwhile (a port that was
  // free a moment ago can be taken by another test file's server that accepts and stays silent).
  const port = sink?.port ?? 1
  const bridge = await startBridge({ relay: `smtp://127.0.0.1:${port}`, trust: ["127.0.0.1/32"] })
  try {
    await run(bridge.port, sink)
  } finally {
    await bridge.stop()
    await sink?.stop()
  }
}

describe("client -> bridge -> smtp-sink", () => {
  it("answers 250 only after the upstream accepted, and the upstream has the message with dots intact", async () => {
    await withRelay({}, async (port, sink) => {
      const reply = await send(port, "Subject: pass\r\n\r\n..dotted\r\nend\r\n")
      expect(reply).toMatch(/^250 2\.0\.0 /)
      const dumps = sink!.messages()
      expect(dumps).toHaveLength(1)
      expect(dumpedMessage(dumps[0]!)).toContain("Subject: pass\n\n.dotted\nend\n")
    })
  })

  it("answers the upstream's 5xx (500 5.3.0) when it refuses the final dot", async () => {
    await withRelay({ reject: { hard: ["."] } }, async (port) => {
      expect(await send(port, "Subject: no\r\n\r\nx\r\n")).toMatch(/^500 5\.3\.0 /)
    })
  })

  it("answers 4xx when the upstream refuses with 4xx at MAIL", async () => {
    await withRelay({ reject: { soft: ["MAIL"] } }, async (port) => {
      expect(await send(port, "Subject: later\r\n\r\nx\r\n")).toMatch(/^450 4\.3\.0 /)
    })
  })

  it("answers 451 4.4.1 when the upstream is down", async () => {
    await withRelay("down", async (port) => {
      expect(await send(port, "Subject: down\r\n\r\nx\r\n")).toMatch(/^451 4\.4\.1 /)
    })
  })

  it("answers 4xx, never 250, when the upstream drops the connection after the final dot", async () => {
    await withRelay({ disconnect: ["."] }, async (port) => {
      expect(await send(port, "Subject: drop\r\n\r\nx\r\n")).toMatch(/^4\d\d /)
    })
  })
})
