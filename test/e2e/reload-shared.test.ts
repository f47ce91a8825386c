// Transports kept by a reload are shared by the generations that use them, and closed with the last
// of those (Bridge.ts, `Held`). Attacked here with sessions on some generations and not others,
// failed reloads between the shared ones, a message in the middle of DATA across every reload,
// and a stop at the end. A relay's pool is seen closing from its upstream, a real smtp-sink: the
// pooled session says QUIT.
//
//   gen 1 (relay A)  C1: DATA / S: 354 / C1: half the message ...
//   gen 2 (relay A, shared)   no session
//   reload refused (a plugin's setup fails)
//   gen 3 (relay A, shared)   C3: EHLO
//   reload refused (the TLS files cannot be read)
//   gen 4 (relay B, rebuilt)  C4: EHLO
//   C3: a message / S: 250, relayed by A;     C3: QUIT   (A stays open: gen 1 uses it)
//   C1: ... the rest / S: 250, relayed by A;  C1: QUIT   (A closes: QUIT to A)
//   C4: a message / S: 250, relayed by B;     stop       (B closes: QUIT to B)
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Resolve from "../../src/config/Resolve.ts"
import { definePlugin, Verdict } from "../../src/index.ts"
import { startBridge } from "../support/bridge.ts"
import { until } from "../support/eventually.ts"
import { type Sink, startSink } from "../support/sink.ts"
import { connect } from "../support/SmtpClient.ts"
import type { Client } from "../support/SmtpClient.ts"

/** A plugin that logs its release with its generation's tag; `failing` makes its setup fail. */
const generation = (tag: string, released: Array<string>, failing = false) =>
  definePlugin({
    name: "generation",
    setup: failing
      ? Effect.fail(new Error(`generation ${tag} cannot start`))
      : Effect.as(Effect.addFinalizer(() => Effect.sync(() => void released.push(tag))), {
        helo: ({ name }: { readonly name: string }) => Effect.succeed(name === "which.test" ? Verdict.reject(tag) : Verdict.Continue)
      })
  })

const transaction = async (c: Client, subject: string): Promise<void> => {
  expect(await c.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
  expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
  expect(await c.command("DATA")).toMatch(/^354 /)
  expect(await c.command(`Subject: ${subject}\r\n\r\n${subject}\r\n.`)).toMatch(/^250 2\.0\.0 /)
}

const session = async (port: number): Promise<Client> => {
  const c = await connect(port)
  expect(await c.read()).toMatch(/^220 /)
  expect(await c.command("EHLO client.test")).toMatch(/^250[ -]/)
  return c
}

describe("transports shared across reloads", () => {
  it("closes a shared relay after the last generation that used it (sessions on 1 and 3, not 2; failed reloads between), once, and the rebuilt one at stop", async () => {
    const a: Sink = await startSink()
    const b: Sink = await startSink()
    const released: Array<string> = []
    const input = (tag: string, sink: Sink, extra: { readonly failing?: boolean; readonly tls?: { readonly cert: string; readonly key: string } } = {}) => ({
      trust: ["127.0.0.0/8"],
      relay: `smtp://127.0.0.1:${sink.port}`,
      plugins: [generation(tag, released, extra.failing === true)],
      ...(extra.tls === undefined ? {} : { tls: extra.tls })
    })
    const bridge = await startBridge(input("one", a))
    const configOf = (tag: string, sink: Sink, extra: Parameters<typeof input>[2] = {}) =>
      Effect.runPromise(Resolve.resolve({ listen: ["127.0.0.1:0"], hostname: "bridge.test", maildir: bridge.maildir, ...input(tag, sink, extra) }, "test"))
    const reload = async (tag: string, sink: Sink, extra: Parameters<typeof input>[2] = {}) =>
      Effect.runPromiseExit(bridge.running.reload(await configOf(tag, sink, extra)))
    const clients: Array<Client> = []
    try {
      const c1 = await session(bridge.port)
      clients.push(c1)
      expect(await c1.command("MAIL FROM:<alice@example.com>")).toBe("250 2.1.0 Ok")
      expect(await c1.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c1.command("DATA")).toMatch(/^354 /)
      c1.send("Subject: generation one\r\n\r\nfirst half\r\n")
      const relayA = bridge.running.transports

      expect((await reload("two", a))._tag).toBe("Success")
      expect(bridge.running.transports).toBe(relayA)
      expect((await reload("broken", a, { failing: true }))._tag).toBe("Failure")
      expect((await reload("three", a))._tag).toBe("Success")
      expect(bridge.running.transports).toBe(relayA)
      // Generation 2 had no session: released when 3 replaced it, the relay still in use by 1 and 3.
      await until("generation two released", () => released.includes("two"))
      const c3 = await session(bridge.port)
      clients.push(c3)
      expect(await c3.command("EHLO which.test")).toMatch(/^550 .*three/)
      const noTls = { cert: "/nonexistent/cert.pem", key: "/nonexistent/key.pem" }
      expect((await reload("unreadable", a, { tls: noTls }))._tag).toBe("Failure")
      expect((await reload("four", b))._tag).toBe("Success")
      expect(bridge.running.transports).not.toBe(relayA)
      const c4 = await session(bridge.port)
      clients.push(c4)
      expect(await c4.command("EHLO which.test")).toMatch(/^550 .*four/)
      // "broken" never started; "unreadable" started and was discarded with its reload.
      expect(released.filter((t) => t !== "unreadable")).toEqual(["two"])

      // Generation 3 ends first: A stays open, generation 1 is still in the middle of its DATA.
      await transaction(c3, "generation three")
      await a.waitFor((n) => n.messages >= 1)
      expect(await c3.command("QUIT")).toMatch(/^221 /)
      await until("generation three released", () => released.includes("three"))
      expect(a.counters().quits).toBe(0)
      // Generation 1 ends its message through A, the last generation that used it: A's pool says QUIT.
      expect(await c1.command("the rest\r\n.")).toMatch(/^250 2\.0\.0 /)
      await a.waitFor((n) => n.messages >= 2)
      expect(a.counters().quits).toBe(0)
      expect(a.messages().map((m) => /Subject: (.*)/.exec(m)?.[1]).sort()).toEqual(["generation one", "generation three"])
      expect(await c1.command("QUIT")).toMatch(/^221 /)
      await until("generation one released", () => released.includes("one"))
      await a.waitFor((n) => n.quits >= 1)

      await transaction(c4, "generation four")
      await b.waitFor((n) => n.messages >= 1)
      expect(b.counters().quits).toBe(0)
      expect(a.counters().messages).toBe(2)
    } finally {
      for (const c of clients) c.close()
      await bridge.stop()
    }
    try {
      // The stop closed B, and A was not closed a second time (its one pooled session said QUIT once).
      await b.waitFor((n) => n.quits >= 1)
      expect(released.filter((t) => t !== "unreadable").sort()).toEqual(["four", "one", "three", "two"])
      expect(a.counters().quits).toBe(1)
      expect(bridge.logs().filter((l) => l.level === "ERROR")).toEqual([])
    } finally {
      await a.stop()
      await b.stop()
    }
  })
})
