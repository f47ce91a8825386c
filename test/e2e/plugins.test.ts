// User plugins from `plugins: [...]` against a real bridge: their verdicts become the replies,
// a hook that fails, dies or overruns its `timeout` is a 451 4.3.0 and the session goes on, a
// data hook edits the header, and connect/Disconnect verdicts close the connection.
//
//   C: RCPT TO:<nobody@example.net>
//   S: 550 5.1.1 No such user here
//   C: RCPT TO:<boom@example.net>
//   S: 451 4.3.0 Temporary failure, please try again later
//   C: NOOP
//   S: 250 2.0.0 Ok
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { definePlugin, Verdict } from "../../src/index.ts"
import type { TestBridge } from "../support/bridge.ts"
import { startBridge, stripTrace } from "../support/bridge.ts"
import type { Client } from "../support/SmtpClient.ts"
import { connect } from "../support/SmtpClient.ts"

const pluginFailure = "451 4.3.0 Temporary failure, please try again later"

const directory = definePlugin({
  name: "directory",
  rcptTo: ({ recipient }) =>
    Effect.succeed(
      recipient.mailbox.local === "nobody"
        ? Verdict.reject("No such user here", { code: 550, enhanced: "5.1.1" })
        : recipient.mailbox.local === "later"
        ? Verdict.defer("Rate limited, try again later", { code: 451, enhanced: "4.7.1" })
        : Verdict.Continue
    )
})

const broken = definePlugin({
  name: "broken",
  rcptTo: ({ recipient }) =>
    recipient.mailbox.local === "boom"
      ? Effect.fail(new Error("lookup failed"))
      : recipient.mailbox.local === "die"
      ? Effect.die(new Error("bug in the plugin"))
      : Effect.succeed(Verdict.Continue)
})

const slow = definePlugin({
  name: "slow",
  timeout: 200,
  rcptTo: ({ recipient }) =>
    recipient.mailbox.local === "slow" ? Effect.as(Effect.sleep("10 seconds"), Verdict.Continue) : Effect.succeed(Verdict.Continue)
})

const headers = definePlugin({
  name: "headers",
  data: ({ addHeader, message, removeHeader }) =>
    Effect.sync(() => {
      addHeader("X-Checked", `yes; ${message.headers.length} fields`)
      removeHeader("X-Internal-Secret")
      return Verdict.Continue
    })
})

const bouncer = definePlugin({
  name: "bouncer",
  helo: ({ name }) => Effect.succeed(name === "spammer.test" ? Verdict.disconnect("Go away", { code: 421, enhanced: "4.7.0" }) : Verdict.Continue),
  mailFrom: ({ from }) =>
    Effect.succeed(from?.local === "flood" ? Verdict.disconnect("Too much mail", { code: 554, enhanced: "5.7.1" }) : Verdict.Continue)
})

describe("user plugins", () => {
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [directory, broken, slow, headers, bouncer] })
  })
  afterAll(() => bridge.stop())

  const inTransaction = async (): Promise<Client> => {
    const c = await connect(bridge.port)
    expect(await c.read()).toMatch(/^220 /)
    expect(await c.command("EHLO client.test")).toMatch(/^250-/)
    expect(await c.command("MAIL FROM:<alice@example.org>")).toBe("250 2.1.0 Ok")
    return c
  }

  it("rejects a recipient with the plugin's 550 5.1.1 and accepts the next", async () => {
    const c = await inTransaction()
    expect(await c.command("RCPT TO:<nobody@example.net>")).toBe("550 5.1.1 No such user here")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    c.close()
  })

  it("defers a recipient with the plugin's 451 4.7.1", async () => {
    const c = await inTransaction()
    expect(await c.command("RCPT TO:<later@example.net>")).toBe("451 4.7.1 Rate limited, try again later")
    c.close()
  })

  it("turns a failing hook into 451 4.3.0 and keeps the connection usable", async () => {
    const c = await inTransaction()
    expect(await c.command("RCPT TO:<boom@example.net>")).toBe(pluginFailure)
    expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    c.close()
  })

  it("turns a hook that dies into 451 4.3.0 and keeps the connection usable", async () => {
    const c = await inTransaction()
    expect(await c.command("RCPT TO:<die@example.net>")).toBe(pluginFailure)
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    expect(await c.command("QUIT")).toMatch(/^221 /)
  })

  it("turns a hook past its 200 ms timeout into 451 4.3.0", async () => {
    const c = await inTransaction()
    expect(await c.command("RCPT TO:<slow@example.net>", 5_000)).toBe(pluginFailure)
    expect(await c.command("RCPT TO:<bob@example.net>")).toBe("250 2.1.5 Ok")
    c.close()
  })

  it("delivers the header a data hook adds, without the one it removes", async () => {
    const c = await inTransaction()
    await c.command("RCPT TO:<bob@example.net>")
    expect(await c.command("DATA")).toMatch(/^354 /)
    c.send("Subject: edited\r\nX-Internal-Secret: 42\r\nFrom: <alice@example.org>\r\n\r\nbody\r\n.\r\n")
    expect(await c.read()).toMatch(/^250 2\.0\.0 /)
    expect(await c.command("QUIT")).toMatch(/^221 /)
    const file = bridge.delivered().find((f) => f.toString("latin1").includes("Subject: edited"))
    expect(file).toBeDefined()
    expect(stripTrace(file!)).toBe("X-Checked: yes; 3 fields\r\nSubject: edited\r\nFrom: <alice@example.org>\r\n\r\nbody\r\n")
  })

  it("delivers a message whose first lines are not header fields whole, although hooks edit the header", async () => {
    for (const content of ["hello world\r\nsecond line\r\n", "Subject: odd\r\nnot a header line\r\n\r\nbody\r\n"]) {
      const c = await inTransaction()
      await c.command("RCPT TO:<bob@example.net>")
      expect(await c.command("DATA")).toMatch(/^354 /)
      c.send(`${content}.\r\n`)
      const queued = await c.read()
      expect(queued).toMatch(/^250 2\.0\.0 /)
      c.close()
      const id = queued.split(" ").at(-1)!
      const file = bridge.delivered().find((f) => f.toString("latin1").includes(id))
      expect(file).toBeDefined()
      expect(stripTrace(file!)).toMatch(/^X-Checked: yes; \d fields\r\n/)
      expect(stripTrace(file!).replace(/^X-Checked: .*\r\n/, "")).toBe(content)
    }
  })

  it("replies and closes on a Disconnect verdict at HELO", async () => {
    const c = await connect(bridge.port)
    await c.read()
    expect(await c.command("EHLO spammer.test")).toBe("421 4.7.0 Go away")
    await c.closed(3_000)
  })

  it("replies and closes on a Disconnect verdict at MAIL, pipelined commands unanswered", async () => {
    const c = await connect(bridge.port)
    await c.read()
    await c.command("EHLO client.test")
    c.send("MAIL FROM:<flood@example.org>\r\nRCPT TO:<bob@example.net>\r\n")
    expect(await c.read()).toBe("554 5.7.1 Too much mail")
    await c.closed(3_000)
    expect(c.transcript()).not.toMatch(/S: 250 2\.1\.5/)
  })
})

describe("a connect hook", () => {
  it("that rejects gives a 554 greeting and closes the connection", async () => {
    const gate = definePlugin({
      name: "gate",
      connect: () => Effect.succeed(Verdict.reject("No service for you", { code: 554, enhanced: "5.7.1" }))
    })
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [gate] })
    try {
      const c = await connect(bridge.port)
      expect(await c.read()).toBe("554 5.7.1 No service for you")
      await c.closed(3_000)
    } finally {
      await bridge.stop()
    }
  })

  // A failed hook is a 451 4.3.0 elsewhere; a greeting that refuses is 421 or 554 (RFC 5321 3.1, 3.8).
  it("that fails gives a 421 4.3.0 greeting and closes the connection", async () => {
    const gate = definePlugin({ name: "gate", connect: () => Effect.fail("database down") })
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [gate] })
    try {
      const c = await connect(bridge.port)
      expect(await c.read()).toBe(pluginFailure.replace(/^451/, "421"))
      await c.closed(3_000)
    } finally {
      await bridge.stop()
    }
  })
})

describe("a hook that fails, at every stage after the greeting", () => {
  // Fails (or dies) at the stage named in the client's own text, so one bridge serves every case.
  const failing = definePlugin({
    name: "failing",
    timeout: 200,
    helo: ({ name }) => (name === "fail.test" ? Effect.fail(new Error("helo backend down")) : Effect.succeed(Verdict.Continue)),
    auth: ({ username }) => (username === "fail" ? Effect.die(new Error("bug in auth")) : Effect.succeed(Verdict.Continue)),
    mailFrom: ({ from }) => (from?.local === "fail" ? Effect.fail(new Error("mail backend down")) : Effect.succeed(Verdict.Continue)),
    data: ({ message }) =>
      message.headers.some((h) => h.name === "Subject" && h.value.includes("fail")) ? Effect.never : Effect.succeed(Verdict.Continue)
  })
  let bridge: TestBridge
  beforeAll(async () => {
    bridge = await startBridge({ trust: ["127.0.0.0/8"], allowInsecureAuth: true, plugins: [failing] })
  })
  afterAll(() => bridge.stop())

  it("answers 451 4.3.0 at EHLO, AUTH, MAIL and the end of DATA and BDAT, and the session goes on", async () => {
    const c = await connect(bridge.port)
    try {
      await c.read()
      expect(await c.command("EHLO fail.test")).toBe(pluginFailure)
      expect(await c.command("EHLO client.test")).toMatch(/^250-/)
      expect(await c.command(`AUTH PLAIN ${Buffer.from("\0fail\0pw").toString("base64")}`)).toBe(pluginFailure)
      expect(await c.command("MAIL FROM:<fail@example.org>")).toBe(pluginFailure)
      expect(await c.command("MAIL FROM:<a@example.org>")).toBe("250 2.1.0 Ok")
      expect(await c.command("RCPT TO:<b@example.net>")).toBe("250 2.1.5 Ok")
      expect(await c.command("DATA")).toMatch(/^354 /)
      // The data hook never answers: its 200 ms timeout gives 451, and the transaction is over.
      expect(await c.command("Subject: fail\r\n\r\nbody\r\n.")).toBe(pluginFailure)
      expect(await c.command("RCPT TO:<b@example.net>")).toBe("503 5.5.1 Need MAIL before RCPT")
      await c.command("MAIL FROM:<a@example.org>")
      await c.command("RCPT TO:<b@example.net>")
      const body = "Subject: fail too\r\n\r\nbody\r\n"
      c.send(`BDAT ${body.length} LAST\r\n${body}`)
      expect(await c.read()).toBe(pluginFailure)
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
      expect(await c.command("QUIT")).toMatch(/^221 /)
      expect(bridge.delivered()).toHaveLength(0)
    } finally {
      c.close()
    }
  })
})

describe("a plugin that breaks the hook contract", () => {
  it("by answering a hook with no verdict at all gets 451 4.3.0, and the session goes on", async () => {
    // A plain-JavaScript plugin that forgot its `return`: the type system cannot stop it.
    const forgetful = definePlugin({ name: "forgetful", rcptTo: () => Effect.succeed(undefined as unknown as Verdict.Verdict) })
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [forgetful] })
    try {
      const c = await connect(bridge.port)
      await c.read()
      await c.command("EHLO client.test")
      await c.command("MAIL FROM:<a@client.test>")
      expect(await c.command("RCPT TO:<b@dest.test>")).toBe(pluginFailure)
      expect(await c.command("NOOP")).toBe("250 2.0.0 Ok")
      expect(await c.command("QUIT")).toMatch(/^221 /)
      expect(JSON.stringify(bridge.logs())).toMatch(/plugin forgetful failed in rcptTo: not a verdict/)
    } finally {
      await bridge.stop()
    }
  })
})

describe("a plugin whose verdict breaks the reply rules", () => {
  it("with a Reject that says 250, or an enhanced code of another class, gets 451 4.3.0 instead of a broken reply", async () => {
    const liar = definePlugin({
      name: "liar",
      mailFrom: () => Effect.succeed(Verdict.reject("Looks fine", { code: 250, enhanced: "2.0.0" })),
      rcptTo: () => Effect.succeed(Verdict.defer("Later", { code: 450, enhanced: "5.7.1" }))
    })
    const bridge = await startBridge({ trust: ["127.0.0.0/8"], plugins: [liar] })
    try {
      const c = await connect(bridge.port)
      await c.read()
      await c.command("EHLO client.test")
      expect(await c.command("MAIL FROM:<a@client.test>")).toBe(pluginFailure)
      expect(JSON.stringify(bridge.logs())).toMatch(/plugin liar failed in mailFrom: Reject with code 250/)
    } finally {
      await bridge.stop()
    }
  })
})
